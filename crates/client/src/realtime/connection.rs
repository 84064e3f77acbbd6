//! The task that owns one realtime socket. It connects, heartbeats, reconnects with backoff,
//! (re)joins channels, matches replies to pushes by ref, keeps each channel's presence in sync
//! and fans events out to the channel handles. All of a connection's state lives in this one
//! task, so none of it needs a lock except the presence state that handles read.

use std::future::{pending, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{sleep_until, timeout, Instant};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tracing::{debug, warn};
use wrenchline_protocol::realtime::{
    BroadcastPayload, Frame, PostgresChangesMessage, UserBroadcast, Vsn,
};

use super::{
    ChannelEvent, ChannelShared, ConnectionState, JoinReply, PostgresChange, RealtimeError,
    RealtimeOptions,
};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;
/// Boxed because a socket is large (over a kilobyte) and moves through several hands.
type Connecting = Pin<Box<dyn Future<Output = Result<Box<Socket>, String>> + Send>>;
pub(super) type Reply = oneshot::Sender<Result<(), RealtimeError>>;
type JoinWaiter = oneshot::Sender<Result<JoinReply, RealtimeError>>;

/// Presence diffs kept while waiting for a join's `presence_state`. Phoenix keeps them all; a cap
/// keeps a misbehaving server from growing memory, and the full state that follows repairs
/// whatever an old dropped diff would have said.
const MAX_BUFFERED_DIFFS: usize = 32;
const PHOENIX_TOPIC: &str = "phoenix";
/// How long a close handshake may hold up the task before the socket is simply dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// Small reads are the norm (frames of a few hundred bytes); tungstenite's 128 KiB default,
/// allocated up front, would dominate the memory of a process with thousands of sockets.
const READ_BUFFER: usize = 4 * 1024;

/// What handles ask of the socket task.
pub(super) enum Command {
    Subscribe {
        channel: Arc<ChannelShared>,
        reply: JoinWaiter,
    },
    /// `payload: None` untracks.
    Track {
        channel: u64,
        payload: Option<Value>,
        reply: Reply,
    },
    Broadcast {
        channel: u64,
        event: String,
        payload: Value,
        reply: Reply,
    },
    Leave {
        channel: u64,
        reply: Reply,
    },
    SetToken(String),
    Disconnect {
        reply: oneshot::Sender<()>,
    },
}

/// A caller waiting for a reply until `deadline`.
struct Waiter {
    reply: Reply,
    deadline: Instant,
}

fn answer(waiters: Vec<Waiter>, result: Result<(), RealtimeError>) {
    for waiter in waiters {
        let _ = waiter.reply.send(result.clone());
    }
}

fn expire(waiters: &mut Vec<Waiter>, now: Instant) {
    let mut i = 0;
    while i < waiters.len() {
        if waiters[i].deadline <= now {
            let _ = waiters
                .swap_remove(i)
                .reply
                .send(Err(RealtimeError::Timeout));
        } else {
            i += 1;
        }
    }
}

enum JoinState {
    /// Not joined on the server; `phx_join` goes out at `at` once the socket is up.
    Waiting {
        at: Instant,
    },
    /// `phx_join` sent under `join_ref`, reply due by `deadline`.
    Joining {
        join_ref: String,
        deadline: Instant,
    },
    Joined {
        join_ref: String,
    },
}

/// The socket task's record of one subscribed channel.
struct Slot {
    shared: Arc<ChannelShared>,
    state: JoinState,
    /// Once a join succeeded, failures lead to rejoins instead of errors for the caller.
    ever_joined: bool,
    /// Callers of `subscribe()` before the first join, and when they give up.
    join_waiters: Vec<JoinWaiter>,
    subscribe_deadline: Option<Instant>,
    last_reply: Option<JoinReply>,
    /// The presence payload to track again after every rejoin.
    tracked: Option<Value>,
    /// `track()` callers waiting for the (re)join that will send their payload.
    track_waiters: Vec<Waiter>,
    /// Whether this join's `presence_state` arrived; diffs before it are buffered.
    presence_synced: bool,
    buffered_diffs: Vec<Value>,
    rejoin_attempts: u32,
    /// The message of a `system` error, which the server sends just before `phx_close`.
    close_reason: Option<String>,
}

impl Slot {
    fn current_join_ref(&self) -> Option<&str> {
        match &self.state {
            JoinState::Joining { join_ref, .. } | JoinState::Joined { join_ref } => Some(join_ref),
            JoinState::Waiting { .. } => None,
        }
    }

    fn joined_ref(&self) -> Option<&str> {
        match &self.state {
            JoinState::Joined { join_ref } => Some(join_ref),
            _ => None,
        }
    }

    /// Ends the slot's waiters with `error`.
    fn fail(self, error: RealtimeError) {
        for waiter in self.join_waiters {
            let _ = waiter.send(Err(error.clone()));
        }
        answer(self.track_waiters, Err(error));
    }
}

enum PendingKind {
    Join,
    Leave(Reply),
    /// Survives a lost socket: the waiters move back to the slot and the rejoin's re-track
    /// answers them.
    Track(Vec<Waiter>),
    Untrack(Reply),
    /// An acknowledged broadcast.
    Push(Reply),
}

/// A push that expects a `phx_reply` with the same ref.
struct Pending {
    r#ref: String,
    channel: u64,
    deadline: Instant,
    kind: PendingKind,
}

/// What becomes of pending pushes when their channel or socket goes away.
enum Release {
    /// The channel will rejoin: tracks wait for it, other pushes fail with this reason.
    Retry(String),
    Fail(RealtimeError),
}

enum Wake {
    Command(Option<Command>),
    Message(Option<Result<Message, tungstenite::Error>>),
    Connected(Result<Box<Socket>, String>),
    Timer,
}

pub(super) struct Connection {
    url: String,
    token: String,
    options: RealtimeOptions,
    commands: mpsc::Receiver<Command>,
    state: watch::Sender<ConnectionState>,
    socket: Option<Box<Socket>>,
    connecting: Option<Connecting>,
    reconnect_at: Option<Instant>,
    reconnect_attempts: u32,
    heartbeat_at: Instant,
    heartbeat_ref: Option<String>,
    /// Refs count up for the client's whole life, so a reply can never be mistaken for the
    /// answer to a push from an earlier connection.
    next_ref: u64,
    channels: Vec<Slot>,
    pending: Vec<Pending>,
}

impl Connection {
    pub(super) fn new(
        url: String,
        token: String,
        options: RealtimeOptions,
        commands: mpsc::Receiver<Command>,
        state: watch::Sender<ConnectionState>,
    ) -> Self {
        Connection {
            url,
            token,
            options,
            commands,
            state,
            socket: None,
            connecting: None,
            reconnect_at: None,
            reconnect_attempts: 0,
            heartbeat_at: Instant::now(),
            heartbeat_ref: None,
            next_ref: 1,
            channels: Vec::new(),
            pending: Vec::new(),
        }
    }

    pub(super) async fn run(mut self) {
        self.start_connecting();
        loop {
            let deadline = self.next_deadline();
            let wake = tokio::select! {
                command = self.commands.recv() => Wake::Command(command),
                message = read(&mut self.socket) => Wake::Message(message),
                result = finish(&mut self.connecting) => Wake::Connected(result),
                () = sleep(deadline) => Wake::Timer,
            };
            match wake {
                Wake::Command(None) => {
                    self.shutdown("every handle was dropped").await;
                    return;
                }
                Wake::Command(Some(Command::Disconnect { reply })) => {
                    self.shutdown("disconnected").await;
                    let _ = reply.send(());
                    return;
                }
                Wake::Command(Some(command)) => self.on_command(command).await,
                Wake::Message(message) => self.on_message(message).await,
                Wake::Connected(result) => {
                    self.connecting = None;
                    self.on_connected(result);
                }
                Wake::Timer => {}
            }
            self.poll_timers().await;
        }
    }

    // --- connection -------------------------------------------------------------------------

    fn start_connecting(&mut self) {
        let url = self.url.clone();
        let limit = self.options.connect_timeout;
        let config = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER)
            .write_buffer_size(0)
            .max_message_size(Some(self.options.max_message_size))
            .max_frame_size(Some(self.options.max_message_size));
        debug!(url, "realtime connecting");
        self.connecting = Some(Box::pin(async move {
            match timeout(
                limit,
                tokio_tungstenite::connect_async_with_config(url, Some(config), true),
            )
            .await
            {
                Ok(Ok((socket, _response))) => Ok(Box::new(socket)),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("the connection attempt timed out".to_string()),
            }
        }));
    }

    fn on_connected(&mut self, result: Result<Box<Socket>, String>) {
        match result {
            Ok(socket) => {
                debug!(url = self.url, "realtime connected");
                self.socket = Some(socket);
                self.reconnect_at = None;
                self.heartbeat_ref = None;
                self.heartbeat_at = Instant::now() + self.options.heartbeat_interval;
                self.state.send_replace(ConnectionState::Connected);
                // Channels waiting for the socket are joined by `poll_timers`.
            }
            Err(error) => {
                debug!(url = self.url, error, "realtime connection attempt failed");
                self.schedule_reconnect();
            }
        }
    }

    fn schedule_reconnect(&mut self) {
        let delay = self.options.reconnect.delay(self.reconnect_attempts);
        self.reconnect_attempts = self.reconnect_attempts.saturating_add(1);
        self.reconnect_at = Some(Instant::now() + delay);
    }

    /// Forgets the socket: pushes in flight are released, channels wait to rejoin, and a
    /// reconnect is scheduled.
    fn lose_socket(&mut self, reason: &str) {
        if self.socket.take().is_none() {
            return;
        }
        warn!(url = self.url, reason, "realtime connection lost");
        self.heartbeat_ref = None;
        self.release_pending(None, &Release::Retry(reason.to_string()));
        let now = Instant::now();
        for slot in &mut self.channels {
            if !matches!(slot.state, JoinState::Waiting { .. }) {
                slot.state = JoinState::Waiting { at: now };
            }
            slot.presence_synced = false;
            slot.buffered_diffs.clear();
            if slot.ever_joined {
                slot.shared.emit(ChannelEvent::Reconnecting);
            }
        }
        self.schedule_reconnect();
        self.state.send_replace(ConnectionState::Reconnecting);
    }

    /// Closes the socket with a normal close frame (as realtime-js does on a heartbeat
    /// timeout), then reconnects.
    async fn close_socket(&mut self, reason: &str) {
        if let Some(socket) = self.socket.as_mut() {
            let frame = CloseFrame {
                code: CloseCode::Normal,
                reason: reason.into(),
            };
            let _ = timeout(CLOSE_GRACE, socket.send(Message::Close(Some(frame)))).await;
        }
        self.lose_socket(reason);
    }

    async fn shutdown(&mut self, reason: &str) {
        if let Some(socket) = self.socket.as_mut() {
            let frame = CloseFrame {
                code: CloseCode::Normal,
                reason: reason.into(),
            };
            let _ = timeout(CLOSE_GRACE, socket.send(Message::Close(Some(frame)))).await;
        }
        self.socket = None;
        self.connecting = None;
        self.release_pending(None, &Release::Fail(RealtimeError::Closed));
        for slot in self.channels.drain(..) {
            slot.shared.emit(ChannelEvent::Closed {
                reason: reason.to_string(),
            });
            slot.fail(RealtimeError::Closed);
        }
        self.state.send_replace(ConnectionState::Closed);
        debug!(url = self.url, reason, "realtime client closed");
    }

    fn make_ref(&mut self) -> String {
        let r = self.next_ref.to_string();
        self.next_ref += 1;
        r
    }

    /// Writes one frame; a failed or stalled write counts as a lost socket.
    async fn send_frame(&mut self, frame: &Frame) -> bool {
        let Some(socket) = self.socket.as_mut() else {
            return false;
        };
        let message = Message::text(frame.encode(Vsn::V2));
        match timeout(self.options.heartbeat_interval, socket.send(message)).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                self.lose_socket(&e.to_string());
                false
            }
            Err(_) => {
                self.lose_socket("writing to the socket timed out");
                false
            }
        }
    }

    // --- timers -----------------------------------------------------------------------------

    fn next_deadline(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        if self.socket.is_some() {
            consider(self.heartbeat_at);
        } else if self.connecting.is_none() {
            if let Some(at) = self.reconnect_at {
                consider(at);
            }
        }
        for slot in &self.channels {
            match &slot.state {
                JoinState::Waiting { at } if self.socket.is_some() => consider(*at),
                JoinState::Joining { deadline, .. } => consider(*deadline),
                _ => {}
            }
            if let Some(deadline) = slot.subscribe_deadline {
                consider(deadline);
            }
            slot.track_waiters.iter().for_each(|w| consider(w.deadline));
        }
        for pending in &self.pending {
            consider(pending.deadline);
            if let PendingKind::Track(waiters) = &pending.kind {
                waiters.iter().for_each(|w| consider(w.deadline));
            }
        }
        next
    }

    /// Does whatever is due: reconnect, heartbeat, (re)joins, and timeouts.
    async fn poll_timers(&mut self) {
        let now = Instant::now();
        if self.socket.is_none()
            && self.connecting.is_none()
            && self.reconnect_at.is_some_and(|at| at <= now)
        {
            self.reconnect_at = None;
            self.start_connecting();
        }

        if self.socket.is_some() && self.heartbeat_at <= now {
            if self.heartbeat_ref.is_some() {
                self.close_socket("heartbeat timeout").await;
            } else {
                let r = self.make_ref();
                self.heartbeat_ref = Some(r.clone());
                self.heartbeat_at = now + self.options.heartbeat_interval;
                let frame =
                    Frame::new(PHOENIX_TOPIC, "heartbeat", json!({})).with_refs(None, Some(&r));
                self.send_frame(&frame).await;
            }
        }

        let mut idx = 0;
        while idx < self.channels.len() {
            let now = Instant::now();
            let slot = &mut self.channels[idx];
            expire(&mut slot.track_waiters, now);
            if !slot.ever_joined && slot.subscribe_deadline.is_some_and(|d| d <= now) {
                self.first_join_timed_out(idx).await;
                continue;
            }
            match &slot.state {
                JoinState::Waiting { at } if *at <= now && self.socket.is_some() => {
                    self.send_join(idx).await;
                }
                JoinState::Joining { deadline, .. } if *deadline <= now => {
                    self.rejoin_timed_out(idx).await;
                }
                _ => {}
            }
            idx += 1;
        }

        let now = Instant::now();
        let mut i = 0;
        while i < self.pending.len() {
            if self.pending[i].deadline <= now {
                match self.pending.swap_remove(i).kind {
                    PendingKind::Join => {}
                    PendingKind::Leave(reply)
                    | PendingKind::Untrack(reply)
                    | PendingKind::Push(reply) => {
                        let _ = reply.send(Err(RealtimeError::Timeout));
                    }
                    PendingKind::Track(waiters) => answer(waiters, Err(RealtimeError::Timeout)),
                }
                continue;
            }
            if let PendingKind::Track(waiters) = &mut self.pending[i].kind {
                expire(waiters, now);
            }
            i += 1;
        }
    }

    // --- channels ---------------------------------------------------------------------------

    fn slot_index(&self, channel: u64) -> Option<usize> {
        self.channels.iter().position(|s| s.shared.id == channel)
    }

    /// The channel a server message belongs to: same topic, joined or joining, and not a
    /// leftover of an earlier join (a non-null `join_ref` must be the current one).
    fn live_slot(&self, topic: &str, join_ref: Option<&str>) -> Option<usize> {
        self.channels.iter().position(|s| {
            s.shared.topic == topic
                && s.current_join_ref()
                    .is_some_and(|current| join_ref.is_none_or(|r| r == current))
        })
    }

    async fn send_join(&mut self, idx: usize) {
        let r = self.make_ref();
        let deadline = Instant::now() + self.options.join_timeout;
        let slot = &mut self.channels[idx];
        slot.state = JoinState::Joining {
            join_ref: r.clone(),
            deadline,
        };
        slot.presence_synced = false;
        slot.buffered_diffs.clear();
        let frame = Frame::new(
            slot.shared.topic.clone(),
            "phx_join",
            slot.shared.join_payload(&self.token),
        )
        .with_refs(Some(&r), Some(&r));
        debug!(topic = slot.shared.topic, join_ref = r, "joining");
        self.pending.push(Pending {
            r#ref: r,
            channel: slot.shared.id,
            deadline,
            kind: PendingKind::Join,
        });
        self.send_frame(&frame).await;
    }

    async fn send_leave(&mut self, topic: String, join_ref: String) -> String {
        let r = self.make_ref();
        let frame = Frame::new(topic, "phx_leave", json!({})).with_refs(Some(&join_ref), Some(&r));
        self.send_frame(&frame).await;
        r
    }

    async fn on_joined(&mut self, idx: usize, response: Value) {
        let slot = &mut self.channels[idx];
        let JoinState::Joining { join_ref, .. } = &slot.state else {
            return;
        };
        debug!(topic = slot.shared.topic, join_ref, "joined");
        slot.state = JoinState::Joined {
            join_ref: join_ref.clone(),
        };
        slot.rejoin_attempts = 0;
        slot.close_reason = None;
        slot.subscribe_deadline = None;
        let reply = JoinReply { response };
        for waiter in slot.join_waiters.drain(..) {
            let _ = waiter.send(Ok(reply.clone()));
        }
        slot.shared.emit(if slot.ever_joined {
            ChannelEvent::Rejoined
        } else {
            ChannelEvent::Subscribed
        });
        slot.ever_joined = true;
        slot.last_reply = Some(reply);
        let waiters = std::mem::take(&mut slot.track_waiters);
        match slot.tracked.clone() {
            Some(payload) => self.push_track(idx, payload, waiters).await,
            None => answer(waiters, Ok(())),
        }
    }

    /// A join was refused, or the server errored the channel: a channel that was joined before
    /// rejoins after a delay; a first join fails its `subscribe()` callers.
    fn channel_failed(&mut self, idx: usize, reason: String) {
        let id = self.channels[idx].shared.id;
        warn!(
            topic = self.channels[idx].shared.topic,
            reason, "realtime channel error"
        );
        self.channels[idx].shared.emit(ChannelEvent::Error {
            reason: reason.clone(),
        });
        if self.channels[idx].ever_joined {
            self.release_pending(Some(id), &Release::Retry(reason));
            let slot = &mut self.channels[idx];
            let delay = self.options.rejoin.delay(slot.rejoin_attempts);
            slot.rejoin_attempts = slot.rejoin_attempts.saturating_add(1);
            slot.state = JoinState::Waiting {
                at: Instant::now() + delay,
            };
            slot.presence_synced = false;
            slot.buffered_diffs.clear();
        } else {
            let slot = self.channels.remove(idx);
            self.release_pending(Some(id), &Release::Fail(RealtimeError::NotJoined));
            slot.fail(RealtimeError::JoinRefused { reason });
        }
    }

    async fn first_join_timed_out(&mut self, idx: usize) {
        let slot = self.channels.remove(idx);
        self.release_pending(Some(slot.shared.id), &Release::Fail(RealtimeError::Timeout));
        slot.shared.emit(ChannelEvent::Error {
            reason: "the join timed out".into(),
        });
        // The server may still join later; leaving keeps it from sending to a forgotten channel.
        if let Some(join_ref) = slot.current_join_ref().map(str::to_string) {
            self.send_leave(slot.shared.topic.clone(), join_ref).await;
        }
        slot.fail(RealtimeError::Timeout);
    }

    async fn rejoin_timed_out(&mut self, idx: usize) {
        let Some(join_ref) = self.channels[idx].current_join_ref().map(str::to_string) else {
            return;
        };
        self.pending.retain(|p| p.r#ref != join_ref);
        let topic = self.channels[idx].shared.topic.clone();
        self.channel_failed(idx, "the rejoin timed out".into());
        self.send_leave(topic, join_ref).await;
    }

    /// Answers or re-queues the pushes of one channel (or of all, for `None`).
    fn release_pending(&mut self, channel: Option<u64>, release: &Release) {
        let mut i = 0;
        while i < self.pending.len() {
            if channel.is_some_and(|c| c != self.pending[i].channel) {
                i += 1;
                continue;
            }
            let pending = self.pending.swap_remove(i);
            match pending.kind {
                PendingKind::Join => {}
                // Without the socket or the channel, the server has dropped them already.
                PendingKind::Leave(reply) | PendingKind::Untrack(reply) => {
                    let _ = reply.send(Ok(()));
                }
                PendingKind::Push(reply) => {
                    let _ = reply.send(Err(match release {
                        Release::Retry(reason) => RealtimeError::Transport(reason.clone()),
                        Release::Fail(error) => error.clone(),
                    }));
                }
                PendingKind::Track(waiters) => match (release, self.slot_index(pending.channel)) {
                    (Release::Retry(_), Some(idx)) => {
                        self.channels[idx].track_waiters.extend(waiters);
                    }
                    (Release::Fail(error), _) => answer(waiters, Err(error.clone())),
                    (Release::Retry(_), None) => answer(waiters, Err(RealtimeError::NotJoined)),
                },
            }
        }
    }

    // --- commands ---------------------------------------------------------------------------

    async fn on_command(&mut self, command: Command) {
        match command {
            Command::Subscribe { channel, reply } => self.subscribe(channel, reply),
            Command::Track {
                channel,
                payload: Some(payload),
                reply,
            } => self.track(channel, payload, reply).await,
            Command::Track {
                channel,
                payload: None,
                reply,
            } => self.untrack(channel, reply).await,
            Command::Broadcast {
                channel,
                event,
                payload,
                reply,
            } => self.broadcast(channel, event, payload, reply).await,
            Command::Leave { channel, reply } => self.leave(channel, reply).await,
            Command::SetToken(token) => self.set_token(token).await,
            // Handled by `run`, which owns the task's end.
            Command::Disconnect { reply } => {
                let _ = reply.send(());
            }
        }
    }

    fn subscribe(&mut self, channel: Arc<ChannelShared>, reply: JoinWaiter) {
        if let Some(idx) = self.slot_index(channel.id) {
            let slot = &mut self.channels[idx];
            match &slot.last_reply {
                // Joined once: the channel is subscribed, rejoining by itself when needed.
                Some(last) if slot.ever_joined => {
                    let _ = reply.send(Ok(last.clone()));
                }
                _ => slot.join_waiters.push(reply),
            }
            return;
        }
        if self
            .channels
            .iter()
            .any(|s| s.shared.topic == channel.topic)
        {
            let _ = reply.send(Err(RealtimeError::TopicInUse(channel.topic.clone())));
            return;
        }
        let now = Instant::now();
        self.channels.push(Slot {
            shared: channel,
            state: JoinState::Waiting { at: now },
            ever_joined: false,
            join_waiters: vec![reply],
            subscribe_deadline: Some(now + self.options.join_timeout),
            last_reply: None,
            tracked: None,
            track_waiters: Vec::new(),
            presence_synced: false,
            buffered_diffs: Vec::new(),
            rejoin_attempts: 0,
            close_reason: None,
        });
    }

    async fn track(&mut self, channel: u64, payload: Value, reply: Reply) {
        let Some(idx) = self.slot_index(channel) else {
            let _ = reply.send(Err(RealtimeError::NotJoined));
            return;
        };
        let waiter = Waiter {
            reply,
            deadline: Instant::now() + self.options.push_timeout,
        };
        let slot = &mut self.channels[idx];
        slot.tracked = Some(payload.clone());
        if slot.joined_ref().is_some() {
            self.push_track(idx, payload, vec![waiter]).await;
        } else {
            slot.track_waiters.push(waiter);
        }
    }

    async fn push_track(&mut self, idx: usize, payload: Value, waiters: Vec<Waiter>) {
        let r = self.make_ref();
        let slot = &mut self.channels[idx];
        let Some(join_ref) = slot.joined_ref() else {
            slot.track_waiters.extend(waiters);
            return;
        };
        let frame = Frame::new(
            slot.shared.topic.clone(),
            "presence",
            json!({"type": "presence", "event": "track", "payload": payload}),
        )
        .with_refs(Some(join_ref), Some(&r));
        self.pending.push(Pending {
            r#ref: r,
            channel: slot.shared.id,
            deadline: Instant::now() + self.options.push_timeout,
            kind: PendingKind::Track(waiters),
        });
        self.send_frame(&frame).await;
    }

    async fn untrack(&mut self, channel: u64, reply: Reply) {
        let Some(idx) = self.slot_index(channel) else {
            let _ = reply.send(Err(RealtimeError::NotJoined));
            return;
        };
        let r = self.make_ref();
        let slot = &mut self.channels[idx];
        slot.tracked = None;
        let Some(join_ref) = slot.joined_ref() else {
            // Not joined on the server, so nothing is tracked there, and nothing will be.
            let _ = reply.send(Ok(()));
            return;
        };
        let frame = Frame::new(
            slot.shared.topic.clone(),
            "presence",
            json!({"type": "presence", "event": "untrack"}),
        )
        .with_refs(Some(join_ref), Some(&r));
        self.pending.push(Pending {
            r#ref: r,
            channel,
            deadline: Instant::now() + self.options.push_timeout,
            kind: PendingKind::Untrack(reply),
        });
        self.send_frame(&frame).await;
    }

    async fn broadcast(&mut self, channel: u64, event: String, payload: Value, reply: Reply) {
        let Some(idx) = self.slot_index(channel) else {
            let _ = reply.send(Err(RealtimeError::NotJoined));
            return;
        };
        let r = self.make_ref();
        let slot = &self.channels[idx];
        let Some(join_ref) = slot.joined_ref() else {
            let _ = reply.send(Err(RealtimeError::NotJoined));
            return;
        };
        let frame = Frame::new(
            slot.shared.topic.clone(),
            "broadcast",
            json!({"type": "broadcast", "event": event, "payload": payload}),
        )
        .with_refs(Some(join_ref), Some(&r));
        if slot.shared.options.broadcast_ack {
            self.pending.push(Pending {
                r#ref: r,
                channel,
                deadline: Instant::now() + self.options.push_timeout,
                kind: PendingKind::Push(reply),
            });
            self.send_frame(&frame).await;
        } else {
            let result = match self.send_frame(&frame).await {
                true => Ok(()),
                false => Err(RealtimeError::Transport("the connection was lost".into())),
            };
            let _ = reply.send(result);
        }
    }

    async fn leave(&mut self, channel: u64, reply: Reply) {
        let Some(idx) = self.slot_index(channel) else {
            let _ = reply.send(Ok(()));
            return;
        };
        let slot = self.channels.remove(idx);
        self.release_pending(Some(channel), &Release::Fail(RealtimeError::Closed));
        slot.shared.emit(ChannelEvent::Closed {
            reason: "left".into(),
        });
        let join_ref = slot.current_join_ref().map(str::to_string);
        let topic = slot.shared.topic.clone();
        slot.fail(RealtimeError::Closed);
        match join_ref {
            Some(join_ref) if self.socket.is_some() => {
                let r = self.send_leave(topic, join_ref).await;
                if self.socket.is_some() {
                    self.pending.push(Pending {
                        r#ref: r,
                        channel,
                        deadline: Instant::now() + self.options.push_timeout,
                        kind: PendingKind::Leave(reply),
                    });
                } else {
                    let _ = reply.send(Ok(()));
                }
            }
            _ => {
                let _ = reply.send(Ok(()));
            }
        }
    }

    async fn set_token(&mut self, token: String) {
        self.token = token;
        let joined: Vec<(String, String)> = self
            .channels
            .iter()
            .filter_map(|s| Some((s.shared.topic.clone(), s.joined_ref()?.to_string())))
            .collect();
        for (topic, join_ref) in joined {
            // The server never answers `access_token`, so nothing waits for a reply.
            let r = self.make_ref();
            let frame = Frame::new(topic, "access_token", json!({"access_token": self.token}))
                .with_refs(Some(&join_ref), Some(&r));
            if !self.send_frame(&frame).await {
                break;
            }
        }
    }

    // --- server messages --------------------------------------------------------------------

    async fn on_message(&mut self, message: Option<Result<Message, tungstenite::Error>>) {
        let message = match message {
            None => return self.lose_socket("the server closed the connection"),
            Some(Err(e)) => return self.lose_socket(&e.to_string()),
            Some(Ok(message)) => message,
        };
        match message {
            Message::Text(text) => {
                // The server is talking: the next loss starts the backoff afresh.
                self.reconnect_attempts = 0;
                match Frame::decode(Vsn::V2, text.as_str()) {
                    Ok(frame) => self.on_frame(frame).await,
                    Err(error) => debug!(%error, "ignoring a malformed realtime frame"),
                }
            }
            Message::Binary(bytes) => {
                self.reconnect_attempts = 0;
                match UserBroadcast::decode_broadcast(&bytes) {
                    Ok(broadcast) => self.on_user_broadcast(broadcast),
                    Err(error) => debug!(%error, "ignoring a binary frame"),
                }
            }
            Message::Close(frame) => {
                let reason = frame.map_or_else(String::new, |f| format!("{} {}", f.code, f.reason));
                self.lose_socket(&format!("the server closed the connection {reason}"));
            }
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
        }
    }

    async fn on_frame(&mut self, frame: Frame) {
        if frame.event == "phx_reply" {
            if frame.topic == PHOENIX_TOPIC
                && frame.r#ref.is_some()
                && frame.r#ref == self.heartbeat_ref
            {
                self.heartbeat_ref = None;
            } else {
                self.on_reply(frame).await;
            }
            return;
        }
        let Some(idx) = self.live_slot(&frame.topic, frame.join_ref.as_deref()) else {
            debug!(
                topic = frame.topic,
                event = frame.event,
                "dropping a message for no live channel"
            );
            return;
        };
        let Frame {
            event, mut payload, ..
        } = frame;
        let slot = &mut self.channels[idx];
        match event.as_str() {
            "phx_close" => {
                let slot = self.channels.remove(idx);
                self.release_pending(Some(slot.shared.id), &Release::Fail(RealtimeError::Closed));
                let reason = slot
                    .close_reason
                    .clone()
                    .unwrap_or_else(|| "the server closed the channel".into());
                debug!(
                    topic = slot.shared.topic,
                    reason, "channel closed by the server"
                );
                slot.shared.emit(ChannelEvent::Closed { reason });
                slot.fail(RealtimeError::Closed);
            }
            "phx_error" => self.channel_failed(idx, "the server reported a channel error".into()),
            "presence_state" => {
                {
                    let mut presence = slot.shared.presence();
                    presence.sync_state(&payload);
                    for diff in slot.buffered_diffs.drain(..) {
                        presence.sync_diff(&diff);
                    }
                }
                slot.presence_synced = true;
                slot.shared.emit(ChannelEvent::PresenceSync);
            }
            "presence_diff" => {
                if slot.presence_synced {
                    slot.shared.presence().sync_diff(&payload);
                    slot.shared.emit(ChannelEvent::PresenceSync);
                } else {
                    if slot.buffered_diffs.len() >= MAX_BUFFERED_DIFFS {
                        slot.buffered_diffs.remove(0);
                    }
                    slot.buffered_diffs.push(payload);
                }
            }
            "broadcast" => {
                if let Some(event) = payload.get("event").and_then(Value::as_str) {
                    let event = event.to_string();
                    let payload = payload.get_mut("payload").map_or(Value::Null, Value::take);
                    slot.shared.emit(ChannelEvent::Broadcast { event, payload });
                }
            }
            "postgres_changes" => match postgres_change(&mut payload) {
                Some(change) => slot
                    .shared
                    .emit(ChannelEvent::PostgresChange(Box::new(change))),
                None => debug!(
                    topic = slot.shared.topic,
                    "ignoring a malformed postgres change"
                ),
            },
            "system" => {
                let text = |key: &str| match payload.get(key) {
                    Some(Value::String(s)) => s.clone(),
                    None | Some(Value::Null) => String::new(),
                    Some(other) => other.to_string(),
                };
                let (status, message, extension) =
                    (text("status"), text("message"), text("extension"));
                if status == "error" {
                    slot.close_reason = Some(message.clone());
                }
                slot.shared.emit(ChannelEvent::System {
                    status,
                    message,
                    extension,
                });
            }
            other => debug!(
                topic = slot.shared.topic,
                event = other,
                "ignoring a channel event"
            ),
        }
    }

    async fn on_reply(&mut self, frame: Frame) {
        let Some(r) = frame.r#ref.as_deref() else {
            return;
        };
        let Some(pos) = self.pending.iter().position(|p| p.r#ref == r) else {
            return;
        };
        let pending = self.pending.swap_remove(pos);
        let mut payload = frame.payload;
        let ok = payload.get("status").and_then(Value::as_str) == Some("ok");
        let response = payload.get_mut("response").map_or(Value::Null, Value::take);
        let refused = |response: &Value| RealtimeError::Refused {
            reason: reason_of(response),
        };
        match pending.kind {
            PendingKind::Join => {
                let Some(idx) = self.slot_index(pending.channel) else {
                    return;
                };
                if self.channels[idx].current_join_ref() != Some(pending.r#ref.as_str()) {
                    return;
                }
                if ok {
                    self.on_joined(idx, response).await;
                } else {
                    self.channel_failed(idx, reason_of(&response));
                }
            }
            PendingKind::Leave(reply) | PendingKind::Untrack(reply) | PendingKind::Push(reply) => {
                let _ = reply.send(if ok { Ok(()) } else { Err(refused(&response)) });
            }
            PendingKind::Track(waiters) => {
                answer(waiters, if ok { Ok(()) } else { Err(refused(&response)) });
            }
        }
    }

    fn on_user_broadcast(&mut self, broadcast: UserBroadcast) {
        let Some(idx) = self.live_slot(&broadcast.topic, None) else {
            return;
        };
        match broadcast.payload {
            BroadcastPayload::Json(payload) => {
                self.channels[idx].shared.emit(ChannelEvent::Broadcast {
                    event: broadcast.event,
                    payload,
                })
            }
            // Wrenchline never broadcasts raw bytes; realtime-js would hand them over as an
            // ArrayBuffer, which has no use here.
            BroadcastPayload::Binary(_) => {
                debug!(
                    topic = broadcast.topic,
                    "ignoring a binary broadcast payload"
                )
            }
        }
    }
}

/// The text of an error reply: Supabase's `{reason}`, else the whole response.
fn reason_of(response: &Value) -> String {
    match response.get("reason") {
        Some(Value::String(reason)) => reason.clone(),
        _ if response.is_null() || response.as_object().is_some_and(|o| o.is_empty()) => {
            "error".into()
        }
        _ => response.to_string(),
    }
}

/// Reads `{ids, data: {schema, table, commit_timestamp, type, columns, record, old_record}}`.
fn postgres_change(payload: &mut Value) -> Option<PostgresChange> {
    serde_json::from_value::<PostgresChangesMessage>(payload.take())
        .ok()
        .map(|changes| changes.data)
}

async fn read(socket: &mut Option<Box<Socket>>) -> Option<Result<Message, tungstenite::Error>> {
    match socket {
        Some(socket) => socket.next().await,
        None => pending().await,
    }
}

async fn finish(connecting: &mut Option<Connecting>) -> Result<Box<Socket>, String> {
    match connecting {
        Some(attempt) => attempt.as_mut().await,
        None => pending().await,
    }
}

async fn sleep(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => sleep_until(deadline).await,
        None => pending().await,
    }
}
