//! Secrets never reach the logs: a full run at the most verbose level, then a scan of everything
//! the server wrote for passwords, tokens, cookies and resume links.

use std::time::Duration;

use futures_util::SinkExt;
use reqwest::StatusCode;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{add_mechanic, fresh_database_url, spawn_server_process, Actor};

#[tokio::test]
async fn a_full_run_logs_no_secret() {
    let db = fresh_database_url().await;
    let password = "s3cret-horse-battery-staple";
    let (added, _, err) = add_mechanic(&db, "pat@garage.example", "Pat", password);
    assert!(added, "{err}");

    let log = std::env::temp_dir().join(format!("wl-log-{}.txt", uuid::Uuid::new_v4()));
    let mut server = spawn_server_process(|serve| {
        serve
            .args(["--bind", "127.0.0.1:0", "--database-url", &db])
            .env("WRENCHLINE_LOG", "trace")
            .stderr(std::fs::File::create(&log).unwrap());
    })
    .await;
    let api = server.api();
    let anonymous = &Actor::Anonymous;

    let (status, login) = api
        .post(
            "/api/auth/login",
            anonymous,
            Some(&json!({"email": "pat@garage.example", "password": password})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{login}");
    let refresh = json!({"refresh_token": login["refresh_token"]});
    let (_, refreshed) = api
        .post("/api/auth/refresh", anonymous, Some(&refresh))
        .await;
    // Replayed: refused, and the refusal is logged too.
    let _ = api
        .post("/api/auth/refresh", anonymous, Some(&refresh))
        .await;
    let (customer, session) = api.customer_with_session().await;
    let (_, link) = api
        .post(
            &format!("/api/sessions/{session}/resume-link"),
            &customer,
            None,
        )
        .await;
    let resume_url = link["url"].as_str().unwrap();
    let resume_token = resume_url.split("token=").nth(1).unwrap().to_string();
    let _ = api.get(resume_url, anonymous).await;
    let _ = api
        .post(
            "/api/resume",
            anonymous,
            Some(&json!({"token": resume_token})),
        )
        .await;
    let (_, token) = api.post("/api/auth/token", &customer, None).await;
    let access = token["access_token"].as_str().unwrap().to_string();
    let ws_url = format!(
        "{}/realtime/v1/websocket?vsn=2.0.0&apikey={access}",
        api.base.replace("http://", "ws://")
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
    let join = json!(["1", "1", format!("realtime:chat:session-{session}"), "phx_join", {"config": {}, "access_token": access}]);
    ws.send(Message::text(join.to_string())).await.unwrap();
    let bad = json!(["1", "2", format!("realtime:chat:session-{session}"), "access_token", {"access_token": "forged.token.value"}]);
    ws.send(Message::text(bad.to_string())).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.kill();

    let written = std::fs::read_to_string(&log).unwrap();
    assert!(
        written.contains("/api/auth/login"),
        "the run was logged at all"
    );
    let Actor::Customer {
        cookie: cookie_value,
        ..
    } = customer
    else {
        unreachable!("a customer has an identity cookie")
    };
    let secrets = [
        ("password", password.to_string()),
        (
            "refresh token",
            login["refresh_token"].as_str().unwrap().to_string(),
        ),
        (
            "rotated refresh token",
            refreshed["refresh_token"].as_str().unwrap().to_string(),
        ),
        (
            "mechanic access token",
            login["access_token"].as_str().unwrap().to_string(),
        ),
        ("customer access token", access),
        ("identity cookie", cookie_value),
        ("resume token", resume_token),
    ];
    for (what, secret) in secrets {
        // A token's signature alone is enough to matter; look for it rather than the whole token.
        let tail = &secret[secret.len().saturating_sub(24)..];
        assert!(!written.contains(tail), "the {what} appears in the log");
    }
    let _ = std::fs::remove_file(&log);
}
