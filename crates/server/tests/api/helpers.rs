//! `spawn_app()` and the actors of the tests: anonymous visitors, customers (identity cookie) and
//! mechanics (bearer token); the `wrenchline-server` binary itself, for tests of the process.

use std::io::{BufRead, BufReader, Write};
use std::ops::Deref;
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::Connection;
use time::OffsetDateTime;
use tokio::sync::oneshot;
use uuid::Uuid;
use wrenchline_server::auth::hash_password;
use wrenchline_server::state::AppState;
use wrenchline_server::{Application, Settings};

pub const PASSWORD: &str = "correct horse battery";

pub const SERVER_BIN: &str = env!("CARGO_BIN_EXE_wrenchline-server");

/// A database for one test: a new SQLite file, or a new PostgreSQL database.
pub async fn fresh_database_url() -> String {
    match std::env::var("WRENCHLINE_TEST_POSTGRES_URL") {
        Ok(base) if !base.is_empty() => {
            let name = format!("wl_{}", Uuid::new_v4().simple());
            let mut conn = sqlx::PgConnection::connect(&base)
                .await
                .expect("connect to PostgreSQL");
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await
                .expect("create test database");
            let (prefix, _) = base.rsplit_once('/').expect("URL with a database name");
            format!("{prefix}/{name}")
        }
        _ => {
            let path: PathBuf = std::env::temp_dir().join(format!("wl-test-{}.db", Uuid::new_v4()));
            format!("sqlite://{}", path.display())
        }
    }
}

pub fn on_postgres() -> bool {
    std::env::var("WRENCHLINE_TEST_POSTGRES_URL").is_ok_and(|v| !v.is_empty())
}

/// The server in this process, with its state at hand; its HTTP side is the `Api` it derefs to.
pub struct TestApp {
    pub api: Api,
    /// `http://ADDR` of the metrics listener (every test server has one on a free port).
    pub metrics_base: Option<String>,
    pub database_url: String,
    pub state: AppState,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Deref for TestApp {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

/// HTTP to a running server as one of the actors, wherever the server runs.
#[derive(Clone)]
pub struct Api {
    /// `http://ADDR`
    pub base: String,
    pub http: reqwest::Client,
}

#[derive(Clone, Debug)]
pub enum Actor {
    Anonymous,
    Customer {
        cookie: String,
        id: Uuid,
    },
    Mechanic {
        token: String,
        refresh: String,
        id: Uuid,
    },
}

impl Actor {
    pub fn id(&self) -> Option<Uuid> {
        match self {
            Actor::Anonymous => None,
            Actor::Customer { id, .. } | Actor::Mechanic { id, .. } => Some(*id),
        }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_on(fresh_database_url().await, |_| {}).await
}

pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_on(fresh_database_url().await, configure).await
}

pub async fn spawn_app_on(database_url: String, configure: impl FnOnce(&mut Settings)) -> TestApp {
    let mut settings = Settings::new("127.0.0.1:0".parse().unwrap(), database_url.clone());
    // Every test client comes from 127.0.0.1; per-address limits are tested on their own.
    settings.limits.login_per_address_per_minute = 10_000;
    settings.limits.intakes_per_address_per_hour = 10_000;
    settings.metrics_bind = Some("127.0.0.1:0".parse().unwrap());
    settings.media_dir = Some(std::env::temp_dir().join(format!("wl-media-{}", Uuid::new_v4())));
    configure(&mut settings);
    let app = Application::build(settings).await.expect("server builds");
    let addr = app.local_addr();
    let metrics_base = app.metrics_addr().map(|addr| format!("http://{addr}"));
    let state = app.state().clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    TestApp {
        api: Api::new(format!("http://{addr}")),
        metrics_base,
        database_url,
        state,
        stop: Some(stop),
        server: Some(server),
    }
}

pub fn intake_body() -> Value {
    json!({
        "name": "Dana Driver",
        "email": "dana@example.com",
        "phone": "+1 555 010 2030",
        "vehicle": { "year": 2018, "make": "Honda", "model": "Civic", "vin": "1HGCM82633A004352", "mileage": 84000 },
        "concern": "Grinding noise from the front when braking at low speed",
        "plan": "standard"
    })
}

impl TestApp {
    /// An access token for `actor`: a mechanic's own, or a customer's traded for their cookie.
    pub async fn access_token(&self, actor: &Actor) -> String {
        match actor {
            Actor::Mechanic { token, .. } => token.clone(),
            _ => {
                let (_, body) = self.post("/api/auth/token", actor, None).await;
                body["access_token"].as_str().unwrap().to_string()
            }
        }
    }

    /// Stops the server and waits for it to close its connections and database pool.
    pub async fn stop(mut self) -> String {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        self.database_url.clone()
    }

    /// A signed-in mechanic.
    pub async fn mechanic(&self, name: &str) -> Actor {
        let email = format!(
            "{}-{}@garage.example",
            name.to_lowercase(),
            Uuid::new_v4().simple()
        );
        self.state
            .store
            .create_mechanic(
                &email,
                name,
                &hash_password(PASSWORD),
                OffsetDateTime::now_utc(),
            )
            .await
            .unwrap()
            .unwrap();
        let (status, body) = self
            .post(
                "/api/auth/login",
                &Actor::Anonymous,
                Some(&json!({"email": email, "password": PASSWORD})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        Actor::Mechanic {
            token: body["access_token"].as_str().unwrap().into(),
            refresh: body["refresh_token"].as_str().unwrap().into(),
            id: body["user"]["id"].as_str().unwrap().parse().unwrap(),
        }
    }

    /// The email address an actor signed up or in with.
    pub async fn email_of(&self, actor: &Actor) -> String {
        let id = actor.id().expect("a customer or a mechanic");
        self.state.store.user(id).await.unwrap().unwrap().email
    }

    /// A session accepted by a new mechanic: (customer, mechanic, session).
    pub async fn waiting_session(&self) -> (Actor, Actor, Uuid) {
        let (customer, session) = self.offered_session().await;
        let mechanic = self.mechanic("Sam").await;
        let (status, body) = self
            .post(&format!("/api/sessions/{session}/accept"), &mechanic, None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        (customer, mechanic, session)
    }

    pub async fn session_count(&self) -> i64 {
        self.state.store.session_count().await.unwrap()
    }

    pub async fn message_count(&self) -> i64 {
        self.state.store.message_count().await.unwrap()
    }
}

impl Api {
    pub fn new(base: impl Into<String>) -> Api {
        Api {
            base: base.into(),
            // Pooled connections are dropped before the server's 30 s idle close, as the Rust
            // client does: a request after a 30 s pause must not go out on a connection the
            // server is closing at that moment.
            http: reqwest::Client::builder()
                .pool_idle_timeout(Duration::from_secs(20))
                .build()
                .expect("an HTTP client"),
        }
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        actor: &Actor,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let response = self.send(method, path, actor, body).await;
        let status = response.status();
        let text = response.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        actor: &Actor,
        body: Option<&Value>,
    ) -> reqwest::Response {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        request = match actor {
            Actor::Anonymous => request,
            Actor::Customer { cookie, .. } => {
                request.header("cookie", format!("wl_customer={cookie}"))
            }
            Actor::Mechanic { token, .. } => request.bearer_auth(token),
        };
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.expect("request reaches the server")
    }

    pub async fn get(&self, path: &str, actor: &Actor) -> (StatusCode, Value) {
        self.request(Method::GET, path, actor, None).await
    }

    pub async fn post(
        &self,
        path: &str,
        actor: &Actor,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        self.request(Method::POST, path, actor, body).await
    }

    /// A new customer with a pending session, from a real intake.
    pub async fn customer_with_session(&self) -> (Actor, Uuid) {
        let response = self
            .send(
                Method::POST,
                "/api/intake",
                &Actor::Anonymous,
                Some(&intake_body()),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let cookie = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| v.strip_prefix("wl_customer="))
            .map(|v| v.split(';').next().unwrap().to_string())
            .expect("identity cookie");
        let body: Value = response.json().await.unwrap();
        let id = body["user"]["id"].as_str().unwrap().parse().unwrap();
        let session = body["session"]["id"].as_str().unwrap().parse().unwrap();
        (Actor::Customer { cookie, id }, session)
    }

    /// A customer whose session is offered to mechanics.
    pub async fn offered_session(&self) -> (Actor, Uuid) {
        let (customer, session) = self.customer_with_session().await;
        let (status, body) = self
            .post(
                &format!("/api/sessions/{session}/waiver"),
                &customer,
                Some(&json!({"signed_name": "Dana Driver", "agree": true})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        (customer, session)
    }
}

/// Runs `wrenchline-server` with `args` to completion, writing `stdin` to it first:
/// (succeeded, stdout, stderr).
pub fn run_server_command(args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut child = Command::new(SERVER_BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("wrenchline-server runs");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// `wrenchline-server mechanic add`, the password on stdin as an administrator types it; as at
/// first setup, the database is created if it does not exist yet.
pub fn add_mechanic(db: &str, email: &str, name: &str, password: &str) -> (bool, String, String) {
    run_server_command(
        &[
            "mechanic",
            "add",
            "--email",
            email,
            "--name",
            name,
            "--password-stdin",
            "--create-database",
            "--database-url",
            db,
        ],
        Some(&format!("{password}\n")),
    )
}

/// `wrenchline-server serve` as an operator runs it: a process of its own, which a test reads,
/// can kill with SIGKILL and start again. Dropping it kills it, so a failed test leaves none
/// running.
pub struct ServerProcess {
    child: Child,
    stdout: Option<BufReader<ChildStdout>>,
    /// `http://ADDR` from the `listening on` line: the real port also with `--bind …:0`.
    pub base: String,
}

/// Starts `wrenchline-server serve` with the flags and environment `configure` adds, and waits
/// for its `listening on` line. Its stdout is read here; stderr is discarded unless `configure`
/// sends it elsewhere.
pub async fn spawn_server_process(configure: impl FnOnce(&mut Command)) -> ServerProcess {
    let mut command = Command::new(SERVER_BIN);
    command
        .arg("serve")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    configure(&mut command);
    let mut child = command.spawn().expect("wrenchline-server starts");
    let stdout = child.stdout.take().map(BufReader::new);
    let mut server = ServerProcess {
        child,
        stdout,
        base: String::new(),
    };
    let first = server.next_line().await;
    server.base = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| {
            panic!("expected `listening on ADDR` first, the server printed {first:?}")
        })
        .to_string();
    server
}

impl ServerProcess {
    /// The next line the server prints on stdout (empty once it has exited), within 60 s.
    pub async fn next_line(&mut self) -> String {
        let mut stdout = self.stdout.take().expect("the server's stdout is piped");
        let read = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            stdout.read_line(&mut line).map(|_| (stdout, line))
        });
        let (stdout, line) = tokio::time::timeout(Duration::from_secs(60), read)
            .await
            .expect("the server prints within 60 s")
            .unwrap()
            .expect("the server's stdout is readable");
        self.stdout = Some(stdout);
        line.trim_end().to_string()
    }

    /// HTTP to this server.
    pub fn api(&self) -> Api {
        Api::new(&self.base)
    }

    /// SIGKILL, as a crash or `kill -9` would, and waits until the process is gone.
    pub fn kill(&mut self) {
        self.child.kill().expect("the server can be killed");
        self.child.wait().expect("the killed server is reaped");
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
