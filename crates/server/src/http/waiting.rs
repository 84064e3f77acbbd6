//! The waiting room of an offered request: its place in line, the expected wait (the moving
//! average of recent offered→accepted times, see `wrenchline_protocol::waiting`) and the
//! mechanics available, for the customer's page to poll while the request waits.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use uuid::Uuid;
use wrenchline_protocol::waiting::{expected_wait, wait_ewma, WAITING_ROOM_REFRESH_SECONDS};
use wrenchline_protocol::{ErrorBody, WaitingRoom};

use crate::error::ApiError;
use crate::extract::{ApiPath, Caller};
use crate::lifecycle;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/sessions/{id}/waiting-room", get(waiting_room))
}

#[utoipa::path(get, path = "/api/sessions/{id}/waiting-room", tag = "session",
    params(("id" = Uuid, Path, description = "Session id")),
    security(("bearer" = []), ("customer_cookie" = [])),
    responses(
        (status = 200, description = "The request's place in line, expected wait and the mechanics available; never cached",
            body = WaitingRoom, headers(("Cache-Control" = String, description = "no-store"))),
        (status = 400, description = "invalid_id: the id in the path is not a UUID", body = ErrorBody),
        (status = 401, description = "unauthorized, invalid_token or token_expired", body = ErrorBody),
        (status = 404, description = "not_found: no such session of this participant", body = ErrorBody),
        (status = 500, description = "internal", body = ErrorBody)))]
pub async fn waiting_room(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<impl IntoResponse, ApiError> {
    let session = lifecycle::participating(&state, &caller.actor(), id).await?;
    let ahead = state.store.requests_ahead(id).await?;
    let typical = wait_ewma(&state.store.recent_accept_waits().await?)
        .map(|s| s.round().clamp(0.0, f64::from(u32::MAX)) as u32);
    let mechanics_online = crate::availability::mechanics_online(&state).await?;
    let usually_online_at = if mechanics_online == 0 && ahead.is_some() {
        crate::availability::usually_online_at(&state).await?
    } else {
        None
    };
    let room = WaitingRoom {
        session_id: id,
        status: session.status,
        ahead,
        typical_wait_seconds: typical,
        expected_wait_seconds: ahead.zip(typical).map(|(a, t)| expected_wait(t, a)),
        mechanics_online,
        usually_online_at,
        refresh_seconds: WAITING_ROOM_REFRESH_SECONDS,
    };
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(room)))
}
