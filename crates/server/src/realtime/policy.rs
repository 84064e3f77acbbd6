//! What a realtime connection's frames mean: the policy the transport loop (`socket.rs`) calls
//! for each frame it reads. Joins (token, authorization, bindings, room on the topic), presence
//! (tracks checked against the authenticated user, so presence cannot be forged), broadcasts
//! (size, server-only events, rates), token refreshes and expiry, and leaving. Joins, presence
//! events and broadcasts are rate-limited per connection and per user. Everything it answers is
//! queued on the connection's handle; the transport writes it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::Message;
use governor::DefaultDirectRateLimiter;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio::time::Instant;
use uuid::Uuid;
use wrenchline_protocol::presence::Availability;
use wrenchline_protocol::realtime::topics::{Topic, TopicError};
use wrenchline_protocol::realtime::{Filter, Frame, JoinPayload, PgBinding, UserBroadcast, Vsn};
use wrenchline_protocol::{Role, SessionStatus};

use super::hub::{ActiveBinding, ConnHandle, Cut, Subscriber, TopicState, Wire, SERVER_EVENTS};
use super::rates::Action;
use crate::auth::{Claims, TokenError, TokenKind};
use crate::limits::Limiters;
use crate::state::AppState;

pub(super) const CLOSE_NORMAL: u16 = 1000;
const CLOSE_INVALID_DATA: u16 = 1007;
const CLOSE_POLICY: u16 = 1008;
const CLOSE_GOING_AWAY: u16 = 1001;

/// A joined channel on this connection.
struct Channel {
    topic: Topic,
    state: Arc<TopicState>,
    join_ref: Arc<str>,
    user_id: Uuid,
    role: Role,
    /// Expiry of the access token the channel was joined (or last refreshed) with, Unix seconds.
    exp: i64,
    presence_key: String,
    ack: bool,
    broadcast_self: bool,
}

/// Why the connection must close.
pub(super) struct Close {
    pub code: u16,
    pub reason: String,
}

/// One connection's channels and budgets, and what its frames mean.
pub(super) struct Connection {
    state: AppState,
    conn: ConnHandle,
    vsn: Vsn,
    channels: HashMap<String, Channel>,
    joins: DefaultDirectRateLimiter,
    presence_events: DefaultDirectRateLimiter,
    broadcasts: DefaultDirectRateLimiter,
    /// The last access token verified on this connection, by its SHA-256 digest (a token is
    /// several hundred bytes that every idle connection would hold): a client sends the same one
    /// with every join, and a join flood should not cost a signature check each.
    last_token: Option<([u8; 32], Claims)>,
    /// A channel's token expiry was added or changed since the transport last asked: the
    /// earliest expiry may have come sooner.
    expiry_moved: bool,
}

/// What became of one read from the socket.
pub(super) enum Inbound {
    Handled(Result<(), Close>),
    ClientClosed,
    Gone,
}

/// Why the hub (or the server's shutdown) ended the connection.
pub(super) fn cut_close(state: &AppState, conn: &ConnHandle) -> Close {
    if state.hub.shutdown_token().is_cancelled() {
        return Close {
            code: CLOSE_GOING_AWAY,
            reason: "server shutting down".into(),
        };
    }
    match conn.cut_reason() {
        Some(Cut::AccountDisabled) => Close {
            code: CLOSE_POLICY,
            reason: "this account has been disabled".into(),
        },
        Some(Cut::SlowConsumer) | None => Close {
            code: CLOSE_POLICY,
            reason: "slow consumer: too many unread messages".into(),
        },
    }
}

fn error_reply(frame: &Frame, reason: impl Into<String>) -> Frame {
    frame.reply("error", json!({ "reason": reason.into() }))
}

fn system(
    channel: &str,
    extension: &str,
    status: &str,
    message: &str,
    join_ref: &str,
    full: &str,
) -> Frame {
    Frame::new(
        full,
        "system",
        json!({ "extension": extension, "status": status, "message": message, "channel": channel }),
    )
    .with_refs(Some(join_ref), None)
}

/// Checks a binding against what the topic may see: a session topic only that session's row and
/// messages, the request feed only pending sessions.
fn validate_binding(topic: Topic, binding: &PgBinding) -> Result<ActiveBinding, String> {
    if !["*", "INSERT", "UPDATE", "DELETE"]
        .iter()
        .any(|e| e.eq_ignore_ascii_case(&binding.event))
    {
        return Err(format!(
            "event {:?} must be one of *, INSERT, UPDATE, DELETE",
            binding.event
        ));
    }
    if binding.schema != "public" {
        return Err(format!(
            "schema {:?} is not available; use public",
            binding.schema
        ));
    }
    let table = binding.table.as_deref().ok_or("a table is required")?;
    let filter_text = binding
        .filter
        .as_deref()
        .ok_or("a filter is required on this channel")?;
    let filter =
        Filter::parse(filter_text).map_err(|e| format!("Error parsing `filter` params: {e}"))?;
    let allowed = match (topic, table) {
        (Topic::SessionChat(id) | Topic::SessionPresence(id), "sessions") => {
            filter.column == "id" && filter.value == id.to_string()
        }
        (Topic::SessionChat(id) | Topic::SessionPresence(id), "messages") => {
            filter.column == "session_id" && filter.value == id.to_string()
        }
        (Topic::Requests, "sessions") => {
            filter.column == "status" && filter.value == SessionStatus::Pending.as_str()
        }
        (Topic::Requests, "messages") => false,
        (_, other) => return Err(format!("table {other:?} is not available on this channel")),
    };
    if !allowed {
        return Err(format!(
            "filter {filter_text:?} on table {table} is not allowed on this channel"
        ));
    }
    Ok(ActiveBinding {
        id: binding.id(),
        table: table.to_string(),
        event: binding.event.to_uppercase(),
        filter,
    })
}

impl Connection {
    pub(super) fn new(state: AppState, conn: ConnHandle, vsn: Vsn) -> Self {
        let limits = &state.limiters.limits;
        Connection {
            joins: Limiters::per_second(limits.joins_per_connection_per_second),
            presence_events: Limiters::per_second(limits.presence_per_connection_per_second),
            broadcasts: Limiters::per_second(limits.broadcasts_per_connection_per_second),
            last_token: None,
            state,
            conn,
            vsn,
            channels: HashMap::new(),
            expiry_moved: false,
        }
    }

    fn send(&self, frame: &Frame) {
        self.conn.send_frame(self.vsn, frame);
    }

    /// Handles one read from the socket (`None`: the stream ended).
    pub(super) async fn read<E>(&mut self, inbound: Option<Result<Message, E>>) -> Inbound {
        Inbound::Handled(match inbound {
            Some(Ok(Message::Text(text))) => self.on_text(text.as_str()).await,
            Some(Ok(Message::Binary(bytes))) => self.on_binary(&bytes).await,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => Ok(()),
            Some(Ok(Message::Close(_))) => return Inbound::ClientClosed,
            Some(Err(_)) | None => return Inbound::Gone,
        })
    }

    /// Whether a token expiry was added or changed since the last call.
    pub(super) fn take_expiry_moved(&mut self) -> bool {
        std::mem::take(&mut self.expiry_moved)
    }

    /// When the earliest channel token expires.
    pub(super) fn next_expiry(&self) -> Option<Instant> {
        let earliest = self.channels.values().map(|c| c.exp).min()?;
        let left = earliest - OffsetDateTime::now_utc().unix_timestamp();
        Some(Instant::now() + Duration::from_secs(left.max(0) as u64))
    }

    async fn on_text(&mut self, text: &str) -> Result<(), Close> {
        let frame = Frame::decode(self.vsn, text).map_err(|e| Close {
            code: CLOSE_INVALID_DATA,
            reason: truncate(format!("{e}")),
        })?;
        match (frame.topic.as_str(), frame.event.as_str()) {
            ("phoenix", "heartbeat") => self.send(&frame.reply("ok", json!({}))),
            // A join (and a token refresh) awaits the database: boxed, its state is held only
            // while it runs, not for the connection's whole life in every connection's task.
            (_, "phx_join") => Box::pin(self.join(frame)).await,
            (_, "phx_leave") => self.leave(&frame),
            _ => {
                let Some(channel) = self.channels.get(&frame.topic) else {
                    let mut reply = error_reply(&frame, "unmatched topic");
                    reply.join_ref = None;
                    self.send(&reply);
                    return Ok(());
                };
                if frame
                    .join_ref
                    .as_deref()
                    .is_some_and(|r| r != &*channel.join_ref)
                {
                    // A message for an earlier join of this topic: stale, as Phoenix treats it.
                    return Ok(());
                }
                match frame.event.as_str() {
                    "access_token" => Box::pin(self.refresh_token(&frame)).await,
                    "presence" => self.presence(&frame, text.len()).await,
                    "broadcast" => self.broadcast_text(frame, text.len()).await,
                    other => self.send(&error_reply(
                        &frame,
                        format!("UnknownEvent: {other:?} is not handled on this channel"),
                    )),
                }
            }
        }
        Ok(())
    }

    async fn on_binary(&mut self, bytes: &[u8]) -> Result<(), Close> {
        if self.vsn != Vsn::V2 {
            return Err(Close {
                code: CLOSE_INVALID_DATA,
                reason: "binary frames need vsn=2.0.0".into(),
            });
        }
        let mut broadcast = UserBroadcast::decode_push(bytes).map_err(|e| Close {
            code: CLOSE_INVALID_DATA,
            reason: truncate(format!("{e}")),
        })?;
        // Client metadata (`persist`, …) is not relayed, as Supabase does not relay it; relaying
        // it could also outgrow the 255 bytes a kind 4 frame allows once re-serialized.
        broadcast.metadata = None;
        let Some(channel) = self.channels.get(&broadcast.topic) else {
            let frame = Frame::new(&broadcast.topic, "broadcast", json!({}))
                .with_refs(None, broadcast.r#ref.as_deref());
            self.send(&error_reply(&frame, "unmatched topic"));
            return Ok(());
        };
        let request = Frame::new(&broadcast.topic, "broadcast", json!({}))
            .with_refs(broadcast.join_ref.as_deref(), broadcast.r#ref.as_deref());
        if let Err(reason) = self
            .may_broadcast(channel, bytes.len(), &broadcast.event)
            .await
        {
            self.send(&error_reply(&request, reason));
            return Ok(());
        }
        self.state.hub.broadcast(
            &channel.state,
            self.conn.id,
            channel.broadcast_self,
            broadcast.json_payload(),
            Some(&broadcast),
        );
        if channel.ack {
            self.send(&request.reply("ok", json!({})));
        }
        Ok(())
    }

    async fn may_broadcast(
        &self,
        channel: &Channel,
        size: usize,
        event: &str,
    ) -> Result<(), String> {
        if channel.topic == Topic::Requests {
            return Err("Unauthorized: broadcasts are not allowed on this channel".into());
        }
        let max = self.state.limiters.limits.broadcast_payload_max_bytes;
        if size > max {
            return Err(format!(
                "payload_size_exceeded: broadcasts are limited to {max} bytes"
            ));
        }
        check_broadcast_event(event)?;
        if self.broadcasts.check().is_err()
            || !self
                .state
                .hub
                .rates
                .admit(channel.user_id, Action::Broadcast)
                .await
        {
            return Err("BroadcastRateLimitReached: Too many broadcasts per second".into());
        }
        Ok(())
    }

    async fn broadcast_text(&self, mut frame: Frame, size: usize) {
        let channel = &self.channels[&frame.topic];
        let Some(event) = frame.payload.get("event").and_then(Value::as_str) else {
            self.send(&error_reply(&frame, "a broadcast needs a string `event`"));
            return;
        };
        if let Err(reason) = self.may_broadcast(channel, size, event).await {
            self.send(&error_reply(&frame, reason));
            return;
        }
        self.state.hub.broadcast(
            &channel.state,
            self.conn.id,
            channel.broadcast_self,
            Some(std::mem::take(&mut frame.payload)),
            None,
        );
        if channel.ack {
            self.send(&frame.reply("ok", json!({})));
        }
    }

    async fn presence(&self, frame: &Frame, size: usize) {
        let channel = &self.channels[&frame.topic];
        if !carries_presence(channel.topic) {
            self.send(&error_reply(
                frame,
                "Presence is not available on this channel",
            ));
            return;
        }
        if self.presence_events.check().is_err()
            || !self
                .state
                .hub
                .rates
                .admit(channel.user_id, Action::Presence)
                .await
        {
            self.send(&error_reply(
                frame,
                "PresenceRateLimitReached: Too many presence messages per second",
            ));
            return;
        }
        match frame.payload.get("event").and_then(Value::as_str) {
            Some("track") => {
                let Some(Value::Object(payload)) = frame.payload.get("payload") else {
                    self.send(&error_reply(frame, "Presence track payload must be a map"));
                    return;
                };
                if size > self.state.limiters.limits.presence_payload_max_bytes {
                    self.send(&error_reply(frame, "Track message size exceeded"));
                    return;
                }
                if let Err(reason) =
                    check_presence_payload(payload, channel.user_id, channel.role, channel.topic)
                {
                    self.send(&error_reply(frame, reason));
                    return;
                }
                let mut payload = payload.clone();
                payload.remove("phx_ref");
                payload.remove("phx_ref_prev");
                let newly_present = self.state.hub.track(
                    &channel.state,
                    self.conn.id,
                    &channel.presence_key,
                    channel.user_id,
                    channel.role,
                    payload,
                );
                self.send(&frame.reply("ok", json!({})));
                // A re-track changes nobody's presence: it cannot start anything.
                if let (true, Some(session)) = (newly_present, channel.topic.session()) {
                    tokio::spawn(super::evaluate_start(self.state.clone(), session));
                }
            }
            Some("untrack") => {
                self.state.hub.untrack(&channel.state, self.conn.id);
                self.send(&frame.reply("ok", json!({})));
            }
            _ => self.send(&error_reply(
                frame,
                "Presence event must be track or untrack",
            )),
        }
    }

    async fn join(&mut self, frame: Frame) {
        if self.joins.check().is_err() {
            return self.send(&error_reply(
                &frame,
                "ClientJoinRateLimitReached: Too many joins per second",
            ));
        }
        let topic = match Topic::parse(&frame.topic) {
            Ok(topic) => topic,
            Err(TopicError::Unmatched) => {
                let mut reply = error_reply(&frame, "unmatched topic");
                reply.join_ref = None;
                self.send(&reply);
                return;
            }
            Err(e) => return self.send(&error_reply(&frame, e.to_string())),
        };
        let payload = match JoinPayload::parse(&frame.payload) {
            Ok(payload) => payload,
            Err(e) => return self.send(&error_reply(&frame, e.to_string())),
        };
        // Identical bindings are one binding (realtime-js still gets one echo per binding it
        // sent, each with the shared id); more distinct ones than the apps need are refused.
        let max_bindings = self.state.limiters.limits.postgres_changes_per_join as usize;
        let mut distinct: Vec<u32> = payload
            .config
            .postgres_changes
            .iter()
            .map(|b| b.id())
            .collect();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() > max_bindings {
            return self.send(&error_reply(
                &frame,
                format!(
                    "TooManyBindings: a join may carry at most {max_bindings} distinct postgres_changes bindings"
                ),
            ));
        }
        let (user_id, role, exp) =
            match self.authorize(topic, payload.access_token.as_deref()).await {
                Ok(who) => who,
                Err(reason) => return self.send(&error_reply(&frame, reason)),
            };

        let mut echo = Vec::new();
        let mut active: Vec<ActiveBinding> = Vec::new();
        let mut problems = Vec::new();
        for binding in &payload.config.postgres_changes {
            let mut raw: Map<String, Value> = binding.raw.clone();
            raw.insert("id".into(), json!(binding.id()));
            echo.push(Value::Object(raw));
            if active.iter().any(|a| a.id == binding.id()) {
                continue;
            }
            match validate_binding(topic, binding) {
                Ok(valid) => active.push(valid),
                Err(problem) if !problems.contains(&problem) => problems.push(problem),
                Err(_) => {}
            }
        }

        if let Some(previous) = self.channels.remove(&frame.topic) {
            self.state.hub.unsubscribe(&previous.state, self.conn.id);
        }
        let join_ref: Arc<str> = frame
            .join_ref
            .clone()
            .or_else(|| frame.r#ref.clone())
            .unwrap_or_default()
            .into();
        let wire = match (self.vsn, payload.has_config) {
            (Vsn::V1, _) => Wire::V1,
            (Vsn::V2, true) => Wire::V2Binary,
            (Vsn::V2, false) => Wire::V2,
        };
        let reply = frame.reply("ok", json!({ "postgres_changes": echo }));
        let pending = Subscriber::pending_for(carries_presence(topic));
        let subscriber = Subscriber {
            conn: self.conn.clone(),
            join_ref: join_ref.clone(),
            user_id,
            role,
            wire,
            broadcast_self: payload.config.broadcast_self,
            bindings: active.clone().into(),
            pending: pending.clone(),
        };
        let state = match self.state.hub.subscribe(topic, subscriber, &reply) {
            Ok(state) => state,
            Err(full) => return self.send(&error_reply(&frame, full.to_string())),
        };
        if carries_presence(topic) {
            // In a cluster the state is the shared presence; this node's own when it cannot be
            // read (the bus is away).
            let shared = if self.state.hub.is_clustered() {
                // This node's own presence writes first, so the state has the presences its
                // own connections tracked a moment ago.
                self.state.hub.flushed().await;
                self.state.presence.entries(topic).await.ok()
            } else {
                None
            };
            self.state
                .hub
                .send_presence_state(&state, &self.conn, wire, &join_ref, &pending, shared);
        }
        let name = topic.name();
        if !problems.is_empty() {
            self.send(&system(
                &name,
                "postgres_changes",
                "error",
                &problems.join("; "),
                &join_ref,
                &frame.topic,
            ));
        }
        if !active.is_empty() {
            self.send(&system(
                &name,
                "postgres_changes",
                "ok",
                "Subscribed to PostgreSQL",
                &join_ref,
                &frame.topic,
            ));
        }
        let presence_key = payload
            .config
            .presence_key
            .clone()
            .unwrap_or_else(|| Uuid::new_v4().to_string());
        self.expiry_moved = true;
        self.channels.insert(
            frame.topic.clone(),
            Channel {
                topic,
                state,
                join_ref,
                user_id,
                role,
                exp,
                presence_key,
                ack: payload.config.broadcast_ack,
                broadcast_self: payload.config.broadcast_self,
            },
        );
    }

    /// Who may join: a valid access token in the join, and for session topics the session's
    /// customer or its assigned mechanic (with a token whose scope reaches the session), for the
    /// request feed a mechanic. What costs nothing is checked first: the token, the user's join
    /// budget and room on the topic, then the database.
    async fn authorize(
        &mut self,
        topic: Topic,
        token: Option<&str>,
    ) -> Result<(Uuid, Role, i64), String> {
        let token =
            token.ok_or("Unauthorized: an access token is required to join this channel")?;
        let claims = self.verify(token)?;
        if !self.state.hub.rates.admit(claims.sub, Action::Join).await {
            return Err("ClientJoinRateLimitReached: Too many joins per second".into());
        }
        self.state
            .hub
            .room_for(topic, claims.sub, self.conn.id)
            .map_err(|full| full.to_string())?;
        let unauthorized = || {
            format!(
                "Unauthorized: You do not have permissions to read from this Channel topic: {}",
                topic.name()
            )
        };
        let user = match self.state.store.user(claims.sub).await {
            Ok(Some(user)) => user,
            Ok(None) => {
                return Err("Unauthorized: this account no longer exists or is disabled".into())
            }
            Err(e) => {
                tracing::error!(error = ?e, "join authorization failed");
                return Err("UnknownErrorOnChannel: please try again".into());
            }
        };
        match topic {
            Topic::Requests => {
                if user.role != Role::Mechanic {
                    return Err(unauthorized());
                }
            }
            Topic::SessionChat(id) | Topic::SessionPresence(id) => {
                match self.state.store.session(id).await {
                    // A browser that came in by a resume link reaches that session only.
                    Ok(Some(session)) if session.is_participant(user.id) && claims.reaches(id) => {}
                    Ok(_) => return Err(unauthorized()),
                    Err(e) => {
                        tracing::error!(error = ?e, "join authorization failed");
                        return Err("UnknownErrorOnChannel: please try again".into());
                    }
                }
            }
        }
        Ok((user.id, user.role, claims.exp))
    }

    /// Verifies an access token, or takes the claims of the same token verified before on this
    /// connection while it has not expired.
    fn verify(&mut self, token: &str) -> Result<Claims, String> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some((known, claims)) = &self.last_token {
            if *known == digest && claims.exp > now {
                return Ok(claims.clone());
            }
        }
        let claims = self
            .state
            .signer
            .verify(token, TokenKind::Access)
            .map_err(token_reason)?;
        self.last_token = Some((digest, claims.clone()));
        Ok(claims)
    }

    async fn refresh_token(&mut self, frame: &Frame) {
        let Some(token) = frame
            .payload
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        else {
            return;
        };
        let verified = self.state.signer.verify(token, TokenKind::Access);
        let user_id = self.channels[&frame.topic].user_id;
        // The account may have been disabled since the join: a new token does not outlive it.
        let active = match &verified {
            Ok(claims) if claims.sub == user_id => match self.state.store.user(user_id).await {
                Ok(user) => user.is_some(),
                Err(e) => {
                    tracing::warn!(error = ?e, "token refresh check failed");
                    true
                }
            },
            _ => true,
        };
        if !active {
            return self.shut_channel(&frame.topic, "this account has been disabled");
        }
        let channel = self
            .channels
            .get_mut(&frame.topic)
            .expect("checked by the caller");
        match verified {
            Ok(claims) if claims.sub == channel.user_id => {
                channel.exp = claims.exp;
                self.expiry_moved = true;
            }
            Ok(_) => self.shut_channel(&frame.topic, "The access token belongs to another user"),
            Err(e) => {
                let reason = token_reason(e);
                self.shut_channel(
                    &frame.topic,
                    reason.split_once(": ").map_or(reason.as_str(), |(_, m)| m),
                );
            }
        }
    }

    fn leave(&mut self, frame: &Frame) {
        self.send(&frame.reply("ok", json!({})));
        if let Some(channel) = self.channels.remove(&frame.topic) {
            self.state.hub.unsubscribe(&channel.state, self.conn.id);
            self.send(&close_frame(&channel));
        }
    }

    /// Ends a channel from the server side: a `system` error saying why, then `phx_close`.
    fn shut_channel(&mut self, topic: &str, message: &str) {
        if let Some(channel) = self.channels.remove(topic) {
            self.state.hub.unsubscribe(&channel.state, self.conn.id);
            self.send(&system(
                &channel.topic.name(),
                "system",
                "error",
                message,
                &channel.join_ref,
                topic,
            ));
            self.send(&close_frame(&channel));
        }
    }

    /// Closes the channels whose token has expired.
    pub(super) fn expire_tokens(&mut self) {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let expired: Vec<String> = self
            .channels
            .iter()
            .filter(|(_, c)| c.exp <= now)
            .map(|(t, _)| t.clone())
            .collect();
        for topic in expired {
            self.shut_channel(&topic, "Token has expired 0 seconds ago");
        }
    }

    /// Leaves every channel (the connection is ending).
    pub(super) fn leave_all(&mut self) {
        for (_, channel) in self.channels.drain() {
            self.state.hub.unsubscribe(&channel.state, self.conn.id);
        }
    }
}

fn close_frame(channel: &Channel) -> Frame {
    Frame::new(channel.state.full.to_string(), "phx_close", json!({}))
        .with_refs(Some(&channel.join_ref), Some(&channel.join_ref))
}

/// Topics with presence: a session's presence topic (who is in the chat) and `requests` (which
/// mechanics are connected, and whether they are away).
fn carries_presence(topic: Topic) -> bool {
    matches!(topic, Topic::SessionPresence(_) | Topic::Requests)
}

/// A tracked payload must name the authenticated user (and role): presence cannot be forged.
fn check_presence_payload(
    payload: &Map<String, Value>,
    user_id: Uuid,
    role: Role,
    topic: Topic,
) -> Result<(), String> {
    match payload.get("user_id").and_then(Value::as_str) {
        Some(id) if id == user_id.to_string() => {}
        _ => return Err("Forbidden: a presence payload's user_id must be your own".into()),
    }
    match payload.get("role") {
        None => {}
        Some(Value::String(given)) if given == role.as_str() => {}
        Some(_) => return Err("Forbidden: a presence payload's role must be your own".into()),
    }
    if topic == Topic::Requests {
        Availability::of_payload(payload).map_err(|e| format!("InvalidPresencePayload: {e}"))?;
    }
    Ok(())
}

/// Events only the server may send.
fn check_broadcast_event(event: &str) -> Result<(), String> {
    if SERVER_EVENTS.contains(&event) {
        return Err(format!(
            "Forbidden: {event:?} is an event only the server sends"
        ));
    }
    Ok(())
}

fn token_reason(e: TokenError) -> String {
    match e {
        TokenError::Expired => "InvalidJWTToken: Token has expired".into(),
        TokenError::Invalid => "InvalidJWTToken: The access token is not valid".into(),
    }
}

/// Close reasons must fit a control frame (123 bytes).
fn truncate(mut reason: String) -> String {
    if reason.len() > 120 {
        let mut cut = 120;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason.truncate(cut);
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(table: &str, filter: &str) -> PgBinding {
        let raw = json!({ "event": "*", "schema": "public", "table": table, "filter": filter });
        let payload = JoinPayload::parse(&json!({
            "config": { "postgres_changes": [raw] },
            "access_token": "t"
        }))
        .unwrap();
        payload.config.postgres_changes[0].clone()
    }

    #[test]
    fn a_session_topic_sees_only_its_own_rows() {
        let id = Uuid::new_v4();
        let other = Uuid::new_v4();
        let topic = Topic::SessionChat(id);
        assert!(validate_binding(topic, &binding("sessions", &format!("id=eq.{id}"))).is_ok());
        assert!(
            validate_binding(topic, &binding("messages", &format!("session_id=eq.{id}"))).is_ok()
        );
        assert!(validate_binding(topic, &binding("sessions", &format!("id=eq.{other}"))).is_err());
        assert!(validate_binding(topic, &binding("messages", "session_id=neq.x")).is_err());
        assert!(validate_binding(topic, &binding("users", &format!("id=eq.{id}"))).is_err());
    }

    #[test]
    fn the_request_feed_sees_only_pending_sessions() {
        assert!(
            validate_binding(Topic::Requests, &binding("sessions", "status=eq.pending")).is_ok()
        );
        assert!(validate_binding(Topic::Requests, &binding("sessions", "status=eq.live")).is_err());
        assert!(
            validate_binding(Topic::Requests, &binding("messages", "status=eq.pending")).is_err()
        );
    }

    #[test]
    fn presence_cannot_be_forged() {
        let me = Uuid::new_v4();
        let topic = Topic::SessionPresence(Uuid::new_v4());
        let payload = |v: Value| v.as_object().unwrap().clone();
        let own = payload(json!({ "user_id": me, "role": "customer", "online_at": "now" }));
        assert!(check_presence_payload(&own, me, Role::Customer, topic).is_ok());
        let other = payload(json!({ "user_id": Uuid::new_v4(), "role": "customer" }));
        assert!(check_presence_payload(&other, me, Role::Customer, topic).is_err());
        let missing = payload(json!({ "role": "customer" }));
        assert!(check_presence_payload(&missing, me, Role::Customer, topic).is_err());
        let wrong_role = payload(json!({ "user_id": me, "role": "mechanic" }));
        assert!(check_presence_payload(&wrong_role, me, Role::Customer, topic).is_err());
        let bad_availability = payload(json!({ "user_id": me, "availability": "asleep" }));
        assert!(
            check_presence_payload(&bad_availability, me, Role::Mechanic, Topic::Requests).is_err()
        );
    }

    #[test]
    fn clients_cannot_send_the_servers_events() {
        assert!(check_broadcast_event("typing").is_ok());
        for event in SERVER_EVENTS {
            assert!(check_broadcast_event(event).is_err());
        }
    }

    #[test]
    fn close_reasons_fit_a_control_frame() {
        let cut = truncate("é".repeat(100));
        assert!(cut.len() <= 120);
        assert!(cut.chars().all(|c| c == 'é'));
    }

    /// The transport over in-memory channels instead of a WebSocket: heartbeats are answered,
    /// a join without a token is refused by the policy, and an undecodable frame closes the
    /// connection with 1007.
    #[tokio::test]
    async fn the_transport_runs_over_any_sink_and_stream() {
        let file = std::env::temp_dir().join(format!("wl-policy-{}.db", Uuid::new_v4()));
        let settings = crate::Settings::new(
            "127.0.0.1:0".parse().unwrap(),
            format!("sqlite://{}", file.display()),
        );
        let app = crate::Application::build(settings).await.unwrap();
        let state = app.state().clone();
        let (client_tx, mut server_rx) = tokio::sync::mpsc::channel::<Result<Message, ()>>(16);
        let (server_tx, mut client_rx) = tokio::sync::mpsc::channel::<Message>(16);
        let stream = futures_util::stream::poll_fn(move |cx| server_rx.poll_recv(cx));
        let sink = tokio_util::sync::PollSender::new(server_tx);
        let served = tokio::spawn(super::super::socket::run(sink, stream, state, Vsn::V1));
        let text = |v: Value| Ok(Message::Text(v.to_string().into()));
        client_tx
            .send(text(
                json!({"topic": "phoenix", "event": "heartbeat", "payload": {}, "ref": "1"}),
            ))
            .await
            .unwrap();
        let reply = next_text(&mut client_rx).await;
        assert_eq!(reply["event"], "phx_reply");
        assert_eq!(reply["ref"], "1");
        assert_eq!(reply["payload"]["status"], "ok");

        let topic = format!("realtime:chat:session-{}", Uuid::new_v4());
        client_tx
            .send(text(json!({"topic": topic, "event": "phx_join", "payload": {"config": {}}, "ref": "2", "join_ref": "2"})))
            .await
            .unwrap();
        let refused = next_text(&mut client_rx).await;
        assert_eq!(refused["payload"]["status"], "error", "{refused}");
        let reason = refused["payload"]["response"]["reason"]
            .as_str()
            .unwrap_or_default();
        assert!(reason.starts_with("Unauthorized"), "{refused}");

        client_tx
            .send(Ok(Message::Text("not a frame".into())))
            .await
            .unwrap();
        let closed = loop {
            match next(&mut client_rx).await {
                Message::Close(Some(frame)) => break frame,
                _ => continue,
            }
        };
        assert_eq!(closed.code, CLOSE_INVALID_DATA);
        tokio::time::timeout(Duration::from_secs(5), served)
            .await
            .expect("the connection ends")
            .unwrap();
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
        }
    }

    async fn next(rx: &mut tokio::sync::mpsc::Receiver<Message>) -> Message {
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("an answer in time")
            .expect("the connection is open")
    }

    async fn next_text(rx: &mut tokio::sync::mpsc::Receiver<Message>) -> Value {
        match next(rx).await {
            Message::Text(text) => serde_json::from_str(text.as_str()).unwrap(),
            other => panic!("not text: {other:?}"),
        }
    }
}
