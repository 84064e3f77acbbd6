//! Where the refresh token lives between starts: the OS credential store (Secret Service on Linux,
//! Keychain on macOS, Credential Manager on Windows) through the `keyring` crate, one entry per
//! server. Without a usable store the token stays in memory only, and the UI says so: the next
//! start then asks for the password again. The token is never written to disk by the app.

use std::sync::Mutex;

use keyring::Entry;
use serde::Serialize;

use wrenchline_client::Sensitive;

use crate::Error;

type Result<T> = std::result::Result<T, Error>;

fn store_error(e: keyring::Error) -> Error {
    Error::CredentialStore(e.to_string())
}

/// The keyring service name: the app's identifier. The account is the server's URL.
pub const SERVICE: &str = "dev.wrenchline.desk";
/// Forces the in-memory store (tests of the "no credential store" path).
pub const DISABLE_ENV: &str = "WRENCHLINE_NO_KEYRING";

/// What the UI shows about the store.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StoreStatus {
    pub available: bool,
    /// Why it is not, for people.
    pub reason: Option<String>,
}

pub struct Credentials {
    status: StoreStatus,
    /// The fallback when there is no store: (server, token), gone when the app quits.
    memory: Mutex<Option<(String, Sensitive<String>)>>,
}

impl Credentials {
    /// Looks for a usable store once, at start: reading an entry that does not exist answers
    /// `NoEntry` when the store works, and an error when there is none (no Secret Service on the
    /// session bus, a locked or missing keychain).
    pub fn probe() -> Credentials {
        let status = if std::env::var_os(DISABLE_ENV).is_some_and(|v| !v.is_empty()) {
            StoreStatus {
                available: false,
                reason: Some("the credential store is turned off for this run".into()),
            }
        } else {
            match Entry::new(SERVICE, "probe").and_then(|e| e.get_password()) {
                Ok(_) | Err(keyring::Error::NoEntry) => StoreStatus {
                    available: true,
                    reason: None,
                },
                Err(e) => StoreStatus {
                    available: false,
                    reason: Some(e.to_string()),
                },
            }
        };
        Credentials {
            status,
            memory: Mutex::new(None),
        }
    }

    pub fn status(&self) -> StoreStatus {
        self.status.clone()
    }

    fn memory(&self) -> std::sync::MutexGuard<'_, Option<(String, Sensitive<String>)>> {
        self.memory.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The stored refresh token for `server`, if any.
    pub fn load(&self, server: &str) -> Result<Option<Sensitive<String>>> {
        if !self.status.available {
            return Ok(self
                .memory()
                .as_ref()
                .filter(|(s, _)| s == server)
                .map(|(_, t)| t.clone()));
        }
        match Entry::new(SERVICE, server).and_then(|e| e.get_password()) {
            Ok(token) => Ok(Some(Sensitive::new(token))),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(store_error(e)),
        }
    }

    /// Stores (or replaces) the refresh token for `server`.
    pub fn save(&self, server: &str, token: &Sensitive<String>) -> Result<()> {
        if !self.status.available {
            *self.memory() = Some((server.to_string(), token.clone()));
            return Ok(());
        }
        Entry::new(SERVICE, server)
            .and_then(|e| e.set_password(token.expose()))
            .map_err(store_error)
    }

    /// Forgets the token for `server`; forgetting nothing is fine.
    pub fn delete(&self, server: &str) -> Result<()> {
        if !self.status.available {
            let mut memory = self.memory();
            if memory.as_ref().is_some_and(|(s, _)| s == server) {
                *memory = None;
            }
            return Ok(());
        }
        match Entry::new(SERVICE, server).and_then(|e| e.delete_credential()) {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(store_error(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory_only() -> Credentials {
        Credentials {
            status: StoreStatus {
                available: false,
                reason: Some("test".into()),
            },
            memory: Mutex::new(None),
        }
    }

    #[test]
    fn without_a_store_the_token_lives_in_memory_for_its_server_only() {
        let c = memory_only();
        assert_eq!(c.load("https://a.example").unwrap(), None);
        c.save("https://a.example", &Sensitive::new("t1".into()))
            .unwrap();
        assert_eq!(c.load("https://a.example").unwrap().unwrap().expose(), "t1");
        assert_eq!(c.load("https://b.example").unwrap(), None);
        c.delete("https://b.example").unwrap();
        assert!(c.load("https://a.example").unwrap().is_some());
        c.delete("https://a.example").unwrap();
        assert_eq!(c.load("https://a.example").unwrap(), None);
    }
}
