//! The HTTP surface: one module per resource, merged here with the layers every request passes
//! (tracing, metrics, the cross-origin write check, the body limit and security headers).

pub mod attachments;
pub mod auth;
pub mod availability;
pub mod intake;
pub mod messages;
pub mod meta;
pub mod reviews;
pub mod sessions;
pub mod updates;
pub mod waiting;
pub mod web;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower_http::compression::predicate::{DefaultPredicate, NotForContentType, Predicate};
use tower_http::compression::CompressionLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tower_http::LatencyUnit;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::ApiError;
use crate::extract::ClientAddr;
use crate::metrics::HttpLabels;
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "Wrenchline API", description = "Remote help for drivers: intake, sessions, chat and sign-in."),
    paths(
        intake::plans, intake::waiver, intake::intake, intake::sign_waiver, intake::resume_link, intake::resume, intake::check_resume,
        availability::availability,
        sessions::requests, sessions::session, sessions::accept, sessions::start, sessions::end,
        messages::history, messages::post,
        attachments::upload, attachments::file, attachments::thumbnail,
        auth::login, auth::refresh, auth::logout, auth::customer_token,
        meta::healthz, meta::readyz, meta::openapi, meta::server_time, meta::public_config,
        waiting::waiting_room,
        reviews::outcome, reviews::rate, reviews::write_summary, reviews::notes, reviews::write_notes, reviews::history,
    ),
    modifiers(&SecuritySchemes),
    tags(
        (name = "customer", description = "The customer's web link"),
        (name = "mechanic", description = "Mechanics' request feed"),
        (name = "session", description = "A session's participants"),
        (name = "auth", description = "Sign-in and tokens"),
        (name = "meta", description = "Operations"),
    )
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "customer_cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(
                crate::extract::CUSTOMER_COOKIE,
            ))),
        );
    }
}

pub fn router(state: AppState) -> Router {
    let body_limit = state.settings.body_limit;
    let proxies = state.settings.trusted_proxies.clone();
    Router::new()
        .merge(intake::router())
        .merge(availability::router())
        .merge(sessions::router())
        .merge(messages::router())
        .merge(attachments::router())
        .merge(auth::router())
        .merge(meta::router())
        .merge(updates::router())
        .merge(waiting::router())
        .merge(reviews::router())
        .merge(crate::realtime::router())
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .fallback(web::serve)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn(same_origin_writes))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        ))
        // Release packages (application/octet-stream) are compressed already and streamed.
        .layer(CompressionLayer::new().compress_when(
            DefaultPredicate::new().and(NotForContentType::const_new("application/octet-stream")),
        ))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(move |request: &Request| {
                    let client = ClientAddr::of(request.extensions(), request.headers(), &proxies);
                    // The path only: query strings carry resume tokens and realtime API keys.
                    tracing::info_span!(
                        "request",
                        method = %request.method(),
                        path = %request.uri().path(),
                        client = client.map(|c| tracing::field::display(c.0)),
                    )
                })
                // One line per request at info: the span's method, path and client, with the
                // status and latency.
                .on_response(
                    DefaultOnResponse::new()
                        .level(tracing::Level::INFO)
                        .latency_unit(LatencyUnit::Millis),
                ),
        )
        .with_state(state)
}

async fn method_not_allowed() -> Response {
    let body = ApiError::BadRequest {
        code: "method_not_allowed",
        message: "This endpoint does not take that method".into(),
    }
    .body();
    (StatusCode::METHOD_NOT_ALLOWED, axum::Json(body)).into_response()
}

/// Refuses state-changing requests that a browser sent from another origin (CSRF defence in depth
/// beside the SameSite=Strict cookie). Requests without an `Origin` header come from non-browser
/// clients, which carry no ambient credentials.
async fn same_origin_writes(request: Request, next: Next) -> Response {
    let safe = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if !safe {
        if let Some(origin) = request.headers().get(header::ORIGIN) {
            let host = request
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok());
            let origin_host = origin
                .to_str()
                .ok()
                .and_then(|o| o.split_once("://"))
                .map(|(_, rest)| rest.trim_end_matches('/'));
            if host.is_none() || origin_host != host {
                return ApiError::forbidden(
                    "cross_origin",
                    "Requests from other sites are not accepted",
                )
                .into_response();
            }
        }
    }
    next.run(request).await
}

async fn count_requests(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let response = next.run(request).await;
    state
        .metrics
        .http_requests
        .get_or_create(&HttpLabels {
            method,
            route,
            status: response.status().as_u16(),
        })
        .inc();
    response
}
