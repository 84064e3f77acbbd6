//! The realtime server at `/realtime/v1/websocket`: the Supabase Realtime protocol over
//! WebSocket (see `docs/realtime-protocol.md`), with Wrenchline's topics and rules. It publishes
//! committed row changes as `postgres_changes`, keeps presence per connection, and starts a
//! session itself once both of its participants are present.

pub mod changes;
pub mod hub;
pub mod socket;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::WebSocketUpgrade;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use uuid::Uuid;
use wrenchline_protocol::realtime::Vsn;
use wrenchline_protocol::SessionStatus;

pub use hub::Hub;

use crate::error::ApiError;
use crate::extract::{ApiQuery, ClientAddr};
use crate::lifecycle::{self, PresenceView};
use crate::state::AppState;

/// Socket buffers: tungstenite's defaults (128 KiB reads) would cost more than everything else a
/// connection holds.
const READ_BUFFER: usize = 4 * 1024;
const WRITE_BUFFER: usize = 4 * 1024;
const MAX_WRITE_BUFFER: usize = 512 * 1024;
/// Largest WebSocket message (and frame) a client may send; payload limits sit below it.
pub const MAX_FRAME_BYTES: usize = 256 * 1024;

pub fn router() -> Router<AppState> {
    Router::new().route("/realtime/v1/websocket", get(upgrade))
}

#[derive(Debug, Deserialize)]
pub struct ConnectQuery {
    vsn: Option<String>,
    apikey: Option<String>,
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
    let Some(slot) = state.limiters.connect(client) else {
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
            socket::run(socket, state, vsn, query.apikey).await;
            drop(slot);
        })
}

/// Moves a waiting session to live when both participants are present. Called after every track
/// on a session's presence topic and after every accept, so the order in which the two arrive
/// does not matter.
pub async fn evaluate_start(state: AppState, session_id: Uuid) {
    let session = match state.store.session(session_id).await {
        Ok(Some(session)) => session,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(error = %e, %session_id, "live-start check failed");
            return;
        }
    };
    if session.status != SessionStatus::Waiting || !state.hub.participants(&session).both() {
        return;
    }
    match lifecycle::start(&state, session).await {
        Ok(live) => {
            tracing::info!(session_id = %live.id, "both participants present: session is live")
        }
        Err(e) => tracing::debug!(%session_id, error = %e, "live start not taken"),
    }
}
