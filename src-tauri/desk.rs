//! The app's state (managed with `app.manage`): the settings, the credential store, the sign-in
//! as the UI sees it, and the signed-in mechanic's [`MechanicSession`] (which owns the feed, the
//! tokens and the chats). This module starts and ends sessions: sign-in, restore at start,
//! sign-out. Starting one hands back its [`Started`] events, which the caller gives to
//! `events::forward` (so this module never names the one that forwards).

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use tauri::{AppHandle, Emitter, Manager};
use wrenchline_client::{MechanicEvents, MechanicOptions, MechanicSession, Sensitive};
use wrenchline_desk_core::credentials::{Credentials, StoreStatus};
use wrenchline_desk_core::settings::{self, Settings, Store};
use wrenchline_desk_core::view::{AuthView, Navigation};
use wrenchline_protocol::presence::Availability;
use wrenchline_protocol::User;

use crate::error::{Error, Result};

mod restore;

/// A session that has just started: what to forward, and who signed in.
pub struct Started {
    pub server: String,
    pub user: User,
    pub events: MechanicEvents,
    /// Which session this is (counted from 1), so that a late event of an ended one changes
    /// nothing.
    pub number: u64,
}

pub struct Desk {
    settings: Mutex<Store>,
    settings_file: PathBuf,
    credentials: Credentials,
    auth: Mutex<AuthView>,
    /// The current session and its number.
    session: Mutex<Option<(MechanicSession, u64)>>,
    started: std::sync::atomic::AtomicU64,
    /// The mechanic's last choice, applied to each new session.
    availability: Mutex<Availability>,
    navigation: Mutex<Option<Navigation>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Desk {
    pub fn new(config_dir: PathBuf) -> Desk {
        let settings_file = config_dir.join(settings::USER_FILE);
        let mut store = Store::load(&settings_file, settings::managed_path());
        store.installer = settings::installer_defaults(matches!(
            tauri::utils::platform::bundle_type(),
            Some(tauri::utils::config::BundleType::Msi)
        ));
        if let Some(e) = &store.managed_error {
            log::warn!(
                "managed settings {} unreadable, every setting locked to safe values: {e}",
                store.managed_path.display()
            );
        }
        let credentials = Credentials::probe();
        if let Some(reason) = credentials.status().reason {
            log::warn!("no credential store, keeping sign-ins in memory only: {reason}");
        }
        let server_url = store.settings().server_url;
        Desk {
            settings: Mutex::new(store),
            settings_file,
            credentials,
            auth: Mutex::new(AuthView::Restoring {
                server_url,
                error: None,
            }),
            session: Mutex::new(None),
            started: std::sync::atomic::AtomicU64::new(0),
            availability: Mutex::new(Availability::Online),
            navigation: Mutex::new(None),
        }
    }

    pub fn auth(&self) -> AuthView {
        lock(&self.auth).clone()
    }

    pub fn credential_store(&self) -> StoreStatus {
        self.credentials.status()
    }

    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    pub fn settings(&self) -> Settings {
        lock(&self.settings).settings()
    }

    pub fn settings_view(&self) -> settings::View {
        lock(&self.settings).view()
    }

    /// The signed-in mechanic's session.
    pub fn session(&self) -> Result<MechanicSession> {
        lock(&self.session)
            .as_ref()
            .map(|(s, _)| s.clone())
            .ok_or(Error::NotSignedIn)
    }

    pub fn availability(&self) -> Availability {
        *lock(&self.availability)
    }

    pub fn set_availability(&self, availability: Availability) {
        *lock(&self.availability) = availability;
        if let Ok(session) = self.session() {
            session.set_availability(availability);
        }
    }

    pub fn take_navigation(&self) -> Option<Navigation> {
        lock(&self.navigation).take()
    }

    /// Keeps where to go for a UI that loads later, and tells the UI that is there.
    pub fn navigate(&self, app: &AppHandle, to: Navigation) {
        *lock(&self.navigation) = Some(to);
        crate::ui::show_window(app);
        let _ = app.emit("navigate", to);
    }

    fn set_auth(&self, app: &AppHandle, view: AuthView) {
        *lock(&self.auth) = view.clone();
        let _ = app.emit("auth", view);
    }

    fn signed_out(&self, server_url: String, notice: Option<String>) -> AuthView {
        AuthView::SignedOut {
            server_url,
            email: self.settings_view().last_email,
            notice,
        }
    }

    /// Signs in with a password; the refresh token goes to the credential store.
    pub async fn sign_in(
        &self,
        app: &AppHandle,
        server_url: &str,
        email: &str,
        password: Sensitive<String>,
    ) -> Result<Started> {
        let server = lock(&self.settings).sign_in_server(server_url)?;
        let email = email.trim();
        if email.is_empty() || password.expose().is_empty() {
            return Err(Error::Invalid("Enter your email and password.".into()));
        }
        let (session, events) =
            MechanicSession::sign_in(&server, email, password.expose(), self.options()).await?;
        {
            let mut store = lock(&self.settings);
            if store.managed.server_url.is_none() {
                store.user.server_url = Some(server.clone());
            }
            store.user.last_email = Some(email.to_string());
            if let Err(e) = store.save(&self.settings_file) {
                log::warn!("could not save the settings: {e}");
            }
        }
        self.end_session(app).await;
        Ok(self.begin(app, session, events))
    }

    /// A new session starts with the mechanic's last availability.
    fn options(&self) -> MechanicOptions {
        MechanicOptions {
            availability: self.availability(),
            ..MechanicOptions::default()
        }
    }

    /// Starts forwarding a new session's events and shows the mechanic signed in.
    fn begin(&self, app: &AppHandle, session: MechanicSession, events: MechanicEvents) -> Started {
        let number = self
            .started
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        let started = Started {
            server: session.server().to_string(),
            user: session.user().clone(),
            events,
            number,
        };
        let view = AuthView::SignedIn {
            server_url: session.server().to_string(),
            user: session.user().clone(),
        };
        *lock(&self.session) = Some((session, number));
        self.set_auth(app, view);
        started
    }

    /// Stops the current session, if any, and empties the list.
    async fn end_session(&self, app: &AppHandle) {
        let taken = lock(&self.session).take();
        if let Some((session, _)) = taken {
            session.stop().await;
        }
        crate::ui::show_requests(app, Vec::new());
    }

    /// The server refused the refresh token: signed out, and the stored token forgotten.
    pub async fn sign_in_expired(&self, app: &AppHandle, server: String, number: u64) {
        if lock(&self.session).as_ref().map(|(_, n)| *n) != Some(number) {
            return; // that session has ended already
        }
        self.end_session(app).await;
        let _ = self.credentials.delete(&server);
        self.set_auth(
            app,
            self.signed_out(server, Some(Error::SignInExpired.to_string())),
        );
    }

    /// Signs out: the server forgets the refresh token, the store forgets it too.
    pub async fn sign_out(&self, app: &AppHandle) -> Result<()> {
        let session = self.session().ok();
        let server = match &session {
            Some(session) => {
                session.sign_out().await;
                session.server().to_string()
            }
            None => self.settings().server_url,
        };
        self.end_session(app).await;
        let stored = self.credentials.delete(&server);
        self.set_auth(app, self.signed_out(server, None));
        Ok(stored?)
    }

    /// Applies a settings change, saves it and acts on it (start at login).
    pub fn change_setting(
        &self,
        app: &AppHandle,
        change: settings::Change,
    ) -> Result<settings::View> {
        let view = {
            let mut store = lock(&self.settings);
            store.apply(change)?;
            store
                .save(&self.settings_file)
                .map_err(|e| Error::Settings(format!("The settings could not be saved: {e}")))?;
            store.view()
        };
        crate::autostart::apply(app, view.values.start_at_login);
        let _ = app.emit("settings", &view);
        Ok(view)
    }
}

/// The state, for the few places without a command's `State` (event tasks, the updater).
pub fn desk(app: &AppHandle) -> tauri::State<'_, Desk> {
    app.state::<Desk>()
}
