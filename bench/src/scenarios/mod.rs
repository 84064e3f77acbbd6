//! The scenarios of issue 7 and what they share: the sizes of a quick or a full run, the
//! databases and their fixtures, and the measured step that the relay and live scenarios both
//! use.

pub mod attack;
pub mod chat;
pub mod desk;
pub mod fanout;
pub mod held;
pub mod idle;
pub mod media;
pub mod race;
pub mod relay;
pub mod soak;

use std::time::Duration;

use serde::Serialize;
use serde_json::json;

use crate::fixture::{Fixture, Pair};
use crate::load::{Fleet, Seat};
use crate::procs::{CpuMeter, Db, MachineMeter, Programs, Server, System};
use crate::stats::LatencySummary;
use crate::wire::Proto;

/// How big and how long each scenario is.
#[derive(Debug, Clone, Serialize)]
pub struct Sizes {
    pub quick: bool,
    pub runs: usize,
    /// Relay sweep: sessions (two connections each) and total offered broadcasts per second.
    pub relay_sessions: usize,
    pub relay_rates: Vec<f64>,
    pub relay_warmup: Duration,
    pub relay_window: Duration,
    /// The latency target's load: live sessions, each participant sending this many per second.
    pub live_sessions: usize,
    pub live_rate: f64,
    pub live_window: Duration,
    /// Idle connections at each step (requested; capped by the open-file limit).
    pub idle_steps: Vec<usize>,
    pub idle_settle: Duration,
    /// Persisted chat: sessions and total posts per second.
    pub chat_sessions: usize,
    pub chat_rates: Vec<f64>,
    pub chat_window: Duration,
    pub fanout_mechanics: usize,
    pub fanout_rounds: usize,
    pub race_mechanics: usize,
    pub race_rounds: usize,
    /// One customer's flood beside an unrelated live session: its sockets (the address's
    /// connection limit) and the length of the quiet and of the attacked window.
    pub attack_sockets: usize,
    pub attack_window: Duration,
    /// Attachments: photos uploaded at the same moment (one per session), and how many batches.
    pub media_uploads: usize,
    pub media_rounds: usize,
    /// Held connections across the nodes of a cluster: how many in all, at most how many per
    /// process (node or load generator), the live pairs measured beside them, and their window.
    pub held_connections: usize,
    pub held_per_process: usize,
    pub held_live_sessions: usize,
    pub held_window: Duration,
}

impl Sizes {
    pub fn quick() -> Sizes {
        Sizes {
            quick: true,
            runs: 1,
            relay_sessions: 100,
            relay_rates: vec![2_000.0, 8_000.0, 24_000.0],
            relay_warmup: Duration::from_millis(500),
            relay_window: Duration::from_millis(1_000),
            live_sessions: 100,
            live_rate: 1.0,
            live_window: Duration::from_secs(2),
            idle_steps: vec![200],
            idle_settle: Duration::from_secs(1),
            chat_sessions: 10,
            chat_rates: vec![50.0, 200.0],
            chat_window: Duration::from_secs(1),
            fanout_mechanics: 50,
            fanout_rounds: 5,
            race_mechanics: 20,
            race_rounds: 20,
            attack_sockets: 50,
            attack_window: Duration::from_secs(2),
            media_uploads: 50,
            media_rounds: 1,
            held_connections: 300,
            held_per_process: 100,
            held_live_sessions: 10,
            held_window: Duration::from_secs(1),
        }
    }

    pub fn full() -> Sizes {
        Sizes {
            quick: false,
            runs: 3,
            relay_sessions: 1_000,
            relay_rates: vec![
                5_000.0, 10_000.0, 20_000.0, 30_000.0, 40_000.0, 50_000.0, 60_000.0, 80_000.0,
                100_000.0, 125_000.0, 150_000.0, 200_000.0,
            ],
            relay_warmup: Duration::from_secs(1),
            relay_window: Duration::from_secs(4),
            live_sessions: 5_000,
            live_rate: 1.0,
            live_window: Duration::from_secs(10),
            idle_steps: vec![10_000, 50_000, 100_000],
            idle_settle: Duration::from_secs(3),
            chat_sessions: 100,
            chat_rates: vec![50.0, 100.0, 200.0, 400.0, 800.0, 1_600.0, 3_200.0, 6_400.0],
            chat_window: Duration::from_secs(4),
            fanout_mechanics: 500,
            fanout_rounds: 20,
            race_mechanics: 20,
            race_rounds: 1_000,
            attack_sockets: 500,
            attack_window: Duration::from_secs(30),
            media_uploads: 50,
            media_rounds: 5,
            held_connections: 100_000,
            held_per_process: 15_000,
            held_live_sessions: 100,
            held_window: Duration::from_secs(10),
        }
    }

    /// Sessions the fixture of the SQLite database needs.
    pub fn pool_sessions(&self, max_connections: usize) -> usize {
        let idle = self
            .idle_steps
            .iter()
            .map(|&s| s.min(max_connections))
            .max()
            .unwrap_or(0);
        self.relay_sessions
            .max(self.live_sessions)
            .max(idle.div_ceil(2))
            .max(self.chat_sessions)
            .max(self.media_uploads)
    }
}

/// What the scenarios run against.
pub struct Env {
    pub programs: Programs,
    pub sizes: Sizes,
    pub sqlite: (Db, Fixture),
    pub postgres: Option<(Db, Fixture)>,
    /// A Redis for the cluster scenario (nodes of one cluster on the PostgreSQL database).
    pub redis: Option<String>,
    /// The most connections one run may hold (the open-file limit of this process and of the
    /// servers, less headroom).
    pub max_connections: usize,
    pub nofile: u64,
    pub systems: Vec<System>,
}

impl Env {
    pub fn databases(&self) -> Vec<&(Db, Fixture)> {
        std::iter::once(&self.sqlite)
            .chain(&self.postgres)
            .collect()
    }
}

pub fn proto_of(system: System) -> Proto {
    match system {
        System::SocketIo => Proto::SocketIo,
        System::Wrenchline | System::Bare => Proto::Phoenix,
    }
}

/// Which of a session's channels each participant joins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rooms {
    /// `chat:session-{id}` only.
    Chat,
    /// `chat:session-{id}:presence` only, tracked.
    Presence,
    /// Both, as the chat window does: broadcasts on the first, presence tracked on the second.
    ChatAndPresence,
}

/// Two seats per session: the customer and the mechanic.
pub fn seats(fixture: &Fixture, pairs: &[Pair], rooms: Rooms) -> Vec<Seat> {
    let mut seats = Vec::with_capacity(pairs.len() * 2);
    for pair in pairs {
        let chat = format!("chat:session-{}", pair.session);
        let presence_room = format!("{chat}:presence");
        let room = if rooms == Rooms::Presence {
            presence_room.clone()
        } else {
            chat
        };
        let mechanic = &fixture.mechanics[pair.mechanic];
        let track = |user: uuid::Uuid, role: &str| {
            (rooms != Rooms::Chat).then(|| {
                (
                    presence_room.clone(),
                    json!({"user_id": user, "role": role, "online_at": 1_700_000_000_000u64}),
                )
            })
        };
        seats.push(Seat {
            room: room.clone(),
            token: pair.customer.token.clone(),
            presence: track(pair.customer.id, "customer"),
        });
        seats.push(Seat {
            room,
            token: mechanic.token.clone(),
            presence: track(mechanic.id, "mechanic"),
        });
    }
    seats
}

/// One measured window at a fixed offered load.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// Broadcasts per second asked of the whole fleet.
    pub offered: f64,
    pub sent: f64,
    pub delivered: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Cores used by the server and by the load generator during the window.
    pub server_cpu: f64,
    pub loadgen_cpu: f64,
    pub server_rss_mib: f64,
    /// Cores busy on the machine with neither the server nor the load generator: other work
    /// that disturbed this window.
    pub other_cpu: f64,
    pub lost_connections: u64,
    /// Everything sent arrived and nothing was lost.
    pub kept_up: bool,
    /// The load generator could not send what was asked.
    pub loadgen_bound: bool,
}

/// Sets the fleet's rate for `offered` broadcasts per second in all, lets it settle, and
/// measures one window.
pub async fn measure_step(
    fleet: &Fleet,
    server: &mut Server,
    offered: f64,
    warmup: Duration,
    window: Duration,
) -> anyhow::Result<Step> {
    let control = &fleet.control;
    let per_connection = offered / fleet.len().max(1) as f64;
    let lost_before = control.lost.get();
    control.rate.send_replace(per_connection);
    tokio::time::sleep(warmup).await;
    control.reset();
    let server_cpu = CpuMeter::start(server.pid);
    let own_cpu = CpuMeter::start(std::process::id());
    let machine = MachineMeter::start();
    let started = tokio::time::Instant::now();
    tokio::time::sleep(window).await;
    let secs = started.elapsed().as_secs_f64();
    let sent = control.sent.get() as f64;
    let received = control.received.get() as f64;
    let latency = LatencySummary::of(&control.latency.snapshot());
    let (server_cpu, loadgen_cpu) = (server_cpu.cores(), own_cpu.cores());
    let step = Step {
        offered,
        sent: sent / secs,
        delivered: received / secs,
        p50_ms: latency.p50_ms,
        p99_ms: latency.p99_ms,
        max_ms: latency.max_ms,
        server_cpu,
        loadgen_cpu,
        server_rss_mib: server.rss() as f64 / (1024.0 * 1024.0),
        other_cpu: (machine.cores() - server_cpu - loadgen_cpu).max(0.0),
        lost_connections: control.lost.get() - lost_before,
        kept_up: control.lost.get() == lost_before && received >= 0.97 * sent && sent > 0.0,
        loadgen_bound: sent / secs < 0.9 * offered,
    };
    server.check_alive()?;
    Ok(step)
}

/// One server on `db`, or with `cluster` (a Redis and a count) the nodes of one cluster, named
/// `node-1`…; stops those already started when one cannot start.
pub async fn start_servers(
    env: &Env,
    db: &Db,
    cluster: Option<(&str, usize)>,
) -> anyhow::Result<Vec<Server>> {
    let Some((redis, count)) = cluster else {
        return Ok(vec![
            Server::start(&env.programs, System::Wrenchline, Some(db)).await?,
        ]);
    };
    let mut nodes = Vec::new();
    for i in 1..=count {
        match Server::start_node(&env.programs, db, redis, &format!("node-{i}")).await {
            Ok(node) => nodes.push(node),
            Err(e) => {
                for node in nodes {
                    node.stop().await;
                }
                return Err(e);
            }
        }
    }
    Ok(nodes)
}
