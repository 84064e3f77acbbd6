//! The HTTP API over reqwest. Errors keep the server's `{error, message}` so callers can act on
//! the code (`already_accepted`, `token_expired`, …). Attachments go up as `multipart/form-data`
//! ([`Upload`]) and come down whole, as a range ([`Media`]) or straight into a file.

use std::path::Path;
use std::time::Duration;

use reqwest::header::{self, HeaderMap};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use uuid::Uuid;
use wrenchline_protocol::{
    Attachment, AuthTokens, ErrorBody, HistoryEntry, LoginRequest, MechanicNotes, MechanicSummary,
    Message, NotesRequest, Plan, PostMessageRequest, RefreshRequest, ServerTime, Session,
    SessionOutcome, SummaryRequest,
};

use crate::realtime::RealtimeError;

/// Everything the client's HTTP calls and a [`crate::MechanicSession`] can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the server: {0}")]
    Transport(#[from] reqwest::Error),
    #[error("{status}: {} ({})", body.message, body.error)]
    Api { status: StatusCode, body: ErrorBody },
    #[error("invalid server URL: {0}")]
    Url(String),
    /// The account signed in, but it is not a mechanic's.
    #[error("this account is not a mechanic's")]
    NotMechanic,
    /// The server refused the refresh token (revoked, expired, signed out elsewhere): only a
    /// new sign-in with the password helps.
    #[error("the sign-in has expired or was revoked")]
    SignInExpired,
    #[error(transparent)]
    Realtime(#[from] RealtimeError),
    /// Writing a downloaded attachment to disk failed.
    #[error("could not write {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
}

/// An upload or a download may take this long (a video clip on a slow uplink), far more than
/// the 30 s of an ordinary call.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// The largest range one [`ApiClient::media`] answer holds when the caller asked for an open
/// range (`bytes=N-`): a player asks again for the rest, so a long clip is never held whole.
pub const MEDIA_CHUNK: u64 = 4 * 1024 * 1024;

/// One file to upload: its bytes (cheap to clone), its name and its declared type. The server
/// decides what it is from the bytes; name and type only travel along.
#[derive(Debug, Clone)]
pub struct Upload {
    pub file_name: String,
    pub content_type: String,
    pub bytes: bytes::Bytes,
}

impl Upload {
    pub fn new(
        file_name: impl Into<String>,
        content_type: impl Into<String>,
        bytes: Vec<u8>,
    ) -> Self {
        Upload {
            file_name: file_name.into(),
            content_type: content_type.into(),
            bytes: bytes.into(),
        }
    }
}

/// Which file of an attachment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaVariant {
    File,
    Thumbnail,
}

/// An attachment (or a range of it) as the server answered: status 200 or 206, the headers a
/// player needs, and the bytes.
#[derive(Debug, Clone)]
pub struct Media {
    pub status: StatusCode,
    pub content_type: String,
    pub content_range: Option<String>,
    pub bytes: bytes::Bytes,
}

/// `bytes=N-` (what players ask first) becomes `bytes=N-(N+MEDIA_CHUNK-1)`; any other range is
/// passed on as it is.
fn bounded_range(range: &str) -> String {
    let open = range
        .strip_prefix("bytes=")
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|start| start.parse::<u64>().ok());
    match open {
        Some(start) => format!("bytes={start}-{}", start + MEDIA_CHUNK - 1),
        None => range.to_string(),
    }
}

async fn api_error(response: reqwest::Response) -> ClientError {
    let status = response.status();
    let body = response
        .json::<ErrorBody>()
        .await
        .unwrap_or_else(|_| ErrorBody {
            error: "http_error".into(),
            message: format!("the server answered {status}"),
            fields: Default::default(),
            missing: Vec::new(),
            session: None,
        });
    ClientError::Api { status, body }
}

impl ClientError {
    /// The server's error code, when the server answered.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { body, .. } => Some(&body.error),
            _ => None,
        }
    }

    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// An access token the server no longer takes: refresh and try once more.
    pub fn is_unauthorized(&self) -> bool {
        self.status() == Some(StatusCode::UNAUTHORIZED)
            || matches!(
                self.code(),
                Some("token_expired" | "invalid_token" | "unauthorized")
            )
    }
}

/// A client for one server, optionally carrying an access token.
#[derive(Clone, Debug)]
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl ApiClient {
    pub fn new(base_url: &str) -> Result<Self, ClientError> {
        let base = base_url.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ClientError::Url(base));
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("wrenchline-client/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(30))
            // The server closes a connection idle for its header timeout (at most 30 s); dropping
            // ours first means a request never goes out on a connection the server is closing.
            .pool_idle_timeout(std::time::Duration::from_secs(20))
            .build()?;
        Ok(ApiClient {
            http,
            base,
            token: None,
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    pub fn set_token(&mut self, token: Option<String>) {
        self.token = token;
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        self.call_with_query(method, path, &[], body).await
    }

    async fn call_with_query<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .query(query);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await?;
        let status = response.status();
        if status.is_success() {
            let bytes = response.bytes().await?;
            let text = if bytes.is_empty() {
                b"null".as_slice()
            } else {
                &bytes[..]
            };
            return serde_json::from_slice(text).map_err(|e| ClientError::Api {
                status,
                body: ErrorBody {
                    error: "unexpected_response".into(),
                    message: e.to_string(),
                    fields: Default::default(),
                    missing: Vec::new(),
                    session: None,
                },
            });
        }
        Err(api_error(response).await)
    }

    fn authorized(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// The server's clock, for countdowns corrected by the offset.
    pub async fn time(&self) -> Result<ServerTime, ClientError> {
        self.call::<(), _>(Method::GET, "/api/time", None).await
    }

    pub async fn plans(&self) -> Result<Vec<Plan>, ClientError> {
        self.call::<(), _>(Method::GET, "/api/plans", None).await
    }

    pub async fn login(&self, email: &str, password: &str) -> Result<AuthTokens, ClientError> {
        let body = LoginRequest {
            email: email.into(),
            password: password.into(),
        };
        self.call(Method::POST, "/api/auth/login", Some(&body))
            .await
    }

    pub async fn refresh(&self, refresh_token: &str) -> Result<AuthTokens, ClientError> {
        let body = RefreshRequest {
            refresh_token: refresh_token.into(),
        };
        self.call(Method::POST, "/api/auth/refresh", Some(&body))
            .await
    }

    pub async fn logout(&self, refresh_token: &str) -> Result<(), ClientError> {
        let body = RefreshRequest {
            refresh_token: refresh_token.into(),
        };
        self.call::<_, serde_json::Value>(Method::POST, "/api/auth/logout", Some(&body))
            .await?;
        Ok(())
    }

    pub async fn requests(&self) -> Result<Vec<Session>, ClientError> {
        self.call::<(), _>(Method::GET, "/api/requests", None).await
    }

    pub async fn session(&self, id: Uuid) -> Result<Session, ClientError> {
        self.call::<(), _>(Method::GET, &format!("/api/sessions/{id}"), None)
            .await
    }

    pub async fn accept(&self, id: Uuid) -> Result<Session, ClientError> {
        self.call::<(), _>(Method::POST, &format!("/api/sessions/{id}/accept"), None)
            .await
    }

    pub async fn start(&self, id: Uuid) -> Result<Session, ClientError> {
        self.call::<(), _>(Method::POST, &format!("/api/sessions/{id}/start"), None)
            .await
    }

    pub async fn end(&self, id: Uuid) -> Result<Session, ClientError> {
        self.call::<(), _>(Method::POST, &format!("/api/sessions/{id}/end"), None)
            .await
    }

    pub async fn messages(&self, id: Uuid, after: i64) -> Result<Vec<Message>, ClientError> {
        self.call::<(), _>(
            Method::GET,
            &format!("/api/sessions/{id}/messages?after={after}"),
            None,
        )
        .await
    }

    pub async fn post_message(
        &self,
        id: Uuid,
        client_id: &str,
        body: &str,
    ) -> Result<Message, ClientError> {
        self.post_message_with(id, client_id, body, &[]).await
    }

    /// Posts a message carrying attachments uploaded before ([`ApiClient::upload_attachment`]);
    /// `body` may be empty when there is at least one.
    pub async fn post_message_with(
        &self,
        id: Uuid,
        client_id: &str,
        body: &str,
        attachment_ids: &[Uuid],
    ) -> Result<Message, ClientError> {
        let request = PostMessageRequest {
            body: body.into(),
            client_id: client_id.into(),
            attachment_ids: attachment_ids.to_vec(),
        };
        self.call(
            Method::POST,
            &format!("/api/sessions/{id}/messages"),
            Some(&request),
        )
        .await
    }

    /// The mechanic's summary and the customer's rating of a session.
    pub async fn outcome(&self, id: Uuid) -> Result<SessionOutcome, ClientError> {
        self.call::<(), _>(Method::GET, &format!("/api/sessions/{id}/outcome"), None)
            .await
    }

    pub async fn write_summary(
        &self,
        id: Uuid,
        summary: &SummaryRequest,
    ) -> Result<MechanicSummary, ClientError> {
        self.call(
            Method::PUT,
            &format!("/api/sessions/{id}/summary"),
            Some(summary),
        )
        .await
    }

    pub async fn notes(&self, id: Uuid) -> Result<MechanicNotes, ClientError> {
        self.call::<(), _>(Method::GET, &format!("/api/sessions/{id}/notes"), None)
            .await
    }

    pub async fn write_notes(&self, id: Uuid, body: &str) -> Result<MechanicNotes, ClientError> {
        let request = NotesRequest { body: body.into() };
        self.call(
            Method::PUT,
            &format!("/api/sessions/{id}/notes"),
            Some(&request),
        )
        .await
    }

    /// A page of the signed-in mechanic's sessions, latest accept first, whose customer name or
    /// vehicle holds every word of `search`; `after` is the last id of the previous page.
    pub async fn history(
        &self,
        search: &str,
        limit: u32,
        after: Option<Uuid>,
    ) -> Result<Vec<HistoryEntry>, ClientError> {
        let mut query = vec![("q", search.to_string()), ("limit", limit.to_string())];
        if let Some(after) = after {
            query.push(("after", after.to_string()));
        }
        self.call_with_query::<(), _>(Method::GET, "/api/mechanics/me/sessions", &query, None)
            .await
    }
}

impl ApiClient {
    /// Uploads one file to a session, as the part `file` of a `multipart/form-data` body: stored
    /// by the server, sent with the next message that names it.
    pub async fn upload_attachment(
        &self,
        session: Uuid,
        upload: &Upload,
    ) -> Result<Attachment, ClientError> {
        let length = upload.bytes.len() as u64;
        let part = reqwest::multipart::Part::stream_with_length(
            reqwest::Body::from(upload.bytes.clone()),
            length,
        )
        .file_name(upload.file_name.clone())
        .mime_str(&upload.content_type)
        .or_else(|_| {
            reqwest::multipart::Part::stream_with_length(
                reqwest::Body::from(upload.bytes.clone()),
                length,
            )
            .file_name(upload.file_name.clone())
            .mime_str("application/octet-stream")
        })?;
        let form = reqwest::multipart::Form::new().part("file", part);
        let response = self
            .authorized(
                Method::POST,
                &format!("/api/sessions/{session}/attachments"),
            )
            .timeout(TRANSFER_TIMEOUT)
            .multipart(form)
            .send()
            .await?;
        if !response.status().is_success() {
            return Err(api_error(response).await);
        }
        let status = response.status();
        let bytes = response.bytes().await?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Api {
            status,
            body: ErrorBody {
                error: "unexpected_response".into(),
                message: e.to_string(),
                fields: Default::default(),
                missing: Vec::new(),
                session: None,
            },
        })
    }

    /// An attachment's file or thumbnail; with `range` (an HTTP `Range` value), that part of it
    /// (an open range is bounded to [`MEDIA_CHUNK`] bytes).
    pub async fn media(
        &self,
        id: Uuid,
        variant: MediaVariant,
        range: Option<&str>,
    ) -> Result<Media, ClientError> {
        let path = match variant {
            MediaVariant::File => format!("/api/attachments/{id}"),
            MediaVariant::Thumbnail => format!("/api/attachments/{id}/thumbnail"),
        };
        let mut request = self
            .authorized(Method::GET, &path)
            .timeout(TRANSFER_TIMEOUT);
        if let Some(range) = range {
            request = request.header(header::RANGE, bounded_range(range));
        }
        let response = request.send().await?;
        let status = response.status();
        if !status.is_success() {
            return Err(api_error(response).await);
        }
        let headers: &HeaderMap = response.headers();
        let text = |name| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let content_type =
            text(header::CONTENT_TYPE).unwrap_or_else(|| "application/octet-stream".into());
        let content_range = text(header::CONTENT_RANGE);
        let bytes = response.bytes().await?;
        Ok(Media {
            status,
            content_type,
            content_range,
            bytes,
        })
    }

    /// Downloads an attachment's file into `path`, chunk by chunk (never whole in memory),
    /// through a temporary file beside it, so `path` holds the whole file or nothing. Answers
    /// how many bytes were written.
    pub async fn save_attachment(&self, id: Uuid, path: &Path) -> Result<u64, ClientError> {
        use tokio::io::AsyncWriteExt;

        let mut response = self
            .authorized(Method::GET, &format!("/api/attachments/{id}"))
            .timeout(TRANSFER_TIMEOUT)
            .send()
            .await?;
        if !response.status().is_success() {
            return Err(api_error(response).await);
        }
        let file_error = |source| ClientError::File {
            path: path.display().to_string(),
            source,
        };
        let partial = path.with_extension("part");
        let mut file = tokio::fs::File::create(&partial)
            .await
            .map_err(file_error)?;
        let mut written = 0u64;
        let result = async {
            while let Some(chunk) = response.chunk().await? {
                file.write_all(&chunk).await.map_err(file_error)?;
                written += chunk.len() as u64;
            }
            file.flush().await.map_err(file_error)?;
            file.sync_all().await.map_err(file_error)?;
            tokio::fs::rename(&partial, path).await.map_err(file_error)
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&partial).await;
        }
        result.map(|()| written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_open_range_is_bounded_and_others_pass_unchanged() {
        assert_eq!(
            bounded_range("bytes=0-"),
            format!("bytes=0-{}", MEDIA_CHUNK - 1)
        );
        assert_eq!(
            bounded_range("bytes=100-"),
            format!("bytes=100-{}", 100 + MEDIA_CHUNK - 1)
        );
        assert_eq!(bounded_range("bytes=5-10"), "bytes=5-10");
        assert_eq!(bounded_range("bytes=-500"), "bytes=-500");
    }
}
