//! Updates of the app itself, through tauri-plugin-updater against the mechanic's own
//! wrenchline-server (`/api/desk/updates/{target}/{arch}/{current_version}`, served from the
//! releases folder IT points it at). The app checks a little after start and then every few
//! hours, offers what it finds, and installs only when the mechanic says so. Every download is
//! verified against the public key compiled into the app before anything is written; a package
//! that does not match its signature is refused and nothing changes. The signature also binds
//! the version (`requireSignedVersion` in tauri.conf.json: the signed trusted comment carries
//! `version:X`, which must be the version the server announced), so a genuine older package
//! announced as a newer version is refused too. IT can turn it all off (`updates = false`), and
//! a per-machine MSI starts with it off. The UI hears of every change through the `update` event
//! (`UpdateView`, with the schedule's rules, in `wrenchline_desk_core::view`).

use std::sync::Mutex;
use std::time::Duration;

use tauri::{AppHandle, Emitter, Manager};
use tauri_plugin_updater::{Update, UpdaterExt};
use wrenchline_desk_core::view::{
    trusted_update_key, update_due, update_endpoint, update_off_reason, UpdateView,
};

use crate::desk::desk;
use crate::error::{Error, Result};

/// The first check waits for the app to settle after a start.
const FIRST_CHECK_AFTER: Duration = Duration::from_secs(5);
/// How often the schedule looks whether a check is due.
const SCHEDULE_TICK: Duration = Duration::from_secs(60);
/// A check or download that takes longer than this has failed.
const TIMEOUT: Duration = Duration::from_secs(120);
/// Debug builds only: the updater's public key (see `trusted_update_key`).
pub const PUBKEY_ENV: &str = "WRENCHLINE_UPDATER_PUBKEY";

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

/// The public key the app trusts (see `trusted_update_key`).
fn trusted_key(app: &AppHandle) -> Option<String> {
    let configured = app
        .config()
        .plugins
        .0
        .get("updater")
        .and_then(|u| u.get("pubkey"));
    trusted_update_key(
        cfg!(debug_assertions),
        std::env::var(PUBKEY_ENV).ok(),
        configured.and_then(|k| k.as_str()),
    )
}

/// Why no check may run now, if so.
fn off_reason(app: &AppHandle) -> Option<String> {
    update_off_reason(&desk(app).settings_view(), trusted_key(app).is_some())
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
        .session()
        .map(|s| s.server().to_string())
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
            .endpoints(vec![update_endpoint(&server)?])
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
        E::SignedVersionMismatch { signed, announced } => format!(
            "The download is version {signed}, signed as such, but was offered as {announced}: an older release announced as new is never installed. Nothing has changed; tell your IT department."
        ),
        E::MissingSignedVersion => {
            "The download's signature does not say which version it is, so it was not installed (releases must be signed with their version). Nothing has changed; tell your IT department.".into()
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

/// Checks a little after start and then every `CHECK_EVERY` (6 h), while updates are on.
pub fn run(app: &AppHandle) {
    app.manage(Updates::default());
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let first = tokio::time::Instant::now() + FIRST_CHECK_AFTER;
        let mut ticks = tokio::time::interval_at(first, SCHEDULE_TICK);
        loop {
            ticks.tick().await;
            let since_last_check = lock(&updates(&app).checked_at).map(|at| at.elapsed());
            if off_reason(&app).is_none() && update_due(since_last_check) {
                if let Err(e) = check(&app).await {
                    log::info!("no update check: {e}");
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::install_failure;
    use tauri_plugin_updater::Error;

    #[test]
    fn the_configuration_requires_a_signed_version() {
        let config: serde_json::Value =
            serde_json::from_str(include_str!("../tauri.conf.json")).unwrap();
        assert_eq!(
            config["plugins"]["updater"]["requireSignedVersion"],
            serde_json::json!(true)
        );
        let e = Error::SignedVersionMismatch {
            signed: "0.1.0".into(),
            announced: "9.9.9".into(),
        };
        assert!(install_failure(&e).contains("older release announced as new"));
    }

    #[test]
    fn a_bad_signature_is_named_as_such() {
        let e = Error::SignatureUtf8("x".into());
        assert!(install_failure(&e).contains("did not match its signature"));
    }
}
