//! What the desktop UI is told, as plain values the shell sends in events and command answers:
//! the sign-in ([`AuthView`]), where to go ([`Navigation`]) and where updates stand
//! ([`UpdateView`]), plus the update schedule's rules. The UI's TypeScript reads these shapes.

use std::time::Duration;

use serde::Serialize;
use uuid::Uuid;
use wrenchline_protocol::User;

use crate::settings::{normalize_server_url, View};
use crate::Error;

/// The sign-in as the UI sees it.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum AuthView {
    /// Signing in with the stored token; `error` says why it is taking a while.
    Restoring {
        server_url: String,
        error: Option<String>,
    },
    SignedOut {
        server_url: String,
        email: Option<String>,
        /// Why the mechanic is signed out when it was not their doing.
        notice: Option<String>,
    },
    SignedIn {
        server_url: String,
        user: User,
    },
}

/// Where the UI should go, from a deep link or a notification.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Navigation {
    Request(Uuid),
    Session(Uuid),
}

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

/// A check this often while the app runs.
pub const CHECK_EVERY: Duration = Duration::from_secs(6 * 60 * 60);

/// Whether the schedule should check now: not when any check ran within [`CHECK_EVERY`] (the
/// mechanic's own included, so a scheduled check never overwrites what they are looking at).
pub fn update_due(since_last_check: Option<Duration>) -> bool {
    since_last_check.is_none_or(|since| since >= CHECK_EVERY)
}

/// The updater public key the app trusts: the one configured (`plugins.updater.pubkey`, filled
/// in by the release bundle), or in debug builds the environment's (`WRENCHLINE_UPDATER_PUBKEY`),
/// so developers and the test suite can sign with throwaway keys. Release builds only trust the
/// key compiled in.
pub fn trusted_update_key(
    debug_build: bool,
    from_env: Option<String>,
    configured: Option<&str>,
) -> Option<String> {
    let env = from_env.filter(|_| debug_build);
    let key = [env.as_deref(), configured]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|k| !k.is_empty())
        .map(str::to_string);
    key
}

/// Why no update check may run, if so: the settings (the mechanic's or IT's) turned updates off,
/// or the build trusts no update key.
pub fn update_off_reason(settings: &View, has_update_key: bool) -> Option<String> {
    if !settings.values.updates {
        return Some(if settings.locked.contains("updates") {
            "Updates are turned off by your IT department.".into()
        } else {
            "Updates are turned off in the settings.".into()
        });
    }
    if !has_update_key {
        return Some(
            "This build has no update signing key; new versions come with your IT department's packages."
                .into(),
        );
    }
    None
}

/// The update endpoint of a server, with the updater's own placeholders left in.
pub fn update_endpoint(server_url: &str) -> Result<url::Url, Error> {
    let base = normalize_server_url(server_url)?;
    format!(
        "{base}/api/desk/updates/{{{{target}}}}/{{{{arch}}}}/{{{{current_version}}}}?bundle_type={{{{bundle_type}}}}"
    )
    .parse()
    .map_err(|_| Error::InvalidServerUrl(base))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_keeps_the_updaters_placeholders() {
        let url = update_endpoint("https://help.example.com/").unwrap();
        assert_eq!(
            url.as_str(),
            "https://help.example.com/api/desk/updates/%7B%7Btarget%7D%7D/%7B%7Barch%7D%7D/%7B%7Bcurrent_version%7D%7D?bundle_type={{bundle_type}}"
        );
        assert!(update_endpoint("ftp://example.com").is_err());
        assert!(update_endpoint("").is_err());
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
        let n = serde_json::to_value(Navigation::Session(Uuid::nil())).unwrap();
        assert_eq!(n, serde_json::json!({"kind": "session", "id": Uuid::nil()}));
    }

    #[test]
    fn release_builds_trust_only_the_configured_update_key() {
        let env = || Some(" test-key ".to_string());
        assert_eq!(
            trusted_update_key(true, env(), Some("")).as_deref(),
            Some("test-key")
        );
        assert_eq!(trusted_update_key(false, env(), Some("")), None);
        assert_eq!(
            trusted_update_key(false, env(), Some("release-key")).as_deref(),
            Some("release-key")
        );
        assert_eq!(trusted_update_key(true, Some(" ".into()), None), None);
    }

    #[test]
    fn updates_say_why_they_are_off() {
        let mut store = crate::settings::Store::default();
        assert_eq!(update_off_reason(&store.view(), true), None);
        assert!(update_off_reason(&store.view(), false)
            .unwrap()
            .contains("no update signing key"));
        store.user.updates = Some(false);
        assert!(update_off_reason(&store.view(), true)
            .unwrap()
            .contains("in the settings"));
        store.managed.updates = Some(false);
        assert!(update_off_reason(&store.view(), true)
            .unwrap()
            .contains("IT department"));
    }

    #[test]
    fn the_schedule_leaves_a_recent_check_alone() {
        assert!(update_due(None));
        assert!(!update_due(Some(Duration::ZERO)));
        assert!(!update_due(Some(CHECK_EVERY / 2)));
        assert!(update_due(Some(CHECK_EVERY)));
    }
}
