//! Sessions as mechanics and participants see them: the request feed, one session, accept, start
//! and end.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use uuid::Uuid;
use wrenchline_protocol::{ErrorBody, Session};

use crate::error::ApiError;
use crate::extract::{ApiPath, Caller};
use crate::lifecycle;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/requests", get(requests))
        .route("/api/sessions/{id}", get(session))
        .route("/api/sessions/{id}/accept", post(accept))
        .route("/api/sessions/{id}/start", post(start))
        .route("/api/sessions/{id}/end", post(end))
}

#[utoipa::path(get, path = "/api/requests", tag = "mechanic",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Offered requests, oldest first", body = [Session]),
        (status = 401, description = "unauthorized, invalid_token or token_expired", body = ErrorBody),
        (status = 403, description = "mechanics_only", body = ErrorBody),
        (status = 500, description = "internal", body = ErrorBody)))]
pub async fn requests(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<Session>>, ApiError> {
    caller.require_mechanic()?;
    Ok(Json(state.store.offered_sessions().await?))
}

#[utoipa::path(get, path = "/api/sessions/{id}", tag = "session",
    params(("id" = Uuid, Path, description = "Session id")),
    security(("bearer" = []), ("customer_cookie" = [])),
    responses(
        (status = 200, description = "The session, to its customer, its mechanic, or any mechanic while it is offered", body = Session),
        (status = 400, description = "invalid_id: the id in the path is not a UUID", body = ErrorBody),
        (status = 401, description = "unauthorized, invalid_token or token_expired", body = ErrorBody),
        (status = 404, description = "not_found: no such session, or not one this caller may see", body = ErrorBody),
        (status = 500, description = "internal", body = ErrorBody)))]
pub async fn session(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Session>, ApiError> {
    Ok(Json(lifecycle::readable(&state, &caller, id).await?))
}

#[utoipa::path(post, path = "/api/sessions/{id}/accept", tag = "mechanic",
    params(("id" = Uuid, Path, description = "Session id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Accepted: the session is waiting for both participants", body = Session),
        (status = 400, description = "invalid_id: the id in the path is not a UUID", body = ErrorBody),
        (status = 401, description = "unauthorized, invalid_token or token_expired", body = ErrorBody),
        (status = 403, description = "mechanics_only, or cross_origin", body = ErrorBody),
        (status = 404, description = "not_found: no such session offered to mechanics", body = ErrorBody),
        (status = 409, description = "already_accepted, with the current `session` when this mechanic may see it", body = ErrorBody),
        (status = 500, description = "internal", body = ErrorBody)))]
pub async fn accept(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Session>, ApiError> {
    Ok(Json(lifecycle::accept(&state, &caller, id).await?))
}

#[utoipa::path(post, path = "/api/sessions/{id}/start", tag = "session",
    params(("id" = Uuid, Path, description = "Session id")),
    security(("bearer" = []), ("customer_cookie" = [])),
    responses(
        (status = 200, description = "Live (idempotent)", body = Session),
        (status = 400, description = "invalid_id: the id in the path is not a UUID", body = ErrorBody),
        (status = 401, description = "unauthorized, invalid_token or token_expired", body = ErrorBody),
        (status = 403, description = "cross_origin: sent by a browser from another site", body = ErrorBody),
        (status = 404, description = "not_found: no such session of this participant", body = ErrorBody),
        (status = 409, description = "participants_not_present, with `missing`; or the session cannot start any more, with the current `session`", body = ErrorBody),
        (status = 500, description = "internal", body = ErrorBody)))]
pub async fn start(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Session>, ApiError> {
    let session = lifecycle::participating(&state, &caller, id).await?;
    Ok(Json(lifecycle::start(&state, session).await?))
}

#[utoipa::path(post, path = "/api/sessions/{id}/end", tag = "session",
    params(("id" = Uuid, Path, description = "Session id")),
    security(("bearer" = []), ("customer_cookie" = [])),
    responses(
        (status = 200, description = "Completed, or cancelled if it never went live", body = Session),
        (status = 400, description = "invalid_id: the id in the path is not a UUID", body = ErrorBody),
        (status = 401, description = "unauthorized, invalid_token or token_expired", body = ErrorBody),
        (status = 403, description = "cross_origin: sent by a browser from another site", body = ErrorBody),
        (status = 404, description = "not_found: no such session of this participant", body = ErrorBody),
        (status = 409, description = "The session has already ended, with the current `session`", body = ErrorBody),
        (status = 500, description = "internal", body = ErrorBody)))]
pub async fn end(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Session>, ApiError> {
    Ok(Json(lifecycle::end(&state, &caller, id).await?))
}
