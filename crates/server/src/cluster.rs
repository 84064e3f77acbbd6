//! Cluster mode (`serve --redis-url`): the Redis side of the bus and the shared presence. Each
//! node publishes its events on one pub/sub channel that every node subscribes to, keeps its
//! connections' presences in Redis, announces itself with a heartbeat key that expires, and
//! reaps the presences of nodes whose heartbeat expired. PostgreSQL holds every fact; nothing
//! here is needed to recover one, only to fan out and to know who is present.
//!
//! Redis layout (`docs/architecture.md`, "Cluster mode"):
//! - channel `wrenchline:bus`: JSON [`Envelope`]s, `{"node": ..., "event": {...}}`;
//! - `wrenchline:presence:{TOPIC}` hash: field `NODE/CONN` → JSON [`PresenceEntry`];
//! - `wrenchline:presence-expiry:{TOPIC}` sorted set: the same fields, scored by expiry (Unix
//!   ms), refreshed by their node; expired fields are dropped whenever a topic is read;
//! - `wrenchline:node:NODE:alive`: the node's heartbeat, with a TTL;
//! - `wrenchline:node:NODE:presences` set: `TOPIC<TAB>NODE/CONN` for every presence it holds;
//! - `wrenchline:nodes` set of node names; `wrenchline:reaper:NODE`: the lock (`SET NX PX`) of the
//!   one survivor that removes a dead node's presences and publishes their leaves.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use redis::AsyncCommands;
use serde_json::{json, Map, Value};
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use wrenchline_protocol::realtime::topics::Topic;

use crate::presence::{PresenceEntry, PresenceUnavailable, PresenceView};
use crate::realtime::bus::{Envelope, Event, Outbound};
use crate::realtime::changes;
use crate::realtime::Hub;
use crate::state::AppState;

/// The pub/sub channel of the bus.
pub const CHANNEL: &str = "wrenchline:bus";
/// The set of node names that have announced themselves.
pub const NODES_KEY: &str = "wrenchline:nodes";

/// How often a node renews its heartbeat and looks for dead nodes.
pub const HEARTBEAT_EVERY: Duration = Duration::from_millis(1500);
/// A node whose heartbeat is this old is dead; its presences are reaped.
pub const NODE_TTL: Duration = Duration::from_secs(6);
/// A presence its node stopped refreshing expires after this, even if no reaper removed it.
pub const ENTRY_TTL: Duration = Duration::from_secs(60);
/// How often every presence this node holds has its expiry pushed back ([`ENTRY_TTL`] / 4).
const REFRESH_EVERY: Duration = Duration::from_secs(15);
/// Presences one refresh pipeline pushes back. A pass is cut into pipelines this size, spread
/// over half of [`REFRESH_EVERY`], so Redis never has a whole node's presences to write at once.
pub const REFRESH_CHUNK: usize = 256;
/// How long one survivor holds the right to reap a dead node.
const REAP_LOCK_TTL: Duration = Duration::from_secs(30);
/// Longest wait for one Redis command (or pipeline) before Redis counts as away.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the subscription is checked with a ping, and how soon a lost one is retried.
const PING_EVERY: Duration = Duration::from_secs(3);
const RETRY_EVERY: Duration = Duration::from_secs(1);
/// Most queued operations written in one pipeline.
const BATCH: usize = 1024;

pub fn presence_key(topic: &str) -> String {
    format!("wrenchline:presence:{{{topic}}}")
}

pub fn expiry_key(topic: &str) -> String {
    format!("wrenchline:presence-expiry:{{{topic}}}")
}

pub fn alive_key(node: &str) -> String {
    format!("wrenchline:node:{node}:alive")
}

pub fn node_presences_key(node: &str) -> String {
    format!("wrenchline:node:{node}:presences")
}

pub fn reaper_key(node: &str) -> String {
    format!("wrenchline:reaper:{node}")
}

fn field(node: &str, conn: u64) -> String {
    format!("{node}/{conn}")
}

fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Reads a topic's live presences: drops the fields whose expiry passed, then returns the rest.
const READ_PRESENCE: &str = r"
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
for i = 1, #expired, 500 do
  redis.call('HDEL', KEYS[1], unpack(expired, i, math.min(i + 499, #expired)))
end
if #expired > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
end
return redis.call('HVALS', KEYS[1])
";

/// A node name: letters, digits, `.`, `_` and `-`, at most 64 of them.
pub fn valid_node_id(node: &str) -> bool {
    !node.is_empty()
        && node.len() <= 64
        && node
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// A node name for a node that was not given one: the host name and the process id.
pub fn default_node_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    let host: String = host
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .take(40)
        .collect();
    let host = if host.is_empty() { "node".into() } else { host };
    format!("{host}-{}", std::process::id())
}

pub struct Cluster {
    node: String,
    client: redis::Client,
    conn: ConnectionManager,
    /// A second connection for upkeep in bulk (the expiry refresh), so that its pipelines never
    /// queue ahead of the bus's writes on `conn`.
    upkeep: ConnectionManager,
    /// The bus subscription is up.
    subscribed: AtomicBool,
    /// The last heartbeat reached Redis.
    healthy: AtomicBool,
    /// When the bus was lost (Unix ms), until this node has caught up after it came back.
    down_since: Mutex<Option<i64>>,
    read_presence: redis::Script,
}

impl Cluster {
    /// A cluster member named `node` on the Redis at `url`. Nothing is connected yet: a node may
    /// start while Redis is away and becomes ready when it returns.
    pub fn new(url: &str, node: String) -> anyhow::Result<Cluster> {
        let client = redis::Client::open(url)
            .map_err(|e| anyhow::anyhow!("--redis-url {url:?} is not a Redis URL: {e}"))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(COMMAND_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config.clone())?;
        let upkeep = ConnectionManager::new_lazy_with_config(client.clone(), config)?;
        Ok(Cluster {
            node,
            client,
            conn,
            upkeep,
            subscribed: AtomicBool::new(false),
            healthy: AtomicBool::new(false),
            down_since: Mutex::new(None),
            read_presence: redis::Script::new(READ_PRESENCE),
        })
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// A handle on this node's Redis connection (it reconnects by itself), for other shared
    /// state such as the cluster-wide rate counters.
    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// The bus is subscribed and Redis answers.
    pub fn is_up(&self) -> bool {
        self.subscribed.load(Ordering::Acquire) && self.healthy.load(Ordering::Acquire)
    }

    fn mark_down(&self) {
        self.subscribed.store(false, Ordering::Release);
        self.healthy.store(false, Ordering::Release);
        self.down_since
            .lock()
            .expect("lock")
            .get_or_insert_with(now_ms);
    }

    fn envelope(&self, event: Event) -> String {
        serde_json::to_string(&Envelope {
            node: self.node.clone(),
            event,
        })
        .expect("an envelope serializes")
    }

    async fn run<T: redis::FromRedisValue>(&self, pipe: &redis::Pipeline) -> redis::RedisResult<T> {
        run_on(self.conn.clone(), pipe).await
    }
}

async fn run_on<T: redis::FromRedisValue>(
    mut conn: ConnectionManager,
    pipe: &redis::Pipeline,
) -> redis::RedisResult<T> {
    within(pipe.query_async(&mut conn)).await
}

/// A Redis answer, or a time-out error after [`COMMAND_TIMEOUT`].
async fn within<T>(
    answer: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> redis::RedisResult<T> {
    match tokio::time::timeout(COMMAND_TIMEOUT, answer).await {
        Ok(result) => result,
        Err(_) => Err(redis::RedisError::from(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "Redis did not answer in time",
        ))),
    }
}

impl Cluster {
    /// The live presences of a topic, from Redis.
    pub async fn presence(&self, topic: &str) -> redis::RedisResult<Vec<PresenceEntry>> {
        let mut conn = self.conn.clone();
        let mut invocation = self.read_presence.prepare_invoke();
        invocation
            .key(presence_key(topic))
            .key(expiry_key(topic))
            .arg(now_ms());
        let values: Vec<String> = within(invocation.invoke_async(&mut conn)).await?;
        Ok(values
            .iter()
            .filter_map(|v| serde_json::from_str(v).ok())
            .collect())
    }

    /// Adds one queued operation to a pipeline; true when it writes something.
    fn queue(&self, pipe: &mut redis::Pipeline, outbound: Outbound, expiry: i64) -> bool {
        match outbound {
            Outbound::Flush(_) => false,
            Outbound::Publish(event) => {
                pipe.publish(CHANNEL, self.envelope(event)).ignore();
                true
            }
            Outbound::Track {
                topic,
                conn,
                entry,
                diff,
            } => {
                let field = field(&self.node, conn);
                pipe.hset(presence_key(&topic), &field, entry.to_string())
                    .ignore()
                    .zadd(expiry_key(&topic), &field, expiry)
                    .ignore()
                    .sadd(node_presences_key(&self.node), format!("{topic}\t{field}"))
                    .ignore()
                    .publish(CHANNEL, self.envelope(diff))
                    .ignore();
                true
            }
            Outbound::Untrack { topic, conn, diff } => {
                let field = field(&self.node, conn);
                pipe.hdel(presence_key(&topic), &field)
                    .ignore()
                    .zrem(expiry_key(&topic), &field)
                    .ignore()
                    .srem(node_presences_key(&self.node), format!("{topic}\t{field}"))
                    .ignore()
                    .publish(CHANNEL, self.envelope(diff))
                    .ignore();
                true
            }
        }
    }

    /// Removes every presence `dead` holds and publishes their leaves (also to this node's
    /// subscribers); then forgets the node.
    async fn reap(&self, hub: &Hub, dead: &str) -> redis::RedisResult<usize> {
        let mut conn = self.conn.clone();
        let members: Vec<String> = conn.smembers(node_presences_key(dead)).await?;
        let reaped = self.remove(hub, &members).await?;
        let mut pipe = redis::pipe();
        pipe.del(node_presences_key(dead))
            .ignore()
            .srem(NODES_KEY, dead)
            .ignore();
        if dead != self.node {
            pipe.del(alive_key(dead)).ignore();
        }
        self.run::<()>(&pipe).await?;
        Ok(reaped)
    }

    /// Removes what Redis still holds of this node's presences that its connections no longer
    /// have (their leaves could not be written while the bus was away), publishing the leaves.
    async fn clear_stale(&self, hub: &Hub) -> redis::RedisResult<usize> {
        let mut conn = self.conn.clone();
        let members: Vec<String> = conn.smembers(node_presences_key(&self.node)).await?;
        let held: std::collections::HashSet<String> = hub
            .local_presences()
            .into_iter()
            .map(|(topic, conn, _)| format!("{topic}\t{}", field(&self.node, conn)))
            .collect();
        let stale: Vec<String> = members.into_iter().filter(|m| !held.contains(m)).collect();
        if stale.is_empty() {
            return Ok(0);
        }
        let removed = self.remove(hub, &stale).await?;
        let mut pipe = redis::pipe();
        pipe.srem(node_presences_key(&self.node), &stale).ignore();
        self.run::<()>(&pipe).await?;
        Ok(removed)
    }

    /// Removes presences (`TOPIC<TAB>FIELD` members of a node's set) from their topics and
    /// publishes their leaves, also to this node's subscribers; how many there were.
    async fn remove(&self, hub: &Hub, members: &[String]) -> redis::RedisResult<usize> {
        let mut conn = self.conn.clone();
        let mut by_topic: HashMap<&str, Vec<&str>> = HashMap::new();
        for member in members {
            if let Some((topic, field)) = member.split_once('\t') {
                by_topic.entry(topic).or_default().push(field);
            }
        }
        let mut removed = 0;
        for (topic, fields) in by_topic {
            let values: Vec<Option<String>> = redis::cmd("HMGET")
                .arg(presence_key(topic))
                .arg(&fields)
                .query_async(&mut conn)
                .await?;
            let mut pipe = redis::pipe();
            pipe.hdel(presence_key(topic), &fields)
                .ignore()
                .zrem(expiry_key(topic), &fields)
                .ignore();
            let mut leaves: Map<String, Value> = Map::new();
            for entry in values
                .iter()
                .flatten()
                .filter_map(|v| serde_json::from_str::<PresenceEntry>(v).ok())
            {
                removed += 1;
                let slot = leaves
                    .entry(entry.key)
                    .or_insert_with(|| json!({ "metas": [] }));
                if let Some(metas) = slot["metas"].as_array_mut() {
                    metas.push(entry.meta);
                }
            }
            let any = !leaves.is_empty();
            let (joins, leaves) = (json!({}), Value::Object(leaves));
            if any {
                pipe.publish(
                    CHANNEL,
                    self.envelope(Event::PresenceDiff {
                        topic: topic.to_string(),
                        joins: joins.clone(),
                        leaves: leaves.clone(),
                    }),
                )
                .ignore();
            }
            self.run::<()>(&pipe).await?;
            if any {
                hub.remote_presence_diff(topic, &joins, &leaves);
            }
        }
        Ok(removed)
    }

    /// Sends this node's subscribers of every presence topic the shared presence as it is now,
    /// as a fresh `presence_state` (clients sync their whole state from it): after the bus was
    /// away, they may have missed joins and leaves.
    pub async fn resend_presence(&self, hub: &Hub) {
        for topic in hub.presence_topics() {
            match self.presence(&topic).await {
                Ok(entries) => hub.resend_presence_state(&topic, entries),
                Err(e) => {
                    tracing::warn!(error = %e, "resending presence failed");
                    return;
                }
            }
        }
    }

    /// Takes this node out of the cluster when it stops: its heartbeat and membership go (its
    /// presences left with its connections).
    pub async fn leave(&self) {
        let mut pipe = redis::pipe();
        pipe.del(alive_key(&self.node))
            .ignore()
            .del(node_presences_key(&self.node))
            .ignore()
            .srem(NODES_KEY, &self.node)
            .ignore();
        if let Err(e) = self.run::<()>(&pipe).await {
            tracing::warn!(error = %e, "leaving the cluster failed; the survivors will reap this node");
        }
    }
}

impl PresenceView for Cluster {
    fn entries(
        &self,
        topic: Topic,
    ) -> BoxFuture<'_, Result<Vec<PresenceEntry>, PresenceUnavailable>> {
        Box::pin(async move {
            self.presence(&topic.full()).await.map_err(|e| {
                tracing::debug!(error = %e, "shared presence unavailable");
                PresenceUnavailable
            })
        })
    }
}

/// Runs the node's part of the cluster until `stop`: the writer of queued operations, the bus
/// subscription (re-subscribing and catching up after an outage), the heartbeat and reaper, and
/// the presence expiry refresh.
pub fn spawn(
    state: AppState,
    cluster: Arc<Cluster>,
    outbound: mpsc::UnboundedReceiver<Outbound>,
    stop: CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    vec![
        tokio::spawn(write(cluster.clone(), outbound)),
        tokio::spawn(subscribe(state.clone(), cluster.clone(), stop.clone())),
        tokio::spawn(heartbeat(state.clone(), cluster.clone(), stop.clone())),
        tokio::spawn(refresh_presences(state, cluster, stop)),
    ]
}

/// Writes queued operations in order, as pipelines of whatever has queued up. While the bus is
/// away they are dropped: the node rebuilds its presences and catches clients up when it returns.
async fn write(cluster: Arc<Cluster>, mut outbound: mpsc::UnboundedReceiver<Outbound>) {
    let mut batch = Vec::with_capacity(BATCH);
    while outbound.recv_many(&mut batch, BATCH).await > 0 {
        let mut pipe = redis::pipe();
        let mut flushes = Vec::new();
        let mut writes = 0;
        let expiry = now_ms() + ENTRY_TTL.as_millis() as i64;
        for item in batch.drain(..) {
            if let Outbound::Flush(done) = item {
                flushes.push(done);
            } else if cluster.queue(&mut pipe, item, expiry) {
                writes += 1;
            }
        }
        if writes > 0 && cluster.subscribed.load(Ordering::Acquire) {
            if let Err(e) = cluster.run::<()>(&pipe).await {
                tracing::warn!(error = %e, "writing to the bus failed");
                cluster.healthy.store(false, Ordering::Release);
            }
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

/// Keeps the bus subscribed: on every (re)subscription the node puts its presences back and,
/// after an outage, catches its clients up and asks the other nodes to do the same.
async fn subscribe(state: AppState, cluster: Arc<Cluster>, stop: CancellationToken) {
    let mut first = true;
    loop {
        let connected = tokio::time::timeout(COMMAND_TIMEOUT, async {
            let mut pubsub = cluster.client.get_async_pubsub().await?;
            pubsub.subscribe(CHANNEL).await?;
            redis::RedisResult::Ok(pubsub)
        })
        .await;
        match connected {
            Ok(Ok(pubsub)) => {
                let (mut sink, mut stream) = pubsub.split();
                cluster.subscribed.store(true, Ordering::Release);
                if let Err(e) = recover(&state, &cluster, first).await {
                    tracing::warn!(error = %e, "rejoining the cluster failed; retrying");
                    cluster.mark_down();
                } else {
                    if first {
                        tracing::info!(node = %cluster.node, "bus subscribed");
                    } else {
                        tracing::info!(node = %cluster.node, "bus back: subscribed again");
                    }
                    first = false;
                    let mut ping = tokio::time::interval(PING_EVERY);
                    ping.reset();
                    loop {
                        tokio::select! {
                            message = stream.next() => match message {
                                Some(message) => receive(&state, &cluster, &message),
                                None => break,
                            },
                            _ = ping.tick() => {
                                let pong = tokio::time::timeout(COMMAND_TIMEOUT, sink.ping::<redis::Value>()).await;
                                if !matches!(pong, Ok(Ok(_))) {
                                    break;
                                }
                            }
                            () = stop.cancelled() => return,
                        }
                    }
                    tracing::warn!(node = %cluster.node, "bus lost: Redis is away");
                    cluster.mark_down();
                }
            }
            Ok(Err(e)) => {
                if first || cluster.is_up() {
                    tracing::warn!(error = %e, "cannot subscribe to the bus");
                }
                cluster.mark_down();
            }
            Err(_) => cluster.mark_down(),
        }
        tokio::select! {
            () = tokio::time::sleep(RETRY_EVERY) => {}
            () = stop.cancelled() => return,
        }
    }
}

/// After a (re)subscription: a new node first clears what a previous process of the same name
/// left; then the node puts its presences back (announcing them as joins), renews its heartbeat
/// and, after an outage, catches up and decides the live starts it could not decide meanwhile.
async fn recover(state: &AppState, cluster: &Cluster, first: bool) -> redis::RedisResult<()> {
    if first {
        let reaped = cluster.reap(&state.hub, &cluster.node).await?;
        if reaped > 0 {
            tracing::info!(
                presences = reaped,
                "cleared presences a previous process of this node left"
            );
        }
    } else {
        cluster.clear_stale(&state.hub).await?;
    }
    state.hub.republish_presences();
    beat(cluster).await?;
    cluster.healthy.store(true, Ordering::Release);
    let since = cluster.down_since.lock().expect("lock").take();
    if let (false, Some(since)) = (first, since) {
        state
            .hub
            .relay(Outbound::Publish(Event::Resync { since_ms: since }));
        state.hub.flushed().await;
        cluster.resend_presence(&state.hub).await;
        tokio::spawn(changes::catch_up(state.clone(), since));
        // Participants who arrived while the bus was away are present only now: a session
        // whose start could not be decided then is decided now.
        for (topic, _) in state.hub.session_topics() {
            if let Topic::SessionPresence(session) = topic {
                tokio::spawn(crate::realtime::evaluate_start(state.clone(), session));
            }
        }
    }
    Ok(())
}

/// Renews the heartbeat; `None` when it had expired (the node may have been reaped meanwhile).
async fn beat(cluster: &Cluster) -> redis::RedisResult<Option<String>> {
    let mut pipe = redis::pipe();
    pipe.cmd("SET")
        .arg(alive_key(&cluster.node))
        .arg(now_ms())
        .arg("PX")
        .arg(NODE_TTL.as_millis() as u64)
        .arg("GET")
        .sadd(NODES_KEY, &cluster.node)
        .ignore();
    let (previous,): (Option<String>,) = cluster.run(&pipe).await?;
    Ok(previous)
}

fn receive(state: &AppState, cluster: &Cluster, message: &redis::Msg) {
    let Ok(text) = message.get_payload::<String>() else {
        return;
    };
    let envelope: Envelope = match serde_json::from_str(&text) {
        Ok(envelope) => envelope,
        Err(e) => {
            tracing::warn!(error = %e, "an unreadable message on the bus");
            return;
        }
    };
    if envelope.node == cluster.node {
        return;
    }
    let hub = &state.hub;
    match envelope.event {
        Event::Change { change } => changes::deliver(state, &change, false),
        Event::Broadcast {
            topic,
            text,
            binary,
        } => hub.remote_broadcast(&topic, text.as_ref(), binary.as_ref()),
        Event::PresenceDiff {
            topic,
            joins,
            leaves,
        } => hub.remote_presence_diff(&topic, &joins, &leaves),
        Event::Resync { since_ms } => {
            tokio::spawn(changes::catch_up(state.clone(), since_ms));
            let (state, cluster) = (state.clone(), state.cluster.clone());
            tokio::spawn(async move {
                if let Some(cluster) = cluster {
                    cluster.resend_presence(&state.hub).await;
                }
            });
        }
    }
}

/// Every [`HEARTBEAT_EVERY`]: renews the heartbeat (putting the presences back if the node was
/// reaped meanwhile) and reaps the nodes whose heartbeat expired (one survivor per dead node, by
/// a lock).
async fn heartbeat(state: AppState, cluster: Arc<Cluster>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(HEARTBEAT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        if !cluster.subscribed.load(Ordering::Acquire) {
            continue;
        }
        match beat(&cluster).await {
            Ok(Some(_)) => cluster.healthy.store(true, Ordering::Release),
            Ok(None) => {
                tracing::warn!(node = %cluster.node, "this node's heartbeat had expired: putting its presences back");
                cluster.healthy.store(true, Ordering::Release);
                state.hub.republish_presences();
            }
            Err(e) => {
                tracing::warn!(error = %e, "heartbeat failed");
                cluster.healthy.store(false, Ordering::Release);
                continue;
            }
        }
        if let Err(e) = cluster.reap_dead(&state.hub).await {
            tracing::warn!(error = %e, "looking for dead nodes failed");
        }
    }
}

/// Every [`REFRESH_EVERY`], from a moment of its own (nodes started together do not refresh
/// together): pushes the expiry of every presence this node holds forward, in small pipelines
/// paced over half the period, on the upkeep connection.
async fn refresh_presences(state: AppState, cluster: Arc<Cluster>, stop: CancellationToken) {
    let phase = REFRESH_EVERY.mul_f64(rand::random::<f64>());
    let mut next = tokio::time::Instant::now() + phase;
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(next) => {}
            () = stop.cancelled() => return,
        }
        next += REFRESH_EVERY;
        if !cluster.subscribed.load(Ordering::Acquire) {
            continue;
        }
        let presences: Vec<(String, u64)> = state
            .hub
            .local_presences()
            .into_iter()
            .map(|(topic, conn, _)| (topic, conn))
            .collect();
        let pace = tokio::select! {
            paced = cluster.refresh_expiry(&presences, REFRESH_EVERY / 2) => paced,
            () = stop.cancelled() => return,
        };
        if let Err(e) = pace {
            tracing::warn!(error = %e, "refreshing presence expiry failed");
        }
        // A pass that overran (Redis slow) leaves at least half a period before the next one.
        next = next.max(tokio::time::Instant::now() + REFRESH_EVERY / 2);
    }
}

impl Cluster {
    /// Pushes the expiry of these presences of this node (topic, connection) forward, one
    /// [`ENTRY_TTL`] from each pipeline's moment, [`REFRESH_CHUNK`] at a time, the pipelines spread
    /// evenly over `within` (at most 100 ms apart). A presence gone from Redis meanwhile is not
    /// put back.
    pub async fn refresh_expiry(
        &self,
        presences: &[(String, u64)],
        within: Duration,
    ) -> redis::RedisResult<()> {
        let pipelines = presences.len().div_ceil(REFRESH_CHUNK).max(1);
        let gap = (within / pipelines as u32).min(Duration::from_millis(100));
        for (i, chunk) in presences.chunks(REFRESH_CHUNK).enumerate() {
            if i > 0 {
                tokio::time::sleep(gap).await;
            }
            let expiry = now_ms() + ENTRY_TTL.as_millis() as i64;
            let mut pipe = redis::pipe();
            for (topic, conn) in chunk {
                pipe.cmd("ZADD")
                    .arg(expiry_key(topic))
                    .arg("XX")
                    .arg(expiry)
                    .arg(field(&self.node, *conn))
                    .ignore();
            }
            run_on::<()>(self.upkeep.clone(), &pipe).await?;
        }
        Ok(())
    }
}

impl Cluster {
    /// Reaps every other node whose heartbeat expired, unless another survivor holds its lock.
    pub async fn reap_dead(&self, hub: &Hub) -> redis::RedisResult<usize> {
        reap_dead(self, hub).await
    }
}

async fn reap_dead(cluster: &Cluster, hub: &Hub) -> redis::RedisResult<usize> {
    let mut conn = cluster.conn.clone();
    let nodes: Vec<String> = conn.smembers(NODES_KEY).await?;
    let others: Vec<&String> = nodes.iter().filter(|n| **n != cluster.node).collect();
    if others.is_empty() {
        return Ok(0);
    }
    let mut pipe = redis::pipe();
    for node in &others {
        pipe.exists(alive_key(node));
    }
    let alive: Vec<bool> = cluster.run(&pipe).await?;
    let mut total = 0;
    for (node, alive) in others.into_iter().zip(alive) {
        if alive {
            continue;
        }
        let locked: Option<String> = redis::cmd("SET")
            .arg(reaper_key(node))
            .arg(&cluster.node)
            .arg("NX")
            .arg("PX")
            .arg(REAP_LOCK_TTL.as_millis() as u64)
            .query_async(&mut conn)
            .await?;
        if locked.is_none() {
            continue;
        }
        let reaped = cluster.reap(hub, node).await?;
        tracing::info!(dead = %node, presences = reaped, "reaped a node whose heartbeat expired");
        total += reaped;
    }
    Ok(total)
}
