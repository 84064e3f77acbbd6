//! The one error type of the HTTP API. Each variant knows its status and code; causes of 500s are
//! logged with their chain and never shown to the client.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use wrenchline_protocol::{ErrorBody, FieldErrors, Role, Session};

use crate::lifecycle::RuleError;
use crate::storage::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("{message}")]
    Unauthorized { code: &'static str, message: String },
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    #[error("{message}")]
    Conflict {
        code: &'static str,
        message: String,
        session: Option<Box<Session>>,
        missing: Vec<Role>,
    },
    #[error("{message}")]
    Gone { code: &'static str, message: String },
    #[error("the request body is larger than this server accepts")]
    PayloadTooLarge,
    /// An upload over a size, length or pixel limit; the message names the limit.
    #[error("{message}")]
    TooLarge { code: &'static str, message: String },
    /// An upload whose bytes are not an accepted photo, clip or voice note.
    #[error("{message}")]
    UnsupportedFileType { message: String },
    #[error("{message}")]
    UnsupportedMediaType { message: String },
    #[error("{message}")]
    Unprocessable {
        code: &'static str,
        message: String,
        fields: FieldErrors,
    },
    #[error("{message}")]
    TooManyRequests {
        message: String,
        retry_after: std::time::Duration,
    },
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn not_found(what: &str) -> Self {
        ApiError::NotFound {
            code: "not_found",
            message: format!("No such {what}"),
        }
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError::Unauthorized {
            code: "unauthorized",
            message: message.into(),
        }
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Forbidden {
            code,
            message: message.into(),
        }
    }

    pub fn conflict(
        code: &'static str,
        message: impl Into<String>,
        session: Option<Session>,
    ) -> Self {
        ApiError::Conflict {
            code,
            message: message.into(),
            session: session.map(Box::new),
            missing: Vec::new(),
        }
    }

    pub fn validation(fields: FieldErrors) -> Self {
        ApiError::Unprocessable {
            code: "validation_failed",
            message: "Some fields need attention".into(),
            fields,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Gone { .. } => StatusCode::GONE,
            ApiError::PayloadTooLarge | ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedFileType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. }
            | ApiError::Unauthorized { code, .. }
            | ApiError::Forbidden { code, .. }
            | ApiError::NotFound { code, .. }
            | ApiError::Conflict { code, .. }
            | ApiError::Gone { code, .. }
            | ApiError::TooLarge { code, .. }
            | ApiError::Unprocessable { code, .. } => code,
            ApiError::PayloadTooLarge => "body_too_large",
            ApiError::UnsupportedMediaType { .. } => "unsupported_media_type",
            ApiError::UnsupportedFileType { .. } => "unsupported_file_type",
            ApiError::TooManyRequests { .. } => "rate_limited",
            ApiError::Internal(_) => "internal",
        }
    }

    pub fn body(&self) -> ErrorBody {
        let message = match self {
            ApiError::Internal(_) => {
                "Something went wrong on our side; please try again".to_string()
            }
            other => other.to_string(),
        };
        let mut body = ErrorBody {
            error: self.code().to_string(),
            message,
            fields: Default::default(),
            missing: Vec::new(),
            session: None,
        };
        match self {
            ApiError::Unprocessable { fields, .. } => body.fields = fields.clone(),
            ApiError::Conflict {
                session, missing, ..
            } => {
                body.session = session.clone();
                body.missing = missing.clone();
            }
            _ => {}
        }
        body
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(cause) = &self {
            tracing::error!(error = ?cause, "request failed");
        }
        let mut response = (self.status(), Json(self.body())).into_response();
        if let ApiError::TooManyRequests { retry_after, .. } = &self {
            let seconds = retry_after.as_secs().max(1).to_string();
            if let Ok(value) = axum::http::HeaderValue::from_str(&seconds) {
                response
                    .headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, value);
            }
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Internal(e.into())
    }
}

impl From<RuleError> for ApiError {
    fn from(e: RuleError) -> Self {
        match e {
            RuleError::NotFound(what) => ApiError::not_found(what),
            RuleError::Forbidden { code, message } => ApiError::forbidden(code, message),
            RuleError::Conflict {
                code,
                message,
                session,
                missing,
            } => ApiError::Conflict {
                code,
                message: message.into(),
                session,
                missing,
            },
            RuleError::UnknownAttachment(attachment) => ApiError::NotFound {
                code: "attachment_not_found",
                message: format!(
                    "No attachment {attachment} of yours is waiting to be sent in this session"
                ),
            },
            RuleError::AttachmentSent(attachment) => ApiError::conflict(
                "attachment_already_sent",
                format!("Attachment {attachment} was already sent with another message"),
                None,
            ),
            RuleError::Presence(e) => ApiError::Internal(e.into()),
            RuleError::Store(e) => e.into(),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::JsonDataError(e) => ApiError::Unprocessable {
                code: "invalid_body",
                message: e.body_text().replace(
                    "Failed to deserialize the JSON body into the target type: ",
                    "",
                ),
                fields: Default::default(),
            },
            JsonRejection::JsonSyntaxError(_) => ApiError::BadRequest {
                code: "malformed_json",
                message: "The request body is not valid JSON".into(),
            },
            JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType {
                message: "Send the body as JSON with Content-Type: application/json".into(),
            },
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
            other => ApiError::BadRequest {
                code: "invalid_body",
                message: other.body_text(),
            },
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(_: PathRejection) -> Self {
        ApiError::BadRequest {
            code: "invalid_id",
            message: "The id in the path is not a valid UUID".into(),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::BadRequest {
            code: "invalid_query",
            message: rejection.body_text(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_hide_their_cause() {
        let err = ApiError::Internal(anyhow::anyhow!("password=hunter2 leaked"));
        let body = serde_json::to_value(err.body()).unwrap();
        assert_eq!(body["error"], "internal");
        assert!(!body.to_string().contains("hunter2"));
    }

    #[test]
    fn the_json_shape_is_pinned() {
        let mut fields = FieldErrors::new();
        fields.insert("vehicle.vin".into(), "bad".into());
        let body = serde_json::to_value(ApiError::validation(fields).body()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "error": "validation_failed",
                "message": "Some fields need attention",
                "fields": {"vehicle.vin": "bad"}
            })
        );
    }
}
