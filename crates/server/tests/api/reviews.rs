//! Ratings, the mechanic's summary and private notes, and the mechanic's history: a rating once
//! per completed session by its customer, changeable within the window and then refused; the
//! summary reaches the customer, the notes never do; the history is searchable and paged.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{spawn_app, spawn_app_with, Actor, TestApp};

async fn put(app: &TestApp, path: &str, actor: &Actor, body: Value) -> (StatusCode, Value) {
    app.request(Method::PUT, path, actor, Some(&body)).await
}

/// A completed session: (customer, mechanic, session).
async fn completed(app: &TestApp) -> (Actor, Actor, Uuid) {
    let (customer, mechanic, session) = app.waiting_session().await;
    app.state
        .store
        .start(session, time::OffsetDateTime::now_utc())
        .await
        .unwrap();
    let (status, body) = app
        .post(&format!("/api/sessions/{session}/end"), &mechanic, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "completed");
    (customer, mechanic, session)
}

#[tokio::test]
async fn a_rating_is_given_once_changed_within_the_window_then_refused() {
    let app = spawn_app_with(|s| s.rating_edit_window = time::Duration::seconds(2)).await;
    let (customer, mechanic, session) = completed(&app).await;
    let path = format!("/api/sessions/{session}/rating");

    let (status, body) = put(&app, &path, &customer, json!({"stars": 6})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let long = "x".repeat(1001);
    let (status, _) = put(&app, &path, &customer, json!({"stars": 4, "comment": long})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let (status, rated) = put(
        &app,
        &path,
        &customer,
        json!({"stars": 4, "comment": " Clear advice "}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{rated}");
    assert_eq!(rated["stars"], 4);
    assert_eq!(rated["comment"], "Clear advice");

    let (status, changed) = put(&app, &path, &customer, json!({"stars": 5})).await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["stars"], 5);
    assert_eq!(
        changed["created_at"], rated["created_at"],
        "still the one rating"
    );

    let (_, outcome) = app
        .get(&format!("/api/sessions/{session}/outcome"), &customer)
        .await;
    assert_eq!(outcome["rating"]["stars"], 5);
    assert_eq!(outcome["can_rate"], true);
    let (_, seen_by_mechanic) = app
        .get(&format!("/api/sessions/{session}/outcome"), &mechanic)
        .await;
    assert_eq!(seen_by_mechanic["rating"]["stars"], 5);
    assert_eq!(seen_by_mechanic["can_rate"], false);

    tokio::time::sleep(Duration::from_millis(2200)).await;
    let (status, body) = put(&app, &path, &customer, json!({"stars": 1})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"], "rating_locked");
    let (_, outcome) = app
        .get(&format!("/api/sessions/{session}/outcome"), &customer)
        .await;
    assert_eq!(
        outcome["rating"]["stars"], 5,
        "a refused change changes nothing"
    );
    assert_eq!(outcome["can_rate"], false);
}

#[tokio::test]
async fn only_the_customer_rates_and_only_a_completed_session() {
    let app = spawn_app().await;
    let (customer, mechanic, session) = completed(&app).await;
    let path = format!("/api/sessions/{session}/rating");
    let (status, body) = put(&app, &path, &mechanic, json!({"stars": 5})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"], "customers_only");
    let (outsider, _) = app.customer_with_session().await;
    let (status, _) = put(&app, &path, &outsider, json!({"stars": 1})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = put(&app, &path, &Actor::Anonymous, json!({"stars": 1})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (waiting_customer, _, waiting) = app.waiting_session().await;
    let (status, body) = put(
        &app,
        &format!("/api/sessions/{waiting}/rating"),
        &waiting_customer,
        json!({"stars": 5}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"], "session_not_completed");

    let (_, outcome) = app
        .get(&format!("/api/sessions/{session}/outcome"), &customer)
        .await;
    assert_eq!(
        outcome["rating"],
        Value::Null,
        "the refused ratings left nothing"
    );
}

#[tokio::test]
async fn the_summary_reaches_the_customer_and_private_notes_never_do() {
    let app = spawn_app().await;
    let (customer, mechanic, session) = app.waiting_session().await;
    let secret = "customer seemed unsure; check invoice 4471 next time";
    let (status, notes) = put(
        &app,
        &format!("/api/sessions/{session}/notes"),
        &mechanic,
        json!({"body": secret}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{notes}");
    let (status, summary) = put(
        &app,
        &format!("/api/sessions/{session}/summary"),
        &mechanic,
        json!({"found": "Front pads worn to the backing plate", "next_steps": "Replace pads and rotors", "urgency": "urgent"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    assert_eq!(summary["mechanic_name"], "Sam");

    // The customer can neither read nor write notes or the summary.
    let (status, _) = app
        .get(&format!("/api/sessions/{session}/notes"), &customer)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = put(
        &app,
        &format!("/api/sessions/{session}/summary"),
        &customer,
        json!({"found": "x", "next_steps": "y", "urgency": "soon"}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let other = app.mechanic("Other").await;
    let (status, _) = app
        .get(&format!("/api/sessions/{session}/notes"), &other)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another mechanic's session");

    // Nothing the customer can read holds the notes.
    let mut seen = String::new();
    for path in [
        format!("/api/sessions/{session}"),
        format!("/api/sessions/{session}/outcome"),
        format!("/api/sessions/{session}/messages"),
        format!("/api/sessions/{session}/waiting-room"),
        "/api/mechanics/me/sessions".to_string(),
    ] {
        let (_, body) = app.get(&path, &customer).await;
        seen.push_str(&body.to_string());
    }
    assert!(
        seen.contains("Front pads worn"),
        "the summary reaches the customer"
    );
    assert!(!seen.contains("invoice 4471"), "the notes leaked: {seen}");

    let (_, notes) = app
        .get(&format!("/api/sessions/{session}/notes"), &mechanic)
        .await;
    assert_eq!(notes["body"], secret);
}

#[tokio::test]
async fn the_history_finds_sessions_by_vehicle_and_customer_name_page_by_page() {
    let app = spawn_app().await;
    let mechanic = app.mechanic("Sam").await;
    let mut ids = Vec::new();
    for (name, make, model) in [
        ("Dana Driver", "Honda", "Civic"),
        ("Lee Park", "Ford", "Focus"),
        ("Rosa Díaz", "Toyota", "Corolla"),
    ] {
        let mut intake = crate::helpers::intake_body();
        intake["name"] = json!(name);
        intake["vehicle"]["make"] = json!(make);
        intake["vehicle"]["model"] = json!(model);
        let response = app
            .send(
                Method::POST,
                "/api/intake",
                &Actor::Anonymous,
                Some(&intake),
            )
            .await;
        let cookie = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| v.strip_prefix("wl_customer="))
            .map(|v| v.split(';').next().unwrap().to_string())
            .unwrap();
        let body: Value = response.json().await.unwrap();
        let customer = Actor::Customer {
            cookie,
            id: body["user"]["id"].as_str().unwrap().parse().unwrap(),
        };
        let id: Uuid = body["session"]["id"].as_str().unwrap().parse().unwrap();
        let (status, _) = app
            .post(
                &format!("/api/sessions/{id}/waiver"),
                &customer,
                Some(&json!({"signed_name": name, "agree": true})),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = app
            .post(&format!("/api/sessions/{id}/accept"), &mechanic, None)
            .await;
        assert_eq!(status, StatusCode::OK);
        ids.push(id);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (_, _, someone_elses) = app.waiting_session().await;

    let list = |q: &str| {
        let path = format!("/api/mechanics/me/sessions?q={}", urlencode(q));
        let app = &app;
        let mechanic = &mechanic;
        async move {
            let (status, body) = app.get(&path, mechanic).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body.as_array()
                .unwrap()
                .iter()
                .map(|e| e["session"]["id"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    let all = list("").await;
    assert_eq!(
        all,
        ids.iter()
            .rev()
            .map(|id| id.to_string())
            .collect::<Vec<_>>(),
        "latest accept first, only this mechanic's"
    );
    assert!(!all.contains(&someone_elses.to_string()));
    assert_eq!(list("focus").await, vec![ids[1].to_string()]);
    assert_eq!(list("2018 TOYOTA").await, vec![ids[2].to_string()]);
    assert_eq!(list("dana").await, vec![ids[0].to_string()]);
    assert_eq!(list("park ford").await, vec![ids[1].to_string()]);
    assert!(list("%").await.is_empty(), "wildcards are literal");

    let (_, first) = app
        .get("/api/mechanics/me/sessions?limit=2", &mechanic)
        .await;
    let last = first[1]["session"]["id"].as_str().unwrap();
    let (_, second) = app
        .get(
            &format!("/api/mechanics/me/sessions?limit=2&after={last}"),
            &mechanic,
        )
        .await;
    assert_eq!(second.as_array().unwrap().len(), 1);
    assert_eq!(second[0]["session"]["id"], ids[0].to_string());

    let (status, _) = app
        .get("/api/mechanics/me/sessions?limit=0", &mechanic)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (customer, _) = app.customer_with_session().await;
    let (status, _) = app.get("/api/mechanics/me/sessions", &customer).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
