//! wrenchline-client's realtime client against the real server: presence sync by payload, the
//! live start seen as a row change, and reconnect, rejoin and re-track after a server restart.

use std::time::Duration;

use serde_json::json;
use uuid::Uuid;
use wrenchline_client::realtime::{
    Backoff, Channel, ChannelEvent, ChannelOptions, PostgresChanges, RealtimeClient,
    RealtimeOptions,
};

use crate::helpers::{spawn_app, spawn_app_on, Actor};

fn quick() -> RealtimeOptions {
    RealtimeOptions {
        reconnect: Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(500),
            jitter: 0.25,
        },
        ..RealtimeOptions::default()
    }
}

async fn presence_channel(client: &RealtimeClient, session: Uuid) -> Channel {
    let channel = client.channel(
        &format!("chat:session-{session}:presence"),
        ChannelOptions {
            presence_enabled: true,
            ..ChannelOptions::default()
        },
    );
    channel
        .subscribe()
        .await
        .expect("joins the presence channel");
    channel
}

fn payload(actor: &Actor, role: &str) -> serde_json::Value {
    json!({"user_id": actor.id().unwrap().to_string(), "role": role, "online_at": "2026-11-25T10:00:00Z"})
}

async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn presence_syncs_by_payload_and_the_session_goes_live() {
    let app = spawn_app().await;
    let (customer, mechanic, session) = app.waiting_session().await;
    let cust = RealtimeClient::connect(&app.base, app.access_token(&customer).await).unwrap();
    let mech = RealtimeClient::connect(&app.base, app.access_token(&mechanic).await).unwrap();

    let chat = cust.channel(
        &format!("chat:session-{session}"),
        ChannelOptions {
            postgres_changes: vec![
                PostgresChanges::new("*", "sessions").filter(format!("id=eq.{session}"))
            ],
            ..ChannelOptions::default()
        },
    );
    let mut chat_events = chat.events();
    chat.subscribe().await.unwrap();

    let cust_presence = presence_channel(&cust, session).await;
    cust_presence
        .track(payload(&customer, "customer"))
        .await
        .unwrap();
    let mech_presence = presence_channel(&mech, session).await;
    // A second connection of the same mechanic: still one user.
    let mech2 = RealtimeClient::connect(&app.base, app.access_token(&mechanic).await).unwrap();
    let mech2_presence = presence_channel(&mech2, session).await;
    mech2_presence
        .track(payload(&mechanic, "mechanic"))
        .await
        .unwrap();
    mech_presence
        .track(payload(&mechanic, "mechanic"))
        .await
        .unwrap();

    let mechanic_id = mechanic.id().unwrap().to_string();
    until("the mechanic in the customer's presence", || {
        cust_presence.is_present(&mechanic_id)
    })
    .await;
    assert!(
        !cust_presence
            .presence()
            .to_value()
            .as_object()
            .unwrap()
            .contains_key(&mechanic_id),
        "keys are not user ids"
    );

    let live = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Ok(ChannelEvent::PostgresChange(change)) = chat_events.recv().await {
                if change.record["status"] == "live" {
                    return change;
                }
            }
        }
    })
    .await
    .expect("the live start arrives as a row change");
    assert_eq!(live.table, "sessions");

    // One of the mechanic's two connections leaves: the mechanic is still present.
    mech2_presence.leave().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(cust_presence.is_present(&mechanic_id));
    mech_presence.untrack().await.unwrap();
    until("the mechanic gone", || {
        !cust_presence.is_present(&mechanic_id)
    })
    .await;
    let (_, read) = app
        .get(&format!("/api/sessions/{session}"), &customer)
        .await;
    assert_eq!(
        read["status"], "live",
        "a participant who drops does not end the session"
    );
}

#[tokio::test]
async fn after_a_server_restart_clients_reconnect_rejoin_and_retrack() {
    let app = spawn_app().await;
    let (customer, mechanic, session) = app.waiting_session().await;
    let cust = RealtimeClient::connect_with(&app.base, app.access_token(&customer).await, quick())
        .unwrap();
    let mech = RealtimeClient::connect_with(&app.base, app.access_token(&mechanic).await, quick())
        .unwrap();
    let cust_presence = presence_channel(&cust, session).await;
    let mut events = cust_presence.events();
    cust_presence
        .track(payload(&customer, "customer"))
        .await
        .unwrap();
    let mech_presence = presence_channel(&mech, session).await;
    mech_presence
        .track(payload(&mechanic, "mechanic"))
        .await
        .unwrap();
    let mechanic_id = mechanic.id().unwrap().to_string();
    until("both present", || cust_presence.is_present(&mechanic_id)).await;

    let addr = app.base.trim_start_matches("http://").to_string();
    let url = app.stop().await;
    let restarted = spawn_app_on(url, |s| s.bind = addr.parse().unwrap()).await;

    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(ChannelEvent::Rejoined) = events.recv().await {
                return;
            }
        }
    })
    .await
    .expect("the customer's channel rejoins by itself");
    until("the mechanic re-tracked after the restart", || {
        cust_presence.is_present(&mechanic_id)
    })
    .await;
    // The customer's own re-track may still be on its way when it sees the mechanic's.
    let topic = wrenchline_protocol::realtime::topics::Topic::SessionPresence(session);
    until(
        "the server's presence is rebuilt from both re-tracks",
        || restarted.state.hub.present_users(topic).len() == 2,
    )
    .await;
}
