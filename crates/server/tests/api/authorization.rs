//! Every forbidden pair of (anonymous, customer A, customer B, mechanic X, mechanic Y) × endpoint is
//! refused and changes nothing. Customer A's session has been accepted by mechanic X.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use crate::helpers::{spawn_app, Actor, TestApp};

/// A realtime connection as realtime-js opens it (vsn 2.0.0), for joins in these tests.
pub struct Socket(
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
);

impl Socket {
    pub async fn connect(app: &TestApp) -> Socket {
        let url = format!(
            "{}/realtime/v1/websocket?vsn=2.0.0",
            app.base.replace("http://", "ws://")
        );
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        Socket(ws)
    }

    /// Joins `topic` (without the `realtime:` prefix) with `token` and `bindings` for
    /// `postgres_changes`; the join's reply payload.
    pub async fn join(&mut self, topic: &str, token: &str, bindings: Value) -> Value {
        let join_ref = Uuid::new_v4().to_string();
        let frame = json!([join_ref, join_ref, format!("realtime:{topic}"), "phx_join",
            {"config": {"broadcast": {"self": false, "ack": false}, "presence": {"key": ""}, "postgres_changes": bindings}, "access_token": token}]);
        self.0.send(Message::text(frame.to_string())).await.unwrap();
        self.next(|f| f[3] == "phx_reply" && f[1] == join_ref.as_str())
            .await
            .map(|f| f[4].clone())
            .expect("a join is answered")
    }

    /// Sends one frame as it is.
    pub async fn push(&mut self, frame: Value) {
        self.0.send(Message::text(frame.to_string())).await.unwrap();
    }

    /// The next frame matching `pred` within 10 s, skipping others.
    pub async fn next(&mut self, pred: impl Fn(&Value) -> bool) -> Option<Value> {
        self.next_within(Duration::from_secs(10), pred).await
    }

    /// The next frame matching `pred` within `window`, skipping others.
    pub async fn next_within(
        &mut self,
        window: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + window;
        while let Ok(Some(Ok(message))) = tokio::time::timeout_at(deadline, self.0.next()).await {
            if let Message::Text(text) = message {
                let frame: Value = serde_json::from_str(text.as_str()).unwrap();
                if pred(&frame) {
                    return Some(frame);
                }
            }
        }
        None
    }
}

/// Who, how, where, with what body, and the refusal expected.
type Case<'a> = (
    &'a str,
    &'a Actor,
    Method,
    String,
    Option<serde_json::Value>,
    StatusCode,
);

#[tokio::test]
async fn every_forbidden_caller_is_refused_and_nothing_changes() {
    let app = spawn_app().await;
    let (a, x, session) = app.waiting_session().await;
    let (b, _b_session) = app.offered_session().await;
    let y = app.mechanic("Yuri").await;
    let anon = Actor::Anonymous;
    let s = session;
    let msg = json!({"body": "not yours", "client_id": "intruder"});
    let waiver = json!({"signed_name": "Mallory", "agree": true});

    let cases: Vec<Case> = vec![
        (
            "anon reads",
            &anon,
            Method::GET,
            format!("/api/sessions/{s}"),
            None,
            StatusCode::UNAUTHORIZED,
        ),
        (
            "B reads",
            &b,
            Method::GET,
            format!("/api/sessions/{s}"),
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            "Y reads",
            &y,
            Method::GET,
            format!("/api/sessions/{s}"),
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            "anon lists requests",
            &anon,
            Method::GET,
            "/api/requests".into(),
            None,
            StatusCode::UNAUTHORIZED,
        ),
        (
            "A lists requests",
            &a,
            Method::GET,
            "/api/requests".into(),
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            "B lists requests",
            &b,
            Method::GET,
            "/api/requests".into(),
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            "anon accepts",
            &anon,
            Method::POST,
            format!("/api/sessions/{s}/accept"),
            None,
            StatusCode::UNAUTHORIZED,
        ),
        (
            "A accepts",
            &a,
            Method::POST,
            format!("/api/sessions/{s}/accept"),
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            "B accepts",
            &b,
            Method::POST,
            format!("/api/sessions/{s}/accept"),
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            "Y accepts",
            &y,
            Method::POST,
            format!("/api/sessions/{s}/accept"),
            None,
            StatusCode::CONFLICT,
        ),
        (
            "anon signs",
            &anon,
            Method::POST,
            format!("/api/sessions/{s}/waiver"),
            Some(waiver.clone()),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "B signs",
            &b,
            Method::POST,
            format!("/api/sessions/{s}/waiver"),
            Some(waiver.clone()),
            StatusCode::NOT_FOUND,
        ),
        (
            "X signs",
            &x,
            Method::POST,
            format!("/api/sessions/{s}/waiver"),
            Some(waiver.clone()),
            StatusCode::FORBIDDEN,
        ),
        (
            "Y signs",
            &y,
            Method::POST,
            format!("/api/sessions/{s}/waiver"),
            Some(waiver.clone()),
            StatusCode::FORBIDDEN,
        ),
        (
            "anon history",
            &anon,
            Method::GET,
            format!("/api/sessions/{s}/messages"),
            None,
            StatusCode::UNAUTHORIZED,
        ),
        (
            "B history",
            &b,
            Method::GET,
            format!("/api/sessions/{s}/messages"),
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            "Y history",
            &y,
            Method::GET,
            format!("/api/sessions/{s}/messages"),
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            "anon posts",
            &anon,
            Method::POST,
            format!("/api/sessions/{s}/messages"),
            Some(msg.clone()),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "B posts",
            &b,
            Method::POST,
            format!("/api/sessions/{s}/messages"),
            Some(msg.clone()),
            StatusCode::NOT_FOUND,
        ),
        (
            "Y posts",
            &y,
            Method::POST,
            format!("/api/sessions/{s}/messages"),
            Some(msg.clone()),
            StatusCode::NOT_FOUND,
        ),
        (
            "anon starts",
            &anon,
            Method::POST,
            format!("/api/sessions/{s}/start"),
            None,
            StatusCode::UNAUTHORIZED,
        ),
        (
            "B starts",
            &b,
            Method::POST,
            format!("/api/sessions/{s}/start"),
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            "Y starts",
            &y,
            Method::POST,
            format!("/api/sessions/{s}/start"),
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            "anon ends",
            &anon,
            Method::POST,
            format!("/api/sessions/{s}/end"),
            None,
            StatusCode::UNAUTHORIZED,
        ),
        (
            "B ends",
            &b,
            Method::POST,
            format!("/api/sessions/{s}/end"),
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            "Y ends",
            &y,
            Method::POST,
            format!("/api/sessions/{s}/end"),
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            "anon resume link",
            &anon,
            Method::POST,
            format!("/api/sessions/{s}/resume-link"),
            None,
            StatusCode::UNAUTHORIZED,
        ),
        (
            "B resume link",
            &b,
            Method::POST,
            format!("/api/sessions/{s}/resume-link"),
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            "X resume link",
            &x,
            Method::POST,
            format!("/api/sessions/{s}/resume-link"),
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            "Y resume link",
            &y,
            Method::POST,
            format!("/api/sessions/{s}/resume-link"),
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            "anon customer token",
            &anon,
            Method::POST,
            "/api/auth/token".into(),
            None,
            StatusCode::UNAUTHORIZED,
        ),
        (
            "X customer token",
            &x,
            Method::POST,
            "/api/auth/token".into(),
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            "X files an intake",
            &x,
            Method::POST,
            "/api/intake".into(),
            Some(crate::helpers::intake_body()),
            StatusCode::FORBIDDEN,
        ),
    ];

    let sessions_before = app.session_count().await;
    for (name, actor, method, path, body, expected) in &cases {
        let (status, answer) = app
            .request(method.clone(), path, actor, body.as_ref())
            .await;
        assert_eq!(status, *expected, "{name}: {answer}");
        assert!(
            answer["error"].is_string() && answer["message"].is_string(),
            "{name}: {answer}"
        );
    }

    let stored = app.state.store.session(session).await.unwrap().unwrap();
    assert_eq!(stored.status, wrenchline_protocol::SessionStatus::Waiting);
    assert_eq!(stored.mechanic_id, x.id());
    assert!(stored.waiver_signed_at.is_some());
    assert_eq!(app.message_count().await, 0);
    assert_eq!(app.session_count().await, sessions_before);

    // The rightful participants still get in.
    for who in [&a, &x] {
        let (status, _) = app.get(&format!("/api/sessions/{s}"), who).await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = app.get(&format!("/api/sessions/{s}/messages"), who).await;
        assert_eq!(status, StatusCode::OK);
    }
}

#[tokio::test]
async fn any_mechanic_may_read_an_offered_request_but_not_an_unsigned_one() {
    let app = spawn_app().await;
    let y = app.mechanic("Yuri").await;
    let (_, offered) = app.offered_session().await;
    let (_, unsigned) = app.customer_with_session().await;
    let (status, _) = app.get(&format!("/api/sessions/{offered}"), &y).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.get(&format!("/api/sessions/{unsigned}"), &y).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn cross_site_writes_are_refused() {
    let app = spawn_app().await;
    let response = app
        .http
        .post(format!("{}/api/intake", app.base))
        .header("origin", "https://evil.example")
        .json(&crate::helpers::intake_body())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "cross_origin");
    assert_eq!(app.session_count().await, 0);

    let same = app
        .http
        .post(format!("{}/api/intake", app.base))
        .header("origin", app.base.clone())
        .json(&crate::helpers::intake_body())
        .send()
        .await
        .unwrap();
    assert_eq!(same.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn a_browser_resumed_by_link_reaches_that_session_only() {
    let app = spawn_app().await;
    let (customer, linked) = app.offered_session().await;
    let (_, body) = app
        .post(
            "/api/intake",
            &customer,
            Some(&crate::helpers::intake_body()),
        )
        .await;
    let other: Uuid = body["session"]["id"].as_str().unwrap().parse().unwrap();
    let (_, link) = app
        .post(
            &format!("/api/sessions/{linked}/resume-link"),
            &customer,
            None,
        )
        .await;
    let token = link["url"]
        .as_str()
        .unwrap()
        .split("token=")
        .nth(1)
        .unwrap();
    let response = app
        .send(
            Method::POST,
            "/api/resume",
            &Actor::Anonymous,
            Some(&json!({"token": token})),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .find_map(|v| v.to_str().ok()?.strip_prefix("wl_customer="))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let resumed = Actor::Customer {
        cookie,
        id: customer.id().unwrap(),
    };

    // Every endpoint of the other session answers as if it did not exist, and nothing changes.
    let o = other;
    let cases = [
        (Method::GET, format!("/api/sessions/{o}"), None),
        (Method::GET, format!("/api/sessions/{o}/messages"), None),
        (
            Method::POST,
            format!("/api/sessions/{o}/messages"),
            Some(json!({"body": "hi", "client_id": "c1"})),
        ),
        (
            Method::POST,
            format!("/api/sessions/{o}/waiver"),
            Some(json!({"signed_name": "Dana Driver", "agree": true})),
        ),
        (Method::POST, format!("/api/sessions/{o}/resume-link"), None),
        (Method::POST, format!("/api/sessions/{o}/start"), None),
        (Method::POST, format!("/api/sessions/{o}/end"), None),
    ];
    for (method, path, body) in &cases {
        let (status, answer) = app
            .request(method.clone(), path, &resumed, body.as_ref())
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {answer}");
    }
    let stored = app.state.store.session(other).await.unwrap().unwrap();
    assert_eq!(stored.status, wrenchline_protocol::SessionStatus::Pending);
    assert!(stored.waiver_signed_at.is_none());
    let (status, _) = app.get(&format!("/api/sessions/{linked}"), &resumed).await;
    assert_eq!(status, StatusCode::OK);

    // The realtime token traded for that identity carries the same reach.
    let access = app.access_token(&resumed).await;
    let mut socket = Socket::connect(&app).await;
    for topic in [
        format!("chat:session-{other}"),
        format!("chat:session-{other}:presence"),
    ] {
        let reply = socket.join(&topic, &access, json!([])).await;
        assert_eq!(reply["status"], "error", "{topic}: {reply}");
    }
    for topic in [
        format!("chat:session-{linked}"),
        format!("chat:session-{linked}:presence"),
    ] {
        let reply = socket.join(&topic, &access, json!([])).await;
        assert_eq!(reply["status"], "ok", "{topic}: {reply}");
    }
    // The customer's own browser still reaches both.
    let full = app.access_token(&customer).await;
    let reply = socket
        .join(&format!("chat:session-{other}"), &full, json!([]))
        .await;
    assert_eq!(reply["status"], "ok", "{reply}");
}
