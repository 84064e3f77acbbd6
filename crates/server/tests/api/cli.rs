//! The `wrenchline-server` binary as an administrator uses it: mechanic accounts, the database
//! each command acts on, the service's environment file, the logs, start-up errors.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    add_mechanic, fresh_database_url, on_postgres, run_server_command as run, spawn_server_process,
    SERVER_BIN,
};

/// `wrenchline-server ARGS` with `stdin` and extra environment variables, in a clean
/// environment as `sudo` leaves it (no `WRENCHLINE_*` from the test's own).
fn admin(args: &[&str], stdin: &str, env: &[(&str, &str)]) -> (bool, String, String) {
    let mut command = Command::new(SERVER_BIN);
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("wrenchline-server runs");
    // A command that refuses before reading its input (a missing database) closes the pipe
    // first; its answer is what the test checks, so a broken pipe here is no failure.
    match child.stdin.take().unwrap().write_all(stdin.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => panic!("writing stdin: {e}"),
        _ => {}
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// The database as the CLI names it: the SQLite file's absolute path, a URL without password.
fn shown(db: &str) -> String {
    wrenchline_server::storage::describe_database_url(db)
}

/// A database URL carrying a password (accepted by the test cluster, which trusts loopback);
/// on SQLite the URL itself.
fn with_password(db: &str) -> String {
    if on_postgres() {
        db.replacen(
            "postgres://postgres@",
            "postgres://postgres:hunter2-secret@",
            1,
        )
    } else {
        db.to_string()
    }
}

async fn login(base: &str, email: &str, password: &str) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

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
    for days in ["-1", "36501", "a year"] {
        let flag = format!("--retention-days={days}");
        let (ok, _, err) = run(&["serve", &flag], None);
        assert!(!ok && err.contains("--retention-days"), "{days}: {err}");
    }
}

#[tokio::test]
async fn admin_commands_name_their_database_and_never_create_one_unasked() {
    let db = with_password(&fresh_database_url().await);
    let pw = "a long enough password\n";

    for args in [
        vec!["mechanic", "list"],
        vec!["mechanic", "disable", "--email", "pat@garage.example"],
        vec!["mechanic", "enable", "--email", "pat@garage.example"],
        vec![
            "mechanic",
            "add",
            "--email",
            "pat@garage.example",
            "--name",
            "Pat",
            "--password-stdin",
        ],
        vec![
            "mechanic",
            "reset-password",
            "--email",
            "pat@garage.example",
            "--password-stdin",
        ],
    ] {
        let mut args = args.clone();
        args.extend(["--database-url", &db]);
        let (ok, out, err) = admin(&args, pw, &[]);
        assert!(
            !ok,
            "{args:?} acted on a database that does not exist: {out}"
        );
        assert!(
            err.contains(&format!("database: {}", shown(&db)))
                && err.contains("no Wrenchline database")
                && err.contains("--create-database"),
            "{args:?}: {err}"
        );
        assert!(
            !err.contains("hunter2-secret"),
            "the password is shown: {err}"
        );
    }
    if let Some(file) = db.strip_prefix("sqlite://") {
        assert!(
            !std::path::Path::new(file).exists(),
            "no stray SQLite file was created"
        );
        assert!(shown(&db).starts_with("sqlite:///"), "an absolute path");
    }

    // First setup: the flag creates it, and the command says where.
    let (ok, out, err) = admin(
        &[
            "mechanic",
            "add",
            "--email",
            "pat@garage.example",
            "--name",
            "Pat",
            "--password-stdin",
            "--create-database",
            "--database-url",
            &db,
        ],
        pw,
        &[],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("added mechanic Pat <pat@garage.example>"),
        "{out}"
    );
    assert!(
        out.trim_end().ends_with(&format!(" to {}", shown(&db))),
        "{out}"
    );
    assert!(err.contains(&format!("database: {}", shown(&db))), "{err}");
    assert!(!format!("{out}{err}").contains("hunter2-secret"));
    let (ok, out, err) = admin(&["mechanic", "list", "--database-url", &db], "", &[]);
    assert!(ok, "{err}");
    assert!(
        out.starts_with("pat@garage.example\tPat\tactive\t"),
        "stdout stays parseable: {out}"
    );
}

#[tokio::test]
async fn the_service_environment_file_names_the_database_under_sudo() {
    let db = fresh_database_url().await;
    let dir = std::env::temp_dir().join(format!("wl-env-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let env_file = dir.join("wrenchline-server.env");
    // As deploy/wrenchline-server.env is written: comments, blank lines, other settings.
    std::fs::write(
        &env_file,
        format!(
            "# the service's settings\nWRENCHLINE_BIND=127.0.0.1:8080\n\n\
             WRENCHLINE_DATABASE_URL={db}\n#WRENCHLINE_TOKEN_SECRET=\nWRENCHLINE_LOG=info,sqlx=warn\n"
        ),
    )
    .unwrap();
    let env_path = env_file.to_str().unwrap();
    // A first start of the service creates the database.
    let (ok, _, err) = admin(
        &[
            "mechanic",
            "list",
            "--create-database",
            "--env-file",
            env_path,
        ],
        "",
        &[],
    );
    assert!(ok, "{err}");

    // sudo drops WRENCHLINE_*; a variable left over in the shell names another database: the
    // file wins over both, so the mechanic lands where the service looks.
    let stray = format!("sqlite://{}", dir.join("stray.db").display());
    let (ok, out, err) = admin(
        &[
            "mechanic",
            "add",
            "--env-file",
            env_path,
            "--email",
            "sam@garage.example",
            "--name",
            "Sam",
            "--password-stdin",
        ],
        "a long enough password\n",
        &[("WRENCHLINE_DATABASE_URL", &stray)],
    );
    assert!(ok, "{err}");
    assert!(out.contains("sam@garage.example"), "{out}");
    assert!(err.contains(&format!("database: {}", shown(&db))), "{err}");
    assert!(
        !dir.join("stray.db").exists(),
        "nothing was written to {stray}"
    );

    let (_, out, _) = admin(&["mechanic", "list", "--env-file", env_path], "", &[]);
    assert!(out.contains("sam@garage.example\tSam\tactive"), "{out}");
    // A flag still wins over the file.
    let (ok, _, err) = admin(
        &[
            "mechanic",
            "list",
            "--env-file",
            env_path,
            "--database-url",
            &stray,
        ],
        "",
        &[],
    );
    assert!(!ok && err.contains("no Wrenchline database"), "{err}");

    let missing = dir.join("missing.env");
    let (ok, _, err) = admin(
        &["mechanic", "list", "--env-file", missing.to_str().unwrap()],
        "",
        &[],
    );
    assert!(!ok && err.contains("missing.env"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn mechanics_are_enabled_again_and_get_new_passwords() {
    let db = fresh_database_url().await;
    let email = "kim@garage.example";
    let (ok, _, err) = add_mechanic(&db, email, "Kim", "first password 1");
    assert!(ok, "{err}");
    let server = spawn_server_process(|serve| {
        serve.args(["--bind", "127.0.0.1:0", "--database-url", &db]);
    })
    .await;
    let base = server.base.clone();
    let (status, first) = login(&base, email, "first password 1").await;
    assert_eq!(status, StatusCode::OK);

    let db_args = ["--database-url", db.as_str()];
    let cmd = |verb: &'static str| {
        let mut args = vec!["mechanic", verb, "--email", email];
        args.extend(db_args);
        args
    };
    let (ok, _, err) = admin(&cmd("disable"), "", &[]);
    assert!(ok, "{err}");
    assert_eq!(
        login(&base, email, "first password 1").await.0,
        StatusCode::UNAUTHORIZED
    );
    let (ok, out, err) = admin(&cmd("enable"), "", &[]);
    assert!(ok, "{err}");
    assert!(out.contains("enabled kim@garage.example"), "{out}");
    assert_eq!(
        login(&base, email, "first password 1").await.0,
        StatusCode::OK
    );
    let (ok, _, err) = admin(
        &[
            "mechanic",
            "enable",
            "--email",
            "nobody@garage.example",
            "--database-url",
            &db,
        ],
        "",
        &[],
    );
    assert!(!ok && err.contains("no mechanic"), "{err}");

    // reset-password: the rules hold, then the old password and every sign-in stop working.
    let mut reset = cmd("reset-password");
    reset.push("--password-stdin");
    for (bad, why) in [
        ("short\n", "at least 10"),
        ("\n", "at least 10"),
        (&*format!("{}\n", "x".repeat(257)), "at most 256"),
        ("tab\tinside password\n", "control characters"),
    ] {
        let (ok, _, err) = admin(&reset, bad, &[]);
        assert!(!ok && err.contains(why), "{bad:?}: {err}");
    }
    assert_eq!(
        login(&base, email, "first password 1").await.0,
        StatusCode::OK
    );
    let (ok, out, err) = admin(&reset, "second password 2\n", &[]);
    assert!(ok, "{err}");
    assert!(
        out.contains("new password set for kim@garage.example"),
        "{out}"
    );
    assert_eq!(
        login(&base, email, "first password 1").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login(&base, email, "second password 2").await.0,
        StatusCode::OK
    );
    let refreshed = reqwest::Client::new()
        .post(format!("{base}/api/auth/refresh"))
        .json(&json!({"refresh_token": first["refresh_token"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        refreshed.status(),
        StatusCode::UNAUTHORIZED,
        "old sign-ins are revoked"
    );
}

#[test]
fn help_states_the_password_rules() {
    for verb in ["add", "reset-password"] {
        let (ok, out, _) = run(&["mechanic", verb, "--help"], None);
        assert!(ok);
        assert!(out.contains("10 to 256 characters"), "{verb}: {out}");
        assert!(out.contains("--env-file"), "{verb}: {out}");
    }
    let (_, out, _) = run(&["mechanic", "--help"], None);
    for verb in ["add", "list", "disable", "enable", "reset-password"] {
        assert!(out.contains(verb), "{out}");
    }
}

/// Starts `serve` with `extra` flags, its stderr in a file (not a terminal, as under systemd),
/// sends `GET /healthz?token=…` and returns the server's log once it stopped.
async fn log_of_one_request(extra: &[&str]) -> String {
    let db = fresh_database_url().await;
    let log = std::env::temp_dir().join(format!("wl-log-{}.txt", uuid::Uuid::new_v4()));
    let mut server = spawn_server_process(|serve| {
        serve
            .args(["--bind", "127.0.0.1:0", "--database-url", &db])
            .args(extra)
            .env("WRENCHLINE_LOG", "info,sqlx=warn")
            .stderr(std::fs::File::create(&log).unwrap());
    })
    .await;
    let status = reqwest::get(format!("{}/healthz?token=query-secret", server.base))
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.kill();
    let text = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    text
}

#[tokio::test]
async fn each_request_is_one_plain_log_line_without_its_query() {
    let log = log_of_one_request(&[]).await;
    assert!(
        !log.contains('\u{1b}'),
        "no colour codes when stderr is not a terminal: {log}"
    );
    assert!(
        !log.contains("query-secret"),
        "the query string is not logged: {log}"
    );
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("/healthz") && l.contains("status="))
        .collect();
    assert_eq!(lines.len(), 1, "one line for the request: {log}");
    let line = lines[0];
    for part in [
        " INFO ",
        "method=GET",
        "path=/healthz",
        "client=127.0.0.1",
        "status=200",
        "latency=",
    ] {
        assert!(line.contains(part), "{part} in {line}");
    }
}

#[tokio::test]
async fn json_logs_are_one_object_a_line() {
    let log = log_of_one_request(&["--log-format", "json"]).await;
    let events: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(!events.is_empty());
    let request = events
        .iter()
        .find(|e| e["span"]["path"] == "/healthz" && e.get("status").is_some())
        .unwrap_or_else(|| panic!("a request event: {log}"));
    assert_eq!(request["level"], "INFO");
    assert_eq!(request["span"]["method"], "GET");
    assert_eq!(request["span"]["client"], "127.0.0.1");
    assert_eq!(request["status"], 200);
    assert!(request.get("latency").is_some(), "{request}");
    assert!(!log.contains("query-secret"));
}

#[test]
fn an_unreachable_database_is_named_at_start() {
    // A loopback port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://wrenchline:pw-not-shown@127.0.0.1:{port}/wrenchline");
    let started = Instant::now();
    let mut child = Command::new(SERVER_BIN)
        .args(["serve", "--bind", "127.0.0.1:0", "--database-url", &url])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err: Vec<String> = BufReader::new(child.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .collect();
    let status = child.wait().unwrap();
    let err = err.join("\n");
    assert!(!status.success());
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "it fails at once"
    );
    assert!(
        err.contains(&format!(
            "cannot connect to the database at 127.0.0.1:{port}"
        )) && err.contains("database wrenchline, user wrenchline")
            && err.contains("Connection refused"),
        "{err}"
    );
    assert!(!err.contains("pw-not-shown"), "{err}");
}

#[tokio::test]
async fn a_new_token_secret_signs_tokens_out_and_refresh_tokens_sign_back_in() {
    let db = fresh_database_url().await;
    let (email, password) = ("lee@garage.example", "rotation password 1");
    let (ok, _, err) = add_mechanic(&db, email, "Lee", password);
    assert!(ok, "{err}");
    let start = || {
        spawn_server_process(|serve| {
            serve.args(["--bind", "127.0.0.1:0", "--database-url", &db]);
        })
    };
    let mut server = start().await;
    let (status, tokens) = login(&server.base, email, password).await;
    assert_eq!(status, StatusCode::OK);
    server.kill();

    // docs/deploy.md, "Token-signing secret": delete the stored one, restart.
    let store = wrenchline_server::storage::Store::connect(&db)
        .await
        .unwrap();
    sqlx::query("DELETE FROM server_secrets WHERE name = 'token_hs256'")
        .execute(store.pool())
        .await
        .unwrap();
    store.close().await;
    let server = start().await;
    let http = reqwest::Client::new();
    let requests = |token: String| {
        http.get(format!("{}/api/requests", server.base))
            .bearer_auth(token)
            .send()
    };
    let old = tokens["access_token"].as_str().unwrap().to_string();
    assert_eq!(
        requests(old).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let refreshed = http
        .post(format!("{}/api/auth/refresh", server.base))
        .json(&json!({"refresh_token": tokens["refresh_token"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), StatusCode::OK);
    let body: Value = refreshed.json().await.unwrap();
    let new = body["access_token"].as_str().unwrap().to_string();
    assert_eq!(requests(new).await.unwrap().status(), StatusCode::OK);
}
