//! One customer against everyone else: an unrelated customer and mechanic run a live session
//! (presence tracked, broadcasts both ways every 50 ms) and a client fetches `GET /api/plans`
//! every 20 ms, first alone, then while one customer opens as many sockets as its address may
//! hold and floods its own session with joins, tracks and broadcasts. The server runs with the
//! default realtime limits (the attacker's socket count is its `connections_per_address`). The
//! figures: the p50/p99 of the pair's delivery and of the plans request in both windows, and
//! what the attacker was granted. The aim is an attacked p99 within 2× of the quiet one.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::Env;
use crate::fixture::Fixture;
use crate::procs::{Db, Programs, Server, System};
use crate::report::{Metrics, Outcome};
use crate::stats::{now_micros, Latencies, LatencySummary};

/// Between the pair's broadcasts, and between plan requests.
const PAIR_EVERY: Duration = Duration::from_millis(50);
const PLANS_EVERY: Duration = Duration::from_millis(20);
/// Between one attacking socket's rounds of a join and a track or a broadcast.
const FLOOD_EVERY: Duration = Duration::from_millis(50);

/// Phases: 0 quiet, 1 under attack, 2 done (nothing recorded).
#[derive(Default)]
struct Measures {
    phase: AtomicUsize,
    delivery: [Latencies; 2],
    plans: [Latencies; 2],
    sent: [AtomicU64; 2],
    delivered: [AtomicU64; 2],
    /// Error replies, refused requests and lost connections of the pair and the plans client.
    errors: [AtomicU64; 2],
}

impl Measures {
    fn phase(&self) -> Option<usize> {
        let p = self.phase.load(Ordering::Relaxed);
        (p < 2).then_some(p)
    }
}

#[derive(Default)]
struct Flood {
    sockets: AtomicU64,
    sockets_refused: AtomicU64,
    joins_ok: AtomicU64,
    joins_refused: AtomicU64,
    other_refused: AtomicU64,
    frames_sent: AtomicU64,
}

struct RunResult {
    quiet_delivery: LatencySummary,
    attack_delivery: LatencySummary,
    quiet_plans: LatencySummary,
    attack_plans: LatencySummary,
    delivered_fraction: f64,
    pair_errors: u64,
    flood: Value,
}

fn frame(join_ref: Option<&str>, r: &str, topic: &str, event: &str, payload: Value) -> Message {
    Message::text(json!([join_ref, r, topic, event, payload]).to_string())
}

fn join_payload(token: &str) -> Value {
    json!({
        "config": {"broadcast": {"self": false, "ack": false}, "presence": {"key": ""}, "postgres_changes": []},
        "access_token": token,
    })
}

/// One side of the unrelated live session: joined to both topics, tracked, broadcasting its
/// clock every 50 ms and timing what the other side broadcasts.
async fn participant(
    url: String,
    session: Uuid,
    user: Uuid,
    role: &'static str,
    token: String,
    measures: Arc<Measures>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let (ws, _) = tokio_tungstenite::connect_async(&url).await?;
    let (mut sink, mut stream) = ws.split();
    let chat = format!("realtime:chat:session-{session}");
    let presence = format!("{chat}:presence");
    sink.send(frame(
        Some("1"),
        "1",
        &chat,
        "phx_join",
        join_payload(&token),
    ))
    .await?;
    sink.send(frame(
        Some("2"),
        "2",
        &presence,
        "phx_join",
        join_payload(&token),
    ))
    .await?;
    sink.send(frame(
        Some("2"),
        "3",
        &presence,
        "presence",
        json!({"type": "presence", "event": "track", "payload": {"user_id": user, "role": role, "online_at": 1_700_000_000_000u64}}),
    ))
    .await?;
    let reader_measures = measures.clone();
    let reader = tokio::spawn(async move {
        while let Some(Ok(message)) = stream.next().await {
            let Message::Text(text) = message else {
                continue;
            };
            let Ok(v) = serde_json::from_str::<Value>(text.as_str()) else {
                continue;
            };
            let Some(phase) = reader_measures.phase() else {
                continue;
            };
            match v[3].as_str() {
                Some("broadcast") => {
                    if let Some(t) = v[4]["payload"]["t"].as_u64() {
                        reader_measures.delivery[phase].record(0, now_micros().saturating_sub(t));
                        reader_measures.delivered[phase].fetch_add(1, Ordering::Relaxed);
                    }
                }
                Some("phx_reply") if v[4]["status"] == "error" => {
                    reader_measures.errors[phase].fetch_add(1, Ordering::Relaxed);
                }
                Some("phx_close" | "phx_error") => {
                    reader_measures.errors[phase].fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
        }
        if let Some(phase) = reader_measures.phase() {
            reader_measures.errors[phase].fetch_add(1, Ordering::Relaxed);
        }
    });
    let mut tick = tokio::time::interval(PAIR_EVERY);
    let mut n = 10u64;
    let mut heartbeat = tokio::time::Instant::now();
    while !stop.is_cancelled() {
        tick.tick().await;
        n += 1;
        let payload = json!({"type": "broadcast", "event": "typing", "payload": {"t": now_micros(), "role": role}});
        if let Some(phase) = measures.phase() {
            measures.sent[phase].fetch_add(1, Ordering::Relaxed);
        }
        sink.send(frame(
            Some("1"),
            &n.to_string(),
            &chat,
            "broadcast",
            payload,
        ))
        .await?;
        if heartbeat.elapsed() > Duration::from_secs(20) {
            heartbeat = tokio::time::Instant::now();
            sink.send(frame(
                None,
                &n.to_string(),
                "phoenix",
                "heartbeat",
                json!({}),
            ))
            .await?;
        }
    }
    let _ = sink.close().await;
    reader.abort();
    Ok(())
}

/// `GET /api/plans` every 20 ms, timed.
async fn plans(base: String, measures: Arc<Measures>, stop: CancellationToken) {
    let client = reqwest::Client::new();
    let mut tick = tokio::time::interval(PLANS_EVERY);
    while !stop.is_cancelled() {
        tick.tick().await;
        let started = now_micros();
        let ok = match client.get(format!("{base}/api/plans")).send().await {
            Ok(response) => response.status().is_success() && response.bytes().await.is_ok(),
            Err(_) => false,
        };
        if let Some(phase) = measures.phase() {
            if ok {
                measures.plans[phase].record(0, now_micros().saturating_sub(started));
            } else {
                measures.errors[phase].fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// One attacking socket: a join every round, then a track (presence topic) or a broadcast
/// (chat topic) on the latest join, as fast as the rounds go; every reply is read and counted.
async fn flood_socket(
    url: String,
    topic: String,
    user: Uuid,
    token: String,
    flood: Arc<Flood>,
    stop: CancellationToken,
) {
    let Ok((ws, _)) = tokio_tungstenite::connect_async(&url).await else {
        flood.sockets_refused.fetch_add(1, Ordering::Relaxed);
        return;
    };
    flood.sockets.fetch_add(1, Ordering::Relaxed);
    let (mut sink, mut stream) = ws.split();
    let counts = flood.clone();
    let reader = tokio::spawn(async move {
        while let Some(Ok(message)) = stream.next().await {
            let Message::Text(text) = message else {
                continue;
            };
            let Ok(v) = serde_json::from_str::<Value>(text.as_str()) else {
                continue;
            };
            if v[3] != "phx_reply" {
                continue;
            }
            let is_join = v[1].as_str().is_some_and(|r| r.starts_with('j'));
            let counter = match (is_join, v[4]["status"] == "ok") {
                (true, true) => &counts.joins_ok,
                (true, false) => &counts.joins_refused,
                (false, false) => &counts.other_refused,
                (false, true) => continue,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    });
    let presence = topic.ends_with(":presence");
    let mut tick = tokio::time::interval(FLOOD_EVERY);
    let mut n = 0u64;
    while !stop.is_cancelled() {
        tick.tick().await;
        n += 1;
        let join_ref = format!("j{n}");
        let (event, payload) = if presence {
            (
                "presence",
                json!({"type": "presence", "event": "track", "payload": {"user_id": user, "role": "customer", "online_at": n}}),
            )
        } else {
            (
                "broadcast",
                json!({"type": "broadcast", "event": "typing", "payload": {"typing": true, "n": n}}),
            )
        };
        let sent = async {
            sink.send(frame(
                Some(&join_ref),
                &join_ref,
                &topic,
                "phx_join",
                join_payload(&token),
            ))
            .await?;
            sink.send(frame(
                Some(&join_ref),
                &format!("e{n}"),
                &topic,
                event,
                payload,
            ))
            .await
        };
        if sent.await.is_err() {
            break;
        }
        flood.frames_sent.fetch_add(2, Ordering::Relaxed);
    }
    let _ = sink.close().await;
    reader.abort();
}

/// The programs, with a work directory of their own whose limits are the defaults except the
/// number of sockets one address may hold: the attacker's, plus the unrelated pair's two (every
/// client here connects from 127.0.0.1).
fn attack_programs(env: &Env, sockets: usize) -> anyhow::Result<Programs> {
    let mut programs = env.programs.clone();
    programs.work = env.programs.work.join("attack");
    std::fs::create_dir_all(&programs.work)?;
    std::fs::write(
        programs.work.join("limits.toml"),
        format!("connections_per_address = {}\n", sockets + 2),
    )?;
    std::fs::copy(
        env.programs.work.join("plans.toml"),
        programs.work.join("plans.toml"),
    )?;
    Ok(programs)
}

async fn run(env: &Env, db: &Db, fixture: &Fixture, sockets: usize) -> anyhow::Result<RunResult> {
    let programs = attack_programs(env, sockets)?;
    let mut server = Server::start(&programs, System::Wrenchline, Some(db)).await?;
    let result = async {
        let base = server.base_url();
        let url = format!(
            "{}/realtime/v1/websocket?vsn=2.0.0&apikey=wrenchline",
            base.replace("http://", "ws://")
        );
        let (pair, attacker) = (&fixture.pairs[0], &fixture.pairs[1]);
        let mechanic = &fixture.mechanics[pair.mechanic];
        let measures = Arc::new(Measures {
            phase: AtomicUsize::new(2),
            ..Measures::default()
        });
        let stop = CancellationToken::new();
        let mut quiet = JoinSet::new();
        quiet.spawn(participant(
            url.clone(),
            pair.session,
            pair.customer.id,
            "customer",
            pair.customer.token.clone(),
            measures.clone(),
            stop.clone(),
        ));
        quiet.spawn(participant(
            url.clone(),
            pair.session,
            mechanic.id,
            "mechanic",
            mechanic.token.clone(),
            measures.clone(),
            stop.clone(),
        ));
        quiet.spawn({
            let (base, measures, stop) = (base.clone(), measures.clone(), stop.clone());
            async move {
                plans(base, measures, stop).await;
                Ok(())
            }
        });
        let window = env.sizes.attack_window;
        tokio::time::sleep(Duration::from_secs(1)).await;
        measures.phase.store(0, Ordering::Relaxed);
        tokio::time::sleep(window).await;

        // The attack: every socket the address may hold (and a few more, refused).
        measures.phase.store(2, Ordering::Relaxed);
        let flood = Arc::new(Flood::default());
        let flood_stop = CancellationToken::new();
        let mut attackers = JoinSet::new();
        for i in 0..sockets + 5 {
            let topic = if i % 2 == 0 {
                format!("realtime:chat:session-{}:presence", attacker.session)
            } else {
                format!("realtime:chat:session-{}", attacker.session)
            };
            attackers.spawn(flood_socket(
                url.clone(),
                topic,
                attacker.customer.id,
                attacker.customer.token.clone(),
                flood.clone(),
                flood_stop.clone(),
            ));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        measures.phase.store(1, Ordering::Relaxed);
        tokio::time::sleep(window).await;
        measures.phase.store(2, Ordering::Relaxed);
        flood_stop.cancel();
        while attackers.join_next().await.is_some() {}
        stop.cancel();
        while let Some(done) = quiet.join_next().await {
            done??;
        }
        server.check_alive()?;
        let sent = measures.sent[1].load(Ordering::Relaxed) as f64;
        anyhow::Ok(RunResult {
            quiet_delivery: LatencySummary::of(&measures.delivery[0].snapshot()),
            attack_delivery: LatencySummary::of(&measures.delivery[1].snapshot()),
            quiet_plans: LatencySummary::of(&measures.plans[0].snapshot()),
            attack_plans: LatencySummary::of(&measures.plans[1].snapshot()),
            delivered_fraction: measures.delivered[1].load(Ordering::Relaxed) as f64
                / sent.max(1.0),
            pair_errors: measures.errors[0].load(Ordering::Relaxed)
                + measures.errors[1].load(Ordering::Relaxed),
            flood: json!({
                "sockets_open": flood.sockets.load(Ordering::Relaxed),
                "sockets_refused": flood.sockets_refused.load(Ordering::Relaxed),
                "joins_accepted": flood.joins_ok.load(Ordering::Relaxed),
                "joins_refused": flood.joins_refused.load(Ordering::Relaxed),
                "tracks_and_broadcasts_refused": flood.other_refused.load(Ordering::Relaxed),
                "frames_sent": flood.frames_sent.load(Ordering::Relaxed),
            }),
        })
    }
    .await;
    server.stop().await;
    result
}

pub async fn attack(env: &Env) -> Vec<Outcome> {
    let (db, fixture) = &env.sqlite;
    let sockets = env
        .sizes
        .attack_sockets
        .min(env.max_connections.saturating_sub(50));
    let mut outcome = Outcome::new(
        "attack",
        System::Wrenchline.name(),
        Some(db.kind),
        json!({
            "attacker_sockets": sockets,
            "window_s": env.sizes.attack_window.as_secs_f64(),
            "latency": "the unrelated pair's broadcast sent → received by the other; GET /api/plans request → body",
            "aim": "attacked p99 within 2x of the quiet p99",
        }),
    );
    if fixture.pairs.len() < 2 {
        outcome.error = Some("the fixture has fewer than two sessions".into());
        return vec![outcome];
    }
    for r in 0..env.sizes.runs {
        eprintln!(
            "attack with {sockets} sockets: run {}/{}",
            r + 1,
            env.sizes.runs
        );
        match run(env, db, fixture, sockets).await {
            Ok(res) => {
                eprintln!(
                    "  delivery p99 {:.2} ms quiet, {:.2} ms attacked; plans p99 {:.2} ms quiet, {:.2} ms attacked; pair errors {}; attacker {}",
                    res.quiet_delivery.p99_ms,
                    res.attack_delivery.p99_ms,
                    res.quiet_plans.p99_ms,
                    res.attack_plans.p99_ms,
                    res.pair_errors,
                    res.flood
                );
                if res.pair_errors > 0 {
                    outcome.error.get_or_insert(format!(
                        "the unrelated pair saw {} errors",
                        res.pair_errors
                    ));
                }
                let ratio = |a: f64, q: f64| if q > 0.0 { a / q } else { 0.0 };
                let m: Metrics = vec![
                    ("delivery p50 ms quiet".into(), res.quiet_delivery.p50_ms),
                    ("delivery p99 ms quiet".into(), res.quiet_delivery.p99_ms),
                    (
                        "delivery p50 ms attacked".into(),
                        res.attack_delivery.p50_ms,
                    ),
                    (
                        "delivery p99 ms attacked".into(),
                        res.attack_delivery.p99_ms,
                    ),
                    (
                        "delivery p99 ratio".into(),
                        ratio(res.attack_delivery.p99_ms, res.quiet_delivery.p99_ms),
                    ),
                    ("plans p50 ms quiet".into(), res.quiet_plans.p50_ms),
                    ("plans p99 ms quiet".into(), res.quiet_plans.p99_ms),
                    ("plans p50 ms attacked".into(), res.attack_plans.p50_ms),
                    ("plans p99 ms attacked".into(), res.attack_plans.p99_ms),
                    (
                        "plans p99 ratio".into(),
                        ratio(res.attack_plans.p99_ms, res.quiet_plans.p99_ms),
                    ),
                    ("delivered fraction attacked".into(), res.delivered_fraction),
                    ("pair errors".into(), res.pair_errors as f64),
                ];
                outcome.add_run(&m, json!({"attacker": res.flood}));
            }
            Err(e) => {
                eprintln!("  failed: {e:#}");
                outcome.error.get_or_insert(format!("{e:#}"));
            }
        }
    }
    outcome.finish();
    vec![outcome]
}
