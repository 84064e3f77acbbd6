//! The limits that protect accounts, addresses and users, counted in Redis so that they hold
//! across every node of a cluster: the per-user realtime rates ([`UserRates`]), sign-in failures
//! per account and address ([`FailureCounter`]), sign-ins and intakes per address and messages
//! per user ([`KeyedRates`]) and realtime connections per address ([`SharedSlots`]).
//!
//! Each check is one Lua script, so it is atomic whichever node runs it, and it reads Redis's own
//! clock (`TIME`), so nodes with drifting clocks agree. Rates are the same GCRA the in-process
//! limiters use (`n` per period in bursts of up to `n`), kept as one key per bucket that expires
//! when the bucket is full again. Connection slots are members of a sorted set per address,
//! scored by their expiry: the node holding them renews them every [`SLOT_RENEW_EVERY`], so the
//! slots of a node that died go away after [`SLOT_TTL`] by themselves.
//!
//! When Redis does not answer (an error, or no answer within [`REDIS_WAIT`]), every check falls
//! back to a counter of this process, with the same limits, and says so in the log at most once
//! every [`WARN_EVERY`]; for the next [`RETRY_AFTER`] checks go straight to the local counters,
//! so an outage does not slow every request down. While Redis is away each node enforces the
//! limits on its own clients; nobody is refused because the counters are unreachable.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use futures_util::future::BoxFuture;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, RateLimiter};
use redis::aio::ConnectionManager;
use redis::Script;
use uuid::Uuid;

use crate::limits::{quota, FailureCounter, FailureKey, KeyedRates, Limiters, Limits, SharedSlots};
use crate::realtime::rates::{Action, LocalRates, UserRates};

/// Longest wait for Redis before a check falls back to this process's counter.
pub const REDIS_WAIT: Duration = Duration::from_millis(500);
/// How long a connection slot lives in Redis unless its node renews it.
pub const SLOT_TTL: Duration = Duration::from_secs(30);
/// How often a node renews the connection slots it holds.
pub const SLOT_RENEW_EVERY: Duration = Duration::from_secs(10);
/// How long checks skip Redis after it failed to answer.
pub const RETRY_AFTER: Duration = Duration::from_secs(2);
/// Fewest seconds between two warnings that Redis is not counting.
pub const WARN_EVERY: Duration = Duration::from_secs(10);

/// Every key this module writes starts with this.
const PREFIX: &str = "wrenchline:limits";

/// GCRA: KEYS[1] holds the theoretical arrival time in µs; ARGV[1] the µs between events,
/// ARGV[2] the burst. Returns 0 when admitted (and counted), else 1 + the µs to wait.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local allow_at = tat + interval - burst * interval
if now < allow_at then return math.floor(allow_at - now) + 1 end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.floor((new_tat - now) / 1000) + 1)
return 0
";

/// One sign-in failure: the window opens with the first one. ARGV[1]: the window in ms.
const FAIL: &str = r"
local n = redis.call('INCR', KEYS[1])
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
";

/// ms left in the window when KEYS[1] has at least ARGV[1] failures, else 0.
const BLOCKED: &str = r"
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n < tonumber(ARGV[1]) then return 0 end
local left = redis.call('PTTL', KEYS[1])
if left < 0 then return 0 end
return left
";

/// A connection slot: KEYS[1] the address's set; ARGV[1] the most slots, ARGV[2] the TTL in ms,
/// ARGV[3] the slot. Expired slots are dropped first. Returns 1 when taken, 0 when full.
const TAKE_SLOT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
";

/// Renews (or, after Redis lost them, puts back) the slots ARGV[2..] of KEYS[1] for ARGV[1] ms.
const RENEW_SLOTS: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], now + ttl, ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], ttl)
return #ARGV - 1
";

struct Scripts {
    gcra: Script,
    fail: Script,
    blocked: Script,
    take_slot: Script,
    renew_slots: Script,
}

/// What a node falls back to while Redis does not answer.
struct Local {
    rates: LocalRates,
    failures: crate::limits::MemoryFailures,
    keyed: DashMap<&'static str, DefaultKeyedRateLimiter<String>>,
    slots: Arc<Mutex<HashMap<IpAddr, u32>>>,
}

/// The counters of a cluster, in Redis, with this process's counters as the fallback.
pub struct RedisCounters {
    conn: ConnectionManager,
    limits: Limits,
    scripts: Arc<Scripts>,
    local: Local,
    /// Slots this process holds in Redis: slot id → address.
    held: Arc<DashMap<String, IpAddr>>,
    /// When the last warning was logged, in ms since `started`.
    last_warning: AtomicU64,
    /// Until when (ms since `started`) checks skip Redis.
    skip_until: AtomicU64,
    started: Instant,
}

impl RedisCounters {
    pub fn new(conn: ConnectionManager, limits: &Limits) -> Self {
        RedisCounters {
            conn,
            limits: limits.clone(),
            scripts: Arc::new(Scripts {
                gcra: Script::new(GCRA),
                fail: Script::new(FAIL),
                blocked: Script::new(BLOCKED),
                take_slot: Script::new(TAKE_SLOT),
                renew_slots: Script::new(RENEW_SLOTS),
            }),
            local: Local {
                rates: LocalRates::new(limits),
                failures: crate::limits::MemoryFailures::new(
                    limits.login_failures_per_account_and_address_per_minute,
                    FAILURE_WINDOW,
                ),
                keyed: DashMap::new(),
                slots: Arc::new(Mutex::new(HashMap::new())),
            },
            held: Arc::new(DashMap::new()),
            last_warning: AtomicU64::new(u64::MAX),
            skip_until: AtomicU64::new(0),
            started: Instant::now(),
        }
    }

    /// The limiters of a node whose account, address and user limits are these counters.
    pub fn limiters(self: &Arc<Self>) -> Limiters {
        Limiters::shared(
            self.limits.clone(),
            self.clone(),
            self.clone(),
            self.clone(),
        )
    }

    /// Runs `call` against Redis, giving up after [`REDIS_WAIT`]; `None` (logged) when it failed.
    async fn redis<T, F, Fut>(&self, what: &str, call: F) -> Option<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        if self.millis() < self.skip_until.load(Ordering::Relaxed) {
            return None;
        }
        let error = match tokio::time::timeout(REDIS_WAIT, call(self.conn.clone())).await {
            Ok(Ok(value)) => return Some(value),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "no answer in time".to_string(),
        };
        self.skip_until.store(
            self.millis() + RETRY_AFTER.as_millis() as u64,
            Ordering::Relaxed,
        );
        self.warn(what, &error);
        None
    }

    fn millis(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn warn(&self, what: &str, error: &str) {
        let now = self.millis();
        let last = self.last_warning.load(Ordering::Relaxed);
        let due = last == u64::MAX || now.saturating_sub(last) >= WARN_EVERY.as_millis() as u64;
        if due
            && self
                .last_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                check = what,
                error,
                "shared limits unavailable: counting in this process until Redis answers"
            );
        }
    }

    /// GCRA on Redis: `Some(Ok)` admitted, `Some(Err(wait))` refused, `None` Redis failed.
    async fn gcra(&self, key: String, n: u32, per: Duration) -> Option<Result<(), Duration>> {
        let n = n.max(1);
        let interval = (per.as_micros() / u128::from(n)).max(1) as u64;
        let scripts = self.scripts.clone();
        let waited: u64 = self
            .redis("rate", |mut conn| async move {
                scripts
                    .gcra
                    .key(key)
                    .arg(interval)
                    .arg(n)
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
        Some(match waited {
            0 => Ok(()),
            w => Err(Duration::from_micros(w - 1)),
        })
    }

    fn local_keyed(
        &self,
        bucket: &'static str,
        key: String,
        n: u32,
        per: Duration,
    ) -> Result<(), Duration> {
        let limiter = self
            .local
            .keyed
            .entry(bucket)
            .or_insert_with(|| RateLimiter::keyed(quota(per, n)));
        limiter
            .check_key(&key)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// Renews every slot this process holds, so they outlive [`SLOT_TTL`] while their
    /// connections are open (and come back after Redis lost them).
    pub async fn renew_slots(&self) {
        let mut by_address: HashMap<IpAddr, Vec<String>> = HashMap::new();
        for slot in self.held.iter() {
            by_address
                .entry(*slot.value())
                .or_default()
                .push(slot.key().clone());
        }
        for (address, slots) in by_address {
            let scripts = self.scripts.clone();
            let ttl = SLOT_TTL.as_millis() as u64;
            let renewed: Option<u64> = self
                .redis("connection slots", |mut conn| async move {
                    scripts
                        .renew_slots
                        .key(slots_key(address))
                        .arg(ttl)
                        .arg(slots)
                        .invoke_async(&mut conn)
                        .await
                })
                .await;
            if renewed.is_none() {
                return;
            }
        }
    }

    /// Until the process ends: renews the held slots every [`SLOT_RENEW_EVERY`].
    pub async fn keep_slots(self: Arc<Self>) {
        let mut tick = tokio::time::interval(SLOT_RENEW_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.renew_slots().await;
        }
    }

    /// Drops what the fallback counters no longer need.
    pub fn forget_idle(&self) {
        self.local.rates.forget_idle();
        self.local.failures.forget_idle();
        for limiter in self.local.keyed.iter() {
            limiter.retain_recent();
        }
    }
}

/// The sign-in failure window (the limit is per minute).
const FAILURE_WINDOW: Duration = Duration::from_secs(60);

fn rate_key(bucket: &str, key: &str) -> String {
    format!("{PREFIX}:rate:{bucket}:{key}")
}

fn failure_key(key: &FailureKey) -> String {
    format!(
        "{PREFIX}:signin-failures:{}:{}",
        key.address,
        key.account.to_lowercase()
    )
}

fn slots_key(address: IpAddr) -> String {
    format!("{PREFIX}:connections:{address}")
}

impl UserRates for RedisCounters {
    fn admit(&self, user: Uuid, action: Action) -> BoxFuture<'_, bool> {
        Box::pin(async move {
            let (bucket, n) = match action {
                Action::Join => ("joins", self.limits.joins_per_user_per_second),
                Action::Presence => ("presence", self.limits.presence_per_user_per_second),
                Action::Broadcast => ("broadcasts", self.limits.broadcasts_per_user_per_second),
            };
            let key = rate_key(bucket, &user.to_string());
            match self.gcra(key, n, Duration::from_secs(1)).await {
                Some(outcome) => outcome.is_ok(),
                None => self.local.rates.admit_now(user, action),
            }
        })
    }

    fn forget_idle(&self) {
        RedisCounters::forget_idle(self);
    }
}

impl KeyedRates for RedisCounters {
    fn check(
        &self,
        bucket: &'static str,
        key: String,
        n: u32,
        per: Duration,
    ) -> BoxFuture<'_, Result<(), Duration>> {
        Box::pin(async move {
            match self.gcra(rate_key(bucket, &key), n, per).await {
                Some(outcome) => outcome,
                None => self.local_keyed(bucket, key, n, per),
            }
        })
    }
}

impl FailureCounter for RedisCounters {
    fn blocked<'a>(&'a self, key: &'a FailureKey) -> BoxFuture<'a, Option<Duration>> {
        Box::pin(async move {
            let scripts = self.scripts.clone();
            let limit = self
                .limits
                .login_failures_per_account_and_address_per_minute;
            let redis_key = failure_key(key);
            let left: Option<u64> = self
                .redis("sign-in failures", |mut conn| async move {
                    scripts
                        .blocked
                        .key(redis_key)
                        .arg(limit)
                        .invoke_async(&mut conn)
                        .await
                })
                .await;
            match left {
                Some(0) => None,
                Some(ms) => Some(Duration::from_millis(ms)),
                None => self.local.failures.blocked(key).await,
            }
        })
    }

    fn failed<'a>(&'a self, key: &'a FailureKey) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let scripts = self.scripts.clone();
            let redis_key = failure_key(key);
            let window = FAILURE_WINDOW.as_millis() as u64;
            let counted: Option<u64> = self
                .redis("sign-in failures", |mut conn| async move {
                    scripts
                        .fail
                        .key(redis_key)
                        .arg(window)
                        .invoke_async(&mut conn)
                        .await
                })
                .await;
            if counted.is_none() {
                self.local.failures.failed(key).await;
            }
        })
    }

    fn succeeded<'a>(&'a self, key: &'a FailureKey) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let redis_key = failure_key(key);
            let _: Option<u64> = self
                .redis("sign-in failures", |mut conn| async move {
                    redis::cmd("DEL")
                        .arg(redis_key)
                        .query_async(&mut conn)
                        .await
                })
                .await;
            self.local.failures.succeeded(key).await;
        })
    }

    fn forget_idle(&self) {
        RedisCounters::forget_idle(self);
    }
}

/// A connection slot held in Redis, or in this process while Redis did not answer.
enum Slot {
    Shared {
        id: String,
        address: IpAddr,
        held: Arc<DashMap<String, IpAddr>>,
        conn: ConnectionManager,
    },
    Local {
        address: IpAddr,
        slots: Arc<Mutex<HashMap<IpAddr, u32>>>,
    },
}

impl Drop for Slot {
    fn drop(&mut self) {
        match self {
            Slot::Shared {
                id,
                address,
                held,
                conn,
            } => {
                held.remove(id.as_str());
                let (id, key, mut conn) = (id.clone(), slots_key(*address), conn.clone());
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    runtime.spawn(async move {
                        let freed = tokio::time::timeout(
                            REDIS_WAIT,
                            redis::cmd("ZREM")
                                .arg(key)
                                .arg(id)
                                .query_async::<u64>(&mut conn),
                        )
                        .await;
                        if !matches!(freed, Ok(Ok(_))) {
                            tracing::debug!("connection slot left to expire in Redis");
                        }
                    });
                }
            }
            Slot::Local { address, slots } => {
                let mut open = slots.lock().expect("lock");
                if let Some(count) = open.get_mut(address) {
                    *count -= 1;
                    if *count == 0 {
                        open.remove(address);
                    }
                }
            }
        }
    }
}

impl SharedSlots for RedisCounters {
    fn take(&self, address: IpAddr, max: u32) -> BoxFuture<'_, Option<Box<dyn Send + Sync>>> {
        Box::pin(async move {
            let id = Uuid::new_v4().to_string();
            let scripts = self.scripts.clone();
            let (slot_id, ttl) = (id.clone(), SLOT_TTL.as_millis() as u64);
            let taken: Option<u64> = self
                .redis("connection slots", |mut conn| async move {
                    scripts
                        .take_slot
                        .key(slots_key(address))
                        .arg(max)
                        .arg(ttl)
                        .arg(slot_id)
                        .invoke_async(&mut conn)
                        .await
                })
                .await;
            match taken {
                Some(1) => {
                    self.held.insert(id.clone(), address);
                    Some(Box::new(Slot::Shared {
                        id,
                        address,
                        held: self.held.clone(),
                        conn: self.conn.clone(),
                    }) as Box<dyn Send + Sync>)
                }
                Some(_) => None,
                None => {
                    let mut open = self.local.slots.lock().expect("lock");
                    let count = open.entry(address).or_insert(0);
                    if *count >= max {
                        return None;
                    }
                    *count += 1;
                    Some(Box::new(Slot::Local {
                        address,
                        slots: self.local.slots.clone(),
                    }) as Box<dyn Send + Sync>)
                }
            }
        })
    }
}
