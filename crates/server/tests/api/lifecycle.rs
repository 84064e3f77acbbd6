//! The session lifecycle over HTTP: the one winner of an accept, start and end, and the timers
//! (time up, requests nobody accepts, mechanics who never join), also with two server nodes on
//! one database.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::authorization::Socket;
use crate::helpers::{spawn_app, spawn_app_on, spawn_app_with, Actor, TestApp};

#[tokio::test]
async fn fifty_concurrent_accepts_have_exactly_one_winner() {
    let app = spawn_app().await;
    let (_customer, session) = app.offered_session().await;
    let mut mechanics = Vec::new();
    for i in 0..50 {
        mechanics.push(app.mechanic(&format!("M{i}")).await);
    }
    let path = format!("/api/sessions/{session}/accept");
    let results = join_all(mechanics.iter().map(|m| app.post(&path, m, None))).await;
    let mut by_status: BTreeMap<u16, usize> = BTreeMap::new();
    for (status, _) in &results {
        *by_status.entry(status.as_u16()).or_default() += 1;
    }
    assert_eq!(by_status, BTreeMap::from([(200, 1), (409, 49)]));
    let (winner_index, (_, won)) = results
        .iter()
        .enumerate()
        .find(|(_, (s, _))| *s == StatusCode::OK)
        .unwrap();
    assert_eq!(won["status"], "waiting");
    assert_eq!(
        won["mechanic_id"].as_str().unwrap(),
        mechanics[winner_index].id().unwrap().to_string()
    );
    for (status, body) in &results {
        if *status == StatusCode::CONFLICT {
            assert_eq!(body["error"], "already_accepted");
        }
    }
    let stored = app.state.store.session(session).await.unwrap().unwrap();
    assert_eq!(stored.mechanic_id, mechanics[winner_index].id());
}

#[tokio::test]
async fn a_request_cannot_be_accepted_before_its_waiver() {
    let app = spawn_app().await;
    let (customer, session) = app.customer_with_session().await;
    let mechanic = app.mechanic("Sam").await;
    let (status, body) = app
        .post(&format!("/api/sessions/{session}/accept"), &mechanic, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (_, read) = app
        .get(&format!("/api/sessions/{session}"), &customer)
        .await;
    assert_eq!(read["status"], "pending");
    assert_eq!(read["mechanic_id"], Value::Null);
}

#[tokio::test]
async fn accepting_assigns_the_mechanic_and_the_customer_sees_who() {
    let app = spawn_app().await;
    let (customer, mechanic, session) = app.waiting_session().await;
    let (status, read) = app
        .get(&format!("/api/sessions/{session}"), &customer)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read["status"], "waiting");
    assert_eq!(
        read["mechanic_id"].as_str().unwrap(),
        mechanic.id().unwrap().to_string()
    );
    assert_eq!(read["mechanic_name"], "Sam");
    assert!(read["accepted_at"].is_string());
    let (_, requests) = app.get("/api/requests", &mechanic).await;
    assert!(
        requests.as_array().unwrap().is_empty(),
        "an accepted request leaves the feed"
    );
}

#[tokio::test]
async fn start_without_both_present_names_who_is_missing() {
    let app = spawn_app().await;
    let (customer, _mechanic, session) = app.waiting_session().await;
    let (status, body) = app
        .post(&format!("/api/sessions/{session}/start"), &customer, None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"], "participants_not_present");
    assert_eq!(body["missing"], serde_json::json!(["customer", "mechanic"]));
    assert_eq!(body["session"]["status"], "waiting");
}

#[tokio::test]
async fn ending_before_live_cancels_and_ending_twice_conflicts() {
    let app = spawn_app().await;
    let (customer, mechanic, session) = app.waiting_session().await;
    let (status, ended) = app
        .post(&format!("/api/sessions/{session}/end"), &customer, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ended["status"], "cancelled");
    assert_eq!(ended["end_reason"], "cancelled_by_customer");
    assert!(ended["ended_at"].is_string());
    let (status, body) = app
        .post(&format!("/api/sessions/{session}/end"), &mechanic, None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"], "session_ended");
}

#[tokio::test]
async fn a_live_session_ends_as_completed_by_who_ended_it() {
    let app = spawn_app().await;
    let (_customer, mechanic, session) = app.waiting_session().await;
    app.state
        .store
        .start(session, time::OffsetDateTime::now_utc())
        .await
        .unwrap();
    let (status, ended) = app
        .post(&format!("/api/sessions/{session}/end"), &mechanic, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ended["status"], "completed");
    assert_eq!(ended["end_reason"], "ended_by_mechanic");
}

#[tokio::test]
async fn the_clock_runs_for_the_plan_and_expiry_completes_the_session() {
    let app = spawn_app().await;
    let (customer, _mechanic, session) = app.waiting_session().await;
    let started = time::OffsetDateTime::now_utc() - time::Duration::minutes(31);
    app.state.store.start(session, started).await.unwrap();
    let live = app.state.store.session(session).await.unwrap().unwrap();
    assert_eq!(
        live.ends_at.unwrap() - live.started_at.unwrap(),
        time::Duration::minutes(30),
        "standard plan"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, read) = app
            .get(&format!("/api/sessions/{session}"), &customer)
            .await;
        if read["status"] == "completed" {
            assert_eq!(read["end_reason"], "time_up");
            assert_eq!(read["ended_at"], read["ends_at"]);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "session did not expire: {read}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn sessions_that_expired_while_the_server_was_down_are_completed_at_start() {
    let app = spawn_app().await;
    let (customer, mechanic, session) = app.waiting_session().await;
    let (_, _, running) = app.waiting_session().await;
    app.state
        .store
        .start(
            session,
            time::OffsetDateTime::now_utc() - time::Duration::hours(2),
        )
        .await
        .unwrap();
    app.state
        .store
        .start(running, time::OffsetDateTime::now_utc())
        .await
        .unwrap();
    // Stop before the expiry pass can see it, as if the server had been down.
    let url = app.stop().await;
    let app = spawn_app_on(url, |_| {}).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, read) = app
            .get(&format!("/api/sessions/{session}"), &customer)
            .await;
        if read["status"] == "completed" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not completed after restart: {read}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let still = app.state.store.session(running).await.unwrap().unwrap();
    assert_eq!(
        still.status,
        wrenchline_protocol::SessionStatus::Live,
        "unexpired sessions keep running"
    );
    let _ = mechanic;
    let _ = Actor::Anonymous;
}

/// Reads the session as `actor` until `done` holds, for up to 10 s.
async fn wait_for(
    app: &TestApp,
    actor: &Actor,
    session: Uuid,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, read) = app.get(&format!("/api/sessions/{session}"), actor).await;
        if done(&read) {
            return read;
        }
        assert!(std::time::Instant::now() < deadline, "still {read}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn requests_nobody_accepts_are_cancelled_as_not_accepted() {
    let app = spawn_app_with(|s| s.request_accept_timeout = time::Duration::seconds(1)).await;
    let mechanic = app.mechanic("Sam").await;
    let (customer, session) = app.offered_session().await;
    let (unsigned_customer, unsigned) = app.customer_with_session().await;
    let read = wait_for(&app, &customer, session, |r| r["status"] != "pending").await;
    assert_eq!(read["status"], "cancelled");
    assert_eq!(read["end_reason"], "not_accepted");
    assert!(read["ended_at"].is_string());
    assert_eq!(read["mechanic_id"], Value::Null);
    let (_, requests) = app.get("/api/requests", &mechanic).await;
    assert!(requests.as_array().unwrap().is_empty());
    let (status, body) = app
        .post(&format!("/api/sessions/{session}/accept"), &mechanic, None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    // A request never offered (no waiver) is not on the clock.
    let (_, read) = app
        .get(&format!("/api/sessions/{unsigned}"), &unsigned_customer)
        .await;
    assert_eq!(read["status"], "pending");
}

#[tokio::test]
async fn a_mechanic_who_does_not_join_hands_the_request_back_to_the_feed() {
    let app = spawn_app_with(|s| s.mechanic_join_timeout = time::Duration::seconds(1)).await;
    let other = app.mechanic("Robin").await;
    let mut feed = Socket::connect(&app).await;
    let reply = feed
        .join(
            "requests",
            &app.access_token(&other).await,
            json!([{"event": "*", "schema": "public", "table": "sessions", "filter": "status=eq.pending"}]),
        )
        .await;
    assert_eq!(reply["status"], "ok", "{reply}");
    let (customer, mechanic, session) = app.waiting_session().await;
    // The mechanic listens to the chat's row changes without being in the chat (no presence).
    let mut listening = Socket::connect(&app).await;
    let reply = listening
        .join(
            &format!("chat:session-{session}"),
            &app.access_token(&mechanic).await,
            json!([{"event": "INSERT", "schema": "public", "table": "messages", "filter": format!("session_id=eq.{session}")}]),
        )
        .await;
    assert_eq!(reply["status"], "ok", "{reply}");
    let read = wait_for(&app, &customer, session, |r| r["status"] != "waiting").await;
    assert_eq!(read["status"], "pending");
    assert_eq!(read["mechanic_id"], Value::Null);
    assert_eq!(read["accepted_at"], Value::Null);
    assert!(read["waiver_signed_at"].is_string(), "still offered");

    // Mechanics see it again, live and in the list; the one who left it no longer reaches it
    // as its mechanic, but may take it again like anyone.
    let offered_again = feed
        .next(|f| {
            f[3] == "postgres_changes"
                && f[4]["data"]["record"]["id"] == session.to_string()
                && f[4]["data"]["record"]["status"] == "pending"
                && f[4]["data"]["old_record"]["status"] == "waiting"
        })
        .await;
    assert!(offered_again.is_some(), "the feed hears of it");
    let (_, requests) = app.get("/api/requests", &other).await;
    assert_eq!(requests[0]["id"], session.to_string());
    let (status, _) = app
        .post(
            &format!("/api/sessions/{session}/messages"),
            &mechanic,
            Some(&json!({"body": "hi", "client_id": "m1"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Its realtime channels on the session are closed, and the next conversation stays private.
    let closed = listening
        .next(|f| f[3] == "phx_close" && f[2] == format!("realtime:chat:session-{session}"))
        .await;
    assert!(
        closed.is_some(),
        "the channel is closed from the server side"
    );
    let (status, _) = app
        .post(&format!("/api/sessions/{session}/accept"), &other, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .post(
            &format!("/api/sessions/{session}/messages"),
            &customer,
            Some(&json!({"body": "Hello again", "client_id": "c-after"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let leaked = listening
        .next_within(Duration::from_millis(1_500), |f| f[3] == "postgres_changes")
        .await;
    assert!(
        leaked.is_none(),
        "the mechanic who left hears nothing more: {leaked:?}"
    );
}

#[tokio::test]
async fn a_mechanic_in_the_chat_keeps_the_session() {
    let app = spawn_app_with(|s| s.mechanic_join_timeout = time::Duration::seconds(1)).await;
    let (_customer, mechanic, session) = app.waiting_session().await;
    let mut socket = Socket::connect(&app).await;
    let token = app.access_token(&mechanic).await;
    let topic = format!("chat:session-{session}:presence");
    let reply = socket.join(&topic, &token, json!([])).await;
    assert_eq!(reply["status"], "ok");
    let frame = json!([null, "t1", format!("realtime:{topic}"), "presence",
        {"type": "presence", "event": "track", "payload": {"user_id": mechanic.id().unwrap().to_string(), "role": "mechanic"}}]);
    socket.push(frame).await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let stored = app.state.store.session(session).await.unwrap().unwrap();
    assert_eq!(stored.status, wrenchline_protocol::SessionStatus::Waiting);
    assert_eq!(stored.mechanic_id, mechanic.id());
}

#[tokio::test]
async fn two_nodes_on_one_database_move_each_timed_out_session_once() {
    let quick = |s: &mut wrenchline_server::Settings| {
        s.request_accept_timeout = time::Duration::seconds(1);
        s.mechanic_join_timeout = time::Duration::seconds(1);
    };
    let one = spawn_app_with(quick).await;
    let two = spawn_app_on(one.database_url.clone(), quick).await;
    let mut offered = Vec::new();
    let mut waiting = Vec::new();
    for _ in 0..4 {
        offered.push(one.offered_session().await.1);
        waiting.push(one.waiting_session().await.2);
    }
    // Both nodes' clocks run; on top, both run the same passes at the same moment.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let (c1, c2, r1, r2) = tokio::join!(
        wrenchline_server::lifecycle::cancel_unaccepted(&one.state),
        wrenchline_server::lifecycle::cancel_unaccepted(&two.state),
        wrenchline_server::lifecycle::reoffer_unjoined(&one.state),
        wrenchline_server::lifecycle::reoffer_unjoined(&two.state),
    );
    let (c1, c2, r1, r2) = (c1.unwrap(), c2.unwrap(), r1.unwrap(), r2.unwrap());
    assert!(c1 + c2 <= offered.len() && r1 + r2 <= waiting.len());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut settled = true;
        for id in &offered {
            let s = one.state.store.session(*id).await.unwrap().unwrap();
            settled &= s.status == wrenchline_protocol::SessionStatus::Cancelled;
        }
        for id in &waiting {
            // Offered again, and then (a second later) cancelled as nobody accepted it.
            let s = one.state.store.session(*id).await.unwrap().unwrap();
            settled &= s.status == wrenchline_protocol::SessionStatus::Cancelled
                && s.mechanic_id.is_none();
        }
        if settled {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not all timed out");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Each move was made by exactly one node: the transition counters of both add up.
    let count = |app: &TestApp, status: &str| -> u64 {
        app.state
            .metrics
            .session_transitions
            .get_or_create(&wrenchline_server::metrics::TransitionLabels { to: status.into() })
            .get()
    };
    assert_eq!(
        count(&one, "cancelled") + count(&two, "cancelled"),
        (offered.len() + waiting.len()) as u64,
        "each request is cancelled once"
    );
    // Intakes (all on node one) and the offers made again.
    assert_eq!(
        count(&one, "pending") + count(&two, "pending"),
        (offered.len() + 2 * waiting.len()) as u64,
        "each session whose mechanic did not join is offered again once"
    );
}
