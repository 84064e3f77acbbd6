//! The two loops that connect the app to the outside: one forwards what the mechanic's session
//! reports ([`MechanicEvent`]) to the UI (events `requests`, `feed-status`, `availability`,
//! `session-event`), the tray, notifications and the keyring; the other acts on the
//! [`Intent`]s of the tray, notifications, deep links and second launches.

use tauri::{AppHandle, Emitter, Manager};
use wrenchline_client::{ChatEvent, MechanicEvent};
use wrenchline_desk_core::view::Navigation;
use wrenchline_protocol::presence::Availability;
use wrenchline_protocol::{Message, Session};

use crate::desk::{desk, Started};
use crate::error::Error;
use crate::intents::{Intent, Intents};
use crate::tray::Tray;
use crate::ui;

/// Forwards a session's events until it ends.
pub fn forward(app: &AppHandle, started: Started) {
    let Started {
        server,
        mut events,
        number,
        ..
    } = started;
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        while let Some(event) = events.recv().await {
            match event {
                MechanicEvent::StoreRefreshToken(token) => {
                    if let Err(e) = desk(&app).credentials().save(&server, &token) {
                        log::warn!("could not store the refresh token: {e}");
                    }
                }
                MechanicEvent::SignedOut => {
                    log::warn!("the server refused the refresh token; signing out");
                    desk(&app).sign_in_expired(&app, server, number).await;
                    return;
                }
                MechanicEvent::FeedStatus(status) => {
                    log::info!("request feed: {}", status.as_str());
                    let _ = app.emit("feed-status", status.as_str());
                }
                MechanicEvent::Requests(rows) => ui::show_requests(&app, rows),
                MechanicEvent::NewRequest(session) => notify_new(&app, &session),
                MechanicEvent::Availability(availability) => {
                    if let Some(tray) = app.try_state::<Tray>() {
                        tray.show_availability(availability);
                    }
                    log::info!("availability: {availability:?}");
                    let _ = app.emit("availability", availability);
                }
                MechanicEvent::Chat(event) => {
                    if let ChatEvent::Message { message, .. } = &event {
                        notify_message(&app, message);
                    }
                    let _ = app.emit("session-event", event);
                }
            }
        }
    });
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
    let intents = app.state::<Intents>().inner().clone();
    crate::notify::new_request(session, settings.notification_sound, intents);
}

/// A message from the customer while the window is not in front: a notification, named after
/// the customer (read from the session).
fn notify_message(app: &AppHandle, message: &serde_json::Value) {
    let Ok(message) = serde_json::from_value::<Message>(message.clone()) else {
        return;
    };
    let desk = desk(app);
    let settings = desk.settings();
    let Ok(session) = desk.session() else { return };
    let in_front = app
        .get_webview_window("main")
        .is_some_and(|w| w.is_visible().unwrap_or(false) && w.is_focused().unwrap_or(false));
    if message.sender_id == session.user().id || !settings.notifications || in_front {
        return;
    }
    let intents = app.state::<Intents>().inner().clone();
    let sound = settings.notification_sound;
    tauri::async_runtime::spawn(async move {
        let id = message.session_id;
        let from = session
            .call(|api| async move { api.session(id).await })
            .await
            .map_or_else(|_| "your customer".to_string(), |s| s.customer_name);
        crate::notify::new_message(message, from, sound, intents);
    });
}

/// Acts on intents until the app ends.
pub fn run_intents(app: &AppHandle, mut intents: tokio::sync::mpsc::UnboundedReceiver<Intent>) {
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        while let Some(intent) = intents.recv().await {
            match intent {
                Intent::ShowWindow => ui::show_window(&app),
                Intent::OpenRequest(id) => desk(&app).navigate(&app, Navigation::Request(id)),
                Intent::OpenSession(id) => desk(&app).navigate(&app, Navigation::Session(id)),
                Intent::Accept(id) => {
                    let app = app.clone();
                    tauri::async_runtime::spawn(async move { accept(&app, id).await });
                }
                Intent::SetAvailability(availability) => {
                    desk(&app).set_availability(availability);
                    if let Some(tray) = app.try_state::<Tray>() {
                        tray.show_availability(availability);
                    }
                    let _ = app.emit("availability", availability);
                }
                Intent::Quit => app.exit(0),
            }
        }
    });
}

/// "Accept" on a notification: accepts, then opens the chat; a lost race says so.
async fn accept(app: &AppHandle, id: uuid::Uuid) {
    let result = match desk(app).session() {
        Ok(session) => session.accept(id).await.map_err(Error::from),
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => desk(app).navigate(app, Navigation::Session(id)),
        Err(e) => {
            ui::show_window(app);
            let _ = app.emit("notice", e.to_string());
        }
    }
}
