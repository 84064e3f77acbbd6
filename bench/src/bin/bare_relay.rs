//! The limit the benchmark compares wrenchline-server with: a relay of the same Phoenix frames
//! (serializer 2.0.0, `wrenchline-protocol`'s codec) on tokio-tungstenite with no application
//! logic — no auth, no presence, no storage, no topic rules. It answers heartbeats and joins,
//! acknowledges presence pushes without keeping anything, and forwards each broadcast to the
//! topic's other members. Socket buffers and queues are sized as wrenchline-server's are, so
//! the difference is what the application adds.
//!
//! Usage: bare-relay --bind 127.0.0.1:0 [--ready-file PATH]   (prints "listening on http://ADDR";
//! the ready file gets `{"http": "http://ADDR"}`, written as wrenchline-server writes it)

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use dashmap::DashMap;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use wrenchline_protocol::realtime::{Frame, Vsn};

const QUEUE_CAPACITY: usize = 1024;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:0")]
    bind: SocketAddr,
    /// Where to write the bound address as JSON once connections are accepted.
    #[arg(long, env = "WRENCHLINE_READY_FILE")]
    ready_file: Option<std::path::PathBuf>,
}

#[derive(Default)]
struct Relay {
    rooms: DashMap<String, Vec<(u64, mpsc::Sender<Message>)>>,
    next: AtomicU64,
}

impl Relay {
    fn join(&self, topic: &str, id: u64, tx: &mpsc::Sender<Message>) {
        let mut room = self.rooms.entry(topic.to_string()).or_default();
        if !room.iter().any(|(m, _)| *m == id) {
            room.push((id, tx.clone()));
        }
    }

    fn leave(&self, topic: &str, id: u64) {
        if let Some(mut room) = self.rooms.get_mut(topic) {
            room.retain(|(m, _)| *m != id);
        }
        self.rooms.remove_if(topic, |_, members| members.is_empty());
    }

    /// Queues `message` for every member but the sender; a member whose queue is full misses it.
    fn forward(&self, topic: &str, sender: u64, message: Message) {
        if let Some(room) = self.rooms.get(topic) {
            for (member, tx) in room.iter() {
                if *member != sender {
                    let _ = tx.try_send(message.clone());
                }
            }
        }
    }
}

fn text(frame: &Frame) -> Message {
    Message::text(frame.encode(Vsn::V2))
}

async fn serve(relay: Arc<Relay>, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let config = WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(4 * 1024)
        .max_write_buffer_size(512 * 1024)
        .max_message_size(Some(256 * 1024))
        .max_frame_size(Some(256 * 1024));
    let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else {
        return;
    };
    let id = relay.next.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::channel::<Message>(QUEUE_CAPACITY);
    let mut joined: HashSet<String> = HashSet::new();
    let idle = Duration::from_secs(60);
    loop {
        tokio::select! {
            biased;
            Some(out) = rx.recv() => {
                if ws.send(out).await.is_err() {
                    break;
                }
            }
            inbound = tokio::time::timeout(idle, ws.next()) => {
                let Ok(Some(Ok(message))) = inbound else { break };
                let Message::Text(body) = message else {
                    if message.is_close() { break } else { continue }
                };
                let Ok(frame) = Frame::decode(Vsn::V2, body.as_str()) else { break };
                let reply = match (frame.topic.as_str(), frame.event.as_str()) {
                    ("phoenix", "heartbeat") => Some(frame.reply("ok", json!({}))),
                    (topic, "phx_join") => {
                        relay.join(topic, id, &tx);
                        joined.insert(topic.to_string());
                        Some(frame.reply("ok", json!({"postgres_changes": []})))
                    }
                    (topic, "phx_leave") => {
                        relay.leave(topic, id);
                        joined.remove(topic);
                        Some(frame.reply("ok", json!({})))
                    }
                    (topic, _) if !joined.contains(topic) => {
                        Some(frame.reply("error", json!({"reason": "unmatched topic"})))
                    }
                    (_, "presence") => Some(frame.reply("ok", json!({}))),
                    (topic, "broadcast") => {
                        let out = Frame::new(topic, "broadcast", frame.payload.clone());
                        relay.forward(topic, id, text(&out));
                        None
                    }
                    _ => Some(frame.reply("error", json!({"reason": "unknown event"}))),
                };
                if let Some(reply) = reply {
                    let _ = tx.try_send(text(&reply));
                }
            }
        }
    }
    for topic in joined {
        relay.leave(&topic, id);
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let listener = TcpListener::bind(args.bind).await?;
    println!("listening on http://{}", listener.local_addr()?);
    if let Some(path) = &args.ready_file {
        let ready = json!({ "http": format!("http://{}", listener.local_addr()?) });
        let temporary = path.with_extension(format!("{}.tmp", std::process::id()));
        std::fs::write(&temporary, format!("{ready}\n"))?;
        std::fs::rename(&temporary, path)?;
    }
    let relay = Arc::new(Relay::default());
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(serve(relay.clone(), stream));
            }
            // Out of file descriptors, say: wait for some to close, as axum does.
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}
