//! What a session leaves behind, over HTTP: the customer's rating (once per session, changeable
//! for `--rating-edit-window`), the mechanic's summary for the customer, the mechanic's private
//! notes (never answered to anyone else), the outcome the completed page shows, and the
//! mechanic's searchable history.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use utoipa::openapi::schema::{Object, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::KnownFormat;
use uuid::Uuid;
use wrenchline_protocol::{
    ErrorBody, HistoryEntry, MechanicNotes, MechanicSummary, NotesRequest, Rating, RatingRequest,
    Role, Session, SessionOutcome, SessionStatus, SummaryRequest,
};

use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery, Caller};
use crate::lifecycle;
use crate::state::AppState;
use crate::storage::RatingSaved;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/sessions/{id}/outcome", get(outcome))
        .route("/api/sessions/{id}/rating", axum::routing::put(rate))
        .route(
            "/api/sessions/{id}/summary",
            axum::routing::put(write_summary),
        )
        .route("/api/sessions/{id}/notes", get(notes).put(write_notes))
        .route("/api/mechanics/me/sessions", get(history))
}

/// Sessions one history page holds unless `limit` asks for fewer.
pub const SESSIONS_PAGE_DEFAULT: i64 = 20;
/// Most sessions one history page holds.
pub const SESSIONS_PAGE_MAX: i64 = 100;
/// Longest search text.
pub const SESSIONS_SEARCH_MAX: usize = 200;

/// The session's assigned mechanic, once accepted (summary and notes can be written during the
/// session and after it).
async fn assigned_mechanic(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
) -> Result<Session, ApiError> {
    caller.require_mechanic()?;
    let session = lifecycle::participating(state, &caller.actor(), id).await?;
    if session.status == SessionStatus::Pending {
        return Err(ApiError::conflict(
            "not_accepted",
            "No mechanic has accepted this request yet",
            Some(session),
        ));
    }
    Ok(session)
}

#[utoipa::path(get, path = "/api/sessions/{id}/outcome", tag = "session",
    params(("id" = Uuid, Path, description = "Session id")),
    security(("bearer" = []), ("customer_cookie" = [])),
    responses(
        (status = 200, description = "The mechanic's summary and the customer's rating, each null until written; never the mechanic's private notes", body = SessionOutcome),
        (status = 400, description = "invalid_id: the id in the path is not a UUID", body = ErrorBody),
        (status = 401, description = "unauthorized, invalid_token or token_expired", body = ErrorBody),
        (status = 404, description = "not_found: no such session of this participant", body = ErrorBody),
        (status = 500, description = "internal", body = ErrorBody)))]
pub async fn outcome(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<SessionOutcome>, ApiError> {
    let session = lifecycle::participating(&state, &caller.actor(), id).await?;
    let window = state.settings.rating_edit_window;
    let rating = state.store.rating(id, window).await?;
    let can_rate = caller.role() == Role::Customer
        && session.status == SessionStatus::Completed
        && rating
            .as_ref()
            .is_none_or(|r| state.now() < r.editable_until);
    Ok(Json(SessionOutcome {
        session_id: id,
        summary: state.store.summary(id).await?,
        rating,
        can_rate,
    }))
}

#[utoipa::path(put, path = "/api/sessions/{id}/rating", tag = "customer",
    params(("id" = Uuid, Path, description = "Session id")),
    request_body = RatingRequest,
    security(("customer_cookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Rated, or the rating changed (within the change window after the first rating)", body = Rating),
        (status = 400, description = "invalid_id or invalid_json", body = ErrorBody),
        (status = 413, description = "body_too_large", body = ErrorBody),
        (status = 401, description = "unauthorized, invalid_token or token_expired", body = ErrorBody),
        (status = 403, description = "customers_only: the mechanic cannot rate; or cross_origin", body = ErrorBody),
        (status = 404, description = "not_found: no such session of this customer", body = ErrorBody),
        (status = 409, description = "session_not_completed: only a completed session is rated; rating_locked: the change window has closed", body = ErrorBody),
        (status = 415, description = "unsupported_media_type: the body is not sent as JSON", body = ErrorBody),
        (status = 422, description = "validation_failed: `stars` not 1–5, or the comment too long", body = ErrorBody),
        (status = 500, description = "internal", body = ErrorBody)))]
pub async fn rate(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<RatingRequest>,
) -> Result<Json<Rating>, ApiError> {
    caller.require_customer()?;
    let session = lifecycle::participating(&state, &caller.actor(), id).await?;
    let rating = body.check().map_err(ApiError::validation)?;
    if session.status != SessionStatus::Completed {
        return Err(ApiError::conflict(
            "session_not_completed",
            "Only a completed session can be rated",
            Some(session),
        ));
    }
    let window = state.settings.rating_edit_window;
    match state
        .store
        .save_rating(id, caller.user.id, &rating, window, state.now())
        .await?
    {
        RatingSaved::Saved(rating) => Ok(Json(rating)),
        RatingSaved::Locked(_) => Err(ApiError::conflict(
            "rating_locked",
            format!(
                "This session was rated more than {} hours ago; the rating can no longer be changed",
                window.whole_hours()
            ),
            None,
        )),
    }
}

#[utoipa::path(put, path = "/api/sessions/{id}/summary", tag = "mechanic",
    params(("id" = Uuid, Path, description = "Session id")),
    request_body = SummaryRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The summary for the customer, written or replaced", body = MechanicSummary),
        (status = 400, description = "invalid_id or invalid_json", body = ErrorBody),
        (status = 413, description = "body_too_large", body = ErrorBody),
        (status = 401, description = "unauthorized, invalid_token or token_expired", body = ErrorBody),
        (status = 403, description = "mechanics_only, or cross_origin", body = ErrorBody),
        (status = 404, description = "not_found: no such session of this mechanic", body = ErrorBody),
        (status = 409, description = "not_accepted: nobody has accepted the request yet", body = ErrorBody),
        (status = 415, description = "unsupported_media_type: the body is not sent as JSON", body = ErrorBody),
        (status = 422, description = "validation_failed", body = ErrorBody),
        (status = 500, description = "internal", body = ErrorBody)))]
pub async fn write_summary(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<SummaryRequest>,
) -> Result<Json<MechanicSummary>, ApiError> {
    assigned_mechanic(&state, &caller, id).await?;
    let summary = body.check().map_err(ApiError::validation)?;
    Ok(Json(
        state
            .store
            .save_summary(id, caller.user.id, &summary, state.now())
            .await?,
    ))
}

#[utoipa::path(get, path = "/api/sessions/{id}/notes", tag = "mechanic",
    params(("id" = Uuid, Path, description = "Session id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "This mechanic's private notes (empty `body` when none)", body = MechanicNotes),
        (status = 400, description = "invalid_id", body = ErrorBody),
        (status = 401, description = "unauthorized, invalid_token or token_expired", body = ErrorBody),
        (status = 403, description = "mechanics_only: the customer never sees them", body = ErrorBody),
        (status = 404, description = "not_found: no such session of this mechanic", body = ErrorBody),
        (status = 409, description = "not_accepted: nobody has accepted the request yet", body = ErrorBody),
        (status = 500, description = "internal", body = ErrorBody)))]
pub async fn notes(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<MechanicNotes>, ApiError> {
    assigned_mechanic(&state, &caller, id).await?;
    Ok(Json(state.store.notes(id, caller.user.id).await?))
}

#[utoipa::path(put, path = "/api/sessions/{id}/notes", tag = "mechanic",
    params(("id" = Uuid, Path, description = "Session id")),
    request_body = NotesRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The notes as stored (a blank body deletes them)", body = MechanicNotes),
        (status = 400, description = "invalid_id or invalid_json", body = ErrorBody),
        (status = 413, description = "body_too_large", body = ErrorBody),
        (status = 401, description = "unauthorized, invalid_token or token_expired", body = ErrorBody),
        (status = 403, description = "mechanics_only, or cross_origin", body = ErrorBody),
        (status = 404, description = "not_found: no such session of this mechanic", body = ErrorBody),
        (status = 409, description = "not_accepted: nobody has accepted the request yet", body = ErrorBody),
        (status = 415, description = "unsupported_media_type: the body is not sent as JSON", body = ErrorBody),
        (status = 422, description = "validation_failed", body = ErrorBody),
        (status = 500, description = "internal", body = ErrorBody)))]
pub async fn write_notes(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<NotesRequest>,
) -> Result<Json<MechanicNotes>, ApiError> {
    assigned_mechanic(&state, &caller, id).await?;
    let text = body.check().map_err(ApiError::validation)?;
    Ok(Json(
        state
            .store
            .save_notes(id, caller.user.id, &text, state.now())
            .await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Words that must all appear in the customer's name or the vehicle (year, make, model,
    /// VIN), case-insensitively; at most 200 characters, the first six words count
    /// (`storage::HISTORY_SEARCH_WORDS`).
    #[param(max_length = 200)]
    pub q: Option<String>,
    /// At most this many (1–100, default 20).
    #[param(schema_with = history_limit_schema)]
    pub limit: Option<i64>,
    /// The cursor: the last session id of the previous page.
    pub after: Option<Uuid>,
}

fn history_limit_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        .minimum(Some(1))
        .maximum(Some(SESSIONS_PAGE_MAX))
        .default(Some(SESSIONS_PAGE_DEFAULT.into()))
        .build()
}

#[utoipa::path(get, path = "/api/mechanics/me/sessions", tag = "mechanic",
    params(HistoryQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The calling mechanic's sessions, latest accept first, with summary and rating (never another mechanic's notes)", body = [HistoryEntry]),
        (status = 400, description = "invalid_query", body = ErrorBody),
        (status = 401, description = "unauthorized, invalid_token or token_expired", body = ErrorBody),
        (status = 403, description = "mechanics_only", body = ErrorBody),
        (status = 500, description = "internal", body = ErrorBody)))]
pub async fn history(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> Result<Json<Vec<HistoryEntry>>, ApiError> {
    caller.require_mechanic()?;
    let limit = query.limit.unwrap_or(SESSIONS_PAGE_DEFAULT);
    if !(1..=SESSIONS_PAGE_MAX).contains(&limit) {
        return Err(ApiError::BadRequest {
            code: "invalid_query",
            message: format!("`limit` must be between 1 and {SESSIONS_PAGE_MAX}"),
        });
    }
    let search = query.q.unwrap_or_default();
    if search.chars().count() > SESSIONS_SEARCH_MAX {
        return Err(ApiError::BadRequest {
            code: "invalid_query",
            message: format!("`q` must be at most {SESSIONS_SEARCH_MAX} characters"),
        });
    }
    match state
        .store
        .mechanic_history(
            caller.user.id,
            &search,
            query.after,
            limit,
            state.settings.rating_edit_window,
        )
        .await?
    {
        Some(page) => Ok(Json(page)),
        None => Err(ApiError::BadRequest {
            code: "invalid_query",
            message: "`after` must be the id of a session from an earlier page".into(),
        }),
    }
}
