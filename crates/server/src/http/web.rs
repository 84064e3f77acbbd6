//! The customer's web link: the front-end built from `ui/` and embedded in the binary, served at
//! `/` with a strict Content-Security-Policy. Paths that are not files get the app shell, which
//! routes on the client; unknown API paths keep their JSON 404.

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

use crate::error::ApiError;

#[derive(RustEmbed)]
#[folder = "../../ui/dist/"]
struct Assets;

/// No inline script or style, nothing from another origin; realtime connects back to this origin.
/// `blob:` images and media are the previews of files picked on the page itself, before upload.
pub const PAGE_CSP: &str =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
     media-src 'self' blob:; font-src 'self'; connect-src 'self'; object-src 'none'; \
     base-uri 'self'; form-action 'self'; frame-ancestors 'none'";

const SHELL: &str = "index.html";

fn asset(path: &str) -> Option<Response> {
    let file = Assets::get(path)?;
    let mime = file.metadata.mimetype();
    let cache = if path.starts_with("assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let mut response = Response::new(Body::from(file.data.into_owned()));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(mime).unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_CSP),
    );
    Some(response)
}

/// The fallback of the whole router.
pub async fn serve(uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    if path.starts_with("api/") || path == "api" || path.starts_with("realtime/") {
        return ApiError::NotFound {
            code: "not_found",
            message: "No such endpoint".into(),
        }
        .into_response();
    }
    if let Some(response) = (!path.is_empty()).then(|| asset(path)).flatten() {
        return response;
    }
    // A missing file is missing; only page routes fall back to the app shell.
    if path.starts_with("assets/")
        || path
            .rsplit('/')
            .next()
            .is_some_and(|last| last.contains('.'))
    {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    }
    match asset(SHELL) {
        Some(response) => response,
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the web front-end was not built into this server",
        )
            .into_response(),
    }
}
