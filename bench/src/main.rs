//! wrenchline-bench: the load generator of issue 7. One process opens every connection of a
//! scenario itself (built on `wrenchline-client`, with a thin adapter in `wire` that binds each
//! socket to one of eight loopback source addresses and also speaks Socket.IO), starts the
//! servers under test, runs every scenario side by side on wrenchline-server, the bare relay and
//! the Socket.IO peer, and writes the table and `bench/results/latest.json`.
//! `scripts/bench.sh [--quick]` builds everything and runs `wrenchline-bench suite`.

mod fixture;
mod load;
mod procs;
mod report;
mod scenarios;
mod stats;
mod wire;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use serde_json::{json, Value};

use procs::{Db, Programs, Server, System};
use report::{Outcome, Target};
use scenarios::{Env, Sizes};

#[derive(Parser)]
#[command(
    name = "wrenchline-bench",
    about = "Load generator and side-by-side comparisons for wrenchline-server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the scenarios and writes the results.
    Suite(SuiteArgs),
    /// Holds many connections for a long time with churn and judges whether the server's
    /// memory and file descriptors stay flat (scripts/soak.sh, docs/soak.md).
    Soak(scenarios::soak::SoakArgs),
    /// One load generator process of the held-connections scenario (started by the suite).
    Hold(scenarios::held::HoldArgs),
}

#[derive(clap::Args)]
struct SuiteArgs {
    /// Seconds per scenario and small sizes (CI).
    #[arg(long)]
    quick: bool,
    /// Runs per scenario (default 1 quick, 3 full).
    #[arg(long)]
    runs: Option<usize>,
    #[arg(long)]
    server_bin: PathBuf,
    #[arg(long)]
    bare_bin: PathBuf,
    /// bench/socketio, with node_modules installed.
    #[arg(long)]
    socketio_dir: PathBuf,
    #[arg(long, default_value = "node")]
    node: String,
    /// A PostgreSQL database for the persisted-chat, fan-out and accept-race scenarios.
    #[arg(long, env = "WRENCHLINE_TEST_POSTGRES_URL")]
    postgres_url: Option<String>,
    /// A Redis for the cross-node chat scenario (three nodes on the PostgreSQL database).
    #[arg(long, env = "WRENCHLINE_TEST_REDIS_URL")]
    redis_url: Option<String>,
    #[arg(long, default_value = "bench/results/latest.json")]
    out: PathBuf,
    /// The desktop app and its bare Tauri baseline, built by `scripts/measure-desk.sh
    /// --build-only` (binaries `wrenchline`, `baseline` and their `.deb`s): the desk scenario.
    #[arg(long)]
    desk_dir: Option<PathBuf>,
    /// Only these scenarios (relay, live, idle, chat, fanout, race, attack, media, held, desk),
    /// comma-separated.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Only these systems (wrenchline, bare-relay, socket.io), comma-separated.
    #[arg(long, value_delimiter = ',')]
    systems: Vec<String>,
    /// Do not pin the load generator and the servers to separate cores.
    #[arg(long)]
    no_pin: bool,
    /// Offered rates of the relay sweep (total broadcasts per second), comma-separated;
    /// e.g. one rate to hold a server at a load while profiling it.
    #[arg(long, value_delimiter = ',')]
    relay_rates: Vec<f64>,
    /// Keep the working directory (databases, server logs).
    #[arg(long)]
    keep: bool,
    /// Nice value (negative: more CPU) for this session's scheduling group while the suite
    /// runs, so that other work on a shared machine disturbs the measurements less. With
    /// autogroup scheduling a process's own nice only ranks it within its session.
    #[arg(long, allow_hyphen_values = true)]
    priority: Option<i32>,
}

fn main() -> anyhow::Result<()> {
    let args = match Cli::parse().command {
        Command::Suite(args) => args,
        Command::Soak(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            std::process::exit(runtime.block_on(scenarios::soak::soak(args))?);
        }
        Command::Hold(args) => {
            procs::raise_nofile();
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            std::process::exit(runtime.block_on(scenarios::held::hold(args))?);
        }
    };
    let nproc = procs::cpu_count();
    let nofile = procs::raise_nofile();
    let restore = args.priority.map(procs::set_priority);
    // Pin before the runtime starts so that its worker threads inherit the mask.
    let pinned = !args.no_pin && nproc >= 2 && procs::pin_self(0);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(suite(args, nproc, nofile, pinned));
    if let Some(Some(previous)) = restore {
        procs::restore_priority(&previous);
    }
    std::process::exit(result?);
}

fn write_config(work: &std::path::Path) -> anyhow::Result<()> {
    std::fs::write(
        work.join("limits.toml"),
        "login_per_address_per_minute = 1000000\n\
         login_per_account_per_minute = 1000000\n\
         intakes_per_address_per_hour = 1000000000\n\
         messages_per_user_per_minute = 1000000000\n\
         joins_per_connection_per_second = 1000000\n\
         presence_per_connection_per_second = 1000000\n\
         joins_per_user_per_second = 1000000\n\
         presence_per_user_per_second = 1000000\n\
         broadcasts_per_connection_per_second = 1000000\n\
         broadcasts_per_user_per_second = 1000000\n\
         session_topic_subscribers_per_user = 1000000\n\
         session_topic_subscribers = 1000000\n\
         connections_per_address = 1000000\n\
         http_connections_per_address = 1000000\n",
    )?;
    // A day-long trial, so no session ends while a scenario runs.
    std::fs::write(
        work.join("plans.toml"),
        "[[plans]]\nid = \"trial\"\nname = \"Trial\"\nminutes = 1440\nprice_cents = 0\n",
    )?;
    Ok(())
}

/// Mechanics, logins and accepted sessions in one database.
async fn prepare(
    programs: &Programs,
    db: &Db,
    mechanics: usize,
    sessions: usize,
) -> anyhow::Result<fixture::Fixture> {
    let t = Instant::now();
    fixture::add_mechanics(programs, db, mechanics).await?;
    eprintln!(
        "  {mechanics} mechanics added in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let server = Server::start(programs, System::Wrenchline, Some(db)).await?;
    let result = async {
        let base = server.base_url();
        let t = Instant::now();
        let mechanics = fixture::login_mechanics(&base, mechanics).await?;
        eprintln!(
            "  {} mechanics signed in in {:.1} s",
            mechanics.len(),
            t.elapsed().as_secs_f64()
        );
        let t = Instant::now();
        let http = fixture::Http::new(&base)?;
        let pairs = fixture::add_pairs(&http, &mechanics, 0, sessions).await?;
        eprintln!(
            "  {} sessions filed, signed and accepted in {:.1} s",
            pairs.len(),
            t.elapsed().as_secs_f64()
        );
        anyhow::Ok(fixture::Fixture { mechanics, pairs })
    }
    .await;
    server.stop().await;
    result
}

fn machine(nproc: usize, nofile: u64, pinned: bool) -> Value {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let meminfo = read("/proc/meminfo");
    let mem = |key: &str| {
        meminfo
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| format!("{:.1} GiB", kb as f64 / 1048576.0))
    };
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string());
    json!({
        "nproc": nproc,
        "cpu": cpu,
        "mem_total": mem("MemTotal:"),
        "mem_available": mem("MemAvailable:"),
        "kernel": read("/proc/sys/kernel/osrelease").trim(),
        "nofile": nofile,
        "nofile_hard_raisable": procs::can_raise_hard_nofile(),
        // SAFETY: getpriority has no preconditions.
        "nice": unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) },
        "autogroup": std::fs::read_to_string("/proc/self/autogroup").unwrap_or_default().trim(),
        "pinning": if pinned { "load generator on CPU 0, each server on CPU 1" } else { "none" },
    })
}

fn git_rev() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn find<'a>(
    outcomes: &'a [Outcome],
    scenario: &str,
    system: &str,
    db: Option<&str>,
) -> Option<&'a Outcome> {
    outcomes
        .iter()
        .find(|o| o.scenario == scenario && o.system == system && (db.is_none() || o.db == db))
}

/// `metric` of run i of `a` over run i of `b`, for the runs both have.
fn paired_ratios(a: Option<&Outcome>, b: Option<&Outcome>, metric: &str) -> Vec<f64> {
    let (Some(a), Some(b)) = (a, b) else {
        return Vec::new();
    };
    a.runs
        .iter()
        .zip(&b.runs)
        .filter_map(|(x, y)| {
            let (x, y) = (x.get(metric)?.as_f64()?, y.get(metric)?.as_f64()?);
            (y > 0.0).then(|| x / y)
        })
        .collect()
}

/// The performance targets beside the medians measured (ratios within one run).
fn targets(outcomes: &[Outcome], sizes: &Sizes) -> Vec<Target> {
    let mut t = Vec::new();
    let sustained = "sustained msgs/s (p99<=10ms)";
    let relay =
        |system: &str| find(outcomes, "relay", system, None).and_then(|o| o.median(sustained));
    if let Some(w) = relay("wrenchline") {
        for (peer, factor) in [("bare-relay", 1.0), ("socket.io", 3.0)] {
            if let Some(p) = relay(peer).filter(|p| *p > 0.0) {
                let ratio = w / p;
                // Run i of each system beside the other's run i: the target holds in every run.
                let per_run = paired_ratios(
                    find(outcomes, "relay", "wrenchline", None),
                    find(outcomes, "relay", peer, None),
                    sustained,
                );
                let (low, high) = per_run
                    .iter()
                    .fold((f64::INFINITY, 0.0_f64), |(l, h), r| (l.min(*r), h.max(*r)));
                t.push(Target {
                    name: format!("relay throughput vs {peer}"),
                    target: format!(">= {factor} x {peer}, every run"),
                    measured: format!("{:.2} x ({:.0} vs {:.0}/s)", ratio, w, p),
                    ratio: Some(ratio / factor),
                    met: Some(ratio >= factor && per_run.iter().all(|r| *r >= factor)),
                    note: if per_run.is_empty() {
                        "sustained rate: all delivered, p99 <= 10 ms".into()
                    } else {
                        format!(
                            "per run {low:.2}–{high:.2} x; sustained rate: all delivered, p99 <= 10 ms"
                        )
                    },
                });
            }
        }
    }
    let largest_idle = |o: &Outcome| {
        o.summary
            .keys()
            .filter_map(|k| {
                k.strip_prefix("KiB/conn at ")
                    .and_then(|n| n.parse::<usize>().ok())
            })
            .max()
    };
    let idle = find(outcomes, "idle", "wrenchline", None);
    let bare_idle = find(outcomes, "idle", "bare-relay", None);
    if let Some(o) = idle {
        if let Some(n) = largest_idle(o) {
            let metric = format!("KiB/conn at {n}");
            if let Some(kib) = o.median(&metric) {
                let bare = bare_idle.and_then(|b| b.median(&metric));
                t.push(match bare {
                    Some(bare) => Target {
                        name: format!("memory per idle joined connection ({n})"),
                        target: "<= 1.1 x bare-relay".into(),
                        measured: format!("{kib:.2} vs {bare:.2} KiB ({:.2} x)", kib / bare),
                        ratio: Some(1.1 * bare / kib.max(1e-9)),
                        met: Some(kib <= 1.1 * bare),
                        note: String::new(),
                    },
                    None => Target {
                        name: format!("memory per idle joined connection ({n})"),
                        target: "<= 1.1 x bare-relay".into(),
                        measured: format!("{kib:.2} KiB"),
                        ratio: None,
                        met: None,
                        note: "the bare relay was not measured".into(),
                    },
                });
            }
        }
    }
    if let Some(o) = find(outcomes, "held-cluster", "wrenchline", None) {
        if let Some(held) = o.median("connections held") {
            let nodes = o.median("nodes").unwrap_or(0.0);
            t.push(Target {
                name: "joined connections on this machine".into(),
                target: ">= 100,000 (several nodes)".into(),
                measured: format!("{held:.0} on {nodes:.0} nodes"),
                ratio: Some(held / 100_000.0),
                met: Some(held >= 100_000.0),
                note: format!(
                    "nodes {:.0} MiB, Redis {:.0} MiB; p99 {:.2} ms across nodes while held",
                    o.median("nodes RSS MiB").unwrap_or(f64::NAN),
                    o.median("Redis MiB").unwrap_or(f64::NAN),
                    o.median("cross-node p99 ms, fleet held")
                        .unwrap_or(f64::NAN)
                ),
            });
        }
        if let (Some(single), Some(cross)) = (
            o.median("single-node p99 ms"),
            o.median("cross-node p99 ms"),
        ) {
            let above = cross - single;
            t.push(Target {
                name: "message p99 across nodes vs one node".into(),
                target: "<= 2 ms above one node".into(),
                measured: format!("{cross:.2} vs {single:.2} ms (+{above:.2})"),
                ratio: Some(2.0 / above.max(1e-9)),
                met: Some(above <= 2.0),
                note: format!(
                    "{} live pairs, {} msg/s per person",
                    sizes.held_live_sessions, sizes.live_rate
                ),
            });
        }
    }
    if let Some(p99) =
        find(outcomes, "live-sessions", "wrenchline", None).and_then(|o| o.median("p99 ms"))
    {
        t.push(Target {
            name: format!("message p99 with {} live sessions", sizes.live_sessions),
            target: "<= 10 ms".into(),
            measured: format!("{p99:.2} ms"),
            ratio: Some(10.0 / p99.max(1e-9)),
            met: Some(p99 <= 10.0),
            note: format!("{} msg/s per participant", sizes.live_rate),
        });
    }
    let alone =
        find(outcomes, "fan-out", "bare-relay", None).and_then(|o| o.median("p99 ms from send"));
    for o in outcomes
        .iter()
        .filter(|o| o.scenario == "fan-out" && o.system != "bare-relay")
    {
        if let Some(p99) = o.median("p99 ms from waiver") {
            let mechanics = o.params["mechanics"].as_u64().unwrap_or(0);
            let db = o.db.unwrap_or("-");
            t.push(Target {
                name: format!("request fan-out p99 to {mechanics} mechanics ({db})"),
                target: "<= 15 ms".into(),
                measured: format!("{p99:.2} ms"),
                ratio: Some(15.0 / p99.max(1e-9)),
                met: Some(p99 <= 15.0),
                note: match alone {
                    Some(floor) => format!(
                        "from the waiver POST; the load generator alone on the bare relay: p99 {floor:.2} ms"
                    ),
                    None => "from the waiver POST".into(),
                },
            });
        }
    }
    for o in outcomes.iter().filter(|o| o.scenario == "persisted-chat") {
        let db = o.db.unwrap_or("-");
        if let Some(worst) = o.median(scenarios::chat::WORST_P99) {
            t.push(Target {
                name: format!("persisted chat p99 up to sustained ({db})"),
                target: "<= 10 ms at every rate".into(),
                measured: format!("{worst:.2} ms (worst rate)"),
                ratio: Some(10.0 / worst.max(1e-9)),
                met: Some(worst <= 10.0),
                note: "post -> the other participant".into(),
            });
        }
        if db == "postgres" {
            if let Some(rate) = o.median("sustained posts/s (p99<=50ms)") {
                t.push(Target {
                    name: "persisted chat sustained (postgres)".into(),
                    target: ">= 5,000 posts/s".into(),
                    measured: format!("{rate:.0} posts/s"),
                    ratio: Some(rate / 5_000.0),
                    met: Some(rate >= 5_000.0),
                    note: "p99 <= 50 ms".into(),
                });
            }
        }
    }
    let desk = |system: &str| find(outcomes, "desktop", system, None);
    if let (Some(app), Some(bare)) = (desk("wrenchline"), desk("bare-tauri")) {
        use scenarios::desk::{BINARY, DEB, INTERACTIVE, INTERACTIVE_RATIO};
        for (what, metric, factor) in [("binary", BINARY, 1.6), (".deb", DEB, 1.6)] {
            if let (Some(a), Some(b)) = (app.median(metric), bare.median(metric)) {
                let ratio = a / b.max(1e-9);
                t.push(Target {
                    name: format!("desktop {what} vs bare Tauri"),
                    target: format!("<= {factor} x bare Tauri"),
                    measured: format!("{ratio:.2} x ({a:.1} vs {b:.1} MiB)"),
                    ratio: Some(factor / ratio.max(1e-9)),
                    met: Some(ratio <= factor),
                    note: "release profile, the same Tauri CLI".into(),
                });
            }
        }
        if let (Some(ratio), Some(a), Some(b)) = (
            app.median(INTERACTIVE_RATIO),
            app.median(INTERACTIVE),
            bare.median(INTERACTIVE),
        ) {
            let spread = app
                .summary
                .get(INTERACTIVE_RATIO)
                .map(report::format_spread);
            t.push(Target {
                name: "desktop launch to interactive vs bare Tauri".into(),
                target: "<= 1.2 x bare Tauri".into(),
                measured: format!("{ratio:.2} x ({a:.0} vs {b:.0} ms)"),
                ratio: Some(1.2 / ratio.max(1e-9)),
                met: Some(ratio <= 1.2),
                note: spread.map_or(String::new(), |(_, range)| {
                    format!("per run {range} x; Xvfb, signed out")
                }),
            });
        }
    }
    for o in outcomes.iter().filter(|o| o.scenario == "accept-race") {
        if let (Some(clean), Some(rounds)) =
            (o.median("rounds with exactly one 200"), o.median("rounds"))
        {
            t.push(Target {
                name: format!("accept race: one 200 per round ({})", o.db.unwrap_or("-")),
                target: "every round".into(),
                measured: format!("{clean:.0}/{rounds:.0}"),
                ratio: Some(clean / rounds.max(1.0)),
                met: Some(clean == rounds && o.error.is_none()),
                note: o
                    .median("accept p99 ms")
                    .map_or(String::new(), |p| format!("accept p99 {p:.2} ms")),
            });
        }
    }
    t
}

async fn suite(args: SuiteArgs, nproc: usize, nofile: u64, pinned: bool) -> anyhow::Result<i32> {
    let started = Instant::now();
    let started_at = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let mut sizes = if args.quick {
        Sizes::quick()
    } else {
        Sizes::full()
    };
    if !args.relay_rates.is_empty() {
        sizes.relay_rates = args.relay_rates.clone();
    }
    if let Some(runs) = args.runs {
        sizes.runs = runs.max(1);
    }
    let want = |name: &str| args.only.is_empty() || args.only.iter().any(|o| o == name);
    if args.only.iter().any(|o| o == "desk") && args.desk_dir.is_none() {
        bail!("--only desk needs --desk-dir (scripts/measure-desk.sh --build-only builds it)");
    }
    let systems: Vec<System> = [System::Wrenchline, System::Bare, System::SocketIo]
        .into_iter()
        .filter(|s| args.systems.is_empty() || args.systems.iter().any(|n| n == s.name()))
        .collect();
    if systems.is_empty() {
        bail!("--systems names none of wrenchline, bare-relay, socket.io");
    }
    for (what, path) in [
        ("--server-bin", &args.server_bin),
        ("--bare-bin", &args.bare_bin),
    ] {
        if !path.is_file() {
            bail!(
                "{what} {} does not exist (build with cargo build --release)",
                path.display()
            );
        }
    }
    if systems.contains(&System::SocketIo)
        && !args.socketio_dir.join("node_modules/socket.io").is_dir()
    {
        bail!("{}: run npm ci there first", args.socketio_dir.display());
    }

    let work = std::env::temp_dir().join(format!("wrenchline-bench.{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    write_config(&work)?;
    let programs = Programs {
        server_bin: args.server_bin.canonicalize()?,
        bare_bin: args.bare_bin.canonicalize()?,
        socketio_dir: args.socketio_dir.canonicalize()?,
        node: args.node.clone(),
        work: work.clone(),
        server_cpu: pinned.then_some(1),
    };
    // Headroom for the databases, the HTTP pools and the listeners of either process.
    let max_connections = (nofile as usize).saturating_sub(400);
    eprintln!(
        "wrenchline-bench: {} mode, {} runs, {nproc} cores ({}), open-file limit {nofile}, work dir {}",
        if sizes.quick { "quick" } else { "full" },
        sizes.runs,
        if pinned { "load generator on CPU 0, servers on CPU 1" } else { "no pinning" },
        work.display()
    );

    // The held-connections scenario makes its own sessions on PostgreSQL.
    let needs_db = want("relay")
        || want("live")
        || want("idle")
        || want("chat")
        || want("fanout")
        || want("race")
        || want("attack")
        || want("media");
    let mechanics = sizes.fanout_mechanics.max(sizes.race_mechanics);
    let sqlite = Db {
        kind: "sqlite",
        url: format!("sqlite://{}", work.join("wrenchline.db").display()),
    };
    let sqlite_fixture = if needs_db {
        eprintln!("preparing SQLite");
        prepare(
            &programs,
            &sqlite,
            mechanics,
            sizes.pool_sessions(max_connections),
        )
        .await
        .context("preparing the SQLite fixture")?
    } else {
        fixture::Fixture::default()
    };
    let postgres = match &args.postgres_url {
        Some(url)
            if want("chat") || want("fanout") || want("race") || want("media") || want("held") =>
        {
            let db = Db {
                kind: "postgres",
                url: url.clone(),
            };
            eprintln!("preparing PostgreSQL");
            let f = prepare(
                &programs,
                &db,
                mechanics,
                sizes.chat_sessions.max(sizes.media_uploads),
            )
            .await
            .context("preparing the PostgreSQL fixture")?;
            Some((db, f))
        }
        _ => None,
    };
    let env = Env {
        programs,
        sizes,
        sqlite: (sqlite, sqlite_fixture),
        postgres,
        redis: args.redis_url.clone(),
        max_connections,
        nofile,
        systems,
    };

    let mut outcomes: Vec<Outcome> = Vec::new();
    if want("relay") {
        outcomes.extend(scenarios::relay::relay(&env).await);
    }
    if want("live") {
        outcomes.extend(scenarios::relay::live(&env).await);
    }
    if want("idle") {
        outcomes.extend(scenarios::idle::idle(&env).await);
    }
    if want("chat") {
        outcomes.extend(scenarios::chat::chat(&env).await);
    }
    if want("fanout") {
        outcomes.extend(scenarios::fanout::fanout(&env).await);
    }
    if want("race") {
        outcomes.extend(scenarios::race::race(&env).await);
    }
    if want("attack") {
        outcomes.extend(scenarios::attack::attack(&env).await);
    }
    if want("media") {
        outcomes.extend(scenarios::media::media(&env).await);
    }
    if want("held") {
        outcomes.extend(scenarios::held::held(&env).await);
    }
    let mut notes = Vec::new();
    if want("desk") {
        match &args.desk_dir {
            Some(dir) => outcomes.extend(scenarios::desk::desk(&env, dir).await),
            None => notes.push(
                "desktop not measured: no --desk-dir (scripts/bench.sh builds it in a full run)"
                    .to_string(),
            ),
        }
    }
    if env.postgres.is_none() && (want("chat") || want("race") || want("fanout")) {
        notes.push(
            "PostgreSQL was not given (--postgres-url): database scenarios ran on SQLite only"
                .to_string(),
        );
    }

    let targets = targets(&outcomes, &env.sizes);
    let table = report::table(&outcomes, &targets);
    println!();
    println!("{table}");
    let failed: Vec<String> = outcomes
        .iter()
        .filter_map(|o| {
            o.error
                .as_ref()
                .map(|e| format!("{} / {}: {e}", o.scenario, o.system))
        })
        .collect();
    let result = json!({
        "format": 1,
        "mode": if env.sizes.quick { "quick" } else { "full" },
        "started_at": started_at,
        "duration_s": started.elapsed().as_secs_f64(),
        "git": git_rev(),
        "machine": machine(nproc, nofile, pinned),
        "sizes": env.sizes,
        "notes": notes,
        "targets": targets,
        "scenarios": outcomes,
        "failed": failed,
        "table": table,
    });
    report::write_json(&args.out, &result)?;
    eprintln!(
        "wrote {} in {:.0} s",
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    if !args.keep && failed.is_empty() {
        let _ = std::fs::remove_dir_all(&work);
    } else {
        eprintln!("kept {}", work.display());
    }
    if !failed.is_empty() {
        eprintln!("{} scenario(s) failed to run:", failed.len());
        for f in &failed {
            eprintln!("  {f}");
        }
        return Ok(1);
    }
    Ok(0)
}
