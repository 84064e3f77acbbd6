//! The commands the UI may invoke (those about attachments are `media`'s): thin wrappers over
//! [`Desk`] and the mechanic's session, each
//! returning `Result<T, Error>` so failures reach the UI as `{code, message}`. Each one is named
//! in build.rs (which generates its `allow-…` permission) and granted in tauri.conf.json's
//! capability. Argument names are snake_case, like the wire.

use serde::Serialize;
use tauri::{AppHandle, State};
use uuid::Uuid;
use wrenchline_client::mechanic::SessionRecord;
use wrenchline_client::Sensitive;
use wrenchline_desk_core::credentials::StoreStatus;
use wrenchline_desk_core::view::{AuthView, Navigation, UpdateView};
use wrenchline_desk_core::{launch, settings};
use wrenchline_protocol::presence::Availability;
use wrenchline_protocol::{
    HistoryEntry, MechanicNotes, MechanicSummary, Message, Session, SummaryRequest, User,
};

use crate::desk::Desk;
use crate::error::{Error, Result};
use crate::intents::{Intent, Intents};
use crate::updates::{self, Updates};

/// When the process started, for the "launch to interactive" figure the log reports.
static LAUNCHED: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

/// Notes the launch time; call first thing.
pub fn mark_launch() {
    LAUNCHED.get_or_init(std::time::Instant::now);
}

/// Everything the shell needs at load, in one call (events keep it current afterwards).
#[derive(Debug, Serialize)]
pub struct AppState {
    auth: AuthView,
    credential_store: StoreStatus,
    availability: Availability,
    feed_status: &'static str,
    settings: settings::View,
    update: UpdateView,
    version: &'static str,
    /// `make run`'s demo mechanic, to pre-fill the sign-in (debug builds only).
    demo_sign_in: Option<launch::DemoSignIn>,
}

#[tauri::command(rename_all = "snake_case")]
pub fn app_state(app: AppHandle, desk: State<'_, Desk>, updates: State<'_, Updates>) -> AppState {
    static FIRST: std::sync::Once = std::sync::Once::new();
    FIRST.call_once(|| {
        let ms = LAUNCHED.get().map_or(0, |t| t.elapsed().as_millis());
        log::info!("ui ready {ms} ms after launch");
    });
    AppState {
        auth: desk.auth(),
        credential_store: desk.credential_store(),
        availability: desk.availability(),
        feed_status: desk
            .session()
            .map_or("connecting", |s| s.feed_status().as_str()),
        settings: desk.settings_view(),
        update: updates.view(&app),
        version: env!("CARGO_PKG_VERSION"),
        demo_sign_in: launch::demo_sign_in(
            cfg!(debug_assertions),
            std::env::var(launch::DEMO_SIGN_IN_ENV).ok().as_deref(),
        ),
    }
}

#[tauri::command(rename_all = "snake_case")]
pub async fn sign_in(
    app: AppHandle,
    desk: State<'_, Desk>,
    server_url: String,
    email: String,
    password: String,
) -> Result<User> {
    let started = desk
        .sign_in(&app, &server_url, &email, Sensitive::new(password))
        .await?;
    let user = started.user.clone();
    crate::events::forward(&app, started);
    Ok(user)
}

#[tauri::command(rename_all = "snake_case")]
pub async fn sign_out(app: AppHandle, desk: State<'_, Desk>) -> Result<()> {
    desk.sign_out(&app).await
}

#[tauri::command(rename_all = "snake_case")]
pub fn me(desk: State<'_, Desk>) -> Result<User> {
    Ok(desk.session()?.user().clone())
}

#[tauri::command(rename_all = "snake_case")]
pub fn requests(desk: State<'_, Desk>) -> Vec<Session> {
    desk.session().map(|s| s.requests()).unwrap_or_default()
}

#[tauri::command(rename_all = "snake_case")]
pub async fn accept(desk: State<'_, Desk>, id: Uuid) -> Result<Session> {
    Ok(desk.session()?.accept(id).await?)
}

#[tauri::command(rename_all = "snake_case")]
pub fn set_availability(intents: State<'_, Intents>, availability: Availability) {
    intents.send(Intent::SetAvailability(availability));
}

#[tauri::command(rename_all = "snake_case")]
pub fn change_setting(
    app: AppHandle,
    desk: State<'_, Desk>,
    change: settings::Change,
) -> Result<settings::View> {
    let turns_updates_on = change == settings::Change::Updates(true);
    let view = desk.change_setting(&app, change)?;
    if turns_updates_on {
        let app = app.clone();
        tauri::async_runtime::spawn(async move {
            if let Err(e) = updates::check(&app).await {
                log::info!("no update check: {e}");
            }
        });
    }
    Ok(view)
}

#[tauri::command(rename_all = "snake_case")]
pub async fn check_for_update(app: AppHandle) -> Result<UpdateView> {
    updates::check(&app).await
}

/// Downloads, verifies and installs the update the last check found.
#[tauri::command(rename_all = "snake_case")]
pub async fn install_update(app: AppHandle) -> Result<UpdateView> {
    updates::install(&app).await
}

/// Restarts into the installed update.
#[tauri::command(rename_all = "snake_case")]
pub fn restart_app(app: AppHandle) {
    log::info!("restarting for the update");
    app.restart();
}

#[tauri::command(rename_all = "snake_case")]
pub fn take_navigation(desk: State<'_, Desk>) -> Option<Navigation> {
    desk.take_navigation()
}

#[tauri::command(rename_all = "snake_case")]
pub async fn session(desk: State<'_, Desk>, id: Uuid) -> Result<Session> {
    let session = desk.session()?;
    Ok(session
        .call(|api| async move { api.session(id).await })
        .await?)
}

#[tauri::command(rename_all = "snake_case")]
pub async fn messages(desk: State<'_, Desk>, id: Uuid, after: i64) -> Result<Vec<Message>> {
    let session = desk.session()?;
    Ok(session
        .call(|api| async move { api.messages(id, after).await })
        .await?)
}

#[tauri::command(rename_all = "snake_case")]
pub async fn send_message(
    desk: State<'_, Desk>,
    id: Uuid,
    body: String,
    client_id: String,
    attachment_ids: Option<Vec<Uuid>>,
) -> Result<Message> {
    let ids = attachment_ids.unwrap_or_default();
    Ok(desk.session()?.send(id, &client_id, &body, &ids).await?)
}

#[tauri::command(rename_all = "snake_case")]
pub async fn start_session(desk: State<'_, Desk>, id: Uuid) -> Result<Session> {
    let session = desk.session()?;
    Ok(session
        .call(|api| async move { api.start(id).await })
        .await?)
}

#[tauri::command(rename_all = "snake_case")]
pub async fn end_session(desk: State<'_, Desk>, id: Uuid) -> Result<Session> {
    let session = desk.session()?;
    Ok(session.call(|api| async move { api.end(id).await }).await?)
}

/// Joins the session's topics (once; a second call re-sends the presence state).
#[tauri::command(rename_all = "snake_case")]
pub async fn open_chat(desk: State<'_, Desk>, id: Uuid) -> Result<()> {
    desk.session()?.open_chat(id).await;
    Ok(())
}

/// Leaves the session's topics: the mechanic is no longer present there.
#[tauri::command(rename_all = "snake_case")]
pub async fn close_chat(desk: State<'_, Desk>, id: Uuid) -> Result<()> {
    desk.session()?.close_chat(id).await;
    Ok(())
}

#[tauri::command(rename_all = "snake_case")]
pub async fn typing(desk: State<'_, Desk>, id: Uuid) -> Result<()> {
    Ok(desk.session()?.typing(id).await?)
}

/// The server's clock (`GET /api/time`), for the countdown's offset.
#[tauri::command(rename_all = "snake_case")]
pub async fn server_time(desk: State<'_, Desk>) -> Result<String> {
    let time = desk.session()?.server_time().await?;
    time.now
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| Error::Internal(e.to_string()))
}

#[tauri::command(rename_all = "snake_case")]
pub async fn history(
    desk: State<'_, Desk>,
    q: String,
    after: Option<Uuid>,
) -> Result<Vec<HistoryEntry>> {
    Ok(desk.session()?.history(&q, after).await?)
}

#[tauri::command(rename_all = "snake_case")]
pub async fn session_record(desk: State<'_, Desk>, id: Uuid) -> Result<SessionRecord> {
    Ok(desk.session()?.session_record(id).await?)
}

#[tauri::command(rename_all = "snake_case")]
pub async fn write_summary(
    desk: State<'_, Desk>,
    id: Uuid,
    summary: SummaryRequest,
) -> Result<MechanicSummary> {
    Ok(desk.session()?.write_summary(id, summary).await?)
}

#[tauri::command(rename_all = "snake_case")]
pub async fn write_notes(desk: State<'_, Desk>, id: Uuid, body: String) -> Result<MechanicNotes> {
    Ok(desk.session()?.write_notes(id, &body).await?)
}
