//! Signing in again at start with the refresh token in the credential store: part of [`Desk`],
//! apart because it is a loop of its own (the server may be out of reach for a while).

use std::time::Duration;

use tauri::AppHandle;
use wrenchline_client::{ClientError, MechanicSession};
use wrenchline_desk_core::view::AuthView;

use super::{Desk, Started};
use crate::error::Error;

/// Retry a restore that could not reach the server after this long.
const RETRY_AFTER: Duration = Duration::from_secs(10);

impl Desk {
    /// At start: signs in with the stored refresh token, retrying while the server is out of
    /// reach; without one, shows the sign-in form.
    pub async fn restore(&self, app: &AppHandle) -> Option<Started> {
        let server = self.settings().server_url;
        if server.is_empty() {
            self.set_auth(app, self.signed_out(server, None));
            return None;
        }
        loop {
            if !matches!(self.auth(), AuthView::Restoring { .. }) {
                return None; // the mechanic signed in or out meanwhile
            }
            let token = match self.credentials.load(&server) {
                Ok(Some(token)) => token,
                Ok(None) => {
                    self.set_auth(app, self.signed_out(server, None));
                    return None;
                }
                Err(e) => {
                    log::warn!("could not read the credential store: {e}");
                    self.set_auth(app, self.signed_out(server, Some(e.to_string())));
                    return None;
                }
            };
            match MechanicSession::restore(&server, token.expose(), self.options()).await {
                Ok((session, events)) => {
                    if matches!(self.auth(), AuthView::Restoring { .. }) {
                        return Some(self.begin(app, session, events));
                    }
                    session.stop().await;
                    return None;
                }
                Err(ClientError::Transport(e)) => {
                    let e = Error::from(ClientError::Transport(e));
                    log::warn!("cannot restore the sign-in yet: {e}");
                    self.set_auth(
                        app,
                        AuthView::Restoring {
                            server_url: server.clone(),
                            error: Some(e.to_string()),
                        },
                    );
                    tokio::time::sleep(RETRY_AFTER).await;
                }
                Err(e) => {
                    log::warn!("the stored sign-in was refused: {e}");
                    let _ = self.credentials.delete(&server);
                    let notice = match e {
                        ClientError::SignInExpired => Error::SignInExpired.to_string(),
                        other => Error::from(other).to_string(),
                    };
                    self.set_auth(app, self.signed_out(server, Some(notice)));
                    return None;
                }
            }
        }
    }
}
