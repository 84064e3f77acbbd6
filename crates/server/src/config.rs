//! Runtime settings of the server: where it listens (and where operators read its metrics), its
//! database, where attachment files are kept, token and resume-link lifetimes, the session lifecycle's timeouts, and the plans
//! customers can book. Plans come from a TOML file when one is given, otherwise the defaults below.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use time::Duration;
use wrenchline_protocol::{Plan, Waiver};

use crate::limits::Limits;
use crate::mail::MailSettings;
use crate::proxy::TrustedProxies;

/// Default lifetime of a resume link.
pub const DEFAULT_RESUME_LINK_TTL: Duration = Duration::minutes(10);
/// Default time an offered request waits for a mechanic before it is cancelled.
pub const DEFAULT_REQUEST_ACCEPT_TIMEOUT: Duration = Duration::minutes(30);
/// Default time a mechanic has to join the chat after accepting.
pub const DEFAULT_MECHANIC_JOIN_TIMEOUT: Duration = Duration::minutes(10);
/// Bounds of the three lifecycle durations above, in seconds, as the command line accepts them.
/// How long a mechanic's availability counts without a refresh from the node holding their feed
/// connection (a node that stopped without saying so).
pub const DEFAULT_AVAILABILITY_GRACE: Duration = Duration::minutes(2);
/// How long after rating a session the customer may change the rating.
pub const DEFAULT_RATING_EDIT_WINDOW: Duration = Duration::hours(24);

pub const LIFECYCLE_SECONDS: std::ops::RangeInclusive<i64> = 1..=7 * 24 * 3600;

#[derive(Debug, Clone)]
pub struct Settings {
    pub bind: SocketAddr,
    /// Where `/metrics` is served, apart from the public listener; nowhere when unset.
    pub metrics_bind: Option<SocketAddr>,
    pub database_url: String,
    /// Where customers reach this server, used in printed links; defaults to the bound address.
    pub public_url: Option<String>,
    pub plans: Vec<Plan>,
    pub waiver: Waiver,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub customer_cookie_ttl: Duration,
    /// How long a resume link can be used (once) after it was made (`--resume-link-ttl`).
    pub resume_link_ttl: Duration,
    /// An offered request nobody accepts within this is cancelled as `not_accepted`
    /// (`--request-accept-timeout`).
    pub request_accept_timeout: Duration,
    /// A waiting session whose mechanic is not in the chat this long after accepting goes back
    /// to the request feed (`--mechanic-join-timeout`).
    pub mechanic_join_timeout: Duration,
    /// Largest request body accepted, in bytes.
    /// See [`DEFAULT_AVAILABILITY_GRACE`].
    pub availability_grace: Duration,
    /// See [`DEFAULT_RATING_EDIT_WINDOW`].
    pub rating_edit_window: Duration,
    pub body_limit: usize,
    /// A fixed token-signing secret; otherwise one is generated and kept in the database.
    pub token_secret: Option<String>,
    pub limits: Limits,
    /// Reverse proxies whose `X-Forwarded-For` names the client; per-address limits apply to it.
    pub trusted_proxies: TrustedProxies,
    /// Desktop app releases offered to the updater; none when unset.
    pub releases_dir: Option<PathBuf>,
    /// Mail to customers (`--smtp-url`, `--mail-from`); nothing is mailed when unset.
    pub mail: Option<MailSettings>,
    /// Redis for the bus and the shared presence of a cluster (`--redis-url`); alone when unset.
    pub redis_url: Option<String>,
    /// This node's name in the cluster (`--node-id`).
    pub node_id: Option<String>,
    /// How long a stopping node reports not ready before it closes its realtime connections, so
    /// that a load balancer stops sending it clients first (`--drain-seconds`, cluster mode).
    pub drain_grace: std::time::Duration,
    /// Where attachment files are kept (`--media-dir`); by default `wrenchline-media/` beside
    /// the SQLite file, or in the working directory with PostgreSQL.
    pub media_dir: Option<PathBuf>,
    /// An S3-compatible bucket for attachment files instead (`--media-url s3://…`).
    pub media_url: Option<String>,
    /// Uploads not sent with a message within this are deleted (`--media-orphan-grace`).
    pub media_orphan_grace: Duration,
    /// Days after a session ends before its media are deleted; 0 keeps them as long as the
    /// transcript (`--media-retention-days`).
    pub media_retention_days: u32,
}

impl Settings {
    /// Settings for a server on `bind` with `database_url` and defaults for everything else.
    pub fn new(bind: SocketAddr, database_url: impl Into<String>) -> Self {
        Settings {
            bind,
            metrics_bind: None,
            database_url: database_url.into(),
            public_url: None,
            plans: default_plans(),
            waiver: default_waiver(),
            access_token_ttl: Duration::minutes(15),
            refresh_token_ttl: Duration::days(30),
            customer_cookie_ttl: Duration::days(30),
            resume_link_ttl: DEFAULT_RESUME_LINK_TTL,
            request_accept_timeout: DEFAULT_REQUEST_ACCEPT_TIMEOUT,
            mechanic_join_timeout: DEFAULT_MECHANIC_JOIN_TIMEOUT,
            availability_grace: DEFAULT_AVAILABILITY_GRACE,
            rating_edit_window: DEFAULT_RATING_EDIT_WINDOW,
            body_limit: 64 * 1024,
            token_secret: None,
            limits: Limits::default(),
            trusted_proxies: TrustedProxies::default(),
            releases_dir: None,
            mail: None,
            redis_url: None,
            node_id: None,
            drain_grace: std::time::Duration::ZERO,
            media_dir: None,
            media_url: None,
            media_orphan_grace: crate::media::DEFAULT_ORPHAN_GRACE,
            media_retention_days: crate::media::DEFAULT_RETENTION_DAYS,
        }
    }

    pub fn plan(&self, id: &str) -> Option<&Plan> {
        self.plans.iter().find(|p| p.id == id)
    }
}

pub fn default_plans() -> Vec<Plan> {
    vec![
        Plan {
            id: "trial".into(),
            name: "Free trial".into(),
            minutes: 10,
            price_cents: 0,
        },
        Plan {
            id: "standard".into(),
            name: "Standard".into(),
            minutes: 30,
            price_cents: 2900,
        },
        Plan {
            id: "extended".into(),
            name: "Extended".into(),
            minutes: 60,
            price_cents: 4900,
        },
    ]
}

pub fn default_waiver() -> Waiver {
    Waiver {
        version: "2026-01".into(),
        text: "Wrenchline mechanics give advice remotely, from what you describe and show them. \
               They cannot inspect your vehicle in person, and their advice is not a guarantee of \
               a diagnosis or a repair. Do not work on a vehicle that is not safely parked and \
               secured, and stop if you feel unsafe. You decide whether to follow any advice and \
               remain responsible for your vehicle and your safety. By signing you confirm that \
               you have read and agree to these terms."
            .into(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PlansError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a valid plans file: {source}")]
    Parse {
        path: String,
        source: toml::de::Error,
    },
    #[error("{path}: {problem}")]
    Invalid { path: String, problem: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlansFile {
    plans: Vec<PlanEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanEntry {
    id: String,
    name: String,
    minutes: u32,
    price_cents: u32,
}

/// Reads plans from a TOML file of `[[plans]]` tables; a `trial` plan must be among them.
pub fn load_plans(path: &Path) -> Result<Vec<Plan>, PlansError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| PlansError::Read {
        path: name.clone(),
        source,
    })?;
    let file: PlansFile = toml::from_str(&text).map_err(|source| PlansError::Parse {
        path: name.clone(),
        source,
    })?;
    let invalid = |problem: String| PlansError::Invalid {
        path: name.clone(),
        problem,
    };
    let mut plans = Vec::new();
    for entry in file.plans {
        if entry.id.is_empty()
            || !entry
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(invalid(format!(
                "plan id {:?} must be letters, digits, - or _",
                entry.id
            )));
        }
        if entry.minutes == 0 || entry.minutes > 24 * 60 {
            return Err(invalid(format!(
                "plan {} must last 1 to 1440 minutes",
                entry.id
            )));
        }
        if plans.iter().any(|p: &Plan| p.id == entry.id) {
            return Err(invalid(format!("plan {} is listed twice", entry.id)));
        }
        plans.push(Plan {
            id: entry.id,
            name: entry.name,
            minutes: entry.minutes,
            price_cents: entry.price_cents,
        });
    }
    if !plans.iter().any(|p| p.id == "trial") {
        return Err(invalid("a plan with id \"trial\" is required".into()));
    }
    Ok(plans)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> tempfile_path::TempPath {
        tempfile_path::TempPath::with(text)
    }

    mod tempfile_path {
        pub struct TempPath(pub std::path::PathBuf);
        impl TempPath {
            pub fn with(text: &str) -> Self {
                let path =
                    std::env::temp_dir().join(format!("plans-{}.toml", uuid::Uuid::new_v4()));
                std::fs::write(&path, text).unwrap();
                TempPath(path)
            }
        }
        impl Drop for TempPath {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }

    #[test]
    fn reads_a_plans_file() {
        let file = write(
            "[[plans]]\nid = \"trial\"\nname = \"Trial\"\nminutes = 5\nprice_cents = 0\n\
             [[plans]]\nid = \"pro\"\nname = \"Pro\"\nminutes = 45\nprice_cents = 3900\n",
        );
        let plans = load_plans(&file.0).unwrap();
        assert_eq!(plans.len(), 2);
        assert_eq!(plans[1].minutes, 45);
    }

    #[test]
    fn refuses_plans_without_trial_or_with_bad_values() {
        let no_trial =
            write("[[plans]]\nid = \"pro\"\nname = \"Pro\"\nminutes = 45\nprice_cents = 1\n");
        assert!(matches!(
            load_plans(&no_trial.0),
            Err(PlansError::Invalid { .. })
        ));
        let zero = write("[[plans]]\nid = \"trial\"\nname = \"T\"\nminutes = 0\nprice_cents = 0\n");
        assert!(matches!(
            load_plans(&zero.0),
            Err(PlansError::Invalid { .. })
        ));
        let typo = write("[[plans]]\nid = \"trial\"\nname = \"T\"\nminutes = 5\nprice = 0\n");
        assert!(matches!(load_plans(&typo.0), Err(PlansError::Parse { .. })));
    }

    #[test]
    fn defaults_have_a_trial_and_two_paid_plans() {
        let plans = default_plans();
        assert!(plans.iter().any(|p| p.id == "trial" && p.price_cents == 0));
        assert!(plans.iter().filter(|p| p.price_cents > 0).count() >= 2);
    }
}
