use reqwest::StatusCode;
use serde_json::json;
use time::{Duration, OffsetDateTime};
use wrenchline_server::auth::TokenKind;

use crate::helpers::{spawn_app, Actor, PASSWORD};

fn refresh_of(actor: &Actor) -> String {
    match actor {
        Actor::Mechanic { refresh, .. } => refresh.clone(),
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn wrong_passwords_and_unknown_accounts_get_the_same_answer() {
    let app = spawn_app().await;
    let mechanic = app.mechanic("Sam").await;
    let email = app.email_of(&mechanic).await;
    let (s1, wrong) = app
        .post(
            "/api/auth/login",
            &Actor::Anonymous,
            Some(&json!({"email": email, "password": "nope"})),
        )
        .await;
    let (s2, unknown) = app
        .post(
            "/api/auth/login",
            &Actor::Anonymous,
            Some(&json!({"email": "who@nowhere.example", "password": PASSWORD})),
        )
        .await;
    assert_eq!(
        (s1, s2),
        (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED)
    );
    assert_eq!(wrong, unknown);
    assert_eq!(wrong["error"], "invalid_credentials");
}

#[tokio::test]
async fn refresh_rotates_and_a_spent_token_revokes_its_family() {
    let app = spawn_app().await;
    let mechanic = app.mechanic("Sam").await;
    let first = refresh_of(&mechanic);
    let (status, rotated) = app
        .post(
            "/api/auth/refresh",
            &Actor::Anonymous,
            Some(&json!({"refresh_token": first})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let second = rotated["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(second, first);
    let fresh = Actor::Mechanic {
        token: rotated["access_token"].as_str().unwrap().into(),
        refresh: second.clone(),
        id: mechanic.id().unwrap(),
    };
    let (status, _) = app.get("/api/requests", &fresh).await;
    assert_eq!(status, StatusCode::OK);

    // The first token is spent: presenting it again looks like theft, and the family dies.
    let (status, body) = app
        .post(
            "/api/auth/refresh",
            &Actor::Anonymous,
            Some(&json!({"refresh_token": first})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "refresh_token_reused");
    let (status, body) = app
        .post(
            "/api/auth/refresh",
            &Actor::Anonymous,
            Some(&json!({"refresh_token": second})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "refresh_token_reused");
}

#[tokio::test]
async fn logout_revokes_the_sign_in() {
    let app = spawn_app().await;
    let mechanic = app.mechanic("Sam").await;
    let refresh = refresh_of(&mechanic);
    let (status, _) = app
        .post(
            "/api/auth/logout",
            &Actor::Anonymous,
            Some(&json!({"refresh_token": refresh})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = app
        .post(
            "/api/auth/refresh",
            &Actor::Anonymous,
            Some(&json!({"refresh_token": refresh})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "refresh_token_reused");
    let (status, body) = app
        .post(
            "/api/auth/refresh",
            &Actor::Anonymous,
            Some(&json!({"refresh_token": "made-up"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_refresh_token");
}

#[tokio::test]
async fn a_disabled_mechanic_loses_access() {
    let app = spawn_app().await;
    let mechanic = app.mechanic("Sam").await;
    let email = app.email_of(&mechanic).await;
    assert!(app
        .state
        .store
        .disable_mechanic(&email, OffsetDateTime::now_utc())
        .await
        .unwrap());
    let (status, _) = app
        .post(
            "/api/auth/login",
            &Actor::Anonymous,
            Some(&json!({"email": email, "password": PASSWORD})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = app
        .post(
            "/api/auth/refresh",
            &Actor::Anonymous,
            Some(&json!({"refresh_token": refresh_of(&mechanic)})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = app.get("/api/requests", &mechanic).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn expired_and_forged_access_tokens_are_refused() {
    let app = spawn_app().await;
    let mechanic = app.mechanic("Sam").await;
    let user = app
        .state
        .store
        .user(mechanic.id().unwrap())
        .await
        .unwrap()
        .unwrap();
    let expired = app.state.signer.sign(
        &user,
        TokenKind::Access,
        Duration::minutes(1),
        None,
        OffsetDateTime::now_utc() - Duration::hours(1),
    );
    let (status, body) = app
        .get(
            "/api/requests",
            &Actor::Mechanic {
                token: expired,
                refresh: String::new(),
                id: user.id,
            },
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "token_expired");

    let forged = wrenchline_server::auth::TokenSigner::new(b"someone else's secret, 32 bytes!")
        .sign(
            &user,
            TokenKind::Access,
            Duration::minutes(5),
            None,
            OffsetDateTime::now_utc(),
        );
    let (status, body) = app
        .get(
            "/api/requests",
            &Actor::Mechanic {
                token: forged,
                refresh: String::new(),
                id: user.id,
            },
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_token");

    // A customer's cookie token is not a bearer token.
    let (customer, _) = app.customer_with_session().await;
    let Actor::Customer { cookie, id } = customer else {
        unreachable!()
    };
    let (status, _) = app
        .get(
            "/api/requests",
            &Actor::Mechanic {
                token: cookie,
                refresh: String::new(),
                id,
            },
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_customer_trades_the_cookie_for_an_access_token() {
    let app = spawn_app().await;
    let (customer, session) = app.offered_session().await;
    let (status, token) = app.post("/api/auth/token", &customer, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(token["user"]["role"], "customer");
    assert!(token["expires_in"].as_u64().unwrap() > 0);
    let bearer = Actor::Mechanic {
        token: token["access_token"].as_str().unwrap().into(),
        refresh: String::new(),
        id: customer.id().unwrap(),
    };
    let (status, read) = app.get(&format!("/api/sessions/{session}"), &bearer).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read["id"], session.to_string());
    let (status, _) = app.get("/api/requests", &bearer).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a customer's token does not make a mechanic"
    );
}
