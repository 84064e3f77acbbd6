//! Faults injected into a running system: the server killed with SIGKILL and restarted on the
//! same database while live sessions chat, and one participant's network cut for 30 seconds.
//! Nothing acknowledged is lost, nothing is stored twice, clients come back by themselves.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use time::OffsetDateTime;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use uuid::Uuid;
use wrenchline_client::realtime::{
    Backoff, Channel, ChannelEvent, ChannelOptions, RealtimeClient, RealtimeOptions,
};
use wrenchline_client::ApiClient;
use wrenchline_server::auth::hash_password;
use wrenchline_server::storage::Store;

use crate::helpers::{fresh_database_url, intake_body, spawn_app, Actor, PASSWORD};

const BIN: &str = env!("CARGO_BIN_EXE_wrenchline-server");

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

/// The server as an operator runs it: a separate process that can be killed.
fn start_server(db: &str, port: u16) -> Child {
    // Every client of this test shares one address.
    let limits = std::env::temp_dir().join(format!("limits-{port}.toml"));
    std::fs::write(
        &limits,
        "intakes_per_address_per_hour = 10000\nlogin_per_address_per_minute = 10000\n",
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--bind",
            &format!("127.0.0.1:{port}"),
            "--database-url",
            db,
        ])
        .arg("--limits-file")
        .arg(&limits)
        .env("WRENCHLINE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("listening on"), "{line}");
    child
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
}

async fn new_customer(http: &reqwest::Client, base: &str) -> Customer {
    let response = http
        .post(format!("{base}/api/intake"))
        .json(&intake_body())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::CREATED);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let body: Value = response.json().await.unwrap();
    let session: Uuid = body["session"]["id"].as_str().unwrap().parse().unwrap();
    let signed = http
        .post(format!("{base}/api/sessions/{session}/waiver"))
        .header("cookie", &cookie)
        .json(&json!({"signed_name": "Dana Driver", "agree": true}))
        .send()
        .await
        .unwrap();
    assert!(signed.status().is_success());
    let token: Value = http
        .post(format!("{base}/api/auth/token"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let api = ApiClient::new(base)
        .unwrap()
        .with_token(token["access_token"].as_str().unwrap());
    Customer {
        api,
        id: body["user"]["id"].as_str().unwrap().parse().unwrap(),
        session,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_restarts_and_loses_nothing_acknowledged() {
    const SESSIONS: usize = 50;
    const MECHANICS: usize = 5;
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
    let mut server = start_server(&db, port);
    let http = reqwest::Client::new();

    let mut customers = Vec::new();
    for _ in 0..SESSIONS {
        customers.push(new_customer(&http, &base).await);
    }
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
    // Every customer on a realtime connection of their own; mechanic i takes every fifth session.
    let mut watches = Vec::new();
    for (i, customer) in customers.iter().enumerate() {
        let (mech_api, mech_rt, mech_id) = &mechanics[i % MECHANICS];
        mech_api.accept(customer.session).await.unwrap();
        let token = customer.api.token().unwrap().to_string();
        let cust_rt = RealtimeClient::connect_with(&base, token, quick()).unwrap();
        let cust_presence = presence(&cust_rt, customer.session, customer.id, "customer").await;
        let mech_presence = presence(mech_rt, customer.session, *mech_id, "mechanic").await;
        watches.push((cust_rt, cust_presence, mech_presence, *mech_id));
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

    // Messages flow from every customer until told to stop; each keeps what was acknowledged.
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged: Arc<Mutex<HashMap<Uuid, Vec<Value>>>> = Arc::default();
    let mut writers = JoinSet::new();
    for customer in &customers {
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
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;

    server.kill().unwrap(); // SIGKILL
    server.wait().unwrap();
    let crashed_at = OffsetDateTime::now_utc();
    // One session's time runs out while the server is down.
    let expired = customers[0].session;
    sqlx::query("UPDATE sessions SET ends_at = $1 WHERE id = $2")
        .bind(wrenchline_server::storage::millis(crashed_at))
        .bind(expired.to_string())
        .execute(store.pool())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _server = KillOnDrop(start_server(&db, port));
    let restarted = tokio::time::Instant::now();

    // Every realtime client is back within 10 s: each customer sees its mechanic again.
    for (_, cust_presence, _, mech_id) in &watches {
        let mech_id = mech_id.to_string();
        wait_until(
            "presence rebuilt after the restart",
            Duration::from_secs(10).saturating_sub(restarted.elapsed()),
            || cust_presence.is_present(&mech_id),
        )
        .await;
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, Ordering::Relaxed);
    while let Some(done) = writers.join_next().await {
        done.unwrap();
    }

    let acknowledged = acknowledged.lock().unwrap().clone();
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
        let acked = &acknowledged[&customer.session];
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
    for (rt, ..) in &watches {
        rt.disconnect().await;
    }
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A TCP proxy the test controls: `cut` drops every connection and refuses new ones until
/// `heal`.
struct Proxy {
    addr: SocketAddr,
    cut: Arc<AtomicBool>,
    links: Arc<Mutex<JoinSet<()>>>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let links: Arc<Mutex<JoinSet<()>>> = Arc::default();
        let (cut2, links2) = (cut.clone(), links.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if cut2.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                links2.lock().unwrap().spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Proxy { addr, cut, links }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.links.lock().unwrap().abort_all();
    }

    fn heal(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_cut_off_for_30_seconds_leaves_and_comes_back() {
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
    wait_until("live", Duration::from_secs(5), || true).await;

    proxy.cut();
    wait_until(
        "the mechanic seen leaving, by payload",
        Duration::from_secs(5),
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
    tokio::time::sleep(Duration::from_secs(30)).await;
    let (_, during) = app
        .get(&format!("/api/sessions/{session}"), &customer)
        .await;
    assert_eq!(during["status"], "live", "the session keeps running");
    proxy.heal();

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
    assert!(
        mech_presence.is_present(&customer.id().unwrap().to_string()),
        "the mechanic sees the customer again"
    );
    let _ = ChannelEvent::Subscribed;
}
