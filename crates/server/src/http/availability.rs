//! How many mechanics are available right now, for the customer's pages: read from the presence
//! mechanics' desktop apps track on the `requests` topic (see `docs/realtime.md`), so it is as
//! fresh as the sockets and costs no database query.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use wrenchline_protocol::MechanicAvailability;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/availability", get(availability))
}

/// Never cached: a count from a minute ago would tell a customer someone is there who left.
#[utoipa::path(get, path = "/api/availability", tag = "customer", security(()),
    responses((status = 200, description = "Mechanics connected and not away, each counted once however many devices they use",
        body = MechanicAvailability,
        headers(("Cache-Control" = String, description = "no-store")))))]
pub async fn availability(State(state): State<AppState>) -> impl IntoResponse {
    let online = crate::presence::available_mechanics(&*state.presence)
        .await
        .unwrap_or_else(|_| state.hub.available_mechanics());
    (
        [(header::CACHE_CONTROL, "no-store")],
        Json(MechanicAvailability {
            mechanics_online: u32::try_from(online).unwrap_or(u32::MAX),
        }),
    )
}
