//! Chat history and posting. History is read by `seq`, so a client that reconnects asks for what
//! follows the last `seq` it has and gets no gap and no duplicate; posting is idempotent by
//! `client_id`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use uuid::Uuid;
use wrenchline_protocol::{
    ErrorBody, FieldErrors, Message, PostMessageRequest, MAX_CLIENT_ID_CHARS, MAX_MESSAGE_CHARS,
};

use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery, Caller};
use crate::lifecycle;
use crate::state::AppState;

/// Most messages one history call returns.
pub const HISTORY_PAGE_MAX: i64 = 500;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/sessions/{id}/messages", get(history).post(post))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Return messages with a `seq` greater than this (0 for all).
    pub after: Option<i64>,
    /// At most this many (1–500, default 500).
    pub limit: Option<i64>,
}

#[utoipa::path(get, path = "/api/sessions/{id}/messages", tag = "session",
    params(("id" = Uuid, Path, description = "Session id"), HistoryQuery),
    responses(
        (status = 200, description = "Messages after `after`, by seq", body = [Message]),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn history(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> Result<Json<Vec<Message>>, ApiError> {
    let after = query.after.unwrap_or(0);
    let limit = query.limit.unwrap_or(HISTORY_PAGE_MAX);
    if after < 0 || !(1..=HISTORY_PAGE_MAX).contains(&limit) {
        return Err(ApiError::BadRequest {
            code: "invalid_query",
            message: format!(
                "`after` must be 0 or more and `limit` between 1 and {HISTORY_PAGE_MAX}"
            ),
        });
    }
    lifecycle::participating(&state, &caller, id).await?;
    Ok(Json(state.store.messages(id, after, limit).await?))
}

fn client_id_is_valid(id: &str) -> bool {
    !id.is_empty()
        && id.chars().count() <= MAX_CLIENT_ID_CHARS
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
}

#[utoipa::path(post, path = "/api/sessions/{id}/messages", tag = "session", request_body = PostMessageRequest,
    params(("id" = Uuid, Path, description = "Session id")),
    responses(
        (status = 201, description = "Stored", body = Message),
        (status = 200, description = "Already stored under this client_id", body = Message),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn post(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<PostMessageRequest>,
) -> Result<(StatusCode, Json<Message>), ApiError> {
    let mut fields = FieldErrors::new();
    let text = body.body.trim();
    if text.is_empty() {
        fields.insert("body".into(), "Write a message first".into());
    } else if text.chars().count() > MAX_MESSAGE_CHARS {
        fields.insert(
            "body".into(),
            format!("Messages are limited to {MAX_MESSAGE_CHARS} characters"),
        );
    }
    if !client_id_is_valid(&body.client_id) {
        fields.insert(
            "client_id".into(),
            format!("client_id must be 1–{MAX_CLIENT_ID_CHARS} letters, digits or - _ . :"),
        );
    }
    if !fields.is_empty() {
        return Err(ApiError::validation(fields));
    }
    state.limiters.message(caller.user.id)?;
    let (message, created) =
        lifecycle::post_message(&state, &caller, id, &body.client_id, text).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(message)))
}
