//! Idle connections: how much server memory a connection costs once it has joined its
//! session's presence channel and tracked itself there, and how many fit. Each run starts a
//! fresh server, notes its resident memory, then grows the fleet step by step and divides the
//! growth by the connections held. Connections only heartbeat (Phoenix every 25 s; Socket.IO
//! answers the server's pings).

use serde_json::json;

use super::{proto_of, seats, Env, Rooms};
use crate::load::Fleet;
use crate::procs::{Server, System};
use crate::report::{Metrics, Outcome};

/// The steps a run can reach here: those under the connection ceiling, plus the ceiling itself
/// when a requested step is above it.
pub fn reachable_steps(requested: &[usize], max_connections: usize) -> (Vec<usize>, Vec<usize>) {
    let mut steps: Vec<usize> = requested
        .iter()
        .copied()
        .filter(|&s| s <= max_connections)
        .collect();
    let skipped: Vec<usize> = requested
        .iter()
        .copied()
        .filter(|&s| s > max_connections)
        .collect();
    if !skipped.is_empty() && steps.last().is_none_or(|&l| l < max_connections) {
        // Pairs of connections: keep it even.
        steps.push(max_connections / 2 * 2);
    }
    (steps, skipped)
}

async fn run(env: &Env, system: System, steps: &[usize]) -> anyhow::Result<Vec<(usize, u64, u64)>> {
    let (_, fixture) = &env.sqlite;
    let largest = *steps.last().unwrap_or(&0);
    let all = seats(
        fixture,
        &fixture.pairs[..largest.div_ceil(2)],
        Rooms::Presence,
    );
    let mut server = Server::start(&env.programs, system, Some(&env.sqlite.0)).await?;
    let result = async {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let base = server.rss();
        let proto = proto_of(system);
        let mut fleet: Option<Fleet> = None;
        let mut out = Vec::new();
        for &step in steps {
            let have = fleet.as_ref().map_or(0, Fleet::len);
            let seats = &all[have..step];
            let started = std::time::Instant::now();
            match fleet.as_mut() {
                None => fleet = Some(Fleet::open(proto, server.addr, seats, 256).await?),
                Some(f) => f.add(proto, server.addr, seats, have, 256).await?,
            }
            let took = started.elapsed();
            tokio::time::sleep(env.sizes.idle_settle).await;
            server.check_alive()?;
            let f = fleet.as_ref().expect("opened");
            let lost = f.control.lost.get();
            if lost > 0 {
                anyhow::bail!("{lost} idle connections were closed by the server");
            }
            let rss = server.rss();
            eprintln!(
                "  idle {:<10} {:>7} connections: RSS {:.1} MiB (+{:.2} KiB/conn), connected in {:.1} s",
                system.name(),
                f.len(),
                rss as f64 / 1048576.0,
                rss.saturating_sub(base) as f64 / 1024.0 / f.len() as f64,
                took.as_secs_f64()
            );
            out.push((f.len(), base, rss));
        }
        if let Some(f) = fleet {
            f.close().await;
        }
        anyhow::Ok(out)
    }
    .await;
    server.stop().await;
    result
}

pub async fn idle(env: &Env) -> Vec<Outcome> {
    let (steps, skipped) = reachable_steps(&env.sizes.idle_steps, env.max_connections);
    let params = json!({
        "requested_connections": env.sizes.idle_steps,
        "measured_connections": steps,
        "channel": "chat:session-{id}:presence, presence tracked",
        "settle_s": env.sizes.idle_settle.as_secs_f64(),
    });
    let mut outcomes: Vec<Outcome> = env
        .systems
        .iter()
        .map(|s| Outcome::new("idle", s.name(), None, params.clone()))
        .collect();
    if !skipped.is_empty() {
        let note = format!(
            "{skipped:?} connections not reachable: the open-file limit is {} per process (hard limit; raising it needs CAP_SYS_RESOURCE), so one server holds at most ~{} sockets; largest measured step is {}",
            env.nofile,
            env.max_connections,
            steps.last().copied().unwrap_or(0)
        );
        for o in &mut outcomes {
            o.notes.push(note.clone());
        }
    }
    for r in 0..env.sizes.runs {
        for (i, &system) in env.systems.iter().enumerate() {
            eprintln!("idle: {} run {}/{}", system.name(), r + 1, env.sizes.runs);
            match run(env, system, &steps).await {
                Ok(points) => {
                    let mut m: Metrics = Vec::new();
                    for &(n, base, rss) in &points {
                        m.push((
                            format!("KiB/conn at {n}"),
                            rss.saturating_sub(base) as f64 / 1024.0 / n as f64,
                        ));
                        m.push((format!("server RSS MiB at {n}"), rss as f64 / 1048576.0));
                    }
                    if let Some(&(n, _, _)) = points.last() {
                        m.push(("connections held".into(), n as f64));
                    }
                    let detail: Vec<_> = points
                        .iter()
                        .map(|&(n, base, rss)| json!({"connections": n, "base_rss": base, "rss": rss}))
                        .collect();
                    outcomes[i].add_run(&m, json!({ "points": detail }));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_stop_at_the_ceiling() {
        assert_eq!(
            reachable_steps(&[10_000, 50_000, 100_000], 19_601),
            (vec![10_000, 19_600], vec![50_000, 100_000])
        );
        assert_eq!(reachable_steps(&[200], 19_600), (vec![200], vec![]));
    }
}
