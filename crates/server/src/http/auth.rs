//! Sign-in: mechanics log in with a password and keep a rotating refresh token; customers trade
//! their identity cookie for a short-lived access token to hand to realtime.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use time::OffsetDateTime;
use uuid::Uuid;
use wrenchline_protocol::intake::EMAIL_MAX;
use wrenchline_protocol::text::{Lines, CONTROL_CHARACTER_MESSAGE};
use wrenchline_protocol::{
    AccessToken, AuthTokens, ErrorBody, FieldErrors, LoginRequest, RefreshRequest, User,
};

use crate::auth::{self, TokenKind};
use crate::error::ApiError;
use crate::extract::{ApiJson, Caller, ClientAddr};
use crate::state::AppState;
use crate::storage::RefreshUse;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/auth/login", post(login))
        .route("/api/auth/refresh", post(refresh))
        .route("/api/auth/logout", post(logout))
        .route("/api/auth/token", post(customer_token))
}

fn invalid_credentials() -> ApiError {
    ApiError::Unauthorized {
        code: "invalid_credentials",
        message: "Wrong email or password".into(),
    }
}

async fn issue(
    state: &AppState,
    user: User,
    family_id: String,
    now: OffsetDateTime,
) -> Result<AuthTokens, ApiError> {
    let settings = &state.settings;
    let refresh_token = auth::random_token();
    state
        .store
        .insert_refresh_token(
            &auth::token_hash(&refresh_token),
            &family_id,
            user.id,
            now,
            now + settings.refresh_token_ttl,
        )
        .await?;
    let access_token = state.signer.sign(
        &user,
        TokenKind::Access,
        settings.access_token_ttl,
        None,
        now,
    );
    Ok(AuthTokens {
        access_token,
        refresh_token,
        expires_in: settings.access_token_ttl.whole_seconds() as u64,
        user,
    })
}

/// The address a sign-in looks up: trimmed and in lower case; a field error when it is longer
/// than an email address can be (counted as sent, like the intake's) or holds control
/// characters (any other text is a 401 when no account has it).
pub(crate) fn login_email(sent: &str) -> Result<String, &'static str> {
    if sent.chars().count() > EMAIL_MAX {
        return Err(EMAIL_TOO_LONG_MESSAGE);
    }
    let email = sent.trim().to_lowercase();
    if !Lines::One.allows(&email) {
        return Err(CONTROL_CHARACTER_MESSAGE);
    }
    Ok(email)
}

const EMAIL_TOO_LONG_MESSAGE: &str = "An email address has at most 254 characters";

#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = LoginRequest, security(()),
    responses(
        (status = 200, description = "Signed in", body = AuthTokens),
        (status = 400, description = "malformed_json", body = ErrorBody),
        (status = 401, description = "invalid_credentials: unknown email, wrong password or a disabled account", body = ErrorBody),
        (status = 403, description = "cross_origin: sent by a browser from another site", body = ErrorBody),
        (status = 413, description = "body_too_large", body = ErrorBody),
        (status = 415, description = "unsupported_media_type: the body is not sent as JSON", body = ErrorBody),
        (status = 422, description = "invalid_body: a field is missing or has the wrong type; or validation_failed: the email holds control characters or is longer than 254 characters", body = ErrorBody),
        (status = 429, description = "rate_limited: too many attempts from this address, or too many failures for this account from this address", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds until the next attempt is allowed"))),
        (status = 500, description = "internal", body = ErrorBody)))]
pub async fn login(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<Json<AuthTokens>, ApiError> {
    // Checked before any limiter, so an oversized address neither counts nor is kept as a key.
    let email = login_email(&body.email).map_err(|problem| {
        let mut fields = FieldErrors::new();
        fields.insert("email".into(), problem.into());
        ApiError::validation(fields)
    })?;
    state.limiters.login(client, &email).await?;
    let record = state.store.mechanic_by_email(&email).await?;
    let hash = record
        .as_ref()
        .filter(|r| !r.disabled)
        .map(|r| r.password_hash.clone());
    let password = body.password;
    let ok = auth::hashing(move || auth::verify_password(&password, hash.as_deref())).await;
    let (true, Some(record)) = (ok, record) else {
        state.limiters.login_failed(client, &email).await;
        return Err(invalid_credentials());
    };
    state.limiters.login_succeeded(client, &email).await;
    let now = state.now();
    Ok(Json(
        issue(&state, record.user, Uuid::new_v4().to_string(), now).await?,
    ))
}

#[utoipa::path(post, path = "/api/auth/refresh", tag = "auth", request_body = RefreshRequest, security(()),
    responses(
        (status = 200, description = "New tokens; the presented refresh token is spent", body = AuthTokens),
        (status = 400, description = "malformed_json", body = ErrorBody),
        (status = 401, description = "invalid_refresh_token, or refresh_token_reused (the whole family is revoked)", body = ErrorBody),
        (status = 403, description = "cross_origin: sent by a browser from another site", body = ErrorBody),
        (status = 413, description = "body_too_large", body = ErrorBody),
        (status = 415, description = "unsupported_media_type: the body is not sent as JSON", body = ErrorBody),
        (status = 422, description = "invalid_body: a field is missing or has the wrong type", body = ErrorBody),
        (status = 500, description = "internal", body = ErrorBody)))]
pub async fn refresh(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> Result<Json<AuthTokens>, ApiError> {
    let now = state.now();
    match state
        .store
        .use_refresh_token(&auth::token_hash(body.refresh_token.trim()), now)
        .await?
    {
        RefreshUse::Rotated { family_id, user_id } => {
            let Some(user) = state.store.user(user_id).await? else {
                state.store.revoke_family(&family_id, now).await?;
                return Err(ApiError::unauthorized(
                    "This account no longer exists or is disabled",
                ));
            };
            Ok(Json(issue(&state, user, family_id, now).await?))
        }
        RefreshUse::Reused => Err(ApiError::Unauthorized {
            code: "refresh_token_reused",
            message: "This sign-in was already used elsewhere; sign in again".into(),
        }),
        RefreshUse::Invalid => Err(ApiError::Unauthorized {
            code: "invalid_refresh_token",
            message: "This sign-in is no longer valid; sign in again".into(),
        }),
    }
}

#[utoipa::path(post, path = "/api/auth/logout", tag = "auth", request_body = RefreshRequest, security(()),
    responses(
        (status = 204, description = "Signed out: every token of this sign-in is revoked (an unknown token is already signed out)"),
        (status = 400, description = "malformed_json", body = ErrorBody),
        (status = 403, description = "cross_origin: sent by a browser from another site", body = ErrorBody),
        (status = 413, description = "body_too_large", body = ErrorBody),
        (status = 415, description = "unsupported_media_type: the body is not sent as JSON", body = ErrorBody),
        (status = 422, description = "invalid_body: a field is missing or has the wrong type", body = ErrorBody),
        (status = 500, description = "internal", body = ErrorBody)))]
pub async fn logout(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> Result<StatusCode, ApiError> {
    if let Some(family) = state
        .store
        .refresh_family(&auth::token_hash(body.refresh_token.trim()))
        .await?
    {
        state.store.revoke_family(&family, state.now()).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/auth/token", tag = "auth",
    security(("customer_cookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "An access token for this browser's customer", body = AccessToken),
        (status = 401, description = "unauthorized, invalid_token or token_expired: no customer identity", body = ErrorBody),
        (status = 403, description = "customers_only (a mechanic's token), or cross_origin", body = ErrorBody),
        (status = 500, description = "internal", body = ErrorBody)))]
pub async fn customer_token(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<AccessToken>, ApiError> {
    caller.require_customer()?;
    let ttl = state.settings.access_token_ttl;
    let access_token = state.signer.sign(
        &caller.user,
        TokenKind::Access,
        ttl,
        caller.scope.clone(),
        state.now(),
    );
    Ok(Json(AccessToken {
        access_token,
        expires_in: ttl.whole_seconds() as u64,
        user: caller.user,
    }))
}
