//! The thin socket adapter the load generator drives its many connections with. `RealtimeClient`
//! connects from whatever address the kernel picks, so past ~28k connections to one server port
//! the ephemeral ports of 127.0.0.1 run out; here each socket is bound to a chosen loopback
//! source address (127.0.0.2…127.0.0.9) before the WebSocket handshake, and the two protocols
//! under comparison are spoken directly:
//! - Phoenix channels, serializer 2.0.0, with the frame codec of `wrenchline-protocol` (what
//!   wrenchline-server and the bare relay speak);
//! - Socket.IO v5 over Engine.IO v4's websocket transport (what the Socket.IO peer speaks).
//!
//! Setup (connect, join, track) waits for each answer; afterwards a connection is handed to
//! [`crate::load::drive`], which owns it until the run ends.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use wrenchline_protocol::realtime::{Frame, Vsn};

pub type Ws = WebSocketStream<TcpStream>;

/// How long one setup step (connect, join, track) may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// Source addresses, one per ~28k ephemeral ports.
pub const SOURCES: usize = 8;

pub fn source_for(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (i % SOURCES) as u8))
}

/// Which protocol a server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Phoenix,
    SocketIo,
}

/// TCP from `source`, then the WebSocket handshake for `path`.
async fn open(addr: SocketAddr, source: IpAddr, path: &str) -> anyhow::Result<Ws> {
    let socket = TcpSocket::new_v4()?;
    socket
        .bind(SocketAddr::new(source, 0))
        .with_context(|| format!("binding {source}"))?;
    // A reset on close leaves no TIME_WAIT behind to hold source ports between runs. (The
    // deprecation is about lingering drops blocking the thread; a zero linger never blocks.)
    #[allow(deprecated)]
    socket.set_linger(Some(Duration::ZERO))?;
    socket.set_nodelay(true)?;
    let stream = socket
        .connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    let config = WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_message_size(Some(1 << 20));
    let (ws, _) = tokio_tungstenite::client_async_with_config(
        format!("ws://{addr}{path}"),
        stream,
        Some(config),
    )
    .await
    .context("WebSocket handshake")?;
    Ok(ws)
}

/// One connection during setup.
pub struct Conn {
    pub proto: Proto,
    pub ws: Ws,
    next_ref: u64,
}

/// A joined room: what the connection needs to send into it.
#[derive(Debug, Clone)]
pub struct Joined {
    /// Phoenix: the full topic (`realtime:…`); Socket.IO: the room name.
    pub topic: String,
    /// Phoenix: the join ref every push on the topic carries.
    pub join_ref: String,
}

impl Conn {
    pub async fn connect(proto: Proto, addr: SocketAddr, source: IpAddr) -> anyhow::Result<Conn> {
        tokio::time::timeout(STEP_TIMEOUT, async {
            match proto {
                Proto::Phoenix => {
                    let ws = open(addr, source, "/realtime/v1/websocket?vsn=2.0.0").await?;
                    Ok(Conn {
                        proto,
                        ws,
                        next_ref: 1,
                    })
                }
                Proto::SocketIo => {
                    let ws = open(addr, source, "/socket.io/?EIO=4&transport=websocket").await?;
                    let mut conn = Conn {
                        proto,
                        ws,
                        next_ref: 1,
                    };
                    // Engine.IO open packet, then connect to the default namespace.
                    let open = conn.next_text().await?;
                    if !open.starts_with('0') {
                        bail!("expected the Engine.IO open packet, got {open:?}");
                    }
                    conn.ws.send(Message::text("40")).await?;
                    loop {
                        let text = conn.next_text().await?;
                        if text.starts_with("40") {
                            break;
                        }
                        if text.starts_with("44") {
                            bail!("Socket.IO refused the connection: {text}");
                        }
                    }
                    Ok(conn)
                }
            }
        })
        .await
        .map_err(|_| anyhow!("connecting took over {STEP_TIMEOUT:?}"))?
    }

    fn make_ref(&mut self) -> String {
        let r = self.next_ref.to_string();
        self.next_ref += 1;
        r
    }

    /// The next text frame; answers Engine.IO pings on the way.
    async fn next_text(&mut self) -> anyhow::Result<String> {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Text(text))) => {
                    if self.proto == Proto::SocketIo && text.as_str() == "2" {
                        self.ws.send(Message::text("3")).await?;
                        continue;
                    }
                    return Ok(text.as_str().to_string());
                }
                Some(Ok(Message::Close(frame))) => {
                    bail!("the server closed the connection: {frame:?}")
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.into()),
                None => bail!("the server closed the connection"),
            }
        }
    }

    /// Sends a Phoenix push and waits for its `phx_reply`.
    async fn phx_push(
        &mut self,
        topic: &str,
        join_ref: Option<&str>,
        event: &str,
        payload: Value,
    ) -> anyhow::Result<String> {
        let r = self.make_ref();
        let join_ref = join_ref.unwrap_or(&r).to_string();
        let frame = Frame::new(topic, event, payload).with_refs(Some(&join_ref), Some(&r));
        self.ws.send(Message::text(frame.encode(Vsn::V2))).await?;
        loop {
            let text = self.next_text().await?;
            let Ok(reply) = Frame::decode(Vsn::V2, &text) else {
                continue;
            };
            if reply.event != "phx_reply" || reply.r#ref.as_deref() != Some(r.as_str()) {
                continue;
            }
            return match reply.payload.get("status").and_then(Value::as_str) {
                Some("ok") => Ok(join_ref),
                _ => Err(anyhow!("{event} on {topic} refused: {}", reply.payload)),
            };
        }
    }

    /// Emits a Socket.IO event with an acknowledgement and waits for it.
    async fn sio_call(&mut self, event: &str, data: Value) -> anyhow::Result<()> {
        let id = self.next_ref;
        self.next_ref += 1;
        let packet = format!("42{id}{}", json!([event, data]));
        self.ws.send(Message::text(packet)).await?;
        let prefix = format!("43{id}");
        loop {
            let text = self.next_text().await?;
            let Some(rest) = text.strip_prefix(&prefix) else {
                continue;
            };
            let answer: Value = serde_json::from_str(rest).context("ack payload")?;
            return match answer
                .get(0)
                .and_then(|a| a.get("status"))
                .and_then(Value::as_str)
            {
                Some("ok") => Ok(()),
                _ => Err(anyhow!("{event} refused: {answer}")),
            };
        }
    }

    /// Joins `room` (a Wrenchline channel name such as `chat:session-{id}`), authorised by
    /// `token` where the server checks one. `presence` enables presence on the channel.
    pub async fn join(
        &mut self,
        room: &str,
        token: &str,
        presence: bool,
    ) -> anyhow::Result<Joined> {
        tokio::time::timeout(STEP_TIMEOUT, async {
            match self.proto {
                Proto::Phoenix => {
                    let topic = format!("realtime:{room}");
                    let payload = json!({
                        "config": {
                            "broadcast": {"self": false, "ack": false},
                            "presence": {"key": "", "enabled": presence},
                            "postgres_changes": [],
                            "private": false,
                        },
                        "access_token": token,
                    });
                    let join_ref = self.phx_push(&topic, None, "phx_join", payload).await?;
                    Ok(Joined { topic, join_ref })
                }
                Proto::SocketIo => {
                    self.sio_call("join", json!({"room": room})).await?;
                    Ok(Joined {
                        topic: room.to_string(),
                        join_ref: String::new(),
                    })
                }
            }
        })
        .await
        .map_err(|_| anyhow!("joining took over {STEP_TIMEOUT:?}"))?
    }

    /// Tracks `payload` as this connection's presence in a joined room.
    pub async fn track(&mut self, joined: &Joined, payload: Value) -> anyhow::Result<()> {
        tokio::time::timeout(STEP_TIMEOUT, async {
            match self.proto {
                Proto::Phoenix => {
                    self.phx_push(
                        &joined.topic,
                        Some(&joined.join_ref),
                        "presence",
                        json!({"type": "presence", "event": "track", "payload": payload}),
                    )
                    .await?;
                    Ok(())
                }
                Proto::SocketIo => {
                    self.sio_call("track", json!({"room": joined.topic, "payload": payload}))
                        .await
                }
            }
        })
        .await
        .map_err(|_| anyhow!("tracking took over {STEP_TIMEOUT:?}"))?
    }
}

/// The text of one broadcast carrying `ts` (µs on the [`crate::stats::now_micros`] clock).
pub fn broadcast_text(proto: Proto, joined: &Joined, r#ref: u64, ts: u64, body: &str) -> String {
    match proto {
        Proto::Phoenix => format!(
            r#"["{}","{}","{}","broadcast",{{"type":"broadcast","event":"msg","payload":{{"ts":{},"body":"{}"}}}}]"#,
            joined.join_ref, r#ref, joined.topic, ts, body
        ),
        Proto::SocketIo => format!(
            r#"42["broadcast",{{"room":"{}","event":"msg","payload":{{"ts":{},"body":"{}"}}}}]"#,
            joined.topic, ts, body
        ),
    }
}

/// The send timestamp in a received broadcast, found without parsing the whole frame.
pub fn timestamp_in(text: &str) -> Option<u64> {
    let at = text.find("\"ts\":")? + 5;
    let digits = text[at..].bytes().take_while(u8::is_ascii_digit).count();
    text[at..at + digits].parse().ok()
}

/// A Phoenix heartbeat.
pub fn heartbeat_text(r#ref: u64) -> String {
    format!(r#"[null,"{}","phoenix","heartbeat",{{}}]"#, r#ref)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasts_carry_a_findable_timestamp() {
        let joined = Joined {
            topic: "realtime:chat:session-x".into(),
            join_ref: "1".into(),
        };
        let text = broadcast_text(Proto::Phoenix, &joined, 7, 123456, "hello");
        let frame = Frame::decode(Vsn::V2, &text).unwrap();
        assert_eq!(frame.payload["payload"]["ts"], 123456);
        assert_eq!(timestamp_in(&text), Some(123456));
        let sio = broadcast_text(Proto::SocketIo, &joined, 7, 42, "hello");
        let value: Value = serde_json::from_str(&sio[2..]).unwrap();
        assert_eq!(value[1]["payload"]["ts"], 42);
        assert_eq!(timestamp_in(&sio), Some(42));
        assert_eq!(
            timestamp_in("[null,\"1\",\"phoenix\",\"phx_reply\",{}]"),
            None
        );
    }

    #[test]
    fn sources_cycle_through_eight_loopback_addresses() {
        assert_eq!(source_for(0).to_string(), "127.0.0.2");
        assert_eq!(source_for(7).to_string(), "127.0.0.9");
        assert_eq!(source_for(8).to_string(), "127.0.0.2");
    }
}
