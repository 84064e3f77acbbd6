//! Bad input gets a 4xx `{error, message}` and changes nothing.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{intake_body, spawn_app, Actor};

fn with(path: &[&str], value: Value) -> Value {
    let mut body = intake_body();
    let mut target = &mut body;
    for key in &path[..path.len() - 1] {
        target = target.get_mut(*key).unwrap();
    }
    target[path[path.len() - 1]] = value;
    body
}

fn without(field: &str) -> Value {
    let mut body = intake_body();
    body.as_object_mut().unwrap().remove(field);
    body
}

#[tokio::test]
async fn bad_intakes_are_refused_with_a_reason_and_store_nothing() {
    let app = spawn_app().await;
    let cases: Vec<(&str, Value, StatusCode, &str, Option<&str>)> = vec![
        (
            "missing concern",
            without("concern"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("concern"),
        ),
        (
            "missing vehicle",
            without("vehicle"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            None,
        ),
        (
            "year as text",
            with(&["vehicle", "year"], json!("2018")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            None,
        ),
        (
            "name as number",
            with(&["name"], json!(42)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            None,
        ),
        (
            "negative mileage",
            with(&["vehicle", "mileage"], json!(-5)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            None,
        ),
        (
            "year too old",
            with(&["vehicle", "year"], json!(1850)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("vehicle.year"),
        ),
        (
            "year in the future",
            with(&["vehicle", "year"], json!(2100)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("vehicle.year"),
        ),
        (
            "wrong VIN check digit",
            with(&["vehicle", "vin"], json!("1HGCM82643A004352")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("vehicle.vin"),
        ),
        (
            "short VIN",
            with(&["vehicle", "vin"], json!("1HGCM8263")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("vehicle.vin"),
        ),
        (
            "unknown plan",
            with(&["plan"], json!("platinum")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("plan"),
        ),
        (
            "bad email",
            with(&["email"], json!("dana at example")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("email"),
        ),
        (
            "empty make",
            with(&["vehicle", "make"], json!(" ")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("vehicle.make"),
        ),
        (
            "short concern",
            with(&["concern"], json!("noise")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("concern"),
        ),
    ];
    for (name, body, status, code, field) in cases {
        let (got, answer) = app
            .post("/api/intake", &Actor::Anonymous, Some(&body))
            .await;
        assert_eq!(got, status, "{name}: {answer}");
        assert_eq!(answer["error"], code, "{name}: {answer}");
        assert!(
            answer["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{name}"
        );
        if let Some(field) = field {
            assert!(answer["fields"][field].is_string(), "{name}: {answer}");
        }
    }
    assert_eq!(app.session_count().await, 0);
}

#[tokio::test]
async fn malformed_json_wrong_media_type_and_oversized_bodies_are_refused() {
    let app = spawn_app().await;
    let url = format!("{}/api/intake", app.base);
    let malformed = app
        .http
        .post(&url)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        malformed.json::<Value>().await.unwrap()["error"],
        "malformed_json"
    );

    let plain = app
        .http
        .post(&url)
        .header("content-type", "text/plain")
        .body(intake_body().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        plain.json::<Value>().await.unwrap()["error"],
        "unsupported_media_type"
    );

    let huge = with(&["concern"], json!("x".repeat(200 * 1024)));
    let too_large = app.http.post(&url).json(&huge).send().await.unwrap();
    assert_eq!(too_large.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        too_large.json::<Value>().await.unwrap()["error"],
        "body_too_large"
    );

    assert_eq!(app.session_count().await, 0);
}

#[tokio::test]
async fn malformed_and_unknown_ids_are_refused() {
    let app = spawn_app().await;
    let (customer, _session) = app.offered_session().await;
    let mechanic = app.mechanic("Sam").await;
    let (status, body) = app.get("/api/sessions/not-a-uuid", &customer).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_id");
    let (status, body) = app
        .post("/api/sessions/12345/accept", &mechanic, None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_id");
    let unknown = uuid::Uuid::new_v4();
    let (status, body) = app
        .get(&format!("/api/sessions/{unknown}"), &customer)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "not_found");
    let (status, _) = app
        .post(&format!("/api/sessions/{unknown}/accept"), &mechanic, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn unknown_endpoints_and_methods_answer_in_json() {
    let app = spawn_app().await;
    let (status, body) = app.get("/api/nope", &Actor::Anonymous).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "not_found");
    let (status, body) = app
        .request(
            reqwest::Method::DELETE,
            "/api/plans",
            &Actor::Anonymous,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["error"], "method_not_allowed");
}

/// Asserts the usual 422 field error for `field`.
fn assert_field_refused(what: &str, status: StatusCode, answer: &Value, field: &str) {
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{what}: {answer}");
    assert_eq!(answer["error"], "validation_failed", "{what}: {answer}");
    assert!(
        answer["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: {answer}"
    );
    assert!(answer["fields"][field].is_string(), "{what}: {answer}");
}

/// PostgreSQL cannot store U+0000 in TEXT: each field must be refused before it reaches storage,
/// on either engine, whether the intake creates a customer or updates one.
#[tokio::test]
async fn control_characters_in_intake_fields_are_refused_and_store_nothing() {
    let app = spawn_app().await;
    let (customer, _) = app.customer_with_session().await;
    let cases: Vec<(&[&str], &str, Value)> = vec![
        (&["name"], "name", json!("Dana\u{0}Driver")),
        (&["name"], "name", json!("\u{0}")),
        (&["name"], "name", json!("Dana \u{1b}[31mDriver")),
        (&["name"], "name", json!("Dana\nDriver")),
        (&["email"], "email", json!("dana\u{0}@example.com")),
        (&["phone"], "phone", json!("+1 555 010\u{0}2030")),
        (&["vehicle", "make"], "vehicle.make", json!("Hon\u{0}da")),
        (&["vehicle", "model"], "vehicle.model", json!("Civic\u{0}")),
        (
            &["vehicle", "vin"],
            "vehicle.vin",
            json!("1HGCM82633A00435\u{0}"),
        ),
        (
            &["concern"],
            "concern",
            json!("Grinding noise\u{0} when braking"),
        ),
        (
            &["concern"],
            "concern",
            json!("Grinding noise\u{b} when braking"),
        ),
        (&["plan"], "plan", json!("standard\u{0}")),
    ];
    for (path, field, value) in cases {
        let body = with(path, value.clone());
        for actor in [&Actor::Anonymous, &customer] {
            let (status, answer) = app.post("/api/intake", actor, Some(&body)).await;
            assert_field_refused(&format!("{field} = {value}"), status, &answer, field);
        }
    }
    assert_eq!(app.session_count().await, 1, "only the first intake");
    let stored = app
        .state
        .store
        .user(customer.id().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.name, "Dana Driver");

    let multi_line = with(
        &["concern"],
        json!("Grinding noise:\r\n\t- when braking\n\t- at low speed"),
    );
    let (status, answer) = app
        .post("/api/intake", &Actor::Anonymous, Some(&multi_line))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(
        answer["session"]["concern"],
        "Grinding noise:\r\n\t- when braking\n\t- at low speed"
    );
}

#[tokio::test]
async fn control_characters_in_a_waiver_signature_are_refused() {
    let app = spawn_app().await;
    let (customer, session) = app.customer_with_session().await;
    let path = format!("/api/sessions/{session}/waiver");
    for name in ["Dana\u{0}Driver", "\u{0}", "Dana\u{7}", "Dana\tDriver"] {
        let (status, answer) = app
            .post(
                &path,
                &customer,
                Some(&json!({"signed_name": name, "agree": true})),
            )
            .await;
        assert_field_refused(name, status, &answer, "signed_name");
    }
    let (_, current) = app
        .get(&format!("/api/sessions/{session}"), &customer)
        .await;
    assert!(current["waiver_signed_at"].is_null(), "{current}");
    let (status, answer) = app
        .post(
            &path,
            &customer,
            Some(&json!({"signed_name": "Dana Driver\n", "agree": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

#[tokio::test]
async fn control_characters_in_messages_are_refused() {
    let app = spawn_app().await;
    let (customer, mechanic, session) = app.waiting_session().await;
    let path = format!("/api/sessions/{session}/messages");
    for (actor, body, field) in [
        (
            &customer,
            json!({"body": "hi\u{0}", "client_id": "a"}),
            "body",
        ),
        (
            &mechanic,
            json!({"body": "\u{0}", "client_id": "b"}),
            "body",
        ),
        (
            &customer,
            json!({"body": "a\u{1b}[2J", "client_id": "c"}),
            "body",
        ),
        (
            &customer,
            json!({"body": "hi", "client_id": "d\u{0}"}),
            "client_id",
        ),
    ] {
        let (status, answer) = app.post(&path, actor, Some(&body)).await;
        assert_field_refused(&body.to_string(), status, &answer, field);
    }
    assert_eq!(app.message_count().await, 0);
    let (status, answer) = app
        .post(
            &path,
            &customer,
            Some(&json!({"body": "line one\r\n\tline two", "client_id": "e"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(answer["body"], "line one\r\n\tline two");
}

#[tokio::test]
async fn control_characters_in_a_login_email_are_refused() {
    let app = spawn_app().await;
    let mechanic = app.mechanic("Sam").await;
    let email = app.email_of(&mechanic).await;
    for sent in [
        format!("{email}\u{0}"),
        format!("\u{0}{email}"),
        "\u{0}".to_string(),
    ] {
        let (status, answer) = app
            .post(
                "/api/auth/login",
                &Actor::Anonymous,
                Some(&json!({"email": sent, "password": crate::helpers::PASSWORD})),
            )
            .await;
        assert_field_refused(&format!("{sent:?}"), status, &answer, "email");
    }
}
