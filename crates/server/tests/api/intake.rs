//! The customer's way in: the intake and its identity cookie, the waiver, the request list, and
//! resume links (single use, short-lived, scoped to one session, asking before they replace an
//! identity).

use futures_util::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::Row;
use uuid::Uuid;

use crate::helpers::{intake_body, spawn_app, spawn_app_with, Actor, TestApp};

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

/// The identity cookie a response sets, if any.
fn identity_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("wl_customer="))
        .map(|v| v.split(';').next().unwrap().to_string())
}

/// A new resume link for `session`: (url, token).
async fn resume_link(app: &TestApp, customer: &Actor, session: Uuid) -> (String, String) {
    let (status, link) = app
        .post(
            &format!("/api/sessions/{session}/resume-link"),
            customer,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{link}");
    let url = link["url"].as_str().unwrap().to_string();
    let token = url
        .strip_prefix("/resume#token=")
        .unwrap_or_else(|| panic!("the token travels in the fragment: {url}"))
        .to_string();
    (url, token)
}

/// Redeems `token` as `actor` (with `replace_identity` when `replace`): status, body and the
/// browser it makes when it grants an identity.
async fn redeem(
    app: &TestApp,
    actor: &Actor,
    token: &str,
    replace: bool,
) -> (StatusCode, Value, Option<Actor>) {
    let response = app
        .send(
            Method::POST,
            "/api/resume",
            actor,
            Some(&json!({"token": token, "replace_identity": replace})),
        )
        .await;
    let status = response.status();
    let cookie = identity_cookie(&response);
    let body: Value = response.json().await.unwrap();
    let browser = cookie.map(|cookie| Actor::Customer {
        cookie,
        id: body["user"]["id"].as_str().unwrap().parse().unwrap(),
    });
    (status, body, browser)
}

/// A second session of `customer`, filed from the same browser with the same email.
async fn another_session(app: &TestApp, customer: &Actor) -> Uuid {
    let (status, body) = app
        .post("/api/intake", customer, Some(&intake_body()))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["user"]["id"], customer.id().unwrap().to_string());
    body["session"]["id"].as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_resume_link_opens_its_session_once_and_only_that_session() {
    let app = spawn_app().await;
    let (customer, session) = app.offered_session().await;
    let other = another_session(&app, &customer).await;
    let before = time::OffsetDateTime::now_utc();
    let (status, link) = app
        .post(
            &format!("/api/sessions/{session}/resume-link"),
            &customer,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let url = link["url"].as_str().unwrap();
    assert!(url.starts_with("/resume#token="), "{url}");
    assert!(!url.contains('?'), "nothing secret in the query: {url}");
    let expires_at = time::OffsetDateTime::parse(
        link["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    // Ten minutes from the moment the server made it, somewhere between the request and the
    // answer, in whole seconds (the server gives the link whole seconds).
    let after = time::OffsetDateTime::now_utc();
    let lifetime = time::Duration::minutes(10);
    assert!(
        expires_at > before + lifetime - time::Duration::seconds(1)
            && expires_at <= after + lifetime,
        "short-lived by default (10 minutes): expires {expires_at}, asked at {before}, \
         answered at {after}"
    );
    let token = url.strip_prefix("/resume#token=").unwrap();

    let (status, body, browser) = redeem(&app, &Actor::Anonymous, token, false).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["next"], format!("/chat/{session}"));
    let browser = browser.expect("the first use sets the identity cookie");
    let (status, read) = app.get(&format!("/api/sessions/{session}"), &browser).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read["id"], session.to_string());

    // Only that session: the customer's other session is out of this browser's reach.
    let (status, _) = app.get(&format!("/api/sessions/{other}"), &browser).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A second use, from anywhere, is refused and grants nothing.
    for again in [Actor::Anonymous, browser.clone()] {
        let (status, body, cookie) = redeem(&app, &again, token, false).await;
        assert_eq!(status, StatusCode::GONE, "{body}");
        assert_eq!(body["error"], "resume_link_used");
        assert!(
            body["message"].as_str().unwrap().contains("already used"),
            "{body}"
        );
        assert!(cookie.is_none());
    }
    let (status, body) = app
        .post(
            "/api/resume/check",
            &Actor::Anonymous,
            Some(&json!({"token": token})),
        )
        .await;
    assert_eq!(status, StatusCode::GONE);
    assert_eq!(body["error"], "resume_link_used");

    let mut tampered = token.to_string();
    tampered.push('x');
    let (status, body, _) = redeem(&app, &Actor::Anonymous, &tampered, false).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_resume_link");
}

#[tokio::test]
async fn simultaneous_redemptions_of_one_link_have_exactly_one_winner() {
    let app = spawn_app().await;
    let (customer, session) = app.offered_session().await;
    let (_, token) = resume_link(&app, &customer, session).await;
    let answers = join_all((0..20).map(|_| redeem(&app, &Actor::Anonymous, &token, false))).await;
    let won: Vec<_> = answers
        .iter()
        .filter(|(status, _, _)| *status == StatusCode::OK)
        .collect();
    assert_eq!(won.len(), 1, "{answers:?}");
    assert!(won[0].2.is_some());
    for (status, body, cookie) in &answers {
        if *status != StatusCode::OK {
            assert_eq!(*status, StatusCode::GONE);
            assert_eq!(body["error"], "resume_link_used");
            assert!(cookie.is_none());
        }
    }
}

#[tokio::test]
async fn resume_links_are_stored_only_as_hashes() {
    let app = spawn_app().await;
    let (customer, session) = app.offered_session().await;
    let (_, token) = resume_link(&app, &customer, session).await;
    let rows = sqlx::query("SELECT token_hash FROM resume_links")
        .fetch_all(app.state.store.pool())
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let stored: String = rows[0].try_get("token_hash").unwrap();
    assert_ne!(stored, token);
    assert!(!stored.contains(&token));
    assert_eq!(stored, wrenchline_server::auth::token_hash(&token));
}

#[tokio::test]
async fn an_expired_resume_link_is_gone() {
    let app = spawn_app_with(|s| s.resume_link_ttl = time::Duration::seconds(1)).await;
    let (customer, session) = app.offered_session().await;
    let (_, token) = resume_link(&app, &customer, session).await;
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let (status, body, cookie) = redeem(&app, &Actor::Anonymous, &token, false).await;
    assert_eq!(status, StatusCode::GONE);
    assert_eq!(body["error"], "resume_link_expired");
    assert!(cookie.is_none());
}

#[tokio::test]
async fn a_browser_holding_another_customer_is_asked_before_it_switches() {
    let app = spawn_app().await;
    let (a, session) = app.offered_session().await;
    let (b, b_session) = app.offered_session().await;
    let (_, token) = resume_link(&app, &a, session).await;

    // The page learns that the link would replace B, without using it.
    let (status, check) = app
        .post("/api/resume/check", &b, Some(&json!({"token": token})))
        .await;
    assert_eq!(status, StatusCode::OK, "{check}");
    assert_eq!(check["switches_identity"], true);
    assert_eq!(check["current_user"]["id"], b.id().unwrap().to_string());

    // Used without the person's consent: refused, and the link stays unused.
    let (status, body, cookie) = redeem(&app, &b, &token, false).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"], "identity_switch_required");
    assert!(cookie.is_none(), "B's identity stays in place");
    let (status, _) = app.get(&format!("/api/sessions/{b_session}"), &b).await;
    assert_eq!(status, StatusCode::OK);

    // Confirmed: the browser switches to A, for the linked session only.
    let (status, body, switched) = redeem(&app, &b, &token, true).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let switched = switched.unwrap();
    assert_eq!(switched.id(), a.id());
    let (status, _) = app
        .get(&format!("/api/sessions/{session}"), &switched)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .get(&format!("/api/sessions/{b_session}"), &switched)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The same customer's own browser, or a fresh one, is not asked.
    let (_, token) = resume_link(&app, &a, session).await;
    for actor in [&a, &Actor::Anonymous] {
        let (status, check) = app
            .post("/api/resume/check", actor, Some(&json!({"token": token})))
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(check["switches_identity"], false);
    }
    let (status, body, kept) = redeem(&app, &a, &token, false).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A's own browser keeps reaching all of A's sessions.
    let kept = kept.unwrap();
    let other = another_session(&app, &kept).await;
    let (status, _) = app.get(&format!("/api/sessions/{other}"), &kept).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn an_intake_with_another_email_is_another_customer() {
    let app = spawn_app().await;
    let (first, first_session) = app.customer_with_session().await;
    let mut body = intake_body();
    body["name"] = json!("Riley Other");
    body["email"] = json!("riley@example.com");
    body["phone"] = json!("+1 555 999 0000");
    let response = app
        .send(Method::POST, "/api/intake", &first, Some(&body))
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let cookie = identity_cookie(&response).expect("the new customer gets an identity");
    let answer: Value = response.json().await.unwrap();
    let new_id: Uuid = answer["user"]["id"].as_str().unwrap().parse().unwrap();
    assert_ne!(Some(new_id), first.id(), "a new customer, not a rename");
    assert_eq!(answer["user"]["email"], "riley@example.com");

    let stored = app
        .state
        .store
        .user(first.id().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.name, "Dana Driver");
    assert_eq!(stored.email, "dana@example.com");
    let (_, read) = app
        .get(&format!("/api/sessions/{first_session}"), &first)
        .await;
    assert_eq!(read["customer_name"], "Dana Driver");

    let riley = Actor::Customer { cookie, id: new_id };
    let (status, _) = app
        .get(&format!("/api/sessions/{first_session}"), &riley)
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "Riley does not inherit Dana's sessions"
    );
}

#[tokio::test]
async fn a_resumed_browser_files_new_requests_within_its_reach() {
    let app = spawn_app().await;
    let (customer, session) = app.offered_session().await;
    let other = another_session(&app, &customer).await;
    let (_, token) = resume_link(&app, &customer, session).await;
    let (_, _, browser) = redeem(&app, &Actor::Anonymous, &token, false).await;
    let browser = browser.unwrap();
    let mut body = intake_body();
    body["name"] = json!("Someone Else");
    let response = app
        .send(Method::POST, "/api/intake", &browser, Some(&body))
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let cookie = identity_cookie(&response).expect("the scope grows by the new session");
    let answer: Value = response.json().await.unwrap();
    let new_session: Uuid = answer["session"]["id"].as_str().unwrap().parse().unwrap();
    let browser = Actor::Customer {
        cookie,
        id: customer.id().unwrap(),
    };
    for reachable in [session, new_session] {
        let (status, _) = app
            .get(&format!("/api/sessions/{reachable}"), &browser)
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, _) = app.get(&format!("/api/sessions/{other}"), &browser).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let stored = app
        .state
        .store
        .user(customer.id().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.name, "Dana Driver",
        "a resumed browser does not edit the customer"
    );
}

#[tokio::test]
async fn the_request_list_pages_oldest_first_by_cursor() {
    let app = spawn_app().await;
    let mechanic = app.mechanic("Sam").await;
    let mut offered = Vec::new();
    for _ in 0..5 {
        offered.push(app.offered_session().await.1.to_string());
    }
    let ids = |page: &Value| -> Vec<String> {
        page.as_array()
            .expect("a plain JSON array")
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect()
    };
    let (status, all) = app.get("/api/requests", &mechanic).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids(&all), offered);

    let mut pages = Vec::new();
    let mut path = "/api/requests?limit=2".to_string();
    loop {
        let (status, page) = app.get(&path, &mechanic).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let page = ids(&page);
        let full = page.len() == 2;
        if let Some(last) = page.last() {
            path = format!("/api/requests?limit=2&after={last}");
        }
        pages.push(page);
        if !full {
            break;
        }
    }
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
    assert_eq!(pages.concat(), offered);

    // The cursor holds even when its request has left the feed meanwhile.
    let (status, _) = app
        .post(
            &format!("/api/sessions/{}/accept", offered[1]),
            &mechanic,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, page) = app
        .get(&format!("/api/requests?after={}", offered[1]), &mechanic)
        .await;
    assert_eq!(ids(&page), offered[2..]);

    for bad in [
        "limit=0",
        "limit=501",
        "limit=ten",
        "after=not-a-uuid",
        &format!("after={}", Uuid::new_v4()),
    ] {
        let (status, body) = app.get(&format!("/api/requests?{bad}"), &mechanic).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["error"], "invalid_query", "{bad}");
        assert!(body["message"].is_string());
    }
}

#[tokio::test]
async fn resume_links_need_no_credentials_and_ignore_a_broken_one() {
    let app = spawn_app().await;
    let (customer, session) = app.offered_session().await;
    let (_, token) = resume_link(&app, &customer, session).await;
    let mechanic = app.mechanic("Sam").await;
    for path in ["/api/resume/check", "/api/resume"] {
        let response = app
            .http
            .post(format!("{}{path}", app.base))
            .bearer_auth("not.a.token")
            .json(&json!({"token": token}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
    // A mechanic's token is no customer identity: nothing to switch away from.
    let (_, token) = resume_link(&app, &customer, session).await;
    let (status, check) = app
        .post(
            "/api/resume/check",
            &mechanic,
            Some(&json!({"token": token})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(check["switches_identity"], false);
    assert_eq!(check["current_user"], Value::Null);
}
