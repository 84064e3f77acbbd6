//! The `wrenchline-server` binary as an administrator uses it.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::helpers::{fresh_database_url, on_postgres};

const BIN: &str = env!("CARGO_BIN_EXE_wrenchline-server");

fn run(args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
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

#[tokio::test]
async fn mechanics_are_added_listed_and_disabled_from_the_command_line() {
    let db = fresh_database_url().await;
    let (ok, out, err) = run(
        &[
            "mechanic",
            "add",
            "--email",
            "Pat@Garage.example",
            "--name",
            "Pat",
            "--password-stdin",
            "--database-url",
            &db,
        ],
        Some("a long enough password\n"),
    );
    assert!(ok, "{err}");
    assert!(out.contains("pat@garage.example"), "{out}");

    let (ok, _, err) = run(
        &[
            "mechanic",
            "add",
            "--email",
            "pat@garage.example",
            "--name",
            "Pat",
            "--password-stdin",
            "--database-url",
            &db,
        ],
        Some("a long enough password\n"),
    );
    assert!(!ok && err.contains("already exists"), "{err}");

    let (ok, _, err) = run(
        &[
            "mechanic",
            "add",
            "--email",
            "short@garage.example",
            "--name",
            "S",
            "--password-stdin",
            "--database-url",
            &db,
        ],
        Some("short\n"),
    );
    assert!(!ok && err.contains("at least 10"), "{err}");

    let (ok, out, _) = run(&["mechanic", "list", "--database-url", &db], None);
    assert!(ok);
    assert!(out.contains("pat@garage.example\tPat\tactive"), "{out}");

    let (ok, _, err) = run(
        &[
            "mechanic",
            "disable",
            "--email",
            "pat@garage.example",
            "--database-url",
            &db,
        ],
        None,
    );
    assert!(ok, "{err}");
    let (_, out, _) = run(&["mechanic", "list", "--database-url", &db], None);
    assert!(out.contains("pat@garage.example\tPat\tdisabled"), "{out}");

    let (ok, _, err) = run(
        &[
            "mechanic",
            "disable",
            "--email",
            "nobody@garage.example",
            "--database-url",
            &db,
        ],
        None,
    );
    assert!(!ok && err.contains("no mechanic"), "{err}");
}

#[tokio::test]
async fn serve_prints_its_address_and_the_demo_credentials_work() {
    let db = fresh_database_url().await;
    let mut child = Command::new(BIN)
        .args(["serve", "--bind", "127.0.0.1:0", "--demo"])
        .env("WRENCHLINE_DATABASE_URL", &db)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let lines = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .take(3)
            .map(|l| l.unwrap())
            .collect::<Vec<_>>()
    });
    let lines = tokio::time::timeout(Duration::from_secs(60), lines)
        .await
        .expect("server starts")
        .unwrap();
    let addr = lines[0]
        .strip_prefix("listening on ")
        .expect(&lines[0])
        .to_string();
    assert!(!addr.ends_with(":0"), "the real port is printed: {addr}");
    assert_eq!(lines[1], format!("customer link: {addr}/intake"));
    let creds = lines[2].strip_prefix("demo mechanic: ").expect(&lines[2]);
    let (email, password) = creds.split_once(" / ").unwrap();

    let http = reqwest::Client::new();
    let login = http
        .post(format!("{addr}/api/auth/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), reqwest::StatusCode::OK);
    let health = http.get(format!("{addr}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), reqwest::StatusCode::OK);

    child.kill().unwrap();
    child.wait().unwrap();
    if !on_postgres() {
        let file = db.strip_prefix("sqlite://").unwrap();
        assert!(
            std::path::Path::new(file).exists(),
            "the SQLite file is created on first start"
        );
    }
}

#[test]
fn bad_flags_are_explained() {
    let (ok, _, err) = run(&["serve", "--bind", "not-an-address"], None);
    assert!(!ok);
    assert!(err.contains("--bind"), "{err}");
}
