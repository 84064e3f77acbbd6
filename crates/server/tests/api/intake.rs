use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{intake_body, spawn_app, Actor};

#[tokio::test]
async fn intake_creates_a_pending_session_and_a_locked_down_identity_cookie() {
    let app = spawn_app().await;
    let response = app
        .send(
            Method::POST,
            "/api/intake",
            &Actor::Anonymous,
            Some(&intake_body()),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let cookie = response
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(cookie.starts_with("wl_customer="), "{cookie}");
    for flag in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(flag), "{flag} missing from {cookie}");
    }
    let body: serde_json::Value = response.json().await.unwrap();
    let session = &body["session"];
    assert_eq!(session["status"], "pending");
    assert_eq!(session["plan"], "standard");
    assert_eq!(session["mechanic_id"], serde_json::Value::Null);
    assert_eq!(session["customer_id"], body["user"]["id"]);
    assert_eq!(session["vehicle"]["vin"], "1HGCM82633A004352");
    assert_eq!(session["waiver_signed_at"], serde_json::Value::Null);
    assert_eq!(body["user"]["role"], "customer");
    assert_eq!(body["user"]["email"], "dana@example.com");
}

#[tokio::test]
async fn a_returning_browser_keeps_its_identity() {
    let app = spawn_app().await;
    let (customer, first) = app.customer_with_session().await;
    let response = app
        .send(Method::POST, "/api/intake", &customer, Some(&intake_body()))
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert!(
        response.headers().get("set-cookie").is_none(),
        "no new identity for a known browser"
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        body["user"]["id"].as_str().unwrap(),
        customer.id().unwrap().to_string()
    );
    assert_ne!(body["session"]["id"].as_str().unwrap(), first.to_string());
}

#[tokio::test]
async fn signing_the_waiver_offers_the_request_and_points_to_thank_you() {
    let app = spawn_app().await;
    let mechanic = app.mechanic("Sam").await;
    let (customer, session) = app.customer_with_session().await;
    let (_, requests) = app.get("/api/requests", &mechanic).await;
    assert_eq!(
        requests.as_array().unwrap().len(),
        0,
        "unsigned requests are not offered"
    );

    let (status, body) = app
        .post(
            &format!("/api/sessions/{session}/waiver"),
            &customer,
            Some(&json!({"signed_name": "Dana Driver", "agree": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["next"],
        format!("/thank-you?session={session}&plan=standard")
    );
    assert!(body["session"]["waiver_signed_at"].is_string());

    let (_, requests) = app.get("/api/requests", &mechanic).await;
    let ids: Vec<&str> = requests
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [session.to_string()]);

    let (status, body) = app
        .post(
            &format!("/api/sessions/{session}/waiver"),
            &customer,
            Some(&json!({"signed_name": "Dana Driver", "agree": true})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"], "already_signed");
}

#[tokio::test]
async fn the_waiver_needs_a_name_and_agreement() {
    let app = spawn_app().await;
    let (customer, session) = app.customer_with_session().await;
    let (status, body) = app
        .post(
            &format!("/api/sessions/{session}/waiver"),
            &customer,
            Some(&json!({"signed_name": " ", "agree": false})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["fields"]["signed_name"].is_string());
    assert!(body["fields"]["agree"].is_string());
    let (_, read) = app
        .get(&format!("/api/sessions/{session}"), &customer)
        .await;
    assert_eq!(read["waiver_signed_at"], serde_json::Value::Null);
}

#[tokio::test]
async fn requests_are_listed_oldest_first() {
    let app = spawn_app().await;
    let mechanic = app.mechanic("Sam").await;
    let (_, first) = app.offered_session().await;
    let (_, second) = app.offered_session().await;
    let (_, requests) = app.get("/api/requests", &mechanic).await;
    let ids: Vec<String> = requests
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, [first.to_string(), second.to_string()]);
}

#[tokio::test]
async fn plans_and_waiver_are_public() {
    let app = spawn_app().await;
    let (status, plans) = app.get("/api/plans", &Actor::Anonymous).await;
    assert_eq!(status, StatusCode::OK);
    let plans = plans.as_array().unwrap();
    assert!(plans
        .iter()
        .any(|p| p["id"] == "trial" && p["price_cents"] == 0));
    assert!(
        plans
            .iter()
            .filter(|p| p["price_cents"].as_u64().unwrap() > 0)
            .count()
            >= 2
    );
    assert!(plans.iter().all(|p| p["minutes"].as_u64().unwrap() > 0));
    let (status, waiver) = app.get("/api/waiver", &Actor::Anonymous).await;
    assert_eq!(status, StatusCode::OK);
    assert!(waiver["version"].is_string() && waiver["text"].as_str().unwrap().len() > 100);
}

#[tokio::test]
async fn a_resume_link_moves_the_identity_to_another_device() {
    let app = spawn_app().await;
    let (customer, session) = app.offered_session().await;
    let (status, link) = app
        .post(
            &format!("/api/sessions/{session}/resume-link"),
            &customer,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let url = link["url"].as_str().unwrap();
    let token = url.strip_prefix("/resume?token=").expect("resume path");

    let response = app
        .send(
            Method::POST,
            "/api/resume",
            &Actor::Anonymous,
            Some(&json!({"token": token})),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = response
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .strip_prefix("wl_customer=")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["next"], format!("/chat/{session}"));
    let second_device = Actor::Customer {
        cookie,
        id: customer.id().unwrap(),
    };
    let (status, read) = app
        .get(&format!("/api/sessions/{session}"), &second_device)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read["id"], session.to_string());

    let mut tampered = token.to_string();
    tampered.push('x');
    let (status, body) = app
        .post(
            "/api/resume",
            &Actor::Anonymous,
            Some(&json!({"token": tampered})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_resume_link");
}

#[tokio::test]
async fn an_expired_resume_link_is_gone() {
    let app = spawn_app().await;
    let (customer, session) = app.offered_session().await;
    let user = app
        .state
        .store
        .user(customer.id().unwrap())
        .await
        .unwrap()
        .unwrap();
    let token = app.state.signer.sign(
        &user,
        wrenchline_server::auth::TokenKind::Resume,
        time::Duration::minutes(5),
        Some(session),
        time::OffsetDateTime::now_utc() - time::Duration::hours(1),
    );
    let (status, body) = app
        .post(
            "/api/resume",
            &Actor::Anonymous,
            Some(&json!({"token": token})),
        )
        .await;
    assert_eq!(status, StatusCode::GONE);
    assert_eq!(body["error"], "resume_link_expired");
}
