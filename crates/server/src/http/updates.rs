//! Desktop app updates: answers tauri-plugin-updater's dynamic update check and serves the release
//! files, both from the releases folder the server is pointed at (`--releases-dir`).
//!
//! The folder holds one directory per version, exactly what `scripts/bundle.sh` writes to `dist/`:
//!
//! ```text
//! <releases_dir>/0.2.0/release.json              {version, notes, pub_date, platforms}
//! <releases_dir>/0.2.0/Wrenchline_0.2.0_amd64.deb
//! ```
//!
//! `platforms` maps the updater's `{target}-{arch}` key (`linux-x86_64`, `windows-x86_64`,
//! `darwin-aarch64`, optionally suffixed with a bundle type: `linux-x86_64-rpm`) to
//! `{file, signature}`, the signature being the content of Tauri's `.sig`. Only names listed there
//! are ever served, under a version that parses as semver, so no request can reach another path.
//!
//! Files are streamed from disk as they are sent, never compressed again (packages are compressed
//! already), and at most `release_downloads_at_once` (limits file) at a time; beyond that the
//! answer is 503 with `Retry-After`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::StreamExt as _;
use semver::Version;
use serde::{Deserialize, Serialize};
use tokio_util::io::ReaderStream;
use wrenchline_protocol::ErrorBody;

use crate::error::ApiError;
use crate::state::AppState;

/// The descriptor file inside each version directory.
pub const RELEASE_FILE: &str = "release.json";

/// Seconds a download refused for being one too many is told to wait.
const BUSY_RETRY_AFTER_SECONDS: u64 = 10;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/desk/updates/{target}/{arch}/{current_version}",
            get(check),
        )
        .route("/api/desk/releases/{version}/{file}", get(download))
}

/// `<releases_dir>/<version>/release.json`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Release {
    pub version: String,
    #[serde(default)]
    pub notes: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pub_date: Option<String>,
    pub platforms: BTreeMap<String, PlatformFile>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct PlatformFile {
    /// A plain file name beside `release.json`.
    pub file: String,
    /// The content of Tauri's `.sig` for that file: base64 of a minisign signature.
    pub signature: String,
}

/// Tauri's dynamic update manifest, answered with 200 when an update exists.
#[derive(Debug, Serialize)]
pub struct UpdateManifest {
    pub version: String,
    pub notes: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pub_date: Option<String>,
    pub url: String,
    pub signature: String,
}

#[derive(Debug, Deserialize)]
pub struct CheckQuery {
    /// `deb`, `rpm`, `msi`, `nsis`, `app`, `appimage`: prefers `{target}-{arch}-{bundle_type}`.
    bundle_type: Option<String>,
}

async fn check(
    State(state): State<AppState>,
    UrlPath((target, arch, current_version)): UrlPath<(String, String, String)>,
    Query(query): Query<CheckQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let dir = releases_dir(&state)?;
    let current = parse_version(&current_version)?;
    for part in [Some(&target), Some(&arch), query.bundle_type.as_ref()]
        .into_iter()
        .flatten()
    {
        if !is_platform_word(part) {
            return Err(bad_request(
                "invalid_platform",
                "Target, arch and bundle type are short lowercase words",
            ));
        }
    }
    let mut keys = Vec::new();
    if let Some(bundle) = &query.bundle_type {
        keys.push(format!("{target}-{arch}-{bundle}"));
    }
    keys.push(format!("{target}-{arch}"));

    let Some((version, release, entry)) = newest_release_for(&dir, &current, &keys).await? else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let url = format!(
        "{}/api/desk/releases/{version}/{}",
        base_url(&state, &headers),
        entry.file
    );
    Ok(Json(UpdateManifest {
        version: version.to_string(),
        notes: release.notes,
        pub_date: release.pub_date,
        url,
        signature: entry.signature,
    })
    .into_response())
}

async fn download(
    State(state): State<AppState>,
    UrlPath((version, file)): UrlPath<(String, String)>,
) -> Result<Response, ApiError> {
    let dir = releases_dir(&state)?;
    let version = parse_version(&version)?;
    if !is_plain_file_name(&file) {
        return Err(bad_request(
            "invalid_file_name",
            "A release file is a plain file name",
        ));
    }
    let release = read_release(&dir, &version)
        .await?
        .ok_or_else(|| ApiError::not_found("release"))?;
    if !release.platforms.values().any(|p| p.file == file) {
        return Err(ApiError::not_found("release file"));
    }
    let Some(permit) = state.limiters.download() else {
        return Ok(busy());
    };
    let path = dir.join(version.to_string()).join(&file);
    let opened = match tokio::fs::File::open(&path).await {
        Ok(opened) => opened,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::warn!(path = %path.display(), "release.json names a file that is missing");
            return Err(ApiError::not_found("release file"));
        }
        Err(e) => return Err(ApiError::Internal(e.into())),
    };
    let length = opened
        .metadata()
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .len();
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{file}\""))
        .map_err(|e| ApiError::Internal(e.into()))?;
    // The place among the downloads running at once is held until the last byte is sent (or
    // the client goes away and the body is dropped).
    let stream = ReaderStream::new(opened).map(move |chunk| {
        let _held = &permit;
        chunk
    });
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CONTENT_LENGTH, HeaderValue::from(length)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=86400, immutable"),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// 503 with `Retry-After`: every place for a download is taken.
fn busy() -> Response {
    let body = ErrorBody {
        error: "downloads_busy".into(),
        message: format!(
            "Too many downloads are running; try again in {BUSY_RETRY_AFTER_SECONDS} s"
        ),
        fields: Default::default(),
        missing: Vec::new(),
        session: None,
    };
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(
            header::RETRY_AFTER,
            HeaderValue::from(BUSY_RETRY_AFTER_SECONDS),
        )],
        Json(body),
    )
        .into_response()
}

fn releases_dir(state: &AppState) -> Result<PathBuf, ApiError> {
    state
        .settings
        .releases_dir
        .clone()
        .ok_or_else(|| ApiError::NotFound {
            code: "updates_not_configured",
            message: "This server does not distribute desktop releases".into(),
        })
}

fn bad_request(code: &'static str, message: &str) -> ApiError {
    ApiError::BadRequest {
        code,
        message: message.into(),
    }
}

/// A version from a URL; only the canonical form is accepted, so it is also a safe directory name.
fn parse_version(raw: &str) -> Result<Version, ApiError> {
    let raw = raw.strip_prefix('v').unwrap_or(raw);
    match Version::parse(raw) {
        Ok(v) if v.to_string() == raw => Ok(v),
        _ => Err(bad_request(
            "invalid_version",
            "The version is not a semantic version like 1.2.3",
        )),
    }
}

fn is_platform_word(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// No separators, no leading dot (so no `..`, no hidden files), printable ASCII only.
fn is_plain_file_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+'))
        && s != RELEASE_FILE
}

/// The release at `<dir>/<version>/release.json`; `None` when absent. A descriptor that does not
/// parse or names another version is logged and ignored rather than served.
async fn read_release(dir: &Path, version: &Version) -> Result<Option<Release>, ApiError> {
    let path = dir.join(version.to_string()).join(RELEASE_FILE);
    let text = match tokio::fs::read_to_string(&path).await {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ApiError::Internal(e.into())),
    };
    let release: Release = match serde_json::from_str(&text) {
        Ok(release) => release,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "ignoring an unreadable release.json");
            return Ok(None);
        }
    };
    if Version::parse(release.version.trim_start_matches('v'))
        .ok()
        .as_ref()
        != Some(version)
    {
        tracing::warn!(path = %path.display(), "ignoring a release.json whose version is not its folder's");
        return Ok(None);
    }
    if let Some(bad) = release
        .platforms
        .values()
        .find(|p| !is_plain_file_name(&p.file))
    {
        tracing::warn!(path = %path.display(), file = %bad.file, "ignoring a release.json naming a non-plain file");
        return Ok(None);
    }
    Ok(Some(release))
}

/// The highest version above `current` whose release has one of `keys` (tried in order).
async fn newest_release_for(
    dir: &Path,
    current: &Version,
    keys: &[String],
) -> Result<Option<(Version, Release, PlatformFile)>, ApiError> {
    let mut versions = Vec::new();
    let mut entries = match tokio::fs::read_dir(dir).await {
        Ok(entries) => entries,
        Err(e) => {
            tracing::error!(dir = %dir.display(), error = %e, "cannot read the releases folder");
            return Err(ApiError::Internal(e.into()));
        }
    };
    while let Some(entry) = entries
        .next_entry()
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
    {
        if let Some(version) = entry
            .file_name()
            .to_str()
            .and_then(|name| Version::parse(name).ok())
            .filter(|v| v > current)
        {
            versions.push(version);
        }
    }
    versions.sort_unstable_by(|a, b| b.cmp(a));
    for version in versions {
        let Some(release) = read_release(dir, &version).await? else {
            continue;
        };
        if let Some(entry) = keys.iter().find_map(|k| release.platforms.get(k)).cloned() {
            return Ok(Some((version, release, entry)));
        }
    }
    Ok(None)
}

/// Where the updater should download from: the configured public URL (set it behind a TLS
/// proxy), else this request's host.
fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(url) = &state.settings.public_url {
        return url.trim_end_matches('/').to_string();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_must_be_canonical_semver() {
        assert!(parse_version("0.2.0").is_ok());
        assert!(parse_version("v0.2.0").is_ok());
        assert!(parse_version("1.0.0-beta.1").is_ok());
        for bad in ["..", "0.2", "0.2.0/..", "../0.2.0", "00.2.0", "", "0.2.0 "] {
            assert!(parse_version(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn file_names_are_plain() {
        assert!(is_plain_file_name("Wrenchline_0.2.0_amd64.deb"));
        assert!(is_plain_file_name("Wrenchline-0.2.0-1.x86_64.rpm"));
        for bad in [
            "..",
            "../x",
            "/etc/passwd",
            "a/b",
            "a\\b",
            ".hidden",
            "release.json",
            "",
            "a\0b",
        ] {
            assert!(!is_plain_file_name(bad), "{bad:?}");
        }
    }
}
