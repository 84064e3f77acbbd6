//! The waiting room and mechanics' availability as shared state: the place in line moves when a
//! request ahead is accepted or cancelled, the expected wait is the moving average of known
//! accept times, availability is seen by every node on the database and lapses after the grace
//! period when the node holding the connection stops refreshing it.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use time::OffsetDateTime;
use uuid::Uuid;
use wrenchline_client::realtime::{Channel, ChannelOptions, RealtimeClient};

use crate::helpers::{spawn_app, spawn_app_on, Actor, TestApp};

async fn room(app: &TestApp, customer: &Actor, session: Uuid) -> Value {
    let (status, body) = app
        .get(&format!("/api/sessions/{session}/waiting-room"), customer)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn online(app: &TestApp) -> u64 {
    let (_, body) = app.get("/api/availability", &Actor::Anonymous).await;
    body["mechanics_online"].as_u64().unwrap()
}

async fn until_online(app: &TestApp, want: u64, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let got = online(app).await;
        if got == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "mechanics_online stayed {got}, expected {want}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn on_feed(app: &TestApp, mechanic: &Actor, availability: &str) -> (RealtimeClient, Channel) {
    let client = RealtimeClient::connect(&app.base, app.access_token(mechanic).await).unwrap();
    let channel = client.channel(
        "requests",
        ChannelOptions {
            presence_enabled: true,
            ..ChannelOptions::default()
        },
    );
    channel.subscribe().await.unwrap();
    channel
        .track(json!({
            "user_id": mechanic.id().unwrap().to_string(),
            "role": "mechanic",
            "online_at": "2026-12-07T08:00:00Z",
            "availability": availability,
        }))
        .await
        .unwrap();
    (client, channel)
}

#[tokio::test]
async fn the_place_in_line_moves_when_requests_ahead_are_accepted_or_cancelled() {
    let app = spawn_app().await;
    let (first, first_id) = app.offered_session().await;
    let (_second, second_id) = app.offered_session().await;
    let (third, third_id) = app.offered_session().await;
    assert_eq!(room(&app, &first, first_id).await["ahead"], 0);
    assert_eq!(room(&app, &third, third_id).await["ahead"], 2);

    let mechanic = app.mechanic("Sam").await;
    let (status, _) = app
        .post(
            &format!("/api/sessions/{second_id}/accept"),
            &mechanic,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(room(&app, &third, third_id).await["ahead"], 1);

    let (status, _) = app
        .post(&format!("/api/sessions/{first_id}/end"), &first, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let third_room = room(&app, &third, third_id).await;
    assert_eq!(third_room["ahead"], 0);
    assert_eq!(third_room["status"], "pending");
    assert_eq!(third_room["refresh_seconds"], 5);

    // Out of line once ended; and nobody else's room is readable.
    assert_eq!(room(&app, &first, first_id).await["ahead"], Value::Null);
    let (status, _) = app
        .get(&format!("/api/sessions/{third_id}/waiting-room"), &first)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_expected_wait_is_the_moving_average_of_known_accept_times() {
    let app = spawn_app().await;
    let (customer, waiting) = app.offered_session().await;
    assert_eq!(
        room(&app, &customer, waiting).await["typical_wait_seconds"],
        Value::Null
    );

    // Three accepted requests with known offered→accepted times: 60 s, 120 s, 30 s (in that
    // order of accept): 60 → 0.3·120 + 0.7·60 = 78 → 0.3·30 + 0.7·78 = 63.6 → 64.
    // Within the mechanic join timeout, so the clock leaves them waiting.
    let base = OffsetDateTime::now_utc() - time::Duration::minutes(8);
    for (i, wait) in [60_i64, 120, 30].into_iter().enumerate() {
        let (_, _, id) = app.waiting_session().await;
        let offered = base + time::Duration::minutes(2 * i as i64);
        let accepted = offered + time::Duration::seconds(wait);
        sqlx::query("UPDATE sessions SET offered_at = $1, accepted_at = $2 WHERE id = $3")
            .bind(wrenchline_server::storage::millis(offered))
            .bind(wrenchline_server::storage::millis(accepted))
            .bind(id.to_string())
            .execute(app.state.store.pool())
            .await
            .unwrap();
    }
    let body = room(&app, &customer, waiting).await;
    assert_eq!(body["typical_wait_seconds"], 64, "{body}");
    assert_eq!(body["ahead"], 0);
    assert_eq!(body["expected_wait_seconds"], 64);

    let (later, later_id) = app.offered_session().await;
    let body = room(&app, &later, later_id).await;
    assert_eq!(body["ahead"], 1);
    assert_eq!(
        body["expected_wait_seconds"], 128,
        "two in line: twice the typical wait"
    );
}

#[tokio::test]
async fn availability_is_shared_between_nodes_and_lapses_after_the_grace_period() {
    let grace = |s: &mut wrenchline_server::Settings| {
        s.availability_grace = time::Duration::seconds(3);
    };
    let node_a = spawn_app_on(crate::helpers::fresh_database_url().await, grace).await;
    let node_b = spawn_app_on(node_a.database_url.clone(), grace).await;
    let ana = node_a.mechanic("Ana").await;
    let (_client, channel) = on_feed(&node_a, &ana, "online").await;
    assert_eq!(
        online(&node_a).await,
        1,
        "the node holding the connection knows at once"
    );
    until_online(&node_b, 1, Duration::from_secs(5)).await;

    channel
        .track(json!({
            "user_id": ana.id().unwrap().to_string(),
            "role": "mechanic",
            "online_at": "2026-12-07T08:00:00Z",
            "availability": "away",
        }))
        .await
        .unwrap();
    assert_eq!(online(&node_a).await, 0);
    until_online(&node_b, 0, Duration::from_secs(5)).await;
    channel
        .track(json!({
            "user_id": ana.id().unwrap().to_string(),
            "role": "mechanic",
            "online_at": "2026-12-07T08:00:00Z",
            "availability": "online",
        }))
        .await
        .unwrap();
    until_online(&node_b, 1, Duration::from_secs(5)).await;

    // Node A stops refreshing without clearing its rows (as if it died): its sync task is the
    // only writer, so stopping the refresh is enough; node B drops Ana after the grace period.
    let renamed = tokio::time::Instant::now();
    sqlx::query("UPDATE mechanic_presence SET node_id = 'a-node-that-died'")
        .execute(node_b.state.store.pool())
        .await
        .unwrap();
    node_a.stop().await;
    assert_eq!(online(&node_b).await, 1, "still within the grace period");
    until_online(&node_b, 0, Duration::from_secs(6)).await;
    // Refreshed at most a second before the rename, so it counted for 2 s after it at least.
    assert!(
        renamed.elapsed() >= Duration::from_secs(2),
        "dropped before the grace period was over: {:?}",
        renamed.elapsed()
    );
}

#[tokio::test]
async fn with_nobody_online_the_room_says_when_someone_usually_is() {
    let app = spawn_app().await;
    let ana = app.mechanic("Ana").await;
    let (_client, channel) = on_feed(&app, &ana, "online").await;
    let (customer, session) = app.offered_session().await;
    let body = room(&app, &customer, session).await;
    assert_eq!(body["mechanics_online"], 1);
    assert_eq!(
        body["usually_online_at"],
        Value::Null,
        "someone is online now"
    );
    // The hour Ana was online is recorded once the node writes her row.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while app
        .state
        .store
        .online_hours(OffsetDateTime::now_utc() - time::Duration::hours(2))
        .await
        .unwrap()
        .is_empty()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no online hour recorded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    channel
        .track(json!({
            "user_id": ana.id().unwrap().to_string(),
            "role": "mechanic",
            "online_at": "2026-12-07T08:00:00Z",
            "availability": "away",
        }))
        .await
        .unwrap();
    until_online(&app, 0, Duration::from_secs(10)).await;
    let body = room(&app, &customer, session).await;
    let usually = OffsetDateTime::parse(
        body["usually_online_at"]
            .as_str()
            .expect("an hour is named"),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let now = OffsetDateTime::now_utc();
    // One week of history with one hour in it: that hour next week.
    let next_week = now + time::Duration::days(7);
    assert!(
        usually > now && (usually - next_week).abs() <= time::Duration::hours(1),
        "{usually} is not this hour next week"
    );
}
