//! Persisted chat: a participant posts a message over HTTP, the server commits it, and the other
//! participant receives the `postgres_changes` INSERT on `chat:session-{id}`. Both sides use
//! `wrenchline-client` as the desktop app does (`ApiClient::post_message`, `RealtimeClient`).
//! Posts go out open-loop at a fixed rate, swept upwards; on SQLite and on PostgreSQL, and on
//! PostgreSQL again with three nodes of a cluster (Redis), every session's customer on one node
//! and its mechanic on the next, so that every message crosses the bus.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::json;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::{sleep_until, Instant};
use uuid::Uuid;
use wrenchline_client::{
    ApiClient, ChannelEvent, ChannelOptions, PostgresChanges, RealtimeClient, RealtimeOptions,
};

use super::{start_servers, Env};
use crate::fixture::Fixture;
use crate::procs::{CpuMeter, Db, Server, System};
use crate::report::{Metrics, Outcome};
use crate::stats::{now_micros, Counter, Latencies, LatencySummary};

/// The bound under which a step counts as sustained.
pub const SUSTAINED_P99_MS: f64 = 50.0;
/// The worst p99 over the offered rates up to the sustained one.
pub const WORST_P99: &str = "worst p99 ms up to sustained";
/// Posts in flight before the generator counts itself saturated.
const IN_FLIGHT: usize = 512;

static CLIENT_IDS: AtomicU64 = AtomicU64::new(0);

#[derive(Default)]
struct Tally {
    posted: Counter,
    failed: Counter,
    dropped: Counter,
    received: Counter,
    delivery: Latencies,
    http: Latencies,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChatStep {
    pub offered: f64,
    pub posted: f64,
    pub delivered: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub post_p99_ms: f64,
    pub failed: u64,
    pub dropped: u64,
    pub server_cpu: f64,
    pub kept_up: bool,
}

/// One participant: who, and how they post.
#[derive(Clone)]
struct Poster {
    session: Uuid,
    api: ApiClient,
}

fn parse_ts(body: &str) -> Option<u64> {
    body.strip_prefix("ts=")?.split(' ').next()?.parse().ok()
}

/// The nodes of the cross-node run.
const CLUSTER_NODES: usize = 3;

async fn run(
    env: &Env,
    db: &Db,
    fixture: &Fixture,
    redis: Option<&str>,
) -> anyhow::Result<Vec<ChatStep>> {
    let sizes = &env.sizes;
    let mut servers = start_servers(env, db, redis.map(|r| (r, CLUSTER_NODES))).await?;
    let result = async {
        let bases: Vec<String> = servers.iter().map(Server::base_url).collect();
        let apis = bases
            .iter()
            .map(|base| ApiClient::new(base))
            .collect::<Result<Vec<_>, _>>()?;
        let tally = Arc::new(Tally::default());
        let mut clients = Vec::new();
        let mut listeners = JoinSet::new();
        let mut posters = Vec::new();
        for (k, pair) in fixture.pairs[..sizes.chat_sessions].iter().enumerate() {
            let mechanic = &fixture.mechanics[pair.mechanic];
            // The customer on one node, the mechanic on the next (the same one when alone).
            for (side, (user, token)) in [
                (pair.customer.id, &pair.customer.token),
                (mechanic.id, &mechanic.token),
            ]
            .into_iter()
            .enumerate()
            {
                let node = (k + side) % bases.len();
                let (base, api) = (&bases[node], &apis[node]);
                let client =
                    RealtimeClient::connect_with(base, token.clone(), RealtimeOptions::default())?;
                let channel = client.channel(
                    &format!("chat:session-{}", pair.session),
                    ChannelOptions {
                        postgres_changes: vec![PostgresChanges::new("INSERT", "messages")
                            .filter(format!("session_id=eq.{}", pair.session))],
                        ..ChannelOptions::default()
                    },
                );
                let mut events = channel.events();
                channel.subscribe().await?;
                let tally = tally.clone();
                let me = user.to_string();
                listeners.spawn(async move {
                    loop {
                        match events.recv().await {
                            Ok(ChannelEvent::PostgresChange(change)) => {
                                let record = &change.record;
                                if record["sender_id"].as_str() == Some(me.as_str()) {
                                    continue;
                                }
                                if let Some(ts) = record["body"].as_str().and_then(parse_ts) {
                                    tally.received.add(1);
                                    tally.delivery.record(0, now_micros().saturating_sub(ts));
                                }
                            }
                            Ok(_) => {}
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                            Err(_) => break,
                        }
                    }
                });
                clients.push((client, channel));
                posters.push(Poster {
                    session: pair.session,
                    api: api.clone().with_token(token.clone()),
                });
            }
        }
        let mut steps = Vec::new();
        for &rate in &sizes.chat_rates {
            let step = measure(&servers, &tally, &posters, rate, sizes.chat_window).await;
            for server in &mut servers {
                server.check_alive()?;
            }
            eprintln!(
                "  chat {:<8} {} node(s) offered {:>5.0}/s delivered {:>6.0}/s p50 {:>7.2} ms p99 {:>8.2} ms post p99 {:>8.2} ms failed {} dropped {}",
                db.kind, servers.len(), step.offered, step.delivered, step.p50_ms, step.p99_ms, step.post_p99_ms, step.failed, step.dropped
            );
            let done = !step.kept_up || step.p99_ms > 1_000.0;
            steps.push(step);
            if done {
                break;
            }
        }
        for (client, _) in &clients {
            client.disconnect().await;
        }
        listeners.abort_all();
        anyhow::Ok(steps)
    }
    .await;
    for server in servers {
        server.stop().await;
    }
    result
}

async fn measure(
    servers: &[Server],
    tally: &Arc<Tally>,
    posters: &[Poster],
    rate: f64,
    window: Duration,
) -> ChatStep {
    let warmup = Duration::from_secs(1);
    let gate = Arc::new(Semaphore::new(IN_FLIGHT));
    let pacer = {
        let tally = tally.clone();
        let posters = posters.to_vec();
        let gate = gate.clone();
        tokio::spawn(async move {
            let interval = Duration::from_secs_f64(1.0 / rate);
            let mut next = Instant::now();
            let mut posts = JoinSet::new();
            for k in 0usize.. {
                sleep_until(next).await;
                next += interval;
                while posts.try_join_next().is_some() {}
                let Ok(permit) = gate.clone().try_acquire_owned() else {
                    tally.dropped.add(1);
                    continue;
                };
                let poster = posters[k % posters.len()].clone();
                let tally = tally.clone();
                posts.spawn(async move {
                    let ts = now_micros();
                    let id = CLIENT_IDS.fetch_add(1, Ordering::Relaxed);
                    let body = format!("ts={ts} {}", crate::load::BODY);
                    let posted = poster
                        .api
                        .post_message(
                            poster.session,
                            &format!("bench-{}-{id}", std::process::id()),
                            &body,
                        )
                        .await;
                    tally.http.record(1, now_micros().saturating_sub(ts));
                    match posted {
                        Ok(_) => tally.posted.add(1),
                        Err(_) => tally.failed.add(1),
                    }
                    drop(permit);
                });
            }
        })
    };
    tokio::time::sleep(warmup).await;
    for c in [
        &tally.posted,
        &tally.failed,
        &tally.dropped,
        &tally.received,
    ] {
        c.take();
    }
    tally.delivery.reset();
    tally.http.reset();
    let cpu: Vec<CpuMeter> = servers.iter().map(|s| CpuMeter::start(s.pid)).collect();
    let started = Instant::now();
    tokio::time::sleep(window).await;
    let secs = started.elapsed().as_secs_f64();
    let posted = tally.posted.get();
    let received = tally.received.get();
    let failed = tally.failed.get();
    let dropped = tally.dropped.get();
    let delivery = LatencySummary::of(&tally.delivery.snapshot());
    let http = LatencySummary::of(&tally.http.snapshot());
    let server_cpu = cpu.iter().map(CpuMeter::cores).sum();
    pacer.abort();
    // Let posts in flight finish before the next step.
    let _ =
        tokio::time::timeout(Duration::from_secs(10), gate.acquire_many(IN_FLIGHT as u32)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    ChatStep {
        offered: rate,
        posted: posted as f64 / secs,
        delivered: received as f64 / secs,
        p50_ms: delivery.p50_ms,
        p99_ms: delivery.p99_ms,
        max_ms: delivery.max_ms,
        post_p99_ms: http.p99_ms,
        failed,
        dropped,
        server_cpu,
        kept_up: failed == 0
            && dropped == 0
            && posted as f64 >= 0.95 * rate * secs
            && received as f64 >= 0.97 * posted as f64,
    }
}

fn metrics(steps: &[ChatStep]) -> Metrics {
    let mut m: Metrics = Vec::new();
    if let Some(first) = steps.first() {
        m.push((
            format!("p50 ms at {:.0} posts/s", first.offered),
            first.p50_ms,
        ));
        m.push((
            format!("post p99 ms at {:.0} posts/s", first.offered),
            first.post_p99_ms,
        ));
    }
    for s in steps {
        m.push((format!("p99 ms at {:.0} posts/s", s.offered), s.p99_ms));
    }
    let sustained = steps
        .iter()
        .filter(|s| s.kept_up && s.p99_ms <= SUSTAINED_P99_MS)
        .max_by(|a, b| a.delivered.total_cmp(&b.delivered));
    m.push((
        "sustained posts/s (p99<=50ms)".into(),
        sustained.map_or(0.0, |s| s.delivered),
    ));
    if let Some(s) = sustained {
        m.push(("  p99 ms at sustained".into(), s.p99_ms));
        m.push(("  server cores at sustained".into(), s.server_cpu));
        m.push((
            WORST_P99.into(),
            steps
                .iter()
                .filter(|t| t.offered <= s.offered)
                .map(|t| t.p99_ms)
                .fold(0.0, f64::max),
        ));
    }
    m.push((
        "peak delivered posts/s".into(),
        steps.iter().map(|s| s.delivered).fold(0.0, f64::max),
    ));
    m
}

pub async fn chat(env: &Env) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    for (db, fixture) in env.databases() {
        let mut outcome = Outcome::new(
            "persisted-chat",
            System::Wrenchline.name(),
            Some(db.kind),
            json!({
                "sessions": env.sizes.chat_sessions,
                "connections": env.sizes.chat_sessions * 2,
                "offered_posts_per_s": env.sizes.chat_rates,
                "window_s": env.sizes.chat_window.as_secs_f64(),
                "latency": "POST /api/sessions/{id}/messages sent → postgres_changes INSERT received by the other participant",
            }),
        );
        for r in 0..env.sizes.runs {
            eprintln!(
                "persisted chat on {}: run {}/{}",
                db.kind,
                r + 1,
                env.sizes.runs
            );
            match run(env, db, fixture, None).await {
                Ok(steps) => outcome.add_run(&metrics(&steps), json!({ "steps": steps })),
                Err(e) => {
                    eprintln!("  failed: {e:#}");
                    outcome.error.get_or_insert(format!("{e:#}"));
                }
            }
        }
        outcome.finish();
        outcomes.push(outcome);
    }
    if let (Some((db, fixture)), Some(redis)) = (&env.postgres, &env.redis) {
        let mut outcome = Outcome::new(
            "persisted-chat-3-nodes",
            System::Wrenchline.name(),
            Some(db.kind),
            json!({
                "nodes": CLUSTER_NODES,
                "sessions": env.sizes.chat_sessions,
                "connections": env.sizes.chat_sessions * 2,
                "offered_posts_per_s": env.sizes.chat_rates,
                "window_s": env.sizes.chat_window.as_secs_f64(),
                "latency": "POST on the sender's node → postgres_changes INSERT received by the other participant on the next node (through Redis)",
                "server_cores": "the sum over the nodes",
            }),
        );
        for r in 0..env.sizes.runs {
            eprintln!(
                "persisted chat on {} nodes: run {}/{}",
                CLUSTER_NODES,
                r + 1,
                env.sizes.runs
            );
            match run(env, db, fixture, Some(redis)).await {
                Ok(steps) => outcome.add_run(&metrics(&steps), json!({ "steps": steps })),
                Err(e) => {
                    eprintln!("  failed: {e:#}");
                    outcome.error.get_or_insert(format!("{e:#}"));
                }
            }
        }
        outcome.finish();
        outcomes.push(outcome);
    }
    outcomes
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps_come_back_out_of_bodies() {
        assert_eq!(super::parse_ts("ts=123 hello"), Some(123));
        assert_eq!(super::parse_ts("hello"), None);
    }
}
