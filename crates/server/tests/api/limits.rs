//! Abuse limits answer 429 with a reason and a Retry-After, and the refused request changes
//! nothing. Per-address limits apply to the client behind a trusted reverse proxy.

use reqwest::StatusCode;
use serde_json::json;
use wrenchline_server::proxy::TrustedProxies;

use crate::helpers::{
    fresh_database_url, intake_body, spawn_app_with, spawn_server_process, Actor, TestApp, PASSWORD,
};

#[tokio::test]
async fn sign_in_attempts_are_limited_per_account() {
    let app = spawn_app_with(|s| s.limits.login_per_account_per_minute = 3).await;
    let mechanic = app.mechanic("Sam").await; // one successful login
    let email = app.email_of(&mechanic).await;
    for _ in 0..2 {
        let (status, _) = app
            .post(
                "/api/auth/login",
                &Actor::Anonymous,
                Some(&json!({"email": email, "password": "wrong"})),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let response = app
        .send(
            reqwest::Method::POST,
            "/api/auth/login",
            &Actor::Anonymous,
            Some(&json!({"email": email, "password": PASSWORD})),
        )
        .await;
    assert_eq!(
        response.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "even the right password waits"
    );
    assert!(
        response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "rate_limited");
    let (status, _) = app
        .post(
            "/api/auth/login",
            &Actor::Anonymous,
            Some(&json!({"email": "other@garage.example", "password": "x"})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "other accounts are not locked out"
    );
}

#[tokio::test]
async fn sign_in_attempts_are_limited_per_address() {
    let app = spawn_app_with(|s| s.limits.login_per_address_per_minute = 2).await;
    for i in 0..2 {
        let (status, _) = app
            .post(
                "/api/auth/login",
                &Actor::Anonymous,
                Some(&json!({"email": format!("a{i}@x.example"), "password": "x"})),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, body) = app
        .post(
            "/api/auth/login",
            &Actor::Anonymous,
            Some(&json!({"email": "b@x.example", "password": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(body["message"].as_str().unwrap().contains("address"));
}

#[tokio::test]
async fn intakes_are_limited_per_address() {
    let app = spawn_app_with(|s| s.limits.intakes_per_address_per_hour = 2).await;
    for _ in 0..2 {
        let (status, _) = app
            .post("/api/intake", &Actor::Anonymous, Some(&intake_body()))
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (status, body) = app
        .post("/api/intake", &Actor::Anonymous, Some(&intake_body()))
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["error"], "rate_limited");
    assert_eq!(app.session_count().await, 2);
}

/// A 429 with a `Retry-After` of at least a second and the error body, whose message says what
/// was limited.
pub async fn assert_rate_limited(response: reqwest::Response, what: &str) {
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after = response
        .headers()
        .get("retry-after")
        .expect("a Retry-After header")
        .to_str()
        .unwrap()
        .parse::<u64>()
        .unwrap();
    assert!(retry_after >= 1, "Retry-After: {retry_after}");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "rate_limited", "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains(what), "{body}");
}

#[tokio::test]
async fn messages_are_limited_per_user() {
    let app = spawn_app_with(|s| s.limits.messages_per_user_per_minute = 3).await;
    let (customer, mechanic, session) = app.waiting_session().await;
    let path = format!("/api/sessions/{session}/messages");
    for i in 0..3 {
        let (status, _) = app
            .post(
                &path,
                &customer,
                Some(&json!({"body": "hi", "client_id": format!("c{i}")})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let refused = app
        .send(
            reqwest::Method::POST,
            &path,
            &customer,
            Some(&json!({"body": "hi", "client_id": "c9"})),
        )
        .await;
    assert_rate_limited(refused, "messages").await;
    let (status, _) = app
        .post(
            &path,
            &mechanic,
            Some(&json!({"body": "hello", "client_id": "m1"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "the limit is per user");
    assert_eq!(app.message_count().await, 4);
}

/// `POST /api/intake` as a reverse proxy on 127.0.0.1 sends it on behalf of `forwarded_for`.
async fn intake_via_proxy(app: &TestApp, forwarded_for: Option<&str>) -> StatusCode {
    let mut request = app
        .http
        .post(format!("{}/api/intake", app.base))
        .json(&intake_body());
    if let Some(forwarded_for) = forwarded_for {
        request = request.header("x-forwarded-for", forwarded_for);
    }
    request.send().await.unwrap().status()
}

async fn login_via_proxy(app: &TestApp, forwarded_for: &str) -> StatusCode {
    app.http
        .post(format!("{}/api/auth/login", app.base))
        .header("x-forwarded-for", forwarded_for)
        .json(&json!({"email": "nobody@garage.example", "password": "wrong"}))
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget() {
    let app = spawn_app_with(|s| {
        s.limits.intakes_per_address_per_hour = 1;
        s.limits.login_per_address_per_minute = 1;
        s.trusted_proxies = TrustedProxies::parse("127.0.0.1").unwrap();
    })
    .await;
    let created = StatusCode::CREATED;
    let limited = StatusCode::TOO_MANY_REQUESTS;
    assert_eq!(intake_via_proxy(&app, Some("203.0.113.1")).await, created);
    assert_eq!(intake_via_proxy(&app, Some("203.0.113.1")).await, limited);
    assert_eq!(
        intake_via_proxy(&app, Some("203.0.113.2")).await,
        created,
        "another client behind the same proxy has a budget of its own"
    );
    // What the client writes itself stands left of what the proxy appends, and is not believed.
    assert_eq!(
        intake_via_proxy(&app, Some("198.51.100.7, 203.0.113.1")).await,
        limited
    );
    // A trusted hop after the client is skipped.
    assert_eq!(
        intake_via_proxy(&app, Some("203.0.113.2, 127.0.0.1")).await,
        limited
    );
    // Without the header the proxy is the client, with a budget of its own.
    assert_eq!(intake_via_proxy(&app, None).await, created);
    assert_eq!(intake_via_proxy(&app, None).await, limited);
    assert_eq!(app.session_count().await, 3);

    let unauthorized = StatusCode::UNAUTHORIZED;
    assert_eq!(login_via_proxy(&app, "203.0.113.1").await, unauthorized);
    assert_eq!(login_via_proxy(&app, "203.0.113.1").await, limited);
    assert_eq!(login_via_proxy(&app, "203.0.113.2").await, unauthorized);
}

#[tokio::test]
async fn without_a_trusted_proxy_a_forwarded_header_is_ignored() {
    let trusting_another = TrustedProxies::parse("10.0.0.0/8, ::1").unwrap();
    for proxies in [TrustedProxies::default(), trusting_another] {
        let app = spawn_app_with(|s| {
            s.limits.intakes_per_address_per_hour = 1;
            s.trusted_proxies = proxies.clone();
        })
        .await;
        assert_eq!(
            intake_via_proxy(&app, Some("203.0.113.1")).await,
            StatusCode::CREATED
        );
        for forged in [Some("203.0.113.2"), Some("203.0.113.3, 10.0.0.1"), None] {
            assert_eq!(
                intake_via_proxy(&app, forged).await,
                StatusCode::TOO_MANY_REQUESTS,
                "{proxies:?}: {forged:?} is ignored"
            );
        }
        assert_eq!(app.session_count().await, 1);
    }
}

/// The request log names the client as the limits see it: the forwarded address behind a trusted
/// proxy, the peer otherwise.
#[tokio::test]
async fn the_request_log_names_the_forwarded_client() {
    let db = fresh_database_url().await;
    let log = std::env::temp_dir().join(format!("wl-log-{}.txt", uuid::Uuid::new_v4()));
    let server = spawn_server_process(|serve| {
        serve
            .args(["--bind", "127.0.0.1:0", "--database-url", &db])
            .env("WRENCHLINE_TRUSTED_PROXIES", "127.0.0.1, ::1")
            .env("WRENCHLINE_LOG", "info,tower_http=debug")
            .stderr(std::fs::File::create(&log).unwrap());
    })
    .await;
    let http = reqwest::Client::new();
    let health = http
        .get(format!("{}/healthz", server.base))
        .header("x-forwarded-for", "198.51.100.7, 203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    drop(server);
    let written = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    let written = regex::Regex::new("\x1b\\[[0-9;]*m")
        .unwrap()
        .replace_all(&written, "");
    let line = written
        .lines()
        .find(|l| l.contains("path=/healthz"))
        .unwrap_or_else(|| panic!("no request line in:\n{written}"));
    assert!(line.contains("client=203.0.113.9"), "{line}");
}

#[tokio::test]
async fn the_message_length_comes_from_configuration() {
    let app = spawn_app_with(|s| s.limits.message_max_chars = 10).await;
    let (customer, _mechanic, session) = app.waiting_session().await;
    let path = format!("/api/sessions/{session}/messages");
    // Characters, not bytes: ten of them, twenty bytes in UTF-8, with white space around.
    let at_limit = "é".repeat(10);
    let over = "é".repeat(11);
    let (status, body) = app
        .post(
            &path,
            &customer,
            Some(&json!({"body": format!(" {at_limit}\n"), "client_id": "at"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["body"], at_limit.as_str());
    let (status, body) = app
        .post(
            &path,
            &customer,
            Some(&json!({"body": over, "client_id": "over"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"], "validation_failed");
    assert_eq!(
        body["fields"]["body"],
        "Messages are limited to 10 characters"
    );
    assert_eq!(app.message_count().await, 1);

    // The API document states the length this server applies, not the default.
    let (status, doc) = app.get("/api/openapi.json", &Actor::Anonymous).await;
    assert_eq!(status, StatusCode::OK);
    let schema = &doc["components"]["schemas"]["PostMessageRequest"]["properties"]["body"];
    assert!(
        schema["description"]
            .as_str()
            .unwrap()
            .contains("1 to 10 characters"),
        "{schema}"
    );
    let pattern = regex::Regex::new(schema["pattern"].as_str().unwrap()).unwrap();
    assert!(pattern.is_match(&format!(" {at_limit}\n")));
    assert!(!pattern.is_match(&over));
}
