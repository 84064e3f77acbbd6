use reqwest::StatusCode;

use crate::helpers::{
    fresh_database_url, spawn_app, spawn_app_with, spawn_server_process, Actor, Api,
};

#[tokio::test]
async fn health_metrics_and_openapi_are_served() {
    let app = spawn_app().await;
    let (status, health) = app.get("/healthz", &Actor::Anonymous).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health["status"], "ok");

    app.offered_session().await;
    let metrics_base = app.metrics_base.as_ref().expect("a metrics listener");
    let metrics = app
        .http
        .get(format!("{metrics_base}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), StatusCode::OK);
    assert!(metrics.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = metrics.text().await.unwrap();
    assert!(text.contains("wrenchline_http_requests_total{method=\"POST\",route=\"/api/intake\",status=\"201\"} 1"), "{text}");
    assert!(
        text.contains("wrenchline_session_transitions_total{to=\"pending\"} 1"),
        "{text}"
    );
    if cfg!(all(target_os = "linux", target_env = "gnu")) {
        for gauge in [
            "wrenchline_heap_allocated_bytes",
            "wrenchline_heap_resident_bytes",
            "wrenchline_c_malloc_in_use_bytes",
        ] {
            let value: i64 = text
                .lines()
                .find_map(|l| l.strip_prefix(gauge)?.trim().parse().ok())
                .unwrap_or_else(|| panic!("{gauge} missing: {text}"));
            assert!(value > 0, "{gauge} = {value}");
        }
    }

    let (status, doc) = app.get("/api/openapi.json", &Actor::Anonymous).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/api/intake",
        "/api/sessions/{id}/waiver",
        "/api/sessions/{id}",
        "/api/requests",
        "/api/sessions/{id}/accept",
        "/api/sessions/{id}/start",
        "/api/sessions/{id}/end",
        "/api/sessions/{id}/messages",
        "/api/auth/login",
        "/api/auth/refresh",
        "/api/auth/logout",
        "/api/auth/token",
        "/api/sessions/{id}/resume-link",
        "/api/plans",
        "/healthz",
    ] {
        assert!(
            paths.contains_key(path),
            "{path} missing from the OpenAPI document"
        );
    }
    assert!(
        !paths.contains_key("/metrics"),
        "the public listener's document does not offer /metrics"
    );
    assert!(doc["components"]["schemas"]["Session"].is_object());
}

/// What the public listener answers at `/metrics`: a JSON 404, neither Prometheus text nor the
/// customer page.
async fn assert_metrics_not_public(base: &str) {
    let http = reqwest::Client::new();
    for path in ["/metrics", "/metrics?format=prometheus"] {
        let response = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            content_type.starts_with("application/json"),
            "{path}: {content_type}"
        );
        let text = response.text().await.unwrap();
        assert!(!text.contains("wrenchline_"), "{path}: {text}");
        assert!(!text.contains("<html"), "{path}: {text}");
    }
}

#[tokio::test]
async fn metrics_are_not_served_on_the_public_listener() {
    let app = spawn_app().await;
    app.offered_session().await;
    assert_metrics_not_public(&app.base).await;
    // The metrics listener serves metrics and nothing else.
    let metrics_base = app.metrics_base.as_ref().expect("a metrics listener");
    let (status, _) = Api::new(metrics_base.as_str())
        .get("/api/plans", &Actor::Anonymous)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let app = spawn_app_with(|s| s.metrics_bind = None).await;
    assert!(app.metrics_base.is_none());
    assert_metrics_not_public(&app.base).await;
}

/// `serve --metrics-bind` (or `WRENCHLINE_METRICS_BIND`) opens a second listener, says where on
/// stdout and in the log, and serves the metrics there.
#[tokio::test]
async fn serve_metrics_bind_opens_a_metrics_listener() {
    for by_env in [false, true] {
        let db = fresh_database_url().await;
        let log = std::env::temp_dir().join(format!("wl-log-{}.txt", uuid::Uuid::new_v4()));
        let mut server = spawn_server_process(|serve| {
            serve.args(["--bind", "127.0.0.1:0", "--database-url", &db]);
            if by_env {
                serve.env("WRENCHLINE_METRICS_BIND", "127.0.0.1:0");
            } else {
                serve.args(["--metrics-bind", "127.0.0.1:0"]);
            }
            serve.stderr(std::fs::File::create(&log).unwrap());
        })
        .await;
        let line = server.next_line().await;
        let metrics_base = line
            .strip_prefix("metrics on ")
            .unwrap_or_else(|| panic!("expected `metrics on ADDR`, got {line:?}"))
            .to_string();
        assert_ne!(metrics_base, server.base);
        server.api().offered_session().await;
        let text = reqwest::get(format!("{metrics_base}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            text.contains("wrenchline_session_transitions_total{to=\"pending\"} 1"),
            "{text}"
        );
        assert_metrics_not_public(&server.base).await;
        drop(server);
        let written = std::fs::read_to_string(&log).unwrap();
        let _ = std::fs::remove_file(&log);
        assert!(
            written.contains(&format!("metrics on {metrics_base}")),
            "{written}"
        );
    }
}

#[tokio::test]
async fn api_responses_carry_security_headers() {
    let app = spawn_app().await;
    let response = app
        .http
        .get(format!("{}/api/plans", app.base))
        .send()
        .await
        .unwrap();
    let headers = response.headers();
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'none'"));
}

#[tokio::test]
async fn the_suite_runs_on_the_engine_it_was_asked_for() {
    let app = spawn_app().await;
    let expected = if crate::helpers::on_postgres() {
        wrenchline_server::storage::Engine::Postgres
    } else {
        wrenchline_server::storage::Engine::Sqlite
    };
    assert_eq!(app.state.store.engine(), expected);
}

#[tokio::test]
async fn the_web_link_is_served_from_the_binary_with_a_strict_policy() {
    let app = spawn_app().await;
    for path in [
        "/",
        "/intake",
        "/intake/waiver",
        "/thank-you?session=x&plan=trial",
        "/chat/123",
    ] {
        let response = app
            .http
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let csp = response.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        let html = response.text().await.unwrap();
        assert!(
            html.contains("<script type=\"module\""),
            "{path}: the app shell"
        );
        let script = html
            .split("src=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_string();
        let asset = app
            .http
            .get(format!("{}{script}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(asset.status(), StatusCode::OK, "{script}");
        assert!(asset.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("javascript"));
        assert!(asset.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable"));
    }
}

#[tokio::test]
async fn pages_are_compressed_and_missing_assets_are_404() {
    let app = spawn_app().await;
    let response = app
        .http
        .get(format!("{}/intake", app.base))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-encoding"], "gzip");
    let missing = app
        .http
        .get(format!("{}/assets/nope-123.js", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let missing = app
        .http
        .get(format!("{}/favicon-nope.png", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}
