//! The browser-facing defences, endpoint by endpoint: a write a browser sends from another
//! origin is refused before it changes anything, and every page, asset and error the server
//! answers with carries a Content-Security-Policy. Also the connection-level ones: HTTP clients
//! that stall are cut off (but open WebSockets are not), and the database file is private.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;
use wrenchline_protocol::Session;
use wrenchline_server::http::web::PAGE_CSP;

use crate::helpers::{intake_body, spawn_app, spawn_app_with, Actor, TestApp};

/// The policy of everything that is not a page: nothing may load, nothing may frame it.
const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// `Origin` values a page on another site would send: another host, an opaque origin (a sandboxed
/// frame, a data: URL), this host on another port, and a host that merely starts like this one.
fn foreign_origins(app: &TestApp) -> Vec<String> {
    let host = app.base.trim_start_matches("http://");
    let (name, port) = host.rsplit_once(':').unwrap();
    let other_port = if port == "1" { "2" } else { "1" };
    vec![
        "https://evil.example".into(),
        "null".into(),
        format!("http://{name}:{other_port}"),
        format!("http://{host}.evil.example"),
    ]
}

/// One request as `actor`, with `origin` as its `Origin` header.
async fn send_from(
    app: &TestApp,
    origin: &str,
    path: &str,
    actor: &Actor,
    body: Option<&Value>,
) -> reqwest::Response {
    send_as_from(app, Method::POST, origin, path, actor, body).await
}

async fn send_as_from(
    app: &TestApp,
    method: Method,
    origin: &str,
    path: &str,
    actor: &Actor,
    body: Option<&Value>,
) -> reqwest::Response {
    let mut request = app
        .http
        .request(method, format!("{}{path}", app.base))
        .header("origin", origin);
    request = match actor {
        Actor::Anonymous => request,
        Actor::Customer { cookie, .. } => request.header("cookie", format!("wl_customer={cookie}")),
        Actor::Mechanic { token, .. } => request.bearer_auth(token),
    };
    if let Some(body) = body {
        request = request.json(body);
    }
    request.send().await.unwrap()
}

/// What a refused write must leave as it was.
#[derive(Debug, PartialEq)]
struct Snapshot {
    sessions: i64,
    messages: i64,
    session: Option<Session>,
}

async fn snapshot(app: &TestApp, session: Option<Uuid>) -> Snapshot {
    let session = match session {
        Some(id) => app.state.store.session(id).await.unwrap(),
        None => None,
    };
    Snapshot {
        sessions: app.session_count().await,
        messages: app.message_count().await,
        session,
    }
}

/// A write that is refused from every foreign origin, leaving everything as it was, then sent
/// from the server's own origin and answered with `accepted`; that answer's body is returned.
async fn refused_from_elsewhere_then_accepted(
    app: &TestApp,
    session: Option<Uuid>,
    actor: &Actor,
    path: &str,
    body: Option<Value>,
    accepted: StatusCode,
) -> Value {
    let before = snapshot(app, session).await;
    for origin in foreign_origins(app) {
        let response = send_from(app, &origin, path, actor, body.as_ref()).await;
        let status = response.status();
        let sets_cookie = response.headers().contains_key("set-cookie");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "{path} from {origin}: {answer}"
        );
        assert_eq!(answer["error"], "cross_origin", "{path} from {origin}");
        assert!(answer["message"].is_string(), "{path} from {origin}");
        assert!(!sets_cookie, "{path} from {origin} sets no cookie");
    }
    assert_eq!(
        snapshot(app, session).await,
        before,
        "{path}: refused writes change nothing"
    );
    let response = send_from(app, &app.base, path, actor, body.as_ref()).await;
    let status = response.status();
    let answer: Value = response.json().await.unwrap();
    assert_eq!(
        status, accepted,
        "{path} from the server's origin: {answer}"
    );
    answer
}

/// Every non-GET operation the API document says a customer's cookie authenticates, with `{id}`
/// for the session.
async fn cookie_authenticated_writes(app: &TestApp) -> BTreeSet<String> {
    let (_, doc) = app.get("/api/openapi.json", &Actor::Anonymous).await;
    let mut writes = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let by_cookie = operation["security"]
                .as_array()
                .is_some_and(|schemes| schemes.iter().any(|s| s.get("customer_cookie").is_some()));
            if method != "get" && by_cookie {
                writes.insert(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    writes
}

#[tokio::test]
async fn every_cookie_authenticated_write_is_refused_from_another_origin() {
    let app = spawn_app().await;
    let mut covered = BTreeSet::new();
    let mut cover = |path: &str| covered.insert(format!("POST {path}"));

    cover("/api/intake");
    refused_from_elsewhere_then_accepted(
        &app,
        None,
        &Actor::Anonymous,
        "/api/intake",
        Some(intake_body()),
        StatusCode::CREATED,
    )
    .await;
    let (customer, session) = app.customer_with_session().await;
    let at = Some(session);
    refused_from_elsewhere_then_accepted(
        &app,
        at,
        &customer,
        "/api/intake",
        Some(intake_body()),
        StatusCode::CREATED,
    )
    .await;

    cover("/api/sessions/{id}/waiver");
    refused_from_elsewhere_then_accepted(
        &app,
        at,
        &customer,
        &format!("/api/sessions/{session}/waiver"),
        Some(json!({"signed_name": "Dana Driver", "agree": true})),
        StatusCode::OK,
    )
    .await;

    cover("/api/sessions/{id}/resume-link");
    let link = refused_from_elsewhere_then_accepted(
        &app,
        at,
        &customer,
        &format!("/api/sessions/{session}/resume-link"),
        None,
        StatusCode::OK,
    )
    .await;

    cover("/api/auth/token");
    refused_from_elsewhere_then_accepted(
        &app,
        at,
        &customer,
        "/api/auth/token",
        None,
        StatusCode::OK,
    )
    .await;

    // Not cookie-authenticated, but it hands out the identity cookie: a page elsewhere must not
    // be able to sign a browser in as someone else.
    let token = link["url"]
        .as_str()
        .unwrap()
        .split("token=")
        .nth(1)
        .unwrap();
    refused_from_elsewhere_then_accepted(
        &app,
        at,
        &Actor::Anonymous,
        "/api/resume",
        Some(json!({"token": token})),
        StatusCode::OK,
    )
    .await;

    let mechanic = app.mechanic("Sam").await;
    let (status, _) = app
        .post(&format!("/api/sessions/{session}/accept"), &mechanic, None)
        .await;
    assert_eq!(status, StatusCode::OK);

    cover("/api/sessions/{id}/messages");
    refused_from_elsewhere_then_accepted(
        &app,
        at,
        &customer,
        &format!("/api/sessions/{session}/messages"),
        Some(json!({"body": "hello", "client_id": "c1"})),
        StatusCode::CREATED,
    )
    .await;

    // Past the origin check, start answers for itself: the participants are not present.
    cover("/api/sessions/{id}/start");
    let answer = refused_from_elsewhere_then_accepted(
        &app,
        at,
        &customer,
        &format!("/api/sessions/{session}/start"),
        None,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(answer["error"], "participants_not_present");

    // Past the origin check, an upload answers for itself: a JSON body is no multipart form.
    cover("/api/sessions/{id}/attachments");
    let answer = refused_from_elsewhere_then_accepted(
        &app,
        at,
        &customer,
        &format!("/api/sessions/{session}/attachments"),
        Some(json!({"file": "x"})),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
    )
    .await;
    assert_eq!(answer["error"], "unsupported_media_type");

    cover("/api/sessions/{id}/end");
    refused_from_elsewhere_then_accepted(
        &app,
        at,
        &customer,
        &format!("/api/sessions/{session}/end"),
        None,
        StatusCode::OK,
    )
    .await;

    // Rating a completed session is a PUT.
    covered.insert("PUT /api/sessions/{id}/rating".into());
    let (rater, rating_mechanic, rated) = app.waiting_session().await;
    app.state
        .store
        .start(rated, time::OffsetDateTime::now_utc())
        .await
        .unwrap();
    let (status, _) = app
        .post(
            &format!("/api/sessions/{rated}/end"),
            &rating_mechanic,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let path = format!("/api/sessions/{rated}/rating");
    let stars = json!({"stars": 5});
    for origin in foreign_origins(&app) {
        let response = send_as_from(&app, Method::PUT, &origin, &path, &rater, Some(&stars)).await;
        assert_eq!(
            response.status(),
            StatusCode::FORBIDDEN,
            "{path} from {origin}"
        );
    }
    let (_, outcome) = app
        .get(&format!("/api/sessions/{rated}/outcome"), &rater)
        .await;
    assert_eq!(
        outcome["rating"],
        Value::Null,
        "refused ratings change nothing"
    );
    let response = send_as_from(&app, Method::PUT, &app.base, &path, &rater, Some(&stars)).await;
    assert_eq!(response.status(), StatusCode::OK);

    assert_eq!(
        covered,
        cookie_authenticated_writes(&app).await,
        "every write the API document lets a cookie authenticate is tried here"
    );
}

fn assert_policy(what: &str, response: &reqwest::Response, policy: &str) {
    let csp = response
        .headers()
        .get("content-security-policy")
        .unwrap_or_else(|| panic!("{what}: no Content-Security-Policy"));
    assert_eq!(csp.to_str().unwrap(), policy, "{what}");
    assert!(policy.contains("frame-ancestors 'none'"), "{what}");
}

/// Every file of the built front-end, as paths below `/`.
fn built_files(dir: &Path, prefix: &str, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = format!("{prefix}/{}", entry.file_name().to_string_lossy());
        if entry.file_type().unwrap().is_dir() {
            built_files(&entry.path(), &name, out);
        } else {
            out.push(name);
        }
    }
}

#[tokio::test]
async fn every_page_and_asset_carries_a_content_security_policy() {
    let app = spawn_app().await;
    let id = Uuid::new_v4();
    let pages = [
        "/".to_string(),
        "/intake".into(),
        "/intake/waiver".into(),
        format!("/thank-you?session={id}&plan=trial"),
        format!("/chat/{id}"),
        "/resume?token=not-a-token".into(),
        // Unknown pages get the app shell, which shows its own "not found".
        "/no/such/page".into(),
    ];
    for page in &pages {
        let response = app
            .http
            .get(format!("{}{page}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{page}");
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        assert_policy(page, &response, PAGE_CSP);
    }

    let dist = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../ui/dist");
    let mut files = Vec::new();
    built_files(&dist, "", &mut files);
    assert!(
        files.iter().any(|f| f.ends_with(".js")) && files.iter().any(|f| f.ends_with(".css")),
        "{files:?}"
    );
    for file in &files {
        for accept_encoding in ["identity", "gzip"] {
            let response = app
                .http
                .get(format!("{}{file}", app.base))
                .header("accept-encoding", accept_encoding)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{file}");
            assert_policy(&format!("{file} ({accept_encoding})"), &response, PAGE_CSP);
        }
    }

    // Missing files and API answers, errors included, are not pages: they may load nothing.
    for (path, status) in [
        ("/favicon-nope.png", StatusCode::NOT_FOUND),
        ("/assets/nope-123.js", StatusCode::NOT_FOUND),
        ("/api/nope", StatusCode::NOT_FOUND),
        ("/api/plans", StatusCode::OK),
        (&*format!("/api/sessions/{id}"), StatusCode::UNAUTHORIZED),
        ("/realtime/v1/websocket?vsn=2.0.0", StatusCode::BAD_REQUEST),
    ] {
        let response = app
            .http
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{path}");
        assert_policy(path, &response, API_CSP);
    }
}

/// A raw connection to `app`, for what an HTTP client library would not do.
async fn raw_connection(app: &TestApp) -> tokio::net::TcpStream {
    tokio::net::TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Reads until the server closes `stream` (or resets it); what it sent, and how long that took.
async fn read_until_closed(
    stream: &mut tokio::net::TcpStream,
    limit: Duration,
) -> (String, Duration) {
    use tokio::io::AsyncReadExt;
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(started + limit, stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
            Err(_) => panic!(
                "still open after {limit:?}; received {:?}",
                String::from_utf8_lossy(&received)
            ),
        }
    }
    (String::from_utf8_lossy(&received).into(), started.elapsed())
}

fn short_timeouts(settings: &mut wrenchline_server::Settings) {
    settings.limits.http_header_timeout_seconds = 1;
    settings.limits.http_body_timeout_seconds = 1;
    settings.limits.http_request_timeout_seconds = 2;
}

#[tokio::test]
async fn a_client_that_stalls_in_its_headers_is_disconnected() {
    use tokio::io::AsyncWriteExt;
    let app = spawn_app_with(short_timeouts).await;
    let mut stalled = raw_connection(&app).await;
    stalled
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nAccept: app")
        .await
        .unwrap();
    let (_, after) = read_until_closed(&mut stalled, Duration::from_secs(10)).await;
    assert!(after < Duration::from_secs(4), "closed after {after:?}");
    // A connection that never sends a byte is closed the same way.
    let mut silent = raw_connection(&app).await;
    let (_, after) = read_until_closed(&mut silent, Duration::from_secs(10)).await;
    assert!(after < Duration::from_secs(4), "closed after {after:?}");
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed() {
    use tokio::io::AsyncWriteExt;
    let app = spawn_app_with(short_timeouts).await;
    let mut connection = raw_connection(&app).await;
    connection
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let (received, after) = read_until_closed(&mut connection, Duration::from_secs(10)).await;
    assert!(received.starts_with("HTTP/1.1 200"), "{received}");
    assert!(after < Duration::from_secs(4), "closed after {after:?}");
}

#[tokio::test]
async fn a_client_that_stalls_in_its_body_is_answered_and_disconnected() {
    use tokio::io::AsyncWriteExt;
    let app = spawn_app_with(short_timeouts).await;
    let mut connection = raw_connection(&app).await;
    connection
        .write_all(
            b"POST /api/auth/login HTTP/1.1\r\nHost: localhost\r\n\
              Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"email\": ",
        )
        .await
        .unwrap();
    let (received, after) = read_until_closed(&mut connection, Duration::from_secs(10)).await;
    assert!(after < Duration::from_secs(4), "closed after {after:?}");
    let status: u16 = received
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no response: {received:?}"));
    assert!((400..500).contains(&status), "{received}");
}

#[tokio::test]
async fn the_timeouts_leave_an_open_websocket_alone() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let app = spawn_app_with(short_timeouts).await;
    let url = format!(
        "{}/realtime/v1/websocket?vsn=2.0.0",
        app.base.replace("http://", "ws://")
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    // Longer than every HTTP timeout, with nothing sent either way.
    tokio::time::sleep(Duration::from_secs(4)).await;
    ws.send(Message::text(
        json!([null, "1", "phoenix", "heartbeat", {}]).to_string(),
    ))
    .await
    .unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("a heartbeat reply")
        .expect("the socket is open")
        .unwrap();
    let frame: Value = serde_json::from_str(reply.to_text().unwrap()).unwrap();
    assert_eq!(frame[3], "phx_reply", "{frame}");
    assert_eq!(frame[4]["status"], "ok", "{frame}");
}

#[cfg(unix)]
#[tokio::test]
async fn a_new_sqlite_database_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    if crate::helpers::on_postgres() {
        return;
    }
    let app = spawn_app().await;
    app.offered_session().await; // a write, so the WAL is in use
    let path = app
        .database_url
        .strip_prefix("sqlite://")
        .expect("a SQLite file")
        .to_string();
    for file in [path.clone(), format!("{path}-wal"), format!("{path}-shm")] {
        let mode = std::fs::metadata(&file)
            .unwrap_or_else(|e| panic!("{file}: {e}"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}: {:o}", mode & 0o777);
    }
}
