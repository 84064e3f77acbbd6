//! The HTTP API over reqwest. Errors keep the server's `{error, message}` so callers can act on
//! the code (`already_accepted`, `token_expired`, …).

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use uuid::Uuid;
use wrenchline_protocol::{
    AuthTokens, ErrorBody, LoginRequest, Message, Plan, PostMessageRequest, RefreshRequest,
    ServerTime, Session,
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
        let mut request = self.http.request(method, format!("{}{path}", self.base));
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
        Err(ClientError::Api { status, body })
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
        let request = PostMessageRequest {
            body: body.into(),
            client_id: client_id.into(),
            attachment_ids: Vec::new(),
        };
        self.call(
            Method::POST,
            &format!("/api/sessions/{id}/messages"),
            Some(&request),
        )
        .await
    }
}
