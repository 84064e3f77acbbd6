//! The hub: which connection is subscribed to which topic with which bindings, presence per
//! topic, and fan-out. Each outgoing frame is encoded once per wire format and shared by every
//! recipient; each connection has a bounded queue, and a connection whose queue is full is cut
//! off rather than allowed to grow the server's memory. Topics live in a sharded map, so no lock
//! is global; per-topic locks are held only for non-blocking work, and a joiner's full presence
//! state is built outside them. Session topics hold a bounded number of subscribers, per user
//! and in all.
//!
//! In cluster mode the hub keeps its own connections' presence and hands every change, and every
//! event other nodes' subscribers must hear, to the bus (`Hub::relay`, see `bus.rs`); events
//! from other nodes come back in through the `remote_*` methods and reach local subscribers only.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use axum::body::Bytes;
use axum::extract::ws::Utf8Bytes;
use dashmap::DashMap;
use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use wrenchline_protocol::presence::Availability;
use wrenchline_protocol::realtime::topics::Topic;
use wrenchline_protocol::realtime::{Filter, Frame, PostgresChangesMessage, UserBroadcast, Vsn};
use wrenchline_protocol::{Role, SessionStatus};

use super::bus::{BinaryBroadcast, Event, Outbound};
use super::rates::{LocalRates, UserRates};
use crate::limits::Limits;
use crate::presence::{PresenceEntry, PresenceUnavailable, PresenceView};

/// Frames a connection may have queued before it is considered too slow and disconnected (the
/// queue is bounded in bytes too: `outbound_queue_max_bytes`). The queue takes memory only for
/// what it holds (a flume channel: tokio's allocates a block of 32 frames, about 2 KiB with its
/// state, for every connection, idle or not).
pub const QUEUE_CAPACITY: usize = 1024;

/// Broadcast events only the server sends; a client may not send them (it could otherwise
/// announce, say, the end of a session to the other participant).
pub const SERVER_EVENTS: &[&str] = &["session_ending"];

/// Attempts at building a joiner's presence state outside the topic's lock before it is built
/// under the lock (the state kept changing meanwhile).
const PRESENCE_STATE_ATTEMPTS: usize = 3;

/// A frame ready for the socket, shareable between recipients without copying.
#[derive(Debug, Clone)]
pub enum Outgoing {
    Text(Utf8Bytes),
    Binary(Bytes),
}

impl Outgoing {
    pub fn len(&self) -> usize {
        match self {
            Outgoing::Text(text) => text.len(),
            Outgoing::Binary(bytes) => bytes.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why the server cuts a connection off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Its queue is full, in frames or in bytes: it does not read fast enough.
    SlowConsumer,
    /// Its account was disabled.
    AccountDisabled,
}

/// The sending side of one connection.
#[derive(Clone)]
pub struct ConnHandle {
    pub id: u64,
    tx: flume::Sender<Outgoing>,
    kill: CancellationToken,
    /// Bytes queued and not yet taken by the socket loop.
    queued: Arc<AtomicUsize>,
    max_bytes: usize,
    cut: Arc<OnceLock<Cut>>,
}

impl ConnHandle {
    pub fn new(
        id: u64,
        tx: flume::Sender<Outgoing>,
        kill: CancellationToken,
        max_bytes: usize,
    ) -> Self {
        ConnHandle {
            id,
            tx,
            kill,
            queued: Arc::new(AtomicUsize::new(0)),
            max_bytes,
            cut: Arc::new(OnceLock::new()),
        }
    }

    /// Queues a frame; a full queue (in frames, or in bytes once something is queued)
    /// disconnects the connection: it cannot keep up.
    pub fn send(&self, frame: Outgoing) -> bool {
        let len = frame.len();
        let before = self.queued.fetch_add(len, Ordering::AcqRel);
        if before > 0 && before + len > self.max_bytes {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            self.cut_off(Cut::SlowConsumer);
            return false;
        }
        match self.tx.try_send(frame) {
            Ok(()) => true,
            Err(flume::TrySendError::Full(_)) => {
                self.queued.fetch_sub(len, Ordering::AcqRel);
                self.cut_off(Cut::SlowConsumer);
                false
            }
            Err(flume::TrySendError::Disconnected(_)) => {
                self.queued.fetch_sub(len, Ordering::AcqRel);
                false
            }
        }
    }

    /// The socket loop took `frame` off the queue.
    pub fn taken(&self, frame: &Outgoing) {
        self.queued.fetch_sub(frame.len(), Ordering::AcqRel);
    }

    /// Closes the connection; the first reason given is the one the client is told.
    pub fn cut_off(&self, why: Cut) {
        let _ = self.cut.set(why);
        self.kill.cancel();
    }

    /// Why the connection was cut off, if it was.
    pub fn cut_reason(&self) -> Option<Cut> {
        self.cut.get().copied()
    }

    pub fn send_frame(&self, vsn: Vsn, frame: &Frame) -> bool {
        self.send(Outgoing::Text(frame.encode(vsn).into()))
    }
}

/// A `postgres_changes` binding that passed validation.
#[derive(Debug, Clone)]
pub struct ActiveBinding {
    pub id: u32,
    pub table: String,
    pub event: String,
    pub filter: Filter,
}

impl ActiveBinding {
    fn wants(&self, table: &str, change_type: &str, record: &Value, old: Option<&Value>) -> bool {
        self.table == table
            && (self.event == "*" || self.event.eq_ignore_ascii_case(change_type))
            && (self.filter.matches(record) || old.is_some_and(|o| self.filter.matches(o)))
    }
}

/// How a subscriber reads frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    V1,
    V2,
    /// 2.0.0 from realtime-js, which also reads binary user broadcasts (kind 4).
    V2Binary,
}

impl Wire {
    pub fn vsn(self) -> Vsn {
        match self {
            Wire::V1 => Vsn::V1,
            Wire::V2 | Wire::V2Binary => Vsn::V2,
        }
    }
}

#[derive(Clone)]
pub struct Subscriber {
    pub conn: ConnHandle,
    pub join_ref: Arc<str>,
    pub user_id: Uuid,
    pub role: Role,
    pub wire: Wire,
    pub broadcast_self: bool,
    pub bindings: Arc<[ActiveBinding]>,
    /// Presence diffs held back until the subscriber has its presence state (`Some` until
    /// then): they are dropped when the state is known to include them, and sent after it
    /// otherwise (a diff repeated after a state that has it changes nothing: joins and leaves
    /// go by `phx_ref`).
    pub pending: Arc<Mutex<Option<Vec<Outgoing>>>>,
}

impl Subscriber {
    /// Held-back diffs for a subscriber that will get a presence state, none for one that won't.
    pub fn pending_for(presence: bool) -> Arc<Mutex<Option<Vec<Outgoing>>>> {
        Arc::new(Mutex::new(presence.then(Vec::new)))
    }

    fn send_diff(&self, out: Outgoing) {
        let mut pending = self.pending.lock().expect("lock");
        match pending.as_mut() {
            Some(held) => held.push(out),
            None => {
                self.conn.send(out);
            }
        }
    }
}

/// One tracked presence: a connection's payload under its key.
#[derive(Debug, Clone)]
struct Meta {
    conn: u64,
    user_id: Uuid,
    role: Role,
    /// The payload as sent plus `phx_ref`.
    meta: Value,
}

/// The presence of one topic; `version` changes with every change of `entries`.
#[derive(Default)]
struct Presence {
    version: u64,
    entries: HashMap<String, Vec<Meta>>,
}

pub struct TopicState {
    pub topic: Topic,
    pub full: Arc<str>,
    subscribers: RwLock<HashMap<u64, Subscriber>>,
    presence: Mutex<Presence>,
    /// The session's status as last seen (a session topic's): from the change feed, or from the
    /// read of a live-start check when the feed has said nothing yet.
    known_status: Mutex<Option<SessionStatus>>,
    /// Which message `seq`s this topic delivered, from where a catch-up after a bus outage
    /// resumes.
    delivered: Mutex<Delivered>,
}

/// Message `seq`s delivered on a topic: every one up to `upto` (0: none known yet), and those
/// seen beyond it (from other nodes, they may arrive out of order; while the bus was away, a
/// gap stays until the catch-up fills it).
#[derive(Default)]
struct Delivered {
    upto: i64,
    beyond: BTreeSet<i64>,
}

/// Seqs kept beyond a gap before the gap is given up on.
const DELIVERED_BEYOND: usize = 256;

impl Delivered {
    fn note(&mut self, seq: i64) {
        if self.upto == 0 {
            self.upto = seq;
        } else if seq > self.upto {
            self.beyond.insert(seq);
        }
        while self.beyond.remove(&(self.upto + 1)) {
            self.upto += 1;
        }
        if self.beyond.len() > DELIVERED_BEYOND {
            self.upto = self.beyond.pop_last().unwrap_or(self.upto);
            self.beyond.clear();
        }
    }
}

impl TopicState {
    /// The last message `seq` up to which this topic delivered every message (0: unknown).
    pub fn last_seq(&self) -> i64 {
        self.delivered.lock().expect("lock").upto
    }

    fn is_empty(&self) -> bool {
        self.subscribers.read().expect("lock").is_empty()
            && self.presence.lock().expect("lock").entries.is_empty()
    }

    pub fn subscriber_count(&self) -> usize {
        self.subscribers.read().expect("lock").len()
    }

    pub fn known_status(&self) -> Option<SessionStatus> {
        *self.known_status.lock().expect("lock")
    }

    /// Records a status read from the database, unless the change feed has already said one
    /// (which is never older than a read).
    pub fn note_read_status(&self, status: SessionStatus) {
        self.known_status
            .lock()
            .expect("lock")
            .get_or_insert(status);
    }
}

/// Why a join was refused by the topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicFull {
    /// The user holds as many subscriptions on this topic as one user may.
    PerUser(u32),
    /// The topic holds as many subscriptions as it may.
    Total(u32),
}

impl std::fmt::Display for TopicFull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TopicFull::PerUser(n) => write!(
                f,
                "TooManyChannels: you already have {n} subscriptions to this topic; leave one first"
            ),
            TopicFull::Total(n) => write!(
                f,
                "TooManyChannels: this topic already has its {n} subscriptions"
            ),
        }
    }
}

/// Encodes a frame lazily once per wire format.
struct Encoded<'a> {
    /// The text form; `None` when there is none (a raw binary payload).
    frame: Option<&'a Frame>,
    binary: Option<&'a UserBroadcast>,
    cache: [Option<Option<Outgoing>>; 3],
}

impl<'a> Encoded<'a> {
    fn new(frame: Option<&'a Frame>, binary: Option<&'a UserBroadcast>) -> Self {
        Encoded {
            frame,
            binary,
            cache: [None, None, None],
        }
    }

    fn for_wire(&mut self, wire: Wire) -> Option<Outgoing> {
        let slot = wire as usize;
        if self.cache[slot].is_none() {
            self.cache[slot] = Some(match (wire, self.binary) {
                (Wire::V2Binary, Some(b)) => b
                    .encode_broadcast()
                    .ok()
                    .map(|v| Outgoing::Binary(v.into())),
                _ => self
                    .frame
                    .map(|f| Outgoing::Text(f.encode(wire.vsn()).into())),
            });
        }
        self.cache[slot].clone().flatten()
    }
}

pub struct Hub {
    topics: DashMap<Arc<str>, Arc<TopicState>>,
    next_conn: AtomicU64,
    next_ref: AtomicU64,
    shutdown: CancellationToken,
    per_user_cap: u32,
    per_topic_cap: u32,
    queue_max_bytes: usize,
    /// Per-user realtime budgets.
    pub rates: Arc<dyn UserRates>,
    /// Sessions whose live start is being checked → whether another check was asked for
    /// meanwhile.
    start_checks: Mutex<HashMap<Uuid, bool>>,
    /// Live-start checks that read the database (for tests and metrics).
    start_reads: AtomicU64,
    /// This node's name in a cluster, which makes presence refs unique across nodes.
    node: OnceLock<String>,
    /// Where events for other nodes go; unset on a single node.
    relay: OnceLock<mpsc::UnboundedSender<Outbound>>,
}

fn presence_entry(metas: &[&Value]) -> Value {
    json!({ "metas": metas })
}

impl Hub {
    pub fn new(limits: &Limits) -> Self {
        Self::with_rates(limits, Arc::new(LocalRates::new(limits)))
    }

    /// A hub whose per-user budgets are counted by `rates` (shared by a cluster's nodes).
    pub fn with_rates(limits: &Limits, rates: Arc<dyn UserRates>) -> Self {
        Hub {
            topics: DashMap::new(),
            next_conn: AtomicU64::new(0),
            next_ref: AtomicU64::new(0),
            shutdown: CancellationToken::new(),
            per_user_cap: limits.session_topic_subscribers_per_user,
            per_topic_cap: limits.session_topic_subscribers,
            queue_max_bytes: limits.outbound_queue_max_bytes,
            rates,
            start_checks: Mutex::new(HashMap::new()),
            start_reads: AtomicU64::new(0),
            node: OnceLock::new(),
            relay: OnceLock::new(),
        }
    }

    /// Joins a cluster as `node`: from now on presence changes and events for other nodes go to
    /// the returned queue, in order.
    pub fn connect_relay(&self, node: &str) -> mpsc::UnboundedReceiver<Outbound> {
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = self.node.set(node.to_string());
        let _ = self.relay.set(tx);
        rx
    }

    /// Whether events are relayed to other nodes.
    pub fn is_clustered(&self) -> bool {
        self.relay.get().is_some()
    }

    /// Hands an event to the bus (nothing on a single node).
    pub fn relay(&self, outbound: Outbound) {
        if let Some(relay) = self.relay.get() {
            let _ = relay.send(outbound);
        }
    }

    /// Resolves once everything relayed so far has been written to the bus (or given up on
    /// while the bus is away); at once on a single node.
    pub async fn flushed(&self) {
        let Some(relay) = self.relay.get() else {
            return;
        };
        let (tx, rx) = oneshot::channel();
        if relay.send(Outbound::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// The most bytes a connection may have queued.
    pub fn queue_max_bytes(&self) -> usize {
        self.queue_max_bytes
    }

    pub fn next_conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Cancelled when the server stops: every connection closes.
    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.shutdown
    }

    fn phx_ref(&self) -> String {
        let n = self.next_ref.fetch_add(1, Ordering::Relaxed) + 1;
        match self.node.get() {
            Some(node) => format!("W{n}.{node}"),
            None => format!("W{n}"),
        }
    }

    pub fn topic(&self, full: &str) -> Option<Arc<TopicState>> {
        self.topics.get(full).map(|t| t.clone())
    }

    /// Whether `user` could subscribe to `topic` now (a cheap check before the join's
    /// authorization reads the database; `subscribe` decides).
    pub fn room_for(&self, topic: Topic, user: Uuid, conn: u64) -> Result<(), TopicFull> {
        match self.topic(&topic.full()) {
            Some(state) => {
                self.check_room(&state.subscribers.read().expect("lock"), topic, user, conn)
            }
            None => Ok(()),
        }
    }

    fn check_room(
        &self,
        subscribers: &HashMap<u64, Subscriber>,
        topic: Topic,
        user: Uuid,
        conn: u64,
    ) -> Result<(), TopicFull> {
        if topic.session().is_none() {
            return Ok(());
        }
        let others = subscribers.values().filter(|s| s.conn.id != conn);
        let (mut total, mut own) = (0u32, 0u32);
        for s in others {
            total += 1;
            own += u32::from(s.user_id == user);
        }
        if own >= self.per_user_cap {
            return Err(TopicFull::PerUser(self.per_user_cap));
        }
        if total >= self.per_topic_cap {
            return Err(TopicFull::Total(self.per_topic_cap));
        }
        Ok(())
    }

    /// Adds a subscriber, after queueing `first` (the join reply) to it so that nothing fanned
    /// out on the topic can overtake the reply; refused when a session topic is full.
    pub fn subscribe(
        &self,
        topic: Topic,
        subscriber: Subscriber,
        first: &Frame,
    ) -> Result<Arc<TopicState>, TopicFull> {
        let full: Arc<str> = topic.full().into();
        let entry = self.topics.entry(full.clone()).or_insert_with(|| {
            Arc::new(TopicState {
                topic,
                full: full.clone(),
                subscribers: RwLock::new(HashMap::new()),
                presence: Mutex::new(Presence::default()),
                known_status: Mutex::new(None),
                delivered: Mutex::new(Delivered::default()),
            })
        });
        let state = entry.value().clone();
        let mut subscribers = state.subscribers.write().expect("lock");
        if let Err(full_topic) =
            self.check_room(&subscribers, topic, subscriber.user_id, subscriber.conn.id)
        {
            drop(subscribers);
            drop(entry);
            self.topics.remove_if(&full, |_, t| t.is_empty());
            return Err(full_topic);
        }
        subscriber.conn.send_frame(subscriber.wire.vsn(), first);
        subscribers.insert(subscriber.conn.id, subscriber);
        drop(subscribers);
        drop(entry);
        Ok(state)
    }

    /// Removes a connection from a topic, with its presence (announced as a leave).
    pub fn unsubscribe(&self, state: &Arc<TopicState>, conn: u64) {
        state.subscribers.write().expect("lock").remove(&conn);
        self.untrack(state, conn);
        self.topics.remove_if(&state.full, |_, t| t.is_empty());
    }

    /// Closes `user`'s channels on `topic` from the server side, because they no longer take
    /// part in it (a mechanic whose session went back to the feed): a `system` error saying why,
    /// then `phx_close`; their presence leaves with them, and nothing more reaches them there.
    pub fn evict(&self, topic: Topic, user: Uuid, reason: &str) {
        let Some(state) = self.topic(&topic.full()) else {
            return;
        };
        let gone: Vec<Subscriber> = {
            let mut subscribers = state.subscribers.write().expect("lock");
            let ids: Vec<u64> = subscribers
                .iter()
                .filter(|(_, s)| s.user_id == user)
                .map(|(id, _)| *id)
                .collect();
            ids.iter().filter_map(|id| subscribers.remove(id)).collect()
        };
        for sub in gone {
            self.untrack(&state, sub.conn.id);
            let system = Frame::new(
                &*state.full,
                "system",
                json!({ "extension": "system", "status": "error", "message": reason, "channel": topic.name() }),
            )
            .with_refs(Some(&sub.join_ref), None);
            sub.conn.send_frame(sub.wire.vsn(), &system);
            let close = Frame::new(&*state.full, "phx_close", json!({}))
                .with_refs(Some(&sub.join_ref), Some(&sub.join_ref));
            sub.conn.send_frame(sub.wire.vsn(), &close);
        }
        self.topics.remove_if(&state.full, |_, t| t.is_empty());
    }

    fn is_subscribed(state: &TopicState, conn: u64) -> bool {
        state.subscribers.read().expect("lock").contains_key(&conn)
    }

    /// Sends the full presence state to one subscriber (after every join on a presence topic),
    /// then lets its held-back diffs through. `shared` is the cluster's presence when it could be
    /// read; otherwise the state is this node's, built and encoded outside the topic's lock and
    /// queued only if nothing changed while it was built (then every held diff is in it).
    pub fn send_presence_state(
        &self,
        state: &TopicState,
        conn: &ConnHandle,
        wire: Wire,
        join_ref: &str,
        pending: &Mutex<Option<Vec<Outgoing>>>,
        shared: Option<Vec<PresenceEntry>>,
    ) {
        let encode = |entries: &[(String, Vec<Value>)]| {
            let mut body = Map::new();
            for (key, metas) in entries {
                let metas: Vec<&Value> = metas.iter().collect();
                body.insert(key.clone(), presence_entry(&metas));
            }
            let frame = Frame::new(&*state.full, "presence_state", Value::Object(body))
                .with_refs(Some(join_ref), None);
            Outgoing::Text(frame.encode(wire.vsn()).into())
        };
        let release = |out: Outgoing, replay: bool| {
            let mut pending = pending.lock().expect("lock");
            conn.send(out);
            if let Some(held) = pending.take() {
                if replay {
                    for diff in held {
                        conn.send(diff);
                    }
                }
            }
        };
        if let Some(shared) = shared {
            let mut grouped: HashMap<String, Vec<Value>> = HashMap::new();
            for entry in shared {
                grouped.entry(entry.key).or_default().push(entry.meta);
            }
            let entries: Vec<(String, Vec<Value>)> = grouped.into_iter().collect();
            release(encode(&entries), true);
            return;
        }
        let snapshot = |presence: &Presence| -> Vec<(String, Vec<Value>)> {
            presence
                .entries
                .iter()
                .map(|(key, metas)| (key.clone(), metas.iter().map(|m| m.meta.clone()).collect()))
                .collect()
        };
        for _ in 0..PRESENCE_STATE_ATTEMPTS {
            let (version, entries) = {
                let presence = state.presence.lock().expect("lock");
                (presence.version, snapshot(&presence))
            };
            let out = encode(&entries);
            let presence = state.presence.lock().expect("lock");
            if presence.version == version {
                release(out, false);
                return;
            }
        }
        // The state keeps changing: build it under the lock this once.
        let presence = state.presence.lock().expect("lock");
        release(encode(&snapshot(&presence)), false);
    }

    /// Tracks (or re-tracks) a connection's presence under `key`, as the authenticated
    /// `user_id` and `role` (the payload was checked against them). True when the user was not
    /// present on the topic before: only then can a live start follow.
    pub fn track(
        &self,
        state: &TopicState,
        conn: u64,
        key: &str,
        user_id: Uuid,
        role: Role,
        payload: Map<String, Value>,
    ) -> bool {
        // A channel the server closed (see `evict`) tracks nothing.
        if !Self::is_subscribed(state, conn) {
            return false;
        }
        let mut guard = state.presence.lock().expect("lock");
        let presence = &mut *guard;
        let was_present = presence
            .entries
            .values()
            .flatten()
            .any(|m| m.user_id == user_id);
        presence.version += 1;
        let leaves = Self::remove_conn(&mut presence.entries, conn);
        let mut meta = payload;
        meta.insert("phx_ref".into(), Value::String(self.phx_ref()));
        let meta = Meta {
            conn,
            user_id,
            role,
            meta: Value::Object(meta),
        };
        let joins = json!({ key: presence_entry(&[&meta.meta]) });
        let entry = self.is_clustered().then(|| {
            serde_json::to_value(PresenceEntry {
                key: key.to_string(),
                user_id,
                role,
                meta: meta.meta.clone(),
            })
            .expect("an entry serializes")
        });
        presence
            .entries
            .entry(key.to_string())
            .or_default()
            .push(meta);
        self.fan_out_diff(state, &joins, &leaves);
        if let Some(entry) = entry {
            self.relay(Outbound::Track {
                topic: state.full.to_string(),
                conn,
                entry,
                diff: Event::PresenceDiff {
                    topic: state.full.to_string(),
                    joins,
                    leaves,
                },
            });
        }
        !was_present
    }

    /// Removes a connection's presence, announcing the leave; a no-op if it tracked nothing.
    pub fn untrack(&self, state: &TopicState, conn: u64) {
        let mut presence = state.presence.lock().expect("lock");
        let leaves = Self::remove_conn(&mut presence.entries, conn);
        if leaves.as_object().is_some_and(|l| !l.is_empty()) {
            presence.version += 1;
            let joins = json!({});
            self.fan_out_diff(state, &joins, &leaves);
            if !self.is_clustered() {
                return;
            }
            self.relay(Outbound::Untrack {
                topic: state.full.to_string(),
                conn,
                diff: Event::PresenceDiff {
                    topic: state.full.to_string(),
                    joins,
                    leaves,
                },
            });
        }
    }

    fn remove_conn(presence: &mut HashMap<String, Vec<Meta>>, conn: u64) -> Value {
        let mut leaves = Map::new();
        presence.retain(|key, metas| {
            let (gone, kept): (Vec<Meta>, Vec<Meta>) =
                metas.drain(..).partition(|m| m.conn == conn);
            if !gone.is_empty() {
                let refs: Vec<&Value> = gone.iter().map(|m| &m.meta).collect();
                leaves.insert(key.clone(), presence_entry(&refs));
            }
            *metas = kept;
            !metas.is_empty()
        });
        Value::Object(leaves)
    }

    /// Called with the presence lock held, so diffs go out in the order the state changed;
    /// subscribers still waiting for their full state skip it.
    fn fan_out_diff(&self, state: &TopicState, joins: &Value, leaves: &Value) {
        let frame = Frame::new(
            &*state.full,
            "presence_diff",
            json!({ "joins": joins, "leaves": leaves }),
        );
        let mut encoded = Encoded::new(Some(&frame), None);
        let subscribers = state.subscribers.read().expect("lock");
        for sub in subscribers.values() {
            if let Some(out) = encoded.for_wire(sub.wire) {
                sub.send_diff(out);
            }
        }
    }

    /// A presence change on another node, for this node's subscribers of the topic.
    pub fn remote_presence_diff(&self, topic: &str, joins: &Value, leaves: &Value) {
        if let Some(state) = self.topic(topic) {
            self.fan_out_diff(&state, joins, leaves);
        }
    }

    /// A user broadcast from another node, for this node's subscribers of the topic.
    pub fn remote_broadcast(
        &self,
        topic: &str,
        text: Option<&Value>,
        binary: Option<&BinaryBroadcast>,
    ) {
        let Some(state) = self.topic(topic) else {
            return;
        };
        let frame = text.map(|p| Frame::new(topic, "broadcast", p.clone()));
        let binary = binary.and_then(|b| b.to_user(topic));
        self.fan_out(&state, frame.as_ref(), binary.as_ref(), None);
    }

    /// A broadcast that did not come from a socket (`POST /realtime/v1/api/broadcast`): to every
    /// subscriber of the topic, on every node.
    pub fn api_broadcast(&self, topic: Topic, payload: Value) {
        let full = topic.full();
        if let Some(state) = self.topic(&full) {
            let frame = Frame::new(&*state.full, "broadcast", payload.clone());
            self.fan_out(&state, Some(&frame), None, None);
        }
        self.relay(Outbound::Publish(Event::Broadcast {
            topic: full,
            text: Some(payload),
            binary: None,
        }));
    }

    /// This node's presences, topic by topic with the connection that tracked each, for
    /// rebuilding the shared presence after the bus was away.
    pub fn local_presences(&self) -> Vec<(String, u64, PresenceEntry)> {
        let mut all = Vec::new();
        for topic in self.topics.iter() {
            let presence = topic.presence.lock().expect("lock");
            for (key, metas) in &presence.entries {
                for m in metas {
                    all.push((
                        topic.full.to_string(),
                        m.conn,
                        PresenceEntry {
                            key: key.clone(),
                            user_id: m.user_id,
                            role: m.role,
                            meta: m.meta.clone(),
                        },
                    ));
                }
            }
        }
        all
    }

    /// Hands every presence of this node to the bus again, each announced as a join (after the
    /// bus was away, or this node was taken for dead). Each topic's presences are queued under
    /// its lock, so a leave that follows cannot be overtaken.
    pub fn republish_presences(&self) {
        if !self.is_clustered() {
            return;
        }
        for topic in self.topics.iter() {
            let presence = topic.presence.lock().expect("lock");
            for (key, metas) in &presence.entries {
                for m in metas {
                    let entry = PresenceEntry {
                        key: key.clone(),
                        user_id: m.user_id,
                        role: m.role,
                        meta: m.meta.clone(),
                    };
                    self.relay(Outbound::Track {
                        topic: topic.full.to_string(),
                        conn: m.conn,
                        entry: serde_json::to_value(entry).expect("an entry serializes"),
                        diff: Event::PresenceDiff {
                            topic: topic.full.to_string(),
                            joins: json!({ key: presence_entry(&[&m.meta]) }),
                            leaves: json!({}),
                        },
                    });
                }
            }
        }
    }

    /// Topics with presence that have subscribers on this node.
    pub fn presence_topics(&self) -> Vec<String> {
        self.topics
            .iter()
            .filter(|t| {
                matches!(t.topic, Topic::SessionPresence(_) | Topic::Requests)
                    && t.subscriber_count() > 0
            })
            .map(|t| t.full.to_string())
            .collect()
    }

    /// Sends every subscriber of `topic` here a full `presence_state` of `entries` (the shared
    /// presence), from which clients sync their whole state.
    pub fn resend_presence_state(&self, topic: &str, entries: Vec<PresenceEntry>) {
        let Some(state) = self.topic(topic) else {
            return;
        };
        let mut grouped: HashMap<String, Vec<Value>> = HashMap::new();
        for entry in entries {
            grouped.entry(entry.key).or_default().push(entry.meta);
        }
        let mut body = Map::new();
        for (key, metas) in &grouped {
            let metas: Vec<&Value> = metas.iter().collect();
            body.insert(key.clone(), presence_entry(&metas));
        }
        let body = Value::Object(body);
        let subscribers: Vec<Subscriber> = state
            .subscribers
            .read()
            .expect("lock")
            .values()
            .cloned()
            .collect();
        for sub in subscribers {
            let frame = Frame::new(&*state.full, "presence_state", body.clone())
                .with_refs(Some(&sub.join_ref), None);
            sub.send_diff(Outgoing::Text(frame.encode(sub.wire.vsn()).into()));
        }
    }

    /// Session topics with subscribers on this node, with the last message `seq` each has had.
    pub fn session_topics(&self) -> Vec<(Topic, i64)> {
        self.topics
            .iter()
            .filter(|t| t.topic.session().is_some() && t.subscriber_count() > 0)
            .map(|t| (t.topic, t.last_seq()))
            .collect()
    }

    /// Sends a frame to every subscriber of a topic except `except`.
    pub fn fan_out(
        &self,
        state: &TopicState,
        frame: Option<&Frame>,
        binary: Option<&UserBroadcast>,
        except: Option<u64>,
    ) {
        let subscribers = state.subscribers.read().expect("lock");
        Self::send_to(&subscribers, Encoded::new(frame, binary), except);
    }

    /// Queues a frame for every subscriber but `except`, encoded once per wire format.
    fn send_to(
        subscribers: &HashMap<u64, Subscriber>,
        mut encoded: Encoded<'_>,
        except: Option<u64>,
    ) {
        for sub in subscribers.values() {
            if Some(sub.conn.id) == except {
                continue;
            }
            if let Some(out) = encoded.for_wire(sub.wire) {
                sub.conn.send(out);
            }
        }
    }

    /// A user broadcast from `sender` (already authorised): JSON for text-only readers, kind 4 for
    /// realtime-js on 2.0.0 when it arrived as binary.
    pub fn broadcast(
        &self,
        state: &TopicState,
        sender: u64,
        sender_self: bool,
        payload: Option<Value>,
        binary: Option<&UserBroadcast>,
    ) {
        let subscribers = state.subscribers.read().expect("lock");
        if !subscribers.contains_key(&sender) {
            return;
        }
        // On a single node the payload goes into the frame; only the bus needs it kept.
        let clustered = self.is_clustered();
        let (frame, payload) = match payload {
            Some(p) if clustered => (
                Some(Frame::new(&*state.full, "broadcast", p.clone())),
                Some(p),
            ),
            Some(p) => (Some(Frame::new(&*state.full, "broadcast", p)), None),
            None => (None, None),
        };
        Self::send_to(
            &subscribers,
            Encoded::new(frame.as_ref(), binary),
            (!sender_self).then_some(sender),
        );
        drop(subscribers);
        if clustered {
            self.relay(Outbound::Publish(Event::Broadcast {
                topic: state.full.to_string(),
                text: payload,
                binary: binary.map(BinaryBroadcast::from_user),
            }));
        }
    }

    /// A broadcast from the server itself, to this node's subscribers of a topic (every node's
    /// session clock warns its own subscribers, so it is not relayed). `event` is one of
    /// [`SERVER_EVENTS`], which clients may not send.
    pub fn server_broadcast(&self, topic: Topic, event: &str, payload: Value) {
        debug_assert!(
            SERVER_EVENTS.contains(&event),
            "{event} is not in SERVER_EVENTS"
        );
        if let Some(state) = self.topic(&topic.full()) {
            let frame = Frame::new(
                &*state.full,
                "broadcast",
                json!({ "type": "broadcast", "event": event, "payload": payload }),
            );
            self.fan_out(&state, Some(&frame), None, None);
        }
    }

    /// Delivers a row change to the bindings on `topic` that want it, each subscriber receiving
    /// the ids of its own matching bindings.
    pub fn deliver_change(
        &self,
        topic: Topic,
        data: &Value,
        table: &str,
        change_type: &str,
        record: &Value,
        old: Option<&Value>,
    ) {
        let Some(state) = self.topic(&topic.full()) else {
            return;
        };
        if let Some(seq) = record.get("seq").and_then(Value::as_i64) {
            state.delivered.lock().expect("lock").note(seq);
        }
        let mut cache: Vec<((Vsn, Vec<u32>), Outgoing)> = Vec::new();
        let subscribers = state.subscribers.read().expect("lock");
        for sub in subscribers.values() {
            let ids: Vec<u32> = sub
                .bindings
                .iter()
                .filter(|b| b.wants(table, change_type, record, old))
                .map(|b| b.id)
                .collect();
            if ids.is_empty() {
                continue;
            }
            let vsn = sub.wire.vsn();
            let out = match cache.iter().find(|((v, i), _)| *v == vsn && *i == ids) {
                Some((_, out)) => out.clone(),
                None => {
                    let frame = Frame::new(
                        &*state.full,
                        "postgres_changes",
                        serde_json::to_value(PostgresChangesMessage {
                            ids: ids.clone(),
                            data,
                        })
                        .expect("a change serializes"),
                    );
                    let out = Outgoing::Text(frame.encode(vsn).into());
                    cache.push(((vsn, ids), out.clone()));
                    out
                }
            };
            sub.conn.send(out);
        }
    }

    /// User ids tracked on a topic.
    pub fn present_users(&self, topic: Topic) -> Vec<Uuid> {
        let Some(state) = self.topic(&topic.full()) else {
            return Vec::new();
        };
        let presence = state.presence.lock().expect("lock");
        let mut users: Vec<Uuid> = presence
            .entries
            .values()
            .flatten()
            .map(|m| m.user_id)
            .collect();
        users.sort();
        users.dedup();
        users
    }

    /// Every mechanic tracked on `requests` on this node, with whether at least one of their
    /// connections is available (one device away and another online is available). What
    /// `crate::availability` writes to the shared table.
    pub fn mechanics_on_feed(&self) -> std::collections::BTreeMap<Uuid, bool> {
        let mut mechanics = std::collections::BTreeMap::new();
        let Some(state) = self.topic(&Topic::Requests.full()) else {
            return mechanics;
        };
        let presence = state.presence.lock().expect("lock");
        for meta in presence
            .entries
            .values()
            .flatten()
            .filter(|m| m.role == Role::Mechanic)
        {
            let online = meta
                .meta
                .as_object()
                .is_some_and(|p| Availability::of_payload(p) == Ok(Availability::Online));
            *mechanics.entry(meta.user_id).or_insert(false) |= online;
        }
        mechanics
    }

    pub fn topic_count(&self) -> usize {
        self.topics.len()
    }

    /// Records a session's status from the change feed, on its presence topic if it has one.
    pub fn note_status(&self, session: Uuid, status: SessionStatus) {
        if let Some(state) = self.topic(&Topic::SessionPresence(session).full()) {
            *state.known_status.lock().expect("lock") = Some(status);
        }
    }

    /// Starts a live-start check of `session` unless one is running, in which case that one is
    /// asked to check again when it is done; true when the caller should run the check.
    pub fn begin_start_check(&self, session: Uuid) -> bool {
        let mut checks = self.start_checks.lock().expect("lock");
        match checks.get_mut(&session) {
            Some(again) => {
                *again = true;
                false
            }
            None => {
                checks.insert(session, false);
                true
            }
        }
    }

    /// Ends a live-start check; true when another was asked for meanwhile (run it).
    pub fn end_start_check(&self, session: Uuid) -> bool {
        let mut checks = self.start_checks.lock().expect("lock");
        match checks.get_mut(&session) {
            Some(again) if *again => {
                *again = false;
                true
            }
            _ => {
                checks.remove(&session);
                false
            }
        }
    }

    pub fn count_start_read(&self) {
        self.start_reads.fetch_add(1, Ordering::Relaxed);
    }

    /// Live-start checks that read the database since the server started.
    pub fn start_reads(&self) -> u64 {
        self.start_reads.load(Ordering::Relaxed)
    }

    /// Distinct users subscribed to any topic with `role`.
    pub fn subscribed_users(&self, role: Role) -> HashSet<Uuid> {
        let mut users = HashSet::new();
        for topic in self.topics.iter() {
            let subscribers = topic.subscribers.read().expect("lock");
            users.extend(
                subscribers
                    .values()
                    .filter(|s| s.role == role)
                    .map(|s| s.user_id),
            );
        }
        users
    }

    /// Cuts off every connection subscribed as one of `users`; how many were cut.
    pub fn cut_off_users(&self, users: &HashSet<Uuid>, why: Cut) -> usize {
        let mut conns: HashMap<u64, ConnHandle> = HashMap::new();
        for topic in self.topics.iter() {
            let subscribers = topic.subscribers.read().expect("lock");
            for s in subscribers.values().filter(|s| users.contains(&s.user_id)) {
                conns.entry(s.conn.id).or_insert_with(|| s.conn.clone());
            }
        }
        for conn in conns.values() {
            conn.cut_off(why);
        }
        conns.len()
    }
}

impl PresenceView for Hub {
    fn entries(
        &self,
        topic: Topic,
    ) -> futures_util::future::BoxFuture<'_, Result<Vec<PresenceEntry>, PresenceUnavailable>> {
        let entries = match self.topic(&topic.full()) {
            Some(state) => {
                let presence = state.presence.lock().expect("lock");
                presence
                    .entries
                    .iter()
                    .flat_map(|(key, metas)| {
                        metas.iter().map(|m| PresenceEntry {
                            key: key.clone(),
                            user_id: m.user_id,
                            role: m.role,
                            meta: m.meta.clone(),
                        })
                    })
                    .collect()
            }
            None => Vec::new(),
        };
        Box::pin(std::future::ready(Ok(entries)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivered_seqs_advance_only_without_gaps() {
        let mut d = Delivered::default();
        d.note(4);
        assert_eq!(d.upto, 4, "the first seq seen starts the count");
        d.note(6);
        assert_eq!(d.upto, 4, "5 is missing");
        d.note(5);
        assert_eq!(d.upto, 6, "5 fills the gap, 6 was seen");
        d.note(3);
        assert_eq!(d.upto, 6, "an old one changes nothing");
        for seq in 8..8 + DELIVERED_BEYOND as i64 + 1 {
            d.note(seq);
        }
        assert_eq!(
            d.upto,
            8 + DELIVERED_BEYOND as i64,
            "a gap too old is given up"
        );
    }

    #[test]
    fn one_start_check_per_session_runs_at_a_time() {
        let hub = Hub::new(&Limits::default());
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        assert!(hub.begin_start_check(a), "the first check runs");
        assert!(!hub.begin_start_check(a), "a second waits for the first");
        assert!(!hub.begin_start_check(a), "and a third is the same second");
        assert!(hub.begin_start_check(b), "another session's check runs");
        assert!(hub.end_start_check(a), "the first runs once more");
        assert!(!hub.end_start_check(a), "then it is done");
        assert!(hub.begin_start_check(a), "and the next check runs at once");
    }
}
