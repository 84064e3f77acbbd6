//! Secrets never reach the logs: a full run at the most verbose level, then a scan of everything
//! the server wrote for passwords, tokens, cookies and resume links.

use std::process::{Command, Stdio};
use std::time::Duration;

use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{fresh_database_url, intake_body};

const BIN: &str = env!("CARGO_BIN_EXE_wrenchline-server");

#[tokio::test]
async fn a_full_run_logs_no_secret() {
    let db = fresh_database_url().await;
    let password = "s3cret-horse-battery-staple";
    let mut add = Command::new(BIN)
        .args([
            "mechanic",
            "add",
            "--email",
            "pat@garage.example",
            "--name",
            "Pat",
            "--password-stdin",
            "--database-url",
            &db,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    add.stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    assert!(add.wait().unwrap().success());

    let log = std::env::temp_dir().join(format!("wl-log-{}.txt", uuid::Uuid::new_v4()));
    let mut server = Command::new(BIN)
        .args(["serve", "--bind", "127.0.0.1:0", "--database-url", &db])
        .env("WRENCHLINE_LOG", "trace")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let stdout = server.stdout.take().unwrap();
    let first = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).unwrap();
        line
    })
    .await
    .unwrap();
    let base = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();
    let http = reqwest::Client::new();

    let login: Value = http
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"email": "pat@garage.example", "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let refreshed: Value = http
        .post(format!("{base}/api/auth/refresh"))
        .json(&json!({"refresh_token": login["refresh_token"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let _ = http
        .post(format!("{base}/api/auth/refresh"))
        .json(&json!({"refresh_token": login["refresh_token"]}))
        .send()
        .await;
    let intake = http
        .post(format!("{base}/api/intake"))
        .json(&intake_body())
        .send()
        .await
        .unwrap();
    let cookie = intake.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let body: Value = intake.json().await.unwrap();
    let session = body["session"]["id"].as_str().unwrap().to_string();
    let link: Value = http
        .post(format!("{base}/api/sessions/{session}/resume-link"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let resume_token = link["url"]
        .as_str()
        .unwrap()
        .split("token=")
        .nth(1)
        .unwrap()
        .to_string();
    let _ = http
        .get(format!("{base}{}", link["url"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    let _ = http
        .post(format!("{base}/api/resume"))
        .json(&json!({"token": resume_token}))
        .send()
        .await
        .unwrap();
    let token: Value = http
        .post(format!("{base}/api/auth/token"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = token["access_token"].as_str().unwrap().to_string();
    let ws_url = format!(
        "{}/realtime/v1/websocket?vsn=2.0.0&apikey={access}",
        base.replace("http://", "ws://")
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
    let join = json!(["1", "1", format!("realtime:chat:session-{session}"), "phx_join", {"config": {}, "access_token": access}]);
    ws.send(Message::text(join.to_string())).await.unwrap();
    let bad = json!(["1", "2", format!("realtime:chat:session-{session}"), "access_token", {"access_token": "forged.token.value"}]);
    ws.send(Message::text(bad.to_string())).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.kill().unwrap();
    server.wait().unwrap();

    let written = std::fs::read_to_string(&log).unwrap();
    assert!(
        written.contains("/api/auth/login"),
        "the run was logged at all"
    );
    let cookie_value = cookie.split_once('=').unwrap().1.to_string();
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
