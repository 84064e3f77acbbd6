//! Mechanic availability: mechanics' apps track `{user_id, role, online_at, availability}` on the
//! `requests` topic, and `GET /api/availability` counts distinct mechanics with at least one
//! connection that is not away. Played with wrenchline-client's realtime client over real sockets.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use wrenchline_client::realtime::{Channel, ChannelOptions, RealtimeClient, RealtimeError};

use crate::helpers::{spawn_app, Actor, TestApp};

/// `mechanics_online` from `GET /api/availability`, asserting the answer is never cached.
async fn mechanics_online(app: &TestApp) -> u64 {
    let response = app
        .http
        .get(format!("{}/api/availability", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["cache-control"],
        "no-store",
        "the count must not be cached"
    );
    let body: Value = response.json().await.unwrap();
    body["mechanics_online"]
        .as_u64()
        .unwrap_or_else(|| panic!("no mechanics_online in {body}"))
}

/// Polls the count until it is `want` (a disconnect reaches the server a moment later).
async fn until_online(app: &TestApp, want: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got = mechanics_online(app).await;
        if got == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "mechanics_online stayed {got}, expected {want}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// One connection of `actor`, joined to `requests` with presence enabled, as the desktop app.
async fn feed(app: &TestApp, actor: &Actor) -> (RealtimeClient, Result<Channel, RealtimeError>) {
    let client = RealtimeClient::connect(&app.base, app.access_token(actor).await).unwrap();
    let channel = client.channel(
        "requests",
        ChannelOptions {
            presence_enabled: true,
            ..ChannelOptions::default()
        },
    );
    let joined = channel.subscribe().await.map(|_| channel);
    (client, joined)
}

async fn joined_feed(app: &TestApp, actor: &Actor) -> (RealtimeClient, Channel) {
    let (client, channel) = feed(app, actor).await;
    (client, channel.expect("a mechanic joins the request feed"))
}

fn payload(actor: &Actor, availability: &str) -> Value {
    json!({
        "user_id": actor.id().unwrap().to_string(),
        "role": "mechanic",
        "online_at": "2026-11-25T10:00:00Z",
        "availability": availability,
    })
}

#[tokio::test]
async fn mechanics_are_counted_once_each_and_not_while_away() {
    let app = spawn_app().await;
    assert_eq!(mechanics_online(&app).await, 0);

    let ana = app.mechanic("Ana").await;
    let (_laptop_client, laptop) = joined_feed(&app, &ana).await;
    assert_eq!(
        mechanics_online(&app).await,
        0,
        "joined but not tracked yet"
    );
    laptop.track(payload(&ana, "online")).await.unwrap();
    assert_eq!(mechanics_online(&app).await, 1);

    let (desk_client, desk) = joined_feed(&app, &ana).await;
    desk.track(payload(&ana, "online")).await.unwrap();
    assert_eq!(
        mechanics_online(&app).await,
        1,
        "a second connection of the same mechanic counts once"
    );

    laptop.track(payload(&ana, "away")).await.unwrap();
    assert_eq!(
        mechanics_online(&app).await,
        1,
        "one device away, the other online: available"
    );
    desk.track(payload(&ana, "away")).await.unwrap();
    assert_eq!(mechanics_online(&app).await, 0, "away on every device");

    desk.track(payload(&ana, "online")).await.unwrap();
    assert_eq!(mechanics_online(&app).await, 1);

    let ben = app.mechanic("Ben").await;
    let (ben_client, ben_feed) = joined_feed(&app, &ben).await;
    ben_feed.track(payload(&ben, "online")).await.unwrap();
    assert_eq!(mechanics_online(&app).await, 2);

    // Mechanics on the feed see each other's availability by payload, as the desktop's presence
    // view does: Ana's two connections, one of them away.
    let ana_id = ana.id().unwrap().to_string();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let state = ben_feed.presence().to_value();
        let ana_metas: Vec<&Value> = wrenchline_protocol::presence::payloads(&state)
            .filter(|p| p["user_id"] == ana_id.as_str())
            .collect();
        let mut seen: Vec<&str> = ana_metas
            .iter()
            .filter_map(|p| p["availability"].as_str())
            .collect();
        seen.sort();
        if seen == ["away", "online"] {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Ben never saw Ana's two connections: {state}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Ana's online device goes: her other one is away, so she no longer counts.
    desk_client.disconnect().await;
    until_online(&app, 1).await;
    ben_client.disconnect().await;
    until_online(&app, 0).await;

    laptop.untrack().await.unwrap();
    assert_eq!(mechanics_online(&app).await, 0);
    laptop.track(payload(&ana, "online")).await.unwrap();
    assert_eq!(mechanics_online(&app).await, 1);
    laptop.leave().await.unwrap();
    until_online(&app, 0).await;
}

#[tokio::test]
async fn a_payload_without_availability_counts_as_online() {
    let app = spawn_app().await;
    let ana = app.mechanic("Ana").await;
    let (_client, channel) = joined_feed(&app, &ana).await;
    channel
        .track(json!({"user_id": ana.id().unwrap().to_string(), "role": "mechanic", "online_at": "2026-11-25T10:00:00Z"}))
        .await
        .unwrap();
    assert_eq!(mechanics_online(&app).await, 1);
}

#[tokio::test]
async fn customers_cannot_join_the_request_feed() {
    let app = spawn_app().await;
    let (customer, _session) = app.offered_session().await;
    let (_client, joined) = feed(&app, &customer).await;
    match joined {
        Err(RealtimeError::JoinRefused { reason }) => {
            assert!(reason.starts_with("Unauthorized"), "{reason}")
        }
        other => panic!("a customer joined the request feed: {other:?}"),
    }
    assert_eq!(mechanics_online(&app).await, 0);
}

#[tokio::test]
async fn forged_or_malformed_availability_is_refused_and_not_counted() {
    let app = spawn_app().await;
    let ana = app.mechanic("Ana").await;
    let ben = app.mechanic("Ben").await;
    let (_ana_client, ana_feed) = joined_feed(&app, &ana).await;
    let (_ben_client, ben_feed) = joined_feed(&app, &ben).await;

    let refused = |result: Result<(), RealtimeError>| match result {
        Err(RealtimeError::Refused { reason }) => reason,
        other => panic!("the track was not refused: {other:?}"),
    };

    // Ana claims to be Ben: refused, and Ben is not counted on her word.
    let reason = refused(ana_feed.track(payload(&ben, "online")).await);
    assert!(reason.starts_with("Forbidden"), "{reason}");
    let mut as_customer = payload(&ana, "online");
    as_customer["role"] = json!("customer");
    let reason = refused(ana_feed.track(as_customer).await);
    assert!(reason.starts_with("Forbidden"), "{reason}");

    for bad in [
        json!("busy"),
        json!("Online"),
        json!(""),
        json!(1),
        json!({}),
    ] {
        let mut body = payload(&ana, "online");
        body["availability"] = bad.clone();
        let reason = refused(ana_feed.track(body).await);
        assert!(
            reason.contains(r#"availability must be "online" or "away""#),
            "{bad}: {reason}"
        );
    }
    assert_eq!(mechanics_online(&app).await, 0);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        ben_feed.presence().is_empty(),
        "a refused track reached another subscriber: {}",
        ben_feed.presence().to_value()
    );

    // A refused re-track leaves the accepted presence as it was.
    ana_feed.track(payload(&ana, "online")).await.unwrap();
    assert_eq!(mechanics_online(&app).await, 1);
    let mut bad = payload(&ana, "away");
    bad["availability"] = json!("lunch");
    refused(ana_feed.track(bad).await);
    assert_eq!(mechanics_online(&app).await, 1);
}

#[tokio::test]
async fn the_count_is_a_metric_and_documented() {
    let app = spawn_app().await;
    let ana = app.mechanic("Ana").await;
    let (_client, channel) = joined_feed(&app, &ana).await;
    channel.track(payload(&ana, "online")).await.unwrap();

    let gauge = || async {
        let metrics = app
            .http
            .get(format!("{}/metrics", app.metrics_base.as_ref().unwrap()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("wrenchline_mechanics_available "))
            .map(str::to_string)
    };
    assert_eq!(gauge().await.as_deref(), Some("1"));
    channel.track(payload(&ana, "away")).await.unwrap();
    assert_eq!(gauge().await.as_deref(), Some("0"));

    let (status, doc) = app.get("/api/openapi.json", &Actor::Anonymous).await;
    assert_eq!(status, StatusCode::OK);
    let op = &doc["paths"]["/api/availability"]["get"];
    assert!(op.is_object(), "no GET /api/availability in the document");
    assert!(
        op.get("security").is_none_or(|s| s
            .as_array()
            .is_some_and(|a| a.is_empty() || a.iter().any(|r| r == &json!({})))),
        "the count is public: {op}"
    );
    let schema = &doc["components"]["schemas"]["MechanicAvailability"];
    assert_eq!(
        schema["properties"]["mechanics_online"]["type"], "integer",
        "{schema}"
    );
}
