//! The app's settings: what the mechanic chose (a JSON file in the app config dir) merged with what
//! IT manages (a TOML file outside the user's reach). A key present in the managed file wins and is
//! locked: the UI shows it read-only and a change to it is refused. A managed file that exists but
//! cannot be read locks every key to safe values ([`safe_layer`]) rather than nothing. Server
//! addresses are https, or plain http on this computer only ([`normalize_server_url`]).

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// Overrides the managed file's location in debug builds only (the test suites); a release build
/// reads the platform's place and nothing else, so a user cannot point it at a file of their own.
pub const MANAGED_ENV: &str = "WRENCHLINE_MANAGED_SETTINGS";
/// The mechanic's own settings, inside the app config dir.
pub const USER_FILE: &str = "settings.json";

/// Where IT puts the managed settings on each platform.
pub fn default_managed_path() -> PathBuf {
    if cfg!(target_os = "windows") {
        let base = std::env::var_os("ProgramData").unwrap_or_else(|| r"C:\ProgramData".into());
        PathBuf::from(base).join("Wrenchline").join("desk.toml")
    } else if cfg!(target_os = "macos") {
        PathBuf::from("/Library/Application Support/Wrenchline/desk.toml")
    } else {
        PathBuf::from("/etc/wrenchline/desk.toml")
    }
}

/// The managed file in force: the platform's place, or in debug builds [`MANAGED_ENV`].
pub fn managed_path() -> PathBuf {
    managed_path_from(cfg!(debug_assertions), std::env::var_os(MANAGED_ENV))
}

/// [`managed_path`] with the build kind and the variable's value given.
pub fn managed_path_from(debug_build: bool, override_path: Option<OsString>) -> PathBuf {
    override_path
        .filter(|p| debug_build && !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(default_managed_path)
}

/// One layer of settings; an absent key says nothing. Both files have this shape (the managed
/// one without `last_email`, which is the mechanic's alone).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Layer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notifications: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notification_sound: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_at_login: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updates: Option<bool>,
    /// Prefills the sign-in form; not a setting IT can manage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_email: Option<String>,
}

/// The settings in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Settings {
    pub server_url: String,
    pub notifications: bool,
    pub notification_sound: bool,
    pub start_at_login: bool,
    pub updates: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            server_url: String::new(),
            notifications: true,
            notification_sound: true,
            start_at_login: false,
            updates: true,
        }
    }
}

/// A change the mechanic asks for, one key at a time.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "key", content = "value", rename_all = "snake_case")]
pub enum Change {
    ServerUrl(String),
    Notifications(bool),
    NotificationSound(bool),
    StartAtLogin(bool),
    Updates(bool),
}

impl Change {
    pub fn key(&self) -> &'static str {
        match self {
            Change::ServerUrl(_) => "server_url",
            Change::Notifications(_) => "notifications",
            Change::NotificationSound(_) => "notification_sound",
            Change::StartAtLogin(_) => "start_at_login",
            Change::Updates(_) => "updates",
        }
    }
}

/// The mechanic's layer over the managed one, and where each came from.
#[derive(Debug, Clone, Default)]
pub struct Store {
    pub user: Layer,
    pub managed: Layer,
    pub managed_path: PathBuf,
    /// Why the managed file could not be read, if it exists but is broken: then `managed` is
    /// [`safe_layer`].
    pub managed_error: Option<String>,
    /// See [`installer_defaults`].
    pub installer: Layer,
}

/// What the UI shows: the values in force, the locked keys and where the lock comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct View {
    pub values: Settings,
    pub locked: BTreeSet<&'static str>,
    pub managed_path: String,
    pub managed_error: Option<String>,
    pub last_email: Option<String>,
}

/// Managed keys win over the mechanic's, which win over the installer's defaults, which win over
/// [`Settings::default`].
pub fn merge(user: &Layer, managed: &Layer, installer: &Layer) -> Settings {
    let d = Settings::default();
    let layers = [managed, user, installer];
    let pick = |get: fn(&Layer) -> Option<bool>, default: bool| {
        layers.iter().find_map(|l| get(l)).unwrap_or(default)
    };
    Settings {
        server_url: layers
            .iter()
            .find_map(|l| l.server_url.clone())
            .unwrap_or(d.server_url),
        notifications: pick(|l| l.notifications, d.notifications),
        notification_sound: pick(|l| l.notification_sound, d.notification_sound),
        start_at_login: pick(|l| l.start_at_login, d.start_at_login),
        updates: pick(|l| l.updates, d.updates),
    }
}

/// Defaults that depend on how the app was installed. A per-machine MSI is IT's deployment, and
/// IT ships new versions through its own tooling: the app does not look for updates unless the
/// managed file (or the mechanic) turns them on.
pub fn installer_defaults(per_machine_msi: bool) -> Layer {
    Layer {
        updates: per_machine_msi.then_some(false),
        ..Layer::default()
    }
}

/// The keys the managed layer sets.
pub fn locked(managed: &Layer) -> BTreeSet<&'static str> {
    let mut keys = BTreeSet::new();
    let pairs = [
        ("server_url", managed.server_url.is_some()),
        ("notifications", managed.notifications.is_some()),
        ("notification_sound", managed.notification_sound.is_some()),
        ("start_at_login", managed.start_at_login.is_some()),
        ("updates", managed.updates.is_some()),
    ];
    for (key, set) in pairs {
        if set {
            keys.insert(key);
        }
    }
    keys
}

/// `https://host/` → `https://host`. Anything but http(s) is refused, and so is plain http to
/// another computer: tokens and passwords would cross the network readable. `http://` is kept
/// for a server on this computer (`localhost`, `127.0.0.0/8`, `[::1]`), as in development.
pub fn normalize_server_url(raw: &str) -> Result<String, Error> {
    let trimmed = raw.trim();
    let url = trimmed.trim_end_matches('/');
    let invalid = || Error::InvalidServerUrl(trimmed.to_string());
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(invalid)?;
    if rest.is_empty() || rest.contains(char::is_whitespace) || rest.contains(['?', '#', '@']) {
        return Err(invalid());
    }
    let parsed = url::Url::parse(url).map_err(|_| invalid())?;
    if parsed.scheme() == "http" && !is_loopback(&parsed) {
        return Err(Error::InsecureServerUrl(url.to_string()));
    }
    Ok(url.to_string())
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// What a managed file that exists but cannot be read locks. IT meant to manage something and
/// which keys is unknown, so every key is locked: the server stays the one the mechanic already
/// used (no other can be set; without one nobody can sign in until IT fixes the file), no
/// in-app updates (a new version waits for IT), notifications with sound on (no request is
/// missed), and start at login stays as it is.
pub fn safe_layer(user: &Layer) -> Layer {
    Layer {
        server_url: Some(user.server_url.clone().unwrap_or_default()),
        notifications: Some(true),
        notification_sound: Some(true),
        start_at_login: Some(user.start_at_login.unwrap_or(false)),
        updates: Some(false),
        last_email: None,
    }
}

impl Store {
    /// Reads both files; a missing file is an empty layer, a broken user file too (it is the
    /// mechanic's and is rewritten on the next change), a broken managed file locks the
    /// [`safe_layer`] and is reported.
    pub fn load(user_file: &Path, managed_path: PathBuf) -> Store {
        let user: Layer = std::fs::read_to_string(user_file)
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default();
        let (managed, managed_error) = match read_managed(&managed_path) {
            Ok(layer) => (layer, None),
            Err(e) => (safe_layer(&user), Some(e.to_string())),
        };
        Store {
            user,
            managed,
            managed_path,
            managed_error,
            installer: Layer::default(),
        }
    }

    /// The server a sign-in goes to: the managed one when IT sets it (whatever was typed), else
    /// the typed one, checked. A broken managed file without a server of the mechanic's own
    /// leaves none: the sign-in says why.
    pub fn sign_in_server(&self, typed: &str) -> Result<String, Error> {
        match (&self.managed.server_url, &self.managed_error) {
            (Some(url), _) if !url.is_empty() => Ok(url.clone()),
            (_, Some(reason)) => Err(Error::ManagedUnreadable {
                path: self.managed_path.display().to_string(),
                reason: reason.clone(),
            }),
            _ => normalize_server_url(typed),
        }
    }

    pub fn settings(&self) -> Settings {
        merge(&self.user, &self.managed, &self.installer)
    }

    pub fn view(&self) -> View {
        View {
            values: self.settings(),
            locked: locked(&self.managed),
            managed_path: self.managed_path.display().to_string(),
            managed_error: self.managed_error.clone(),
            last_email: self.user.last_email.clone(),
        }
    }

    /// Applies a change to the mechanic's layer, unless IT manages that key.
    pub fn apply(&mut self, change: Change) -> Result<(), Error> {
        if locked(&self.managed).contains(change.key()) {
            return Err(Error::Locked(change.key()));
        }
        match change {
            Change::ServerUrl(url) => self.user.server_url = Some(normalize_server_url(&url)?),
            Change::Notifications(on) => self.user.notifications = Some(on),
            Change::NotificationSound(on) => self.user.notification_sound = Some(on),
            Change::StartAtLogin(on) => self.user.start_at_login = Some(on),
            Change::Updates(on) => self.user.updates = Some(on),
        }
        Ok(())
    }

    /// Writes the mechanic's layer (only that one: the managed file is IT's), via a temporary
    /// file so a crash never leaves half a file.
    pub fn save(&self, user_file: &Path) -> std::io::Result<()> {
        if let Some(dir) = user_file.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let text = serde_json::to_string_pretty(&self.user).map_err(std::io::Error::other)?;
        let tmp = user_file.with_extension("json.tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(tmp, user_file)
    }
}

/// The managed file at `path`: an empty layer when there is none, an error when it exists but
/// cannot be read or parsed.
pub fn read_managed(path: &Path) -> Result<Layer, Error> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_managed(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Layer::default()),
        Err(e) => Err(Error::ManagedFile(e.to_string())),
    }
}

/// The managed TOML: the known keys, nothing else (a typo should be seen, not ignored).
pub fn parse_managed(text: &str) -> Result<Layer, Error> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Managed {
        server_url: Option<String>,
        notifications: Option<bool>,
        notification_sound: Option<bool>,
        start_at_login: Option<bool>,
        updates: Option<bool>,
    }
    let m: Managed = toml::from_str(text).map_err(|e| Error::ManagedFile(e.to_string()))?;
    let server_url = match m.server_url {
        Some(url) => Some(
            normalize_server_url(&url)
                .map_err(|e| Error::ManagedFile(format!("server_url: {e}")))?,
        ),
        None => None,
    };
    Ok(Layer {
        server_url,
        notifications: m.notifications,
        notification_sound: m.notification_sound,
        start_at_login: m.start_at_login,
        updates: m.updates,
        last_email: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "wl-settings-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn defaults_when_nothing_is_set() {
        let s = merge(&Layer::default(), &Layer::default(), &Layer::default());
        assert_eq!(s, Settings::default());
        assert!(s.notifications && s.notification_sound && !s.start_at_login && s.updates);
    }

    #[test]
    fn the_mechanics_choice_beats_the_default_and_the_managed_value_beats_both() {
        let user = Layer {
            server_url: Some("https://mine.example".into()),
            notification_sound: Some(false),
            start_at_login: Some(true),
            ..Layer::default()
        };
        let managed = Layer {
            server_url: Some("https://it.example".into()),
            start_at_login: Some(false),
            ..Layer::default()
        };
        let s = merge(&user, &managed, &Layer::default());
        assert_eq!(s.server_url, "https://it.example");
        assert!(!s.start_at_login);
        assert!(
            !s.notification_sound,
            "unmanaged keys keep the mechanic's value"
        );
        assert!(s.notifications);
        assert_eq!(
            locked(&managed).into_iter().collect::<Vec<_>>(),
            ["server_url", "start_at_login"]
        );
    }

    #[test]
    fn a_per_machine_msi_does_not_look_for_updates_unless_told_to() {
        let msi = installer_defaults(true);
        let none = Layer::default();
        assert!(!merge(&none, &none, &msi).updates);
        assert!(merge(&none, &none, &installer_defaults(false)).updates);
        let it_turns_them_on = Layer {
            updates: Some(true),
            ..Layer::default()
        };
        assert!(merge(&none, &it_turns_them_on, &msi).updates);
        let mechanic_turns_them_on = it_turns_them_on.clone();
        assert!(merge(&mechanic_turns_them_on, &none, &msi).updates);
        let it_turns_them_off = Layer {
            updates: Some(false),
            ..Layer::default()
        };
        assert!(
            !merge(
                &mechanic_turns_them_on,
                &it_turns_them_off,
                &Layer::default()
            )
            .updates
        );
    }

    #[test]
    fn a_managed_key_cannot_be_changed() {
        let mut store = Store {
            managed: Layer {
                notifications: Some(true),
                ..Layer::default()
            },
            ..Store::default()
        };
        assert_eq!(
            store.apply(Change::Notifications(false)),
            Err(Error::Locked("notifications"))
        );
        assert!(store.settings().notifications);
        store.apply(Change::NotificationSound(false)).unwrap();
        assert!(!store.settings().notification_sound);
    }

    #[test]
    fn server_urls_are_normalized_and_checked() {
        assert_eq!(
            normalize_server_url(" https://help.example.com/ ").unwrap(),
            "https://help.example.com"
        );
        assert_eq!(
            normalize_server_url("http://127.0.0.1:8080").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert!(normalize_server_url("ftp://x").is_err());
        assert!(normalize_server_url("https://").is_err());
        assert!(normalize_server_url("help.example.com").is_err());
    }

    #[test]
    fn files_round_trip_and_the_managed_file_is_toml() {
        let dir = temp_dir("files");
        let user_file = dir.join("config").join(USER_FILE);
        let managed_file = dir.join("desk.toml");
        std::fs::write(
            &managed_file,
            "server_url = \"https://it.example/\"\nnotification_sound = false\n",
        )
        .unwrap();

        let mut store = Store::load(&user_file, managed_file.clone());
        assert_eq!(store.managed_error, None);
        store.apply(Change::StartAtLogin(true)).unwrap();
        store.user.last_email = Some("sam@garage.example".into());
        store.save(&user_file).unwrap();

        let again = Store::load(&user_file, managed_file);
        let view = again.view();
        assert_eq!(view.values.server_url, "https://it.example");
        assert!(!view.values.notification_sound);
        assert!(view.values.start_at_login);
        assert_eq!(view.last_email.as_deref(), Some("sam@garage.example"));
        assert_eq!(
            view.locked.into_iter().collect::<Vec<_>>(),
            ["notification_sound", "server_url"]
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_broken_managed_file_is_reported_and_locks_everything_to_safe_values() {
        let dir = temp_dir("broken");
        let managed_file = dir.join("desk.toml");
        let user_file = dir.join(USER_FILE);
        std::fs::write(
            &user_file,
            r#"{"server_url": "https://mine.example", "updates": true}"#,
        )
        .unwrap();
        std::fs::write(&managed_file, "notifcations = false\n").unwrap();
        let mut store = Store::load(&user_file, managed_file);
        assert!(store
            .managed_error
            .as_deref()
            .unwrap()
            .contains("notifcations"));
        let view = store.view();
        assert_eq!(
            view.locked.len(),
            5,
            "every key is locked: {:?}",
            view.locked
        );
        assert!(!view.values.updates, "no in-app updates");
        assert!(view.values.notifications && view.values.notification_sound);
        assert_eq!(view.values.server_url, "https://mine.example");
        assert_eq!(
            store.apply(Change::ServerUrl("https://other.example".into())),
            Err(Error::Locked("server_url"))
        );
        assert_eq!(
            store.sign_in_server("https://other.example").unwrap(),
            "https://mine.example"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_broken_managed_file_without_a_known_server_refuses_sign_in_and_says_why() {
        let dir = temp_dir("broken-new");
        let managed_file = dir.join("desk.toml");
        std::fs::write(&managed_file, "server_url = \"http://intranet.example\"\n").unwrap();
        let store = Store::load(&dir.join(USER_FILE), managed_file);
        let e = store.sign_in_server("https://x.example").unwrap_err();
        assert!(matches!(e, Error::ManagedUnreadable { .. }));
        assert!(e.to_string().contains("locked to safe values"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn only_debug_builds_take_the_managed_path_from_the_environment() {
        let custom = Some(OsString::from("/tmp/wl-managed.toml"));
        assert_eq!(
            managed_path_from(true, custom.clone()),
            PathBuf::from("/tmp/wl-managed.toml")
        );
        assert_eq!(managed_path_from(false, custom), default_managed_path());
        assert_eq!(managed_path_from(true, None), default_managed_path());
        assert_eq!(
            managed_path_from(true, Some(OsString::new())),
            default_managed_path()
        );
    }

    #[test]
    fn plain_http_is_refused_except_on_this_computer() {
        for ok in [
            "http://127.0.0.1:8080",
            "http://localhost:8080/",
            "http://[::1]:9000",
            "http://127.1.2.3",
            "https://help.example.com",
        ] {
            assert!(normalize_server_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://help.example.com",
            "http://192.168.1.10:8080",
            "http://localhost.example.com",
            "http://[::2]",
            "http://127.0.0.1@evil.example",
        ] {
            assert!(normalize_server_url(bad).is_err(), "{bad}");
        }
        let e = normalize_server_url("http://10.0.0.5:8080").unwrap_err();
        assert_eq!(e, Error::InsecureServerUrl("http://10.0.0.5:8080".into()));
        assert!(e.to_string().contains("https://"), "{e}");
        assert!(parse_managed("server_url = \"http://10.0.0.5\"").is_err());
    }

    #[test]
    fn changes_arrive_as_key_and_value() {
        let change: Change = serde_json::from_value(
            serde_json::json!({"key": "notification_sound", "value": false}),
        )
        .unwrap();
        assert_eq!(change, Change::NotificationSound(false));
    }
}
