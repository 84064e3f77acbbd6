//! The realtime client against a scripted in-process server: each test accepts the client's
//! socket and plays the server's side of the conversation frame by frame, as
//! `docs/realtime-protocol.md` records Supabase doing it.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use wrenchline_protocol::realtime::payloads::Column;
use wrenchline_protocol::realtime::{BroadcastPayload, Frame, UserBroadcast, Vsn};

use super::*;

/// The longest any single step may take before the test fails.
const WAIT: Duration = Duration::from_secs(5);
const TOPIC: &str = "realtime:room1";

struct FakeServer {
    listener: TcpListener,
    base: String,
}

impl FakeServer {
    async fn start() -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        FakeServer { listener, base }
    }

    // The handshake callback's error type is tungstenite's, large or not.
    #[allow(clippy::result_large_err)]
    async fn accept(&self) -> Peer {
        let (stream, _) = timeout(WAIT, self.listener.accept())
            .await
            .expect("the client connects in time")
            .unwrap();
        let mut uri = String::new();
        let ws =
            tokio_tungstenite::accept_hdr_async(stream, |request: &Request, response: Response| {
                uri = request.uri().to_string();
                Ok(response)
            })
            .await
            .unwrap();
        Peer {
            ws,
            uri,
            answer_heartbeats: true,
        }
    }

    async fn no_connection_within(&self, wait: Duration) {
        assert!(
            timeout(wait, self.listener.accept()).await.is_err(),
            "the client connected again"
        );
    }
}

/// The server's end of one client socket.
struct Peer {
    ws: WebSocketStream<TcpStream>,
    uri: String,
    answer_heartbeats: bool,
}

impl Peer {
    /// The next frame that is not a heartbeat; heartbeats are answered unless turned off.
    async fn recv(&mut self) -> Frame {
        loop {
            let message = timeout(WAIT, self.ws.next())
                .await
                .expect("a frame from the client in time")
                .expect("the socket is open")
                .expect("a readable frame");
            let Message::Text(text) = message else {
                assert!(!message.is_close(), "the client closed the socket");
                continue;
            };
            let frame = Frame::decode(Vsn::V2, text.as_str()).unwrap();
            if frame.topic == "phoenix" && frame.event == "heartbeat" {
                if self.answer_heartbeats {
                    self.send(&frame.reply("ok", json!({}))).await;
                }
                continue;
            }
            return frame;
        }
    }

    async fn recv_event(&mut self, event: &str) -> Frame {
        let frame = self.recv().await;
        assert_eq!(frame.event, event, "{frame:?}");
        frame
    }

    /// Asserts that the client sends nothing but heartbeats for a while.
    async fn quiet_for(&mut self, wait: Duration) {
        if let Ok(frame) = timeout(wait, self.recv()).await {
            panic!("unexpected frame {frame:?}");
        }
    }

    async fn send(&mut self, frame: &Frame) {
        self.ws
            .send(Message::text(frame.encode(Vsn::V2)))
            .await
            .unwrap();
    }

    async fn push(&mut self, join_ref: Option<&str>, event: &str, payload: Value) {
        self.send(&Frame::new(TOPIC, event, payload).with_refs(join_ref, None))
            .await;
    }

    /// Reads the next join on `TOPIC` and accepts it.
    async fn accept_join(&mut self) -> Frame {
        let join = self.recv_event("phx_join").await;
        assert_eq!(join.topic, TOPIC);
        assert_eq!(join.join_ref, join.r#ref, "a join's ref is its join_ref");
        self.send(&join.reply("ok", json!({"postgres_changes": []})))
            .await;
        join
    }
}

fn options() -> RealtimeOptions {
    RealtimeOptions {
        heartbeat_interval: Duration::from_secs(30),
        join_timeout: Duration::from_secs(2),
        push_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(2),
        reconnect: Backoff {
            initial: Duration::from_millis(20),
            max: Duration::from_millis(200),
            jitter: 0.25,
        },
        rejoin: Backoff {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(200),
            jitter: 0.25,
        },
        ..RealtimeOptions::default()
    }
}

async fn within<T>(future: impl std::future::Future<Output = T>) -> T {
    timeout(WAIT, future).await.expect("finished in time")
}

async fn next_event(events: &mut broadcast::Receiver<ChannelEvent>) -> ChannelEvent {
    match within(events.recv()).await {
        Ok(event) => event,
        Err(RecvError::Lagged(n)) => panic!("lagged by {n}"),
        Err(RecvError::Closed) => panic!("events closed"),
    }
}

/// A client with one channel on `TOPIC`, joined through the fake server.
async fn joined(
    server: &FakeServer,
    options: RealtimeOptions,
    channel_options: ChannelOptions,
) -> (
    RealtimeClient,
    Channel,
    broadcast::Receiver<ChannelEvent>,
    Peer,
    Frame,
) {
    let client = RealtimeClient::connect_with(&server.base, "tok-1", options).unwrap();
    let channel = client.channel("room1", channel_options);
    let mut events = channel.events();
    let (reply, (peer, join)) = tokio::join!(within(channel.subscribe()), async {
        let mut peer = server.accept().await;
        let join = peer.accept_join().await;
        (peer, join)
    });
    reply.expect("the join succeeds");
    assert_eq!(next_event(&mut events).await, ChannelEvent::Subscribed);
    (client, channel, events, peer, join)
}

#[test]
fn websocket_urls_follow_the_http_base() {
    assert_eq!(
        websocket_url("http://127.0.0.1:8080/").unwrap(),
        "ws://127.0.0.1:8080/realtime/v1/websocket?vsn=2.0.0"
    );
    assert_eq!(
        websocket_url("https://wrenchline.example/base").unwrap(),
        "wss://wrenchline.example/base/realtime/v1/websocket?vsn=2.0.0"
    );
    for bad in ["ftp://x", "127.0.0.1:8080", "http://", "http://host?x=1"] {
        assert_eq!(websocket_url(bad), Err(RealtimeError::Url(bad.into())));
    }
}

#[tokio::test]
async fn joins_with_the_config_and_token_realtime_js_sends() {
    let server = FakeServer::start().await;
    let client = RealtimeClient::connect_with(&server.base, "tok-1", options()).unwrap();
    let channel = client.channel(
        "room1",
        ChannelOptions {
            broadcast_self: true,
            broadcast_ack: true,
            presence_key: Some("me".into()),
            presence_enabled: true,
            postgres_changes: vec![
                PostgresChanges::new("INSERT", "messages").filter("session_id=eq.5"),
                PostgresChanges::new("*", "sessions"),
            ],
        },
    );
    assert_eq!(channel.topic(), TOPIC);
    let mut events = channel.events();
    let (reply, (mut peer, join)) = tokio::join!(within(channel.subscribe()), async {
        let mut peer = server.accept().await;
        let join = peer.recv_event("phx_join").await;
        let response = json!({"postgres_changes": [
            {"event": "INSERT", "schema": "public", "table": "messages", "filter": "session_id=eq.5", "id": 17},
            {"event": "*", "schema": "public", "table": "sessions", "id": 18}
        ]});
        peer.send(&join.reply("ok", response)).await;
        (peer, join)
    });
    assert_eq!(peer.uri, "/realtime/v1/websocket?vsn=2.0.0");
    assert_eq!(join.topic, TOPIC);
    assert_eq!(
        join.payload,
        json!({
            "config": {
                "broadcast": {"self": true, "ack": true},
                "presence": {"key": "me", "enabled": true},
                "postgres_changes": [
                    {"event": "INSERT", "schema": "public", "table": "messages", "filter": "session_id=eq.5"},
                    {"event": "*", "schema": "public", "table": "sessions"}
                ],
                "private": false
            },
            "access_token": "tok-1"
        })
    );
    let reply = reply.unwrap();
    assert_eq!(reply.response["postgres_changes"][1]["id"], 18);
    assert_eq!(next_event(&mut events).await, ChannelEvent::Subscribed);
    assert_eq!(client.connection_state(), ConnectionState::Connected);

    // Subscribing again answers from the join already made.
    assert_eq!(within(channel.subscribe()).await.unwrap(), reply);
    // A second channel on the same topic would be a duplicate join for the server.
    let twin = client.channel("room1", ChannelOptions::default());
    assert_eq!(
        within(twin.subscribe()).await,
        Err(RealtimeError::TopicInUse(TOPIC.into()))
    );
    peer.quiet_for(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn a_refused_join_fails_subscribe_with_the_reason_and_is_not_retried() {
    let server = FakeServer::start().await;
    let client = RealtimeClient::connect_with(&server.base, "tok-1", options()).unwrap();
    let channel = client.channel("room1", ChannelOptions::default());
    let mut events = channel.events();
    let reason = "Unauthorized: you are not a participant of this session";
    let (result, mut peer) = tokio::join!(within(channel.subscribe()), async {
        let mut peer = server.accept().await;
        let join = peer.recv_event("phx_join").await;
        peer.send(&join.reply("error", json!({"reason": reason})))
            .await;
        peer
    });
    assert_eq!(
        result,
        Err(RealtimeError::JoinRefused {
            reason: reason.into()
        })
    );
    assert_eq!(
        next_event(&mut events).await,
        ChannelEvent::Error {
            reason: reason.into()
        }
    );
    assert_eq!(
        within(channel.track(json!({"user_id": "u1"}))).await,
        Err(RealtimeError::NotJoined)
    );
    peer.quiet_for(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn subscribe_times_out_and_leaves_when_the_server_never_replies() {
    let server = FakeServer::start().await;
    let client = RealtimeClient::connect_with(
        &server.base,
        "tok-1",
        RealtimeOptions {
            join_timeout: Duration::from_millis(300),
            ..options()
        },
    )
    .unwrap();
    let channel = client.channel("room1", ChannelOptions::default());
    let (result, (mut peer, join)) = tokio::join!(within(channel.subscribe()), async {
        let mut peer = server.accept().await;
        let join = peer.recv_event("phx_join").await;
        (peer, join)
    });
    assert_eq!(result, Err(RealtimeError::Timeout));
    let leave = peer.recv_event("phx_leave").await;
    assert_eq!(leave.join_ref, join.join_ref);
    peer.quiet_for(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn heartbeats_are_sent_and_answered_without_reconnecting() {
    let server = FakeServer::start().await;
    let client = RealtimeClient::connect_with(
        &server.base,
        "tok-1",
        RealtimeOptions {
            heartbeat_interval: Duration::from_millis(100),
            ..options()
        },
    )
    .unwrap();
    let mut peer = server.accept().await;
    let mut refs = Vec::new();
    while refs.len() < 4 {
        let message = within(peer.ws.next()).await.unwrap().unwrap();
        let frame = Frame::decode(Vsn::V2, message.to_text().unwrap()).unwrap();
        assert_eq!(
            (
                frame.join_ref.as_deref(),
                frame.topic.as_str(),
                frame.event.as_str(),
                &frame.payload
            ),
            (None, "phoenix", "heartbeat", &json!({}))
        );
        peer.send(&frame.reply("ok", json!({}))).await;
        refs.push(frame.r#ref.unwrap());
    }
    refs.dedup();
    assert_eq!(refs.len(), 4, "every heartbeat has its own ref");
    server
        .no_connection_within(Duration::from_millis(200))
        .await;
    assert_eq!(client.connection_state(), ConnectionState::Connected);
}

#[tokio::test]
async fn an_unanswered_heartbeat_closes_reconnects_and_rejoins() {
    let server = FakeServer::start().await;
    let (client, _channel, mut events, mut peer, join) = joined(
        &server,
        RealtimeOptions {
            heartbeat_interval: Duration::from_millis(150),
            ..options()
        },
        ChannelOptions::default(),
    )
    .await;
    peer.answer_heartbeats = false;
    let close = loop {
        match within(peer.ws.next()).await {
            Some(Ok(Message::Close(frame))) => break frame.expect("a close frame with a reason"),
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(close.code, CloseCode::Normal);
    assert_eq!(close.reason.as_str(), "heartbeat timeout");
    assert_eq!(next_event(&mut events).await, ChannelEvent::Reconnecting);

    let mut peer = server.accept().await;
    let rejoin = peer.accept_join().await;
    assert_ne!(
        rejoin.join_ref, join.join_ref,
        "a rejoin has a new join_ref"
    );
    assert_eq!(next_event(&mut events).await, ChannelEvent::Rejoined);
    within(client.connected()).await.unwrap();
}

#[tokio::test]
async fn presence_follows_state_and_diffs_and_matches_by_user_id() {
    let server = FakeServer::start().await;
    let (_client, channel, mut events, mut peer, join) = joined(
        &server,
        options(),
        ChannelOptions {
            presence_enabled: true,
            ..ChannelOptions::default()
        },
    )
    .await;
    let join_ref = join.join_ref.as_deref();

    // A diff before the join's presence_state waits for it, as in Phoenix.
    peer.push(
        None,
        "presence_diff",
        json!({"joins": {"conn-b": {"metas": [{"phx_ref": "2", "user_id": "mechanic-1", "role": "mechanic"}]}}, "leaves": {}}),
    )
    .await;
    peer.push(
        join_ref,
        "presence_state",
        json!({
            "conn-a": {"metas": [{"phx_ref": "1", "user_id": "customer-1", "role": "customer"}]},
            "customer-2": {"metas": [{"phx_ref": "3", "user_id": "someone-else"}]}
        }),
    )
    .await;
    assert_eq!(next_event(&mut events).await, ChannelEvent::PresenceSync);
    assert!(channel.is_present("customer-1"));
    assert!(
        channel.is_present("mechanic-1"),
        "the buffered diff was applied"
    );
    assert!(
        !channel.is_present("customer-2"),
        "a presence key is not a user id"
    );
    assert!(channel.is_present("someone-else"));
    assert_eq!(channel.presence().len(), 3);

    // A second connection of the same user, then the first one leaving: still present.
    peer.push(
        None,
        "presence_diff",
        json!({"joins": {"conn-c": {"metas": [{"phx_ref": "4", "user_id": "mechanic-1"}]}}, "leaves": {}}),
    )
    .await;
    assert_eq!(next_event(&mut events).await, ChannelEvent::PresenceSync);
    peer.push(
        None,
        "presence_diff",
        json!({"joins": {}, "leaves": {"conn-b": {"metas": [{"phx_ref": "2", "user_id": "mechanic-1"}]}}}),
    )
    .await;
    assert_eq!(next_event(&mut events).await, ChannelEvent::PresenceSync);
    assert!(channel.is_present("mechanic-1"));

    // A diff stamped with another join's ref is a leftover and is dropped.
    peer.push(
        Some("999"),
        "presence_diff",
        json!({"joins": {}, "leaves": {"conn-a": {"metas": [{"phx_ref": "1"}]}}}),
    )
    .await;
    peer.push(
        None,
        "presence_diff",
        json!({"joins": {}, "leaves": {"conn-c": {"metas": [{"phx_ref": "4"}]}}}),
    )
    .await;
    assert_eq!(next_event(&mut events).await, ChannelEvent::PresenceSync);
    assert!(!channel.is_present("mechanic-1"));
    assert!(
        channel.is_present("customer-1"),
        "the stale diff was dropped"
    );
}

#[tokio::test]
async fn track_and_untrack_push_presence_and_wait_for_the_reply() {
    let server = FakeServer::start().await;
    let (_client, channel, _events, mut peer, join) =
        joined(&server, options(), ChannelOptions::default()).await;
    let payload =
        json!({"user_id": "mechanic-1", "role": "mechanic", "online_at": "2026-01-01T00:00:00Z"});

    let (result, track) = tokio::join!(within(channel.track(payload.clone())), async {
        let track = peer.recv_event("presence").await;
        peer.send(&track.reply("ok", json!({}))).await;
        track
    });
    result.unwrap();
    assert_eq!(track.join_ref, join.join_ref);
    assert_eq!(
        track.payload,
        json!({"type": "presence", "event": "track", "payload": payload})
    );

    let (result, _) = tokio::join!(within(channel.track(json!({"user_id": "x"}))), async {
        let track = peer.recv_event("presence").await;
        peer.send(&track.reply("error", json!({"reason": "presence cannot be forged"})))
            .await;
    });
    assert_eq!(
        result,
        Err(RealtimeError::Refused {
            reason: "presence cannot be forged".into()
        })
    );

    let (result, untrack) = tokio::join!(within(channel.untrack()), async {
        let untrack = peer.recv_event("presence").await;
        peer.send(&untrack.reply("ok", json!({}))).await;
        untrack
    });
    result.unwrap();
    assert_eq!(
        untrack.payload,
        json!({"type": "presence", "event": "untrack"})
    );
}

#[tokio::test]
async fn broadcasts_arrive_as_json_and_as_binary_kind_4_and_are_sent_as_json() {
    let server = FakeServer::start().await;
    let (_client, channel, mut events, mut peer, join) = joined(
        &server,
        options(),
        ChannelOptions {
            broadcast_ack: true,
            ..ChannelOptions::default()
        },
    )
    .await;

    peer.push(
        None,
        "broadcast",
        json!({"type": "broadcast", "event": "typing", "payload": {"user_id": "u1"}}),
    )
    .await;
    assert_eq!(
        next_event(&mut events).await,
        ChannelEvent::Broadcast {
            event: "typing".into(),
            payload: json!({"user_id": "u1"})
        }
    );

    let binary = UserBroadcast {
        join_ref: None,
        r#ref: None,
        topic: TOPIC.into(),
        event: "typing".into(),
        metadata: Some(r#"{"id":"abc"}"#.into()),
        payload: BroadcastPayload::Json(json!({"user_id": "u2"})),
    };
    peer.ws
        .send(Message::binary(binary.encode_broadcast().unwrap()))
        .await
        .unwrap();
    assert_eq!(
        next_event(&mut events).await,
        ChannelEvent::Broadcast {
            event: "typing".into(),
            payload: json!({"user_id": "u2"})
        }
    );

    let (result, sent) = tokio::join!(
        within(channel.broadcast("typing", json!({"user_id": "me"}))),
        async {
            let sent = peer.recv_event("broadcast").await;
            peer.send(&sent.reply("ok", json!({}))).await;
            sent
        }
    );
    result.unwrap();
    assert_eq!(sent.join_ref, join.join_ref);
    assert!(sent.r#ref.is_some());
    assert_eq!(
        sent.payload,
        json!({"type": "broadcast", "event": "typing", "payload": {"user_id": "me"}})
    );
}

#[tokio::test]
async fn broadcasts_without_ack_return_once_written() {
    let server = FakeServer::start().await;
    let (_client, channel, _events, mut peer, _join) =
        joined(&server, options(), ChannelOptions::default()).await;
    within(channel.broadcast("typing", json!({})))
        .await
        .unwrap();
    let sent = peer.recv_event("broadcast").await;
    assert_eq!(sent.payload["event"], "typing");
}

#[tokio::test]
async fn postgres_changes_are_delivered() {
    let server = FakeServer::start().await;
    let (_client, _channel, mut events, mut peer, _join) = joined(
        &server,
        options(),
        ChannelOptions {
            postgres_changes: vec![PostgresChanges::new("*", "sessions").filter("id=eq.s1")],
            ..ChannelOptions::default()
        },
    )
    .await;
    peer.push(
        None,
        "postgres_changes",
        json!({"ids": [17], "data": {
            "schema": "public", "table": "sessions", "commit_timestamp": "2026-01-01T00:00:00Z",
            "type": "UPDATE", "columns": [{"name": "id", "type": "uuid"}],
            "record": {"id": "s1", "status": "live"}, "old_record": {"id": "s1"}, "errors": null
        }}),
    )
    .await;
    peer.push(
        None,
        "postgres_changes",
        json!({"ids": [17], "data": {
            "schema": "public", "table": "messages", "commit_timestamp": "2026-01-01T00:00:01Z",
            "type": "INSERT", "columns": [], "record": {"seq": 1}, "errors": null
        }}),
    )
    .await;
    assert_eq!(
        next_event(&mut events).await,
        ChannelEvent::PostgresChange(Box::new(PostgresChange {
            schema: "public".into(),
            table: "sessions".into(),
            change_type: ChangeType::Update,
            commit_timestamp: Some("2026-01-01T00:00:00Z".into()),
            columns: vec![Column {
                name: "id".into(),
                kind: "uuid".into(),
            }],
            record: json!({"id": "s1", "status": "live"}),
            old_record: Some(json!({"id": "s1"})),
            errors: None,
        }))
    );
    let ChannelEvent::PostgresChange(insert) = next_event(&mut events).await else {
        panic!("expected a postgres change");
    };
    assert_eq!(
        (
            insert.table.as_str(),
            insert.change_type,
            &insert.record,
            &insert.old_record
        ),
        ("messages", ChangeType::Insert, &json!({"seq": 1}), &None)
    );
}

#[tokio::test]
async fn a_dropped_socket_reconnects_rejoins_and_retracks() {
    let server = FakeServer::start().await;
    let (client, channel, mut events, mut peer, join) = joined(
        &server,
        options(),
        ChannelOptions {
            presence_enabled: true,
            ..ChannelOptions::default()
        },
    )
    .await;
    let payload = json!({"user_id": "customer-1", "role": "customer"});
    let (result, _) = tokio::join!(within(channel.track(payload.clone())), async {
        let track = peer.recv_event("presence").await;
        peer.send(&track.reply("ok", json!({}))).await;
    });
    result.unwrap();
    peer.push(
        join.join_ref.as_deref(),
        "presence_state",
        json!({"k": {"metas": [{"phx_ref": "1", "user_id": "customer-1"}]}}),
    )
    .await;
    assert_eq!(next_event(&mut events).await, ChannelEvent::PresenceSync);

    drop(peer);
    assert_eq!(next_event(&mut events).await, ChannelEvent::Reconnecting);
    let mut peer = server.accept().await;
    let rejoin = peer.accept_join().await;
    assert_ne!(rejoin.join_ref, join.join_ref);
    assert_eq!(rejoin.payload["access_token"], "tok-1");
    let retrack = peer.recv_event("presence").await;
    assert_eq!(retrack.join_ref, rejoin.join_ref);
    assert_eq!(
        retrack.payload,
        json!({"type": "presence", "event": "track", "payload": payload})
    );
    peer.send(&retrack.reply("ok", json!({}))).await;
    assert_eq!(next_event(&mut events).await, ChannelEvent::Rejoined);

    // The new join's presence_state replaces what was known before the drop.
    peer.push(
        rejoin.join_ref.as_deref(),
        "presence_state",
        json!({"k2": {"metas": [{"phx_ref": "5", "user_id": "customer-1"}]}}),
    )
    .await;
    assert_eq!(next_event(&mut events).await, ChannelEvent::PresenceSync);
    assert_eq!(
        channel.presence().to_value()["k2"]["metas"][0]["phx_ref"],
        "5"
    );
    assert_eq!(channel.presence().len(), 1);

    // Messages of the old join are leftovers.
    peer.push(
        join.join_ref.as_deref(),
        "broadcast",
        json!({"type": "broadcast", "event": "old", "payload": {}}),
    )
    .await;
    peer.push(
        rejoin.join_ref.as_deref(),
        "broadcast",
        json!({"type": "broadcast", "event": "new", "payload": {}}),
    )
    .await;
    assert_eq!(
        next_event(&mut events).await,
        ChannelEvent::Broadcast {
            event: "new".into(),
            payload: json!({})
        }
    );
    assert_eq!(client.connection_state(), ConnectionState::Connected);
}

#[tokio::test]
async fn a_track_made_while_reconnecting_is_sent_after_the_rejoin() {
    let server = FakeServer::start().await;
    let (_client, channel, mut events, peer, _join) =
        joined(&server, options(), ChannelOptions::default()).await;
    drop(peer);
    assert_eq!(next_event(&mut events).await, ChannelEvent::Reconnecting);
    let payload = json!({"user_id": "u1"});
    let (result, _) = tokio::join!(within(channel.track(payload.clone())), async {
        let mut peer = server.accept().await;
        let rejoin = peer.accept_join().await;
        let track = peer.recv_event("presence").await;
        assert_eq!(track.join_ref, rejoin.join_ref);
        assert_eq!(track.payload["payload"], payload);
        peer.send(&track.reply("ok", json!({}))).await;
        peer
    });
    result.unwrap();
}

#[tokio::test]
async fn phx_close_ends_the_channel_for_good() {
    let server = FakeServer::start().await;
    let (_client, channel, mut events, mut peer, join) =
        joined(&server, options(), ChannelOptions::default()).await;
    let join_ref = join.join_ref.as_deref();
    peer.push(
        join_ref,
        "system",
        json!({"extension": "system", "status": "error", "message": "Token has expired 0 seconds ago", "channel": "room1"}),
    )
    .await;
    peer.send(&Frame::new(TOPIC, "phx_close", json!({})).with_refs(join_ref, join_ref))
        .await;
    assert_eq!(
        next_event(&mut events).await,
        ChannelEvent::System {
            status: "error".into(),
            message: "Token has expired 0 seconds ago".into(),
            extension: "system".into()
        }
    );
    assert_eq!(
        next_event(&mut events).await,
        ChannelEvent::Closed {
            reason: "Token has expired 0 seconds ago".into()
        }
    );
    assert_eq!(
        within(channel.track(json!({"user_id": "u1"}))).await,
        Err(RealtimeError::NotJoined)
    );
    peer.quiet_for(Duration::from_millis(300)).await;

    // Not even a reconnect brings it back.
    drop(peer);
    let mut peer = server.accept().await;
    peer.quiet_for(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn phx_error_rejoins_after_a_delay() {
    let server = FakeServer::start().await;
    let (_client, _channel, mut events, mut peer, join) =
        joined(&server, options(), ChannelOptions::default()).await;
    let join_ref = join.join_ref.as_deref();
    peer.send(&Frame::new(TOPIC, "phx_error", json!({})).with_refs(join_ref, join_ref))
        .await;
    assert!(matches!(
        next_event(&mut events).await,
        ChannelEvent::Error { .. }
    ));
    let rejoin = peer.accept_join().await;
    assert_ne!(rejoin.join_ref, join.join_ref);
    assert_eq!(next_event(&mut events).await, ChannelEvent::Rejoined);
}

#[tokio::test]
async fn a_refused_rejoin_is_retried() {
    let server = FakeServer::start().await;
    let (_client, _channel, mut events, peer, _join) =
        joined(&server, options(), ChannelOptions::default()).await;
    drop(peer);
    assert_eq!(next_event(&mut events).await, ChannelEvent::Reconnecting);
    let mut peer = server.accept().await;
    let refused = peer.recv_event("phx_join").await;
    peer.send(&refused.reply("error", json!({"reason": "try later"})))
        .await;
    assert_eq!(
        next_event(&mut events).await,
        ChannelEvent::Error {
            reason: "try later".into()
        }
    );
    let rejoin = peer.accept_join().await;
    assert_ne!(rejoin.join_ref, refused.join_ref);
    assert_eq!(next_event(&mut events).await, ChannelEvent::Rejoined);
}

#[tokio::test]
async fn set_token_pushes_access_token_and_rejoins_use_it() {
    let server = FakeServer::start().await;
    let (client, _channel, mut events, mut peer, join) =
        joined(&server, options(), ChannelOptions::default()).await;
    within(client.set_token("tok-2")).await.unwrap();
    let refresh = peer.recv_event("access_token").await;
    assert_eq!(refresh.join_ref, join.join_ref);
    assert_eq!(refresh.payload, json!({"access_token": "tok-2"}));

    drop(peer);
    assert_eq!(next_event(&mut events).await, ChannelEvent::Reconnecting);
    let mut peer = server.accept().await;
    let rejoin = peer.accept_join().await;
    assert_eq!(rejoin.payload["access_token"], "tok-2");
}

#[tokio::test]
async fn leave_sends_phx_leave_and_closes_the_channel() {
    let server = FakeServer::start().await;
    let (_client, channel, mut events, mut peer, join) =
        joined(&server, options(), ChannelOptions::default()).await;
    let (result, _) = tokio::join!(within(channel.leave()), async {
        let leave = peer.recv_event("phx_leave").await;
        assert_eq!(leave.join_ref, join.join_ref);
        peer.send(&leave.reply("ok", json!({}))).await;
        let join_ref = join.join_ref.as_deref();
        peer.send(&Frame::new(TOPIC, "phx_close", json!({})).with_refs(join_ref, join_ref))
            .await;
    });
    result.unwrap();
    assert_eq!(
        next_event(&mut events).await,
        ChannelEvent::Closed {
            reason: "left".into()
        }
    );
    assert_eq!(
        within(channel.broadcast("typing", json!({}))).await,
        Err(RealtimeError::NotJoined)
    );
}

#[tokio::test]
async fn disconnect_closes_the_socket_and_every_channel() {
    let server = FakeServer::start().await;
    let (client, channel, mut events, mut peer, _join) =
        joined(&server, options(), ChannelOptions::default()).await;
    within(client.disconnect()).await;
    assert_eq!(
        next_event(&mut events).await,
        ChannelEvent::Closed {
            reason: "disconnected".into()
        }
    );
    assert_eq!(client.connection_state(), ConnectionState::Closed);
    assert_eq!(within(client.connected()).await, Err(RealtimeError::Closed));
    assert_eq!(
        within(channel.subscribe()).await,
        Err(RealtimeError::Closed)
    );
    let message = within(peer.ws.next()).await;
    assert!(
        matches!(message, Some(Ok(Message::Close(_))) | None),
        "{message:?}"
    );
    server
        .no_connection_within(Duration::from_millis(200))
        .await;
}
