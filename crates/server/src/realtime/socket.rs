//! One realtime connection's transport: reads frames, hands each to the policy (`policy.rs`),
//! writes what the hub queues for the connection, and cleans up after itself. It is generic over
//! the socket's `Sink` and `Stream`, so it runs over a WebSocket in the server and over channels
//! in tests. A single task per connection owns both directions, so a connection costs one task,
//! one bounded queue, one timer and small socket buffers. Reading is never starved by writing:
//! the loop takes inbound frames and queued frames in turn, and keeps reading while a write waits
//! for a slow peer, so a client under a stream still has its heartbeats answered. Queued frames
//! go out in bursts: all that are waiting are written, then flushed once.

use std::pin::Pin;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::time::{Instant, Sleep};
use wrenchline_protocol::realtime::Vsn;

use super::hub::{ConnHandle, Outgoing, QUEUE_CAPACITY};
use super::policy::{cut_close, Close, Connection, Inbound, CLOSE_NORMAL};
use crate::state::AppState;

/// A connection silent for this long is asked for a WebSocket pong (and again as long as it stays
/// silent). Browsers and WebSocket libraries answer pings by themselves, so a live client is never
/// silent for long whatever its own heartbeat interval (realtime-js: 25 s).
pub const PING_AFTER: Duration = Duration::from_secs(10);
/// A connection that sends nothing, not even a pong, for this long is closed: its network is gone
/// without a word (a cut cable, a suspended laptop), and its presence leaves with it.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(25);

/// Most queued frames written before one flush: a burst goes out in as few writes as the
/// socket buffer allows, instead of one write and one flush per frame.
const WRITE_BURST: usize = 64;

fn message_of(out: Outgoing) -> Message {
    match out {
        Outgoing::Text(text) => Message::Text(text),
        Outgoing::Binary(bytes) => Message::Binary(bytes),
    }
}

/// Writes `first` and whatever else is already queued (up to [`WRITE_BURST`] frames), then
/// flushes once. Frames are handed to the WebSocket's own write buffer, which writes to the
/// socket as it fills and is bounded (`max_write_buffer_size`), so a burst never holds more
/// than that beyond the queue's own bounds.
async fn write_burst<Tx>(
    sink: &mut Tx,
    rx: &flume::Receiver<Outgoing>,
    handle: &ConnHandle,
    first: Outgoing,
) -> Result<(), Tx::Error>
where
    Tx: Sink<Message> + Unpin,
{
    handle.taken(&first);
    sink.feed(message_of(first)).await?;
    for _ in 1..WRITE_BURST {
        let Ok(more) = rx.try_recv() else { break };
        handle.taken(&more);
        sink.feed(message_of(more)).await?;
    }
    sink.flush().await
}

/// The connection's deadlines. One timer serves them all for the connection's life: reading a
/// frame only moves the silence deadlines later, so the timer is left where it is and, when it
/// fires early, set again for the deadline then due. It is moved sooner only when a join brings
/// a token that expires first.
struct Deadlines {
    /// When a silent connection is closed.
    idle_at: Instant,
    /// When a silent connection is pinged.
    ping_at: Instant,
    /// What the timer is set for.
    armed: Instant,
}

impl Deadlines {
    fn new(now: Instant) -> Self {
        let ping_at = now + PING_AFTER;
        Deadlines {
            idle_at: now + IDLE_TIMEOUT,
            ping_at,
            armed: ping_at,
        }
    }

    /// The client said something: it is not silent.
    fn heard(&mut self) {
        let now = Instant::now();
        self.idle_at = now + IDLE_TIMEOUT;
        self.ping_at = now + PING_AFTER;
    }

    /// The next time the loop must wake up.
    fn due(&self, expiry: Option<Instant>) -> Instant {
        expiry
            .map_or(self.ping_at, |at| at.min(self.ping_at))
            .min(self.idle_at)
    }

    /// Sets the timer sooner when a token now expires before it fires.
    fn sooner(&mut self, timer: Pin<&mut Sleep>, expiry: Option<Instant>) {
        if let Some(at) = expiry.filter(|&at| at < self.armed) {
            self.armed = at;
            timer.reset(at);
        }
    }

    /// Sets the timer for the next deadline (after it fired).
    fn rearm(&mut self, timer: Pin<&mut Sleep>, expiry: Option<Instant>) {
        self.armed = self.due(expiry);
        timer.reset(self.armed);
    }
}

/// Serves one connection until it ends: `sink` and `stream` are the socket's two halves.
pub async fn run<Tx, Rx, E>(mut sink: Tx, mut stream: Rx, state: AppState, vsn: Vsn)
where
    Tx: Sink<Message> + Unpin,
    Rx: Stream<Item = Result<Message, E>> + Unpin,
{
    let hub = &state.hub;
    let id = hub.next_conn_id();
    let (tx, rx) = flume::bounded::<Outgoing>(QUEUE_CAPACITY);
    // One receiving future for the connection's life: it keeps its place in the queue's
    // waiters between turns of the loop.
    let mut queue = rx.stream();
    let kill = hub.shutdown_token().child_token();
    let handle = ConnHandle::new(id, tx, kill.clone(), hub.queue_max_bytes());
    state.metrics.realtime_connections.inc();
    let mut connection = Connection::new(state.clone(), handle.clone(), vsn);
    let mut client_closed = false;
    let heartbeat_timeout = || Close {
        code: CLOSE_NORMAL,
        reason: "heartbeat timeout".into(),
    };
    // One cancellation waiter and one timer for the connection's life, not one of each per turn
    // of the loop.
    let killed = kill.cancelled_owned();
    tokio::pin!(killed);
    let mut deadlines = Deadlines::new(Instant::now());
    let timer = tokio::time::sleep_until(deadlines.armed);
    tokio::pin!(timer);

    // Neither branch is preferred (no `biased`): a queue that never empties must not keep the
    // client's own frames, its heartbeats among them, from being read.
    let close: Option<Close> = 'conn: loop {
        tokio::select! {
            _ = &mut killed => break Some(cut_close(&state, &handle)),
            Some(first) = queue.next() => {
                // A peer that reads slowly fills the socket buffer and the write waits; its own
                // frames are read meanwhile, and one that sends nothing at all gets as long as a
                // silent one.
                let burst = write_burst(&mut sink, &rx, &handle, first);
                tokio::pin!(burst);
                let mut held_off = false;
                loop {
                    tokio::select! {
                        _ = &mut killed => break 'conn Some(cut_close(&state, &handle)),
                        sent = &mut burst => {
                            if sent.is_err() {
                                break 'conn None;
                            }
                            break;
                        }
                        inbound = stream.next() => match connection.read(inbound).await {
                            Inbound::Handled(outcome) => {
                                deadlines.heard();
                                if let Err(close) = outcome {
                                    break 'conn Some(close);
                                }
                                if connection.take_expiry_moved() {
                                    deadlines.sooner(timer.as_mut(), connection.next_expiry());
                                }
                            }
                            Inbound::ClientClosed => {
                                client_closed = true;
                                break 'conn None;
                            }
                            Inbound::Gone => break 'conn None,
                        },
                        () = &mut timer => {
                            if Instant::now() >= deadlines.idle_at {
                                break 'conn Some(heartbeat_timeout());
                            }
                            // No ping while a write waits: the write shows whether the peer
                            // reads, and its silence is still timed.
                            held_off = true;
                            deadlines.armed = deadlines.idle_at;
                            timer.as_mut().reset(deadlines.idle_at);
                        }
                    }
                }
                if held_off {
                    deadlines.rearm(timer.as_mut(), connection.next_expiry());
                }
            }
            inbound = stream.next() => match connection.read(inbound).await {
                Inbound::Handled(outcome) => {
                    deadlines.heard();
                    if let Err(close) = outcome {
                        break Some(close);
                    }
                    if connection.take_expiry_moved() {
                                    deadlines.sooner(timer.as_mut(), connection.next_expiry());
                                }
                }
                Inbound::ClientClosed => {
                    client_closed = true;
                    break None;
                }
                Inbound::Gone => break None,
            },
            () = &mut timer => {
                let now = Instant::now();
                if now >= deadlines.idle_at {
                    break Some(heartbeat_timeout());
                }
                if now >= deadlines.ping_at {
                    deadlines.ping_at = now + PING_AFTER;
                    let ping = sink.send(Message::Ping(Default::default()));
                    match tokio::time::timeout_at(deadlines.idle_at, ping).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => break None,
                        Err(_) => break Some(heartbeat_timeout()),
                    }
                }
                connection.expire_tokens();
                deadlines.rearm(timer.as_mut(), connection.next_expiry());
            }
        }
    };

    connection.leave_all();
    if let Some(close) = close {
        // Flush what is already queued (a phx_close, say) before the close frame, briefly.
        let flush = async {
            while let Ok(out) = rx.try_recv() {
                if sink.send(message_of(out)).await.is_err() {
                    return;
                }
            }
            let frame = CloseFrame {
                code: close.code,
                reason: close.reason.into(),
            };
            let _ = sink.send(Message::Close(Some(frame))).await;
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), flush).await;
    } else if client_closed {
        // The WebSocket library has queued the answering close frame; send it, so the client's
        // closing handshake completes at once instead of waiting out its timeout.
        let _ = tokio::time::timeout(Duration::from_secs(2), sink.close()).await;
    }
    state.metrics.realtime_connections.dec();
}

#[cfg(test)]
mod tests {
    use futures_util::stream;
    use tokio::sync::mpsc;
    use uuid::Uuid;

    use super::*;

    /// A connection's task holds the loop's state for the connection's whole life, so it is
    /// part of what every idle connection costs: the loop keeps it small (the state of a join,
    /// which awaits the database, is boxed while the join runs).
    #[tokio::test]
    async fn a_connection_task_stays_small() {
        let file = std::env::temp_dir().join(format!("wl-socket-{}.db", Uuid::new_v4()));
        let settings = crate::Settings::new(
            "127.0.0.1:0".parse().unwrap(),
            format!("sqlite://{}", file.display()),
        );
        let app = crate::Application::build(settings).await.unwrap();
        let state = app.state().clone();
        let (server_tx, _client_rx) = mpsc::channel::<Message>(1);
        let sink = tokio_util::sync::PollSender::new(server_tx);
        let task = run(
            sink,
            stream::pending::<Result<Message, ()>>(),
            state,
            Vsn::V2,
        );
        let size = std::mem::size_of_val(&task);
        eprintln!("connection task: {size} bytes");
        // 2,048 bytes over in-memory channels (the socket's halves are of a similar size).
        assert!(size <= 2560, "the connection's task is {size} bytes");
        drop(task);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
        }
    }
}
