//! Faults injected into a running system: the server killed with SIGKILL and restarted on the
//! same database while live sessions chat, one of their customers a real chat page in Chromium
//! when `WRENCHLINE_BROWSER` is set; and one participant's network cut for 30 seconds. Nothing
//! acknowledged is lost, nothing is stored twice, clients come back by themselves, and the page
//! shows what the server holds.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use time::OffsetDateTime;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use uuid::Uuid;
use wrenchline_client::realtime::{
    Backoff, Channel, ChannelEvent, ChannelOptions, RealtimeClient, RealtimeOptions,
};
use wrenchline_client::ApiClient;
use wrenchline_server::auth::hash_password;
use wrenchline_server::storage::Store;

use crate::helpers::{
    fresh_database_url, spawn_app, spawn_server_process, Actor, Api, ServerProcess, PASSWORD,
};

fn quick() -> RealtimeOptions {
    RealtimeOptions {
        reconnect: Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(1000),
            jitter: 0.25,
        },
        heartbeat_interval: Duration::from_secs(5),
        ..RealtimeOptions::default()
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The server as an operator runs it, on a fixed port so that clients find it again after a
/// restart.
async fn start_server(db: &str, port: u16) -> ServerProcess {
    // Every client of this test shares one address (a hundred of them reconnect at once after
    // the restart).
    let limits = std::env::temp_dir().join(format!("limits-{port}.toml"));
    std::fs::write(
        &limits,
        "intakes_per_address_per_hour = 10000\nlogin_per_address_per_minute = 10000\n\
         connections_per_address = 10000\nhttp_connections_per_address = 10000\n",
    )
    .unwrap();
    spawn_server_process(|serve| {
        serve
            .args(["--bind", &format!("127.0.0.1:{port}"), "--database-url", db])
            .arg("--limits-file")
            .arg(&limits)
            .env("WRENCHLINE_LOG", "warn");
    })
    .await
}

/// Posts until the server acknowledges, always with the same `client_id`: the client outbox.
/// `None` when the session has ended meanwhile.
async fn post_until_acknowledged(
    api: &ApiClient,
    session: Uuid,
    client_id: &str,
    body: &str,
) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let attempt = tokio::time::timeout(
            Duration::from_secs(5),
            api.post_message(session, client_id, body),
        )
        .await;
        let Ok(attempt) = attempt else {
            continue;
        };
        match attempt {
            Ok(message) => return Some(serde_json::to_value(message).unwrap()),
            Err(e) if e.code() == Some("session_ended") => return None,
            Err(e) if e.status().is_some_and(|s| s.is_client_error()) => panic!("refused: {e}"),
            Err(_) => {
                assert!(tokio::time::Instant::now() < deadline, "never acknowledged");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn presence(client: &RealtimeClient, session: Uuid, user: Uuid, role: &str) -> Channel {
    let channel = client.channel(
        &format!("chat:session-{session}:presence"),
        ChannelOptions {
            presence_enabled: true,
            ..ChannelOptions::default()
        },
    );
    channel.subscribe().await.unwrap();
    channel
        .track(json!({"user_id": user, "role": role, "online_at": "2026-11-25T10:00:00Z"}))
        .await
        .unwrap();
    channel
}

async fn wait_until(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

struct Customer {
    api: ApiClient,
    id: Uuid,
    session: Uuid,
    /// The identity the intake bound to this customer's browser.
    actor: Actor,
}

/// A customer whose session is offered to mechanics, with a realtime access token.
async fn new_customer(server: &Api) -> Customer {
    let (actor, session) = server.offered_session().await;
    let (status, token) = server.post("/api/auth/token", &actor, None).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{token}");
    let api = ApiClient::new(&server.base)
        .unwrap()
        .with_token(token["access_token"].as_str().unwrap());
    Customer {
        api,
        id: actor.id().unwrap(),
        session,
        actor,
    }
}

/// The customer's chat page in headless Chromium (`tests/browser/crash-page.mjs`) joins the crash
/// test when `WRENCHLINE_BROWSER` names a Chromium binary, as the Makefile's test targets do. Set
/// but unusable is a failure, never a silent skip; unset, the Rust clients run alone.
struct BrowserSetup {
    chromium: PathBuf,
    script: PathBuf,
}

fn browser_setup() -> Option<BrowserSetup> {
    let chromium = PathBuf::from(std::env::var_os("WRENCHLINE_BROWSER").filter(|v| !v.is_empty())?);
    let suite = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/browser");
    let script = suite.join("crash-page.mjs");
    assert!(
        chromium.is_file(),
        "WRENCHLINE_BROWSER={} names no file: install Debian's chromium (apt-get install chromium) \
         or unset WRENCHLINE_BROWSER",
        chromium.display()
    );
    assert!(
        script.is_file(),
        "WRENCHLINE_BROWSER is set but the page driver {} is missing",
        script.display()
    );
    assert!(
        suite.join("node_modules/playwright-core").is_dir(),
        "WRENCHLINE_BROWSER is set but {} has no node_modules: run `npm ci` there (the Makefile's \
         test targets do)",
        suite.display()
    );
    let node = std::process::Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|out| out.status.success()),
        "WRENCHLINE_BROWSER is set but `node` does not run: install Node.js 20 or newer"
    );
    Some(BrowserSetup { chromium, script })
}

/// An event of the page's line protocol, with the moment it was read.
type PageEvent = (tokio::time::Instant, Value);

/// The page process: commands on its stdin, one JSON event a line on its stdout.
struct BrowserPage {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    events: mpsc::UnboundedReceiver<PageEvent>,
    /// Events read while waiting for another one, oldest first.
    early: Vec<PageEvent>,
    stderr: Arc<Mutex<String>>,
}

impl BrowserPage {
    /// Opens `resume` (a resume link's path) in a new browser: the customer's identity moves there
    /// and the page lands on the session's chat.
    fn open(setup: &BrowserSetup, base: &str, resume: &str) -> BrowserPage {
        let mut child = tokio::process::Command::new("node")
            .arg(&setup.script)
            .args(["--base", base, "--resume", resume])
            .env("CHROMIUM_PATH", &setup.chromium)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node starts the page driver");
        let stdin = child.stdin.take().unwrap();
        let (sender, events) = mpsc::unbounded_channel();
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = stdout.next_line().await {
                let event = serde_json::from_str(&line).unwrap_or_else(
                    |_| json!({"event": "error", "message": format!("not JSON: {line}")}),
                );
                if sender.send((tokio::time::Instant::now(), event)).is_err() {
                    return;
                }
            }
        });
        let stderr: Arc<Mutex<String>> = Arc::default();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let kept = stderr.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let mut kept = kept.lock().unwrap();
                kept.push_str(&line);
                kept.push('\n');
            }
        });
        BrowserPage {
            child,
            stdin,
            events,
            early: Vec::new(),
            stderr,
        }
    }

    async fn command(&mut self, line: &str) {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .expect("the page driver takes commands");
    }

    /// The first event called `name` not taken yet, within `limit`. An `error` from the page
    /// fails the test.
    async fn next(&mut self, name: &str, limit: Duration) -> PageEvent {
        if let Some(i) = self.early.iter().position(|(_, e)| e["event"] == name) {
            return self.early.remove(i);
        }
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let event = match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(event)) => event,
                Ok(None) => panic!(
                    "the page driver ended while waiting for `{name}`; stderr:\n{}",
                    self.stderr.lock().unwrap()
                ),
                Err(_) => panic!(
                    "the page gave no `{name}` within {limit:?}; other events: {:?}; stderr:\n{}",
                    self.early,
                    self.stderr.lock().unwrap()
                ),
            };
            assert!(
                event.1["event"] != "error",
                "the page failed while waiting for `{name}`: {}; stderr:\n{}",
                event.1,
                self.stderr.lock().unwrap()
            );
            if event.1["event"] == name {
                return event;
            }
            self.early.push(event);
        }
    }

    /// Types `text` in the page and sends it; the server's answer, once the page shows it sent.
    async fn send(&mut self, text: &str) -> Value {
        self.command(&format!("send {text}")).await;
        let (_, sent) = self.next("sent", Duration::from_secs(20)).await;
        let status = sent["status"].as_u64().unwrap();
        assert!(
            (200..300).contains(&status),
            "the page's message was refused: {sent}"
        );
        sent
    }

    /// Waits until the page shows a stored message with this text.
    async fn shows(&mut self, text: &str) {
        self.command(&format!("wait {text}")).await;
        let (_, shown) = self.next("shown", Duration::from_secs(20)).await;
        assert_eq!(shown["body"], text);
    }

    /// The message texts the page shows, in order, each shown as stored.
    async fn messages(&mut self) -> Vec<String> {
        self.command("history").await;
        let (_, history) = self.next("history", Duration::from_secs(10)).await;
        history["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                assert_eq!(m["delivery"], "sent", "every message shown as stored: {m}");
                m["body"].as_str().unwrap().to_string()
            })
            .collect()
    }

    /// Checks the countdown against `ends_at` on the test's clock, within two seconds.
    async fn assert_counts_down_to(&mut self, ends_at: OffsetDateTime) {
        self.command("countdown").await;
        let (_, countdown) = self.next("countdown", Duration::from_secs(10)).await;
        let shown = countdown["seconds"].as_i64().unwrap();
        let left = (ends_at - OffsetDateTime::now_utc())
            .as_seconds_f64()
            .ceil() as i64;
        assert!(
            (shown - left).abs() <= 2,
            "the page counts down to ends_at: shows {shown} s, {left} s are left"
        );
    }

    /// Closes the browser; fails on an exception in the page or a refusal under its CSP.
    async fn close(mut self) {
        self.command("close").await;
        let (_, closed) = self.next("closed", Duration::from_secs(20)).await;
        assert_eq!(closed["problems"], json!([]), "the page ran cleanly");
        tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("the page driver exits")
            .unwrap();
    }
}

/// Both sides of one session's presence, as seen from Rust. The customer side is absent where the
/// customer is the browser page, which tracks its own presence.
struct Watch {
    customer: Option<(RealtimeClient, Channel)>,
    customer_id: String,
    mechanic: Channel,
    mechanic_id: String,
}

impl Watch {
    /// Resolves when both Rust sides have rejoined and each sees the other in a presence state
    /// the server sent after that rejoin. Listening starts now, so call it before the crash: a
    /// client keeps its last presence state while it is away, and that must not count.
    fn back(&self) -> impl Future<Output = tokio::time::Instant> + Send + 'static {
        let mechanic = rejoined_with(self.mechanic.clone(), self.customer_id.clone());
        let customer = self
            .customer
            .as_ref()
            .map(|(_, seen)| rejoined_with(seen.clone(), self.mechanic_id.clone()));
        async move {
            let mechanic = mechanic.await;
            match customer {
                Some(customer) => mechanic.max(customer.await),
                None => mechanic,
            }
        }
    }
}

/// The moment `channel` has rejoined and a presence sync after that shows `other`.
fn rejoined_with(
    channel: Channel,
    other: String,
) -> impl Future<Output = tokio::time::Instant> + Send + 'static {
    let mut events = channel.events();
    async move {
        let mut rejoined = false;
        loop {
            match events.recv().await {
                Ok(ChannelEvent::Rejoined) => rejoined = true,
                Ok(ChannelEvent::PresenceSync) if rejoined && channel.is_present(&other) => {
                    return tokio::time::Instant::now();
                }
                Ok(_) => {}
                Err(e) => panic!("the events of {} were lost: {e}", channel.topic()),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_restarts_and_loses_nothing_acknowledged() {
    const SESSIONS: usize = 50;
    const MECHANICS: usize = 5;
    let browser = browser_setup();
    if browser.is_none() {
        println!(
            "the browser page was not included: WRENCHLINE_BROWSER=/usr/bin/chromium makes one \
             customer a real Chromium page (make test-rust and make test-postgres set it)"
        );
    }
    let db = fresh_database_url().await;
    let store = Store::connect(&db).await.unwrap();
    let hash = hash_password(PASSWORD);
    let mut emails = Vec::new();
    for i in 0..MECHANICS {
        let email = format!("m{i}@garage.example");
        store
            .create_mechanic(
                &email,
                &format!("Mechanic {i}"),
                &hash,
                OffsetDateTime::now_utc(),
            )
            .await
            .unwrap();
        emails.push(email);
    }
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = start_server(&db, port).await;
    let server_api = Api::new(&base);

    let mut customers = Vec::new();
    for _ in 0..SESSIONS {
        customers.push(new_customer(&server_api).await);
    }
    // The last session's customer is the browser page, when there is one (the first session's
    // time runs out while the server is down). Chromium starts while the rest is set up.
    let in_page = customers[SESSIONS - 1].session;
    let mut page = match &browser {
        Some(setup) => {
            let (status, link) = server_api
                .post(
                    &format!("/api/sessions/{in_page}/resume-link"),
                    &customers[SESSIONS - 1].actor,
                    None,
                )
                .await;
            assert_eq!(status, reqwest::StatusCode::OK, "{link}");
            Some(BrowserPage::open(
                setup,
                &base,
                link["url"].as_str().unwrap(),
            ))
        }
        None => None,
    };
    let mut mechanics = Vec::new();
    for email in &emails {
        let tokens = ApiClient::new(&base)
            .unwrap()
            .login(email, PASSWORD)
            .await
            .unwrap();
        let api = ApiClient::new(&base)
            .unwrap()
            .with_token(tokens.access_token.clone());
        let realtime =
            RealtimeClient::connect_with(&base, tokens.access_token.clone(), quick()).unwrap();
        mechanics.push((api, realtime, tokens.user.id));
    }
    // Every Rust customer on a realtime connection of their own; mechanic i takes every fifth
    // session.
    let mut watches = Vec::new();
    for (i, customer) in customers.iter().enumerate() {
        let (mech_api, mech_rt, mech_id) = &mechanics[i % MECHANICS];
        mech_api.accept(customer.session).await.unwrap();
        let in_rust = page.is_none() || customer.session != in_page;
        let customer_side = if in_rust {
            let token = customer.api.token().unwrap().to_string();
            let cust_rt = RealtimeClient::connect_with(&base, token, quick()).unwrap();
            let seen = presence(&cust_rt, customer.session, customer.id, "customer").await;
            Some((cust_rt, seen))
        } else {
            None
        };
        watches.push(Watch {
            customer: customer_side,
            customer_id: customer.id.to_string(),
            mechanic: presence(mech_rt, customer.session, *mech_id, "mechanic").await,
            mechanic_id: mech_id.to_string(),
        });
    }
    if let Some(page) = &mut page {
        page.next("opened", Duration::from_secs(60)).await;
        page.next("live", Duration::from_secs(60)).await;
    }
    for customer in &customers {
        let api = &customer.api;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while api.session(customer.session).await.unwrap().status
            != wrenchline_protocol::SessionStatus::Live
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "session never went live"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let ends_before: HashMap<Uuid, Option<OffsetDateTime>> = {
        let mut map = HashMap::new();
        for c in &customers {
            map.insert(c.session, c.api.session(c.session).await.unwrap().ends_at);
        }
        map
    };

    // Messages flow from every Rust customer until told to stop; each keeps what was
    // acknowledged.
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged: Arc<Mutex<HashMap<Uuid, Vec<Value>>>> = Arc::default();
    let mut writers = JoinSet::new();
    for customer in &customers {
        if page.is_some() && customer.session == in_page {
            continue;
        }
        let (api, session) = (customer.api.clone(), customer.session);
        let (stop, acknowledged) = (stop.clone(), acknowledged.clone());
        writers.spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let Some(message) = post_until_acknowledged(
                    &api,
                    session,
                    &format!("{session}-{n}"),
                    &format!("message {n}"),
                )
                .await
                else {
                    return;
                };
                acknowledged
                    .lock()
                    .unwrap()
                    .entry(session)
                    .or_default()
                    .push(message);
                // Under the default limit of 120 messages a minute per person.
                tokio::time::sleep(Duration::from_millis(600)).await;
            }
        });
    }
    // The page's session: one message each way before the crash, the countdown on ends_at.
    let page_mechanic = &mechanics[(SESSIONS - 1) % MECHANICS].0;
    let mut page_acknowledged = Vec::new();
    if let Some(page) = &mut page {
        page_acknowledged.push(page.send("Page before the crash").await);
        page_acknowledged.push(
            post_until_acknowledged(page_mechanic, in_page, "m-1", "Mechanic before the crash")
                .await
                .unwrap(),
        );
        page.shows("Mechanic before the crash").await;
        page.assert_counts_down_to(ends_before[&in_page].unwrap())
            .await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let coming_back: Vec<_> = watches
        .iter()
        .map(|watch| tokio::spawn(watch.back()))
        .collect();
    server.kill();
    let crashed_at = OffsetDateTime::now_utc();
    // One session's time runs out while the server is down.
    let expired = customers[0].session;
    sqlx::query("UPDATE sessions SET ends_at = $1 WHERE id = $2")
        .bind(wrenchline_server::storage::millis(crashed_at))
        .bind(expired.to_string())
        .execute(store.pool())
        .await
        .unwrap();
    if let Some(page) = &mut page {
        page.next("reconnecting", Duration::from_secs(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _server = start_server(&db, port).await;
    let restarted = tokio::time::Instant::now();
    // The mechanic writes while the page may still be reconnecting: it catches up on its own.
    if page.is_some() {
        page_acknowledged.push(
            post_until_acknowledged(
                page_mechanic,
                in_page,
                "m-2",
                "Mechanic while the page reconnects",
            )
            .await
            .unwrap(),
        );
    }

    // Every realtime client is back within 10 s: both sides of each session see each other.
    let limit = Duration::from_secs(10);
    let mut back: Vec<Duration> = tokio::time::timeout_at(restarted + limit, async {
        let mut all = Vec::new();
        for coming in coming_back {
            all.push(coming.await.unwrap().saturating_duration_since(restarted));
        }
        all
    })
    .await
    .unwrap_or_else(|_| {
        panic!("presence not rebuilt on both sides within {limit:?} of the restart")
    });
    back.sort();
    println!(
        "presence rebuilt on both sides of {} sessions after the restart: first {:?}, median {:?}, \
         last {:?}",
        back.len(),
        back[0],
        back[back.len() / 2],
        back[back.len() - 1]
    );

    if let Some(page) = &mut page {
        let (at, reconnected) = page
            .next("reconnected", limit.saturating_sub(restarted.elapsed()))
            .await;
        let after_restart = at.saturating_duration_since(restarted);
        assert!(
            after_restart <= limit,
            "the page came back in {after_restart:?}"
        );
        println!(
            "the page was live with its mechanic again, present under a new connection, \
             {after_restart:?} after the restart (\"Reconnecting…\" shown for {} ms)",
            reconnected["banner_ms"]
        );
        page_acknowledged.push(
            post_until_acknowledged(
                page_mechanic,
                in_page,
                "m-3",
                "Mechanic after the page is back",
            )
            .await
            .unwrap(),
        );
        page.shows("Mechanic while the page reconnects").await;
        page.shows("Mechanic after the page is back").await;
        page_acknowledged.push(page.send("Page after the restart").await);
        page.assert_counts_down_to(ends_before[&in_page].unwrap())
            .await;
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, Ordering::Relaxed);
    while let Some(done) = writers.join_next().await {
        done.unwrap();
    }

    let mut acknowledged = acknowledged.lock().unwrap().clone();
    if page.is_some() {
        acknowledged.insert(in_page, page_acknowledged);
    }
    let mut total = 0;
    for customer in &customers {
        let history = customer.api.messages(customer.session, 0).await.unwrap();
        let ids: Vec<Uuid> = history.iter().map(|m| m.id).collect();
        let unique: HashSet<Uuid> = ids.iter().copied().collect();
        assert_eq!(unique.len(), ids.len(), "no message stored twice");
        let seqs: Vec<i64> = history.iter().map(|m| m.seq).collect();
        assert_eq!(
            seqs,
            (1..=history.len() as i64).collect::<Vec<_>>(),
            "history is gap-free"
        );
        // The session that expired while the server was down may have had none acknowledged on
        // a slow machine (its first post meeting the expiry); every other one keeps posting.
        let acked = acknowledged
            .get(&customer.session)
            .map_or(&[][..], Vec::as_slice);
        assert!(
            !acked.is_empty() || customer.session == expired,
            "no message of session {} was acknowledged",
            customer.session
        );
        for message in acked {
            let id: Uuid = message["id"].as_str().unwrap().parse().unwrap();
            assert!(unique.contains(&id), "an acknowledged message was lost");
        }
        let client_ids: HashSet<&str> = history.iter().map(|m| m.client_id.as_str()).collect();
        assert_eq!(
            client_ids.len(),
            history.len(),
            "each client_id stored once"
        );
        total += acked.len();
        if let (Some(page), true) = (&mut page, customer.session == in_page) {
            let stored: Vec<&str> = history.iter().map(|m| m.body.as_str()).collect();
            assert_eq!(
                stored,
                [
                    "Page before the crash",
                    "Mechanic before the crash",
                    "Mechanic while the page reconnects",
                    "Mechanic after the page is back",
                    "Page after the restart",
                ],
                "the page's session holds each message once, in order"
            );
            assert_eq!(
                page.messages().await,
                stored,
                "the page shows the history, each message once"
            );
        }
        let session = customer.api.session(customer.session).await.unwrap();
        if customer.session == expired {
            assert_eq!(
                session.status,
                wrenchline_protocol::SessionStatus::Completed,
                "expired while down"
            );
            assert_eq!(
                session.end_reason,
                Some(wrenchline_protocol::EndReason::TimeUp)
            );
        } else {
            assert_eq!(session.status, wrenchline_protocol::SessionStatus::Live);
            assert_eq!(
                session.ends_at, ends_before[&customer.session],
                "timers unchanged by the crash"
            );
        }
    }
    assert!(
        total >= SESSIONS * 2,
        "messages flowed before and after the crash ({total})"
    );
    println!("{total} acknowledged messages checked in the histories of {SESSIONS} sessions");
    for watch in &watches {
        if let Some((rt, _)) = &watch.customer {
            rt.disconnect().await;
        }
    }
    if let Some(page) = page {
        page.close().await;
    }
}

/// What a [`Proxy`] does to the traffic between a client and the server.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Link {
    /// Bytes flow both ways.
    Open,
    /// Every connection is closed and new ones are refused: a network that fails loudly.
    Closed,
    /// Nothing flows and nothing closes: a network that vanishes without a word (no FIN, no RST),
    /// which only timeouts can notice. New connections are refused.
    Silent,
}

/// A TCP proxy the test controls, between one participant and the server.
struct Proxy {
    addr: SocketAddr,
    link: tokio::sync::watch::Sender<Link>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (link, watch) = tokio::sync::watch::channel(Link::Open);
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if *watch.borrow() != Link::Open {
                    drop(inbound);
                    continue;
                }
                let mut watch = watch.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let fault = tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => return,
                        fault = watch.wait_for(|l| *l != Link::Open) => fault.map(|l| *l),
                    };
                    if matches!(fault, Ok(Link::Silent)) {
                        // Hold both sockets open and unread until the network returns; the
                        // connections it carried are dead by then.
                        let _ = watch.wait_for(|l| *l == Link::Open).await;
                    }
                });
            }
        });
        Proxy { addr, link }
    }

    fn set(&self, link: Link) {
        self.link.send_replace(link);
    }
}

/// One participant, the mechanic, loses the network for 30 s during a live session (`fault` says
/// how): the customer sees them leave by payload within the cut and come back after it; what the
/// mechanic typed meanwhile is stored once, and the session keeps running.
async fn cut_for_30_seconds(fault: Link) {
    let app = spawn_app().await;
    let (customer, mechanic, session) = app.waiting_session().await;
    let upstream: SocketAddr = app.base.trim_start_matches("http://").parse().unwrap();
    let proxy = Proxy::start(upstream).await;
    let via_proxy = format!("http://{}", proxy.addr);

    let (_, token) = app.post("/api/auth/token", &customer, None).await;
    let cust_rt =
        RealtimeClient::connect_with(&app.base, token["access_token"].as_str().unwrap(), quick())
            .unwrap();
    let cust_presence = presence(&cust_rt, session, customer.id().unwrap(), "customer").await;
    let Actor::Mechanic {
        token: mech_token, ..
    } = &mechanic
    else {
        unreachable!()
    };
    let mech_rt = RealtimeClient::connect_with(&via_proxy, mech_token.clone(), quick()).unwrap();
    let mech_presence = presence(&mech_rt, session, mechanic.id().unwrap(), "mechanic").await;
    let mech_api = ApiClient::new(&via_proxy)
        .unwrap()
        .with_token(mech_token.clone());
    let mechanic_id = mechanic.id().unwrap().to_string();
    wait_until("both present", Duration::from_secs(5), || {
        cust_presence.is_present(&mechanic_id)
    })
    .await;
    let live_by = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (_, now) = app
            .get(&format!("/api/sessions/{session}"), &customer)
            .await;
        if now["status"] == "live" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < live_by,
            "the session went live with both present: {now}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The mechanic's client keeps its last presence state while cut off: only a state sent after
    // its rejoin shows that it sees the customer again.
    let mechanic_sees_customer = tokio::spawn(rejoined_with(
        mech_presence.clone(),
        customer.id().unwrap().to_string(),
    ));
    let cut_at = tokio::time::Instant::now();
    proxy.set(fault);
    // A closed connection is seen at once; silence only once the server's pings go unanswered.
    let noticed_within = match fault {
        Link::Silent => Duration::from_secs(28),
        _ => Duration::from_secs(5),
    };
    wait_until(
        "the mechanic seen leaving, by payload",
        noticed_within,
        || !cust_presence.is_present(&mechanic_id),
    )
    .await;
    // Typed while cut off: the outbox keeps trying with the same client ids.
    let mut outbox = JoinSet::new();
    for n in 0..3 {
        let api = mech_api.clone();
        outbox.spawn(async move {
            post_until_acknowledged(
                &api,
                session,
                &format!("offline-{n}"),
                &format!("typed offline {n}"),
            )
            .await
            .expect("stored")
        });
    }
    tokio::time::sleep_until(cut_at + Duration::from_secs(30)).await;
    let (_, during) = app
        .get(&format!("/api/sessions/{session}"), &customer)
        .await;
    assert_eq!(during["status"], "live", "the session keeps running");
    let (_, history) = app
        .get(&format!("/api/sessions/{session}/messages"), &customer)
        .await;
    assert!(
        !history.to_string().contains("typed offline"),
        "nothing typed while cut off reached the server before the network returned: {history}"
    );
    proxy.set(Link::Open);

    wait_until("the mechanic back", Duration::from_secs(10), || {
        cust_presence.is_present(&mechanic_id)
    })
    .await;
    while let Some(sent) = outbox.join_next().await {
        sent.unwrap();
    }
    let (_, history) = app
        .get(&format!("/api/sessions/{session}/messages"), &customer)
        .await;
    let offline: Vec<&Value> = history
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["client_id"].as_str().unwrap().starts_with("offline-"))
        .collect();
    assert_eq!(
        offline.len(),
        3,
        "each message typed while cut off is stored once: {history}"
    );
    tokio::time::timeout(Duration::from_secs(10), mechanic_sees_customer)
        .await
        .expect("the mechanic sees the customer again")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_cut_off_for_30_seconds_leaves_and_comes_back() {
    cut_for_30_seconds(Link::Closed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_whose_network_goes_silent_for_30_seconds_leaves_and_comes_back() {
    cut_for_30_seconds(Link::Silent).await;
}
