//! The customer's way in: plans, the waiver text, the intake that creates the customer identity
//! and a pending session, the waiver signature that offers it to mechanics, and resume links:
//! short-lived, single-use, stored as hashes, granting the linked session only, and never
//! replacing another customer's identity in a browser without its consent.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use axum_extra::extract::cookie::{Cookie, SameSite};
use axum_extra::extract::CookieJar;
use uuid::Uuid;
use wrenchline_protocol::text::{Lines, CONTROL_CHARACTER_MESSAGE};
use wrenchline_protocol::{
    ErrorBody, Intake, IntakeRequest, IntakeResponse, Plan, ResumeCheck, ResumeCheckRequest,
    ResumeLink, ResumeRequest, ResumeResponse, Role, User, Waiver, WaiverRequest, WaiverResponse,
};

use crate::auth::{self, scope_with, Scope, TokenKind};
use crate::error::ApiError;
use crate::events::Change;
use crate::extract::{ApiJson, ApiPath, Caller, ClientAddr, CUSTOMER_COOKIE};
use crate::lifecycle;
use crate::state::AppState;
use crate::storage::ResumeUse;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/plans", get(plans))
        .route("/api/waiver", get(waiver))
        .route("/api/intake", post(intake))
        .route("/api/sessions/{id}/waiver", post(sign_waiver))
        .route("/api/sessions/{id}/resume-link", post(resume_link))
        .route("/api/resume", post(resume))
        .route("/api/resume/check", post(check_resume))
}

/// The identity cookie: HttpOnly, Secure, SameSite=Strict, for the whole site; `scope` limits it
/// to some of the customer's sessions.
fn identity_cookie(state: &AppState, user: &User, scope: Scope) -> Cookie<'static> {
    let ttl = state.settings.customer_cookie_ttl;
    let token = state
        .signer
        .sign(user, TokenKind::Customer, ttl, scope, state.now());
    Cookie::build((CUSTOMER_COOKIE, token))
        .http_only(true)
        .secure(true)
        .same_site(SameSite::Strict)
        .path("/")
        .max_age(ttl)
        .build()
}

#[utoipa::path(get, path = "/api/plans", tag = "customer", security(()),
    responses((status = 200, description = "Bookable plans", body = [Plan])))]
pub async fn plans(State(state): State<AppState>) -> Json<Vec<Plan>> {
    Json(state.settings.plans.clone())
}

#[utoipa::path(get, path = "/api/waiver", tag = "customer", security(()),
    responses((status = 200, description = "The waiver customers sign", body = Waiver)))]
pub async fn waiver(State(state): State<AppState>) -> Json<Waiver> {
    Json(state.settings.waiver.clone())
}

#[utoipa::path(post, path = "/api/intake", tag = "customer", request_body = IntakeRequest,
    security((), ("customer_cookie" = []), ("bearer" = [])),
    responses(
        (status = 201, description = "Pending session created. A browser without a customer identity, or whose identity has another email, gets a new customer (another email is never a rename)", body = IntakeResponse,
            headers(("Set-Cookie" = String, description = "`wl_customer`, the new customer's identity (HttpOnly, Secure, SameSite=Strict)"))),
        (status = 400, description = "malformed_json", body = ErrorBody),
        (status = 401, description = "invalid_token or token_expired: a bearer token was sent and is not valid", body = ErrorBody),
        (status = 403, description = "customers_only (a mechanic's token), or cross_origin", body = ErrorBody),
        (status = 413, description = "body_too_large", body = ErrorBody),
        (status = 415, description = "unsupported_media_type: the body is not sent as JSON", body = ErrorBody),
        (status = 422, description = "validation_failed, with a message per field in `fields`; or invalid_body (wrong types)", body = ErrorBody),
        (status = 429, description = "rate_limited: too many intakes from this address", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds until the next intake is allowed"))),
        (status = 500, description = "internal", body = ErrorBody)))]
pub async fn intake(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    caller: Option<Caller>,
    jar: CookieJar,
    ApiJson(raw): ApiJson<IntakeRequest>,
) -> Result<impl IntoResponse, ApiError> {
    state.limiters.intake(client).await?;
    if caller.as_ref().is_some_and(|c| c.role() == Role::Mechanic) {
        return Err(ApiError::forbidden(
            "customers_only",
            "Mechanics cannot file requests",
        ));
    }
    let now = state.now();
    let plan_id = raw.plan.trim().to_string();
    let parsed = Intake::parse(raw, now.year());
    let plan = state.settings.plan(&plan_id).cloned();
    let intake = match (parsed, &plan) {
        (Ok(intake), Some(_)) => intake,
        (Ok(_), None) => {
            let mut fields = wrenchline_protocol::FieldErrors::new();
            fields.insert(
                "plan".into(),
                "Please choose one of the plans offered".into(),
            );
            return Err(ApiError::validation(fields));
        }
        (Err(mut fields), plan) => {
            if plan.is_none() && !fields.contains_key("plan") {
                fields.insert(
                    "plan".into(),
                    "Please choose one of the plans offered".into(),
                );
            }
            return Err(ApiError::validation(fields));
        }
    };
    let plan = plan.expect("checked above");
    let store = &state.store;
    // The browser's identity carries on only for the same person: another email is another
    // customer, never a rename of whoever used this browser before.
    let returning = caller.filter(|c| same_email(&c.user.email, &intake.email));
    let user = match &returning {
        Some(caller) if caller.scope.is_none() => {
            store
                .update_customer_contact(
                    caller.user.id,
                    &intake.name,
                    &intake.email,
                    intake.phone.as_deref(),
                )
                .await?;
            User {
                name: intake.name.clone(),
                email: intake.email.clone(),
                ..caller.user.clone()
            }
        }
        // A browser that came in by a resume link files for the customer but does not edit them.
        Some(caller) => caller.user.clone(),
        None => {
            store
                .create_customer(&intake.name, &intake.email, intake.phone.as_deref(), now)
                .await?
        }
    };
    let session = store
        .create_session(user.id, &intake, plan.minutes, now)
        .await?;
    let jar = match &returning {
        Some(caller) if caller.scope.is_none() => jar,
        Some(caller) => jar.add(identity_cookie(
            &state,
            &user,
            scope_with(&caller.scope, session.id),
        )),
        None => jar.add(identity_cookie(&state, &user, None)),
    };
    state.metrics.transition("pending");
    state
        .events
        .publish(Change::SessionInserted(session.clone()));
    Ok((
        jar,
        (StatusCode::CREATED, Json(IntakeResponse { session, user })),
    ))
}

/// Whether two addresses name the same mailbox as far as an intake is concerned.
fn same_email(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

/// What is wrong with a waiver signature, per field; empty when it can be recorded (the name
/// trimmed).
pub(crate) fn waiver_problems(body: &WaiverRequest) -> wrenchline_protocol::FieldErrors {
    let mut fields = wrenchline_protocol::FieldErrors::new();
    let signed_name = body.signed_name.trim();
    if signed_name.is_empty() || signed_name.chars().count() > wrenchline_protocol::intake::NAME_MAX
    {
        fields.insert("signed_name".into(), "Type your full name to sign".into());
    } else if !Lines::One.allows(signed_name) {
        fields.insert("signed_name".into(), CONTROL_CHARACTER_MESSAGE.into());
    }
    if !body.agree {
        fields.insert(
            "agree".into(),
            "You need to agree to the waiver to continue".into(),
        );
    }
    fields
}

#[utoipa::path(post, path = "/api/sessions/{id}/waiver", tag = "customer", request_body = WaiverRequest,
    params(("id" = Uuid, Path, description = "Session id")),
    security(("customer_cookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Signed; the session is now offered to mechanics", body = WaiverResponse),
        (status = 400, description = "malformed_json, or invalid_id: the id in the path is not a UUID", body = ErrorBody),
        (status = 401, description = "unauthorized, invalid_token or token_expired", body = ErrorBody),
        (status = 403, description = "customers_only (a mechanic's token), or cross_origin", body = ErrorBody),
        (status = 404, description = "not_found: no such session of this customer", body = ErrorBody),
        (status = 409, description = "already_signed or session_closed, with the current `session`", body = ErrorBody),
        (status = 413, description = "body_too_large", body = ErrorBody),
        (status = 415, description = "unsupported_media_type: the body is not sent as JSON", body = ErrorBody),
        (status = 422, description = "validation_failed, with `fields`; or invalid_body (wrong types)", body = ErrorBody),
        (status = 500, description = "internal", body = ErrorBody)))]
pub async fn sign_waiver(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<WaiverRequest>,
) -> Result<Json<WaiverResponse>, ApiError> {
    let fields = waiver_problems(&body);
    if !fields.is_empty() {
        return Err(ApiError::validation(fields));
    }
    let session =
        lifecycle::sign_waiver(&state, &caller.actor(), id, body.signed_name.trim()).await?;
    let next = format!("/thank-you?session={}&plan={}", session.id, session.plan);
    Ok(Json(WaiverResponse { session, next }))
}

fn invalid_link() -> ApiError {
    ApiError::BadRequest {
        code: "invalid_resume_link",
        message: "This link is not valid".into(),
    }
}

fn used_link() -> ApiError {
    ApiError::Gone {
        code: "resume_link_used",
        message: "This link was already used — ask for a new one from the device you started on"
            .into(),
    }
}

fn expired_link() -> ApiError {
    ApiError::Gone {
        code: "resume_link_expired",
        message: "This link has expired — ask for a new one from the device you started on".into(),
    }
}

/// The customer identity a browser holds, if any. These endpoints need no credentials, so a
/// mechanic's token, or one that is not valid, counts as none.
fn browser_customer(caller: Result<Option<Caller>, ApiError>) -> Option<Caller> {
    caller.ok().flatten().filter(|c| c.role() == Role::Customer)
}

/// A resume link that can still be used, looked up by its token without using it.
async fn usable_link(
    state: &AppState,
    token: &str,
) -> Result<(String, crate::storage::ResumeLinkRecord), ApiError> {
    let hash = auth::token_hash(token.trim());
    let link = state
        .store
        .resume_link(&hash)
        .await?
        .ok_or_else(invalid_link)?;
    if link.used_at.is_some() {
        return Err(used_link());
    }
    if link.expires_at <= state.now() {
        return Err(expired_link());
    }
    Ok((hash, link))
}

#[utoipa::path(post, path = "/api/sessions/{id}/resume-link", tag = "customer",
    params(("id" = Uuid, Path, description = "Session id")),
    security(("customer_cookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "A link that opens this session, and only this one, in another browser: it works once, until `expires_at` (10 minutes by default, `--resume-link-ttl`); the token is in the URL fragment", body = ResumeLink),
        (status = 400, description = "invalid_id: the id in the path is not a UUID", body = ErrorBody),
        (status = 401, description = "unauthorized, invalid_token or token_expired", body = ErrorBody),
        (status = 403, description = "customers_only (a mechanic's token), or cross_origin", body = ErrorBody),
        (status = 404, description = "not_found: no such session of this customer", body = ErrorBody),
        (status = 500, description = "internal", body = ErrorBody)))]
pub async fn resume_link(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<ResumeLink>, ApiError> {
    caller.require_customer()?;
    let session = lifecycle::participating(&state, &caller.actor(), id).await?;
    let now = state.now();
    let now = now.replace_nanosecond(0).unwrap_or(now);
    let expires_at = now + state.settings.resume_link_ttl;
    let token = auth::random_token();
    state
        .store
        .insert_resume_link(
            &auth::token_hash(&token),
            session.id,
            caller.user.id,
            now,
            expires_at,
        )
        .await?;
    Ok(Json(ResumeLink {
        url: format!("/resume#token={token}"),
        expires_at,
    }))
}

#[utoipa::path(post, path = "/api/resume/check", tag = "customer", request_body = ResumeCheckRequest,
    security(()),
    responses(
        (status = 200, description = "The link can be used; whether using it would replace the customer identity this browser holds (read from its cookie, if any). The link stays unused", body = ResumeCheck),
        (status = 400, description = "malformed_json, or invalid_resume_link: no such link", body = ErrorBody),
        (status = 403, description = "cross_origin: sent by a browser from another site", body = ErrorBody),
        (status = 410, description = "resume_link_used: the link was already used; or resume_link_expired", body = ErrorBody),
        (status = 413, description = "body_too_large", body = ErrorBody),
        (status = 415, description = "unsupported_media_type: the body is not sent as JSON", body = ErrorBody),
        (status = 422, description = "invalid_body: a field is missing or has the wrong type", body = ErrorBody),
        (status = 500, description = "internal", body = ErrorBody)))]
pub async fn check_resume(
    State(state): State<AppState>,
    caller: Result<Option<Caller>, ApiError>,
    ApiJson(body): ApiJson<ResumeCheckRequest>,
) -> Result<Json<ResumeCheck>, ApiError> {
    let (_, link) = usable_link(&state, &body.token).await?;
    let current = browser_customer(caller);
    Ok(Json(ResumeCheck {
        switches_identity: current
            .as_ref()
            .is_some_and(|c| c.user.id != link.customer_id),
        current_user: current.map(|c| c.user),
        expires_at: link.expires_at,
    }))
}

#[utoipa::path(post, path = "/api/resume", tag = "customer", request_body = ResumeRequest, security(()),
    responses(
        (status = 200, description = "The link is spent and this browser now reaches the linked session (only that one, unless it already held the same customer's identity)", body = ResumeResponse,
            headers(("Set-Cookie" = String, description = "`wl_customer`, the identity for this session (HttpOnly, Secure, SameSite=Strict)"))),
        (status = 400, description = "malformed_json, or invalid_resume_link: no such link", body = ErrorBody),
        (status = 403, description = "cross_origin: sent by a browser from another site", body = ErrorBody),
        (status = 404, description = "not_found: the session or its customer no longer exists", body = ErrorBody),
        (status = 409, description = "identity_switch_required: this browser holds another customer's identity and `replace_identity` was not set; the link stays unused", body = ErrorBody),
        (status = 410, description = "resume_link_used: the link was already used (each link works once); or resume_link_expired", body = ErrorBody),
        (status = 413, description = "body_too_large", body = ErrorBody),
        (status = 415, description = "unsupported_media_type: the body is not sent as JSON", body = ErrorBody),
        (status = 422, description = "invalid_body: a field is missing or has the wrong type", body = ErrorBody),
        (status = 500, description = "internal", body = ErrorBody)))]
pub async fn resume(
    State(state): State<AppState>,
    caller: Result<Option<Caller>, ApiError>,
    jar: CookieJar,
    ApiJson(body): ApiJson<ResumeRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let (hash, link) = usable_link(&state, &body.token).await?;
    let current = browser_customer(caller);
    let same_customer = current.as_ref().filter(|c| c.user.id == link.customer_id);
    if current.is_some() && same_customer.is_none() && !body.replace_identity {
        return Err(ApiError::Conflict {
            code: "identity_switch_required",
            message: "This browser is signed in as another customer; confirm to switch it to \
                      this link's session"
                .into(),
            session: None,
            missing: Vec::new(),
        });
    }
    let session_id = match state.store.redeem_resume_link(&hash, state.now()).await? {
        ResumeUse::Redeemed { session_id, .. } => session_id,
        ResumeUse::AlreadyUsed => return Err(used_link()),
        ResumeUse::Expired => return Err(expired_link()),
        ResumeUse::Unknown => return Err(invalid_link()),
    };
    let user = state
        .store
        .user(link.customer_id)
        .await?
        .ok_or_else(|| ApiError::not_found("session"))?;
    let session = match state.store.session(session_id).await? {
        Some(s) if s.customer_id == user.id => s,
        _ => return Err(ApiError::not_found("session")),
    };
    let scope = match same_customer {
        Some(caller) => scope_with(&caller.scope, session.id),
        None => Some(vec![session.id]),
    };
    let jar = jar.add(identity_cookie(&state, &user, scope));
    let next = format!("/chat/{}", session.id);
    Ok((
        jar,
        Json(ResumeResponse {
            session,
            user,
            next,
        }),
    ))
}
