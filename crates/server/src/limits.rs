//! Abuse limits: how often an address may try to sign in or file intakes, how many sign-in
//! failures one account may have from one address, how many messages a user may post, how many
//! joins and presence events a connection may send, how many realtime and plain HTTP connections
//! one address may hold, how long an HTTP client may take over a request, how many release
//! downloads run at once, how large a chat message, a presence payload and a broadcast may
//! be, and how large and long attachments may be and how often a user may upload. The numbers come from configuration (`--limits-file`). Addresses are keyed by
//! [`address_key`]: an IPv6 client is its /64, the block one subscriber usually holds.
//!
//! The limits that protect accounts, addresses and users are counted behind [`FailureCounter`],
//! [`KeyedRates`] and [`SharedSlots`], in this process by default and in Redis for a cluster
//! (`crate::counters`); per-connection limits and the download slots stay in the process.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::Deserialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use crate::error::ApiError;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    pub login_per_address_per_minute: u32,
    /// Failed sign-ins for one account from one address; other addresses keep signing in.
    /// (`login_per_account_per_minute` is the name older files use.)
    #[serde(alias = "login_per_account_per_minute")]
    pub login_failures_per_account_and_address_per_minute: u32,
    pub intakes_per_address_per_hour: u32,
    pub messages_per_user_per_minute: u32,
    pub joins_per_connection_per_second: u32,
    pub presence_per_connection_per_second: u32,
    pub connections_per_address: u32,
    /// Plain HTTP connections one address may hold open (a WebSocket counts under
    /// `connections_per_address` once upgraded; a trusted proxy's connections are not capped,
    /// the requests of each client it forwards are).
    pub http_connections_per_address: u32,
    /// Time for a request's head: from the connection being ready for a request (new, or kept
    /// alive after the previous one) to its last header line. It is also the idle keep-alive
    /// limit. At most 30.
    pub http_header_timeout_seconds: u64,
    /// Longest pause while a request body is being received.
    pub http_body_timeout_seconds: u64,
    /// Longest time from a request's head to the head of its response (a WebSocket upgrade
    /// answers at once; a streamed download's body is not counted).
    pub http_request_timeout_seconds: u64,
    /// Release downloads served at the same time; more are answered 503 with `Retry-After`.
    pub release_downloads_at_once: u32,
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
    // ---- attachments (see `crate::media`) ----
    /// Largest photo upload (JPEG, PNG, WebP), in bytes.
    pub image_max_bytes: u64,
    /// Most pixels a photo may decode to (width × height); larger ones are refused unread.
    pub image_max_pixels: u64,
    /// Largest video clip upload (MP4, MOV, WebM), in bytes.
    pub video_max_bytes: u64,
    /// Longest video clip, in seconds, as its container states it.
    pub video_max_seconds: u64,
    /// Largest voice note upload (WebM/Opus, MP4/AAC), in bytes.
    pub audio_max_bytes: u64,
    /// Longest voice note, in seconds.
    pub audio_max_seconds: u64,
    /// Uploads one user may start per minute.
    pub uploads_per_user_per_minute: u32,
    /// Longest time from an attachment upload's head to its answer (in place of
    /// `http_request_timeout_seconds`: a large clip from a phone takes longer to arrive; a
    /// stalled one is still cut off by `http_body_timeout_seconds`).
    pub upload_timeout_seconds: u64,
}

/// A megabyte, as the upload limits count them (and as their messages print them).
pub const MB: u64 = 1_000_000;

/// Most characters `message_max_chars` may allow: at up to 4 bytes each in UTF-8 they still fit
/// the 64 KiB request body limit, so a long message is a field error rather than a refused body.
pub const MESSAGE_MAX_CHARS_CEILING: usize = 16_000;

/// Most seconds `http_header_timeout_seconds` may allow: a client that has not sent its headers by
/// then is holding a connection, not making a request.
pub const HTTP_HEADER_TIMEOUT_CEILING: u64 = 30;

/// The key per-address limits count under: an IPv4 address itself, an IPv6 address its /64
/// (one subscriber's usual allocation, so rotating through it buys no new budget).
pub fn address_key(address: IpAddr) -> IpAddr {
    match address.to_canonical() {
        IpAddr::V6(v6) => {
            let network = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(network))
        }
        v4 => v4,
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            login_per_address_per_minute: 30,
            login_failures_per_account_and_address_per_minute: 10,
            intakes_per_address_per_hour: 30,
            messages_per_user_per_minute: 120,
            joins_per_connection_per_second: 20,
            presence_per_connection_per_second: 20,
            connections_per_address: 500,
            http_connections_per_address: 256,
            http_header_timeout_seconds: HTTP_HEADER_TIMEOUT_CEILING,
            http_body_timeout_seconds: 30,
            http_request_timeout_seconds: 120,
            release_downloads_at_once: 16,
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
            image_max_bytes: 25 * MB,
            image_max_pixels: 40_000_000,
            video_max_bytes: 150 * MB,
            video_max_seconds: 60,
            audio_max_bytes: 20 * MB,
            audio_max_seconds: 5 * 60,
            uploads_per_user_per_minute: 30,
            upload_timeout_seconds: 900,
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
            limits.login_failures_per_account_and_address_per_minute,
            limits.intakes_per_address_per_hour,
            limits.messages_per_user_per_minute,
            limits.joins_per_connection_per_second,
            limits.presence_per_connection_per_second,
            limits.connections_per_address,
            limits.http_connections_per_address,
            limits.release_downloads_at_once,
        ];
        let sizes = [
            limits.message_max_chars,
            limits.presence_payload_max_bytes,
            limits.broadcast_payload_max_bytes,
        ];
        if limits.realtime_values().contains(&0) {
            return Err(LimitsError::Zero { path: name });
        }
        let seconds = [
            limits.http_header_timeout_seconds,
            limits.http_body_timeout_seconds,
            limits.http_request_timeout_seconds,
        ];
        let media = [
            limits.image_max_bytes,
            limits.image_max_pixels,
            limits.video_max_bytes,
            limits.video_max_seconds,
            limits.audio_max_bytes,
            limits.audio_max_seconds,
            u64::from(limits.uploads_per_user_per_minute),
            limits.upload_timeout_seconds,
        ];
        if all.contains(&0) || sizes.contains(&0) || seconds.contains(&0) || media.contains(&0) {
            return Err(LimitsError::Zero { path: name });
        }
        if limits.http_header_timeout_seconds > HTTP_HEADER_TIMEOUT_CEILING {
            return Err(LimitsError::TooLarge {
                path: name,
                key: "http_header_timeout_seconds",
                max: HTTP_HEADER_TIMEOUT_CEILING as usize,
            });
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
    login_failures: Arc<dyn FailureCounter>,
    shared: Option<Arc<dyn KeyedRates>>,
    slots: Option<Arc<dyn SharedSlots>>,
    intake_address: DefaultKeyedRateLimiter<IpAddr>,
    messages_user: DefaultKeyedRateLimiter<Uuid>,
    uploads_user: DefaultKeyedRateLimiter<Uuid>,
    connections: Arc<Mutex<HashMap<IpAddr, u32>>>,
    http_connections: Arc<Mutex<HashMap<IpAddr, u32>>>,
    downloads: Arc<Semaphore>,
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
        let failures = MemoryFailures::new(
            limits.login_failures_per_account_and_address_per_minute,
            Duration::from_secs(60),
        );
        Self::with_failure_counter(limits, Arc::new(failures))
    }

    /// Limiters whose sign-in failures are kept by `failures` (servers sharing a database would
    /// share one).
    pub fn with_failure_counter(limits: Limits, failures: Arc<dyn FailureCounter>) -> Self {
        let minute = Duration::from_secs(60);
        Limiters {
            login_address: RateLimiter::keyed(quota(minute, limits.login_per_address_per_minute)),
            login_failures: failures,
            shared: None,
            slots: None,
            intake_address: RateLimiter::keyed(quota(
                Duration::from_secs(3600),
                limits.intakes_per_address_per_hour,
            )),
            messages_user: RateLimiter::keyed(quota(minute, limits.messages_per_user_per_minute)),
            uploads_user: RateLimiter::keyed(quota(minute, limits.uploads_per_user_per_minute)),
            connections: Arc::new(Mutex::new(HashMap::new())),
            http_connections: Arc::new(Mutex::new(HashMap::new())),
            downloads: Arc::new(Semaphore::new(limits.release_downloads_at_once as usize)),
            limits,
        }
    }

    /// Limiters whose sign-in failures, per-address and per-user rates and realtime connections
    /// per address are counted by a cluster's shared counters.
    pub fn shared(
        limits: Limits,
        failures: Arc<dyn FailureCounter>,
        rates: Arc<dyn KeyedRates>,
        slots: Arc<dyn SharedSlots>,
    ) -> Self {
        let mut limiters = Self::with_failure_counter(limits, failures);
        limiters.shared = Some(rates);
        limiters.slots = Some(slots);
        limiters
    }

    /// One event for `key` against `n` per `per`: on the shared counters when there are some,
    /// else on `local`.
    async fn count<K: std::hash::Hash + Eq + Clone + std::fmt::Display>(
        &self,
        bucket: &'static str,
        local: &DefaultKeyedRateLimiter<K>,
        key: &K,
        (n, per): (u32, Duration),
        what: &str,
    ) -> Result<(), ApiError> {
        match &self.shared {
            Some(shared) => shared
                .check(bucket, key.to_string(), n, per)
                .await
                .map_err(|wait| too_many(what, wait)),
            None => check(local, key, what),
        }
    }

    /// Admits a sign-in attempt for `account` from `address`, before the password is checked:
    /// every attempt counts against the address, and an account that has had too many failures
    /// from this address waits. Failures from other addresses do not count, so nobody can lock a
    /// mechanic out by guessing from elsewhere. Report the outcome with [`Limiters::login_failed`]
    /// or [`Limiters::login_succeeded`].
    pub async fn login(&self, address: IpAddr, account: &str) -> Result<(), ApiError> {
        let address = address_key(address);
        let budget = (
            self.limits.login_per_address_per_minute,
            Duration::from_secs(60),
        );
        self.count(
            "login-address",
            &self.login_address,
            &address,
            budget,
            "Too many sign-in attempts from this address",
        )
        .await?;
        let key = FailureKey::new(account, address);
        match self.login_failures.blocked(&key).await {
            Some(wait) => Err(too_many(
                "Too many failed sign-ins for this account from this address",
                wait,
            )),
            None => Ok(()),
        }
    }

    pub async fn login_failed(&self, address: IpAddr, account: &str) {
        let key = FailureKey::new(account, address_key(address));
        self.login_failures.failed(&key).await;
    }

    pub async fn login_succeeded(&self, address: IpAddr, account: &str) {
        let key = FailureKey::new(account, address_key(address));
        self.login_failures.succeeded(&key).await;
    }

    pub async fn intake(&self, address: IpAddr) -> Result<(), ApiError> {
        let budget = (
            self.limits.intakes_per_address_per_hour,
            Duration::from_secs(3600),
        );
        self.count(
            "intake-address",
            &self.intake_address,
            &address_key(address),
            budget,
            "Too many requests from this address",
        )
        .await
    }

    pub async fn message(&self, user: Uuid) -> Result<(), ApiError> {
        let budget = (
            self.limits.messages_per_user_per_minute,
            Duration::from_secs(60),
        );
        self.count(
            "messages-user",
            &self.messages_user,
            &user,
            budget,
            "You are sending messages too quickly",
        )
        .await
    }

    pub fn upload(&self, user: Uuid) -> Result<(), ApiError> {
        check(
            &self.uploads_user,
            &user,
            "You are sending files too quickly",
        )
    }

    /// A per-connection limiter for realtime events.
    pub fn per_second(n: u32) -> DefaultDirectRateLimiter {
        RateLimiter::direct(quota(Duration::from_secs(1), n))
    }

    /// Admits one more realtime connection from `address`; the slot is freed when the guard drops.
    pub async fn connect(&self, address: IpAddr) -> Option<ConnectionSlot> {
        let address = address_key(address);
        let max = self.limits.connections_per_address;
        match &self.slots {
            Some(slots) => {
                let guard = slots.take(address, max).await?;
                Some(ConnectionSlot {
                    address,
                    connections: None,
                    _shared: Some(guard),
                })
            }
            None => ConnectionSlot::take(&self.connections, address, max),
        }
    }

    /// Admits one more plain HTTP connection (or, behind a trusted proxy, request in progress)
    /// from `address`; the slot is freed when the guard drops.
    pub fn http_connection(&self, address: IpAddr) -> Option<ConnectionSlot> {
        ConnectionSlot::take(
            &self.http_connections,
            address_key(address),
            self.limits.http_connections_per_address,
        )
    }

    /// A place among the release downloads running at once, held until the download ends;
    /// `None` when all are taken.
    pub fn download(&self) -> Option<OwnedSemaphorePermit> {
        self.downloads.clone().try_acquire_owned().ok()
    }

    /// Forgets keys that have not been limited recently, so the maps do not grow without bound.
    pub fn forget_idle(&self) {
        self.login_address.retain_recent();
        self.login_failures.forget_idle();
        self.intake_address.retain_recent();
        self.messages_user.retain_recent();
        self.uploads_user.retain_recent();
    }
}

/// One admitted connection.
pub struct ConnectionSlot {
    address: IpAddr,
    /// The in-process count it is part of (none for a slot held in shared counters).
    connections: Option<Arc<Mutex<HashMap<IpAddr, u32>>>>,
    /// The shared counters' hold on the slot, released when dropped.
    _shared: Option<Box<dyn Send + Sync>>,
}

/// Realtime connections per address counted for every node: `take` admits one more connection
/// from `address` unless it already holds `max`; the slot is freed when the returned guard drops.
pub trait SharedSlots: Send + Sync {
    fn take(&self, address: IpAddr, max: u32) -> BoxFuture<'_, Option<Box<dyn Send + Sync>>>;
}

/// Rate budgets like the in-process ones (`n` per `per`, in bursts of up to `n`), counted where
/// every node of a cluster sees them. `bucket` names the limit, `key` whom it counts.
pub trait KeyedRates: Send + Sync {
    /// Counts one event; `Err(wait)` when `key` is over its budget (nothing is counted then).
    fn check(
        &self,
        bucket: &'static str,
        key: String,
        n: u32,
        per: Duration,
    ) -> BoxFuture<'_, Result<(), Duration>>;
}

impl ConnectionSlot {
    fn take(
        connections: &Arc<Mutex<HashMap<IpAddr, u32>>>,
        address: IpAddr,
        max: u32,
    ) -> Option<ConnectionSlot> {
        let mut open = connections.lock().expect("lock");
        let count = open.entry(address).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(ConnectionSlot {
            address,
            connections: Some(connections.clone()),
            _shared: None,
        })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let Some(connections) = &self.connections else {
            return;
        };
        let mut open = connections.lock().expect("lock");
        if let Some(count) = open.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.address);
            }
        }
    }
}

/// Whose sign-in failures are counted together: one account from one address (as keyed by
/// [`address_key`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FailureKey {
    pub account: String,
    pub address: IpAddr,
}

impl FailureKey {
    fn new(account: &str, address: IpAddr) -> Self {
        FailureKey {
            account: account.to_string(),
            address,
        }
    }
}

/// Counts failed sign-ins per [`FailureKey`] over a window. This server keeps them in memory
/// ([`MemoryFailures`]); servers that share a database would keep them where all of them see
/// them, behind this same interface.
pub trait FailureCounter: Send + Sync {
    /// How long `key` must wait before trying again, when it has used up its failures.
    fn blocked<'a>(&'a self, key: &'a FailureKey) -> BoxFuture<'a, Option<Duration>>;
    /// Counts one failure for `key`.
    fn failed<'a>(&'a self, key: &'a FailureKey) -> BoxFuture<'a, ()>;
    /// A success clears the failures of `key`.
    fn succeeded<'a>(&'a self, key: &'a FailureKey) -> BoxFuture<'a, ()>;
    /// Drops what no longer counts.
    fn forget_idle(&self);
}

/// Failures in this process: at most `limit` per key in a window that opens with the first
/// failure; once used up, the key waits until the window closes.
pub struct MemoryFailures {
    limit: u32,
    window: Duration,
    failures: Mutex<HashMap<FailureKey, (Instant, u32)>>,
}

impl MemoryFailures {
    pub fn new(limit: u32, window: Duration) -> Self {
        MemoryFailures {
            limit: limit.max(1),
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn blocked_now(&self, key: &FailureKey, now: Instant) -> Option<Duration> {
        let failures = self.failures.lock().expect("lock");
        let (opened, count) = failures.get(key)?;
        let closes = *opened + self.window;
        (*count >= self.limit && now < closes).then(|| closes - now)
    }

    fn failed_now(&self, key: &FailureKey, now: Instant) {
        let mut failures = self.failures.lock().expect("lock");
        let entry = failures.entry(key.clone()).or_insert((now, 0));
        if now >= entry.0 + self.window {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }
}

impl FailureCounter for MemoryFailures {
    fn blocked<'a>(&'a self, key: &'a FailureKey) -> BoxFuture<'a, Option<Duration>> {
        Box::pin(std::future::ready(self.blocked_now(key, Instant::now())))
    }

    fn failed<'a>(&'a self, key: &'a FailureKey) -> BoxFuture<'a, ()> {
        self.failed_now(key, Instant::now());
        Box::pin(std::future::ready(()))
    }

    fn succeeded<'a>(&'a self, key: &'a FailureKey) -> BoxFuture<'a, ()> {
        self.failures.lock().expect("lock").remove(key);
        Box::pin(std::future::ready(()))
    }

    fn forget_idle(&self) {
        let now = Instant::now();
        self.failures
            .lock()
            .expect("lock")
            .retain(|_, (opened, _)| now < *opened + self.window);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn failures_count_per_account_and_address() {
        let limiters = Limiters::new(Limits {
            login_failures_per_account_and_address_per_minute: 2,
            ..Limits::default()
        });
        let guesser: IpAddr = "198.51.100.7".parse().unwrap();
        let own: IpAddr = "203.0.113.5".parse().unwrap();
        let account = "x@example.com";
        for _ in 0..2 {
            assert!(limiters.login(guesser, account).await.is_ok());
            limiters.login_failed(guesser, account).await;
        }
        let refused = limiters.login(guesser, account).await.unwrap_err();
        assert_eq!(refused.code(), "rate_limited");
        assert!(
            limiters.login(own, account).await.is_ok(),
            "the account's own address is unaffected"
        );
        assert!(
            limiters.login(guesser, "y@example.com").await.is_ok(),
            "another account is unaffected"
        );
        // Attempts that succeed do not count, and a success clears the failures.
        for _ in 0..5 {
            assert!(limiters.login(own, account).await.is_ok());
            limiters.login_succeeded(own, account).await;
        }
        limiters.login_failed(own, account).await;
        limiters.login_succeeded(own, account).await;
        limiters.login_failed(own, account).await;
        assert!(limiters.login(own, account).await.is_ok());
    }

    #[test]
    fn a_failure_window_closes() {
        let failures = MemoryFailures::new(1, Duration::from_secs(60));
        let key = FailureKey::new("x@example.com", "127.0.0.1".parse().unwrap());
        let start = Instant::now();
        failures.failed_now(&key, start);
        let wait = failures.blocked_now(&key, start + Duration::from_secs(10));
        assert_eq!(wait, Some(Duration::from_secs(50)));
        assert_eq!(
            failures.blocked_now(&key, start + Duration::from_secs(60)),
            None
        );
        failures.failed_now(&key, start + Duration::from_secs(61));
        assert!(failures
            .blocked_now(&key, start + Duration::from_secs(62))
            .is_some());
    }

    #[tokio::test]
    async fn ipv6_addresses_are_keyed_by_their_64() {
        let key = |text: &str| address_key(text.parse().unwrap());
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:ffff:1:2:3"));
        assert_eq!(
            key("2001:db8:1:2::7"),
            "2001:db8:1:2::".parse::<IpAddr>().unwrap()
        );
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("203.0.113.7"), "203.0.113.7".parse::<IpAddr>().unwrap());
        assert_ne!(key("203.0.113.7"), key("203.0.113.8"));
        assert_eq!(
            key("::ffff:203.0.113.7"),
            "203.0.113.7".parse::<IpAddr>().unwrap(),
            "an IPv4-mapped address is its IPv4 address"
        );
        let limiters = Limiters::new(Limits {
            intakes_per_address_per_hour: 1,
            connections_per_address: 1,
            http_connections_per_address: 1,
            ..Limits::default()
        });
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "2001:db8::2:3".parse().unwrap();
        let elsewhere: IpAddr = "2001:db8:0:1::1".parse().unwrap();
        assert!(limiters.intake(a).await.is_ok());
        assert!(limiters.intake(b).await.is_err());
        assert!(limiters.intake(elsewhere).await.is_ok());
        let _realtime = limiters.connect(a).await.unwrap();
        assert!(limiters.connect(b).await.is_none());
        let _http = limiters.http_connection(a).unwrap();
        assert!(limiters.http_connection(b).is_none());
        assert!(limiters.http_connection(elsewhere).is_some());
    }

    #[test]
    fn downloads_at_once_are_capped() {
        let limiters = Limiters::new(Limits {
            release_downloads_at_once: 1,
            ..Limits::default()
        });
        let first = limiters.download().unwrap();
        assert!(limiters.download().is_none());
        drop(first);
        assert!(limiters.download().is_some());
    }

    #[tokio::test]
    async fn connection_slots_are_counted_and_freed() {
        let limiters = Limiters::new(Limits {
            connections_per_address: 2,
            ..Limits::default()
        });
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let one = limiters.connect(a).await.unwrap();
        let _two = limiters.connect(a).await.unwrap();
        assert!(limiters.connect(a).await.is_none());
        drop(one);
        assert!(limiters.connect(a).await.is_some());
    }

    #[test]
    fn a_limits_file_overrides_some_keys() {
        let path = std::env::temp_dir().join(format!("limits-{}.toml", Uuid::new_v4()));
        std::fs::write(&path, "messages_per_user_per_minute = 5\n").unwrap();
        let limits = Limits::load(&path).unwrap();
        assert_eq!(limits.messages_per_user_per_minute, 5);
        assert_eq!(
            limits.login_failures_per_account_and_address_per_minute,
            Limits::default().login_failures_per_account_and_address_per_minute
        );
        std::fs::write(&path, "login_per_account_per_minute = 4\n").unwrap();
        assert_eq!(
            Limits::load(&path)
                .unwrap()
                .login_failures_per_account_and_address_per_minute,
            4,
            "the older name still reads"
        );
        assert!(Limits::default().http_header_timeout_seconds <= 30);
        std::fs::write(&path, "http_header_timeout_seconds = 31\n").unwrap();
        assert!(matches!(
            Limits::load(&path),
            Err(LimitsError::TooLarge { .. })
        ));
        std::fs::write(&path, "http_body_timeout_seconds = 0\n").unwrap();
        assert!(matches!(Limits::load(&path), Err(LimitsError::Zero { .. })));
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
