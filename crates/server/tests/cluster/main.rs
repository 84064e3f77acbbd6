//! The Redis side of cluster mode against a real Redis: the shared presence's expiry and the
//! reaper of dead nodes. Every test here needs `WRENCHLINE_TEST_REDIS_URL` and fails without it;
//! they are ignored by a plain `cargo nextest run` and run with
//! `scripts/with-redis.sh cargo nextest run -p wrenchline-server --test cluster --run-ignored only`.

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
