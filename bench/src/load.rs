//! Many connections under one control: opening them from the eight loopback sources, then one
//! task per connection that sends broadcasts at the rate the control sets (none while idle),
//! keeps the connection alive, and records the latency of every broadcast it receives.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{sleep_until, Instant};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::stats::{now_micros, Counter, Latencies};
use crate::wire::{self, broadcast_text, heartbeat_text, timestamp_in, Conn, Joined, Proto, Ws};

/// A chat-sized message body.
pub const BODY: &str = "Hi, the grinding starts at about 20 mph and stops when I brake hard.";

/// How often a Phoenix client heartbeats (realtime-js' default).
const HEARTBEAT: Duration = Duration::from_secs(25);

/// Shared by every connection of a run.
pub struct Control {
    /// Broadcasts per second each connection sends; 0 while idle.
    pub rate: watch::Sender<f64>,
    pub stop: CancellationToken,
    pub sent: Counter,
    pub received: Counter,
    /// Connections the server closed or lost.
    pub lost: Counter,
    pub latency: Latencies,
}

impl Control {
    pub fn new() -> Arc<Control> {
        Arc::new(Control {
            rate: watch::channel(0.0).0,
            stop: CancellationToken::new(),
            sent: Counter::default(),
            received: Counter::default(),
            lost: Counter::default(),
            latency: Latencies::default(),
        })
    }

    /// Clears counters and latencies at the start of a measuring window.
    pub fn reset(&self) {
        self.sent.take();
        self.received.take();
        self.latency.reset();
    }
}

/// What one connection joins: the Wrenchline channel it broadcasts on, the token that
/// authorises it, and where it tracks which presence payload, if anywhere (the same channel, or
/// a second one on the same connection, as the chat window does with the presence channel).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Seat {
    pub room: String,
    pub token: String,
    pub presence: Option<(String, Value)>,
}

/// The connections of a run, each driven by its own task.
pub struct Fleet {
    pub control: Arc<Control>,
    tasks: JoinSet<()>,
}

impl Fleet {
    /// Opens one connection per seat (at most `parallel` handshakes at a time), joins and tracks,
    /// and starts driving each. Fails on the first connection that cannot be set up.
    pub async fn open(
        proto: Proto,
        addr: SocketAddr,
        seats: &[Seat],
        parallel: usize,
    ) -> anyhow::Result<Fleet> {
        let control = Control::new();
        let mut fleet = Fleet {
            control,
            tasks: JoinSet::new(),
        };
        fleet.add(proto, addr, seats, 0, parallel).await?;
        Ok(fleet)
    }

    /// Adds connections for `seats`; `first` numbers them after those already open.
    pub async fn add(
        &mut self,
        proto: Proto,
        addr: SocketAddr,
        seats: &[Seat],
        first: usize,
        parallel: usize,
    ) -> anyhow::Result<()> {
        let gate = Arc::new(Semaphore::new(parallel.max(1)));
        let mut setup = JoinSet::new();
        for (i, seat) in seats.iter().cloned().enumerate() {
            let gate = gate.clone();
            let id = first + i;
            setup.spawn(async move {
                let _permit = gate.acquire_owned().await.expect("open");
                let mut conn = Conn::connect(proto, addr, wire::source_for(id)).await?;
                let same_room = seat.presence.as_ref().is_some_and(|(r, _)| *r == seat.room);
                let joined = conn.join(&seat.room, &seat.token, same_room).await?;
                if let Some((room, payload)) = seat.presence {
                    let tracked = if same_room {
                        joined.clone()
                    } else {
                        conn.join(&room, &seat.token, true).await?
                    };
                    conn.track(&tracked, payload).await?;
                }
                anyhow::Ok((id, conn, joined))
            });
        }
        let mut failure = None;
        while let Some(done) = setup.join_next().await {
            let done = match done {
                Ok(done) => done,
                // Aborted after an earlier failure, which is the one reported.
                Err(e) if e.is_cancelled() && failure.is_some() => continue,
                Err(e) => return Err(e.into()),
            };
            match done {
                Ok((id, conn, joined)) => {
                    let control = self.control.clone();
                    self.tasks
                        .spawn(drive(conn.proto, conn.ws, joined, id, control));
                }
                Err(e) => {
                    if failure.is_none() {
                        failure = Some(e);
                        setup.abort_all();
                    }
                }
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Stops every connection (a reset, so no TIME_WAIT is left) and waits for the tasks.
    pub async fn close(mut self) {
        self.control.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}

fn interval_of(rate: f64) -> Option<Duration> {
    (rate > 0.0).then(|| Duration::from_secs_f64(1.0 / rate))
}

/// A spread-out start: a connection's first send (or heartbeat) falls somewhere in `period`.
fn offset(id: usize, period: Duration) -> Duration {
    // Golden-ratio spacing spreads any number of connections evenly without a random source.
    let frac = (id as f64 * 0.618_033_988_749_895).fract();
    period.mul_f64(frac)
}

/// Owns one connection until the run stops.
async fn drive(proto: Proto, mut ws: Ws, joined: Joined, id: usize, control: Arc<Control>) {
    let mut rate = control.rate.subscribe();
    let mut interval = interval_of(*rate.borrow_and_update());
    let now = Instant::now();
    let mut next_send = now + interval.map_or(Duration::ZERO, |i| offset(id, i));
    let mut next_beat = now + offset(id, HEARTBEAT);
    let mut next_ref: u64 = 1_000;
    let send_timer = sleep_until(next_send);
    let beat_timer = sleep_until(next_beat);
    tokio::pin!(send_timer, beat_timer);
    loop {
        tokio::select! {
            biased;
            _ = control.stop.cancelled() => break,
            changed = rate.changed() => {
                if changed.is_err() {
                    break;
                }
                interval = interval_of(*rate.borrow_and_update());
                if let Some(i) = interval {
                    next_send = Instant::now() + offset(id, i);
                    send_timer.as_mut().reset(next_send);
                }
            }
            inbound = ws.next() => match inbound {
                Some(Ok(Message::Text(text))) => {
                    let text = text.as_str();
                    if let Some(ts) = timestamp_in(text) {
                        control.received.add(1);
                        control.latency.record(id, now_micros().saturating_sub(ts));
                    } else if proto == Proto::SocketIo
                        && text == "2"
                        && ws.send(Message::text("3")).await.is_err()
                    {
                        control.lost.add(1);
                        break;
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                    control.lost.add(1);
                    break;
                }
                Some(Ok(_)) => {}
            },
            _ = &mut send_timer, if interval.is_some() => {
                let i = interval.expect("guarded");
                next_ref += 1;
                let text = broadcast_text(proto, &joined, next_ref, now_micros(), BODY);
                if ws.send(Message::text(text)).await.is_err() {
                    control.lost.add(1);
                    break;
                }
                control.sent.add(1);
                next_send += i;
                // A load generator that fell far behind starts afresh rather than bursting.
                let now = Instant::now();
                if next_send + Duration::from_secs(1) < now {
                    next_send = now;
                }
                send_timer.as_mut().reset(next_send);
            }
            _ = &mut beat_timer, if proto == Proto::Phoenix => {
                next_ref += 1;
                if ws.send(Message::text(heartbeat_text(next_ref))).await.is_err() {
                    control.lost.add(1);
                    break;
                }
                next_beat += HEARTBEAT;
                beat_timer.as_mut().reset(next_beat);
            }
        }
    }
}
