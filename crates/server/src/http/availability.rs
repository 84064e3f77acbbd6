//! How many mechanics are available right now, for the customer's pages: the shared count of
//! `crate::availability` (mechanics' presence on the `requests` topic, as every node wrote it).

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use wrenchline_protocol::MechanicAvailability;

use crate::error::ApiError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/availability", get(availability))
}

/// Never cached: a count from a minute ago would tell a customer someone is there who left.
#[utoipa::path(get, path = "/api/availability", tag = "customer", security(()),
    responses((status = 200, description = "Mechanics connected and not away, each counted once however many devices they use",
        body = MechanicAvailability,
        headers(("Cache-Control" = String, description = "no-store"))),
        (status = 500, description = "internal", body = wrenchline_protocol::ErrorBody)))]
pub async fn availability(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let mechanics_online = crate::availability::mechanics_online(&state).await?;
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        Json(MechanicAvailability { mechanics_online }),
    ))
}
