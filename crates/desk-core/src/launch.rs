//! The command line, answered before any window exists (so without a display): `--version`,
//! `--help` and `--check-managed-settings FILE`, which validates an IT-managed `desk.toml` with
//! the app's own parser. Anything else starts the app (a deep link among the arguments included).
//! Also the development sign-in `make run` hands over ([`demo_sign_in`], debug builds only).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::settings::{self, Layer};

/// `make run`'s demo mechanic (`URL EMAIL PASSWORD`, as `serve --demo` prints them), which a debug
/// build pre-fills the sign-in form with.
pub const DEMO_SIGN_IN_ENV: &str = "WRENCHLINE_DEMO_SIGN_IN";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DemoSignIn {
    pub server_url: String,
    pub email: String,
    pub password: String,
}

/// The demo sign-in from [`DEMO_SIGN_IN_ENV`]'s value; a release build never reads one.
pub fn demo_sign_in(debug_build: bool, value: Option<&str>) -> Option<DemoSignIn> {
    let mut parts = value.filter(|_| debug_build)?.split_whitespace();
    let (server_url, email, password) = (parts.next()?, parts.next()?, parts.next()?);
    Some(DemoSignIn {
        server_url: settings::normalize_server_url(server_url).ok()?,
        email: email.to_string(),
        password: password.to_string(),
    })
}

/// What the command line asks of the process.
#[derive(Debug, PartialEq, Eq)]
pub enum Launch {
    /// Print `wrenchline-desk <version>` and exit.
    PrintVersion,
    PrintHelp,
    CheckManagedSettings(PathBuf),
    /// A flag of ours used wrongly: print the message and the usage, exit 2.
    Usage(String),
    /// Start the desktop app.
    App,
}

impl Launch {
    /// Reads OS strings so that an argument that is not UTF-8 (a file path, say) cannot panic
    /// the app. Only the first argument counts, so a deep link that happens to contain a flag's
    /// word never turns a normal start into something else.
    pub fn from_args<I: IntoIterator<Item = OsString>>(args: I) -> Launch {
        let mut args = args.into_iter().skip(1);
        let Some(first) = args.next() else {
            return Launch::App;
        };
        match first.to_str() {
            Some("--version" | "-V") => Launch::PrintVersion,
            Some("--help" | "-h") => Launch::PrintHelp,
            Some("--check-managed-settings") => match args.next() {
                Some(file) => Launch::CheckManagedSettings(PathBuf::from(file)),
                None => Launch::Usage("--check-managed-settings needs the file to check".into()),
            },
            _ => Launch::App,
        }
    }
}

/// The `--help` text.
pub fn usage(binary: &str) -> String {
    format!(
        "Wrenchline for mechanics: live requests, notifications and chat.\n\n\
         Usage:\n  \
         {binary}                                  start the app (in the tray if already running)\n  \
         {binary} wrenchline://session/ID          open that session in the running app\n  \
         {binary} --check-managed-settings FILE    validate an IT-managed desk.toml and exit\n  \
         {binary} --version | --help\n\n\
         The managed settings file in force: {}\n",
        settings::managed_path().display()
    )
}

/// `--check-managed-settings FILE`: the file as the app reads it, or why the app would refuse
/// it (and lock everything to safe values). A missing file is an error here: IT names a file it
/// means to deploy.
pub fn check_managed_settings(path: &Path) -> Result<String, String> {
    if !path.exists() {
        return Err(format!("{}: no such file", path.display()));
    }
    let layer = settings::read_managed(path).map_err(|e| {
        format!(
            "{}: the app would refuse this file and lock every setting to safe values: {e}",
            path.display()
        )
    })?;
    Ok(describe(path, &layer))
}

fn describe(path: &Path, layer: &Layer) -> String {
    let mut lines = vec![format!("{}: valid", path.display())];
    let values = [
        (
            "server_url",
            layer.server_url.as_ref().map(|u| format!("{u:?}")),
        ),
        ("notifications", layer.notifications.map(|v| v.to_string())),
        (
            "notification_sound",
            layer.notification_sound.map(|v| v.to_string()),
        ),
        (
            "start_at_login",
            layer.start_at_login.map(|v| v.to_string()),
        ),
        ("updates", layer.updates.map(|v| v.to_string())),
    ];
    for (key, value) in values {
        match value {
            Some(v) => lines.push(format!("  {key} = {v}  (locked)")),
            None => lines.push(format!("  {key}: not managed (the mechanic's choice)")),
        }
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launch(args: &[&str]) -> Launch {
        Launch::from_args(args.iter().map(OsString::from))
    }

    #[test]
    fn flags_are_answered_without_starting_the_app() {
        assert_eq!(
            launch(&["wrenchline-desk", "--version"]),
            Launch::PrintVersion
        );
        assert_eq!(launch(&["wrenchline-desk", "--help"]), Launch::PrintHelp);
        assert_eq!(launch(&["wrenchline-desk", "-h"]), Launch::PrintHelp);
        assert_eq!(
            launch(&["wrenchline-desk", "--check-managed-settings", "/etc/x.toml"]),
            Launch::CheckManagedSettings("/etc/x.toml".into())
        );
        assert!(matches!(
            launch(&["wrenchline-desk", "--check-managed-settings"]),
            Launch::Usage(_)
        ));
    }

    #[test]
    fn only_debug_builds_take_the_demo_sign_in() {
        let value = Some("http://127.0.0.1:8080/ demo@wrenchline.test s3cret");
        assert_eq!(
            demo_sign_in(true, value),
            Some(DemoSignIn {
                server_url: "http://127.0.0.1:8080".into(),
                email: "demo@wrenchline.test".into(),
                password: "s3cret".into(),
            })
        );
        assert_eq!(demo_sign_in(false, value), None);
        assert_eq!(
            demo_sign_in(true, Some("http://127.0.0.1:8080 only-email")),
            None
        );
        assert_eq!(demo_sign_in(true, None), None);
    }

    #[test]
    fn anything_else_starts_the_app() {
        assert_eq!(launch(&["wrenchline-desk"]), Launch::App);
        assert_eq!(
            launch(&["wrenchline-desk", "wrenchline://session/x", "--version"]),
            Launch::App
        );
    }

    #[test]
    fn the_check_accepts_what_the_app_accepts_and_refuses_what_it_refuses() {
        let dir = std::env::temp_dir().join(format!("wl-check-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.toml");
        std::fs::write(
            &good,
            "server_url = \"https://it.example/\"\nupdates = false\n",
        )
        .unwrap();
        let report = check_managed_settings(&good).unwrap();
        assert!(
            report.contains("server_url = \"https://it.example\"  (locked)"),
            "{report}"
        );
        assert!(report.contains("notifications: not managed"), "{report}");

        // Valid TOML that Python's tomllib accepts, but the app does not.
        for (text, expected) in [
            ("notification_sounds = true\n", "notification_sounds"),
            ("updates = \"no\"\n", "updates"),
            ("server_url = \"http://wrenchline.example\"\n", "https://"),
        ] {
            let bad = dir.join("bad.toml");
            std::fs::write(&bad, text).unwrap();
            let e = check_managed_settings(&bad).unwrap_err();
            assert!(
                e.contains(expected) && e.contains("safe values"),
                "{text}: {e}"
            );
        }
        assert!(check_managed_settings(&dir.join("missing.toml")).is_err());
        let _ = std::fs::remove_dir_all(dir);
    }
}
