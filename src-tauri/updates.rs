//! Updates of the app itself, through tauri-plugin-updater against the mechanic's own
//! wrenchline-server (`/api/desk/updates/{target}/{arch}/{current_version}`, served from the
//! releases folder IT points it at). The app checks a little after start and then every few
//! hours, offers what it finds, and installs only when the mechanic says so. Every download is
//! verified against the public key compiled into the app before anything is written; a package
//! that does not match its signature is refused and nothing changes. IT can turn the whole thing
//! off in the managed settings (`updates = false`), and a per-machine MSI starts with it off.
//!
//! The UI hears of every change through the `update` event ([`UpdateView`]).

use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;
use tauri::{AppHandle, Emitter, Manager};
use tauri_plugin_updater::{Update, UpdaterExt};

use crate::desk::desk;
use crate::error::{Error, Result};

/// The first check waits for the app to settle (sign-in, feed) after a start.
const FIRST_CHECK_AFTER: Duration = Duration::from_secs(5);
/// Then a check this often while the app runs.
const CHECK_EVERY: Duration = Duration::from_secs(6 * 60 * 60);
/// How often the schedule looks whether a check is due.
const SCHEDULE_TICK: Duration = Duration::from_secs(60);
/// A check or download that takes longer than this has failed.
const TIMEOUT: Duration = Duration::from_secs(120);
/// Debug builds take the updater's public key from here, so developers and the test suite can
/// sign with throwaway keys. Release builds only trust the key compiled in.
pub const PUBKEY_ENV: &str = "WRENCHLINE_UPDATER_PUBKEY";

/// Where updates stand, as the UI shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum UpdateView {
    /// No checks: `reason` says why (a setting, IT, a build without an update key).
    Off {
        reason: String,
    },
    /// Not checked yet in this run.
    Idle,
    Checking,
    UpToDate,
    Available {
        version: String,
        notes: Option<String>,
    },
    Downloading {
        version: String,
        received: u64,
        total: Option<u64>,
    },
    /// Installed; the new version runs after a restart.
    Installed {
        version: String,
    },
    Failed {
        version: Option<String>,
        message: String,
    },
}

#[derive(Default)]
pub struct Updates {
    view: Mutex<Option<UpdateView>>,
    /// When the last check ran (the mechanic's or the schedule's).
    checked_at: Mutex<Option<std::time::Instant>>,
    /// What the last check found, kept for "Install".
    found: Mutex<Option<Update>>,
    /// One check or install at a time.
    busy: tokio::sync::Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn updates(app: &AppHandle) -> tauri::State<'_, Updates> {
    app.state::<Updates>()
}

/// The public key the app trusts: the one in `plugins.updater.pubkey` of the configuration
/// (filled in by the release bundle), or in debug builds [`PUBKEY_ENV`] if set.
fn trusted_key(app: &AppHandle) -> Option<String> {
    if cfg!(debug_assertions) {
        if let Some(key) = std::env::var(PUBKEY_ENV)
            .ok()
            .filter(|k| !k.trim().is_empty())
        {
            return Some(key.trim().to_string());
        }
    }
    app.config()
        .plugins
        .0
        .get("updater")
        .and_then(|u| u.get("pubkey"))
        .and_then(|k| k.as_str())
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_string)
}

/// The update endpoint of a server, with the updater's own placeholders left in.
pub fn endpoint(server_url: &str) -> Result<tauri::Url> {
    let base = crate::settings::normalize_server_url(server_url)
        .map_err(|_| Error::InvalidServerUrl(server_url.trim().to_string()))?;
    format!(
        "{base}/api/desk/updates/{{{{target}}}}/{{{{arch}}}}/{{{{current_version}}}}?bundle_type={{{{bundle_type}}}}"
    )
    .parse()
    .map_err(|_| Error::InvalidServerUrl(base))
}

/// Why no check may run now, if so.
fn off_reason(app: &AppHandle) -> Option<String> {
    let desk = desk(app);
    let view = desk.settings_view();
    if !view.values.updates {
        return Some(if view.locked.contains("updates") {
            "Updates are turned off by your IT department.".into()
        } else {
            "Updates are turned off in the settings.".into()
        });
    }
    if trusted_key(app).is_none() {
        return Some(
            "This build has no update signing key; new versions come with your IT department's packages."
                .into(),
        );
    }
    None
}

impl Updates {
    pub fn view(&self, app: &AppHandle) -> UpdateView {
        if let Some(reason) = off_reason(app) {
            return UpdateView::Off { reason };
        }
        lock(&self.view).clone().unwrap_or(UpdateView::Idle)
    }

    fn set(&self, app: &AppHandle, view: UpdateView) {
        *lock(&self.view) = Some(view.clone());
        let _ = app.emit("update", view);
    }
}

/// Asks the server whether a newer version exists.
pub async fn check(app: &AppHandle) -> Result<UpdateView> {
    let state = updates(app);
    if let Some(reason) = off_reason(app) {
        let view = UpdateView::Off { reason };
        let _ = app.emit("update", &view);
        return Ok(view);
    }
    let Ok(_one_at_a_time) = state.busy.try_lock() else {
        return Ok(state.view(app));
    };
    // Installed: the new version only waits for a restart; a check would offer it again.
    if let installed @ UpdateView::Installed { .. } = state.view(app) {
        return Ok(installed);
    }
    *lock(&state.checked_at) = Some(std::time::Instant::now());
    let server = desk(app)
        .server_url()
        .unwrap_or_else(|_| desk(app).settings().server_url);
    if server.is_empty() {
        return Err(Error::Invalid(
            "Set the server address first: updates come from your Wrenchline server.".into(),
        ));
    }
    state.set(app, UpdateView::Checking);
    let found = async {
        let mut builder = app
            .updater_builder()
            .endpoints(vec![endpoint(&server)?])
            .map_err(update_error)?
            .timeout(TIMEOUT);
        if let Some(key) = trusted_key(app) {
            builder = builder.pubkey(key);
        }
        builder
            .build()
            .map_err(update_error)?
            .check()
            .await
            .map_err(update_error)
    }
    .await;
    let view = match found {
        Ok(Some(update)) => {
            log::info!(
                "update available: {} → {}",
                update.current_version,
                update.version
            );
            let view = UpdateView::Available {
                version: update.version.clone(),
                notes: update.body.clone().filter(|n| !n.trim().is_empty()),
            };
            *lock(&state.found) = Some(update);
            view
        }
        Ok(None) => {
            log::info!("no update: {} is current", env!("CARGO_PKG_VERSION"));
            *lock(&state.found) = None;
            UpdateView::UpToDate
        }
        Err(e) => {
            log::warn!("update check failed: {e}");
            UpdateView::Failed {
                version: None,
                message: e.to_string(),
            }
        }
    };
    state.set(app, view.clone());
    Ok(view)
}

/// Downloads the update found by the last check, verifies its signature and installs it.
pub async fn install(app: &AppHandle) -> Result<UpdateView> {
    let state = updates(app);
    if let Some(reason) = off_reason(app) {
        return Err(Error::Invalid(reason));
    }
    let Ok(_one_at_a_time) = state.busy.try_lock() else {
        return Err(Error::Invalid(
            "An update check or install is already running.".into(),
        ));
    };
    let Some(update) = lock(&state.found).clone() else {
        return Err(Error::Invalid(
            "There is no update to install; check first.".into(),
        ));
    };
    let version = update.version.clone();
    state.set(
        app,
        UpdateView::Downloading {
            version: version.clone(),
            received: 0,
            total: None,
        },
    );
    let mut received = 0u64;
    let mut last_emit = std::time::Instant::now();
    let downloaded = update
        .download(
            |chunk, total| {
                received += chunk as u64;
                if last_emit.elapsed() >= Duration::from_millis(250) {
                    last_emit = std::time::Instant::now();
                    let _ = app.emit(
                        "update",
                        UpdateView::Downloading {
                            version: version.clone(),
                            received,
                            total,
                        },
                    );
                }
            },
            || {},
        )
        .await;
    let result = downloaded.and_then(|bytes| update.install(bytes));
    let view = match result {
        Ok(()) => {
            log::info!("update {version} installed; it runs after a restart");
            *lock(&state.found) = None;
            UpdateView::Installed { version }
        }
        Err(e) => {
            let message = install_failure(&e);
            log::warn!("update {version} refused: {e}");
            UpdateView::Failed {
                version: Some(version),
                message,
            }
        }
    };
    state.set(app, view.clone());
    Ok(view)
}

/// What the mechanic reads when an install fails; a bad signature is said as such.
fn install_failure(e: &tauri_plugin_updater::Error) -> String {
    use tauri_plugin_updater::Error as E;
    match e {
        E::Minisign(_) | E::Base64(_) | E::SignatureUtf8(_) => {
            "The download did not match its signature, so it was not installed. Nothing has changed; tell your IT department.".into()
        }
        other => format!("The update could not be installed: {other}"),
    }
}

fn update_error(e: tauri_plugin_updater::Error) -> Error {
    use tauri_plugin_updater::Error as E;
    match e {
        E::Reqwest(e) => Error::Network(e.to_string()),
        E::Network(e) => Error::Network(e),
        // Any answer but a release or 204, e.g. a server without a releases folder (404).
        E::ReleaseNotFound => Error::Invalid(
            "Your Wrenchline server does not offer updates; new versions come from your IT department."
                .into(),
        ),
        other => Error::Internal(other.to_string()),
    }
}

/// Whether the schedule should check now: not when any check ran within [`CHECK_EVERY`] (the
/// mechanic's own included, so a scheduled check never overwrites what they are looking at).
fn due(since_last_check: Option<Duration>) -> bool {
    since_last_check.is_none_or(|since| since >= CHECK_EVERY)
}

/// Checks a little after start and then every [`CHECK_EVERY`], while updates are on.
pub fn run(app: &AppHandle) {
    app.manage(Updates::default());
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        tokio::time::sleep(FIRST_CHECK_AFTER).await;
        loop {
            let since_last_check = lock(&updates(&app).checked_at).map(|at| at.elapsed());
            if off_reason(&app).is_none() && due(since_last_check) {
                if let Err(e) = check(&app).await {
                    log::info!("no update check: {e}");
                }
            }
            tokio::time::sleep(SCHEDULE_TICK).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_keeps_the_updaters_placeholders() {
        let url = endpoint("https://help.example.com/").unwrap();
        assert_eq!(
            url.as_str(),
            "https://help.example.com/api/desk/updates/%7B%7Btarget%7D%7D/%7B%7Barch%7D%7D/%7B%7Bcurrent_version%7D%7D?bundle_type={{bundle_type}}"
        );
        assert!(endpoint("ftp://example.com").is_err());
        assert!(endpoint("").is_err());
    }

    #[test]
    fn views_reach_the_ui_tagged() {
        let v = serde_json::to_value(UpdateView::Available {
            version: "1.2.3".into(),
            notes: None,
        })
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"state": "available", "version": "1.2.3", "notes": null})
        );
    }

    #[test]
    fn the_schedule_leaves_a_recent_check_alone() {
        assert!(due(None));
        assert!(!due(Some(Duration::ZERO)));
        assert!(!due(Some(CHECK_EVERY / 2)));
        assert!(due(Some(CHECK_EVERY)));
    }

    #[test]
    fn a_bad_signature_is_named_as_such() {
        let e = tauri_plugin_updater::Error::SignatureUtf8("x".into());
        assert!(install_failure(&e).contains("did not match its signature"));
    }
}
