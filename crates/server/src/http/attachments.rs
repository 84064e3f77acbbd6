//! Attachment uploads and downloads. An upload is `multipart/form-data` with one part `file`; it
//! is refused as soon as it is known to be too large (by its `Content-Length`, then by counting
//! bytes as they arrive, before the body has been read to its end) or not an accepted type (by
//! its first bytes, whatever its name or declared type). Files are served to the session's
//! participants only (anyone else gets 404), with ranges for clips and voice notes, under
//! headers that keep a browser from running or sniffing them.

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::io::AsyncWriteExt;
use uuid::Uuid;
use wrenchline_protocol::{Attachment, AttachmentKind, ErrorBody};

use crate::error::ApiError;
use crate::extract::{ApiPath, Caller};
use crate::lifecycle;
use crate::media::inspect::{self, megabytes, Refusal, SNIFF_BYTES};
use crate::media::store::{key, MediaError, MediaFile};
use crate::media::{keep_upload, KeepError};
use crate::state::AppState;

/// Room for the multipart framing around the file (boundaries and part headers).
const MULTIPART_SLACK: u64 = 16 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/sessions/{id}/attachments",
            // Sizes are enforced here, per type, while the body streams in.
            post(upload).layer(DefaultBodyLimit::disable()),
        )
        .route("/api/attachments/{id}", get(file))
        .route("/api/attachments/{id}/thumbnail", get(thumbnail))
}

/// The multipart form of an upload, for the API document: the part `file` and no other.
#[derive(utoipa::ToSchema, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct UploadForm {
    /// The photo, video clip or voice note.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Unsupported(message) => ApiError::UnsupportedFileType { message },
            Refusal::TooLarge { code, message } => ApiError::TooLarge { code, message },
        }
    }
}

impl From<KeepError> for ApiError {
    fn from(e: KeepError) -> Self {
        match e {
            KeepError::Refused(refusal) => refusal.into(),
            other => ApiError::Internal(other.into()),
        }
    }
}

fn invalid_upload(message: impl Into<String>) -> ApiError {
    ApiError::BadRequest {
        code: "invalid_upload",
        message: message.into(),
    }
}

fn largest_upload_refused(state: &AppState) -> ApiError {
    let limits = &state.settings.limits;
    ApiError::TooLarge {
        code: "file_too_large",
        message: format!(
            "Files are limited to {} (photos {}, video clips {}, voice notes {})",
            megabytes(
                limits
                    .image_max_bytes
                    .max(limits.video_max_bytes)
                    .max(limits.audio_max_bytes)
            ),
            megabytes(limits.image_max_bytes),
            megabytes(limits.video_max_bytes),
            megabytes(limits.audio_max_bytes),
        ),
    }
}

#[utoipa::path(post, path = "/api/sessions/{id}/attachments", tag = "session",
    params(("id" = Uuid, Path, description = "Session id")),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    security(("bearer" = []), ("customer_cookie" = [])),
    responses(
        (status = 201, description = "Stored, not sent yet: name it in a message's `attachment_ids`", body = Attachment),
        (status = 400, description = "invalid_id, or invalid_upload: not a multipart body of one part `file`", body = ErrorBody),
        (status = 401, description = "unauthorized, invalid_token or token_expired", body = ErrorBody),
        (status = 403, description = "cross_origin: sent by a browser from another site", body = ErrorBody),
        (status = 404, description = "not_found: no such session of this participant", body = ErrorBody),
        (status = 409, description = "session_ended, with the current `session`", body = ErrorBody),
        (status = 413, description = "file_too_large, too_long or image_too_large; the message names the limit", body = ErrorBody),
        (status = 422, description = "empty_file: the part `file` has no bytes", body = ErrorBody),
        (status = 415, description = "unsupported_file_type: the bytes are not an accepted photo, clip or voice note; or unsupported_media_type: not multipart/form-data", body = ErrorBody),
        (status = 429, description = "rate_limited: too many uploads from this user", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds until the next upload is allowed"))),
        (status = 500, description = "internal", body = ErrorBody)))]
pub async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
    request: Request,
) -> Result<(StatusCode, Json<Attachment>), ApiError> {
    let session = lifecycle::participating(&state, &caller.actor(), id).await?;
    if session.status.is_final() {
        return Err(ApiError::conflict(
            "session_ended",
            "This session has ended; files can no longer be sent",
            Some(session),
        ));
    }
    state.limiters.upload(caller.user.id)?;
    let limits = state.settings.limits.clone();
    let declared_length = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let largest = limits
        .image_max_bytes
        .max(limits.video_max_bytes)
        .max(limits.audio_max_bytes);
    if declared_length.is_some_and(|n| n > largest + MULTIPART_SLACK) {
        return Err(largest_upload_refused(&state));
    }
    let mut multipart = Multipart::from_request(request, &state)
        .await
        .map_err(|rejection| {
            if rejection.status() == StatusCode::UNSUPPORTED_MEDIA_TYPE
                || rejection.status() == StatusCode::BAD_REQUEST
            {
                ApiError::UnsupportedMediaType {
                    message: "Send the file as multipart/form-data in a part named file".into(),
                }
            } else {
                invalid_upload(rejection.body_text())
            }
        })?;
    let one_part = || invalid_upload("Send one part, named file, and nothing else");
    let mut field = match multipart.next_field().await {
        Ok(Some(field)) if field.name() == Some("file") => field,
        Ok(_) => return Err(one_part()),
        Err(e) => return Err(invalid_upload(e.body_text())),
    };
    let declared_audio = field
        .content_type()
        .is_some_and(|t| t.starts_with("audio/"));
    let staging = state.media.store.staging_dir();
    let spool = tempfile::NamedTempFile::new_in(&staging)
        .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("spooling an upload")))?;
    let mut out =
        tokio::fs::File::from_std(spool.reopen().map_err(|e| ApiError::Internal(e.into()))?);
    let mut head: Vec<u8> = Vec::with_capacity(SNIFF_BYTES);
    let mut sniffed = None;
    let mut limit = largest;
    let mut total: u64 = 0;
    loop {
        let chunk = match field.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(e) => return Err(invalid_upload(e.body_text())),
        };
        total += chunk.len() as u64;
        if sniffed.is_none() {
            let take = (SNIFF_BYTES - head.len()).min(chunk.len());
            head.extend_from_slice(&chunk[..take]);
            if head.len() >= SNIFF_BYTES {
                let kind = inspect::sniff(&head).ok_or_else(inspect::unsupported)?;
                limit = kind.max_bytes(&limits, declared_audio);
                if declared_length.is_some_and(|n| n > limit + MULTIPART_SLACK) {
                    return Err(too_large_for(kind, declared_audio, &limits));
                }
                sniffed = Some(kind);
            }
        }
        if total > limit {
            return Err(match sniffed {
                Some(kind) => too_large_for(kind, declared_audio, &limits),
                None => largest_upload_refused(&state),
            });
        }
        out.write_all(&chunk)
            .await
            .map_err(|e| ApiError::Internal(e.into()))?;
    }
    out.flush()
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    drop(out);
    drop(field);
    match multipart.next_field().await {
        Ok(None) => {}
        Ok(Some(_)) => return Err(one_part()),
        Err(e) => return Err(invalid_upload(e.body_text())),
    }
    if total == 0 {
        return Err(ApiError::Unprocessable {
            code: "empty_file",
            message: "The file is empty".into(),
            fields: Default::default(),
        });
    }
    let sniffed = match sniffed {
        Some(kind) => kind,
        None => inspect::sniff(&head).ok_or_else(inspect::unsupported)?,
    };
    if total > sniffed.max_bytes(&limits, false) {
        return Err(too_large_for(sniffed, false, &limits));
    }
    let (_, path) = spool
        .keep()
        .map_err(|e| ApiError::Internal(e.error.into()))?;
    let kept = keep_upload(&state, id, caller.user.id, path.clone(), total, sniffed).await;
    // A directory store moved the spooled file into place; otherwise it is no longer needed.
    let _ = tokio::fs::remove_file(&path).await;
    let attachment = kept?;
    tracing::info!(
        attachment_id = %attachment.id,
        session_id = %id,
        kind = attachment.kind.as_str(),
        bytes = attachment.bytes,
        "attachment stored"
    );
    Ok((StatusCode::CREATED, Json(attachment)))
}

/// The refusal of a file over the limit that applied to it while it arrived (see
/// [`inspect::Sniffed::max_bytes`]).
fn too_large_for(
    kind: inspect::Sniffed,
    declared_audio: bool,
    limits: &crate::limits::Limits,
) -> ApiError {
    let kind = if kind.is_image() {
        AttachmentKind::Image
    } else if declared_audio || limits.audio_max_bytes > limits.video_max_bytes {
        AttachmentKind::Audio
    } else {
        AttachmentKind::Video
    };
    inspect::too_large(kind, limits).into()
}

/// The attachment, for a participant of its session; 404 for anyone else.
async fn reachable(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
) -> Result<crate::storage::AttachmentRecord, ApiError> {
    let record = state
        .store
        .attachment(id)
        .await?
        .ok_or_else(|| ApiError::not_found("attachment"))?;
    match state.store.session(record.session_id).await? {
        Some(session) if lifecycle::is_participant(&caller.actor(), &session) => {}
        _ => return Err(ApiError::not_found("attachment")),
    }
    if record.attachment.removed_at.is_some() {
        return Err(ApiError::Gone {
            code: "attachment_removed",
            message: "This file was deleted after the retention period".into(),
        });
    }
    Ok(record)
}

fn extension(content_type: &str) -> &'static str {
    match content_type {
        "image/jpeg" => "jpg",
        "image/png" => "png",
        "video/mp4" => "mp4",
        "audio/mp4" => "m4a",
        "video/quicktime" => "mov",
        "video/webm" | "audio/webm" => "webm",
        _ => "bin",
    }
}

/// Headers every served file gets: its type as stored, a file name the server chose, no
/// sniffing, and a policy that runs nothing even if the file is opened as a page.
fn file_headers(headers: &mut HeaderMap, content_type: &str, filename: &str) {
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(content_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    if let Ok(value) = HeaderValue::from_str(&format!("inline; filename=\"{filename}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox; frame-ancestors 'none'"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=86400"),
    );
}

fn served(e: MediaError) -> ApiError {
    match e {
        MediaError::NotFound => ApiError::not_found("attachment"),
        other => ApiError::Internal(other.into()),
    }
}

#[utoipa::path(get, path = "/api/attachments/{id}", tag = "session",
    params(("id" = Uuid, Path, description = "Attachment id"),
        ("Range" = Option<String>, Header, description = "`bytes=START-END`, for video clips and voice notes")),
    security(("bearer" = []), ("customer_cookie" = [])),
    responses(
        (status = 200, description = "The file", content(("image/jpeg"), ("image/png"), ("video/mp4"), ("video/quicktime"), ("video/webm"), ("audio/webm"), ("audio/mp4"))),
        (status = 206, description = "The requested range of a clip or voice note", content(("video/mp4"), ("video/quicktime"), ("video/webm"), ("audio/webm"), ("audio/mp4"))),
        (status = 400, description = "invalid_id", body = ErrorBody),
        (status = 401, description = "unauthorized, invalid_token or token_expired", body = ErrorBody),
        (status = 404, description = "not_found: no such attachment in a session of this participant", body = ErrorBody),
        (status = 410, description = "attachment_removed: deleted after the retention period", body = ErrorBody),
        (status = 416, description = "The range is outside the file"),
        (status = 500, description = "internal", body = ErrorBody)))]
pub async fn file(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let record = reachable(&state, &caller, id).await?;
    let attachment = &record.attachment;
    let size = attachment.bytes;
    let ranged = attachment.kind != AttachmentKind::Image;
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(value) if ranged => match http_range_header::parse_range_header(value)
            .and_then(|ranges| ranges.validate(size))
        {
            Ok(ranges) => ranges.first().map(|r| *r.start()..*r.end() + 1),
            Err(_) => {
                let mut response = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
                if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    response.headers_mut().insert(header::CONTENT_RANGE, value);
                }
                return Ok(response);
            }
        },
        _ => None,
    };
    let stored = state
        .media
        .store
        .read(
            &key(record.session_id, id, MediaFile::Original),
            range.clone(),
        )
        .await
        .map_err(served)?;
    let filename = format!(
        "{}-{}.{}",
        match attachment.kind {
            AttachmentKind::Image => "photo",
            AttachmentKind::Video => "video",
            AttachmentKind::Audio => "voice-note",
        },
        &id.simple().to_string()[..8],
        extension(&attachment.content_type)
    );
    let mut response = Response::new(stored.body);
    let out = response.headers_mut();
    file_headers(out, &attachment.content_type, &filename);
    if ranged {
        out.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    }
    match range {
        Some(range) => {
            *response.status_mut() = StatusCode::PARTIAL_CONTENT;
            let out = response.headers_mut();
            out.insert(
                header::CONTENT_LENGTH,
                HeaderValue::from(range.end - range.start),
            );
            if let Ok(value) = HeaderValue::from_str(&format!(
                "bytes {}-{}/{}",
                range.start,
                range.end - 1,
                stored.size
            )) {
                out.insert(header::CONTENT_RANGE, value);
            }
        }
        None => {
            response
                .headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(stored.size));
        }
    }
    Ok(response)
}

#[utoipa::path(get, path = "/api/attachments/{id}/thumbnail", tag = "session",
    params(("id" = Uuid, Path, description = "Attachment id")),
    security(("bearer" = []), ("customer_cookie" = [])),
    responses(
        (status = 200, description = "A small JPEG of a photo or of a clip's frame", content_type = "image/jpeg"),
        (status = 400, description = "invalid_id", body = ErrorBody),
        (status = 401, description = "unauthorized, invalid_token or token_expired", body = ErrorBody),
        (status = 404, description = "not_found: no such attachment in a session of this participant, or it has no thumbnail (voice notes, clips without a frame)", body = ErrorBody),
        (status = 410, description = "attachment_removed: deleted after the retention period", body = ErrorBody),
        (status = 500, description = "internal", body = ErrorBody)))]
pub async fn thumbnail(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Response, ApiError> {
    let record = reachable(&state, &caller, id).await?;
    if !record.attachment.has_thumbnail {
        return Err(ApiError::NotFound {
            code: "not_found",
            message: "This attachment has no thumbnail".into(),
        });
    }
    let stored = state
        .media
        .store
        .read(&key(record.session_id, id, MediaFile::Thumbnail), None)
        .await
        .map_err(served)?;
    let mut response = Response::new(Body::new(stored.body));
    let filename = format!("thumbnail-{}.jpg", &id.simple().to_string()[..8]);
    file_headers(response.headers_mut(), "image/jpeg", &filename);
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(stored.size));
    Ok(response)
}
