//! Abuse limits answer 429 with a reason and a Retry-After, and the refused request changes
//! nothing.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{intake_body, spawn_app_with, Actor, PASSWORD};

#[tokio::test]
async fn sign_in_attempts_are_limited_per_account() {
    let app = spawn_app_with(|s| s.limits.login_per_account_per_minute = 3).await;
    let mechanic = app.mechanic("Sam").await; // one successful login
    let email = app
        .state
        .store
        .user(mechanic.id().unwrap())
        .await
        .unwrap()
        .unwrap()
        .email;
    for _ in 0..2 {
        let (status, _) = app
            .post(
                "/api/auth/login",
                &Actor::Anonymous,
                Some(&json!({"email": email, "password": "wrong"})),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let response = app
        .send(
            reqwest::Method::POST,
            "/api/auth/login",
            &Actor::Anonymous,
            Some(&json!({"email": email, "password": PASSWORD})),
        )
        .await;
    assert_eq!(
        response.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "even the right password waits"
    );
    assert!(
        response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "rate_limited");
    let (status, _) = app
        .post(
            "/api/auth/login",
            &Actor::Anonymous,
            Some(&json!({"email": "other@garage.example", "password": "x"})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "other accounts are not locked out"
    );
}

#[tokio::test]
async fn sign_in_attempts_are_limited_per_address() {
    let app = spawn_app_with(|s| s.limits.login_per_address_per_minute = 2).await;
    for i in 0..2 {
        let (status, _) = app
            .post(
                "/api/auth/login",
                &Actor::Anonymous,
                Some(&json!({"email": format!("a{i}@x.example"), "password": "x"})),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, body) = app
        .post(
            "/api/auth/login",
            &Actor::Anonymous,
            Some(&json!({"email": "b@x.example", "password": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(body["message"].as_str().unwrap().contains("address"));
}

#[tokio::test]
async fn intakes_are_limited_per_address() {
    let app = spawn_app_with(|s| s.limits.intakes_per_address_per_hour = 2).await;
    for _ in 0..2 {
        let (status, _) = app
            .post("/api/intake", &Actor::Anonymous, Some(&intake_body()))
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (status, body) = app
        .post("/api/intake", &Actor::Anonymous, Some(&intake_body()))
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["error"], "rate_limited");
    assert_eq!(app.session_count().await, 2);
}

#[tokio::test]
async fn messages_are_limited_per_user() {
    let app = spawn_app_with(|s| s.limits.messages_per_user_per_minute = 3).await;
    let (customer, mechanic, session) = app.waiting_session().await;
    let path = format!("/api/sessions/{session}/messages");
    for i in 0..3 {
        let (status, _) = app
            .post(
                &path,
                &customer,
                Some(&json!({"body": "hi", "client_id": format!("c{i}")})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (status, _) = app
        .post(
            &path,
            &customer,
            Some(&json!({"body": "hi", "client_id": "c9"})),
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let (status, _) = app
        .post(
            &path,
            &mechanic,
            Some(&json!({"body": "hello", "client_id": "m1"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "the limit is per user");
    assert_eq!(app.message_count().await, 4);
}
