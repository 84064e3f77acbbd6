//! Connections held by a cluster: more joined, tracked connections than one process may open,
//! spread over the nodes of one cluster (PostgreSQL and Redis) and opened by as many load
//! generator processes (`wrenchline-bench hold`, one per node), each under the per-process
//! open-file limit. Every connection is one participant of its own session, joined to the
//! session's presence channel and tracked there, as the chat window is.
//!
//! Each run also measures the latency a chatting pair sees: live pairs broadcasting on their
//! session channel, first on one server without Redis (both people on it), then on the cluster
//! with the customer on the first node and the mechanic on the second (every message crosses
//! Redis), then the same across nodes while the whole fleet is held. Memory is reported per
//! node, for Redis (`INFO memory`) and for the load generator.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use clap::Args;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use super::{seats, start_servers, Env, Rooms};
use crate::fixture::{self, Fixture, Pair};
use crate::load::{Fleet, Seat};
use crate::procs::{rss_bytes, CpuMeter, Db, MachineMeter, Server};
use crate::report::{Metrics, Outcome};
use crate::stats::LatencySummary;
use crate::wire::Proto;

/// Handshakes in flight per load generator process: few enough that the nodes, sharing one
/// core here, keep up with their cluster heartbeats while every session goes live.
const PARALLEL_SETUP: usize = 16;
/// Sockets a process keeps for itself besides the held connections (database and Redis pools,
/// listeners, the HTTP client): the per-process share is the open-file limit less this.
const HEADROOM: usize = 1_000;

/// `wrenchline-bench hold`: one load generator process of the held-connections scenario.
#[derive(Args, Debug)]
pub struct HoldArgs {
    /// The node to connect to (`127.0.0.1:PORT`).
    #[arg(long)]
    pub addr: std::net::SocketAddr,
    /// A JSON array of the seats to open, one connection each.
    #[arg(long)]
    pub seats: PathBuf,
    /// The number of the first connection (spreads source addresses across processes).
    #[arg(long, default_value_t = 0)]
    pub first: usize,
}

/// What a hold process says on its standard output, one JSON object per line.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldReport {
    /// Every connection is open, joined and tracked.
    Held {
        connections: usize,
        seconds: f64,
    },
    /// The answer to a `status` line on standard input.
    Status {
        connections: usize,
        lost: u64,
        rss: u64,
    },
    Failed {
        error: String,
    },
}

fn say(report: &HoldReport) {
    println!("{}", serde_json::to_string(report).expect("serializable"));
}

/// The hold process: opens its seats' connections, reports, answers `status` lines, and closes
/// everything when its standard input ends.
pub async fn hold(args: HoldArgs) -> anyhow::Result<i32> {
    let seats: Vec<Seat> = serde_json::from_slice(
        &std::fs::read(&args.seats).with_context(|| format!("reading {}", args.seats.display()))?,
    )?;
    let started = Instant::now();
    let mut fleet = Fleet::open(Proto::Phoenix, args.addr, &[], PARALLEL_SETUP).await?;
    if let Err(e) = fleet
        .add(
            Proto::Phoenix,
            args.addr,
            &seats,
            args.first,
            PARALLEL_SETUP,
        )
        .await
    {
        say(&HoldReport::Failed {
            error: format!("{e:#}"),
        });
        fleet.close().await;
        return Ok(1);
    }
    say(&HoldReport::Held {
        connections: fleet.len(),
        seconds: started.elapsed().as_secs_f64(),
    });
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        if line.trim() == "status" {
            say(&HoldReport::Status {
                connections: fleet.len() - fleet.control.lost.get() as usize,
                lost: fleet.control.lost.get(),
                rss: rss_bytes(std::process::id()).unwrap_or(0),
            });
        }
    }
    fleet.close().await;
    Ok(0)
}

/// A running hold process, seen from the suite.
struct Holder {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Holder {
    async fn spawn(addr: std::net::SocketAddr, seats: &Path, first: usize) -> anyhow::Result<Self> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("hold")
            .args(["--addr", &addr.to_string()])
            .arg("--seats")
            .arg(seats)
            .args(["--first", &first.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting a hold process")?;
        let stdin = child.stdin.take().expect("piped");
        let lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        Ok(Holder {
            child,
            stdin,
            lines,
        })
    }

    async fn next(&mut self, within: Duration) -> anyhow::Result<HoldReport> {
        let line = tokio::time::timeout(within, self.lines.next_line())
            .await
            .map_err(|_| anyhow!("a hold process said nothing for {within:?}"))??
            .ok_or_else(|| anyhow!("a hold process exited"))?;
        Ok(serde_json::from_str(&line)?)
    }

    /// Waits until every connection is held; returns how many and how long it took.
    async fn held(&mut self) -> anyhow::Result<(usize, f64)> {
        match self.next(Duration::from_secs(600)).await? {
            HoldReport::Held {
                connections,
                seconds,
            } => Ok((connections, seconds)),
            HoldReport::Failed { error } => bail!("a hold process failed: {error}"),
            other => bail!("unexpected from a hold process: {other:?}"),
        }
    }

    /// Connections still open, connections lost, resident memory.
    async fn status(&mut self) -> anyhow::Result<(usize, u64, u64)> {
        self.stdin.write_all(b"status\n").await?;
        match self.next(Duration::from_secs(30)).await? {
            HoldReport::Status {
                connections,
                lost,
                rss,
            } => Ok((connections, lost, rss)),
            other => bail!("unexpected from a hold process: {other:?}"),
        }
    }

    async fn stop(self) {
        let Holder {
            mut child, stdin, ..
        } = self;
        drop(stdin);
        if tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .is_err()
        {
            let _ = child.kill().await;
        }
    }
}

/// Redis's own figure of the memory it uses, in bytes.
async fn redis_memory(url: &str) -> anyhow::Result<u64> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut conn)
        .await?;
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| anyhow!("INFO memory has no used_memory"))
}

/// The latency of the live pairs: customers' connections on `a`, mechanics' on `b`, each
/// person broadcasting at `rate` per second.
async fn pair_latency(
    a: std::net::SocketAddr,
    b: std::net::SocketAddr,
    pairs: &[Seat],
    rate: f64,
    warmup: Duration,
    window: Duration,
) -> anyhow::Result<(LatencySummary, u64)> {
    let (customers, mechanics): (Vec<Seat>, Vec<Seat>) = pairs
        .chunks(2)
        .map(|p| (p[0].clone(), p[1].clone()))
        .unzip();
    let one = Fleet::open(Proto::Phoenix, a, &customers, 64).await?;
    let other = Fleet::open(Proto::Phoenix, b, &mechanics, 64).await?;
    let fleets = [&one, &other];
    for f in fleets {
        f.control.rate.send_replace(rate);
    }
    tokio::time::sleep(warmup).await;
    for f in fleets {
        f.control.reset();
    }
    tokio::time::sleep(window).await;
    let mut all = one.control.latency.snapshot();
    all.add(other.control.latency.snapshot())?;
    let sent = one.control.sent.get() + other.control.sent.get();
    let received = one.control.received.get() + other.control.received.get();
    let lost = one.control.lost.get() + other.control.lost.get();
    one.close().await;
    other.close().await;
    if lost > 0 {
        bail!("{lost} live connections were closed by the server");
    }
    Ok((LatencySummary::of(&all), sent.saturating_sub(received)))
}

/// What one run measured.
#[derive(Debug, Clone, Serialize)]
struct HeldRun {
    nodes: usize,
    connections: usize,
    connect_s: f64,
    nodes_rss_before: u64,
    nodes_rss_after: Vec<u64>,
    redis_before: u64,
    redis_after: u64,
    loadgen_rss: u64,
    single: LatencySummary,
    cross: LatencySummary,
    cross_held: LatencySummary,
    undelivered: u64,
    /// Cores the nodes and the load generator (suite and hold processes) used while the fleet
    /// was held and the pairs measured, and what the rest of the machine took besides them.
    nodes_cpu: f64,
    loadgen_cpu: f64,
    other_cpu: f64,
}

/// The layout of a run: how many connections, processes and nodes.
fn layout(requested: usize, nofile: usize, per_process: usize) -> (usize, usize) {
    let share = per_process.min(nofile.saturating_sub(HEADROOM)).max(1);
    let connections = requested / 2 * 2;
    (connections, connections.div_ceil(share).max(2))
}

async fn run(
    env: &Env,
    db: &Db,
    redis: &str,
    held: &[Pair],
    live: &[Pair],
    fixture: &Fixture,
) -> anyhow::Result<HeldRun> {
    let sizes = &env.sizes;
    let (connections, nodes) = layout(held.len() * 2, env.nofile as usize, sizes.held_per_process);
    let live_seats = seats(fixture, live, Rooms::ChatAndPresence);
    let rate = sizes.live_rate;
    let warmup = Duration::from_secs(1);
    let window = sizes.held_window;

    let single = {
        let servers = start_servers(env, db, None).await?;
        let addr = servers[0].addr;
        let r = pair_latency(addr, addr, &live_seats, rate, warmup, window).await;
        for s in servers {
            s.stop().await;
        }
        r?.0
    };

    let mut servers = start_servers(env, db, Some((redis, nodes))).await?;
    let mut holders: Vec<Holder> = Vec::new();
    let result = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (a, b) = (servers[0].addr, servers[1].addr);
        let (cross, _) = pair_latency(a, b, &live_seats, rate, warmup, window).await?;
        let nodes_rss_before: u64 = servers.iter().map(Server::rss).sum();
        let redis_before = redis_memory(redis).await?;

        let all = seats(fixture, held, Rooms::Presence);
        let share = connections.div_ceil(nodes);
        let started = Instant::now();
        for (i, chunk) in all.chunks(share).enumerate() {
            let file = env.programs.work.join(format!("held-seats-{i}.json"));
            std::fs::write(&file, serde_json::to_vec(chunk)?)?;
            holders.push(Holder::spawn(servers[i].addr, &file, i * share).await?);
        }
        let mut opened = 0;
        for h in &mut holders {
            opened += h.held().await?.0;
        }
        let connect_s = started.elapsed().as_secs_f64();
        eprintln!(
            "  held: {opened} connections on {nodes} nodes in {connect_s:.1} s ({:.0}/s)",
            opened as f64 / connect_s
        );
        tokio::time::sleep(sizes.idle_settle).await;
        let node_cpu: Vec<CpuMeter> = servers.iter().map(|s| CpuMeter::start(s.pid)).collect();
        let own_cpu = CpuMeter::start(std::process::id());
        let holder_cpu: Vec<CpuMeter> = holders
            .iter()
            .filter_map(|h| h.child.id())
            .map(CpuMeter::start)
            .collect();
        let machine = MachineMeter::start();
        let (cross_held, undelivered) =
            pair_latency(a, b, &live_seats, rate, warmup, window).await?;
        let nodes_cpu: f64 = node_cpu.iter().map(CpuMeter::cores).sum();
        let loadgen_cpu = own_cpu.cores() + holder_cpu.iter().map(CpuMeter::cores).sum::<f64>();
        let other_cpu = (machine.cores() - nodes_cpu - loadgen_cpu).max(0.0);
        for s in servers.iter_mut() {
            s.check_alive()?;
        }
        let mut still = 0;
        let mut lost = 0;
        let mut loadgen_rss = 0;
        for h in &mut holders {
            let (n, l, rss) = h.status().await?;
            still += n;
            lost += l;
            loadgen_rss += rss;
        }
        if lost > 0 || still != connections {
            bail!("{lost} held connections were closed; {still} of {connections} still open");
        }
        let run = HeldRun {
            nodes,
            connections: still,
            connect_s,
            nodes_rss_before,
            nodes_rss_after: servers.iter().map(Server::rss).collect(),
            redis_before,
            redis_after: redis_memory(redis).await?,
            loadgen_rss,
            single,
            cross,
            cross_held,
            undelivered,
            nodes_cpu,
            loadgen_cpu,
            other_cpu,
        };
        anyhow::Ok(run)
    }
    .await;
    for h in holders {
        h.stop().await;
    }
    for s in servers {
        s.stop().await;
    }
    result
}

fn metrics(r: &HeldRun) -> Metrics {
    let after: u64 = r.nodes_rss_after.iter().sum();
    let per_conn = |bytes: f64| bytes / r.connections.max(1) as f64 / 1024.0;
    vec![
        ("connections held".into(), r.connections as f64),
        ("nodes".into(), r.nodes as f64),
        (
            "connections/s while opening".into(),
            r.connections as f64 / r.connect_s.max(1e-9),
        ),
        ("nodes RSS MiB".into(), after as f64 / 1048576.0),
        (
            "nodes KiB/conn".into(),
            per_conn(after.saturating_sub(r.nodes_rss_before) as f64),
        ),
        ("Redis MiB".into(), r.redis_after as f64 / 1048576.0),
        (
            "Redis KiB/conn".into(),
            per_conn(r.redis_after.saturating_sub(r.redis_before) as f64),
        ),
        (
            "load generator RSS MiB".into(),
            r.loadgen_rss as f64 / 1048576.0,
        ),
        ("single-node p99 ms".into(), r.single.p99_ms),
        ("cross-node p99 ms".into(), r.cross.p99_ms),
        ("cross-node p99 ms, fleet held".into(), r.cross_held.p99_ms),
        ("cross-node p50 ms, fleet held".into(), r.cross_held.p50_ms),
        (
            "cross-node p99 above single ms".into(),
            r.cross.p99_ms - r.single.p99_ms,
        ),
        ("nodes cores, fleet held".into(), r.nodes_cpu),
        ("load generator cores, fleet held".into(), r.loadgen_cpu),
        ("other load cores".into(), r.other_cpu),
    ]
}

/// Makes `count` sessions for a run (through one server), numbered from `first`.
async fn sessions(
    env: &Env,
    db: &Db,
    fixture: &Fixture,
    first: usize,
    count: usize,
) -> anyhow::Result<Vec<Pair>> {
    let servers = start_servers(env, db, None).await?;
    let started = Instant::now();
    let result = async {
        let http = fixture::Http::new(&servers[0].base_url())?;
        fixture::add_pairs(&http, &fixture.mechanics, first, first + count).await
    }
    .await;
    for s in servers {
        s.stop().await;
    }
    let pairs = result?;
    eprintln!(
        "  {} sessions filed, signed and accepted in {:.1} s",
        pairs.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(pairs)
}

pub async fn held(env: &Env) -> Vec<Outcome> {
    let sizes = &env.sizes;
    let (connections, nodes) = layout(
        sizes.held_connections,
        env.nofile as usize,
        sizes.held_per_process,
    );
    let live = sizes.held_live_sessions;
    let mut outcome = Outcome::new(
        "held-cluster",
        "wrenchline",
        Some("postgres"),
        json!({
            "connections": connections,
            "nodes": nodes,
            "load_generator_processes": nodes,
            "per_process_open_file_limit": env.nofile,
            "channel": "chat:session-{id}:presence, presence tracked, one session per two connections",
            "live_pairs": live,
            "live_msgs_per_s_per_connection": sizes.live_rate,
            "window_s": sizes.held_window.as_secs_f64(),
            "latency": "broadcast on chat:session-{id}: customer on node-1, mechanic on node-2 (single: both on one server without Redis)",
        }),
    );
    let (Some((db, fixture)), Some(redis)) = (&env.postgres, &env.redis) else {
        outcome.error = Some("needs --postgres-url and --redis-url".into());
        return vec![outcome];
    };
    for r in 0..sizes.runs {
        eprintln!(
            "held connections ({connections} on {nodes} nodes): run {}/{}",
            r + 1,
            sizes.runs
        );
        // Fresh sessions every run: a session whose pair met in an earlier run is live with its
        // clock running, and one whose pair did not may have been offered again meanwhile.
        let first = 1_000_000 * (r + 1);
        let result = match sessions(env, db, fixture, first, connections / 2 + live).await {
            Ok(pairs) => {
                let (live_pairs, held_pairs) = pairs.split_at(live);
                run(env, db, redis, held_pairs, live_pairs, fixture).await
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(run) => {
                eprintln!(
                    "  p99 single {:.2} ms, cross-node {:.2} ms, cross-node with the fleet held {:.2} ms; nodes {:.0} MiB, Redis {:.0} MiB",
                    run.single.p99_ms,
                    run.cross.p99_ms,
                    run.cross_held.p99_ms,
                    run.nodes_rss_after.iter().sum::<u64>() as f64 / 1048576.0,
                    run.redis_after as f64 / 1048576.0
                );
                outcome.add_run(&metrics(&run), json!({ "run": run }));
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

#[cfg(test)]
mod tests {
    use super::layout;

    #[test]
    fn every_process_stays_under_its_share() {
        // 100,000 under a 20,000 limit: 15,000 a process at most, so 7 nodes.
        assert_eq!(layout(100_000, 20_000, 15_000), (100_000, 7));
        // A lower limit than the wanted share wins.
        assert_eq!(layout(100_000, 11_000, 15_000), (100_000, 10));
        // Never fewer than two nodes: the pairs need two.
        assert_eq!(layout(301, 20_000, 15_000), (300, 2));
    }
}
