//! Abuse limits: how often an address may try to sign in or file intakes, how many messages a
//! user may post, how many joins and presence events a connection may send, how many
//! connections one address may hold, and how large a chat message, a presence payload and a
//! broadcast may be. The numbers come from configuration (`--limits-file`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::Deserialize;
use uuid::Uuid;

use crate::error::ApiError;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    pub login_per_address_per_minute: u32,
    pub login_per_account_per_minute: u32,
    pub intakes_per_address_per_hour: u32,
    pub messages_per_user_per_minute: u32,
    pub joins_per_connection_per_second: u32,
    pub presence_per_connection_per_second: u32,
    pub connections_per_address: u32,
    /// Longest chat message, in characters once trimmed.
    pub message_max_chars: usize,
    /// Largest presence track, in bytes of the whole frame.
    pub presence_payload_max_bytes: usize,
    /// Largest broadcast, in bytes of the whole frame.
    pub broadcast_payload_max_bytes: usize,
    // ---- realtime: per user, per topic and per connection (see `crate::realtime::rates`) ----
    /// Joins one user may make per second, over all their connections.
    pub joins_per_user_per_second: u32,
    /// Presence tracks and untracks one user may send per second, over all their connections.
    pub presence_per_user_per_second: u32,
    /// Broadcasts one connection may send per second.
    pub broadcasts_per_connection_per_second: u32,
    /// Broadcasts one user may send per second, over all their connections and HTTP.
    pub broadcasts_per_user_per_second: u32,
    /// Subscriptions one user may hold on one session topic (`chat:session-{id}` and its
    /// `:presence` topic count apart); the mechanics' `requests` feed is not capped this way.
    pub session_topic_subscribers_per_user: u32,
    /// Subscriptions a session topic may hold in all.
    pub session_topic_subscribers: u32,
    /// `postgres_changes` bindings one join may carry, once duplicates are merged.
    pub postgres_changes_per_join: u32,
    /// Bytes of frames a connection may have queued before it is cut off as too slow.
    pub outbound_queue_max_bytes: usize,
}

/// Most characters `message_max_chars` may allow: at up to 4 bytes each in UTF-8 they still fit
/// the 64 KiB request body limit, so a long message is a field error rather than a refused body.
pub const MESSAGE_MAX_CHARS_CEILING: usize = 16_000;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            login_per_address_per_minute: 30,
            login_per_account_per_minute: 10,
            intakes_per_address_per_hour: 30,
            messages_per_user_per_minute: 120,
            joins_per_connection_per_second: 20,
            presence_per_connection_per_second: 20,
            connections_per_address: 500,
            message_max_chars: wrenchline_protocol::MAX_MESSAGE_CHARS,
            presence_payload_max_bytes: 4 * 1024,
            broadcast_payload_max_bytes: 64 * 1024,
            joins_per_user_per_second: 30,
            presence_per_user_per_second: 30,
            broadcasts_per_connection_per_second: 20,
            broadcasts_per_user_per_second: 40,
            session_topic_subscribers_per_user: 4,
            session_topic_subscribers: 10,
            postgres_changes_per_join: 4,
            outbound_queue_max_bytes: 2 * 1024 * 1024,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LimitsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a valid limits file: {source}")]
    Parse {
        path: String,
        source: toml::de::Error,
    },
    #[error("{path}: every limit must be at least 1")]
    Zero { path: String },
    #[error("{path}: {key} may be at most {max}")]
    TooLarge {
        path: String,
        key: &'static str,
        max: usize,
    },
}

impl Limits {
    /// Reads a TOML file of limits; keys left out keep their defaults.
    pub fn load(path: &Path) -> Result<Limits, LimitsError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| LimitsError::Read {
            path: name.clone(),
            source,
        })?;
        let limits: Limits = toml::from_str(&text).map_err(|source| LimitsError::Parse {
            path: name.clone(),
            source,
        })?;
        let all = [
            limits.login_per_address_per_minute,
            limits.login_per_account_per_minute,
            limits.intakes_per_address_per_hour,
            limits.messages_per_user_per_minute,
            limits.joins_per_connection_per_second,
            limits.presence_per_connection_per_second,
            limits.connections_per_address,
        ];
        let sizes = [
            limits.message_max_chars,
            limits.presence_payload_max_bytes,
            limits.broadcast_payload_max_bytes,
        ];
        if limits.realtime_values().contains(&0) {
            return Err(LimitsError::Zero { path: name });
        }
        if all.contains(&0) || sizes.contains(&0) {
            return Err(LimitsError::Zero { path: name });
        }
        // A realtime frame larger than the socket accepts never reaches the payload check.
        let frame_max = crate::realtime::MAX_FRAME_BYTES;
        for (key, value, max) in [
            (
                "message_max_chars",
                limits.message_max_chars,
                MESSAGE_MAX_CHARS_CEILING,
            ),
            (
                "presence_payload_max_bytes",
                limits.presence_payload_max_bytes,
                frame_max,
            ),
            (
                "broadcast_payload_max_bytes",
                limits.broadcast_payload_max_bytes,
                frame_max,
            ),
        ] {
            if value > max {
                return Err(LimitsError::TooLarge {
                    path: name,
                    key,
                    max,
                });
            }
        }
        Ok(limits)
    }

    /// The realtime limits, for the check that none is zero.
    fn realtime_values(&self) -> [usize; 8] {
        [
            self.joins_per_user_per_second as usize,
            self.presence_per_user_per_second as usize,
            self.broadcasts_per_connection_per_second as usize,
            self.broadcasts_per_user_per_second as usize,
            self.session_topic_subscribers_per_user as usize,
            self.session_topic_subscribers as usize,
            self.postgres_changes_per_join as usize,
            self.outbound_queue_max_bytes,
        ]
    }
}

pub(crate) fn quota(per: Duration, n: u32) -> Quota {
    let n = NonZeroU32::new(n.max(1)).expect("at least one");
    Quota::with_period(per / n.get())
        .expect("a positive period")
        .allow_burst(n)
}

/// The limiters of one server.
pub struct Limiters {
    pub limits: Limits,
    login_address: DefaultKeyedRateLimiter<IpAddr>,
    login_account: DefaultKeyedRateLimiter<String>,
    intake_address: DefaultKeyedRateLimiter<IpAddr>,
    messages_user: DefaultKeyedRateLimiter<Uuid>,
    connections: Arc<Mutex<HashMap<IpAddr, u32>>>,
}

fn too_many(what: &str, wait: Duration) -> ApiError {
    ApiError::TooManyRequests {
        message: format!("{what}; try again in {} s", wait.as_secs().max(1)),
        retry_after: wait,
    }
}

fn check<K: std::hash::Hash + Eq + Clone>(
    limiter: &DefaultKeyedRateLimiter<K>,
    key: &K,
    what: &str,
) -> Result<(), ApiError> {
    limiter.check_key(key).map_err(|not_until| {
        too_many(
            what,
            not_until.wait_time_from(DefaultClock::default().now()),
        )
    })
}

impl Limiters {
    pub fn new(limits: Limits) -> Self {
        let minute = Duration::from_secs(60);
        Limiters {
            login_address: RateLimiter::keyed(quota(minute, limits.login_per_address_per_minute)),
            login_account: RateLimiter::keyed(quota(minute, limits.login_per_account_per_minute)),
            intake_address: RateLimiter::keyed(quota(
                Duration::from_secs(3600),
                limits.intakes_per_address_per_hour,
            )),
            messages_user: RateLimiter::keyed(quota(minute, limits.messages_per_user_per_minute)),
            connections: Arc::new(Mutex::new(HashMap::new())),
            limits,
        }
    }

    pub fn login(&self, address: IpAddr, account: &str) -> Result<(), ApiError> {
        check(
            &self.login_address,
            &address,
            "Too many sign-in attempts from this address",
        )?;
        check(
            &self.login_account,
            &account.to_string(),
            "Too many sign-in attempts for this account",
        )
    }

    pub fn intake(&self, address: IpAddr) -> Result<(), ApiError> {
        check(
            &self.intake_address,
            &address,
            "Too many requests from this address",
        )
    }

    pub fn message(&self, user: Uuid) -> Result<(), ApiError> {
        check(
            &self.messages_user,
            &user,
            "You are sending messages too quickly",
        )
    }

    /// A per-connection limiter for realtime events.
    pub fn per_second(n: u32) -> DefaultDirectRateLimiter {
        RateLimiter::direct(quota(Duration::from_secs(1), n))
    }

    /// Admits one more connection from `address`; the slot is freed when the guard drops.
    pub fn connect(&self, address: IpAddr) -> Option<ConnectionSlot> {
        let mut open = self.connections.lock().expect("lock");
        let count = open.entry(address).or_insert(0);
        if *count >= self.limits.connections_per_address {
            return None;
        }
        *count += 1;
        Some(ConnectionSlot {
            address,
            connections: self.connections.clone(),
        })
    }

    /// Forgets keys that have not been limited recently, so the maps do not grow without bound.
    pub fn forget_idle(&self) {
        self.login_address.retain_recent();
        self.login_account.retain_recent();
        self.intake_address.retain_recent();
        self.messages_user.retain_recent();
    }
}

/// One admitted connection.
pub struct ConnectionSlot {
    address: IpAddr,
    connections: Arc<Mutex<HashMap<IpAddr, u32>>>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self.connections.lock().expect("lock");
        if let Some(count) = open.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_apply_per_key() {
        let limiters = Limiters::new(Limits {
            login_per_account_per_minute: 2,
            ..Limits::default()
        });
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(limiters.login(a, "x@example.com").is_ok());
        assert!(limiters.login(a, "x@example.com").is_ok());
        let refused = limiters.login(a, "x@example.com").unwrap_err();
        assert_eq!(refused.code(), "rate_limited");
        assert!(
            limiters.login(a, "y@example.com").is_ok(),
            "another account is unaffected"
        );
    }

    #[test]
    fn connection_slots_are_counted_and_freed() {
        let limiters = Limiters::new(Limits {
            connections_per_address: 2,
            ..Limits::default()
        });
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let one = limiters.connect(a).unwrap();
        let _two = limiters.connect(a).unwrap();
        assert!(limiters.connect(a).is_none());
        drop(one);
        assert!(limiters.connect(a).is_some());
    }

    #[test]
    fn a_limits_file_overrides_some_keys() {
        let path = std::env::temp_dir().join(format!("limits-{}.toml", Uuid::new_v4()));
        std::fs::write(&path, "messages_per_user_per_minute = 5\n").unwrap();
        let limits = Limits::load(&path).unwrap();
        assert_eq!(limits.messages_per_user_per_minute, 5);
        assert_eq!(
            limits.login_per_account_per_minute,
            Limits::default().login_per_account_per_minute
        );
        std::fs::write(&path, "messages_per_minute = 5\n").unwrap();
        assert!(matches!(
            Limits::load(&path),
            Err(LimitsError::Parse { .. })
        ));
        std::fs::write(&path, "connections_per_address = 0\n").unwrap();
        assert!(matches!(Limits::load(&path), Err(LimitsError::Zero { .. })));
        std::fs::write(
            &path,
            "message_max_chars = 500\npresence_payload_max_bytes = 1024\n\
             broadcast_payload_max_bytes = 2048\n",
        )
        .unwrap();
        let limits = Limits::load(&path).unwrap();
        assert_eq!(
            (
                limits.message_max_chars,
                limits.presence_payload_max_bytes,
                limits.broadcast_payload_max_bytes
            ),
            (500, 1024, 2048)
        );
        std::fs::write(
            &path,
            "session_topic_subscribers_per_user = 2\nbroadcasts_per_user_per_second = 7\n\
             outbound_queue_max_bytes = 65536\n",
        )
        .unwrap();
        let limits = Limits::load(&path).unwrap();
        assert_eq!(
            (
                limits.session_topic_subscribers_per_user,
                limits.broadcasts_per_user_per_second,
                limits.outbound_queue_max_bytes,
                limits.session_topic_subscribers
            ),
            (2, 7, 65536, Limits::default().session_topic_subscribers)
        );
        std::fs::write(&path, "session_topic_subscribers = 0\n").unwrap();
        assert!(matches!(Limits::load(&path), Err(LimitsError::Zero { .. })));
        std::fs::write(&path, "presence_payload_max_bytes = 0\n").unwrap();
        assert!(matches!(Limits::load(&path), Err(LimitsError::Zero { .. })));
        for too_large in [
            format!("message_max_chars = {}\n", MESSAGE_MAX_CHARS_CEILING + 1),
            format!(
                "broadcast_payload_max_bytes = {}\n",
                crate::realtime::MAX_FRAME_BYTES + 1
            ),
        ] {
            std::fs::write(&path, too_large).unwrap();
            assert!(matches!(
                Limits::load(&path),
                Err(LimitsError::TooLarge { .. })
            ));
        }
        let _ = std::fs::remove_file(&path);
    }
}
