//! Abuse limits answer 429 with a reason and a Retry-After, and the refused request changes
//! nothing. Per-address limits apply to the client behind a trusted reverse proxy.

use reqwest::StatusCode;
use serde_json::json;
use wrenchline_server::proxy::TrustedProxies;

use crate::helpers::{
    fresh_database_url, intake_body, spawn_app_with, spawn_server_process, Actor, TestApp, PASSWORD,
};

/// `POST /api/auth/login` as a reverse proxy on 127.0.0.1 sends it for `forwarded_for`.
async fn sign_in_from(
    app: &TestApp,
    forwarded_for: &str,
    email: &str,
    password: &str,
) -> reqwest::Response {
    app.http
        .post(format!("{}/api/auth/login", app.base))
        .header("x-forwarded-for", forwarded_for)
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn guessing_from_elsewhere_does_not_lock_a_mechanic_out() {
    let app = spawn_app_with(|s| {
        s.limits.login_failures_per_account_and_address_per_minute = 3;
        s.trusted_proxies = TrustedProxies::parse("127.0.0.1").unwrap();
    })
    .await;
    let mechanic = app.mechanic("Sam").await;
    let email = app.email_of(&mechanic).await;
    let (guesser, own) = ("198.51.100.7", "203.0.113.5");
    for _ in 0..3 {
        let response = sign_in_from(&app, guesser, &email, "wrong").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let refused = sign_in_from(&app, guesser, &email, PASSWORD).await;
    assert_rate_limited(refused, "failed sign-ins").await;
    // The same account from its own address: signs in, again and again (successes do not count).
    for _ in 0..5 {
        let response = sign_in_from(&app, own, &email, PASSWORD).await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    // A mistyped password from its own address counts there, and a success clears it.
    for _ in 0..2 {
        let response = sign_in_from(&app, own, &email, "typo").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        sign_in_from(&app, own, &email, PASSWORD).await.status(),
        StatusCode::OK
    );
    for _ in 0..2 {
        let response = sign_in_from(&app, own, &email, "typo").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        sign_in_from(&app, own, &email, PASSWORD).await.status(),
        StatusCode::OK
    );
    // The guesser stays refused, for another account too only once it fails there.
    assert_eq!(
        sign_in_from(&app, guesser, &email, "wrong").await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        sign_in_from(&app, guesser, "other@garage.example", "x")
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn an_oversized_email_is_refused_before_any_limit() {
    let app = spawn_app_with(|s| {
        s.limits.login_per_address_per_minute = 1;
        s.limits.login_failures_per_account_and_address_per_minute = 1;
    })
    .await;
    let long = format!(
        "{}@garage.example",
        "a".repeat(255 - "@garage.example".len())
    );
    assert_eq!(long.chars().count(), 255);
    for _ in 0..3 {
        let (status, body) = app
            .post(
                "/api/auth/login",
                &Actor::Anonymous,
                Some(&json!({"email": long, "password": "x"})),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["error"], "validation_failed");
        assert!(body["fields"]["email"].as_str().unwrap().contains("254"));
    }
    // Nothing was counted: this address still has its one attempt.
    let at_limit = &long[1..];
    assert_eq!(at_limit.chars().count(), 254);
    let (status, body) = app
        .post(
            "/api/auth/login",
            &Actor::Anonymous,
            Some(&json!({"email": at_limit, "password": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}

#[tokio::test]
async fn ipv6_clients_are_limited_by_their_64() {
    let app = spawn_app_with(|s| {
        s.limits.intakes_per_address_per_hour = 1;
        s.limits.login_per_address_per_minute = 1;
        s.limits.connections_per_address = 1;
        s.trusted_proxies = TrustedProxies::parse("127.0.0.1").unwrap();
    })
    .await;
    let created = StatusCode::CREATED;
    let limited = StatusCode::TOO_MANY_REQUESTS;
    assert_eq!(
        intake_via_proxy(&app, Some("2001:db8:1:2::1")).await,
        created
    );
    assert_eq!(
        intake_via_proxy(&app, Some("2001:db8:1:2:ffff:ffff:ffff:ffff")).await,
        limited,
        "another address of the same /64"
    );
    assert_eq!(
        intake_via_proxy(&app, Some("2001:db8:1:3::1")).await,
        created
    );

    assert_eq!(
        login_via_proxy(&app, "2001:db8:1:2::1").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(login_via_proxy(&app, "2001:db8:1:2::2").await, limited);
    assert_eq!(
        login_via_proxy(&app, "2001:db8:1:4::2").await,
        StatusCode::UNAUTHORIZED
    );

    let socket = |forwarded_for: &'static str| {
        let url = format!(
            "{}/realtime/v1/websocket?vsn=2.0.0",
            app.base.replace("http://", "ws://")
        );
        async move {
            use tokio_tungstenite::tungstenite::client::IntoClientRequest;
            let mut request = url.into_client_request().unwrap();
            request
                .headers_mut()
                .insert("x-forwarded-for", forwarded_for.parse().unwrap());
            tokio_tungstenite::connect_async(request).await
        }
    };
    let _held = socket("2001:db8:1:2::1").await.expect("the first socket");
    assert!(
        socket("2001:db8:1:2::abcd").await.is_err(),
        "the /64 already holds its one connection"
    );
    assert!(socket("2001:db8:1:3::1").await.is_ok());
}

/// A client with a connection pool of its own, from `local` (127.0.0.2 is loopback too).
fn client_from(local: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(local.parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap()
}

/// `GET /healthz` through `client`: its status, or `None` when the connection was refused.
async fn health(app: &TestApp, client: &reqwest::Client) -> Option<StatusCode> {
    let response = client.get(format!("{}/healthz", app.base)).send().await;
    response.ok().map(|r| r.status())
}

#[tokio::test]
async fn plain_http_connections_are_capped_per_address() {
    let app = spawn_app_with(|s| s.limits.http_connections_per_address = 2).await;
    // Each client keeps its connection open in its pool after the request.
    let first = client_from("127.0.0.1");
    let second = client_from("127.0.0.1");
    assert_eq!(health(&app, &first).await, Some(StatusCode::OK));
    assert_eq!(health(&app, &second).await, Some(StatusCode::OK));
    let third = client_from("127.0.0.1");
    let refused = health(&app, &third).await;
    assert!(
        matches!(refused, None | Some(StatusCode::TOO_MANY_REQUESTS)),
        "a third connection from the same address: {refused:?}"
    );
    assert_eq!(
        health(&app, &client_from("127.0.0.2")).await,
        Some(StatusCode::OK),
        "another address is served"
    );
    // The held connections still work, and closing one frees its place.
    assert_eq!(health(&app, &second).await, Some(StatusCode::OK));
    drop(first);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if health(&app, &client_from("127.0.0.1")).await == Some(StatusCode::OK) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the place was never freed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_trusted_proxys_connections_are_not_capped() {
    let app = spawn_app_with(|s| {
        s.limits.http_connections_per_address = 1;
        s.trusted_proxies = TrustedProxies::parse("127.0.0.1").unwrap();
    })
    .await;
    let clients: Vec<_> = (0..3).map(|_| client_from("127.0.0.1")).collect();
    for client in &clients {
        assert_eq!(
            health(&app, client).await,
            Some(StatusCode::OK),
            "the proxy's connections carry many clients"
        );
    }
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
    // The body as checked when the message has no attachment: the schema's text branch.
    let message = &doc["components"]["schemas"]["PostMessageRequest"]["allOf"][1]["anyOf"][0];
    let schema = &message["properties"]["body"];
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
