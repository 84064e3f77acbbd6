//! The hub: which connection is subscribed to which topic with which bindings, presence per
//! topic, and fan-out. Each outgoing frame is encoded once per wire format and shared by every
//! recipient; each connection has a bounded queue, and a connection whose queue is full is cut
//! off rather than allowed to grow the server's memory. Topics live in a sharded map, so no lock
//! is global; per-topic locks are held only for non-blocking work.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use axum::body::Bytes;
use axum::extract::ws::Utf8Bytes;
use dashmap::DashMap;
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use wrenchline_protocol::presence::{Availability, Participants};
use wrenchline_protocol::realtime::topics::Topic;
use wrenchline_protocol::realtime::{Filter, Frame, PostgresChangesMessage, UserBroadcast, Vsn};
use wrenchline_protocol::{Role, Session};

use crate::lifecycle::PresenceView;

/// Frames a connection may have queued before it is considered too slow and disconnected.
pub const QUEUE_CAPACITY: usize = 1024;

/// A frame ready for the socket, shareable between recipients without copying.
#[derive(Debug, Clone)]
pub enum Outgoing {
    Text(Utf8Bytes),
    Binary(Bytes),
}

/// The sending side of one connection.
#[derive(Clone)]
pub struct ConnHandle {
    pub id: u64,
    tx: mpsc::Sender<Outgoing>,
    kill: CancellationToken,
}

impl ConnHandle {
    pub fn new(id: u64, tx: mpsc::Sender<Outgoing>, kill: CancellationToken) -> Self {
        ConnHandle { id, tx, kill }
    }

    /// Queues a frame; a full queue disconnects the connection (it cannot keep up).
    pub fn send(&self, frame: Outgoing) -> bool {
        match self.tx.try_send(frame) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.kill.cancel();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
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

pub struct TopicState {
    pub topic: Topic,
    pub full: Arc<str>,
    subscribers: RwLock<HashMap<u64, Subscriber>>,
    presence: Mutex<HashMap<String, Vec<Meta>>>,
}

impl TopicState {
    fn is_empty(&self) -> bool {
        self.subscribers.read().expect("lock").is_empty()
            && self.presence.lock().expect("lock").is_empty()
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

#[derive(Default)]
pub struct Hub {
    topics: DashMap<Arc<str>, Arc<TopicState>>,
    next_conn: AtomicU64,
    next_ref: AtomicU64,
    shutdown: CancellationToken,
}

fn presence_entry(metas: &[&Value]) -> Value {
    json!({ "metas": metas })
}

impl Hub {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn next_conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Cancelled when the server stops: every connection closes.
    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.shutdown
    }

    fn phx_ref(&self) -> String {
        format!("W{}", self.next_ref.fetch_add(1, Ordering::Relaxed) + 1)
    }

    pub fn topic(&self, full: &str) -> Option<Arc<TopicState>> {
        self.topics.get(full).map(|t| t.clone())
    }

    /// Adds a subscriber, after queueing `first` (the join reply) to it so that nothing fanned
    /// out on the topic can overtake the reply.
    pub fn subscribe(
        &self,
        topic: Topic,
        subscriber: Subscriber,
        first: &Frame,
    ) -> Arc<TopicState> {
        let full: Arc<str> = topic.full().into();
        let entry = self.topics.entry(full.clone()).or_insert_with(|| {
            Arc::new(TopicState {
                topic,
                full,
                subscribers: RwLock::new(HashMap::new()),
                presence: Mutex::new(HashMap::new()),
            })
        });
        let state = entry.value().clone();
        subscriber.conn.send_frame(subscriber.wire.vsn(), first);
        state
            .subscribers
            .write()
            .expect("lock")
            .insert(subscriber.conn.id, subscriber);
        drop(entry);
        state
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

    /// Sends the full presence state to one subscriber (after every join on a presence topic).
    pub fn send_presence_state(
        &self,
        state: &TopicState,
        conn: &ConnHandle,
        wire: Wire,
        join_ref: &str,
    ) {
        let presence = state.presence.lock().expect("lock");
        let mut body = Map::new();
        for (key, metas) in presence.iter() {
            let metas: Vec<&Value> = metas.iter().map(|m| &m.meta).collect();
            body.insert(key.clone(), presence_entry(&metas));
        }
        let frame = Frame::new(&*state.full, "presence_state", Value::Object(body))
            .with_refs(Some(join_ref), None);
        conn.send_frame(wire.vsn(), &frame);
    }

    /// Tracks (or re-tracks) a connection's presence under `key`, as the authenticated
    /// `user_id` and `role` (the payload was checked against them).
    pub fn track(
        &self,
        state: &TopicState,
        conn: u64,
        key: &str,
        user_id: Uuid,
        role: Role,
        payload: Map<String, Value>,
    ) {
        // A channel the server closed (see `evict`) tracks nothing.
        if !Self::is_subscribed(state, conn) {
            return;
        }
        let mut presence = state.presence.lock().expect("lock");
        let leaves = Self::remove_conn(&mut presence, conn);
        let mut meta = payload;
        meta.insert("phx_ref".into(), Value::String(self.phx_ref()));
        let meta = Meta {
            conn,
            user_id,
            role,
            meta: Value::Object(meta),
        };
        let joins = json!({ key: presence_entry(&[&meta.meta]) });
        presence.entry(key.to_string()).or_default().push(meta);
        self.fan_out_diff(state, joins, leaves);
    }

    /// Removes a connection's presence, announcing the leave; a no-op if it tracked nothing.
    pub fn untrack(&self, state: &TopicState, conn: u64) {
        let mut presence = state.presence.lock().expect("lock");
        let leaves = Self::remove_conn(&mut presence, conn);
        if leaves.as_object().is_some_and(|l| !l.is_empty()) {
            self.fan_out_diff(state, json!({}), leaves);
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

    /// Called with the presence lock held, so diffs go out in the order the state changed.
    fn fan_out_diff(&self, state: &TopicState, joins: Value, leaves: Value) {
        let frame = Frame::new(
            &*state.full,
            "presence_diff",
            json!({ "joins": joins, "leaves": leaves }),
        );
        self.fan_out(state, Some(&frame), None, None);
    }

    /// Sends a frame to every subscriber of a topic except `except`.
    pub fn fan_out(
        &self,
        state: &TopicState,
        frame: Option<&Frame>,
        binary: Option<&UserBroadcast>,
        except: Option<u64>,
    ) {
        let mut encoded = Encoded::new(frame, binary);
        let subscribers = state.subscribers.read().expect("lock");
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
        if !Self::is_subscribed(state, sender) {
            return;
        }
        let frame = payload.map(|p| Frame::new(&*state.full, "broadcast", p));
        self.fan_out(
            state,
            frame.as_ref(),
            binary,
            (!sender_self).then_some(sender),
        );
    }

    /// A broadcast from the server itself, to every subscriber of a topic.
    pub fn server_broadcast(&self, topic: Topic, event: &str, payload: Value) {
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
        let mut users: Vec<Uuid> = presence.values().flatten().map(|m| m.user_id).collect();
        users.sort();
        users.dedup();
        users
    }

    /// Mechanics available for new requests: distinct users (not connections) tracked on
    /// `requests` as mechanics with at least one connection that is not away. A mechanic with
    /// one device away and another online is available.
    pub fn available_mechanics(&self) -> usize {
        let Some(state) = self.topic(&Topic::Requests.full()) else {
            return 0;
        };
        let presence = state.presence.lock().expect("lock");
        let online: HashSet<Uuid> = presence
            .values()
            .flatten()
            .filter(|m| m.role == Role::Mechanic)
            .filter(|m| {
                m.meta
                    .as_object()
                    .is_some_and(|p| Availability::of_payload(p) == Ok(Availability::Online))
            })
            .map(|m| m.user_id)
            .collect();
        online.len()
    }

    pub fn topic_count(&self) -> usize {
        self.topics.len()
    }
}

impl PresenceView for Hub {
    fn participants(&self, session: &Session) -> Participants {
        let present = self.present_users(Topic::SessionPresence(session.id));
        Participants {
            customer_present: present.contains(&session.customer_id),
            mechanic_present: session.mechanic_id.is_some_and(|m| present.contains(&m)),
        }
    }
}
