//! The realtime server at `/realtime/v1/websocket`: the Supabase Realtime protocol over
//! WebSocket (see `docs/realtime-protocol.md`), with Wrenchline's topics and rules. It publishes
//! committed row changes as `postgres_changes`, keeps presence per connection, and starts a
//! session itself once both of its participants are present. Connections of accounts disabled
//! meanwhile (by another process, through the database) are cut off within a minute.

pub mod broadcast_api;
pub mod bus;
pub mod changes;
pub mod hub;
pub mod policy;
pub mod rates;
pub mod socket;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::WebSocketUpgrade;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use uuid::Uuid;
use wrenchline_protocol::realtime::topics::Topic;
use wrenchline_protocol::realtime::Vsn;
use wrenchline_protocol::{Role, SessionStatus};

pub use hub::Hub;

use crate::error::ApiError;
use crate::extract::{ApiQuery, ClientAddr};
use crate::lifecycle;
use crate::state::AppState;

/// How often the server looks in the database for disabled accounts that still hold channels.
pub const ACCOUNT_CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(15);

/// Socket buffers: tungstenite's defaults (128 KiB reads) would cost more than everything else a
/// connection holds. The read buffer is held for the connection's life, so it is sized for the
/// frames a client sends (heartbeats, joins, chat broadcasts: well under 1 KiB); a larger frame
/// grows it while it is read, in reads of this size. The write buffer is only how much is
/// gathered before a write, and is capped at `MAX_WRITE_BUFFER`.
const READ_BUFFER: usize = 1024;
const WRITE_BUFFER: usize = 4 * 1024;
const MAX_WRITE_BUFFER: usize = 512 * 1024;
/// Largest WebSocket message (and frame) a client may send; payload limits sit below it.
pub const MAX_FRAME_BYTES: usize = 256 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/realtime/v1/websocket", get(upgrade))
        .route("/realtime/v1/api/broadcast", post(broadcast_api::broadcast))
}

/// The socket URL's query. realtime-js always adds an `apikey`; Wrenchline reads no credential
/// from the URL (URLs end up in logs), so its value is ignored: every join carries its token.
#[derive(Debug, Deserialize)]
pub struct ConnectQuery {
    vsn: Option<String>,
}

async fn upgrade(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    ApiQuery(query): ApiQuery<ConnectQuery>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let Some(vsn) = Vsn::parse(query.vsn.as_deref()) else {
        return ApiError::BadRequest {
            code: "unsupported_vsn",
            message: "vsn must be 1.0.0 or 2.0.0".into(),
        }
        .into_response();
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => {
            return ApiError::BadRequest {
                code: "websocket_required",
                message: rejection.body_text(),
            }
            .into_response()
        }
    };
    let Some(slot) = state.limiters.connect(client).await else {
        return ApiError::TooManyRequests {
            message: "Too many connections from this address".into(),
            retry_after: std::time::Duration::from_secs(5),
        }
        .into_response();
    };
    ws.read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
        .max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .on_upgrade(move |socket| async move {
            let (sink, stream) = futures_util::StreamExt::split(socket);
            socket::run(sink, stream, state, vsn).await;
            drop(slot);
        })
}

/// Moves a waiting session to live when both participants are present. Called when a user
/// becomes present on a session's presence topic and when a session becomes `waiting`, so the
/// order in which the two arrive does not matter. One check per session runs at a time (a
/// check asked for meanwhile runs once after it), and the database is read only when the start
/// could happen: the session is not known to be anything but `waiting`, and two people are
/// present (only the session's participants may be).
pub async fn evaluate_start(state: AppState, session_id: Uuid) {
    if !state.hub.begin_start_check(session_id) {
        return;
    }
    loop {
        check_start(&state, session_id).await;
        if !state.hub.end_start_check(session_id) {
            break;
        }
    }
}

async fn check_start(state: &AppState, session_id: Uuid) {
    let topic = Topic::SessionPresence(session_id);
    let local = state.hub.topic(&topic.full());
    if !state.hub.is_clustered() && local.is_none() {
        return;
    }
    if local
        .as_ref()
        .and_then(|presence| presence.known_status())
        .is_some_and(|s| s != SessionStatus::Waiting)
    {
        return;
    }
    // In a cluster this node's own presence writes are in the shared presence before it is
    // read, so of two participants tracking at once on two nodes, the later read sees both.
    state.hub.flushed().await;
    match crate::presence::present_users(&*state.presence, topic).await {
        Ok(users) if users.len() >= 2 => {}
        _ => return,
    }
    state.hub.count_start_read();
    let session = match state.store.session(session_id).await {
        Ok(Some(session)) => session,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(error = %e, %session_id, "live-start check failed");
            return;
        }
    };
    if let Some(presence) = &local {
        presence.note_read_status(session.status);
    }
    if session.status != SessionStatus::Waiting {
        return;
    }
    match crate::presence::participants(&*state.presence, &session).await {
        Ok(participants) if participants.both() => {}
        _ => return,
    }
    match lifecycle::start(state, session).await {
        Ok(live) => {
            tracing::info!(session_id = %live.id, "both participants present: session is live")
        }
        Err(e) => tracing::debug!(%session_id, error = %e, "live start not taken"),
    }
}

/// Until the server stops: cuts off the connections of mechanics whose account was disabled
/// (`wrenchline-server mechanic disable` runs in another process, so the database says so), and
/// lets the per-user rate counters forget idle users.
pub async fn watch_accounts(state: AppState) {
    let mut tick = tokio::time::interval(ACCOUNT_CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        state.hub.rates.forget_idle();
        let subscribed = state.hub.subscribed_users(Role::Mechanic);
        if subscribed.is_empty() {
            continue;
        }
        let disabled = match state.store.disabled_mechanics().await {
            Ok(disabled) => disabled,
            Err(e) => {
                tracing::warn!(error = %e, "disabled-account check failed");
                continue;
            }
        };
        let gone: std::collections::HashSet<Uuid> = disabled
            .into_iter()
            .filter(|id| subscribed.contains(id))
            .collect();
        if !gone.is_empty() {
            let cut = state.hub.cut_off_users(&gone, hub::Cut::AccountDisabled);
            tracing::info!(
                accounts = gone.len(),
                connections = cut,
                "disabled accounts' realtime connections closed"
            );
        }
    }
}
