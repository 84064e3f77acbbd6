//! Chat history and posting. History is read by `seq`, so a client that reconnects asks for what
//! follows the last `seq` it has and gets no gap and no duplicate; posting is idempotent by
//! `client_id`. A message may carry attachments uploaded before (`attachment_ids`), and then
//! needs no text.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use utoipa::openapi::schema::{Object, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::KnownFormat;
use uuid::Uuid;
use wrenchline_protocol::text::{Lines, CONTROL_CHARACTER_MESSAGE};
use wrenchline_protocol::{
    ErrorBody, FieldErrors, Message, PostMessageRequest, Role, MAX_ATTACHMENTS_PER_MESSAGE,
    MAX_CLIENT_ID_CHARS,
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
    #[param(schema_with = after_schema)]
    pub after: Option<i64>,
    /// At most this many (1–500, default 500).
    #[param(schema_with = limit_schema)]
    pub limit: Option<i64>,
}

fn after_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        .minimum(Some(0))
        .maximum(Some(i64::MAX))
        .default(Some(0.into()))
        .build()
}

fn limit_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        .minimum(Some(1))
        .maximum(Some(HISTORY_PAGE_MAX))
        .default(Some(HISTORY_PAGE_MAX.into()))
        .build()
}

#[utoipa::path(get, path = "/api/sessions/{id}/messages", tag = "session",
    params(("id" = Uuid, Path, description = "Session id"), HistoryQuery),
    security(("bearer" = []), ("customer_cookie" = [])),
    responses(
        (status = 200, description = "Messages after `after`, by seq", body = [Message]),
        (status = 400, description = "invalid_id, or invalid_query: `after` or `limit` out of range or not an integer", body = ErrorBody),
        (status = 401, description = "unauthorized, invalid_token or token_expired", body = ErrorBody),
        (status = 404, description = "not_found: no such session of this participant", body = ErrorBody),
        (status = 500, description = "internal", body = ErrorBody)))]
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
    let session = lifecycle::participating(&state, &caller.actor(), id).await?;
    let messages = state.store.messages(id, after, limit).await?;
    if caller.role() == Role::Customer {
        // The chat page reads the history whenever it (re)joins: the customer is back.
        crate::mail::unread::customer_caught_up(&state, &session).await;
    }
    Ok(Json(messages))
}

pub(crate) fn client_id_is_valid(id: &str) -> bool {
    !id.is_empty()
        && id.chars().count() <= MAX_CLIENT_ID_CHARS
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
}

/// What is wrong with a posted message, per field, when bodies may have `max_chars` characters;
/// empty when it can be stored (its body trimmed).
pub(crate) fn message_problems(body: &PostMessageRequest, max_chars: usize) -> FieldErrors {
    let mut fields = FieldErrors::new();
    let text = body.body.trim();
    let ids = &body.attachment_ids;
    if ids.len() > MAX_ATTACHMENTS_PER_MESSAGE {
        fields.insert(
            "attachment_ids".into(),
            format!("A message carries at most {MAX_ATTACHMENTS_PER_MESSAGE} attachments"),
        );
    } else if ids.iter().enumerate().any(|(i, id)| ids[..i].contains(id)) {
        fields.insert(
            "attachment_ids".into(),
            "An attachment is listed twice".into(),
        );
    }
    if text.is_empty() {
        if ids.is_empty() {
            fields.insert("body".into(), "Write a message first".into());
        }
    } else if text.chars().count() > max_chars {
        fields.insert(
            "body".into(),
            format!("Messages are limited to {max_chars} characters"),
        );
    } else if !Lines::Many.allows(text) {
        fields.insert("body".into(), CONTROL_CHARACTER_MESSAGE.into());
    }
    if !client_id_is_valid(&body.client_id) {
        fields.insert(
            "client_id".into(),
            format!("client_id must be 1–{MAX_CLIENT_ID_CHARS} letters, digits or - _ . :"),
        );
    }
    fields
}

#[utoipa::path(post, path = "/api/sessions/{id}/messages", tag = "session", request_body = PostMessageRequest,
    params(("id" = Uuid, Path, description = "Session id")),
    security(("bearer" = []), ("customer_cookie" = [])),
    responses(
        (status = 201, description = "Stored", body = Message),
        (status = 200, description = "Already stored under this client_id", body = Message),
        (status = 400, description = "malformed_json, or invalid_id: the id in the path is not a UUID", body = ErrorBody),
        (status = 401, description = "unauthorized, invalid_token or token_expired", body = ErrorBody),
        (status = 403, description = "cross_origin: sent by a browser from another site", body = ErrorBody),
        (status = 404, description = "not_found: no such session of this participant; attachment_not_found: an attachment id is not the sender's unsent upload to this session", body = ErrorBody),
        (status = 409, description = "not_accepted or session_ended, with the current `session`; attachment_already_sent", body = ErrorBody),
        (status = 413, description = "body_too_large", body = ErrorBody),
        (status = 415, description = "unsupported_media_type: the body is not sent as JSON", body = ErrorBody),
        (status = 422, description = "validation_failed, with `fields`; or invalid_body (wrong types)", body = ErrorBody),
        (status = 429, description = "rate_limited: too many messages from this user", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds until the next message is allowed"))),
        (status = 500, description = "internal", body = ErrorBody)))]
pub async fn post(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<PostMessageRequest>,
) -> Result<(StatusCode, Json<Message>), ApiError> {
    let fields = message_problems(&body, state.settings.limits.message_max_chars);
    if !fields.is_empty() {
        return Err(ApiError::validation(fields));
    }
    state.limiters.message(caller.user.id).await?;
    let (message, created) = lifecycle::post_message(
        &state,
        &caller.actor(),
        id,
        &body.client_id,
        body.body.trim(),
        &body.attachment_ids,
    )
    .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(message)))
}

#[cfg(test)]
mod tests {
    //! Every C0 control character, against the validators and the patterns the API document
    //! states for the same fields.

    use regex::Regex;
    use time::OffsetDateTime;
    use wrenchline_protocol::{Intake, IntakeRequest, VehicleInput, WaiverRequest};

    use super::*;
    use crate::config::default_plans;
    use crate::http::intake::waiver_problems;
    use crate::limits::Limits;

    fn intake_with(name: &str, concern: &str) -> IntakeRequest {
        IntakeRequest {
            name: name.into(),
            email: "dana@example.com".into(),
            phone: None,
            vehicle: VehicleInput {
                year: 2018,
                make: "Honda".into(),
                model: "Civic".into(),
                vin: None,
                mileage: None,
            },
            concern: concern.into(),
            plan: "trial".into(),
        }
    }

    #[test]
    fn control_characters_are_refused_as_documented() {
        let doc = serde_json::to_value(crate::http::meta::document(
            &default_plans(),
            &Limits::default(),
            OffsetDateTime::now_utc(),
        ))
        .unwrap();
        let pattern = |component: &str, name: &str| {
            let schema =
                crate::http::meta::strict_property(&doc["components"]["schemas"][component], name);
            Regex::new(schema["pattern"].as_str().unwrap()).unwrap()
        };
        let body = pattern("PostMessageRequest", "body");
        let signed_name = pattern("WaiverRequest", "signed_name");
        let name = pattern("IntakeRequest", "name");
        let concern = pattern("IntakeRequest", "concern");
        let year = OffsetDateTime::now_utc().year();
        for c in (0..=0x1f).filter_map(char::from_u32) {
            let line_break = matches!(c, '\t' | '\n' | '\r');
            let text = format!("Grinding{c}noise");
            let message_ok = message_problems(
                &PostMessageRequest {
                    body: text.clone(),
                    client_id: "c1".into(),
                    attachment_ids: Vec::new(),
                },
                wrenchline_protocol::MAX_MESSAGE_CHARS,
            )
            .is_empty();
            assert_eq!(message_ok, line_break, "body U+{:04X}", c as u32);
            assert_eq!(body.is_match(&text), message_ok, "body U+{:04X}", c as u32);

            let concern_ok = Intake::parse(intake_with("Dana", &text), year).is_ok();
            assert_eq!(concern_ok, line_break, "concern U+{:04X}", c as u32);
            assert_eq!(concern.is_match(&text), concern_ok);

            let name_ok = Intake::parse(intake_with(&text, "Grinding noise"), year).is_ok();
            assert!(!name_ok, "name U+{:04X}", c as u32);
            assert!(!name.is_match(&text), "name U+{:04X}", c as u32);

            let signed = waiver_problems(&WaiverRequest {
                signed_name: text.clone(),
                agree: true,
            });
            assert_eq!(
                signed.get("signed_name").map(String::as_str),
                Some(wrenchline_protocol::text::CONTROL_CHARACTER_MESSAGE)
            );
            assert!(
                !signed_name.is_match(&text),
                "signed_name U+{:04X}",
                c as u32
            );
        }
    }
}
