//! Sessions as mechanics and participants see them: the request feed (paged by a cursor), one
//! session, accept, start and end.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use utoipa::openapi::schema::{Object, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::KnownFormat;
use uuid::Uuid;
use wrenchline_protocol::{ErrorBody, Session};

use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery, Caller};
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

/// Requests one page of the feed holds unless `limit` asks for fewer.
pub const REQUESTS_PAGE_DEFAULT: i64 = 100;
/// Most requests one page holds.
pub const REQUESTS_PAGE_MAX: i64 = 500;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RequestsQuery {
    /// The cursor: the `id` of the last request of the previous page. The page holds the requests
    /// that come after it, oldest first (by `created_at`, then `id`), whether or not that request
    /// is still offered. Leave it out for the first page.
    pub after: Option<Uuid>,
    /// At most this many (1–500, default 100). A page shorter than `limit` is the last one.
    #[param(schema_with = requests_limit_schema)]
    pub limit: Option<i64>,
}

fn requests_limit_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        .minimum(Some(1))
        .maximum(Some(REQUESTS_PAGE_MAX))
        .default(Some(REQUESTS_PAGE_DEFAULT.into()))
        .build()
}

#[utoipa::path(get, path = "/api/requests", tag = "mechanic",
    params(RequestsQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Offered requests, oldest first: a plain array of at most `limit`; for the next page pass the last one's `id` as `after`", body = [Session]),
        (status = 400, description = "invalid_query: `limit` out of range or not an integer, `after` not a UUID, or `after` names no session", body = ErrorBody),
        (status = 401, description = "unauthorized, invalid_token or token_expired", body = ErrorBody),
        (status = 403, description = "mechanics_only", body = ErrorBody),
        (status = 500, description = "internal", body = ErrorBody)))]
pub async fn requests(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<RequestsQuery>,
) -> Result<Json<Vec<Session>>, ApiError> {
    caller.require_mechanic()?;
    let limit = query.limit.unwrap_or(REQUESTS_PAGE_DEFAULT);
    if !(1..=REQUESTS_PAGE_MAX).contains(&limit) {
        return Err(ApiError::BadRequest {
            code: "invalid_query",
            message: format!("`limit` must be between 1 and {REQUESTS_PAGE_MAX}"),
        });
    }
    match state.store.offered_sessions(query.after, limit).await? {
        Some(page) => Ok(Json(page)),
        None => Err(ApiError::BadRequest {
            code: "invalid_query",
            message: "`after` must be the id of a request from an earlier page".into(),
        }),
    }
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
    Ok(Json(
        lifecycle::readable(&state, &caller.actor(), id).await?,
    ))
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
    Ok(Json(lifecycle::accept(&state, &caller.actor(), id).await?))
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
    let session = lifecycle::participating(&state, &caller.actor(), id).await?;
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
    Ok(Json(lifecycle::end(&state, &caller.actor(), id).await?))
}
