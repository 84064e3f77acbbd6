//! The one error type of the desktop shell. Every command returns `Result<T, Error>`, and an error
//! reaches the UI as `{code, message}`: `code` is stable for the UI to act on (the server's own
//! code where the server answered, e.g. `already_accepted`), `message` is a sentence for people.

use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};
use wrenchline_client::{ClientError, RealtimeError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Sign in first.")]
    NotSignedIn,
    #[error("That email and password do not match.")]
    InvalidCredentials,
    #[error("Your sign-in has expired. Please sign in again.")]
    SignInExpired,
    #[error("Another mechanic took this request.")]
    AlreadyAccepted,
    /// The server answered with an error of its own.
    #[error("{message}")]
    Server { code: String, message: String },
    #[error("Cannot reach the server: {0}")]
    Network(String),
    #[error("The server address must start with http:// or https:// ({0}).")]
    InvalidServerUrl(String),
    /// Plain http:// to another computer; the message says what to do.
    #[error("{0}")]
    InsecureServerUrl(String),
    #[error("The credential store failed: {0}")]
    CredentialStore(String),
    #[error("{0}")]
    Settings(String),
    #[error("Your IT department manages the setting \"{0}\".")]
    SettingLocked(String),
    #[error("The live connection failed: {0}")]
    Realtime(String),
    #[error("{0}")]
    Invalid(String),
    #[error("Something went wrong: {0}")]
    Internal(String),
}

impl Error {
    /// The machine-readable code the UI sees.
    pub fn code(&self) -> &str {
        match self {
            Error::NotSignedIn => "not_signed_in",
            Error::InvalidCredentials => "invalid_credentials",
            Error::SignInExpired => "sign_in_expired",
            Error::AlreadyAccepted => "already_accepted",
            Error::Server { code, .. } => code,
            Error::Network(_) => "network",
            Error::InvalidServerUrl(_) => "invalid_server_url",
            Error::InsecureServerUrl(_) => "insecure_server_url",
            Error::CredentialStore(_) => "credential_store",
            Error::Settings(_) => "settings",
            Error::SettingLocked(_) => "setting_locked",
            Error::Realtime(_) => "realtime",
            Error::Invalid(_) => "invalid",
            Error::Internal(_) => "internal",
        }
    }
}

impl Serialize for Error {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Error", 2)?;
        s.serialize_field("code", self.code())?;
        s.serialize_field("message", &self.to_string())?;
        s.end()
    }
}

impl From<ClientError> for Error {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Transport(e) => Error::Network(with_causes(&e)),
            ClientError::Url(url) => Error::InvalidServerUrl(url),
            ClientError::NotMechanic => {
                Error::Invalid("This app is for mechanics; that account is not one.".into())
            }
            ClientError::SignInExpired => Error::SignInExpired,
            ClientError::Realtime(e) => Error::Realtime(e.to_string()),
            e @ ClientError::File { .. } => Error::Internal(e.to_string()),
            ClientError::Api { body, .. } => match body.error.as_str() {
                "already_accepted" => Error::AlreadyAccepted,
                "invalid_credentials" => Error::InvalidCredentials,
                _ => Error::Server {
                    code: body.error,
                    message: body.message,
                },
            },
        }
    }
}

impl From<wrenchline_desk_core::Error> for Error {
    fn from(e: wrenchline_desk_core::Error) -> Self {
        use wrenchline_desk_core::Error as E;
        match e {
            E::Locked(key) => Error::SettingLocked(key.into()),
            E::InvalidServerUrl(url) => Error::InvalidServerUrl(url),
            insecure @ E::InsecureServerUrl(_) => Error::InsecureServerUrl(insecure.to_string()),
            E::CredentialStore(e) => Error::CredentialStore(e),
            other => Error::Settings(other.to_string()),
        }
    }
}

impl From<RealtimeError> for Error {
    fn from(e: RealtimeError) -> Self {
        Error::Realtime(e.to_string())
    }
}

/// reqwest's message with its causes ("error sending request …: connection refused").
fn with_causes(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use wrenchline_protocol::ErrorBody;

    #[test]
    fn errors_reach_the_ui_as_code_and_message() {
        assert_eq!(
            serde_json::to_value(Error::AlreadyAccepted).unwrap(),
            json!({"code": "already_accepted", "message": "Another mechanic took this request."})
        );
        assert_eq!(
            serde_json::to_value(Error::SettingLocked("server_url".into())).unwrap(),
            json!({"code": "setting_locked", "message": "Your IT department manages the setting \"server_url\"."})
        );
    }

    #[test]
    fn server_errors_keep_the_servers_code_and_message() {
        let e: Error = ClientError::Api {
            status: reqwest::StatusCode::FORBIDDEN,
            body: ErrorBody {
                error: "forbidden".into(),
                message: "Not your session".into(),
                fields: Default::default(),
                missing: vec![],
                session: None,
            },
        }
        .into();
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            json!({"code": "forbidden", "message": "Not your session"})
        );
    }

    #[test]
    fn a_lost_accept_race_is_its_own_error() {
        let e: Error = ClientError::Api {
            status: reqwest::StatusCode::CONFLICT,
            body: ErrorBody {
                error: "already_accepted".into(),
                message: "x".into(),
                fields: Default::default(),
                missing: vec![],
                session: None,
            },
        }
        .into();
        assert!(matches!(e, Error::AlreadyAccepted));
    }
}
