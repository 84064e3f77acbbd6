//! The `wrenchline-server` binary as an administrator uses it.

use serde_json::json;

use crate::helpers::{
    add_mechanic, fresh_database_url, on_postgres, run_server_command as run, spawn_server_process,
};

#[tokio::test]
async fn mechanics_are_added_listed_and_disabled_from_the_command_line() {
    let db = fresh_database_url().await;
    let (ok, out, err) = add_mechanic(&db, "Pat@Garage.example", "Pat", "a long enough password");
    assert!(ok, "{err}");
    assert!(out.contains("pat@garage.example"), "{out}");

    let (ok, _, err) = add_mechanic(&db, "pat@garage.example", "Pat", "a long enough password");
    assert!(!ok && err.contains("already exists"), "{err}");

    let (ok, _, err) = add_mechanic(&db, "short@garage.example", "S", "short");
    assert!(!ok && err.contains("at least 10"), "{err}");

    // An argument cannot carry U+0000; the other control characters can, and are refused alike.
    for name in ["Pat \u{1b}[31mRed", "Pat\nSmith", "Pat\tSmith"] {
        let (ok, _, err) = add_mechanic(&db, "esc@garage.example", name, "a long enough password");
        assert!(!ok && err.contains("control characters"), "{name:?}: {err}");
    }
    let (ok, _, err) = add_mechanic(
        &db,
        "esc\u{7}@garage.example",
        "Pat",
        "a long enough password",
    );
    assert!(!ok && err.contains("not an email address"), "{err}");

    let (ok, out, _) = run(&["mechanic", "list", "--database-url", &db], None);
    assert!(ok);
    assert!(out.contains("pat@garage.example\tPat\tactive"), "{out}");
    assert!(
        !out.contains("esc"),
        "refused mechanics are not stored: {out}"
    );

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
    let mut server = spawn_server_process(|serve| {
        serve
            .args(["--bind", "127.0.0.1:0", "--demo"])
            .env("WRENCHLINE_DATABASE_URL", &db);
    })
    .await;
    let addr = server.base.clone();
    assert!(!addr.ends_with(":0"), "the real port is printed: {addr}");
    assert_eq!(
        server.next_line().await,
        format!("customer link: {addr}/intake")
    );
    let line = server.next_line().await;
    let creds = line.strip_prefix("demo mechanic: ").expect(&line);
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

    server.kill();
    if !on_postgres() {
        let file = db.strip_prefix("sqlite://").unwrap();
        assert!(
            std::path::Path::new(file).exists(),
            "the SQLite file is created on first start"
        );
    }
}

#[tokio::test]
async fn serve_writes_its_address_to_the_ready_file() {
    let db = fresh_database_url().await;
    let dir = std::env::temp_dir().join(format!("wl-ready-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let ready = dir.join("ready.json");
    let server = spawn_server_process(|serve| {
        serve
            .args(["--bind", "127.0.0.1:0"])
            .env("WRENCHLINE_READY_FILE", &ready)
            .env("WRENCHLINE_DATABASE_URL", &db);
    })
    .await;
    // The file is complete once it exists (written aside and renamed), and names the address
    // of the `listening on` line, which stays as it was.
    let mut waited = 0;
    while !ready.exists() && waited < 100 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        waited += 1;
    }
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&ready).unwrap()).unwrap();
    assert_eq!(written, json!({ "http": server.base }));
    let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temporary file is left beside it");
    let health = reqwest::get(format!("{}/healthz", server.base))
        .await
        .unwrap();
    assert_eq!(health.status(), reqwest::StatusCode::OK);
    drop(server);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_flags_are_explained() {
    let (ok, _, err) = run(&["serve", "--bind", "not-an-address"], None);
    assert!(!ok);
    assert!(err.contains("--bind"), "{err}");
    let (ok, _, err) = run(
        &["serve", "--trusted-proxies", "10.0.0.0/8,proxy.internal"],
        None,
    );
    assert!(!ok);
    assert!(
        err.contains("--trusted-proxies") && err.contains("proxy.internal"),
        "{err}"
    );
}
