//! Cluster mode against a real Redis (and, for whole nodes, a real PostgreSQL): the shared
//! presence's expiry and its paced refresh, the reaper of dead nodes, nodes starting at once on an empty database, and
//! row changes crossing the bus once each, in order. Every test here needs
//! `WRENCHLINE_TEST_REDIS_URL` (and `WRENCHLINE_TEST_POSTGRES_URL` for whole nodes) and fails
//! without it; they are ignored by a plain `cargo nextest run` and run with
//! `scripts/with-postgres.sh scripts/with-redis.sh cargo nextest run -p wrenchline-server --test
//! cluster --run-ignored only`.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::AsyncCommands;
use serde_json::json;
use uuid::Uuid;
use wrenchline_server::cluster::{self, Cluster};
use wrenchline_server::limits::Limits;
use wrenchline_server::presence::PresenceEntry;
use wrenchline_server::realtime::bus::{Envelope, Event};
use wrenchline_server::realtime::Hub;

fn redis_url() -> String {
    std::env::var("WRENCHLINE_TEST_REDIS_URL")
        .expect("WRENCHLINE_TEST_REDIS_URL is not set: run these tests under scripts/with-redis.sh")
}

async fn raw() -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("Redis answers")
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

fn entry(key: &str, user: Uuid) -> PresenceEntry {
    PresenceEntry {
        key: key.into(),
        user_id: user,
        role: wrenchline_protocol::Role::Customer,
        meta: json!({ "user_id": user, "role": "customer", "phx_ref": format!("ref-{key}") }),
    }
}

/// Stores a presence as a node would: in the topic's hash, its expiry set and the node's set.
async fn store(
    conn: &mut redis::aio::MultiplexedConnection,
    node: &str,
    topic: &str,
    conn_id: u64,
    entry: &PresenceEntry,
    expires: i64,
) {
    let field = format!("{node}/{conn_id}");
    let _: () = redis::pipe()
        .hset(
            cluster::presence_key(topic),
            &field,
            serde_json::to_string(entry).unwrap(),
        )
        .zadd(cluster::expiry_key(topic), &field, expires)
        .sadd(
            cluster::node_presences_key(node),
            format!("{topic}\t{field}"),
        )
        .sadd(cluster::NODES_KEY, node)
        .query_async(conn)
        .await
        .unwrap();
}

fn topic() -> String {
    format!("realtime:chat:session-{}:presence", Uuid::new_v4())
}

#[tokio::test]
#[ignore = "needs Redis: run under scripts/with-redis.sh with --run-ignored only"]
async fn expired_presences_are_dropped_when_a_topic_is_read() {
    let mut conn = raw().await;
    let node = format!("test-{}", Uuid::new_v4().simple());
    let topic = topic();
    let (fresh, stale) = (
        entry("fresh", Uuid::new_v4()),
        entry("stale", Uuid::new_v4()),
    );
    store(&mut conn, &node, &topic, 1, &fresh, now_ms() + 60_000).await;
    store(&mut conn, &node, &topic, 2, &stale, now_ms() - 1).await;

    let reader = Cluster::new(&redis_url(), format!("reader-{}", Uuid::new_v4().simple())).unwrap();
    let live = reader.presence(&topic).await.expect("Redis answers");
    assert_eq!(live, [fresh], "the expired presence is not reported");
    let fields: Vec<String> = conn.hkeys(cluster::presence_key(&topic)).await.unwrap();
    assert_eq!(
        fields,
        [format!("{node}/1")],
        "and it is gone from the hash"
    );
    let scored: usize = conn.zcard(cluster::expiry_key(&topic)).await.unwrap();
    assert_eq!(scored, 1, "and from the expiry set");
}

#[tokio::test]
#[ignore = "needs Redis: run under scripts/with-redis.sh with --run-ignored only"]
async fn one_survivor_reaps_a_dead_node_and_publishes_its_leaves_once() {
    let mut conn = raw().await;
    let dead = format!("dead-{}", Uuid::new_v4().simple());
    let topic = topic();
    let (a, b) = (
        entry("key-a", Uuid::new_v4()),
        entry("key-b", Uuid::new_v4()),
    );
    store(&mut conn, &dead, &topic, 1, &a, now_ms() + 60_000).await;
    store(&mut conn, &dead, &topic, 2, &b, now_ms() + 60_000).await;
    // The dead node has no heartbeat key: it expired.

    let mut bus = redis::Client::open(redis_url())
        .unwrap()
        .get_async_pubsub()
        .await
        .unwrap();
    bus.subscribe(cluster::CHANNEL).await.unwrap();

    let survivors: Vec<(Arc<Cluster>, Hub)> = (0..3)
        .map(|i| {
            let name = format!("survivor{i}-{}", Uuid::new_v4().simple());
            let hub = Hub::new(&Limits::default());
            let _relay = hub.connect_relay(&name);
            (Arc::new(Cluster::new(&redis_url(), name).unwrap()), hub)
        })
        .collect();
    let reaped = futures_util::future::join_all(
        survivors
            .iter()
            .map(|(cluster, hub)| async move { cluster.reap_dead(hub).await.unwrap() }),
    )
    .await;
    // Other tests' dead nodes may be reaped meanwhile; this node's two presences are reaped
    // once, by one survivor.
    let remaining: usize = conn.hlen(cluster::presence_key(&topic)).await.unwrap();
    assert_eq!(remaining, 0, "the dead node's presences are gone");
    let member: bool = conn.sismember(cluster::NODES_KEY, &dead).await.unwrap();
    assert!(!member, "and the node is forgotten");
    assert!(reaped.iter().sum::<usize>() >= 2, "{reaped:?}");

    let mut leaves = Vec::new();
    let mut messages = bus.on_message();
    while let Ok(Some(message)) =
        tokio::time::timeout(Duration::from_millis(500), messages.next()).await
    {
        let envelope: Envelope =
            serde_json::from_str(&message.get_payload::<String>().unwrap()).unwrap();
        if let Event::PresenceDiff {
            topic: t,
            joins,
            leaves: left,
        } = envelope.event
        {
            if t == topic {
                assert_eq!(joins, json!({}));
                leaves.push(left);
            }
        }
    }
    assert_eq!(leaves.len(), 1, "one leave diff for the topic: {leaves:?}");
    let left = leaves[0].as_object().unwrap();
    assert_eq!(left.len(), 2, "both keys left: {left:?}");
    assert_eq!(left["key-a"]["metas"][0], a.meta);
    assert_eq!(left["key-b"]["metas"][0], b.meta);
}

#[tokio::test]
#[ignore = "needs Redis: run under scripts/with-redis.sh with --run-ignored only"]
async fn a_live_node_is_not_reaped() {
    let mut conn = raw().await;
    let alive = format!("alive-{}", Uuid::new_v4().simple());
    let topic = topic();
    store(
        &mut conn,
        &alive,
        &topic,
        1,
        &entry("k", Uuid::new_v4()),
        now_ms() + 60_000,
    )
    .await;
    let _: () = conn
        .set_ex(cluster::alive_key(&alive), now_ms(), 30)
        .await
        .unwrap();
    let survivor = Cluster::new(
        &redis_url(),
        format!("survivor-{}", Uuid::new_v4().simple()),
    )
    .unwrap();
    let hub = Hub::new(&Limits::default());
    survivor.reap_dead(&hub).await.unwrap();
    let remaining: usize = conn.hlen(cluster::presence_key(&topic)).await.unwrap();
    assert_eq!(remaining, 1, "a node with a heartbeat keeps its presences");
    let _: () = conn.del(cluster::alive_key(&alive)).await.unwrap();
}

#[tokio::test]
#[ignore = "needs Redis: run under scripts/with-redis.sh with --run-ignored only"]
async fn presence_expiry_is_pushed_back_in_paced_pipelines_and_nothing_gone_comes_back() {
    let mut conn = raw().await;
    let node = format!("refresher-{}", Uuid::new_v4().simple());
    let topic = topic();
    let soon = now_ms() + 5_000;
    // Three pipelines' worth, and one presence that left meanwhile (not in Redis any more).
    let count = 2 * cluster::REFRESH_CHUNK + 10;
    for conn_id in 1..=count as u64 {
        let key = format!("key-{conn_id}");
        store(
            &mut conn,
            &node,
            &topic,
            conn_id,
            &entry(&key, Uuid::new_v4()),
            soon,
        )
        .await;
    }
    let gone = count as u64 + 1;
    let presences: Vec<(String, u64)> = (1..=gone).map(|c| (topic.clone(), c)).collect();

    let cluster = Cluster::new(&redis_url(), node.clone()).unwrap();
    let started = std::time::Instant::now();
    let before = now_ms();
    cluster
        .refresh_expiry(&presences, Duration::from_millis(240))
        .await
        .expect("Redis answers");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(150),
        "three pipelines spread over 240 ms are two gaps of 80 ms apart, not written at once \
         ({took:?})"
    );
    let scores: Vec<(String, i64)> = conn
        .zrange_withscores(cluster::expiry_key(&topic), 0, -1)
        .await
        .unwrap();
    assert_eq!(
        scores.len(),
        count,
        "the presence that left is not put back"
    );
    let ttl = cluster::ENTRY_TTL.as_millis() as i64;
    for (field, score) in &scores {
        assert!(
            *score >= before + ttl,
            "{field} expires at {score}, before {} (one ENTRY_TTL after the refresh)",
            before + ttl
        );
    }
}

// ---- whole nodes: these need PostgreSQL too (scripts/with-postgres.sh scripts/with-redis.sh) ----

/// A new, empty PostgreSQL database.
async fn empty_postgres() -> String {
    use sqlx::Connection;
    let base = std::env::var("WRENCHLINE_TEST_POSTGRES_URL").expect(
        "WRENCHLINE_TEST_POSTGRES_URL is not set: run these tests under scripts/with-postgres.sh",
    );
    let name = format!("wl_{}", Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&base).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let (prefix, _) = base.rsplit_once('/').unwrap();
    format!("{prefix}/{name}")
}

fn node_settings(database_url: &str, node: &str) -> wrenchline_server::Settings {
    let mut settings =
        wrenchline_server::Settings::new("127.0.0.1:0".parse().unwrap(), database_url);
    settings.redis_url = Some(redis_url());
    settings.node_id = Some(format!("{node}-{}", Uuid::new_v4().simple()));
    settings
}

#[tokio::test]
#[ignore = "needs Redis and PostgreSQL: run under scripts/with-postgres.sh scripts/with-redis.sh with --run-ignored only"]
async fn nodes_started_at_once_on_an_empty_database_accept_each_others_tokens() {
    let url = empty_postgres().await;
    let nodes = futures_util::future::join_all(
        (0..3)
            .map(|i| wrenchline_server::Application::build(node_settings(&url, &format!("n{i}")))),
    )
    .await;
    let states: Vec<_> = nodes
        .iter()
        .map(|built| built.as_ref().expect("every node starts").state().clone())
        .collect();
    let user = wrenchline_protocol::User {
        id: Uuid::new_v4(),
        role: wrenchline_protocol::Role::Mechanic,
        name: "M".into(),
        email: "m@example.com".into(),
    };
    for signer in &states {
        let token = signer.signer.sign(
            &user,
            wrenchline_server::auth::TokenKind::Access,
            time::Duration::minutes(5),
            None,
            time::OffsetDateTime::now_utc(),
        );
        for verifier in &states {
            let claims = verifier
                .signer
                .verify(&token, wrenchline_server::auth::TokenKind::Access)
                .expect("a token from one node is valid on every node");
            assert_eq!(claims.sub, user.id);
        }
    }
}

/// A subscriber of `topic` on `hub`, with a `postgres_changes` binding on the session's messages.
fn subscribe(
    hub: &Hub,
    session: Uuid,
) -> flume::Receiver<wrenchline_server::realtime::hub::Outgoing> {
    use wrenchline_protocol::realtime::topics::Topic;
    use wrenchline_protocol::realtime::{Filter, Frame};
    use wrenchline_server::realtime::hub::{ActiveBinding, ConnHandle, Subscriber, Wire};
    let (tx, rx) = flume::bounded(64);
    let conn = ConnHandle::new(
        hub.next_conn_id(),
        tx,
        tokio_util::sync::CancellationToken::new(),
        1 << 20,
    );
    let subscriber = Subscriber {
        conn,
        join_ref: "1".into(),
        user_id: Uuid::new_v4(),
        role: wrenchline_protocol::Role::Customer,
        wire: Wire::V1,
        broadcast_self: false,
        bindings: vec![ActiveBinding {
            id: 7,
            table: "messages".into(),
            event: "*".into(),
            filter: Filter::parse(&format!("session_id=eq.{session}")).unwrap(),
        }]
        .into(),
        pending: Subscriber::pending_for(false),
    };
    let reply = Frame::new(Topic::SessionChat(session).full(), "phx_reply", json!({}));
    hub.subscribe(Topic::SessionChat(session), subscriber, &reply)
        .expect("room on the topic");
    rx
}

/// The `postgres_changes` frames a subscriber receives within `wait`.
async fn changes_received(
    rx: &mut flume::Receiver<wrenchline_server::realtime::hub::Outgoing>,
    wait: Duration,
) -> Vec<serde_json::Value> {
    let mut frames = Vec::new();
    while let Ok(Ok(out)) = tokio::time::timeout(wait, rx.recv_async()).await {
        if let wrenchline_server::realtime::hub::Outgoing::Text(text) = out {
            let frame: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
            if frame["event"] == "postgres_changes" {
                frames.push(frame);
            }
        }
    }
    frames
}

#[tokio::test]
#[ignore = "needs Redis and PostgreSQL: run under scripts/with-postgres.sh scripts/with-redis.sh with --run-ignored only"]
async fn a_change_committed_on_one_node_reaches_every_node_once_in_order() {
    let url = empty_postgres().await;
    let mut stops = Vec::new();
    let mut states = Vec::new();
    for i in 0..2 {
        let app = wrenchline_server::Application::build(node_settings(&url, &format!("n{i}")))
            .await
            .unwrap();
        states.push(app.state().clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        stops.push(stop);
        tokio::spawn(app.run_until_stopped(async move {
            let _ = stopped.await;
        }));
    }
    for state in &states {
        let cluster = state.cluster.clone().expect("cluster mode");
        tokio::time::timeout(Duration::from_secs(10), async {
            while !cluster.is_up() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("every node subscribes to the bus");
    }
    let session = Uuid::new_v4();
    let mut here = subscribe(&states[0].hub, session);
    let mut there = subscribe(&states[1].hub, session);
    for seq in 1..=5 {
        states[0]
            .events
            .publish(wrenchline_server::events::Change::MessageInserted(
                wrenchline_protocol::Message {
                    id: Uuid::new_v4(),
                    session_id: session,
                    seq,
                    sender_id: Uuid::new_v4(),
                    sender_role: wrenchline_protocol::Role::Customer,
                    body: format!("m{seq}"),
                    client_id: format!("c{seq}"),
                    created_at: time::OffsetDateTime::now_utc(),
                    attachments: Vec::new(),
                },
            ));
    }
    for (name, rx) in [
        ("the committing node", &mut here),
        ("the other node", &mut there),
    ] {
        let frames = changes_received(rx, Duration::from_millis(1500)).await;
        let seqs: Vec<i64> = frames
            .iter()
            .map(|f| f["payload"]["data"]["record"]["seq"].as_i64().unwrap())
            .collect();
        assert_eq!(seqs, [1, 2, 3, 4, 5], "{name}: each once, in commit order");
    }
    for stop in stops {
        let _ = stop.send(());
    }
}
