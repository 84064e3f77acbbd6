//! The processes under test: starting a server (wrenchline-server, the bare relay or the
//! Socket.IO peer) on a free loopback port, pinned to its own core, and reading its CPU time and
//! resident memory from /proc; plus this process's own limits and pinning.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use tokio::process::{Child, Command};

/// Raises this process's soft open-file limit to the hard one (children inherit it) and
/// returns the limit now in force.
pub fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed in.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
    }
    lim.rlim_cur
}

/// Whether the hard limit could be raised further (it needs CAP_SYS_RESOURCE).
pub fn can_raise_hard_nofile() -> bool {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: as above; the attempt is undone at once.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return false;
        }
        let mut higher = lim;
        higher.rlim_max = lim.rlim_max.saturating_add(1);
        higher.rlim_cur = lim.rlim_cur;
        let ok = libc::setrlimit(libc::RLIMIT_NOFILE, &higher) == 0;
        if ok {
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
        ok
    }
}

/// Sets this process's nice value and its autogroup's (inherited by every child); returns the
/// autogroup's previous setting to restore, if there is an autogroup.
pub fn set_priority(nice: i32) -> Option<String> {
    // SAFETY: setpriority on our own process.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, nice);
    }
    let previous = std::fs::read_to_string("/proc/self/autogroup").ok()?;
    let old = previous.split_whitespace().last()?.to_string();
    match std::fs::write("/proc/self/autogroup", nice.to_string()) {
        Ok(()) => Some(old),
        Err(e) => {
            eprintln!("cannot set the autogroup's nice value: {e}");
            None
        }
    }
}

pub fn restore_priority(old_nice: &str) {
    let _ = std::fs::write("/proc/self/autogroup", old_nice);
}

/// Pins the calling process (all threads started afterwards) to one CPU.
pub fn pin_self(cpu: usize) -> bool {
    pin(0, cpu)
}

fn pin(pid: libc::pid_t, cpu: usize) -> bool {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes inside it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(pid, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

pub fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// utime + stime of a process, in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces; fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / clock_ticks())
}

/// Resident set size in bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// CPU use of a process over an interval, as a fraction of one core.
pub struct CpuMeter {
    pid: u32,
    cpu0: f64,
    t0: Instant,
}

impl CpuMeter {
    pub fn start(pid: u32) -> Self {
        CpuMeter {
            pid,
            cpu0: cpu_seconds(pid).unwrap_or(0.0),
            t0: Instant::now(),
        }
    }

    pub fn cores(&self) -> f64 {
        let used = cpu_seconds(self.pid).unwrap_or(self.cpu0) - self.cpu0;
        used / self.t0.elapsed().as_secs_f64().max(1e-6)
    }
}

/// Busy and total time of the whole machine, in clock ticks, from /proc/stat.
fn machine_ticks() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<f64> = line
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal …
    let idle = v.get(3)? + v.get(4).unwrap_or(&0.0);
    let total: f64 = v.iter().take(8).sum();
    Some((total - idle, total))
}

/// CPU use of the whole machine over an interval, in cores; what is left after subtracting the
/// processes under test is other work on the machine that disturbs the measurement.
pub struct MachineMeter {
    busy0: f64,
    t0: Instant,
}

impl MachineMeter {
    pub fn start() -> Self {
        MachineMeter {
            busy0: machine_ticks().map_or(0.0, |(b, _)| b),
            t0: Instant::now(),
        }
    }

    pub fn cores(&self) -> f64 {
        let busy = machine_ticks().map_or(self.busy0, |(b, _)| b) - self.busy0;
        busy / clock_ticks() / self.t0.elapsed().as_secs_f64().max(1e-6)
    }
}

/// Which server a run talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum System {
    /// wrenchline-server.
    Wrenchline,
    /// bench's bare tokio-tungstenite relay: the limit.
    Bare,
    /// The Socket.IO peer on Node.
    SocketIo,
}

impl System {
    pub fn name(self) -> &'static str {
        match self {
            System::Wrenchline => "wrenchline",
            System::Bare => "bare-relay",
            System::SocketIo => "socket.io",
        }
    }
}

/// Where the programs under test are, and how to run them.
#[derive(Debug, Clone)]
pub struct Programs {
    pub server_bin: PathBuf,
    pub bare_bin: PathBuf,
    pub socketio_dir: PathBuf,
    pub node: String,
    pub work: PathBuf,
    /// The CPU servers are pinned to, if any.
    pub server_cpu: Option<usize>,
}

/// One running server.
pub struct Server {
    pub system: System,
    pub addr: SocketAddr,
    /// Where wrenchline-server serves `/metrics` (`--metrics-bind`).
    pub metrics_addr: Option<SocketAddr>,
    pub pid: u32,
    child: Child,
}

impl Server {
    pub async fn start(
        programs: &Programs,
        system: System,
        db: Option<&Db>,
    ) -> anyhow::Result<Self> {
        Self::start_with(programs, system, db, system.name(), &[]).await
    }

    /// One node of a wrenchline-server cluster on `db` (PostgreSQL) and the Redis at `redis`.
    pub async fn start_node(
        programs: &Programs,
        db: &Db,
        redis: &str,
        node: &str,
    ) -> anyhow::Result<Self> {
        let args = ["--redis-url", redis, "--node-id", node];
        let label = format!("wrenchline-{node}");
        Self::start_with(programs, System::Wrenchline, Some(db), &label, &args).await
    }

    /// `start`, with its log and ready file named after `label` and `args` added (wrenchline-server).
    async fn start_with(
        programs: &Programs,
        system: System,
        db: Option<&Db>,
        label: &str,
        args: &[&str],
    ) -> anyhow::Result<Self> {
        let log = programs.work.join(format!("{label}.log"));
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("opening {}", log.display()))?;
        let mut cmd = match system {
            System::Wrenchline => {
                let db = db.ok_or_else(|| anyhow!("wrenchline-server needs a database"))?;
                let mut cmd = Command::new(&programs.server_bin);
                cmd.arg("serve")
                    .args(["--bind", "127.0.0.1:0"])
                    .args(["--metrics-bind", "127.0.0.1:0"])
                    .args(["--database-url", &db.url])
                    .arg("--limits-file")
                    .arg(programs.work.join("limits.toml"))
                    .arg("--plans-file")
                    .arg(programs.work.join("plans.toml"))
                    .args(["--access-token-ttl", "86400"])
                    // An accepted session whose mechanic has not joined yet is not offered
                    // again during a run (the held scenario opens its connections for minutes).
                    .args(["--mechanic-join-timeout", "86400"])
                    .args(args)
                    .arg("--media-dir")
                    .arg(programs.work.join("media"))
                    .env("WRENCHLINE_LOG", "warn");
                cmd
            }
            System::Bare => {
                let mut cmd = Command::new(&programs.bare_bin);
                cmd.args(["--bind", "127.0.0.1:0"]);
                cmd
            }
            System::SocketIo => {
                let mut cmd = Command::new(&programs.node);
                cmd.arg("server.js")
                    .arg("0")
                    .current_dir(&programs.socketio_dir);
                cmd
            }
        };
        // Each of the three writes `{"http": "http://ADDR"}` to this file once it accepts
        // connections (by rename, so it is never read half-written); wrenchline-server adds
        // `"metrics"`, its metrics listener.
        let ready_file = programs.work.join(format!("{label}.ready.json"));
        let _ = std::fs::remove_file(&ready_file);
        cmd.env("WRENCHLINE_READY_FILE", &ready_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .kill_on_drop(true);
        if let Some(cpu) = programs.server_cpu {
            // SAFETY: only async-signal-safe work (sched_setaffinity) between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    pin(0, cpu);
                    Ok(())
                });
            }
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", system.name()))?;
        let pid = child
            .id()
            .ok_or_else(|| anyhow!("{} exited at once", system.name()))?;
        let deadline = Instant::now() + Duration::from_secs(60);
        let (addr, metrics_addr) = loop {
            if let Some(ready) = read_ready(&ready_file) {
                break ready;
            }
            if let Some(status) = child.try_wait()? {
                bail!(
                    "{} exited before listening ({status}; see {})",
                    system.name(),
                    log.display()
                );
            }
            if Instant::now() > deadline {
                bail!("{} did not start listening within 60 s", system.name());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        Ok(Server {
            system,
            addr,
            metrics_addr,
            pid,
            child,
        })
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://ADDR` of the metrics listener; the public one where there is none.
    pub fn metrics_url(&self) -> String {
        format!("http://{}", self.metrics_addr.unwrap_or(self.addr))
    }

    pub fn rss(&self) -> u64 {
        rss_bytes(self.pid).unwrap_or(0)
    }

    /// Fails if the server died during a run.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        match self.child.try_wait()? {
            Some(status) => bail!("{} exited during the run: {status}", self.system.name()),
            None => Ok(()),
        }
    }

    /// SIGTERM, then SIGKILL after a grace period.
    pub async fn stop(mut self) {
        // SAFETY: signalling our own child by pid.
        unsafe {
            libc::kill(self.pid as libc::pid_t, libc::SIGTERM);
        }
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// The `http` address of a ready file, once it is there.
fn read_ready(path: &Path) -> Option<(SocketAddr, Option<SocketAddr>)> {
    let ready: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    let listener = |name: &str| -> Option<SocketAddr> {
        ready
            .get(name)?
            .as_str()?
            .strip_prefix("http://")?
            .parse()
            .ok()
    };
    Some((listener("http")?, listener("metrics")))
}

/// A database for wrenchline-server.
#[derive(Debug, Clone)]
pub struct Db {
    /// `sqlite` or `postgres`.
    pub kind: &'static str,
    pub url: String,
}

/// Runs `wrenchline-server mechanic add` for one account.
pub async fn add_mechanic(
    server_bin: &Path,
    db: &Db,
    email: &str,
    name: &str,
    password: &str,
) -> anyhow::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut child = Command::new(server_bin)
        .args(["mechanic", "add", "--email", email, "--name", name])
        .args(["--password-stdin", "--create-database"])
        .args(["--database-url", &db.url])
        .env("WRENCHLINE_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("running wrenchline-server mechanic add")?;
    let mut stdin = child.stdin.take().expect("piped");
    stdin.write_all(format!("{password}\n").as_bytes()).await?;
    drop(stdin);
    let out = child.wait_with_output().await?;
    if !out.status.success() {
        bail!(
            "mechanic add {email} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
