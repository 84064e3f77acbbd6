//! The realtime client: Supabase Realtime (Phoenix Channels, serializer `2.0.0`) over
//! tokio-tungstenite, as `docs/realtime-protocol.md` describes the wire.
//!
//! This module owns the public handles and the values they exchange: [`RealtimeClient`] (one
//! socket), [`Channel`] (one topic on it), their options, [`ChannelEvent`] and [`RealtimeError`].
//! The socket itself, with heartbeats, reconnects and rejoins, belongs to one background task per
//! client (`connection`); handles are cheap clones that talk to it over bounded channels, so many
//! thousands of clients fit in one process.
//!
//! Presence is kept per channel with Phoenix' sync algorithm
//! ([`wrenchline_protocol::realtime::presence_sync`]); whether a user is present is answered
//! from the payloads' `user_id`, never from presence keys, which are per connection.

mod backoff;
mod connection;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

pub use backoff::Backoff;
pub use wrenchline_protocol::realtime::presence_sync::PresenceState;
use wrenchline_protocol::realtime::{topics, JoinConfig, JoinPayload, PgBinding};
/// A committed row change delivered on a channel's `postgres_changes` subscription, and its kind.
pub use wrenchline_protocol::realtime::{ChangeType, PostgresChange};

use connection::{Command, Connection};

/// Commands queued towards the socket task before callers wait; bounded so that a stalled
/// socket pushes back on callers instead of growing memory.
const COMMAND_QUEUE: usize = 32;

/// Tuning for one client. The defaults are realtime-js' (25 s heartbeat, 10 s join and push
/// timeouts) with a quicker first reconnect.
#[derive(Debug, Clone)]
pub struct RealtimeOptions {
    /// How often a heartbeat is sent; a heartbeat unanswered for this long closes the socket and
    /// reconnects.
    pub heartbeat_interval: Duration,
    /// How long a `subscribe()` may take, from the call until the server's reply.
    pub join_timeout: Duration,
    /// How long a track, untrack, acknowledged broadcast or leave waits for its reply.
    pub push_timeout: Duration,
    /// How long one connection attempt (TCP, TLS and WebSocket handshake) may take.
    pub connect_timeout: Duration,
    /// Delay before each reconnect attempt after the socket is lost.
    pub reconnect: Backoff,
    /// Delay before rejoining a channel the server errored (`phx_error`, refused rejoin).
    pub rejoin: Backoff,
    /// Events buffered per channel for slow readers; a reader that falls further behind skips
    /// the oldest ones (`RecvError::Lagged`) rather than stalling the socket.
    pub event_capacity: usize,
    /// The largest message accepted from the server, in bytes.
    pub max_message_size: usize,
}

impl Default for RealtimeOptions {
    fn default() -> Self {
        RealtimeOptions {
            heartbeat_interval: Duration::from_secs(25),
            join_timeout: Duration::from_secs(10),
            push_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            reconnect: Backoff {
                initial: Duration::from_millis(200),
                max: Duration::from_secs(10),
                jitter: 0.25,
            },
            rejoin: Backoff {
                initial: Duration::from_secs(1),
                max: Duration::from_secs(10),
                jitter: 0.25,
            },
            event_capacity: 32,
            max_message_size: 1 << 20,
        }
    }
}

/// The socket as a whole, for status displays and for waiting until it is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionState {
    /// The first connection attempt is under way or being retried.
    Connecting,
    Connected,
    /// The socket was lost; channels rejoin once it is back.
    Reconnecting,
    /// `disconnect()` was called, or every handle was dropped; nothing will reconnect.
    Closed,
}

/// One `postgres_changes` subscription of a channel (schema `public`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresChanges {
    /// `*`, `INSERT`, `UPDATE` or `DELETE`.
    pub event: String,
    pub table: String,
    /// PostgREST syntax, e.g. `session_id=eq.{id}`.
    pub filter: Option<String>,
}

impl PostgresChanges {
    pub fn new(event: impl Into<String>, table: impl Into<String>) -> Self {
        PostgresChanges {
            event: event.into(),
            table: table.into(),
            filter: None,
        }
    }

    pub fn filter(mut self, filter: impl Into<String>) -> Self {
        self.filter = Some(filter.into());
        self
    }
}

/// The join config of a channel, sent with every (re)join.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelOptions {
    /// Receive this connection's own broadcasts too.
    pub broadcast_self: bool,
    /// Have the server acknowledge each broadcast, so [`Channel::broadcast`] reports delivery.
    pub broadcast_ack: bool,
    /// The presence key; the server picks a random one per connection when `None`.
    pub presence_key: Option<String>,
    /// Receive presence state without tracking first.
    pub presence_enabled: bool,
    pub postgres_changes: Vec<PostgresChanges>,
}

/// The server's answer to a successful join.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinReply {
    /// The reply's `response`, e.g. `{"postgres_changes": [{…, "id": 123}]}`.
    pub response: Value,
}

/// What happens on a channel, in the order the socket task saw it.
#[derive(Debug, Clone, PartialEq)]
pub enum ChannelEvent {
    /// The first join succeeded.
    Subscribed,
    /// The socket was lost; the channel rejoins once it is back.
    Reconnecting,
    /// A later join succeeded (after a reconnect or a channel error); presence is re-tracked.
    Rejoined,
    /// The channel ended for good: the server closed it (the reason is the `system` error that
    /// preceded the close, if any), it was left, or the client disconnected.
    Closed {
        reason: String,
    },
    /// A join was refused or timed out, or the server reported a channel error; a channel that
    /// was joined before keeps rejoining.
    Error {
        reason: String,
    },
    Broadcast {
        event: String,
        payload: Value,
    },
    /// Presence state changed; read it with [`Channel::presence`] or [`Channel::is_present`].
    PresenceSync,
    PostgresChange(Box<PostgresChange>),
    /// A `system` message: the result of a `postgres_changes` subscription, or the error that
    /// precedes a server-side close.
    System {
        status: String,
        message: String,
        extension: String,
    },
}

/// Everything the realtime client can fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RealtimeError {
    #[error("invalid realtime URL: {0}")]
    Url(String),
    #[error("the realtime connection was lost: {0}")]
    Transport(String),
    #[error("the server did not answer in time")]
    Timeout,
    #[error("the server refused to join the channel: {reason}")]
    JoinRefused { reason: String },
    #[error("the server refused the message: {reason}")]
    Refused { reason: String },
    #[error("the channel is not joined")]
    NotJoined,
    #[error("another channel on this connection already uses topic {0}")]
    TopicInUse(String),
    #[error("the channel or the realtime client is closed")]
    Closed,
}

/// A handle to one realtime socket. Clones share the socket; it closes when
/// [`RealtimeClient::disconnect`] is called or when every client and channel handle is dropped.
#[derive(Debug, Clone)]
pub struct RealtimeClient {
    commands: mpsc::Sender<Command>,
    state: watch::Receiver<ConnectionState>,
    next_channel: Arc<AtomicU64>,
    event_capacity: usize,
}

impl RealtimeClient {
    /// Starts connecting to `{base_url}/realtime/v1/websocket?vsn=2.0.0` in a background task;
    /// `token` authorizes every join. Must be called inside a tokio runtime. Only a malformed
    /// URL fails here: an unreachable server is retried until [`RealtimeClient::disconnect`].
    pub fn connect(base_url: &str, token: impl Into<String>) -> Result<Self, RealtimeError> {
        Self::connect_with(base_url, token, RealtimeOptions::default())
    }

    pub fn connect_with(
        base_url: &str,
        token: impl Into<String>,
        options: RealtimeOptions,
    ) -> Result<Self, RealtimeError> {
        let url = websocket_url(base_url)?;
        let (commands, receiver) = mpsc::channel(COMMAND_QUEUE);
        let (state_tx, state) = watch::channel(ConnectionState::Connecting);
        let event_capacity = options.event_capacity.max(1);
        let connection = Connection::new(url, token.into(), options, receiver, state_tx);
        tokio::spawn(connection.run());
        Ok(RealtimeClient {
            commands,
            state,
            next_channel: Arc::new(AtomicU64::new(1)),
            event_capacity,
        })
    }

    /// A channel on topic `realtime:{name}`. Nothing is sent until [`Channel::subscribe`].
    pub fn channel(&self, name: &str, options: ChannelOptions) -> Channel {
        let (events, _) = broadcast::channel(self.event_capacity);
        Channel {
            shared: Arc::new(ChannelShared {
                id: self.next_channel.fetch_add(1, Ordering::Relaxed),
                topic: topics::full(name),
                options,
                presence: Mutex::new(PresenceState::new()),
                events,
            }),
            commands: self.commands.clone(),
        }
    }

    /// Replaces the access token: joined channels get an `access_token` push, and every later
    /// (re)join carries the new token.
    pub async fn set_token(&self, token: impl Into<String>) -> Result<(), RealtimeError> {
        self.commands
            .send(Command::SetToken(token.into()))
            .await
            .map_err(|_| RealtimeError::Closed)
    }

    pub fn connection_state(&self) -> ConnectionState {
        *self.state.borrow()
    }

    /// A receiver that sees every connection state change.
    pub fn connection_states(&self) -> watch::Receiver<ConnectionState> {
        self.state.clone()
    }

    /// Waits until the socket is connected; fails only when the client is closed, so wrap it
    /// in a timeout to bound the wait.
    pub async fn connected(&self) -> Result<(), RealtimeError> {
        let mut state = self.state.clone();
        let reached = state
            .wait_for(|s| matches!(s, ConnectionState::Connected | ConnectionState::Closed))
            .await
            .map_err(|_| RealtimeError::Closed)?;
        match *reached {
            ConnectionState::Connected => Ok(()),
            _ => Err(RealtimeError::Closed),
        }
    }

    /// Closes the socket for good: channels get [`ChannelEvent::Closed`], pending calls fail
    /// with [`RealtimeError::Closed`], and nothing reconnects.
    pub async fn disconnect(&self) {
        let (reply, done) = oneshot::channel();
        if self
            .commands
            .send(Command::Disconnect { reply })
            .await
            .is_ok()
        {
            let _ = done.await;
        }
    }
}

/// What a channel handle and the socket task share: the immutable identity and config, the
/// presence state the task keeps in sync, and the event fan-out.
#[derive(Debug)]
struct ChannelShared {
    id: u64,
    topic: String,
    options: ChannelOptions,
    presence: Mutex<PresenceState>,
    events: broadcast::Sender<ChannelEvent>,
}

impl ChannelShared {
    fn presence(&self) -> MutexGuard<'_, PresenceState> {
        // A panic while holding the lock cannot leave the state half-applied in a way that is
        // worse than losing it, so a poisoned lock is still read.
        self.presence.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn emit(&self, event: ChannelEvent) {
        // No receiver is not an error: events are there for whoever listens.
        let _ = self.events.send(event);
    }

    /// The `phx_join` payload realtime-js sends for this config.
    fn join_payload(&self, token: &str) -> Value {
        let o = &self.options;
        let config = JoinConfig {
            broadcast_self: o.broadcast_self,
            broadcast_ack: o.broadcast_ack,
            presence_key: o.presence_key.clone(),
            presence_enabled: o.presence_enabled,
            postgres_changes: o
                .postgres_changes
                .iter()
                .map(|pg| PgBinding::new(&pg.event, &pg.table, pg.filter.as_deref()))
                .collect(),
            private: false,
        };
        JoinPayload {
            config,
            has_config: true,
            access_token: Some(token.to_string()),
        }
        .to_value()
    }
}

/// A handle to one channel of a [`RealtimeClient`]. Clones share the channel. Dropping the
/// handles does not leave the channel; call [`Channel::leave`].
#[derive(Debug, Clone)]
pub struct Channel {
    shared: Arc<ChannelShared>,
    commands: mpsc::Sender<Command>,
}

impl Channel {
    /// The full topic, `realtime:{name}`.
    pub fn topic(&self) -> &str {
        &self.shared.topic
    }

    /// Joins the channel and waits for the server's reply (at most
    /// [`RealtimeOptions::join_timeout`], including the wait for a connection). A refused or
    /// timed-out first join is not retried; once joined, the channel rejoins by itself after
    /// every reconnect or channel error until it is left or closed by the server. Subscribing a
    /// joined channel again returns its join reply.
    pub async fn subscribe(&self) -> Result<JoinReply, RealtimeError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Subscribe {
            channel: self.shared.clone(),
            reply,
        })
        .await?;
        answer.await.map_err(|_| RealtimeError::Closed)?
    }

    /// Tracks `payload` as this connection's presence and waits for the server to accept it.
    /// The payload is tracked again after every rejoin. Called while the channel is rejoining,
    /// it waits for the rejoin.
    pub async fn track(&self, payload: Value) -> Result<(), RealtimeError> {
        self.request(|reply| Command::Track {
            channel: self.shared.id,
            payload: Some(payload),
            reply,
        })
        .await
    }

    /// Removes this connection's presence.
    pub async fn untrack(&self) -> Result<(), RealtimeError> {
        self.request(|reply| Command::Track {
            channel: self.shared.id,
            payload: None,
            reply,
        })
        .await
    }

    /// Broadcasts `{event, payload}` to the channel's subscribers. With
    /// [`ChannelOptions::broadcast_ack`] it waits for the server's acknowledgement; otherwise it
    /// returns once the frame is written. Fails with [`RealtimeError::NotJoined`] while the
    /// channel is not joined: a broadcast is not worth delivering late.
    pub async fn broadcast(&self, event: &str, payload: Value) -> Result<(), RealtimeError> {
        self.request(|reply| Command::Broadcast {
            channel: self.shared.id,
            event: event.to_string(),
            payload,
            reply,
        })
        .await
    }

    /// Leaves the channel for good and waits for the server to confirm.
    pub async fn leave(&self) -> Result<(), RealtimeError> {
        self.request(|reply| Command::Leave {
            channel: self.shared.id,
            reply,
        })
        .await
    }

    /// A snapshot of the presence state, in Phoenix' form (`key → metas`). After a reconnect it
    /// keeps the last known state until the server's new `presence_state` replaces it.
    pub fn presence(&self) -> PresenceState {
        self.shared.presence().clone()
    }

    /// Whether any presence on this channel carries `user_id` in its payload, whatever its key.
    pub fn is_present(&self, user_id: &str) -> bool {
        self.shared.presence().is_present(user_id)
    }

    /// A receiver of this channel's events from now on; subscribe to events before calling
    /// [`Channel::subscribe`] to see [`ChannelEvent::Subscribed`].
    pub fn events(&self) -> broadcast::Receiver<ChannelEvent> {
        self.shared.events.subscribe()
    }

    async fn send(&self, command: Command) -> Result<(), RealtimeError> {
        self.commands
            .send(command)
            .await
            .map_err(|_| RealtimeError::Closed)
    }

    async fn request(
        &self,
        command: impl FnOnce(connection::Reply) -> Command,
    ) -> Result<(), RealtimeError> {
        let (reply, answer) = oneshot::channel();
        self.send(command(reply)).await?;
        answer.await.map_err(|_| RealtimeError::Closed)?
    }
}

/// `http(s)://host[:port][/prefix]` → `ws(s)://host[:port][/prefix]/realtime/v1/websocket?vsn=2.0.0`.
fn websocket_url(base_url: &str) -> Result<String, RealtimeError> {
    let base = base_url.trim().trim_end_matches('/');
    let (scheme, rest) = [
        ("http://", "ws://"),
        ("https://", "wss://"),
        ("ws://", "ws://"),
        ("wss://", "wss://"),
    ]
    .iter()
    .find_map(|(from, to)| base.strip_prefix(from).map(|rest| (*to, rest)))
    .ok_or_else(|| RealtimeError::Url(base_url.to_string()))?;
    if rest.is_empty() || rest.contains(['?', '#']) {
        return Err(RealtimeError::Url(base_url.to_string()));
    }
    let url = format!("{scheme}{rest}/realtime/v1/websocket?vsn=2.0.0");
    url.as_str()
        .into_client_request()
        .map_err(|_| RealtimeError::Url(base_url.to_string()))?;
    Ok(url)
}
