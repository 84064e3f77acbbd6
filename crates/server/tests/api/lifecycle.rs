use std::collections::BTreeMap;

use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{spawn_app, spawn_app_on, Actor};

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
