//! Relay: sessions of two clients exchanging broadcasts on `chat:session-{id}` at a fixed rate,
//! swept from light load to saturation; and the live-sessions check (every participant of 5,000
//! sessions in the chat and presence channels, one message a second each). Both run on
//! wrenchline-server, the bare relay and the Socket.IO peer with the same load generator, the
//! runs of the three interleaved so drift on the machine touches each alike.

use serde_json::json;

use super::{measure_step, proto_of, seats, Env, Rooms, Step};
use crate::load::Fleet;
use crate::procs::{Server, System};
use crate::report::{Metrics, Outcome};

/// The latency bound under which a sweep step counts as sustained.
pub const SUSTAINED_P99_MS: f64 = 10.0;
/// Handshakes in flight while a fleet connects.
const PARALLEL_SETUP: usize = 256;

async fn with_server<T>(
    env: &Env,
    system: System,
    body: impl AsyncFnOnce(&mut Server) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let mut server = Server::start(&env.programs, system, Some(&env.sqlite.0)).await?;
    let result = body(&mut server).await;
    server.stop().await;
    result
}

async fn sweep(env: &Env, system: System) -> anyhow::Result<Vec<Step>> {
    let sizes = &env.sizes;
    let (_, fixture) = &env.sqlite;
    let seats = seats(fixture, &fixture.pairs[..sizes.relay_sessions], Rooms::Chat);
    with_server(env, system, async |server: &mut Server| {
        let fleet = Fleet::open(proto_of(system), server.addr, &seats, PARALLEL_SETUP).await?;
        let mut steps = Vec::new();
        for &offered in &sizes.relay_rates {
            let step =
                measure_step(&fleet, server, offered, sizes.relay_warmup, sizes.relay_window)
                    .await?;
            let done = !step.kept_up || step.loadgen_bound || step.p99_ms > 1_000.0;
            eprintln!(
                "  relay {:<10} offered {:>7.0}/s delivered {:>7.0}/s p50 {:>7.2} ms p99 {:>8.2} ms server {:.2} cores loadgen {:.2} cores other {:.2} cores{}",
                system.name(),
                step.offered,
                step.delivered,
                step.p50_ms,
                step.p99_ms,
                step.server_cpu,
                step.loadgen_cpu,
                step.other_cpu,
                if done { "  (stop)" } else { "" }
            );
            steps.push(step);
            if done {
                break;
            }
        }
        fleet.close().await;
        Ok(steps)
    })
    .await
}

fn sweep_metrics(steps: &[Step]) -> Metrics {
    let sustained = steps
        .iter()
        .filter(|s| s.kept_up && s.p99_ms <= SUSTAINED_P99_MS)
        .max_by(|a, b| a.delivered.total_cmp(&b.delivered));
    let peak = steps
        .iter()
        .filter(|s| s.lost_connections == 0)
        .map(|s| s.delivered)
        .fold(0.0, f64::max);
    let mut m: Metrics = vec![(
        "sustained msgs/s (p99<=10ms)".into(),
        sustained.map_or(0.0, |s| s.delivered),
    )];
    if let Some(s) = sustained {
        m.push(("  p50 ms at sustained".into(), s.p50_ms));
        m.push(("  p99 ms at sustained".into(), s.p99_ms));
        m.push(("  max ms at sustained".into(), s.max_ms));
        m.push(("  server cores at sustained".into(), s.server_cpu));
        m.push((
            "  server CPU us per msg at sustained".into(),
            s.server_cpu * 1e6 / s.delivered.max(1.0),
        ));
        m.push(("  loadgen cores at sustained".into(), s.loadgen_cpu));
        m.push(("  server RSS MiB at sustained".into(), s.server_rss_mib));
        m.push(("  other load cores at sustained".into(), s.other_cpu));
    }
    m.push(("peak delivered msgs/s".into(), peak));
    m.push((
        "sweep ended loadgen-bound (1=yes)".into(),
        if steps.last().is_some_and(|s| s.loadgen_bound && s.kept_up) {
            1.0
        } else {
            0.0
        },
    ));
    m
}

pub async fn relay(env: &Env) -> Vec<Outcome> {
    let sizes = &env.sizes;
    let params = json!({
        "sessions": sizes.relay_sessions,
        "connections": sizes.relay_sessions * 2,
        "offered_msgs_per_s": sizes.relay_rates,
        "warmup_s": sizes.relay_warmup.as_secs_f64(),
        "window_s": sizes.relay_window.as_secs_f64(),
        "sustained_means": format!("highest delivered rate with every message delivered, no connection lost and p99 <= {SUSTAINED_P99_MS} ms"),
    });
    let mut outcomes: Vec<Outcome> = env
        .systems
        .iter()
        .map(|s| Outcome::new("relay", s.name(), None, params.clone()))
        .collect();
    for run in 0..sizes.runs {
        for (i, &system) in env.systems.iter().enumerate() {
            eprintln!(
                "relay sweep: {} run {}/{}",
                system.name(),
                run + 1,
                sizes.runs
            );
            match sweep(env, system).await {
                Ok(steps) => outcomes[i].add_run(&sweep_metrics(&steps), json!({ "steps": steps })),
                Err(e) => {
                    eprintln!("  failed: {e:#}");
                    outcomes[i].error.get_or_insert(format!("{e:#}"));
                }
            }
        }
    }
    for o in &mut outcomes {
        o.finish();
    }
    outcomes
}

async fn live_run(env: &Env, system: System) -> anyhow::Result<Step> {
    let sizes = &env.sizes;
    let (_, fixture) = &env.sqlite;
    let seats = seats(
        fixture,
        &fixture.pairs[..sizes.live_sessions],
        Rooms::ChatAndPresence,
    );
    with_server(env, system, async |server: &mut Server| {
        let fleet = Fleet::open(proto_of(system), server.addr, &seats, PARALLEL_SETUP).await?;
        let offered = sizes.live_rate * seats.len() as f64;
        let warmup = sizes.relay_warmup * 2;
        let step = measure_step(&fleet, server, offered, warmup, sizes.live_window).await?;
        eprintln!(
            "  live {:<10} {} connections delivered {:.0}/s p50 {:.2} ms p99 {:.2} ms max {:.2} ms server {:.2} cores",
            system.name(),
            fleet.len(),
            step.delivered,
            step.p50_ms,
            step.p99_ms,
            step.max_ms,
            step.server_cpu
        );
        fleet.close().await;
        Ok(step)
    })
    .await
}

pub async fn live(env: &Env) -> Vec<Outcome> {
    let sizes = &env.sizes;
    let params = json!({
        "sessions": sizes.live_sessions,
        "connections": sizes.live_sessions * 2,
        "channels_per_connection": 2,
        "msgs_per_s_per_connection": sizes.live_rate,
        "window_s": sizes.live_window.as_secs_f64(),
    });
    let mut outcomes: Vec<Outcome> = env
        .systems
        .iter()
        .map(|s| Outcome::new("live-sessions", s.name(), None, params.clone()))
        .collect();
    for run in 0..sizes.runs {
        for (i, &system) in env.systems.iter().enumerate() {
            eprintln!(
                "live sessions ({}): {} run {}/{}",
                sizes.live_sessions,
                system.name(),
                run + 1,
                sizes.runs
            );
            match live_run(env, system).await {
                Ok(step) => {
                    let mut m: Metrics = vec![
                        ("delivered msgs/s".into(), step.delivered),
                        ("p50 ms".into(), step.p50_ms),
                        ("p99 ms".into(), step.p99_ms),
                        ("max ms".into(), step.max_ms),
                        ("server cores".into(), step.server_cpu),
                        (
                            "server CPU us per msg".into(),
                            step.server_cpu * 1e6 / step.delivered.max(1.0),
                        ),
                        ("server RSS MiB".into(), step.server_rss_mib),
                        ("other load cores".into(), step.other_cpu),
                    ];
                    if !step.kept_up {
                        m.push(("lost connections".into(), step.lost_connections as f64));
                    }
                    outcomes[i].add_run(&m, json!({ "step": step }));
                }
                Err(e) => {
                    eprintln!("  failed: {e:#}");
                    outcomes[i].error.get_or_insert(format!("{e:#}"));
                }
            }
        }
    }
    for o in &mut outcomes {
        o.finish();
    }
    outcomes
}
