//! Soak: many connections held for a long time in the mix production sees, with churn, while the
//! server's resident memory, open file descriptors and threads are sampled from /proc. The
//! verdict asks for zero errors and for memory and descriptors that stay flat once warmed up.
//!
//! The mix: a share of the connections are mechanics' desktop apps on the `requests` feed; the
//! rest are customer/mechanic pairs in sessions, each on `chat:session-{id}` (row changes of the
//! session and its messages) and `chat:session-{id}:presence` (tracked), posting messages over
//! HTTP as the product does. Every second a share of the connections drops (half cleanly, half by
//! a reset) and comes back: rejoins, tracks again and fetches the history it missed. Sessions end
//! and new ones are filed, offered, accepted and joined all the time; the mechanic moves to the
//! next session on the same connection (leave, join) and the customer arrives on a new one.
//!
//! Everything that goes wrong is an error: a failed connect, a refused or unanswered join, track,
//! leave or heartbeat, a connection the server closes, an HTTP answer that is not 2xx, a message
//! the other participant has neither received nor found in the history within the timeout, a
//! session that does not go live once both participants are tracked, and an offered request that
//! does not reach a mechanic whose feed was joined throughout.

use std::collections::{BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{sleep, sleep_until, timeout, Instant};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use wrenchline_client::ApiClient;
use wrenchline_protocol::realtime::{Frame, Vsn};

use crate::fixture::{self, Http, Mechanic};
use crate::procs::{self, Db, Programs, Server, System};
use crate::stats::{now_micros, Counter, Latencies, LatencySummary};
use crate::wire::{self, Conn, Proto, Ws};

/// How often a connection heartbeats (realtime-js' default).
const HEARTBEAT: Duration = Duration::from_secs(25);
/// Opening handshakes in flight while the fleet first comes up.
const OPENING: usize = 256;
/// HTTP posts in flight before the generator counts itself behind.
const POSTS_IN_FLIGHT: usize = 256;
/// Session replacements (end, file, offer, accept, move) in flight.
const REPLACING: usize = 16;
/// Offered request ids a feed connection remembers, for the fan-out check.
const FEED_MEMORY: usize = 512;

#[derive(clap::Args, Debug, Clone)]
pub struct SoakArgs {
    #[arg(long)]
    pub server_bin: PathBuf,
    /// Connections held (feed connections plus two per session).
    #[arg(long, default_value_t = 10_000)]
    pub connections: usize,
    /// How long the steady phase runs after the fleet is up: `90s`, `10m`, `1h` or seconds.
    #[arg(long, default_value = "30m", value_parser = parse_duration)]
    pub duration: Duration,
    /// Share of the connections that drop and reconnect every second.
    #[arg(long, default_value_t = 0.005)]
    pub churn: f64,
    /// Sessions ended and replaced by new ones every second.
    #[arg(long, default_value_t = 1.0)]
    pub session_churn: f64,
    /// Mean time between two messages of one session.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub message_interval: Duration,
    /// Share of the connections that are mechanics on the `requests` feed.
    #[arg(long, default_value_t = 0.1)]
    pub feed_share: f64,
    /// Mechanic accounts (each signs in once; its token serves all its connections).
    #[arg(long, default_value_t = 100)]
    pub mechanics: usize,
    /// Time between two samples of the server's memory and descriptors.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub sample: Duration,
    /// Deadline for every reply, delivery and live start.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Share of the run, from its start, that warms up and is left out of the memory verdict.
    #[arg(long, default_value_t = 0.2)]
    pub warmup_share: f64,
    /// Largest RSS slope (least squares after warm-up) that still counts as flat, MiB per 10 min.
    #[arg(long, default_value_t = 1.0)]
    pub max_rss_slope: f64,
    /// Largest growth of the RSS mean from the second to the last quarter, percent.
    #[arg(long, default_value_t = 3.0)]
    pub max_rss_drift: f64,
    /// Largest change of the descriptors not explained by connections held, percent of those
    /// after warm-up.
    #[arg(long, default_value_t = 1.0)]
    pub max_fd_drift: f64,
    /// Where the samples and the verdict go (default bench/results/soak-<UTC time>.json).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Keep the working directory (database, server log) also when the verdict passes.
    #[arg(long)]
    pub keep: bool,
}

/// `90s`, `10m`, `1h`, `1h30m` or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0)
            .then(|| Duration::from_secs_f64(secs))
            .ok_or_else(|| format!("{text:?} is not a duration"));
    }
    let mut total = 0.0;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let unit = match c {
            'h' => 3600.0,
            'm' => 60.0,
            's' => 1.0,
            _ => return Err(format!("{text:?}: unknown unit {c:?} (use h, m or s)")),
        };
        let value: f64 = number
            .parse()
            .map_err(|_| format!("{text:?}: a number must come before {c:?}"))?;
        total += value * unit;
        number.clear();
    }
    if !number.is_empty() || total <= 0.0 {
        return Err(format!(
            "{text:?} is not a duration (e.g. 90s, 10m, 1h30m or seconds)"
        ));
    }
    Ok(Duration::from_secs_f64(total))
}

/// What can go wrong, each counted on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Connect,
    Join,
    ReplyTimeout,
    UnexpectedClose,
    ChannelError,
    Http,
    NotDelivered,
    NotLive,
    FeedMissed,
}

impl Kind {
    const ALL: [Kind; 9] = [
        Kind::Connect,
        Kind::Join,
        Kind::ReplyTimeout,
        Kind::UnexpectedClose,
        Kind::ChannelError,
        Kind::Http,
        Kind::NotDelivered,
        Kind::NotLive,
        Kind::FeedMissed,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::Connect => "connect failed",
            Kind::Join => "join/track/leave refused",
            Kind::ReplyTimeout => "no reply within timeout",
            Kind::UnexpectedClose => "closed by the server",
            Kind::ChannelError => "channel error or close",
            Kind::Http => "HTTP error or non-2xx",
            Kind::NotDelivered => "message not delivered to the peer",
            Kind::NotLive => "session did not go live",
            Kind::FeedMissed => "offer missed by a feed",
        }
    }
}

#[derive(Debug)]
struct SeatError {
    kind: Kind,
    message: String,
}

fn fail(kind: Kind, message: impl Into<String>) -> SeatError {
    SeatError {
        kind,
        message: message.into(),
    }
}

#[derive(Default)]
struct Errors {
    counts: [Counter; 9],
    /// The first few of each kind, with the time they happened.
    examples: Mutex<Vec<(f64, &'static str, String)>>,
}

/// Counters read by every sample.
#[derive(Default)]
struct Tally {
    connects: Counter,
    reconnects: Counter,
    session_moves: Counter,
    sessions_created: Counter,
    sessions_ended: Counter,
    went_live: Counter,
    posted: Counter,
    delivered: Counter,
    caught_up: Counter,
    posts_skipped: Counter,
    offers: Counter,
    offers_seen: Counter,
    heartbeats: Counter,
}

/// Which participant: an index into per-session pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Customer = 0,
    Mechanic = 1,
}

impl Side {
    fn peer(self) -> Side {
        match self {
            Side::Customer => Side::Mechanic,
            Side::Mechanic => Side::Customer,
        }
    }

    fn role(self) -> &'static str {
        match self {
            Side::Customer => "customer",
            Side::Mechanic => "mechanic",
        }
    }
}

/// The message seqs one participant has: every seq up to `last`, and some after it.
#[derive(Debug, Default)]
struct Seen {
    last: i64,
    ahead: BTreeSet<i64>,
}

impl Seen {
    /// Notes `seq`; true if it was new.
    fn note(&mut self, seq: i64) -> bool {
        if seq <= self.last || !self.ahead.insert(seq) {
            return false;
        }
        while self.ahead.remove(&(self.last + 1)) {
            self.last += 1;
        }
        true
    }
}

struct Outgoing {
    seq: i64,
    from: Side,
    posted_at: Instant,
}

#[derive(Default)]
struct SessionState {
    seen: [Seen; 2],
    outstanding: Vec<Outgoing>,
    tracked: [bool; 2],
    both_tracked_at: Option<Instant>,
    live: bool,
    live_checked: bool,
    ending: bool,
    /// Posts sent and not yet answered.
    in_flight: usize,
    next_sender: usize,
}

/// One session and its two participants.
struct SessionSlot {
    id: Uuid,
    customer_id: Uuid,
    customer_token: String,
    mechanic: usize,
    state: Mutex<SessionState>,
}

impl SessionSlot {
    fn chat_topic(&self) -> String {
        format!("realtime:chat:session-{}", self.id)
    }

    fn presence_topic(&self) -> String {
        format!("realtime:chat:session-{}:presence", self.id)
    }
}

/// A mechanic's feed connection, as the fan-out check sees it.
#[derive(Default)]
struct FeedSeat {
    joined_since: Option<Instant>,
    recent: VecDeque<Uuid>,
}

#[derive(Clone)]
enum Assignment {
    Feed {
        mechanic: usize,
        seat: Arc<Mutex<FeedSeat>>,
    },
    Session {
        slot: Arc<SessionSlot>,
        side: Side,
    },
}

enum Command {
    Reconnect { graceful: bool },
    Move(Arc<SessionSlot>),
}

/// What every task of the run shares.
struct Shared {
    addr: SocketAddr,
    /// HTTP clients, replaced once the fleet is up so that the connections pooled while it came
    /// up do not linger into the steady phase and expire in the middle of it.
    clients: Mutex<(ApiClient, Http)>,
    mechanics: Vec<Mechanic>,
    timeout: Duration,
    /// Ends the load (churn and posts) at the end of the steady phase.
    stop: CancellationToken,
    /// Closes the connections, once the last messages had their time to arrive.
    close: CancellationToken,
    started: Instant,
    errors: Errors,
    tally: Tally,
    held: AtomicI64,
    latency: Latencies,
    sessions: Vec<Mutex<Arc<SessionSlot>>>,
    feeds: Vec<Arc<Mutex<FeedSeat>>>,
    /// Offered requests waiting for the fan-out check: id and when the intake was sent.
    offers: Mutex<Vec<(Uuid, Instant)>>,
    next_customer: AtomicUsize,
}

impl Shared {
    fn error(&self, kind: Kind, message: &str) {
        let i = Kind::ALL.iter().position(|&k| k == kind).expect("listed");
        let n = self.errors.counts[i].get();
        self.errors.counts[i].add(1);
        if n < 5 {
            let at = self.started.elapsed().as_secs_f64();
            eprintln!("  error at {at:.0} s: {}: {message}", kind.name());
            self.errors.examples.lock().expect("examples").push((
                at,
                kind.name(),
                message.to_string(),
            ));
        }
    }

    fn error_total(&self) -> u64 {
        self.errors.counts.iter().map(Counter::get).sum()
    }

    fn api(&self) -> ApiClient {
        self.clients.lock().expect("clients").0.clone()
    }

    fn http(&self) -> Http {
        self.clients.lock().expect("clients").1.clone()
    }

    fn mechanic_token(&self, i: usize) -> &str {
        &self.mechanics[i].token
    }
}

fn random() -> u64 {
    Uuid::new_v4().as_u128() as u64
}

fn session_changes(id: Uuid) -> Value {
    json!([
        {"event": "INSERT", "schema": "public", "table": "messages", "filter": format!("session_id=eq.{id}")},
        {"event": "UPDATE", "schema": "public", "table": "sessions", "filter": format!("id=eq.{id}")},
    ])
}

fn join_payload(token: &str, presence: bool, changes: Value) -> Value {
    json!({
        "config": {
            "broadcast": {"self": false, "ack": false},
            "presence": {"key": "", "enabled": presence},
            "postgres_changes": changes,
            "private": false,
        },
        "access_token": token,
    })
}

/// What a joined topic is for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum TopicUse {
    Feed,
    Chat,
    Presence,
}

/// One open connection of a seat.
struct Link {
    ws: Ws,
    next_ref: u64,
    topics: Vec<(String, String, TopicUse)>,
    heartbeat: Option<(String, Instant)>,
}

impl Link {
    fn make_ref(&mut self) -> String {
        self.next_ref += 1;
        self.next_ref.to_string()
    }

    async fn send(&mut self, frame: Frame) -> Result<(), SeatError> {
        self.ws
            .send(WsMessage::text(frame.encode(Vsn::V2)))
            .await
            .map_err(|e| fail(Kind::UnexpectedClose, format!("send failed: {e}")))
    }

    /// Sends a push and waits for its reply, handling whatever else arrives meanwhile.
    async fn call(
        &mut self,
        shared: &Shared,
        assignment: &Assignment,
        topic: &str,
        join_ref: Option<&str>,
        event: &str,
        payload: Value,
    ) -> Result<String, SeatError> {
        let r = self.make_ref();
        let join_ref = join_ref.unwrap_or(&r).to_string();
        self.send(Frame::new(topic, event, payload).with_refs(Some(&join_ref), Some(&r)))
            .await?;
        let deadline = Instant::now() + shared.timeout;
        loop {
            let frame = match timeout(deadline - Instant::now(), self.next_frame()).await {
                Err(_) => {
                    return Err(fail(
                        Kind::ReplyTimeout,
                        format!("{event} on {topic}: no reply in {:?}", shared.timeout),
                    ))
                }
                Ok(frame) => frame?,
            };
            if frame.event == "phx_reply" && frame.r#ref.as_deref() == Some(r.as_str()) {
                return match frame.payload["status"].as_str() {
                    Some("ok") => Ok(join_ref),
                    _ => Err(fail(
                        Kind::Join,
                        format!("{event} on {topic} refused: {}", frame.payload),
                    )),
                };
            }
            self.handle(shared, assignment, frame)?;
        }
    }

    async fn next_frame(&mut self) -> Result<Frame, SeatError> {
        loop {
            match self.ws.next().await {
                Some(Ok(WsMessage::Text(text))) => match Frame::decode(Vsn::V2, text.as_str()) {
                    Ok(frame) => return Ok(frame),
                    Err(e) => {
                        return Err(fail(Kind::ChannelError, format!("undecodable frame: {e}")))
                    }
                },
                Some(Ok(WsMessage::Close(frame))) => {
                    return Err(fail(
                        Kind::UnexpectedClose,
                        format!("the server closed the connection: {frame:?}"),
                    ))
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => {
                    return Err(fail(Kind::UnexpectedClose, format!("socket error: {e}")))
                }
                None => {
                    return Err(fail(
                        Kind::UnexpectedClose,
                        "the server closed the connection",
                    ))
                }
            }
        }
    }

    /// Takes in one frame that is not the reply being waited for.
    fn handle(
        &mut self,
        shared: &Shared,
        assignment: &Assignment,
        frame: Frame,
    ) -> Result<(), SeatError> {
        if frame.topic == "phoenix" {
            if frame.event == "phx_reply"
                && self.heartbeat.as_ref().map(|(r, _)| r.as_str()) == frame.r#ref.as_deref()
            {
                self.heartbeat = None;
                shared.tally.heartbeats.add(1);
            }
            return Ok(());
        }
        let Some(&(_, _, usage)) = self.topics.iter().find(|(t, _, _)| *t == frame.topic) else {
            // A late frame of a topic this connection has left.
            return Ok(());
        };
        match frame.event.as_str() {
            "phx_error" | "phx_close" => Err(fail(
                Kind::ChannelError,
                format!("{} on {}: {}", frame.event, frame.topic, frame.payload),
            )),
            "system" if frame.payload["status"].as_str() == Some("error") => Err(fail(
                Kind::ChannelError,
                format!("system error on {}: {}", frame.topic, frame.payload),
            )),
            "postgres_changes" => {
                let data = &frame.payload["data"];
                let record = &data["record"];
                match (usage, assignment) {
                    (TopicUse::Feed, Assignment::Feed { seat, .. }) => {
                        let offered = record["status"].as_str() == Some("pending")
                            && !record["waiver_signed_at"].is_null();
                        if let (true, Some(id)) = (
                            offered,
                            record["id"].as_str().and_then(|s| s.parse::<Uuid>().ok()),
                        ) {
                            let mut seat = seat.lock().expect("feed seat");
                            seat.recent.push_back(id);
                            if seat.recent.len() > FEED_MEMORY {
                                seat.recent.pop_front();
                            }
                        }
                    }
                    (TopicUse::Chat, Assignment::Session { slot, side }) => {
                        if data["table"].as_str() == Some("messages") {
                            if let Some(seq) = record["seq"].as_i64() {
                                let new = slot.state.lock().expect("session").seen[*side as usize]
                                    .note(seq);
                                let from_peer =
                                    record["sender_role"].as_str() == Some(side.peer().role());
                                if let (true, true, Some(ts)) =
                                    (new, from_peer, record["body"].as_str().and_then(parse_ts))
                                {
                                    shared
                                        .latency
                                        .record(seq as usize, now_micros().saturating_sub(ts));
                                }
                            }
                        } else if record["status"].as_str() == Some("live") {
                            let mut state = slot.state.lock().expect("session");
                            if !state.live {
                                state.live = true;
                                shared.tally.went_live.add(1);
                            }
                        }
                    }
                    _ => {}
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Joins what the assignment needs, tracks presence, and fetches missed history.
    async fn enter(&mut self, shared: &Shared, assignment: &Assignment) -> Result<(), SeatError> {
        match assignment {
            Assignment::Feed { mechanic, seat } => {
                let topic = "realtime:requests".to_string();
                let changes = json!([{"event": "*", "schema": "public", "table": "sessions", "filter": "status=eq.pending"}]);
                let payload = join_payload(shared.mechanic_token(*mechanic), false, changes);
                let join_ref = self
                    .call(shared, assignment, &topic, None, "phx_join", payload)
                    .await?;
                self.topics.push((topic, join_ref, TopicUse::Feed));
                seat.lock().expect("feed seat").joined_since = Some(Instant::now());
            }
            Assignment::Session { slot, side } => {
                let (user, token) = match side {
                    Side::Customer => (slot.customer_id, slot.customer_token.as_str()),
                    Side::Mechanic => (
                        shared.mechanics[slot.mechanic].id,
                        shared.mechanic_token(slot.mechanic),
                    ),
                };
                let chat = slot.chat_topic();
                let payload = join_payload(token, false, session_changes(slot.id));
                let join_ref = self
                    .call(shared, assignment, &chat, None, "phx_join", payload)
                    .await?;
                self.topics.push((chat, join_ref, TopicUse::Chat));
                let presence = slot.presence_topic();
                let payload = join_payload(token, true, json!([]));
                let join_ref = self
                    .call(shared, assignment, &presence, None, "phx_join", payload)
                    .await?;
                self.topics
                    .push((presence.clone(), join_ref.clone(), TopicUse::Presence));
                let track = json!({"type": "presence", "event": "track", "payload": {
                    "user_id": user, "role": side.role(), "online_at": now_micros() / 1000,
                }});
                self.call(
                    shared,
                    assignment,
                    &presence,
                    Some(&join_ref),
                    "presence",
                    track,
                )
                .await?;
                let after = {
                    let mut state = slot.state.lock().expect("session");
                    state.tracked[*side as usize] = true;
                    if state.tracked == [true, true] && state.both_tracked_at.is_none() {
                        state.both_tracked_at = Some(Instant::now());
                    }
                    state.seen[*side as usize].last
                };
                // What was posted while this participant was away, as the chat page fetches it.
                let api = shared.api().with_token(token);
                let missed = timeout(shared.timeout, api.messages(slot.id, after))
                    .await
                    .map_err(|_| fail(Kind::ReplyTimeout, "history: no answer within timeout"))?
                    .map_err(|e| fail(Kind::Http, format!("history: {e}")))?;
                let mut state = slot.state.lock().expect("session");
                for m in missed {
                    if state.seen[*side as usize].note(m.seq) {
                        shared.tally.caught_up.add(1);
                    }
                }
            }
        }
        Ok(())
    }

    /// Leaves every topic (the mechanic moving to the next session).
    async fn leave_all(
        &mut self,
        shared: &Shared,
        assignment: &Assignment,
    ) -> Result<(), SeatError> {
        let topics = std::mem::take(&mut self.topics);
        for (topic, join_ref, _) in topics {
            self.call(
                shared,
                assignment,
                &topic,
                Some(&join_ref),
                "phx_leave",
                json!({}),
            )
            .await?;
        }
        Ok(())
    }

    /// Closes with a close handshake, or drops the socket (a reset, as a lost network would).
    async fn close(mut self, graceful: bool) {
        if graceful && self.ws.close(None).await.is_ok() {
            let _ = timeout(Duration::from_secs(2), async {
                while let Some(Ok(_)) = self.ws.next().await {}
            })
            .await;
        }
    }
}

fn parse_ts(body: &str) -> Option<u64> {
    body.strip_prefix("ts=")?.split(' ').next()?.parse().ok()
}

/// The participant leaves: presence and the fan-out check stop counting on it.
fn mark_left(assignment: &Assignment) {
    match assignment {
        Assignment::Feed { seat, .. } => seat.lock().expect("feed seat").joined_since = None,
        Assignment::Session { slot, side } => {
            slot.state.lock().expect("session").tracked[*side as usize] = false
        }
    }
}

enum Exit {
    Stop,
    Reconnect { graceful: bool, counted: bool },
    Lost(SeatError),
}

/// One connection slot for the whole run: connects, enters, serves, and comes back after every
/// drop.
async fn seat(
    shared: Arc<Shared>,
    index: usize,
    mut assignment: Assignment,
    mut commands: mpsc::UnboundedReceiver<Command>,
    opening: Arc<Semaphore>,
) {
    let mut first = true;
    let mut pause = false;
    while !shared.close.is_cancelled() {
        if pause {
            tokio::select! {
                _ = shared.close.cancelled() => break,
                _ = sleep(Duration::from_secs(1)) => {}
            }
        }
        pause = true;
        // A move that arrived while away applies before connecting.
        while let Ok(command) = commands.try_recv() {
            if let Command::Move(slot) = command {
                assignment = moved(&shared, &assignment, slot);
            }
        }
        let permit = if first {
            Some(opening.clone().acquire_owned().await.expect("open"))
        } else {
            None
        };
        let conn = match Conn::connect(Proto::Phoenix, shared.addr, wire::source_for(index)).await {
            Ok(conn) => conn,
            Err(e) => {
                shared.error(Kind::Connect, &format!("{e:#}"));
                continue;
            }
        };
        let mut link = Link {
            ws: conn.ws,
            next_ref: 0,
            topics: Vec::new(),
            heartbeat: None,
        };
        if let Err(e) = link.enter(&shared, &assignment).await {
            shared.error(e.kind, &e.message);
            mark_left(&assignment);
            continue;
        }
        drop(permit);
        first = false;
        shared.tally.connects.add(1);
        shared.held.fetch_add(1, Ordering::Relaxed);
        let exit = serve(&shared, index, &mut link, &mut assignment, &mut commands).await;
        shared.held.fetch_sub(1, Ordering::Relaxed);
        mark_left(&assignment);
        match exit {
            Exit::Stop => {
                link.close(true).await;
                break;
            }
            Exit::Reconnect { graceful, counted } => {
                if counted {
                    shared.tally.reconnects.add(1);
                }
                link.close(graceful).await;
                pause = false;
            }
            Exit::Lost(e) => {
                shared.error(e.kind, &e.message);
                link.close(false).await;
            }
        }
    }
}

/// The assignment after a move to `slot`: the same side of the new session.
fn moved(shared: &Shared, current: &Assignment, slot: Arc<SessionSlot>) -> Assignment {
    shared.tally.session_moves.add(1);
    match current {
        Assignment::Session { side, .. } => Assignment::Session { slot, side: *side },
        Assignment::Feed { .. } => current.clone(),
    }
}

/// Serves an entered connection until it is told to go, the run stops, or it is lost.
async fn serve(
    shared: &Shared,
    index: usize,
    link: &mut Link,
    assignment: &mut Assignment,
    commands: &mut mpsc::UnboundedReceiver<Command>,
) -> Exit {
    let spread = HEARTBEAT.mul_f64((index as f64 * 0.618_033_988_749_895).fract());
    let beat = sleep_until(Instant::now() + spread);
    let overdue = sleep_until(Instant::now() + Duration::from_secs(86_400));
    tokio::pin!(beat, overdue);
    loop {
        tokio::select! {
            biased;
            _ = shared.close.cancelled() => return Exit::Stop,
            command = commands.recv() => match command {
                None => return Exit::Stop,
                Some(Command::Reconnect { graceful }) => {
                    return Exit::Reconnect { graceful, counted: true }
                }
                Some(Command::Move(slot)) => {
                    let next = moved(shared, assignment, slot);
                    match assignment {
                        // The desktop app stays connected and changes channels.
                        Assignment::Session { side: Side::Mechanic, .. } => {
                            if let Err(e) = link.leave_all(shared, assignment).await {
                                return Exit::Lost(e);
                            }
                            mark_left(assignment);
                            *assignment = next;
                            if let Err(e) = link.enter(shared, assignment).await {
                                return Exit::Lost(e);
                            }
                        }
                        // The customer opens the new session's page: a new connection.
                        _ => {
                            mark_left(assignment);
                            *assignment = next;
                            return Exit::Reconnect { graceful: true, counted: false };
                        }
                    }
                }
            },
            frame = link.next_frame() => {
                let handled = frame.and_then(|f| link.handle(shared, assignment, f));
                if let Err(e) = handled {
                    return Exit::Lost(e);
                }
            }
            _ = &mut beat => {
                let r = link.make_ref();
                let frame = Frame::new("phoenix", "heartbeat", json!({})).with_refs(None, Some(&r));
                if let Err(e) = link.send(frame).await {
                    return Exit::Lost(e);
                }
                if link.heartbeat.is_none() {
                    link.heartbeat = Some((r, Instant::now()));
                    overdue.as_mut().reset(Instant::now() + shared.timeout);
                }
                beat.as_mut().reset(Instant::now() + HEARTBEAT);
            }
            _ = &mut overdue => {
                if let Some((_, sent)) = &link.heartbeat {
                    return Exit::Lost(fail(
                        Kind::ReplyTimeout,
                        format!("heartbeat unanswered for {:.1} s", sent.elapsed().as_secs_f64()),
                    ));
                }
                overdue.as_mut().reset(Instant::now() + Duration::from_secs(86_400));
            }
        }
    }
}

/// A new session, filed by a new customer, offered and accepted by `mechanic`.
async fn new_session(shared: &Shared, mechanic: usize) -> Result<Arc<SessionSlot>, SeatError> {
    let n = shared.next_customer.fetch_add(1, Ordering::Relaxed);
    let filed = Instant::now();
    let (customer, id) = fixture::offered_request(&shared.http(), n)
        .await
        .map_err(|e| fail(Kind::Http, format!("intake, token or waiver: {e:#}")))?;
    shared.offers.lock().expect("offers").push((id, filed));
    shared.tally.offers.add(1);
    shared
        .api()
        .with_token(shared.mechanic_token(mechanic))
        .accept(id)
        .await
        .map_err(|e| fail(Kind::Http, format!("accept: {e}")))?;
    shared.tally.sessions_created.add(1);
    Ok(Arc::new(SessionSlot {
        id,
        customer_id: customer.id,
        customer_token: customer.token,
        mechanic,
        state: Mutex::new(SessionState::default()),
    }))
}

/// Ends session `k` (claimed by setting `ending`) once its messages are delivered, and moves
/// both participants to a new one.
async fn replace_session(shared: Arc<Shared>, k: usize, seats: Arc<Vec<SeatHandle>>) {
    let old = shared.sessions[k].lock().expect("sessions").clone();
    // Posts already under way are answered and delivered before the session ends.
    let drained = Instant::now() + 2 * shared.timeout;
    loop {
        let busy = {
            let state = old.state.lock().expect("session");
            state.in_flight > 0 || !state.outstanding.is_empty()
        };
        if !busy {
            break;
        }
        if Instant::now() > drained {
            let state = old.state.lock().expect("session");
            for m in &state.outstanding {
                shared.error(
                    Kind::NotDelivered,
                    &format!(
                        "session {} seq {} from the {} not at the {} before the session ended",
                        old.id,
                        m.seq,
                        m.from.role(),
                        m.from.peer().role()
                    ),
                );
            }
            break;
        }
        sleep(Duration::from_millis(100)).await;
    }
    let by_customer = random() % 2 == 0;
    let token = if by_customer {
        old.customer_token.as_str()
    } else {
        shared.mechanic_token(old.mechanic)
    };
    match timeout(shared.timeout, shared.api().with_token(token).end(old.id)).await {
        Ok(Ok(_)) => shared.tally.sessions_ended.add(1),
        Ok(Err(e)) => shared.error(Kind::Http, &format!("end: {e}")),
        Err(_) => shared.error(Kind::ReplyTimeout, "end: no answer within timeout"),
    }
    match new_session(&shared, old.mechanic).await {
        Ok(slot) => {
            *shared.sessions[k].lock().expect("sessions") = slot.clone();
            for seat in [&seats[2 * k], &seats[2 * k + 1]] {
                let _ = seat.commands.send(Command::Move(slot.clone()));
            }
        }
        Err(e) => {
            shared.error(e.kind, &e.message);
            old.state.lock().expect("session").ending = false;
        }
    }
}

struct SeatHandle {
    commands: mpsc::UnboundedSender<Command>,
}

/// Every second: drops a share of the connections and replaces some sessions.
async fn churn(shared: Arc<Shared>, seats: Arc<Vec<SeatHandle>>, args: SoakArgs) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut drops, mut ends) = (0.0, 0.0);
    let replacing = Arc::new(Semaphore::new(REPLACING));
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            _ = shared.stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        while tasks.try_join_next().is_some() {}
        drops += args.churn * seats.len() as f64;
        while drops >= 1.0 {
            drops -= 1.0;
            let i = (random() % seats.len() as u64) as usize;
            let graceful = random() % 2 == 0;
            let _ = seats[i].commands.send(Command::Reconnect { graceful });
        }
        ends += args.session_churn;
        while ends >= 1.0 && !shared.sessions.is_empty() {
            ends -= 1.0;
            let Ok(permit) = replacing.clone().try_acquire_owned() else {
                break;
            };
            let k = (random() % shared.sessions.len() as u64) as usize;
            let slot = shared.sessions[k].lock().expect("sessions").clone();
            {
                // Claimed here, so that no second replacement picks the same session.
                let mut state = slot.state.lock().expect("session");
                if state.ending {
                    continue;
                }
                state.ending = true;
            }
            let (shared, seats) = (shared.clone(), seats.clone());
            tasks.spawn(async move {
                replace_session(shared, k, seats).await;
                drop(permit);
            });
        }
    }
    while tasks.join_next().await.is_some() {}
}

/// Posts messages over HTTP, one session after another, at the mean interval per session.
async fn post_messages(shared: Arc<Shared>, interval: Duration) {
    let sessions = shared.sessions.len();
    if sessions == 0 {
        return;
    }
    let gap = interval.div_f64(sessions as f64);
    let gate = Arc::new(Semaphore::new(POSTS_IN_FLIGHT));
    let mut next = Instant::now();
    let mut posts = JoinSet::new();
    for k in (0..sessions).cycle() {
        tokio::select! {
            _ = shared.stop.cancelled() => break,
            _ = sleep_until(next) => {}
        }
        next += gap;
        if next + Duration::from_secs(1) < Instant::now() {
            next = Instant::now();
        }
        while posts.try_join_next().is_some() {}
        let slot = shared.sessions[k].lock().expect("sessions").clone();
        let from = {
            let mut state = slot.state.lock().expect("session");
            if state.ending {
                continue;
            }
            state.next_sender += 1;
            state.in_flight += 1;
            if state.next_sender % 2 == 0 {
                Side::Customer
            } else {
                Side::Mechanic
            }
        };
        let Ok(permit) = gate.clone().try_acquire_owned() else {
            shared.tally.posts_skipped.add(1);
            continue;
        };
        let shared = shared.clone();
        posts.spawn(async move {
            let token = match from {
                Side::Customer => slot.customer_token.clone(),
                Side::Mechanic => shared.mechanic_token(slot.mechanic).to_string(),
            };
            let api = shared.api().with_token(token);
            let client_id = format!("soak-{}", Uuid::new_v4());
            let body = format!("ts={} {}", now_micros(), crate::load::BODY);
            let posted_at = Instant::now();
            let posted =
                timeout(shared.timeout, api.post_message(slot.id, &client_id, &body)).await;
            let mut state = slot.state.lock().expect("session");
            state.in_flight -= 1;
            match posted {
                Ok(Ok(message)) => {
                    shared.tally.posted.add(1);
                    state.outstanding.push(Outgoing {
                        seq: message.seq,
                        from,
                        posted_at,
                    });
                }
                Ok(Err(e)) => shared.error(Kind::Http, &format!("post message: {e}")),
                Err(_) => {
                    shared.error(Kind::ReplyTimeout, "post message: no answer within timeout")
                }
            }
            drop(permit);
        });
    }
    posts.abort_all();
}

/// Once a second: messages the peer has by now, or has missed for too long; sessions that should
/// be live; offers every continuously joined feed should have.
async fn check(shared: Arc<Shared>, done: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let last = tokio::select! {
            _ = done.cancelled() => true,
            _ = tick.tick() => false,
        };
        let now = Instant::now();
        let t = shared.timeout;
        for k in 0..shared.sessions.len() {
            let slot = shared.sessions[k].lock().expect("sessions").clone();
            let mut verify_live = false;
            {
                let mut state = slot.state.lock().expect("session");
                let state = &mut *state;
                let (seen, outstanding) = (&state.seen, &mut state.outstanding);
                outstanding.retain(|m| {
                    let peer = m.from.peer() as usize;
                    if seen[peer].last >= m.seq {
                        shared.tally.delivered.add(1);
                        false
                    } else if now.duration_since(m.posted_at) > t || last {
                        shared.error(
                            Kind::NotDelivered,
                            &format!(
                                "session {} seq {} from the {} not at the {} after {:.1} s (it has up to {})",
                                slot.id,
                                m.seq,
                                m.from.role(),
                                m.from.peer().role(),
                                now.duration_since(m.posted_at).as_secs_f64(),
                                seen[peer].last
                            ),
                        );
                        false
                    } else {
                        true
                    }
                });
                if let Some(at) = state.both_tracked_at {
                    if !state.live && !state.live_checked && now.duration_since(at) > t {
                        state.live_checked = true;
                        verify_live = true;
                    }
                }
            }
            if verify_live {
                // Either participant may have been away when the change was published: ask.
                let api = shared.api().with_token(slot.customer_token.clone());
                let shared = shared.clone();
                tokio::spawn(async move {
                    match api.session(slot.id).await {
                        Ok(s) if s.status.as_str() == "live" || s.status.is_final() => {
                            let mut state = slot.state.lock().expect("session");
                            if !state.live {
                                state.live = true;
                                shared.tally.went_live.add(1);
                            }
                        }
                        Ok(s) => shared.error(
                            Kind::NotLive,
                            &format!(
                                "session {} is {} {:.0} s after both participants tracked",
                                slot.id,
                                s.status.as_str(),
                                t.as_secs_f64()
                            ),
                        ),
                        Err(e) => shared.error(Kind::Http, &format!("get session: {e}")),
                    }
                });
            }
        }
        let due: Vec<(Uuid, Instant)> = {
            let mut offers = shared.offers.lock().expect("offers");
            let (due, keep) = offers
                .drain(..)
                .partition(|(_, at)| now.duration_since(*at) > t || last);
            *offers = keep;
            due
        };
        for (id, at) in due {
            for feed in &shared.feeds {
                let feed = feed.lock().expect("feed seat");
                match feed.joined_since {
                    Some(since) if since < at => {
                        if feed.recent.contains(&id) {
                            shared.tally.offers_seen.add(1);
                        } else {
                            shared.error(
                                Kind::FeedMissed,
                                &format!(
                                    "request {id} not on a feed joined {:.1} s before it was filed",
                                    at.duration_since(since).as_secs_f64()
                                ),
                            );
                        }
                    }
                    _ => {}
                }
            }
        }
        if last {
            break;
        }
    }
}

/// One reading of the server and of the run.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Seconds since the steady phase began (negative while the fleet comes up).
    pub t_s: f64,
    pub rss_mib: f64,
    pub pss_mib: Option<f64>,
    pub fds: u64,
    pub threads: u64,
    pub held: i64,
    /// The load generator's own descriptors: every WebSocket and HTTP connection it holds is a
    /// socket the server holds too.
    pub loadgen_fds: u64,
    pub loadgen_rss_mib: f64,
    /// The server's own report at `/metrics` (absent where its platform gives none): what its
    /// allocations hold, what the allocator keeps resident for them, and what the C library's
    /// malloc holds (SQLite).
    pub heap_allocated_mib: Option<f64>,
    pub heap_resident_mib: Option<f64>,
    pub c_malloc_mib: Option<f64>,
    pub reconnects: u64,
    pub session_moves: u64,
    pub sessions_ended: u64,
    pub posted: u64,
    pub delivered: u64,
    pub caught_up: u64,
    pub errors: u64,
}

fn status_field(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn pss_kib(pid: u32) -> Option<u64> {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let line = rollup.lines().find(|l| l.starts_with("Pss:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn fd_count(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64)
}

/// The server's heap gauges, in MiB, from its `/metrics`.
#[derive(Debug, Clone, Copy, Default)]
pub struct HeapReading {
    allocated: Option<f64>,
    resident: Option<f64>,
    c_malloc: Option<f64>,
}

impl HeapReading {
    pub fn parse(metrics: &str) -> Self {
        let gauge = |name: &str| {
            metrics.lines().find_map(|l| {
                let bytes: f64 = l.strip_prefix(name)?.trim().parse().ok()?;
                Some(bytes / (1024.0 * 1024.0))
            })
        };
        HeapReading {
            allocated: gauge("wrenchline_heap_allocated_bytes"),
            resident: gauge("wrenchline_heap_resident_bytes"),
            c_malloc: gauge("wrenchline_c_malloc_in_use_bytes"),
        }
    }

    async fn read(client: &reqwest::Client, base: &str) -> Self {
        let text = async {
            client
                .get(format!("{base}/metrics"))
                .send()
                .await?
                .text()
                .await
        };
        match tokio::time::timeout(Duration::from_secs(5), text).await {
            Ok(Ok(text)) => Self::parse(&text),
            _ => Self::default(),
        }
    }
}

fn sample(shared: &Shared, pid: u32, steady: Option<Instant>, heap: HeapReading) -> Sample {
    let t = &shared.tally;
    let mib = |kib: u64| kib as f64 / 1024.0;
    let now = Instant::now();
    Sample {
        t_s: match steady {
            Some(s) if now >= s => now.duration_since(s).as_secs_f64(),
            Some(s) => -s.duration_since(now).as_secs_f64(),
            None => -shared.started.elapsed().as_secs_f64(),
        },
        rss_mib: mib(status_field(pid, "VmRSS:").unwrap_or(0)),
        pss_mib: pss_kib(pid).map(mib),
        fds: fd_count(pid),
        threads: status_field(pid, "Threads:").unwrap_or(0),
        held: shared.held.load(Ordering::Relaxed),
        loadgen_fds: fd_count(std::process::id()),
        loadgen_rss_mib: mib(status_field(std::process::id(), "VmRSS:").unwrap_or(0)),
        heap_allocated_mib: heap.allocated,
        heap_resident_mib: heap.resident,
        c_malloc_mib: heap.c_malloc,
        reconnects: t.reconnects.get(),
        session_moves: t.session_moves.get(),
        sessions_ended: t.sessions_ended.get(),
        posted: t.posted.get(),
        delivered: t.delivered.get(),
        caught_up: t.caught_up.get(),
        errors: shared.error_total(),
    }
}

fn print_sample(s: &Sample) {
    let mib = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1}"));
    eprintln!(
        "  {:>7.0} s  RSS {:>7.1} MiB (heap {} in {}, C malloc {})  fds {:>6} (load generator {:>6})  threads {:>3}  held {:>6}  reconnects {:>7}  moves {:>6}  posted {:>8}  delivered {:>8}  errors {}",
        s.t_s, s.rss_mib, mib(s.heap_allocated_mib), mib(s.heap_resident_mib), mib(s.c_malloc_mib), s.fds, s.loadgen_fds, s.threads, s.held, s.reconnects, s.session_moves, s.posted, s.delivered, s.errors
    );
}

/// Least-squares slope of `y` over `x`.
pub fn slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / n as f64)
}

/// One line of the verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub limit: String,
    pub measured: String,
    pub pass: bool,
}

/// The verdict over the steady-phase samples of a run of `duration` seconds.
pub fn verdict(
    samples: &[Sample],
    duration: f64,
    errors: u64,
    limits: (f64, f64, f64, f64),
) -> Vec<Check> {
    let (warmup_share, max_slope, max_drift, max_fd_drift) = limits;
    let warm = warmup_share * duration;
    let steady: Vec<&Sample> = samples.iter().filter(|s| s.t_s >= warm).collect();
    let mut checks = vec![Check {
        name: "errors".into(),
        limit: "0".into(),
        measured: errors.to_string(),
        pass: errors == 0,
    }];
    let points: Vec<(f64, f64)> = steady.iter().map(|s| (s.t_s, s.rss_mib)).collect();
    let per10 = slope(&points).map(|s| s * 600.0);
    checks.push(Check {
        name: "RSS slope after warm-up".into(),
        limit: format!("< {max_slope} MiB per 10 min"),
        measured: per10.map_or("too few samples".into(), |s| {
            format!("{s:+.3} MiB per 10 min over {} samples", points.len())
        }),
        pass: per10.is_some_and(|s| s < max_slope),
    });
    let quarter = |from: f64, to: f64| {
        mean(
            samples
                .iter()
                .filter(|s| s.t_s >= from * duration && s.t_s < to * duration)
                .map(|s| s.rss_mib),
        )
    };
    let (q2, q4) = (quarter(0.25, 0.5), quarter(0.75, 1.0 + 1e-9));
    let drift = q2.zip(q4).map(|(a, b)| (b - a) / a * 100.0);
    checks.push(Check {
        name: "RSS last quarter vs second quarter".into(),
        limit: format!("at most {max_drift}% higher"),
        measured: match (q2, q4, drift) {
            (Some(a), Some(b), Some(d)) => format!("{a:.1} → {b:.1} MiB ({d:+.2}%)"),
            _ => "too few samples".into(),
        },
        // Only growth fails: the allocator handing set-up memory back to the system late (a step
        // down) is not a leak.
        pass: drift.is_some_and(|d| d <= max_drift),
    });
    // The server's sockets follow the load generator's (WebSocket and pooled HTTP alike); what
    // the server gains beyond that is its own.
    let fds = steady.first().zip(samples.last()).map(|(w, e)| {
        let unexplained =
            (e.fds as f64 - w.fds as f64) - (e.loadgen_fds as f64 - w.loadgen_fds as f64);
        (
            w,
            e,
            unexplained,
            unexplained.abs() / w.fds.max(1) as f64 * 100.0,
        )
    });
    checks.push(Check {
        name: "file descriptors, end vs after warm-up".into(),
        limit: format!(
            "within ±{max_fd_drift}% beyond the change in the load generator's connections"
        ),
        measured: fds.map_or("too few samples".into(), |(w, e, u, pct)| {
            format!(
                "{} → {} fds (WebSockets held {} → {}, load generator descriptors {} → {}): {u:+.0} unexplained ({pct:.2}%)",
                w.fds, e.fds, w.held, e.held, w.loadgen_fds, e.loadgen_fds
            )
        }),
        pass: fds.is_some_and(|(_, _, _, pct)| pct <= max_fd_drift),
    });
    checks
}

fn table(checks: &[Check]) -> String {
    let mut out = String::from("| check | limit | measured | verdict |\n|---|---|---|---|\n");
    for c in checks {
        out.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            c.name,
            c.limit,
            c.measured,
            if c.pass { "pass" } else { "FAIL" }
        ));
    }
    out
}

fn default_out() -> PathBuf {
    let now = time::OffsetDateTime::now_utc();
    let stamp = now
        .format(time::macros::format_description!(
            "[year][month][day]-[hour][minute][second]"
        ))
        .unwrap_or_else(|_| now.unix_timestamp().to_string());
    PathBuf::from(format!("bench/results/soak-{stamp}.json"))
}

/// Runs the soak; the exit code is 0 when the verdict passes.
pub async fn soak(args: SoakArgs) -> anyhow::Result<i32> {
    let nofile = procs::raise_nofile();
    if args.connections < 2 {
        bail!("--connections must be at least 2");
    }
    if !(0.0..1.0).contains(&args.feed_share) || !(0.0..=1.0).contains(&args.churn) {
        bail!("--feed-share must be in [0, 1) and --churn in [0, 1]");
    }
    if !(0.0..1.0).contains(&args.warmup_share) {
        bail!("--warmup-share must be in [0, 1)");
    }
    if args.mechanics == 0 {
        bail!("--mechanics must be at least 1");
    }
    // Each side holds one socket per connection, plus HTTP pools, the database and listeners.
    let headroom = 2 * POSTS_IN_FLIGHT + 400;
    if args.connections + headroom > nofile as usize {
        bail!(
            "{} connections need an open-file limit of at least {} per process; this one has {nofile}",
            args.connections,
            args.connections + headroom
        );
    }
    if !args.server_bin.is_file() {
        bail!(
            "--server-bin {} does not exist (build with cargo build --release)",
            args.server_bin.display()
        );
    }
    let sessions = ((args.connections as f64 * (1.0 - args.feed_share)) as usize / 2).max(1);
    let feeds = args.connections - 2 * sessions;
    let out = args.out.clone().unwrap_or_else(default_out);
    let started_at = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let work = std::env::temp_dir().join(format!("wrenchline-soak.{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    crate::write_config(&work)?;
    let programs = Programs {
        server_bin: args.server_bin.canonicalize()?,
        bare_bin: PathBuf::new(),
        socketio_dir: PathBuf::new(),
        node: String::new(),
        work: work.clone(),
        server_cpu: None,
    };
    let db = Db {
        kind: "sqlite",
        url: format!("sqlite://{}", work.join("wrenchline.db").display()),
    };
    eprintln!(
        "wrenchline-bench soak: {} connections ({sessions} sessions, {feeds} feeds) for {:?}, churn {}/s of connections and {} sessions/s, a message per session every {:?}; open-file limit {nofile}; work dir {}",
        args.connections, args.duration, args.churn, args.session_churn, args.message_interval, work.display()
    );
    fixture::add_mechanics(&programs, &db, args.mechanics).await?;
    let mut server = Server::start(&programs, System::Wrenchline, Some(&db)).await?;
    let result = run(&args, &mut server, sessions, feeds).await;
    let log = work.join("wrenchline.log");
    server.stop().await;
    let (samples, shared, steady_s) = result?;
    let server_log_errors = std::fs::read_to_string(&log)
        .map(|t| t.lines().filter(|l| l.contains("ERROR")).count())
        .unwrap_or(0);

    let duration = args.duration.as_secs_f64();
    let checks = verdict(
        &samples,
        duration,
        shared.error_total(),
        (
            args.warmup_share,
            args.max_rss_slope,
            args.max_rss_drift,
            args.max_fd_drift,
        ),
    );
    let pass = checks.iter().all(|c| c.pass);
    let tally = &shared.tally;
    let latency = LatencySummary::of(&shared.latency.snapshot());
    let steady: Vec<&Sample> = samples.iter().filter(|s| s.t_s >= 0.0).collect();
    let warm = samples
        .iter()
        .find(|s| s.t_s >= args.warmup_share * duration);
    let figures = json!({
        "steady_s": steady_s,
        "rss_mib_at_start": steady.first().map(|s| s.rss_mib),
        "rss_mib_after_warmup": warm.map(|s| s.rss_mib),
        "rss_mib_at_end": samples.last().map(|s| s.rss_mib),
        "heap_allocated_mib_after_warmup": warm.and_then(|s| s.heap_allocated_mib),
        "heap_allocated_mib_at_end": samples.last().and_then(|s| s.heap_allocated_mib),
        "c_malloc_mib_after_warmup": warm.and_then(|s| s.c_malloc_mib),
        "c_malloc_mib_at_end": samples.last().and_then(|s| s.c_malloc_mib),
        "fds_after_warmup": warm.map(|s| s.fds),
        "fds_at_end": samples.last().map(|s| s.fds),
        "loadgen_fds_after_warmup": warm.map(|s| s.loadgen_fds),
        "loadgen_fds_at_end": samples.last().map(|s| s.loadgen_fds),
        "threads_after_warmup": warm.map(|s| s.threads),
        "threads_at_end": samples.last().map(|s| s.threads),
        "connects": tally.connects.get(),
        "reconnects": tally.reconnects.get(),
        "reconnects_per_s": tally.reconnects.get() as f64 / steady_s.max(1e-9),
        "session_moves": tally.session_moves.get(),
        "sessions_created": tally.sessions_created.get(),
        "sessions_ended": tally.sessions_ended.get(),
        "went_live": tally.went_live.get(),
        "messages_posted": tally.posted.get(),
        "messages_delivered": tally.delivered.get(),
        "messages_caught_up_from_history": tally.caught_up.get(),
        "posts_skipped_generator_behind": tally.posts_skipped.get(),
        "offers": tally.offers.get(),
        "offer_deliveries_checked": tally.offers_seen.get(),
        "heartbeats_answered": tally.heartbeats.get(),
        "realtime_delivery_ms": latency,
        "server_log_error_lines": server_log_errors,
    });
    let errors: serde_json::Map<String, Value> = Kind::ALL
        .iter()
        .zip(&shared.errors.counts)
        .map(|(k, c)| (k.name().to_string(), json!(c.get())))
        .collect();
    let examples: Vec<Value> = shared
        .errors
        .examples
        .lock()
        .expect("examples")
        .iter()
        .map(|(t, k, m)| json!({"t_s": t, "kind": k, "message": m}))
        .collect();
    let text = table(&checks);
    println!();
    println!("{text}");
    println!(
        "{}",
        serde_json::to_string_pretty(&figures).unwrap_or_default()
    );
    println!("verdict: {}", if pass { "pass" } else { "FAIL" });
    let result = json!({
        "format": 1,
        "scenario": "soak",
        "started_at": started_at,
        "git": crate::git_rev(),
        "machine": crate::machine(procs::cpu_count(), nofile, false),
        "params": {
            "connections": args.connections,
            "sessions": sessions,
            "feed_connections": feeds,
            "mechanics": args.mechanics,
            "duration_s": duration,
            "churn_share_per_s": args.churn,
            "session_churn_per_s": args.session_churn,
            "message_interval_s": args.message_interval.as_secs_f64(),
            "sample_s": args.sample.as_secs_f64(),
            "timeout_s": args.timeout.as_secs_f64(),
            "warmup_share": args.warmup_share,
            "database": "sqlite",
        },
        "verdict": { "pass": pass, "checks": checks },
        "figures": figures,
        "errors": errors,
        "error_examples": examples,
        "samples": samples,
        "table": text,
    });
    crate::report::write_json(&out, &result)?;
    eprintln!("wrote {}", out.display());
    if pass && !args.keep {
        let _ = std::fs::remove_dir_all(&work);
    } else {
        eprintln!("kept {}", work.display());
    }
    Ok(if pass { 0 } else { 1 })
}

type Run = (Vec<Sample>, Arc<Shared>, f64);

async fn run(
    args: &SoakArgs,
    server: &mut Server,
    sessions: usize,
    feeds: usize,
) -> anyhow::Result<Run> {
    let base = server.base_url();
    let started = Instant::now();
    let mechanics = fixture::login_mechanics(&base, args.mechanics).await?;
    let http = Http::new(&base)?;
    eprintln!("  {} mechanics signed in", mechanics.len());
    let pairs = fixture::add_pairs(&http, &mechanics, 0, sessions)
        .await
        .context("filing the first sessions")?;
    eprintln!(
        "  {} sessions filed, offered and accepted in {:.0} s",
        pairs.len(),
        started.elapsed().as_secs_f64()
    );
    let slots: Vec<Mutex<Arc<SessionSlot>>> = pairs
        .into_iter()
        .map(|p| {
            Mutex::new(Arc::new(SessionSlot {
                id: p.session,
                customer_id: p.customer.id,
                customer_token: p.customer.token,
                mechanic: p.mechanic,
                state: Mutex::new(SessionState::default()),
            }))
        })
        .collect();
    let feed_seats: Vec<Arc<Mutex<FeedSeat>>> = (0..feeds).map(|_| Arc::default()).collect();
    let shared = Arc::new(Shared {
        addr: server.addr,
        clients: Mutex::new((ApiClient::new(&base)?, http)),
        mechanics,
        timeout: args.timeout,
        stop: CancellationToken::new(),
        close: CancellationToken::new(),
        started: Instant::now(),
        errors: Errors::default(),
        tally: Tally::default(),
        held: AtomicI64::new(0),
        latency: Latencies::default(),
        sessions: slots,
        feeds: feed_seats,
        offers: Mutex::new(Vec::new()),
        next_customer: AtomicUsize::new(sessions),
    });
    let pid = server.pid;
    let mut samples = Vec::new();

    // The fleet: two seats per session, then the feeds.
    let opening = Arc::new(Semaphore::new(OPENING));
    let mut handles = Vec::with_capacity(args.connections);
    let mut seat_tasks = JoinSet::new();
    let mut assignments = Vec::with_capacity(args.connections);
    for k in 0..sessions {
        let slot = shared.sessions[k].lock().expect("sessions").clone();
        for side in [Side::Customer, Side::Mechanic] {
            assignments.push(Assignment::Session {
                slot: slot.clone(),
                side,
            });
        }
    }
    for (i, seat) in shared.feeds.iter().enumerate() {
        assignments.push(Assignment::Feed {
            mechanic: i % shared.mechanics.len(),
            seat: seat.clone(),
        });
    }
    for (index, assignment) in assignments.into_iter().enumerate() {
        let (tx, rx) = mpsc::unbounded_channel();
        handles.push(SeatHandle { commands: tx });
        seat_tasks.spawn(seat(shared.clone(), index, assignment, rx, opening.clone()));
    }
    let seats = Arc::new(handles);
    let checks_done = CancellationToken::new();
    let checker = tokio::spawn(check(shared.clone(), checks_done.clone()));
    let up_by = Instant::now() + Duration::from_secs(600);
    while shared.held.load(Ordering::Relaxed) < args.connections as i64 {
        if Instant::now() > up_by {
            bail!(
                "only {} of {} connections came up within 10 minutes",
                shared.held.load(Ordering::Relaxed),
                args.connections
            );
        }
        server.check_alive()?;
        sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "  {} connections up in {:.0} s; steady phase for {:?}",
        args.connections,
        shared.started.elapsed().as_secs_f64(),
        args.duration
    );

    *shared.clients.lock().expect("clients") = (ApiClient::new(&base)?, Http::new(&base)?);
    let metrics_client = reqwest::Client::new();
    let metrics_base = server.metrics_url();
    let steady = Instant::now();
    let heap = HeapReading::read(&metrics_client, &metrics_base).await;
    let first = sample(&shared, pid, Some(steady), heap);
    print_sample(&first);
    samples.push(first);
    let churner = tokio::spawn(churn(shared.clone(), seats.clone(), args.clone()));
    let poster = tokio::spawn(post_messages(shared.clone(), args.message_interval));
    let end = steady + args.duration;
    let mut next = steady + args.sample;
    while next <= end {
        sleep_until(next).await;
        next += args.sample;
        server.check_alive()?;
        let heap = HeapReading::read(&metrics_client, &metrics_base).await;
        let s = sample(&shared, pid, Some(steady), heap);
        print_sample(&s);
        samples.push(s);
    }
    let steady_s = steady.elapsed().as_secs_f64();
    shared.stop.cancel();
    let _ = churner.await;
    let _ = poster.await;
    // Messages already posted still have their timeout to arrive; then the last checks.
    let settle = Instant::now() + args.timeout;
    while Instant::now() < settle
        && shared.sessions.iter().any(|s| {
            !s.lock()
                .expect("sessions")
                .state
                .lock()
                .expect("session")
                .outstanding
                .is_empty()
        })
    {
        sleep(Duration::from_millis(200)).await;
    }
    checks_done.cancel();
    let _ = checker.await;
    shared.close.cancel();
    while seat_tasks.join_next().await.is_some() {}
    Ok((samples, shared, steady_s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t_s: f64, rss_mib: f64, fds: u64, held: i64) -> Sample {
        Sample {
            t_s,
            rss_mib,
            pss_mib: None,
            fds,
            threads: 4,
            held,
            loadgen_fds: held as u64 + 20,
            loadgen_rss_mib: 0.0,
            heap_allocated_mib: None,
            heap_resident_mib: None,
            c_malloc_mib: None,
            reconnects: 0,
            session_moves: 0,
            sessions_ended: 0,
            posted: 0,
            delivered: 0,
            caught_up: 0,
            errors: 0,
        }
    }

    const LIMITS: (f64, f64, f64, f64) = (0.2, 1.0, 3.0, 1.0);

    #[test]
    fn heap_gauges_are_read_from_the_metrics_text() {
        let text = "# HELP wrenchline_heap_allocated_bytes Bytes\n\
                    # TYPE wrenchline_heap_allocated_bytes gauge\n\
                    wrenchline_heap_allocated_bytes 10485760\n\
                    wrenchline_heap_resident_bytes 20971520\n\
                    wrenchline_realtime_connections 3\n";
        let heap = HeapReading::parse(text);
        assert_eq!(heap.allocated, Some(10.0));
        assert_eq!(heap.resident, Some(20.0));
        assert_eq!(heap.c_malloc, None);
    }

    #[test]
    fn durations_read_units_and_seconds() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert!(parse_duration("10x").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("10m5").is_err());
    }

    #[test]
    fn seqs_count_only_without_gaps() {
        let mut seen = Seen::default();
        assert!(seen.note(2));
        assert_eq!(seen.last, 0);
        assert!(seen.note(1));
        assert_eq!(seen.last, 2);
        assert!(!seen.note(2));
        assert!(seen.note(4));
        assert_eq!(seen.last, 2);
    }

    #[test]
    fn slope_of_a_line() {
        let points: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, 3.0 + 0.5 * i as f64)).collect();
        assert!((slope(&points).unwrap() - 0.5).abs() < 1e-9);
        assert!(slope(&points[..1]).is_none());
    }

    #[test]
    fn flat_memory_and_descriptors_pass() {
        let samples: Vec<Sample> = (0..=60)
            .map(|i| {
                let wobble = if i % 2 == 0 { 0.3 } else { -0.3 };
                at(i as f64 * 10.0, 200.0 + wobble, 10_050 + (i % 3), 10_000)
            })
            .collect();
        let checks = verdict(&samples, 600.0, 0, LIMITS);
        assert!(checks.iter().all(|c| c.pass), "{checks:#?}");
    }

    #[test]
    fn a_leak_fails_the_slope_and_the_quarters() {
        // 1.3 MiB per 10 minutes (2% from the second to the last quarter), and descriptors
        // growing by 300 with the same connections.
        let samples: Vec<Sample> = (0..=180)
            .map(|i| {
                let t = i as f64 * 10.0;
                at(t, 100.0 + t / 450.0, 10_000 + (i as u64 * 2), 9_900)
            })
            .collect();
        let checks = verdict(&samples, 1800.0, 0, LIMITS);
        let failed: Vec<&str> = checks
            .iter()
            .filter(|c| !c.pass)
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(
            failed,
            [
                "RSS slope after warm-up",
                "file descriptors, end vs after warm-up"
            ]
        );
        let drifting: Vec<Sample> = (0..=180)
            .map(|i| at(i as f64 * 10.0, 100.0 + i as f64 * 0.1, 10_000, 9_900))
            .collect();
        let checks = verdict(&drifting, 1800.0, 0, LIMITS);
        assert!(!checks[2].pass, "{checks:#?}");
    }

    #[test]
    fn a_step_down_is_not_a_leak() {
        // The allocator returns 130 MiB in the second quarter and memory stays flat after.
        let samples: Vec<Sample> = (0..=60)
            .map(|i| {
                let rss = if i < 20 { 1287.0 } else { 1156.0 };
                at(i as f64 * 10.0, rss, 2_041, 2_000)
            })
            .collect();
        let checks = verdict(&samples, 600.0, 0, LIMITS);
        assert!(checks.iter().all(|c| c.pass), "{checks:#?}");
        let rising: Vec<Sample> = samples
            .iter()
            .map(|s| at(s.t_s, 2443.0 - s.rss_mib, 2_041, 2_000))
            .collect();
        let checks = verdict(&rising, 600.0, 0, LIMITS);
        assert!(!checks[1].pass && !checks[2].pass, "{checks:#?}");
    }

    #[test]
    fn errors_and_connections_held_are_accounted() {
        let samples: Vec<Sample> = (0..=60)
            .map(|i| {
                // Descriptors follow the connections held exactly.
                let held = 10_000 - i as i64;
                at(i as f64 * 10.0, 200.0, (held + 50) as u64, held)
            })
            .collect();
        let checks = verdict(&samples, 600.0, 0, LIMITS);
        assert!(checks[3].pass, "{checks:#?}");
        let checks = verdict(&samples, 600.0, 1, LIMITS);
        assert!(!checks[0].pass);
    }
}
