//! Mail against a real SMTP server (aiosmtpd, see `smtp.rs`): every mail of a session received
//! once, by the customer, with a link that opens that session only and works once; an SMTP
//! outage during a waiver; the rule that mails an absent customer once per quiet period; and a
//! server restarted (a real process) with mail still queued.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use time::OffsetDateTime;
use uuid::Uuid;
use wrenchline_server::mail::{Mail, MailKind, MailSettings};
use wrenchline_server::storage::Store;
use wrenchline_server::Settings;

use crate::helpers::{
    fresh_database_url, on_postgres, spawn_app_on, spawn_app_with, spawn_server_process, Actor,
    Api, TestApp,
};
use crate::realtime::{config, presence_topic, token, track, Client};
use crate::smtp::{free_port, Received, SmtpServer};

const FROM: &str = "Wrenchline <help@example.com>";
const PUBLIC_URL: &str = "https://help.example.com";
const WITHIN: Duration = Duration::from_secs(15);

fn with_mail(smtp: &SmtpServer, settings: &mut Settings) {
    let mut mail = MailSettings::parse(&smtp.url(), FROM).unwrap();
    mail.unread_after = time::Duration::seconds(1);
    mail.quiet_period = time::Duration::seconds(4);
    mail.retry_max = time::Duration::seconds(2);
    settings.mail = Some(mail);
    settings.public_url = Some(PUBLIC_URL.into());
}

async fn mail_app(smtp: &SmtpServer) -> TestApp {
    spawn_app_with(|s| with_mail(smtp, s)).await
}

/// Uses a mail's link in a new browser: its identity cookie and the answer.
async fn open_link(api: &Api, mail: &Received) -> (StatusCode, Option<Actor>, Value) {
    let token = mail.token(&format!("{PUBLIC_URL}/resume#token="));
    let response = api
        .send(
            Method::POST,
            "/api/resume",
            &Actor::Anonymous,
            Some(&json!({ "token": token })),
        )
        .await;
    let status = response.status();
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("wl_customer="))
        .map(|v| v.split(';').next().unwrap().to_string());
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let actor = cookie.map(|cookie| Actor::Customer {
        cookie,
        id: body["user"]["id"]
            .as_str()
            .unwrap_or_default()
            .parse()
            .unwrap_or_default(),
    });
    (status, actor, body)
}

/// The mail's link opens `session`, only it, and only once.
async fn assert_link_opens(app: &TestApp, mail: &Received, session: Uuid, other: Uuid) {
    assert!(mail
        .link(&format!("{PUBLIC_URL}/resume"))
        .starts_with(&format!("{PUBLIC_URL}/resume#token=")));
    let (status, browser, body) = open_link(app, mail).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["session"]["id"], session.to_string());
    assert_eq!(body["next"], format!("/chat/{session}"));
    let browser = browser.expect("an identity cookie");
    let (status, _) = app.get(&format!("/api/sessions/{session}"), &browser).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.get(&format!("/api/sessions/{other}"), &browser).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the link reaches its session only"
    );
    let (again, _, body) = open_link(app, mail).await;
    assert_eq!(again, StatusCode::GONE, "a second use is refused: {body}");
    assert_eq!(body["error"], "resume_link_used");
}

fn assert_well_formed(mail: &Received, email: &str) {
    assert_eq!(mail.to, email);
    assert!(mail.from.contains("help@example.com"), "{}", mail.from);
    assert!(
        mail.content_type.starts_with("multipart/alternative"),
        "{}",
        mail.content_type
    );
    assert!(mail
        .html
        .contains("<a href=\"https://help.example.com/resume#token="));
}

async fn sign_waiver(app: &TestApp, customer: &Actor, session: Uuid) {
    let (status, body) = app
        .post(
            &format!("/api/sessions/{session}/waiver"),
            customer,
            Some(&json!({"signed_name": "Dana Driver", "agree": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn post(app: &TestApp, actor: &Actor, session: Uuid, body: &str) {
    let (status, answer) = app
        .post(
            &format!("/api/sessions/{session}/messages"),
            actor,
            Some(&json!({"body": body, "client_id": Uuid::new_v4().to_string()})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
}

fn count(mails: &[Received], subject: &str) -> usize {
    mails.iter().filter(|m| m.subject.contains(subject)).count()
}

fn metric(app: &TestApp, name: &str) -> u64 {
    let text = app.state.metrics.render();
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("wrenchline_{name}_total ")))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

#[tokio::test]
async fn every_mail_of_a_session_arrives_once_with_a_link_to_it() {
    let smtp = SmtpServer::start().await;
    let app = mail_app(&smtp).await;
    let (customer, session) = app.customer_with_session().await;
    let (_, other) = app.customer_with_session().await;
    let email = app.email_of(&customer).await;
    // A second session of the same customer, which a mail link must not reach.
    let (status, body) = app
        .post(
            "/api/intake",
            &customer,
            Some(&crate::helpers::intake_body()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let own_other: Uuid = body["session"]["id"].as_str().unwrap().parse().unwrap();
    assert!(
        smtp.received().is_empty(),
        "nothing is mailed before the waiver"
    );

    sign_waiver(&app, &customer, session).await;
    let received = smtp
        .wait_for_subject("We received your request", WITHIN)
        .await;
    assert_well_formed(&received, &email);
    assert!(received.subject.contains("2018 Honda Civic"));
    assert!(received.text.contains("Grinding noise from the front"));
    assert!(received.text.contains("Standard"));
    assert_link_opens(&app, &received, session, own_other).await;

    let mechanic = app.mechanic("Sam").await;
    let (status, _) = app
        .post(&format!("/api/sessions/{session}/accept"), &mechanic, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let accepted = smtp
        .wait_for_subject("Sam accepted your request", WITHIN)
        .await;
    assert_well_formed(&accepted, &email);
    assert!(accepted.text.contains("Join now"));
    assert_link_opens(&app, &accepted, session, other).await;

    app.state
        .store
        .start(session, OffsetDateTime::now_utc())
        .await
        .unwrap();
    post(&app, &customer, session, "It <b>grinds</b> & squeals").await;
    // The mechanic's summary goes into the mail; the private notes never do.
    for (path, body) in [
        (
            "summary",
            json!({"found": "Front pads worn to the backing plate", "next_steps": "Replace pads and rotors", "urgency": "urgent"}),
        ),
        ("notes", json!({"body": "ask about invoice 4471"})),
    ] {
        let (status, answer) = app
            .request(
                Method::PUT,
                &format!("/api/sessions/{session}/{path}"),
                &mechanic,
                Some(&body),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    let (status, _) = app
        .post(&format!("/api/sessions/{session}/end"), &customer, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let ended = smtp.wait_for_subject("has ended", WITHIN).await;
    assert_well_formed(&ended, &email);
    for part in [&ended.text, &ended.html] {
        assert!(
            part.contains("Front pads worn to the backing plate"),
            "{part}"
        );
        assert!(part.contains("Replace pads and rotors"), "{part}");
        assert!(!part.contains("invoice 4471"), "no private notes: {part}");
    }
    assert!(
        ended.text.contains("It <b>grinds</b> & squeals"),
        "{}",
        ended.text
    );
    assert!(ended
        .html
        .contains("It &lt;b&gt;grinds&lt;/b&gt; &amp; squeals"));
    assert!(ended.text.contains("Rate your session"));
    assert_link_opens(&app, &ended, session, own_other).await;

    // Nothing arrives twice.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let all = smtp.received();
    assert_eq!(
        all.len(),
        3,
        "{:?}",
        all.iter().map(|m| &m.subject).collect::<Vec<_>>()
    );
    assert_eq!(metric(&app, "mail_queued"), 3);
    assert_eq!(metric(&app, "mail_sent"), 3);
    assert_eq!(metric(&app, "mail_failed"), 0);
    let (_, config) = app.get("/api/config", &Actor::Anonymous).await;
    assert_eq!(config, json!({"mail": true}));
}

#[tokio::test]
async fn requests_nobody_accepts_and_cancelled_ones_are_mailed() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app_with(|s| {
        with_mail(&smtp, s);
        s.request_accept_timeout = time::Duration::seconds(1);
    })
    .await;
    let (customer, session) = app.offered_session().await;
    let email = app.email_of(&customer).await;
    let (_, other) = app.customer_with_session().await;
    let lapsed = smtp.wait_for_subject("No mechanic was free", WITHIN).await;
    assert_well_formed(&lapsed, &email);
    assert!(
        lapsed.text.contains(&format!("{PUBLIC_URL}/ ")),
        "{}",
        lapsed.text
    );
    assert_link_opens(&app, &lapsed, session, other).await;

    // A mechanic who accepted and then ends it before it went live: the request is cancelled.
    let app2 = mail_app(&smtp).await;
    let (_customer, mechanic, session) = app2.waiting_session().await;
    let (status, _) = app2
        .post(&format!("/api/sessions/{session}/end"), &mechanic, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let cancelled = smtp.wait_for_subject("was cancelled", WITHIN).await;
    assert!(cancelled
        .text
        .contains("The mechanic could not take your request"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let all = smtp.received();
    assert_eq!(count(&all, "No mechanic was free"), 1);
    assert_eq!(count(&all, "was cancelled"), 1);
}

#[tokio::test]
async fn a_waiver_signed_while_smtp_is_down_is_mailed_once_when_it_returns() {
    let mut smtp = SmtpServer::stopped(free_port());
    let app = mail_app(&smtp).await;
    let (customer, session) = app.offered_session().await;
    // Attempts fail while the SMTP server is away; the mail stays queued.
    let deadline = tokio::time::Instant::now() + WITHIN;
    while metric(&app, "mail_retried") < 1 {
        assert!(tokio::time::Instant::now() < deadline, "no retry was made");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        app.state.store.session_mail(session).await.unwrap(),
        [("request_received".to_string(), false)]
    );
    smtp.resume().await;
    let mail = smtp
        .wait_for_subject("We received your request", WITHIN)
        .await;
    assert_eq!(mail.to, app.email_of(&customer).await);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(smtp.received().len(), 1);
    assert_eq!(
        app.state.store.session_mail(session).await.unwrap(),
        [("request_received".to_string(), true)]
    );
    assert_eq!(metric(&app, "mail_sent"), 1);
}

#[tokio::test]
async fn an_absent_customer_is_mailed_once_per_quiet_period() {
    let smtp = SmtpServer::start().await;
    let app = mail_app(&smtp).await;
    let (customer, mechanic, session) = app.waiting_session().await;
    smtp.wait_for(2, WITHIN).await;
    let subject = "Sam sent you a message";

    // Three messages while the customer is away: one mail, a second after `unread_after`.
    let sent = tokio::time::Instant::now();
    for text in ["Are you there?", "Check the pads", "And the rotors"] {
        post(&app, &mechanic, session, text).await;
    }
    let unread = smtp.wait_for_subject(subject, WITHIN).await;
    assert!(
        sent.elapsed() >= Duration::from_secs(1),
        "mailed before unread_after"
    );
    assert_eq!(unread.to, app.email_of(&customer).await);
    assert_link_opens(&app, &unread, session, Uuid::new_v4()).await;

    // More messages within the quiet period (4 s): no more mail in it.
    post(&app, &mechanic, session, "Still there?").await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(count(&smtp.received(), subject), 1);
    // Once it is over, the message still unread brings one more.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mails = smtp.received();
    assert_eq!(count(&mails, subject), 2);

    // The customer reads the chat before `unread_after`: no mail (after this quiet period).
    tokio::time::sleep(Duration::from_secs(4)).await;
    post(&app, &mechanic, session, "Are the pads worn?").await;
    let (status, _) = app
        .get(&format!("/api/sessions/{session}/messages"), &customer)
        .await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(count(&smtp.received(), subject), 2);

    // The customer is in the chat (present on its channel): no mail.
    let mut chat = Client::connect(&app).await;
    let topic = presence_topic(session);
    let joined = chat
        .join(&topic, &token(&app, &customer).await, config(json!([])))
        .await;
    assert_eq!(joined[4]["status"], "ok", "{joined}");
    let join_ref = joined[0].as_str().unwrap().to_string();
    assert_eq!(
        track(&mut chat, &topic, &join_ref, &customer, "customer").await[4]["status"],
        "ok"
    );
    post(&app, &mechanic, session, "I see you").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(count(&smtp.received(), subject), 2);
    // Customers' own messages never mail them.
    post(&app, &customer, session, "Here now").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(count(&smtp.received(), subject), 2);
}

#[tokio::test]
async fn without_smtp_nothing_is_queued_and_no_page_promises_mail() {
    let app = crate::helpers::spawn_app().await;
    let (_, config) = app.get("/api/config", &Actor::Anonymous).await;
    assert_eq!(config, json!({"mail": false}));
    let (_, _, session) = app.waiting_session().await;
    assert!(app
        .state
        .store
        .session_mail(session)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn mail_queued_when_the_server_stops_is_sent_once_after_a_restart() {
    let mut smtp = SmtpServer::stopped(free_port());
    let database_url = fresh_database_url().await;
    let start = |database_url: String, smtp_url: String| {
        spawn_server_process(move |command| {
            command
                .args(["--bind", "127.0.0.1:0", "--database-url", &database_url])
                .args(["--smtp-url", &smtp_url, "--mail-from", FROM])
                .args(["--public-url", PUBLIC_URL]);
        })
    };
    let mut server = start(database_url.clone(), smtp.url()).await;
    let api = server.api();
    let (customer, session) = api.offered_session().await;
    // The mail is queued and its first attempts fail; then the server is killed.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill();
    smtp.resume().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        smtp.received().is_empty(),
        "nothing was sent while the server was down"
    );

    let server = start(database_url.clone(), smtp.url()).await;
    let mail = smtp
        .wait_for_subject("We received your request", Duration::from_secs(30))
        .await;
    let token = mail.token(&format!("{PUBLIC_URL}/resume#token="));
    let (status, body) = server
        .api()
        .post(
            "/api/resume",
            &Actor::Anonymous,
            Some(&json!({ "token": token })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["session"]["id"], session.to_string());
    assert_eq!(body["user"]["id"], customer.id().unwrap().to_string());
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(smtp.received().len(), 1);
}

#[tokio::test]
async fn smtp_settings_are_checked_at_start() {
    for (args, wanted) in [
        (
            vec![
                "--smtp-url",
                "smtp://mail.example.com:25",
                "--mail-from",
                FROM,
            ],
            "without TLS to another machine",
        ),
        (
            vec!["--smtp-url", "ftp://127.0.0.1:25", "--mail-from", FROM],
            "is not a valid SMTP URL",
        ),
        (
            vec![
                "--smtp-url",
                "smtp://127.0.0.1:25",
                "--mail-from",
                "Wrenchline <nope>",
            ],
            "is not a mailbox",
        ),
        (
            vec!["--smtp-url", "smtp://127.0.0.1:25?tls=sometimes"],
            "is not a valid SMTP URL",
        ),
    ] {
        let mut command = vec![
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--database-url",
            "sqlite::memory:",
        ];
        command.extend(args);
        let (ok, _, stderr) = crate::helpers::run_server_command(&command, None);
        assert!(!ok, "{command:?} started");
        assert!(stderr.contains(wanted), "{command:?}: {stderr}");
    }
}

#[tokio::test]
async fn two_nodes_on_one_database_send_each_mail_once() {
    let smtp = SmtpServer::start().await;
    let database_url = fresh_database_url().await;
    let a = spawn_app_on(database_url.clone(), |s| with_mail(&smtp, s)).await;
    let b = spawn_app_on(database_url, |s| with_mail(&smtp, s)).await;
    let mut sessions = Vec::new();
    for i in 0..8 {
        let node = if i % 2 == 0 { &a } else { &b };
        sessions.push(node.offered_session().await.1);
    }
    smtp.wait_for(8, WITHIN).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mails = smtp.received();
    assert_eq!(
        mails.len(),
        8,
        "{:?}",
        mails.iter().map(|m| &m.subject).collect::<Vec<_>>()
    );
    let mut tokens: Vec<String> = mails
        .iter()
        .map(|m| m.token(&format!("{PUBLIC_URL}/resume#token=")))
        .collect();
    tokens.sort();
    tokens.dedup();
    assert_eq!(tokens.len(), 8);
    for session in sessions {
        assert_eq!(
            a.state.store.session_mail(session).await.unwrap(),
            [("request_received".to_string(), true)]
        );
    }
    assert_eq!(metric(&a, "mail_sent") + metric(&b, "mail_sent"), 8);
}

#[tokio::test]
async fn mail_queued_by_another_writer_wakes_the_worker() {
    let smtp = SmtpServer::start().await;
    let app = mail_app(&smtp).await;
    let (customer, session) = app.customer_with_session().await;
    // Another node's commit: a store of its own, without a worker or a bell in this node.
    let other = Store::connect(&app.database_url).await.unwrap();
    let signed = std::time::Instant::now();
    other
        .mailing(Some(Mail::queue(
            MailKind::RequestReceived,
            OffsetDateTime::now_utc(),
        )))
        .sign_waiver(
            session,
            customer.id().unwrap(),
            "Dana Driver",
            "2026-01",
            OffsetDateTime::now_utc(),
        )
        .await
        .unwrap();
    smtp.wait_for_subject("We received your request", WITHIN)
        .await;
    // PostgreSQL wakes every worker (LISTEN/NOTIFY); SQLite has one node and the worker's poll.
    let bound = if on_postgres() { 2 } else { 7 };
    assert!(
        signed.elapsed() < Duration::from_secs(bound),
        "sent {:?} after the commit",
        signed.elapsed()
    );
    other.close().await;
}

#[tokio::test]
async fn a_session_whose_time_is_up_is_mailed_with_its_transcript() {
    let smtp = SmtpServer::start().await;
    let app = mail_app(&smtp).await;
    let (customer, mechanic, session) = app.waiting_session().await;
    smtp.wait_for(2, WITHIN).await;
    // Live for a little while yet: the messages go in, then the clock ends it.
    let started =
        OffsetDateTime::now_utc() - time::Duration::minutes(30) + time::Duration::seconds(2);
    app.state.store.start(session, started).await.unwrap();
    post(&app, &customer, session, "The pedal feels soft").await;
    post(&app, &mechanic, session, "Bleed the brakes before driving").await;
    let ended = smtp.wait_for_subject("has ended", WITHIN).await;
    assert_eq!(ended.to, app.email_of(&customer).await);
    assert!(ended.text.contains("The session's time is up."));
    assert!(
        ended.text.contains("You: The pedal feels soft"),
        "{}",
        ended.text
    );
    assert!(ended.text.contains("Sam: Bleed the brakes before driving"));
    assert!(ended.text.contains("Rate your session"));
    let (_, read) = app
        .get(&format!("/api/sessions/{session}"), &customer)
        .await;
    assert_eq!(read["end_reason"], "time_up");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(count(&smtp.received(), "has ended"), 1);
}

#[tokio::test]
async fn a_claim_outlives_its_node_by_one_lease_only() {
    // No server runs here: this store is the only worker, and `now` is passed in.
    let app = crate::helpers::spawn_app().await;
    let (customer, session) = app.customer_with_session().await;
    let database_url = app.stop().await;
    let store = Store::connect(&database_url).await.unwrap();
    let now = OffsetDateTime::now_utc();
    store
        .mailing(Some(Mail::queue(MailKind::RequestReceived, now)))
        .sign_waiver(
            session,
            customer.id().unwrap(),
            "Dana Driver",
            "2026-01",
            now,
        )
        .await
        .unwrap();
    let lease = time::Duration::seconds(120);
    let first = store.claim_mail(now, lease, 10).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].attempts, 1);
    // Claimed: nobody else takes it while the lease runs.
    assert!(store
        .claim_mail(now + time::Duration::seconds(119), lease, 10)
        .await
        .unwrap()
        .is_empty());
    // Its node died between sending and recording it: one more attempt after the lease.
    let later = now + time::Duration::seconds(121);
    let second = store.claim_mail(later, lease, 10).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].attempts, 2);
    assert!(store.mail_sent(&second[0], later).await.unwrap());
    // The first claim is void, and a sent mail is never claimed again.
    assert!(!store.mail_sent(&first[0], later).await.unwrap());
    assert!(store
        .claim_mail(now + time::Duration::days(2), lease, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.next_mail_due().await.unwrap(), None);
    store.close().await;
}

#[tokio::test]
async fn a_request_cancelled_before_its_waiver_is_not_mailed() {
    let smtp = SmtpServer::start().await;
    let app = mail_app(&smtp).await;
    let (customer, session) = app.customer_with_session().await;
    let (status, body) = app
        .post(&format!("/api/sessions/{session}/end"), &customer, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "cancelled");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(smtp.received().is_empty());
    assert!(app
        .state
        .store
        .session_mail(session)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(metric(&app, "mail_queued"), 0);
}
