//! Request extractors whose rejections speak the API's error format, `Caller`: who is making
//! the request, from a bearer token or the customer's identity cookie, and `ClientAddr`: where
//! the request comes from, for per-address limits and the request log.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, OptionalFromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap};
use axum_extra::extract::CookieJar;
use wrenchline_protocol::{Role, User};

use crate::auth::{scope_reaches, Scope, TokenError, TokenKind};
use crate::error::ApiError;
use crate::proxy::TrustedProxies;
use crate::state::AppState;

/// The customer's identity cookie.
pub const CUSTOMER_COOKIE: &str = "wl_customer";

#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// The client's address: the connection's peer, or behind a trusted reverse proxy the address
/// the proxy forwarded (see [`TrustedProxies::client_addr`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

impl ClientAddr {
    /// The client of a request as the server received it; `None` when the connection's peer
    /// address was not recorded.
    pub fn of(
        extensions: &Extensions,
        headers: &HeaderMap,
        proxies: &TrustedProxies,
    ) -> Option<ClientAddr> {
        let ConnectInfo(peer) = extensions.get::<ConnectInfo<SocketAddr>>()?;
        Some(ClientAddr(proxies.client_addr(peer.ip(), headers)))
    }
}

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        ClientAddr::of(
            &parts.extensions,
            &parts.headers,
            &state.settings.trusted_proxies,
        )
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("the connection's peer is unknown")))
    }
}

/// An authenticated user.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
    /// Authenticated by the identity cookie rather than a bearer token.
    pub via_cookie: bool,
    /// The sessions this identity reaches (`None`: all of the user's); see [`Scope`].
    pub scope: Scope,
}

impl Caller {
    pub fn role(&self) -> Role {
        self.user.role
    }

    /// Whether this identity reaches `session` at all (being its participant is checked apart).
    pub fn reaches(&self, session: uuid::Uuid) -> bool {
        scope_reaches(&self.scope, session)
    }

    /// The caller as the session rules see it.
    pub fn actor(&self) -> crate::lifecycle::Actor<'_> {
        crate::lifecycle::Actor {
            user: &self.user,
            scope: &self.scope,
        }
    }

    pub fn require_mechanic(&self) -> Result<(), ApiError> {
        if self.user.role == Role::Mechanic {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "mechanics_only",
                "Only mechanics can do this",
            ))
        }
    }

    pub fn require_customer(&self) -> Result<(), ApiError> {
        if self.user.role == Role::Customer {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "customers_only",
                "Only the customer can do this",
            ))
        }
    }
}

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn token_error(e: TokenError) -> ApiError {
    match e {
        TokenError::Expired => ApiError::Unauthorized {
            code: "token_expired",
            message: "Your sign-in has expired; refresh it".into(),
        },
        TokenError::Invalid => ApiError::Unauthorized {
            code: "invalid_token",
            message: "The credentials are not valid".into(),
        },
    }
}

async fn resolve(parts: &mut Parts, state: &AppState) -> Result<Option<Caller>, ApiError> {
    let (token, kind, via_cookie) = if let Some(token) = bearer(parts) {
        (token.to_string(), TokenKind::Access, false)
    } else {
        let jar = CookieJar::from_headers(&parts.headers);
        match jar.get(CUSTOMER_COOKIE) {
            Some(cookie) => (cookie.value().to_string(), TokenKind::Customer, true),
            None => return Ok(None),
        }
    };
    let claims = match state.signer.verify(&token, kind) {
        Ok(claims) => claims,
        // A stale cookie is no identity at all: the browser simply starts afresh.
        Err(_) if via_cookie => return Ok(None),
        Err(e) => return Err(token_error(e)),
    };
    let Some(user) = state.store.user(claims.sub).await? else {
        return if via_cookie {
            Ok(None)
        } else {
            Err(ApiError::unauthorized(
                "This account no longer exists or is disabled",
            ))
        };
    };
    if user.role != claims.role || (via_cookie && user.role != Role::Customer) {
        return Err(token_error(TokenError::Invalid));
    }
    Ok(Some(Caller {
        user,
        via_cookie,
        scope: claims.scope,
    }))
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        resolve(parts, state)
            .await?
            .ok_or_else(|| ApiError::unauthorized("Sign in first"))
    }
}

impl OptionalFromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, ApiError> {
        resolve(parts, state).await
    }
}
