//! Request fan-out: mechanics sit on the `requests` channel as the desktop app joins it
//! (`wrenchline_client::mechanic::requests_channel`: `postgres_changes` on `sessions`,
//! `status=eq.pending`, with presence), a customer files an intake and signs the waiver, and the
//! offered request reaches every mechanic. Latency runs from the intake POST (and, separately, from the
//! waiver POST) to each mechanic's receipt.
//!
//! Beside it, the load generator alone: the same number of `RealtimeClient`s on one topic of the
//! bare relay, and one more that broadcasts a record of the same shape to them; from the
//! broadcast to each receipt is what the clients, the loopback and a relay without application
//! logic cost, the floor under the wrenchline figure.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use uuid::Uuid;
use wrenchline_client::mechanic::requests_channel;
use wrenchline_client::{ChannelEvent, RealtimeClient, RealtimeOptions};

use super::Env;
use crate::fixture::{Fixture, Http};
use crate::procs::{Db, Server, System};
use crate::report::{Metrics, Outcome};
use crate::stats::{now_micros, LatencySummary};
use wrenchline_client::ChannelOptions;

/// Per offered request: when its intake and its waiver were sent, and who has it.
#[derive(Default)]
struct Rounds {
    started: HashMap<Uuid, (u64, u64)>,
    from_intake: Vec<u64>,
    from_waiver: Vec<u64>,
    delivered: HashMap<Uuid, usize>,
}

struct RunResult {
    from_intake: LatencySummary,
    from_waiver: LatencySummary,
    expected: usize,
    delivered: usize,
}

/// Waits until `all_arrived` (checked at each arrival) or 5 s have passed, then 50 ms more, so
/// one round's deliveries are over before the next round starts.
async fn settle(arrived: &Notify, all_arrived: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !all_arrived() {
        if tokio::time::timeout_at(deadline, arrived.notified())
            .await
            .is_err()
        {
            break;
        }
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
}

async fn run(
    env: &Env,
    db: &Db,
    fixture: &Fixture,
    mechanics: usize,
    round_base: usize,
) -> anyhow::Result<RunResult> {
    let mut server = Server::start(&env.programs, System::Wrenchline, Some(db)).await?;
    let result = async {
        let base = server.base_url();
        let rounds = Arc::new(Mutex::new(Rounds::default()));
        let arrived = Arc::new(Notify::new());
        let mut clients = Vec::new();
        let mut listeners = JoinSet::new();
        for mechanic in &fixture.mechanics[..mechanics] {
            let client = RealtimeClient::connect_with(
                &base,
                mechanic.token.clone(),
                RealtimeOptions::default(),
            )?;
            // The desktop app's own request feed channel (presence included).
            let channel = requests_channel(&client);
            let mut events = channel.events();
            channel.subscribe().await?;
            let rounds = rounds.clone();
            let arrived = arrived.clone();
            listeners.spawn(async move {
                while let Ok(event) = events.recv().await {
                    let ChannelEvent::PostgresChange(change) = event else {
                        continue;
                    };
                    let now = now_micros();
                    let record = &change.record;
                    if record["waiver_signed_at"].is_null() {
                        continue;
                    }
                    let Some(id) = record["id"].as_str().and_then(|s| s.parse::<Uuid>().ok())
                    else {
                        continue;
                    };
                    let mut r = rounds.lock().expect("lock");
                    if let Some(&(intake, waiver)) = r.started.get(&id) {
                        r.from_intake.push(now.saturating_sub(intake));
                        r.from_waiver.push(now.saturating_sub(waiver));
                        *r.delivered.entry(id).or_default() += 1;
                        arrived.notify_one();
                    }
                }
            });
            clients.push((client, channel));
        }
        let http = Http::new(&base)?;
        for round in 0..env.sizes.fanout_rounds {
            let n = round_base + round;
            let intake_at = now_micros();
            let (session, id, cookie) = http.intake(n, None).await?;
            let _ = id;
            let token = http.customer_token(&cookie).await?;
            let waiver_at = now_micros();
            rounds
                .lock()
                .expect("lock")
                .started
                .insert(session.id, (intake_at, waiver_at));
            http.sign_waiver(&token, session.id).await?;
            settle(&arrived, || {
                let r = rounds.lock().expect("lock");
                r.delivered.get(&session.id).copied().unwrap_or(0) >= mechanics
            })
            .await;
        }
        server.check_alive()?;
        for (client, _) in &clients {
            client.disconnect().await;
        }
        listeners.abort_all();
        let r = rounds.lock().expect("lock");
        anyhow::Ok(RunResult {
            from_intake: LatencySummary::of_micros(&r.from_intake),
            from_waiver: LatencySummary::of_micros(&r.from_waiver),
            expected: env.sizes.fanout_rounds * mechanics,
            delivered: r.delivered.values().sum(),
        })
    }
    .await;
    server.stop().await;
    result
}

/// The load generator alone: `clients` realtime clients on one topic of the bare relay, a record
/// of a request's shape broadcast to them `rounds` times; latency from each broadcast to each
/// receipt.
async fn run_bare(env: &Env, clients: usize, rounds: usize) -> anyhow::Result<RunResult> {
    let mut server = Server::start(&env.programs, System::Bare, None).await?;
    let result = async {
        let base = server.base_url();
        let sent = Arc::new(Mutex::new(HashMap::<u64, u64>::new()));
        let latencies = Arc::new(Mutex::new((Vec::new(), 0usize)));
        let arrived = Arc::new(Notify::new());
        let mut held = Vec::new();
        let mut listeners = JoinSet::new();
        for _ in 0..clients {
            let client = RealtimeClient::connect_with(&base, "bare", RealtimeOptions::default())?;
            let channel = client.channel("requests", ChannelOptions::default());
            let mut events = channel.events();
            channel.subscribe().await?;
            let (sent, latencies, arrived) = (sent.clone(), latencies.clone(), arrived.clone());
            listeners.spawn(async move {
                while let Ok(event) = events.recv().await {
                    let ChannelEvent::Broadcast { payload, .. } = event else {
                        continue;
                    };
                    let now = now_micros();
                    let Some(round) = payload["round"].as_u64() else {
                        continue;
                    };
                    if payload["record"]["waiver_signed_at"].is_null() {
                        continue;
                    }
                    if let Some(&at) = sent.lock().expect("lock").get(&round) {
                        let mut l = latencies.lock().expect("lock");
                        l.0.push(now.saturating_sub(at));
                        l.1 += 1;
                        arrived.notify_one();
                    }
                }
            });
            held.push((client, channel));
        }
        let sender = RealtimeClient::connect_with(&base, "bare", RealtimeOptions::default())?;
        let channel = sender.channel("requests", ChannelOptions::default());
        channel.subscribe().await?;
        for round in 0..rounds as u64 {
            // A sessions row as the requests feed carries it, in size and shape.
            let record = json!({
                "id": Uuid::new_v4(), "status": "pending", "customer_id": Uuid::new_v4(),
                "mechanic_id": null, "plan": "standard",
                "vehicle": {"year": 2016, "make": "Honda", "model": "Civic", "vin": "1HGCM82633A004352"},
                "problem": crate::load::BODY, "created_at": "2026-12-07T10:00:00Z",
                "waiver_signed_at": "2026-12-07T10:00:01Z", "accepted_at": null, "live_at": null,
                "ends_at": null, "ended_at": null, "end_reason": null, "last_seq": 0,
            });
            let payload = json!({"round": round, "record": record});
            sent.lock().expect("lock").insert(round, now_micros());
            channel.broadcast("INSERT", payload).await?;
            let expected = (round as usize + 1) * clients;
            settle(&arrived, || latencies.lock().expect("lock").1 >= expected).await;
        }
        server.check_alive()?;
        sender.disconnect().await;
        for (client, _) in &held {
            client.disconnect().await;
        }
        listeners.abort_all();
        let l = latencies.lock().expect("lock");
        let from_send = LatencySummary::of_micros(&l.0);
        anyhow::Ok(RunResult {
            from_intake: from_send,
            from_waiver: from_send,
            expected: rounds * clients,
            delivered: l.1,
        })
    }
    .await;
    server.stop().await;
    result
}

/// Adds one run's metrics (from `metrics`, which also prints them) to `outcome`, or its error;
/// deliveries missing after 5 s are an error too.
fn record(
    outcome: &mut Outcome,
    result: anyhow::Result<RunResult>,
    metrics: impl FnOnce(&RunResult) -> Metrics,
) {
    match result {
        Ok(res) => {
            let m = metrics(&res);
            if res.delivered < res.expected {
                outcome.error.get_or_insert(format!(
                    "only {} of {} deliveries arrived within 5 s",
                    res.delivered, res.expected
                ));
            }
            outcome.add_run(
                &m,
                json!({"expected": res.expected, "delivered": res.delivered}),
            );
        }
        Err(e) => {
            eprintln!("  failed: {e:#}");
            outcome.error.get_or_insert(format!("{e:#}"));
        }
    }
}

pub async fn fanout(env: &Env) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    for (db, fixture) in env.databases() {
        let mechanics = env.sizes.fanout_mechanics.min(fixture.mechanics.len());
        let mut outcome = Outcome::new(
            "fan-out",
            System::Wrenchline.name(),
            Some(db.kind),
            json!({
                "mechanics": mechanics,
                "rounds": env.sizes.fanout_rounds,
                "latency": "intake POST sent (and waiver POST sent) → requests postgres_changes received by each mechanic",
            }),
        );
        for r in 0..env.sizes.runs {
            eprintln!(
                "fan-out to {mechanics} mechanics on {}: run {}/{}",
                db.kind,
                r + 1,
                env.sizes.runs
            );
            let round_base = 1_000_000 + r * 10_000;
            let result = run(env, db, fixture, mechanics, round_base).await;
            record(&mut outcome, result, |res| {
                eprintln!(
                    "  delivered {}/{}: from intake p50 {:.2} ms p99 {:.2} ms max {:.2} ms; from waiver p99 {:.2} ms",
                    res.delivered, res.expected, res.from_intake.p50_ms, res.from_intake.p99_ms, res.from_intake.max_ms, res.from_waiver.p99_ms
                );
                vec![
                    ("p50 ms from intake".into(), res.from_intake.p50_ms),
                    ("p99 ms from intake".into(), res.from_intake.p99_ms),
                    ("max ms from intake".into(), res.from_intake.max_ms),
                    ("p50 ms from waiver".into(), res.from_waiver.p50_ms),
                    ("p99 ms from waiver".into(), res.from_waiver.p99_ms),
                    (
                        "delivered fraction".into(),
                        res.delivered as f64 / res.expected.max(1) as f64,
                    ),
                ]
            });
        }
        outcome.finish();
        outcomes.push(outcome);
    }
    let clients = env.sizes.fanout_mechanics;
    let mut outcome = Outcome::new(
        "fan-out",
        System::Bare.name(),
        None,
        json!({
            "mechanics": clients,
            "rounds": env.sizes.fanout_rounds,
            "latency": "broadcast of a request's record sent → received by each client (the load generator alone, on the bare relay)",
        }),
    );
    for r in 0..env.sizes.runs {
        eprintln!(
            "fan-out to {clients} clients on the bare relay (the load generator alone): run {}/{}",
            r + 1,
            env.sizes.runs
        );
        let result = run_bare(env, clients, env.sizes.fanout_rounds).await;
        record(&mut outcome, result, |res| {
            eprintln!(
                "  delivered {}/{}: p50 {:.2} ms p99 {:.2} ms max {:.2} ms",
                res.delivered,
                res.expected,
                res.from_waiver.p50_ms,
                res.from_waiver.p99_ms,
                res.from_waiver.max_ms
            );
            vec![
                ("p50 ms from send".into(), res.from_waiver.p50_ms),
                ("p99 ms from send".into(), res.from_waiver.p99_ms),
                ("max ms from send".into(), res.from_waiver.max_ms),
            ]
        });
    }
    outcome.finish();
    outcomes.push(outcome);
    outcomes
}
