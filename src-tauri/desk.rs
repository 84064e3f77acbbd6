//! The app's state (managed with `app.manage`) and what happens in the background: the mechanic's
//! sign-in and its token refresh, the realtime connection with the request feed, the chat links,
//! availability and navigation requests. Commands (commands.rs) and the tray call into this;
//! the UI hears back through events:
//!
//! - `auth` ([`AuthView`]) when the sign-in changes,
//! - `requests` (the offered sessions, oldest first) and `feed-status`,
//! - `availability`, `settings`, `notice` (a sentence to show), `navigate` (call `take_navigation`),
//! - `session-event` ([`chat::SessionEvent`]) for an open chat.
//!
//! Tokens stay here: the refresh token in the credential store, the access token in memory.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use tauri::async_runtime::JoinHandle;
use tauri::{AppHandle, Emitter, Manager};
use uuid::Uuid;
use wrenchline_client::{
    ApiClient, Channel, ChannelEvent, ChannelOptions, ClientError, PostgresChanges, RealtimeClient,
};
use wrenchline_protocol::{AuthTokens, Role, Session, User};

use crate::chat::ChatLink;
use crate::credentials::{Credentials, StoreStatus};
use crate::error::{Error, Result};
use crate::feed::{FeedChange, RequestFeed};
use crate::sensitive::Sensitive;
use crate::settings;
use crate::tray::Tray;

/// Refresh the access token this long before it expires (or at 80 % of a shorter life).
const REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// Retry a refresh or a restore that could not reach the server after this long.
const RETRY_AFTER: Duration = Duration::from_secs(10);
/// Rebuild the request channel this long after the server closed it.
const RESUBSCRIBE_AFTER: Duration = Duration::from_secs(2);

/// Whether the mechanic wants to hear about new requests. Tracked as presence on `requests`
/// (`availability` in the payload), so the server counts only mechanics who are online.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Availability {
    Online,
    Away,
}

impl Availability {
    /// This connection's presence on `requests`.
    fn presence(self, user: &User) -> serde_json::Value {
        serde_json::json!({
            "user_id": user.id,
            "role": "mechanic",
            "online_at": crate::chat::now_rfc3339(),
            "availability": self,
        })
    }
}

/// The sign-in as the UI sees it.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum AuthView {
    /// Signing in with the stored token; `error` says why it is taking a while.
    Restoring {
        server_url: String,
        error: Option<String>,
    },
    SignedOut {
        server_url: String,
        email: Option<String>,
        /// Why the mechanic is signed out when it was not their doing.
        notice: Option<String>,
    },
    SignedIn {
        server_url: String,
        user: User,
    },
}

/// Where the UI should go, from a deep link or a notification.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Navigation {
    Request(Uuid),
    Session(Uuid),
}

/// A signed-in mechanic's connection to one server.
struct Account {
    server: String,
    user: User,
    api: ApiClient,
    refresh: Sensitive<String>,
    /// Bumped at each refresh, so concurrent callers that saw a 401 refresh only once.
    generation: u64,
    expires_at: Instant,
    realtime: RealtimeClient,
    tasks: Vec<JoinHandle<()>>,
}

pub struct Desk {
    settings: Mutex<settings::Store>,
    settings_file: PathBuf,
    credentials: Credentials,
    auth: RwLock<AuthView>,
    account: RwLock<Option<Account>>,
    /// One refresh at a time: the refresh token rotates, and reusing a spent one revokes it.
    refreshing: tokio::sync::Mutex<()>,
    feed: Mutex<RequestFeed>,
    feed_status: Mutex<String>,
    availability: Mutex<Availability>,
    /// The `requests` channel while subscribed, to track availability changes on.
    requests_channel: Mutex<Option<Channel>>,
    /// One track at a time, each reading the availability when it runs: the last one sent is
    /// the current value whatever order the tasks run in.
    tracking: tokio::sync::Mutex<()>,
    chats: tokio::sync::Mutex<HashMap<Uuid, ChatLink>>,
    navigation: Mutex<Option<Navigation>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|e| e.into_inner())
}

/// The state, from anywhere that has the app.
pub fn desk(app: &AppHandle) -> tauri::State<'_, Desk> {
    app.state::<Desk>()
}

impl Desk {
    pub fn new(config_dir: PathBuf) -> Desk {
        let settings_file = config_dir.join(settings::USER_FILE);
        let mut store = settings::Store::load(&settings_file, settings::managed_path());
        store.installer = settings::installer_defaults(matches!(
            tauri::utils::platform::bundle_type(),
            Some(tauri::utils::config::BundleType::Msi)
        ));
        if let Some(e) = &store.managed_error {
            log::warn!(
                "managed settings {} ignored: {e}",
                store.managed_path.display()
            );
        }
        let server_url = store.settings().server_url;
        Desk {
            settings: Mutex::new(store),
            settings_file,
            credentials: Credentials::probe(),
            auth: RwLock::new(AuthView::Restoring {
                server_url,
                error: None,
            }),
            account: RwLock::new(None),
            refreshing: tokio::sync::Mutex::new(()),
            feed: Mutex::new(RequestFeed::default()),
            feed_status: Mutex::new("connecting".into()),
            availability: Mutex::new(Availability::Online),
            requests_channel: Mutex::new(None),
            tracking: tokio::sync::Mutex::new(()),
            chats: tokio::sync::Mutex::new(HashMap::new()),
            navigation: Mutex::new(None),
        }
    }

    pub fn auth(&self) -> AuthView {
        read(&self.auth).clone()
    }

    pub fn credential_store(&self) -> StoreStatus {
        self.credentials.status()
    }

    pub fn settings(&self) -> settings::Settings {
        lock(&self.settings).settings()
    }

    pub fn settings_view(&self) -> settings::View {
        lock(&self.settings).view()
    }

    pub fn requests(&self) -> Vec<Session> {
        lock(&self.feed).rows().to_vec()
    }

    pub fn feed_status(&self) -> String {
        lock(&self.feed_status).clone()
    }

    pub fn availability(&self) -> Availability {
        *lock(&self.availability)
    }

    pub fn take_navigation(&self) -> Option<Navigation> {
        lock(&self.navigation).take()
    }

    pub fn me(&self) -> Result<User> {
        read(&self.account)
            .as_ref()
            .map(|a| a.user.clone())
            .ok_or(Error::NotSignedIn)
    }

    pub fn server_url(&self) -> Result<String> {
        read(&self.account)
            .as_ref()
            .map(|a| a.server.clone())
            .ok_or(Error::NotSignedIn)
    }

    pub fn realtime(&self) -> Result<RealtimeClient> {
        read(&self.account)
            .as_ref()
            .map(|a| a.realtime.clone())
            .ok_or(Error::NotSignedIn)
    }

    fn api(&self) -> Result<(ApiClient, u64)> {
        read(&self.account)
            .as_ref()
            .map(|a| (a.api.clone(), a.generation))
            .ok_or(Error::NotSignedIn)
    }

    /// Calls the API as the signed-in mechanic; an expired access token is refreshed once and
    /// the call repeated.
    pub async fn call<T, F, Fut>(&self, app: &AppHandle, f: F) -> Result<T>
    where
        F: Fn(ApiClient) -> Fut,
        Fut: std::future::Future<Output = Result<T, ClientError>>,
    {
        let (api, generation) = self.api()?;
        match f(api).await.map_err(Error::from) {
            Err(e) if e.is_unauthorized() => {
                self.refresh(app, generation).await?;
                let (api, _) = self.api()?;
                f(api).await.map_err(Error::from)
            }
            other => other,
        }
    }

    /// Trades the refresh token for new tokens, unless another caller already did since
    /// `seen_generation`. A refused refresh token signs the mechanic out.
    async fn refresh(&self, app: &AppHandle, seen_generation: u64) -> Result<()> {
        let _one_at_a_time = self.refreshing.lock().await;
        let (server, refresh, generation) = match read(&self.account).as_ref() {
            Some(a) => (a.server.clone(), a.refresh.clone(), a.generation),
            None => return Err(Error::NotSignedIn),
        };
        if generation != seen_generation {
            return Ok(());
        }
        let tokens = match ApiClient::new(&server)?.refresh(refresh.expose()).await {
            Ok(tokens) => tokens,
            Err(e)
                if e.status()
                    .is_some_and(|s| s.as_u16() == 401 || s.as_u16() == 403) =>
            {
                log::warn!("the server refused the refresh token; signing out");
                // On a task of its own: the caller may be one of the account's tasks, which
                // ending the account aborts.
                let app = app.clone();
                tauri::async_runtime::spawn(async move {
                    let desk = desk(&app);
                    desk.end_account(&app).await;
                    let _ = desk.credentials.delete(&server);
                    desk.set_auth(
                        &app,
                        AuthView::SignedOut {
                            server_url: server,
                            email: desk.settings_view().last_email,
                            notice: Some(Error::SignInExpired.to_string()),
                        },
                    );
                });
                return Err(Error::SignInExpired);
            }
            Err(e) => return Err(e.into()),
        };
        let refresh = Sensitive::new(tokens.refresh_token.clone());
        if let Err(e) = self.credentials.save(&server, &refresh) {
            log::warn!("could not store the new refresh token: {e}");
        }
        let realtime = {
            let mut account = write(&self.account);
            let Some(a) = account.as_mut() else {
                return Err(Error::NotSignedIn);
            };
            a.api = a.api.clone().with_token(tokens.access_token.clone());
            a.refresh = refresh;
            a.generation += 1;
            a.expires_at = Instant::now() + Duration::from_secs(tokens.expires_in);
            a.realtime.clone()
        };
        if let Err(e) = realtime.set_token(tokens.access_token).await {
            log::warn!("could not hand the new token to the realtime connection: {e}");
        }
        log::info!("access token refreshed");
        Ok(())
    }

    fn set_auth(&self, app: &AppHandle, view: AuthView) {
        *write(&self.auth) = view.clone();
        let _ = app.emit("auth", view);
    }

    /// Signs in with a password; the refresh token goes to the credential store.
    pub async fn sign_in(
        &self,
        app: &AppHandle,
        server_url: &str,
        email: &str,
        password: Sensitive<String>,
    ) -> Result<User> {
        let locked_url = {
            let store = lock(&self.settings);
            store.managed.server_url.clone()
        };
        let server = match locked_url {
            Some(url) => url,
            None => settings::normalize_server_url(server_url)
                .map_err(|_| Error::InvalidServerUrl(server_url.trim().to_string()))?,
        };
        let email = email.trim();
        if email.is_empty() || password.expose().is_empty() {
            return Err(Error::Invalid("Enter your email and password.".into()));
        }
        let tokens = ApiClient::new(&server)?
            .login(email, password.expose())
            .await?;
        if tokens.user.role != Role::Mechanic {
            return Err(Error::Invalid(
                "This app is for mechanics; that account is not one.".into(),
            ));
        }
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
        self.end_account(app).await;
        let user = tokens.user.clone();
        self.start_account(app, server, tokens)?;
        Ok(user)
    }

    /// Signs out: the server forgets the refresh token, the store forgets it too.
    pub async fn sign_out(&self, app: &AppHandle) -> Result<()> {
        let taken = {
            let account = read(&self.account);
            account
                .as_ref()
                .map(|a| (a.server.clone(), a.refresh.clone()))
        };
        let server = match taken {
            Some((server, refresh)) => {
                if let Err(e) = ApiClient::new(&server)?.logout(refresh.expose()).await {
                    log::warn!("logout at the server failed (signing out here anyway): {e}");
                }
                server
            }
            None => self.settings().server_url,
        };
        self.end_account(app).await;
        let stored = self.credentials.delete(&server);
        self.set_auth(
            app,
            AuthView::SignedOut {
                server_url: server,
                email: self.settings_view().last_email,
                notice: None,
            },
        );
        stored
    }

    /// Starts using fresh tokens: stores the refresh token, opens the realtime connection, and
    /// starts the request feed and the refresh timer.
    fn start_account(&self, app: &AppHandle, server: String, tokens: AuthTokens) -> Result<()> {
        let refresh = Sensitive::new(tokens.refresh_token.clone());
        if let Err(e) = self.credentials.save(&server, &refresh) {
            log::warn!("could not store the refresh token: {e}");
        }
        let realtime = RealtimeClient::connect(&server, tokens.access_token.clone())?;
        let user = tokens.user.clone();
        let mut account = Account {
            server: server.clone(),
            user: user.clone(),
            api: ApiClient::new(&server)?.with_token(tokens.access_token),
            refresh,
            generation: 0,
            expires_at: Instant::now() + Duration::from_secs(tokens.expires_in),
            realtime: realtime.clone(),
            tasks: Vec::new(),
        };
        {
            // The tasks read the account as they start, so they start under the write lock:
            // the refresh timer would otherwise find no account and end at once.
            let mut slot = write(&self.account);
            account.tasks = vec![
                tauri::async_runtime::spawn(run_feed(app.clone(), realtime)),
                tauri::async_runtime::spawn(run_refresh(app.clone())),
            ];
            *slot = Some(account);
        }
        log::info!("signed in to {server} as {}", user.email);
        self.set_auth(
            app,
            AuthView::SignedIn {
                server_url: server,
                user,
            },
        );
        Ok(())
    }

    /// Stops everything of the current account (tasks, chats, socket) and empties the list.
    async fn end_account(&self, app: &AppHandle) {
        let taken = write(&self.account).take();
        let chats: Vec<ChatLink> = self.chats.lock().await.drain().map(|(_, c)| c).collect();
        for chat in chats {
            chat.close().await;
        }
        lock(&self.requests_channel).take();
        if let Some(account) = taken {
            for task in account.tasks {
                task.abort();
            }
            account.realtime.disconnect().await;
        }
        lock(&self.feed).clear();
        self.publish_feed(app);
    }

    /// At start: signs in with the stored refresh token, retrying while the server is out of
    /// reach; without one, shows the sign-in form.
    pub async fn restore(&self, app: &AppHandle) {
        let server = self.settings().server_url;
        let email = self.settings_view().last_email;
        let signed_out = |notice: Option<String>| AuthView::SignedOut {
            server_url: server.clone(),
            email: email.clone(),
            notice,
        };
        if server.is_empty() {
            return self.set_auth(app, signed_out(None));
        }
        loop {
            if !matches!(self.auth(), AuthView::Restoring { .. }) {
                return; // the mechanic signed in or out meanwhile
            }
            let token = match self.credentials.load(&server) {
                Ok(Some(token)) => token,
                Ok(None) => return self.set_auth(app, signed_out(None)),
                Err(e) => {
                    log::warn!("could not read the credential store: {e}");
                    return self.set_auth(app, signed_out(Some(e.to_string())));
                }
            };
            let api = match ApiClient::new(&server) {
                Ok(api) => api,
                Err(e) => return self.set_auth(app, signed_out(Some(Error::from(e).to_string()))),
            };
            match api.refresh(token.expose()).await {
                Ok(tokens) => {
                    if !matches!(self.auth(), AuthView::Restoring { .. }) {
                        return;
                    }
                    if let Err(e) = self.start_account(app, server.clone(), tokens) {
                        self.set_auth(app, signed_out(Some(e.to_string())));
                    }
                    return;
                }
                Err(e) if e.status().is_some() => {
                    log::warn!("the stored sign-in was refused: {e}");
                    let _ = self.credentials.delete(&server);
                    return self.set_auth(app, signed_out(Some(Error::SignInExpired.to_string())));
                }
                Err(e) => {
                    let e = Error::from(e);
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
            }
        }
    }

    /// Applies a settings change, saves it and acts on it (start at login).
    pub fn change_setting(
        &self,
        app: &AppHandle,
        change: settings::Change,
    ) -> Result<settings::View> {
        let view = {
            let mut store = lock(&self.settings);
            store.apply(change).map_err(|e| match e {
                settings::SettingsError::Locked(key) => Error::SettingLocked(key.into()),
                settings::SettingsError::Invalid(url) => Error::InvalidServerUrl(url),
            })?;
            store
                .save(&self.settings_file)
                .map_err(|e| Error::Settings(e.to_string()))?;
            store.view()
        };
        apply_start_at_login(app, view.values.start_at_login);
        let _ = app.emit("settings", &view);
        Ok(view)
    }

    fn publish_feed(&self, app: &AppHandle) {
        let rows = self.requests();
        if let Some(tray) = app.try_state::<Tray>() {
            tray.show_pending(rows.len());
        }
        let _ = app.emit("requests", rows);
    }

    fn set_feed_status(&self, app: &AppHandle, status: &str) {
        let previous = std::mem::replace(&mut *lock(&self.feed_status), status.to_string());
        if previous != status {
            log::info!("request feed: {status}");
        }
        let _ = app.emit("feed-status", status);
    }

    /// Accepts a request. A lost race drops the row and says who won.
    pub async fn accept(&self, app: &AppHandle, id: Uuid) -> Result<Session> {
        let result = self
            .call(app, |api| async move { api.accept(id).await })
            .await;
        if matches!(result, Err(Error::AlreadyAccepted) | Ok(_)) {
            let removed = lock(&self.feed).remove(id);
            if removed != FeedChange::Unchanged {
                self.publish_feed(app);
            }
        }
        result
    }

    pub fn chats(&self) -> &tokio::sync::Mutex<HashMap<Uuid, ChatLink>> {
        &self.chats
    }

    fn navigate(&self, app: &AppHandle, to: Navigation) {
        *lock(&self.navigation) = Some(to);
        show_window(app);
        let _ = app.emit("navigate", to);
    }
}

/// Reconciles "start at login" with the setting; the OS entry is the autostart plugin's.
pub fn apply_start_at_login(app: &AppHandle, wanted: bool) {
    use tauri_plugin_autostart::ManagerExt;
    let launcher = app.autolaunch();
    let current = launcher.is_enabled().unwrap_or(false);
    if current == wanted {
        return;
    }
    let result = if wanted {
        launcher.enable()
    } else {
        launcher.disable()
    };
    if let Err(e) = result {
        log::warn!("could not change start at login to {wanted}: {e}");
    }
}

/// Keeps the access token fresh ahead of its expiry.
async fn run_refresh(app: AppHandle) {
    loop {
        let (expires_at, generation) = {
            let desk = desk(&app);
            let account = read(&desk.account);
            match account.as_ref() {
                Some(a) => (a.expires_at, a.generation),
                None => return,
            }
        };
        let life = expires_at.saturating_duration_since(Instant::now());
        // Never busy-loop, whatever lifetime the server hands out.
        let wait = life
            .saturating_sub(REFRESH_MARGIN)
            .max(
                life.mul_f32(0.8)
                    .min(life.saturating_sub(Duration::from_secs(5))),
            )
            .max(Duration::from_secs(1));
        tokio::time::sleep(wait).await;
        let result = desk(&app).refresh(&app, generation).await;
        match result {
            Ok(()) => {}
            Err(Error::NotSignedIn | Error::SignInExpired) => return,
            Err(e) => {
                log::warn!("token refresh failed, retrying: {e}");
                tokio::time::sleep(RETRY_AFTER).await;
            }
        }
    }
}

/// The request feed: subscribes to the `requests` topic, loads the list after every
/// (re)subscription, applies row changes, and notifies of new requests.
async fn run_feed(app: AppHandle, realtime: RealtimeClient) {
    let mut first = true;
    loop {
        let channel = realtime.channel(
            "requests",
            ChannelOptions {
                postgres_changes: vec![
                    PostgresChanges::new("*", "sessions").filter("status=eq.pending")
                ],
                presence_enabled: true,
                ..ChannelOptions::default()
            },
        );
        let mut events = channel.events();
        desk(&app).set_feed_status(&app, "connecting");
        if let Err(e) = channel.subscribe().await {
            log::warn!("request feed: join failed: {e}");
            desk(&app).set_feed_status(&app, "reconnecting");
            tokio::time::sleep(RESUBSCRIBE_AFTER).await;
            continue;
        }
        *lock(&desk(&app).requests_channel) = Some(channel.clone());
        track_availability(&app).await;
        desk(&app).set_feed_status(&app, "live");
        reload_feed(&app, !first).await;
        first = false;
        loop {
            use tokio::sync::broadcast::error::RecvError;
            match events.recv().await {
                Ok(ChannelEvent::PostgresChange(change)) if change.table == "sessions" => {
                    let desk = desk(&app);
                    let outcome = lock(&desk.feed).apply(
                        change.change_type.as_str(),
                        &change.record,
                        change.old_record.as_ref(),
                    );
                    match outcome {
                        FeedChange::Unchanged => {}
                        FeedChange::Added(session) => {
                            desk.publish_feed(&app);
                            notify_new(&app, &session);
                        }
                        _ => desk.publish_feed(&app),
                    }
                }
                Ok(ChannelEvent::Reconnecting) => desk(&app).set_feed_status(&app, "reconnecting"),
                Ok(ChannelEvent::Rejoined) => {
                    desk(&app).set_feed_status(&app, "live");
                    reload_feed(&app, true).await;
                }
                Ok(ChannelEvent::Closed { reason }) => {
                    log::warn!("request feed closed by the server: {reason}");
                    break;
                }
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => reload_feed(&app, true).await,
                Err(RecvError::Closed) => break,
            }
        }
        lock(&desk(&app).requests_channel).take();
        desk(&app).set_feed_status(&app, "reconnecting");
        tokio::time::sleep(RESUBSCRIBE_AFTER).await;
    }
}

/// Tracks the mechanic's availability on `requests` (again after a change; the client tracks it
/// again by itself after a rejoin).
async fn track_availability(app: &AppHandle) {
    let desk = desk(app);
    let _one_at_a_time = desk.tracking.lock().await;
    let channel = lock(&desk.requests_channel).clone();
    let (Some(channel), Ok(user)) = (channel, desk.me()) else {
        return;
    };
    let payload = desk.availability().presence(&user);
    if let Err(e) = channel.track(payload).await {
        log::warn!("could not share availability: {e}");
    }
}

/// Loads the offered requests; with `notify`, the ones not seen before are announced.
async fn reload_feed(app: &AppHandle, notify: bool) {
    let desk = desk(app);
    match desk
        .call(app, |api| async move { api.requests().await })
        .await
    {
        Ok(sessions) => {
            let added = lock(&desk.feed).replace(sessions);
            desk.publish_feed(app);
            if notify {
                for session in &added {
                    notify_new(app, session);
                }
            }
        }
        Err(e) => log::warn!("could not load the requests: {e}"),
    }
}

fn notify_new(app: &AppHandle, session: &Session) {
    let desk = desk(app);
    let settings = desk.settings();
    if desk.availability() == Availability::Away || !settings.notifications {
        log::info!(
            "request {} not notified (away or notifications off)",
            session.id
        );
        return;
    }
    crate::notify::new_request(app, session, settings.notification_sound);
}

/// Brings the main window forward (from the tray, a second launch, a notification).
pub fn show_window(app: &AppHandle) {
    if let Some(window) = app.get_webview_window("main") {
        let _ = window.show();
        let _ = window.unminimize();
        let _ = window.set_focus();
    }
}

pub fn set_availability(app: &AppHandle, availability: Availability) {
    let desk = desk(app);
    *lock(&desk.availability) = availability;
    if let Some(tray) = app.try_state::<Tray>() {
        tray.show_availability(availability);
    }
    log::info!("availability: {availability:?}");
    let _ = app.emit("availability", availability);
    let app = app.clone();
    tauri::async_runtime::spawn(async move { track_availability(&app).await });
}

/// A click on a request's notification.
pub fn open_request(app: &AppHandle, id: Uuid) {
    desk(app).navigate(app, Navigation::Request(id));
}

/// A `wrenchline://session/{id}` link.
pub fn open_session(app: &AppHandle, id: Uuid) {
    desk(app).navigate(app, Navigation::Session(id));
}

/// "Accept" on a request's notification: accepts, then opens the chat; a lost race says so.
pub fn accept_from_notification(app: &AppHandle, id: Uuid) {
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let desk = desk(&app);
        match desk.accept(&app, id).await {
            Ok(_) => desk.navigate(&app, Navigation::Session(id)),
            Err(e) => {
                show_window(&app);
                let _ = app.emit("notice", e.to_string());
            }
        }
    });
}
