//! The one error type of the desktop's plain logic. Each message is a sentence the mechanic (or
//! IT, for the managed file) reads as it is; the app maps them to its own `{code, message}`.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("Your IT department manages the setting \"{0}\".")]
    Locked(&'static str),
    #[error("The server address must start with https:// ({0}).")]
    InvalidServerUrl(String),
    #[error(
        "{0} is not encrypted: use its https:// address. Plain http:// is only for a server on \
         this computer (localhost)."
    )]
    InsecureServerUrl(String),
    /// The managed file exists but cannot be read or parsed.
    #[error("{0}")]
    ManagedFile(String),
    #[error(
        "Your IT department's settings file {path} could not be read ({reason}), so the app is \
         locked to safe values and no server is set; ask your IT department to fix it."
    )]
    ManagedUnreadable { path: String, reason: String },
    #[error("The credential store failed: {0}")]
    CredentialStore(String),
}
