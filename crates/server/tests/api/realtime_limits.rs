//! What one user can make the realtime hub do, and no more: subscriptions per session topic,
//! joins, presence events and broadcasts per user, the live-start check that reads the database
//! only when a start could follow, events only the server sends, `postgres_changes` bindings per
//! join, the outbound queue in bytes, heartbeats read under a stream, disabled accounts, tokens
//! that never travel in the socket URL, and one customer flooding its own session beside an
//! unrelated live one.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use crate::helpers::{run_server_command, spawn_app, spawn_app_with, TestApp};
use crate::realtime::{config, presence_topic, token, track, Client};

fn chat_topic(id: Uuid) -> String {
    format!("realtime:chat:session-{id}")
}

fn reason(reply: &Value) -> &str {
    reply[4]["response"]["reason"].as_str().unwrap_or_default()
}

async fn connect_url(url: &str) -> Client {
    let (ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket connects");
    Client { ws, next_ref: 0 }
}

fn socket_url(app: &TestApp, query: &str) -> String {
    format!(
        "{}/realtime/v1/websocket?{query}",
        app.base.replace("http://", "ws://")
    )
}

async fn broadcast(client: &mut Client, topic: &str, join_ref: &str, event: &str) -> Value {
    let r = client
        .push(
            Some(join_ref),
            topic,
            "broadcast",
            json!({"type": "broadcast", "event": event, "payload": {"n": 1}}),
        )
        .await;
    client.reply(&r).await
}

#[tokio::test]
async fn session_topics_hold_few_subscriptions_per_user_and_in_all() {
    let app = spawn_app_with(|s| {
        s.limits.session_topic_subscribers_per_user = 2;
        s.limits.session_topic_subscribers = 3;
    })
    .await;
    let (customer, mechanic, session) = app.waiting_session().await;
    let (ct, mt) = (token(&app, &customer).await, token(&app, &mechanic).await);
    let topic = presence_topic(session);

    let mut first = Client::connect(&app).await;
    let joined = first.join(&topic, &ct, config(json!([]))).await;
    assert_eq!(joined[4]["status"], "ok", "{joined}");
    let jref = joined[0].as_str().unwrap().to_string();
    first
        .expect("presence_state", |f| f[3] == "presence_state")
        .await;
    let mut second = Client::connect(&app).await;
    assert_eq!(
        second.join(&topic, &ct, config(json!([]))).await[4]["status"],
        "ok"
    );
    // The same user's third subscription is refused, and the refused client gets nothing else.
    let mut third = Client::connect(&app).await;
    let refused = third.join(&topic, &ct, config(json!([]))).await;
    assert_eq!(refused[4]["status"], "error");
    assert!(reason(&refused).starts_with("TooManyChannels"), "{refused}");
    assert!(
        reason(&refused).contains('2'),
        "the reply names the cap: {refused}"
    );

    // The mechanic takes the topic's third place; a fourth subscription is refused.
    let nothing = third.drain(Duration::from_millis(200)).await;
    assert!(nothing.is_empty(), "the refused join got {nothing:?}");
    // The chat topic counts apart.
    assert_eq!(
        third
            .join(&chat_topic(session), &ct, config(json!([])))
            .await[4]["status"],
        "ok"
    );
    let mut mech = Client::connect(&app).await;
    let mech_joined = mech.join(&topic, &mt, config(json!([]))).await;
    assert_eq!(mech_joined[4]["status"], "ok");
    let mut mech2 = Client::connect(&app).await;
    let full = mech2.join(&topic, &mt, config(json!([]))).await;
    assert_eq!(full[4]["status"], "error");
    assert!(reason(&full).starts_with("TooManyChannels"), "{full}");

    // Nothing else changed: the first subscription still works and sees the mechanic's track.
    assert_eq!(
        track(&mut first, &topic, &jref, &customer, "customer").await[4]["status"],
        "ok"
    );
    let mref = mech_joined[0].as_str().unwrap().to_string();
    assert_eq!(
        track(&mut mech, &topic, &mref, &mechanic, "mechanic").await[4]["status"],
        "ok"
    );
    first
        .expect("the mechanic's presence", |f| {
            f[3] == "presence_diff"
                && f[4]["joins"]
                    .as_object()
                    .is_some_and(|j| j.values().any(|e| e["metas"][0]["role"] == "mechanic"))
        })
        .await;
    // A rejoin of a held subscription on the same connection is no new subscription.
    assert_eq!(
        second.join(&topic, &ct, config(json!([]))).await[4]["status"],
        "ok"
    );

    // The mechanics' request feed is not capped this way.
    let mut feeds = Vec::new();
    for _ in 0..4 {
        let mut c = Client::connect(&app).await;
        let joined = c.join("realtime:requests", &mt, config(json!([]))).await;
        assert_eq!(joined[4]["status"], "ok", "{joined}");
        feeds.push(c);
    }
}

#[tokio::test]
async fn joins_presence_and_broadcasts_are_limited_per_user_across_connections() {
    let app = spawn_app_with(|s| {
        s.limits.joins_per_user_per_second = 3;
        s.limits.presence_per_user_per_second = 3;
        s.limits.broadcasts_per_connection_per_second = 3;
        s.limits.broadcasts_per_user_per_second = 5;
        s.limits.session_topic_subscribers_per_user = 10;
        s.limits.session_topic_subscribers = 20;
    })
    .await;
    let (customer, _mechanic, session) = app.waiting_session().await;
    let ct = token(&app, &customer).await;
    let (topic, chat) = (presence_topic(session), chat_topic(session));

    // Joins: three in a second over three connections, the fourth (a fresh connection) refused.
    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut c = Client::connect(&app).await;
        let joined = c.join(&chat, &ct, config(json!([]))).await;
        assert_eq!(joined[4]["status"], "ok", "{joined}");
        clients.push((c, joined[0].as_str().unwrap().to_string()));
    }
    let mut fourth = Client::connect(&app).await;
    let refused = fourth.join(&chat, &ct, config(json!([]))).await;
    assert!(
        reason(&refused).starts_with("ClientJoinRateLimitReached"),
        "{refused}"
    );

    // Broadcasts: three on the first connection, its fourth refused by its own budget; two more
    // on the second reach the user's five, and its third is refused by the user's budget.
    let (a, aref) = &mut clients[0];
    for _ in 0..3 {
        assert_eq!(broadcast(a, &chat, aref, "typing").await[4]["status"], "ok");
    }
    let limited = broadcast(a, &chat, aref, "typing").await;
    assert!(
        reason(&limited).starts_with("BroadcastRateLimitReached"),
        "{limited}"
    );
    let (b, bref) = &mut clients[1];
    for _ in 0..2 {
        assert_eq!(broadcast(b, &chat, bref, "typing").await[4]["status"], "ok");
    }
    let limited = broadcast(b, &chat, bref, "typing").await;
    assert!(
        reason(&limited).starts_with("BroadcastRateLimitReached"),
        "{limited}"
    );

    // Presence: three tracks over two connections, then the user's budget is spent.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut p1 = Client::connect(&app).await;
    let mut p2 = Client::connect(&app).await;
    let j1 = p1.join(&topic, &ct, config(json!([]))).await;
    let j2 = p2.join(&topic, &ct, config(json!([]))).await;
    let (r1, r2) = (
        j1[0].as_str().unwrap().to_string(),
        j2[0].as_str().unwrap().to_string(),
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for (c, r) in [(&mut p1, &r1), (&mut p2, &r2)] {
        assert_eq!(
            track(c, &topic, r, &customer, "customer").await[4]["status"],
            "ok"
        );
    }
    assert_eq!(
        track(&mut p1, &topic, &r1, &customer, "customer").await[4]["status"],
        "ok"
    );
    let limited = track(&mut p2, &topic, &r2, &customer, "customer").await;
    assert!(reason(&limited).contains("Too many presence"), "{limited}");
}

#[tokio::test]
async fn the_live_start_reads_the_session_only_when_a_start_could_follow() {
    let app = spawn_app_with(|s| {
        s.limits.presence_per_connection_per_second = 1000;
        s.limits.presence_per_user_per_second = 1000;
    })
    .await;
    let (customer, mechanic, session) = app.waiting_session().await;
    let topic = presence_topic(session);
    let mut cust = Client::connect(&app).await;
    let joined = cust
        .join(&topic, &token(&app, &customer).await, config(json!([])))
        .await;
    let cref = joined[0].as_str().unwrap().to_string();
    // The customer alone, tracking again and again: nobody else is present, nothing to read.
    for _ in 0..40 {
        assert_eq!(
            track(&mut cust, &topic, &cref, &customer, "customer").await[4]["status"],
            "ok"
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(app.state.hub.start_reads(), 0, "no read while alone");

    // The mechanic arrives: one check reads the session and starts it.
    let mut mech = Client::connect(&app).await;
    let joined = mech
        .join(&topic, &token(&app, &mechanic).await, config(json!([])))
        .await;
    let mref = joined[0].as_str().unwrap().to_string();
    track(&mut mech, &topic, &mref, &mechanic, "mechanic").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (_, body) = app
            .get(&format!("/api/sessions/{session}"), &customer)
            .await;
        if body["status"] == "live" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never went live");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let reads = app.state.hub.start_reads();
    assert!((1..=2).contains(&reads), "{reads} reads to start it");

    // Live now: re-tracks by both, and a reconnect of the customer, read nothing more.
    for _ in 0..20 {
        track(&mut cust, &topic, &cref, &customer, "customer").await;
        track(&mut mech, &topic, &mref, &mechanic, "mechanic").await;
    }
    let mut again = Client::connect(&app).await;
    let joined = again
        .join(&topic, &token(&app, &customer).await, config(json!([])))
        .await;
    let aref = joined[0].as_str().unwrap().to_string();
    drop(cust);
    tokio::time::sleep(Duration::from_millis(300)).await;
    track(&mut again, &topic, &aref, &customer, "customer").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        app.state.hub.start_reads(),
        reads,
        "a live session is never read again"
    );
}

#[tokio::test]
async fn clients_cannot_send_the_servers_events() {
    let app = spawn_app().await;
    let (customer, mechanic, session) = app.waiting_session().await;
    let chat = chat_topic(session);
    let mut receiver = Client::connect(&app).await;
    receiver
        .join(&chat, &token(&app, &mechanic).await, config(json!([])))
        .await;
    let mut sender = Client::connect(&app).await;
    let joined = sender
        .join(&chat, &token(&app, &customer).await, config(json!([])))
        .await;
    let sref = joined[0].as_str().unwrap().to_string();
    let refused = broadcast(&mut sender, &chat, &sref, "session_ending").await;
    assert_eq!(refused[4]["status"], "error");
    assert!(
        reason(&refused).contains("only the server sends"),
        "{refused}"
    );
    // The binary form (realtime-js on 2.0.0) is refused the same way.
    let push = wrenchline_protocol::realtime::UserBroadcast {
        join_ref: Some(sref.clone()),
        r#ref: Some("b1".into()),
        topic: chat.clone(),
        event: "session_ending".into(),
        metadata: None,
        payload: wrenchline_protocol::realtime::BroadcastPayload::Json(json!({"seconds_left": 1})),
    };
    sender
        .ws
        .send(Message::binary(push.encode_push().unwrap()))
        .await
        .unwrap();
    let refused = sender.reply("b1").await;
    assert!(
        reason(&refused).contains("only the server sends"),
        "{refused}"
    );
    assert_eq!(
        broadcast(&mut sender, &chat, &sref, "typing").await[4]["status"],
        "ok"
    );
    let heard = receiver.drain(Duration::from_millis(500)).await;
    let events: Vec<&Value> = heard
        .iter()
        .filter(|f| f[3] == "broadcast")
        .map(|f| &f[4]["event"])
        .collect();
    assert_eq!(events, vec!["typing"], "only the typing broadcast arrived");
}

#[tokio::test]
async fn postgres_changes_bindings_are_merged_and_capped() {
    let app = spawn_app_with(|s| s.limits.postgres_changes_per_join = 3).await;
    let (customer, _mechanic, session) = app.waiting_session().await;
    let ct = token(&app, &customer).await;
    let chat = chat_topic(session);
    let messages = json!({"event": "INSERT", "schema": "public", "table": "messages", "filter": format!("session_id=eq.{session}")});
    let row = json!({"event": "*", "schema": "public", "table": "sessions", "filter": format!("id=eq.{session}")});
    let mut c = Client::connect(&app).await;
    let joined = c
        .join(
            &chat,
            &ct,
            config(json!([messages, messages, row, messages, row])),
        )
        .await;
    assert_eq!(joined[4]["status"], "ok", "{joined}");
    let echo = joined[4]["response"]["postgres_changes"]
        .as_array()
        .unwrap();
    assert_eq!(
        echo.len(),
        5,
        "one echo per binding sent, as realtime-js expects"
    );
    let message_id = echo[0]["id"].clone();
    assert_eq!(echo[1]["id"], message_id);
    let (status, _) = app
        .post(
            &format!("/api/sessions/{session}/messages"),
            &customer,
            Some(&json!({"body": "hello", "client_id": "c-1"})),
        )
        .await;
    assert!(status.is_success());
    let change = c
        .expect("the message", |f| f[3] == "postgres_changes")
        .await;
    assert_eq!(
        change[4]["ids"],
        json!([message_id]),
        "one id, once: {change}"
    );
    let more = c.drain(Duration::from_millis(300)).await;
    assert!(
        !more.iter().any(|f| f[3] == "postgres_changes"),
        "delivered once: {more:?}"
    );

    // Four distinct bindings are more than a join may carry.
    let events = ["INSERT", "UPDATE", "DELETE", "*"];
    let four: Vec<Value> = events
        .iter()
        .map(|e| json!({"event": e, "schema": "public", "table": "messages", "filter": format!("session_id=eq.{session}")}))
        .collect();
    let mut d = Client::connect(&app).await;
    let refused = d.join(&chat, &ct, config(json!(four))).await;
    assert_eq!(refused[4]["status"], "error");
    assert!(reason(&refused).starts_with("TooManyBindings"), "{refused}");
    assert!(reason(&refused).contains('3'), "{refused}");
}

#[tokio::test]
async fn the_outbound_queue_is_bounded_in_bytes() {
    let app = spawn_app_with(|s| {
        s.limits.outbound_queue_max_bytes = 256 * 1024;
        s.limits.broadcasts_per_connection_per_second = 100_000;
        s.limits.broadcasts_per_user_per_second = 100_000;
    })
    .await;
    let (customer, mechanic, session) = app.waiting_session().await;
    let chat = chat_topic(session);
    let mut stuck = Client::connect(&app).await;
    stuck
        .join(&chat, &token(&app, &customer).await, config(json!([])))
        .await;
    let mut sender = Client::connect(&app).await;
    let joined = sender
        .join(
            &chat,
            &token(&app, &mechanic).await,
            json!({"broadcast": {"self": false, "ack": false}}),
        )
        .await;
    let sref = joined[0].as_str().unwrap().to_string();
    // 32 KiB frames: 20 MiB in all is far from 1024 frames queued beyond what the socket
    // buffers hold, so only the byte bound can cut the reader off.
    let big = "x".repeat(32 * 1024);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    for sent in 0..640 {
        if app.state.metrics.realtime_connections.get() < 2 {
            break;
        }
        assert!(std::time::Instant::now() < deadline);
        sender
            .push(
                Some(&sref),
                &chat,
                "broadcast",
                json!({"type": "broadcast", "event": "typing", "payload": {"pad": big, "n": sent}}),
            )
            .await;
        if sent % 20 == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while app.state.metrics.realtime_connections.get() == 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the reader with 20 MiB unread was never cut off"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(app.state.metrics.realtime_connections.get(), 1);
}

/// A client on a slow link under a stream (it reads about 400 KiB a second, through a small
/// receive buffer, while a little more arrives, after a burst that fills the socket buffers):
/// the server's writes to it wait all the time and its queue never empties. Its heartbeats must
/// still be read and answered, and it must not be cut off as idle.
#[tokio::test]
async fn a_client_under_a_stream_still_has_its_heartbeats_answered() {
    let app = spawn_app_with(|s| {
        s.limits.broadcasts_per_connection_per_second = 1000;
        s.limits.broadcasts_per_user_per_second = 1000;
        // The stream here is a large backlog on purpose; the byte bound is tested on its own.
        s.limits.outbound_queue_max_bytes = 32 * 1024 * 1024;
    })
    .await;
    let (customer, mechanic, session) = app.waiting_session().await;
    let chat = chat_topic(session);
    let addr: std::net::SocketAddr = app.base.trim_start_matches("http://").parse().unwrap();
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let stream = tokio_tungstenite::MaybeTlsStream::Plain(stream);
    let (ws, _) = tokio_tungstenite::client_async(socket_url(&app, "vsn=2.0.0"), stream)
        .await
        .unwrap();
    let mut reader = Client { ws, next_ref: 0 };
    reader
        .join(&chat, &token(&app, &customer).await, config(json!([])))
        .await;
    let mut sender = Client::connect(&app).await;
    let joined = sender
        .join(
            &chat,
            &token(&app, &mechanic).await,
            json!({"broadcast": {"self": false, "ack": false}}),
        )
        .await;
    let sref = joined[0].as_str().unwrap().to_string();

    // A burst of 100 frames of 60 KiB, then 7 a second (420 KiB/s) for the run.
    let run = Duration::from_secs(36);
    let pad = "x".repeat(60 * 1024);
    let streaming = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(143));
        let until = tokio::time::Instant::now() + run;
        let mut burst = 100;
        while tokio::time::Instant::now() < until {
            if burst > 0 {
                burst -= 1;
            } else {
                tick.tick().await;
            }
            let frame = json!([sref, "0", chat, "broadcast", {"type": "broadcast", "event": "typing", "payload": {"pad": pad}}]);
            if sender
                .ws
                .send(Message::text(frame.to_string()))
                .await
                .is_err()
            {
                break;
            }
        }
        sender
    });

    let started = tokio::time::Instant::now();
    let mut next_heartbeat = started;
    let mut asked: Vec<(String, tokio::time::Instant)> = Vec::new();
    let mut answered = 0;
    let mut slowest = Duration::ZERO;
    while started.elapsed() < run {
        if tokio::time::Instant::now() >= next_heartbeat {
            let r = reader.push(None, "phoenix", "heartbeat", json!({})).await;
            asked.push((r, tokio::time::Instant::now()));
            next_heartbeat += Duration::from_secs(3);
        }
        let next = tokio::time::timeout(Duration::from_secs(5), reader.ws.next()).await;
        let message = match next {
            Ok(Some(Ok(message))) => message,
            other => panic!(
                "the reader lost its connection after {:?}: {other:?}",
                started.elapsed()
            ),
        };
        match message {
            Message::Text(text) => {
                let frame: Value = serde_json::from_str(text.as_str()).unwrap();
                if frame[2] == "phoenix" && frame[3] == "phx_reply" {
                    let r = frame[1].as_str().unwrap();
                    let at = asked
                        .iter()
                        .find(|(a, _)| a == r)
                        .expect("a reply asked for")
                        .1;
                    slowest = slowest.max(at.elapsed());
                    answered += 1;
                }
            }
            Message::Close(close) => panic!(
                "the reader was cut off after {:?}: {close:?}",
                started.elapsed()
            ),
            _ => {}
        }
        // 400 KiB a second.
        tokio::time::sleep(Duration::from_micros(60 * 1024 * 1_000_000 / (400 * 1024))).await;
    }
    let _sender = streaming.await.unwrap();
    // The stream has stopped: what is still queued drains, the last replies with it.
    while answered < asked.len() {
        let next = tokio::time::timeout(Duration::from_secs(20), reader.ws.next()).await;
        let Ok(Some(Ok(Message::Text(text)))) = next else {
            panic!(
                "{answered} of {} heartbeats answered: {next:?}",
                asked.len()
            );
        };
        let frame: Value = serde_json::from_str(text.as_str()).unwrap();
        if frame[2] == "phoenix" && frame[3] == "phx_reply" {
            let r = frame[1].as_str().unwrap();
            let at = asked
                .iter()
                .find(|(a, _)| a == r)
                .expect("a reply asked for")
                .1;
            slowest = slowest.max(at.elapsed());
            answered += 1;
        }
    }
    // How long a reply waits depends on the backlog ahead of it (and on the machine's load), so
    // it is reported, not bounded: what matters is that every heartbeat was read and answered
    // and the connection lived on.
    assert!(asked.len() >= 10);
    eprintln!("{answered} heartbeats answered, the slowest after {slowest:?}");
    assert_eq!(app.state.metrics.realtime_connections.get(), 2);
}

#[tokio::test]
async fn a_disabled_mechanic_loses_its_channels_and_cannot_refresh_its_token() {
    let app = spawn_app().await;
    let (_customer, mechanic, session) = app.waiting_session().await;
    let mt = token(&app, &mechanic).await;
    let email = app.email_of(&mechanic).await;
    let chat = chat_topic(session);
    let mut refreshing = Client::connect(&app).await;
    let joined = refreshing.join(&chat, &mt, config(json!([]))).await;
    assert_eq!(joined[4]["status"], "ok");
    let jref = joined[0].as_str().unwrap().to_string();
    let mut feed = Client::connect(&app).await;
    assert_eq!(
        feed.join("realtime:requests", &mt, config(json!([]))).await[4]["status"],
        "ok"
    );

    // Another process disables the account, as an administrator would.
    let db = app.database_url.clone();
    let (ok, _, stderr) = tokio::task::spawn_blocking(move || {
        run_server_command(
            &[
                "mechanic",
                "disable",
                "--email",
                &email,
                "--database-url",
                &db,
            ],
            None,
        )
    })
    .await
    .unwrap();
    assert!(ok, "{stderr}");

    // A refresh with the (still unexpired) token is checked against the account.
    refreshing
        .push(
            Some(&jref),
            &chat,
            "access_token",
            json!({"access_token": mt}),
        )
        .await;
    let closed = refreshing
        .expect("the channel closed", |f| {
            f[3] == "system" || f[3] == "phx_close"
        })
        .await;
    assert_eq!(closed[4]["status"], "error", "{closed}");
    assert!(
        closed[4]["message"].as_str().unwrap().contains("disabled"),
        "{closed}"
    );

    // The other connection is closed within a minute, saying why.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let next = tokio::time::timeout_at(deadline, feed.ws.next())
            .await
            .expect("the disabled mechanic's connection closed within a minute");
        match next {
            Some(Ok(Message::Close(Some(close)))) => {
                assert!(close.reason.contains("disabled"), "{close:?}");
                break;
            }
            Some(Ok(_)) => continue,
            other => panic!("closed without a close frame: {other:?}"),
        }
    }
    // And a new join is refused.
    let mut again = Client::connect(&app).await;
    let refused = again
        .join("realtime:requests", &mt, config(json!([])))
        .await;
    assert_eq!(refused[4]["status"], "error");
}

#[tokio::test]
async fn the_socket_url_carries_no_token_and_its_apikey_is_ignored() {
    let app = spawn_app().await;
    let (customer, _mechanic, session) = app.waiting_session().await;
    let ct = token(&app, &customer).await;
    let chat = chat_topic(session);

    // No apikey at all, the token in the join: joined.
    let mut bare = connect_url(&socket_url(&app, "vsn=2.0.0")).await;
    assert_eq!(
        bare.join(&chat, &ct, config(json!([]))).await[4]["status"],
        "ok"
    );
    // realtime-js' constant apikey, the token in the join: joined.
    let mut constant = connect_url(&socket_url(&app, "apikey=wrenchline&vsn=2.0.0")).await;
    assert_eq!(
        constant.join(&chat, &ct, config(json!([]))).await[4]["status"],
        "ok"
    );
    // A valid token as apikey and none in the join: refused, the apikey is no credential.
    let mut keyed = connect_url(&socket_url(&app, &format!("apikey={ct}&vsn=2.0.0"))).await;
    let r = (keyed.next_ref + 1).to_string();
    keyed
        .push(
            Some(&r),
            &chat,
            "phx_join",
            json!({"config": config(json!([]))}),
        )
        .await;
    let refused = keyed.reply(&r).await;
    assert_eq!(refused[4]["status"], "error");
    assert!(
        reason(&refused).contains("access token is required"),
        "{refused}"
    );
}

/// One customer opens every socket its address may hold and floods its own session with joins,
/// tracks and broadcasts, while an unrelated customer and mechanic chat beside it. The caps hold,
/// and the unrelated pair sees every message and no error. (Its latency is measured by the
/// `attack` bench scenario, not asserted here.)
#[tokio::test]
async fn one_customer_flooding_its_session_does_not_disturb_another() {
    const SOCKETS: usize = 40;
    let app = spawn_app_with(|s| s.limits.connections_per_address = SOCKETS as u32 + 4).await;
    let (attacker, _their_mechanic, own) = app.waiting_session().await;
    let at = token(&app, &attacker).await;
    let (customer, mechanic, session) = app.waiting_session().await;
    let chat = chat_topic(session);

    // The unrelated pair, both on the chat topic and tracked on the presence topic.
    let mut cust = Client::connect(&app).await;
    let mut mech = Client::connect(&app).await;
    let cj = cust
        .join(&chat, &token(&app, &customer).await, config(json!([])))
        .await;
    let mj = mech
        .join(&chat, &token(&app, &mechanic).await, config(json!([])))
        .await;
    let (cref, mref) = (
        cj[0].as_str().unwrap().to_string(),
        mj[0].as_str().unwrap().to_string(),
    );

    // The attacker: as many sockets as allowed (the last few refused), each joining and
    // tracking and broadcasting as fast as the server answers.
    let stop = tokio_util::sync::CancellationToken::new();
    let mut flood = tokio::task::JoinSet::new();
    let url = socket_url(&app, "vsn=2.0.0");
    for i in 0..SOCKETS {
        let (url, at, stop, user) = (
            url.clone(),
            at.clone(),
            stop.clone(),
            attacker.id().unwrap(),
        );
        flood.spawn(async move {
            let Ok((ws, _)) = tokio_tungstenite::connect_async(&url).await else {
                return (0usize, 0usize);
            };
            let mut c = Client { ws, next_ref: 0 };
            let topics = [presence_topic(own), chat_topic(own)];
            let (mut joined, mut refused) = (0, 0);
            while !stop.is_cancelled() {
                let topic = &topics[i % 2];
                let reply = c.join(topic, &at, config(json!([]))).await;
                if reply[4]["status"] == "ok" {
                    joined += 1;
                    let jref = reply[0].as_str().unwrap().to_string();
                    for _ in 0..5 {
                        let payload = json!({"type": "presence", "event": "track", "payload": {"user_id": user.to_string(), "role": "customer"}});
                        c.push(Some(&jref), topic, "presence", payload).await;
                        c.push(Some(&jref), topic, "broadcast", json!({"type": "broadcast", "event": "typing", "payload": {}})).await;
                    }
                } else {
                    refused += 1;
                }
                let _ = c.drain(Duration::from_millis(5)).await;
            }
            (joined, refused)
        });
    }

    // The pair talks for the length of the flood: every broadcast arrives, none is refused.
    let mut sent = 0;
    let mut most_held = 0;
    let until = tokio::time::Instant::now() + Duration::from_secs(8);
    while tokio::time::Instant::now() < until {
        exchange(&mut cust, &mut mech, &cref, &chat).await;
        exchange(&mut mech, &mut cust, &mref, &chat).await;
        sent += 2;
        for topic in [presence_topic(own), chat_topic(own)] {
            let held = app
                .state
                .hub
                .topic(&topic)
                .map_or(0, |t| t.subscriber_count());
            most_held = most_held.max(held);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(sent > 20);
    // At no point did the attacker hold more than its share of either topic.
    assert!(
        (1..=4).contains(&most_held),
        "{most_held} subscriptions on one topic"
    );
    stop.cancel();
    let (mut joined, mut refused) = (0, 0);
    while let Some(result) = flood.join_next().await {
        let (j, r) = result.unwrap();
        joined += j;
        refused += r;
    }
    assert!(refused > 0, "the attacker was refused some joins");
    assert!(joined > 0);
}

/// One broadcast from `from` that must be taken and reach `to`.
async fn exchange(from: &mut Client, to: &mut Client, join_ref: &str, topic: &str) {
    let reply = broadcast(from, topic, join_ref, "typing").await;
    assert_eq!(
        reply[4]["status"], "ok",
        "the unrelated pair refused: {reply}"
    );
    to.expect("the other's broadcast", |f| {
        f[3] == "broadcast" && f[4]["event"] == "typing"
    })
    .await;
}

/// realtime-js's HTTP fallback for broadcasts, authorized and limited like the socket's.
#[tokio::test]
async fn the_http_broadcast_path_is_authorized_and_limited_like_the_socket() {
    let app = spawn_app_with(|s| s.limits.broadcasts_per_user_per_second = 3).await;
    let (customer, mechanic, session) = app.waiting_session().await;
    let (outsider, _) = app.offered_session().await;
    let chat = chat_topic(session);
    let mut listener = Client::connect(&app).await;
    listener
        .join(&chat, &token(&app, &mechanic).await, config(json!([])))
        .await;
    let ct = token(&app, &customer).await;
    let post = |token: Option<String>, body: Value| {
        let mut request = app
            .http
            .post(format!("{}/realtime/v1/api/broadcast", app.base))
            .header("apikey", "wrenchline")
            .json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    let one = |topic: &str, event: &str| json!({"messages": [{"topic": topic, "event": event, "payload": {"typing": true}, "private": false}]});
    let topic = format!("chat:session-{session}");

    let sent = post(Some(ct.clone()), one(&topic, "typing")).await.unwrap();
    assert_eq!(sent.status(), reqwest::StatusCode::ACCEPTED);
    let heard = listener
        .expect("the HTTP broadcast", |f| f[3] == "broadcast")
        .await;
    assert_eq!(heard[4]["event"], "typing");
    assert_eq!(heard[4]["payload"]["typing"], true);

    for (who, token, body, status) in [
        ("no token", None, one(&topic, "typing"), 401),
        (
            "a server event",
            Some(ct.clone()),
            one(&topic, "session_ending"),
            403,
        ),
        (
            "the request feed",
            Some(ct.clone()),
            one("requests", "typing"),
            403,
        ),
        (
            "someone else's session",
            Some(token(&app, &outsider).await),
            one(&topic, "typing"),
            404,
        ),
        (
            "over the user's budget",
            Some(ct.clone()),
            json!({"messages": [
                {"topic": topic, "event": "a", "payload": {}},
                {"topic": topic, "event": "b", "payload": {}},
                {"topic": topic, "event": "c", "payload": {}},
            ]}),
            429,
        ),
    ] {
        let refused = post(token, body).await.unwrap();
        assert_eq!(refused.status().as_u16(), status, "{who}");
    }
    let nothing = listener.drain(Duration::from_millis(300)).await;
    assert!(
        !nothing.iter().any(|f| f[3] == "broadcast"),
        "refused broadcasts reached nobody: {nothing:?}"
    );
}

/// A joiner's presence state is built outside the topic's lock; joiners arriving while others
/// track must still get their state before any diff, and end with the same presence as the
/// server.
#[tokio::test]
async fn joiners_during_tracks_get_their_state_first_and_converge() {
    use wrenchline_protocol::realtime::presence_sync::PresenceState;
    let app = spawn_app_with(|s| {
        s.limits.presence_per_connection_per_second = 10_000;
        s.limits.presence_per_user_per_second = 10_000;
        s.limits.joins_per_user_per_second = 10_000;
        s.limits.session_topic_subscribers_per_user = 10;
        s.limits.session_topic_subscribers = 20;
    })
    .await;
    let (customer, mechanic, session) = app.waiting_session().await;
    let (ct, mt) = (token(&app, &customer).await, token(&app, &mechanic).await);
    let topic = presence_topic(session);

    let stop = tokio_util::sync::CancellationToken::new();
    let mut trackers = tokio::task::JoinSet::new();
    for (actor, t, role) in [(&customer, &ct, "customer"), (&mechanic, &mt, "mechanic")] {
        let mut c = Client::connect(&app).await;
        let joined = c.join(&topic, t, config(json!([]))).await;
        let jref = joined[0].as_str().unwrap().to_string();
        let (actor, topic, stop) = (actor.clone(), topic.clone(), stop.clone());
        trackers.spawn(async move {
            while !stop.is_cancelled() {
                track(&mut c, &topic, &jref, &actor, role).await;
            }
            c
        });
    }
    let mut joiners = tokio::task::JoinSet::new();
    for i in 0..6 {
        tokio::time::sleep(Duration::from_millis(70)).await;
        let mut c = Client::connect(&app).await;
        let t = if i % 2 == 0 { ct.clone() } else { mt.clone() };
        let (topic, stop) = (topic.clone(), stop.clone());
        joiners.spawn(async move {
            let joined = c.join(&topic, &t, config(json!([]))).await;
            assert_eq!(joined[4]["status"], "ok", "{joined}");
            let mut state: Option<PresenceState> = None;
            loop {
                let quiet = stop.is_cancelled();
                let frames = c.drain(Duration::from_millis(100)).await;
                for f in &frames {
                    match (f[3].as_str(), state.as_mut()) {
                        (Some("presence_state"), None) => {
                            let mut s = PresenceState::new();
                            s.sync_state(&f[4]);
                            state = Some(s);
                        }
                        (Some("presence_diff"), Some(s)) => {
                            s.sync_diff(&f[4]);
                        }
                        (Some("presence_diff"), None) => panic!("a diff before the state"),
                        (Some("presence_state"), Some(_)) => panic!("a second state"),
                        _ => {}
                    }
                }
                if quiet && frames.is_empty() {
                    break;
                }
            }
            state.expect("a presence state").to_value()
        });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.cancel();
    let _trackers: Vec<Client> = trackers.join_all().await;
    let views = joiners.join_all().await;
    // A late joiner's state is what the server holds now.
    let mut late = Client::connect(&app).await;
    late.join(&topic, &ct, config(json!([]))).await;
    let truth = late
        .expect("presence_state", |f| f[3] == "presence_state")
        .await;
    let mut expected = PresenceState::new();
    expected.sync_state(&truth[4]);
    for view in views {
        assert_eq!(view, expected.to_value());
    }
}
