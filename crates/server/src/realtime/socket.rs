//! One realtime connection's transport: reads frames, hands each to the policy (`policy.rs`),
//! writes what the hub queues for the connection, and cleans up after itself. It is generic over
//! the socket's `Sink` and `Stream`, so it runs over a WebSocket in the server and over channels
//! in tests. A single task per connection owns both directions, so a connection costs one task,
//! one bounded queue and small socket buffers. Reading is never starved by writing: the loop
//! takes inbound frames and queued frames in turn, and keeps reading while a write waits for a
//! slow peer, so a client under a stream still has its heartbeats answered.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
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

fn message_of(out: Outgoing) -> Message {
    match out {
        Outgoing::Text(text) => Message::Text(text),
        Outgoing::Binary(bytes) => Message::Binary(bytes),
    }
}

/// Serves one connection until it ends: `sink` and `stream` are the socket's two halves.
pub async fn run<Tx, Rx, E>(mut sink: Tx, mut stream: Rx, state: AppState, vsn: Vsn)
where
    Tx: Sink<Message> + Unpin,
    Rx: Stream<Item = Result<Message, E>> + Unpin,
{
    let hub = state.hub.clone();
    let id = hub.next_conn_id();
    let (tx, mut rx) = mpsc::channel::<Outgoing>(QUEUE_CAPACITY);
    let kill = hub.shutdown_token().child_token();
    let conn = ConnHandle::new(id, tx, kill.clone(), hub.queue_max_bytes());
    state.metrics.realtime_connections.inc();
    let mut connection = Connection::new(state.clone(), conn, vsn);
    let mut idle_at = Instant::now() + IDLE_TIMEOUT;
    let mut ping_at = Instant::now() + PING_AFTER;
    let mut client_closed = false;
    let heartbeat_timeout = || Close {
        code: CLOSE_NORMAL,
        reason: "heartbeat timeout".into(),
    };

    // Neither branch is preferred (no `biased`): a queue that never empties must not keep the
    // client's own frames, its heartbeats among them, from being read.
    let close: Option<Close> = 'conn: loop {
        let wake = connection
            .next_expiry()
            .map_or(ping_at, |at| at.min(ping_at))
            .min(idle_at);
        tokio::select! {
            _ = kill.cancelled() => break Some(cut_close(&state, connection.handle())),
            Some(out) = rx.recv() => {
                connection.handle().taken(&out);
                // A peer that reads slowly fills the socket buffer and the send waits; its own
                // frames are read meanwhile, and one that sends nothing at all gets as long as a
                // silent one.
                let send = sink.send(message_of(out));
                tokio::pin!(send);
                loop {
                    tokio::select! {
                        _ = kill.cancelled() => break 'conn Some(cut_close(&state, connection.handle())),
                        sent = &mut send => {
                            if sent.is_err() {
                                break 'conn None;
                            }
                            break;
                        }
                        inbound = stream.next() => match connection.read(inbound).await {
                            Inbound::Handled(outcome) => {
                                let now = Instant::now();
                                idle_at = now + IDLE_TIMEOUT;
                                ping_at = now + PING_AFTER;
                                if let Err(close) = outcome {
                                    break 'conn Some(close);
                                }
                            }
                            Inbound::ClientClosed => {
                                client_closed = true;
                                break 'conn None;
                            }
                            Inbound::Gone => break 'conn None,
                        },
                        _ = tokio::time::sleep_until(idle_at) => break 'conn Some(heartbeat_timeout()),
                    }
                }
            }
            inbound = stream.next() => match connection.read(inbound).await {
                Inbound::Handled(outcome) => {
                    let now = Instant::now();
                    idle_at = now + IDLE_TIMEOUT;
                    ping_at = now + PING_AFTER;
                    if let Err(close) = outcome {
                        break Some(close);
                    }
                }
                Inbound::ClientClosed => {
                    client_closed = true;
                    break None;
                }
                Inbound::Gone => break None,
            },
            _ = tokio::time::sleep_until(wake) => {
                let now = Instant::now();
                if now >= idle_at {
                    break Some(heartbeat_timeout());
                }
                if now >= ping_at {
                    ping_at = now + PING_AFTER;
                    let ping = sink.send(Message::Ping(Default::default()));
                    match tokio::time::timeout_at(idle_at, ping).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => break None,
                        Err(_) => break Some(heartbeat_timeout()),
                    }
                }
                connection.expire_tokens();
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
