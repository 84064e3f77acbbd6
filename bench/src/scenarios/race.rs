//! Accept race: one offered request, twenty mechanics pressing accept at the same instant. Every
//! round must end with exactly one 200 and the rest 409 `already_accepted`; the latency of each
//! accept and of the whole round is recorded. On SQLite and on PostgreSQL. Each mechanic
//! accepts through the Rust client's `ApiClient::accept`, the call `MechanicSession::accept`
//! makes, so the figure is the request as the desktop app sends it.

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::json;
use tokio::sync::Barrier;
use tokio::task::JoinSet;
use wrenchline_client::ApiClient;

use super::Env;
use crate::fixture::{Fixture, Http};
use crate::procs::{Db, Server, System};
use crate::report::{Metrics, Outcome};
use crate::stats::{now_micros, LatencySummary};

struct RunResult {
    rounds: usize,
    clean: usize,
    accept: LatencySummary,
    round: LatencySummary,
    first_bad: Option<String>,
}

async fn run(
    env: &Env,
    db: &Db,
    fixture: &Fixture,
    racers: usize,
    base_n: usize,
) -> anyhow::Result<RunResult> {
    let mut server = Server::start(&env.programs, System::Wrenchline, Some(db)).await?;
    let result = async {
        let http = Http::new(&server.base_url())?;
        let clients: Vec<ApiClient> = fixture.mechanics[..racers]
            .iter()
            .map(|m| Ok(ApiClient::new(&server.base_url())?.with_token(m.token.clone())))
            .collect::<anyhow::Result<_>>()?;
        // Open a pooled connection per racer before timing anything.
        let mut warm = JoinSet::new();
        for client in &clients {
            let client = client.clone();
            warm.spawn(async move { client.plans().await.map(|_| ()) });
        }
        while let Some(w) = warm.join_next().await {
            w??;
        }
        let (first, _, cookie) = http.intake(base_n, None).await?;
        let _ = first;
        let customer = http.customer_token(&cookie).await?;
        let mut accepts = Vec::new();
        let mut rounds = Vec::new();
        let mut clean = 0;
        let mut first_bad = None;
        for round in 0..env.sizes.race_rounds {
            // The same customer (same email) files each round's request: an intake with another
            // email would make a new customer, whom this customer's token cannot sign for.
            let (session, _, _) = http.intake(base_n, Some(&cookie)).await?;
            http.sign_waiver(&customer, session.id).await?;
            let barrier = Arc::new(Barrier::new(racers));
            let mut racing = JoinSet::new();
            for client in &clients {
                let client = client.clone();
                let barrier = barrier.clone();
                let id = session.id;
                racing.spawn(async move {
                    barrier.wait().await;
                    let start = now_micros();
                    let status = match client.accept(id).await {
                        Ok(_) => Ok(StatusCode::OK),
                        Err(e) => e.status().ok_or(e),
                    };
                    (status, start, now_micros())
                });
            }
            let mut statuses = Vec::new();
            let (mut began, mut ended) = (u64::MAX, 0);
            while let Some(done) = racing.join_next().await {
                let (status, start, end) = done?;
                statuses.push(status?);
                accepts.push(end - start);
                began = began.min(start);
                ended = ended.max(end);
            }
            rounds.push(ended.saturating_sub(began));
            let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
            let conflict = statuses
                .iter()
                .filter(|s| **s == StatusCode::CONFLICT)
                .count();
            if ok == 1 && conflict == racers - 1 {
                clean += 1;
            } else if first_bad.is_none() {
                first_bad = Some(format!(
                    "round {round}: {ok} × 200, {conflict} × 409, others {:?}",
                    statuses
                        .iter()
                        .filter(|s| **s != StatusCode::OK && **s != StatusCode::CONFLICT)
                        .collect::<Vec<_>>()
                ));
            }
        }
        server.check_alive()?;
        anyhow::Ok(RunResult {
            rounds: rounds.len(),
            clean,
            accept: LatencySummary::of_micros(&accepts),
            round: LatencySummary::of_micros(&rounds),
            first_bad,
        })
    }
    .await;
    server.stop().await;
    result
}

pub async fn race(env: &Env) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    for (db, fixture) in env.databases() {
        let racers = env.sizes.race_mechanics.min(fixture.mechanics.len());
        let mut outcome = Outcome::new(
            "accept-race",
            System::Wrenchline.name(),
            Some(db.kind),
            json!({"rounds": env.sizes.race_rounds, "mechanics_per_round": racers}),
        );
        for r in 0..env.sizes.runs {
            eprintln!(
                "accept race ({racers} mechanics) on {}: run {}/{}",
                db.kind,
                r + 1,
                env.sizes.runs
            );
            match run(env, db, fixture, racers, 2_000_000 + r * 100_000).await {
                Ok(res) => {
                    eprintln!(
                        "  {}/{} rounds with exactly one 200; accept p50 {:.2} ms p99 {:.2} ms; round p99 {:.2} ms",
                        res.clean, res.rounds, res.accept.p50_ms, res.accept.p99_ms, res.round.p99_ms
                    );
                    if let Some(bad) = &res.first_bad {
                        outcome.error.get_or_insert(format!(
                            "{} of {} rounds did not end with exactly one 200 (first: {bad})",
                            res.rounds - res.clean,
                            res.rounds
                        ));
                    }
                    let m: Metrics = vec![
                        ("rounds with exactly one 200".into(), res.clean as f64),
                        ("rounds".into(), res.rounds as f64),
                        ("accept p50 ms".into(), res.accept.p50_ms),
                        ("accept p99 ms".into(), res.accept.p99_ms),
                        ("accept max ms".into(), res.accept.max_ms),
                        ("round p99 ms (all 20 answered)".into(), res.round.p99_ms),
                    ];
                    outcome.add_run(&m, json!({}));
                }
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
