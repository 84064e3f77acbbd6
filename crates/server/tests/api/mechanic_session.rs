//! wrenchline-client's `MechanicSession` (what the desktop app runs, without a window) against
//! the real server: single-flight token refresh, the request feed across a server restart, an
//! accept lost to another mechanic, and a restore with a revoked refresh token.

use std::time::Duration;

use reqwest::StatusCode;
use uuid::Uuid;
use wrenchline_client::realtime::{Backoff, RealtimeOptions};
use wrenchline_client::{
    ChatEvent, ClientError, FeedStatus, MechanicEvent, MechanicEvents, MechanicOptions,
    MechanicSession,
};

use crate::helpers::{spawn_app, spawn_app_on, Actor, TestApp, PASSWORD};

fn quick() -> MechanicOptions {
    MechanicOptions {
        realtime: RealtimeOptions {
            reconnect: Backoff {
                initial: Duration::from_millis(100),
                max: Duration::from_millis(500),
                jitter: 0.25,
            },
            ..RealtimeOptions::default()
        },
        resubscribe_after: Duration::from_millis(200),
        retry_after: Duration::from_millis(200),
        ..MechanicOptions::default()
    }
}

async fn signed_in(app: &TestApp, name: &str) -> (MechanicSession, MechanicEvents) {
    let actor = app.mechanic(name).await;
    let email = app.email_of(&actor).await;
    MechanicSession::sign_in(&app.base, &email, PASSWORD, quick())
        .await
        .expect("a mechanic signs in")
}

/// The next event that `pick` accepts, within 10 s.
async fn next<T>(
    events: &mut MechanicEvents,
    what: &str,
    mut pick: impl FnMut(&MechanicEvent) -> Option<T>,
) -> T {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let event = events.recv().await.expect("the session is running");
            if let Some(found) = pick(&event) {
                return found;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Waits until request `id` is in the feed. A request offered while the feed's first load is
/// under way comes in that load (listed, not announced as new); later ones are announced.
async fn listed(events: &mut MechanicEvents, what: &str, id: Uuid) {
    next(events, what, |e| match e {
        MechanicEvent::NewRequest(s) if s.id == id => Some(()),
        MechanicEvent::Requests(rows) if rows.iter().any(|s| s.id == id) => Some(()),
        _ => None,
    })
    .await;
}

async fn live(events: &mut MechanicEvents) {
    next(events, "the feed to be live", |e| {
        matches!(e, MechanicEvent::FeedStatus(FeedStatus::Live)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn concurrent_refreshes_send_one_request_and_keep_the_sign_in() {
    let app = spawn_app().await;
    let (session, mut events) = signed_in(&app, "Rae").await;
    let first = next(&mut events, "the first token to store", |e| match e {
        MechanicEvent::StoreRefreshToken(t) => Some(t.clone()),
        _ => None,
    })
    .await;
    let seen = session.token_generation();
    let results = futures_util::future::join_all((0..16).map(|_| session.refresh(seen))).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(
        session.refreshes_sent(),
        1,
        "one refresh for sixteen callers"
    );
    assert_eq!(session.token_generation(), seen + 1);
    let rotated = next(&mut events, "the rotated token to store", |e| match e {
        MechanicEvent::StoreRefreshToken(t) => Some(t.clone()),
        _ => None,
    })
    .await;
    assert_ne!(rotated, first);
    assert_eq!(session.refresh_token(), rotated);
    // Had a second request reused the spent token, the server would have revoked the sign-in.
    let requests = session
        .call(|api| async move { api.requests().await })
        .await;
    assert!(requests.is_ok(), "{requests:?}");
    let (again, _) = MechanicSession::restore(&app.base, rotated.expose(), quick())
        .await
        .expect("the rotated token still signs in");
    again.stop().await;
    session.stop().await;
}

#[tokio::test]
async fn the_feed_reconnects_after_a_server_restart_and_fetches_what_it_missed() {
    let app = spawn_app().await;
    let (session, mut events) = signed_in(&app, "Noor").await;
    live(&mut events).await;
    let (_, before) = app.offered_session().await;
    listed(&mut events, "the first request", before).await;

    let addr = app.base.trim_start_matches("http://").to_string();
    let url = app.stop().await;
    next(&mut events, "the feed to notice", |e| {
        matches!(e, MechanicEvent::FeedStatus(FeedStatus::Reconnecting)).then_some(())
    })
    .await;
    let restarted = spawn_app_on(url, |s| s.bind = addr.parse().unwrap()).await;
    // Offered before the feed is back: only the re-fetch after the rejoin can find it.
    let (_, missed) = restarted.offered_session().await;
    next(
        &mut events,
        "the missed request, from the re-fetch",
        |e| match e {
            MechanicEvent::NewRequest(s) if s.id == missed => Some(()),
            _ => None,
        },
    )
    .await;
    assert_eq!(session.feed_status(), FeedStatus::Live);
    let ids: Vec<Uuid> = session.requests().iter().map(|s| s.id).collect();
    assert_eq!(ids, [before, missed], "oldest first, nothing lost");
    session.stop().await;
}

#[tokio::test]
async fn an_accept_lost_to_another_mechanic_says_so_and_drops_the_row() {
    let app = spawn_app().await;
    let (session, mut events) = signed_in(&app, "Lou").await;
    live(&mut events).await;
    let (_, id) = app.offered_session().await;
    listed(&mut events, "the request", id).await;
    let rival = app.mechanic("Rival").await;
    let (status, _) = app
        .post(&format!("/api/sessions/{id}/accept"), &rival, None)
        .await;
    assert_eq!(status, StatusCode::OK);

    let lost = session.accept(id).await.expect_err("the rival was first");
    assert_eq!(lost.code(), Some("already_accepted"));
    assert_eq!(lost.status(), Some(StatusCode::CONFLICT));
    next(&mut events, "the list without it", |e| match e {
        MechanicEvent::Requests(rows) if rows.iter().all(|s| s.id != id) => Some(()),
        _ => None,
    })
    .await;
    assert!(session.requests().iter().all(|s| s.id != id));
    session.stop().await;
}

#[tokio::test]
async fn a_restore_with_a_revoked_token_is_refused_and_starts_nothing() {
    let app = spawn_app().await;
    let actor = app.mechanic("Kit").await;
    let Actor::Mechanic { refresh, .. } = &actor else {
        unreachable!()
    };
    let (status, _) = app
        .post(
            "/api/auth/logout",
            &Actor::Anonymous,
            Some(&serde_json::json!({"refresh_token": refresh})),
        )
        .await;
    assert!(status.is_success(), "{status}");
    let refused = MechanicSession::restore(&app.base, refresh, quick()).await;
    assert!(
        matches!(refused, Err(ClientError::SignInExpired)),
        "{:?}",
        refused.err()
    );
    // A server that cannot be reached is not a refusal: the caller retries later.
    let unreachable = MechanicSession::restore("http://127.0.0.1:9", refresh, quick()).await;
    assert!(matches!(unreachable, Err(ClientError::Transport(_))));
}

#[tokio::test]
async fn a_refresh_token_revoked_while_signed_in_signs_the_session_out() {
    let app = spawn_app().await;
    let (session, mut events) = signed_in(&app, "Ash").await;
    live(&mut events).await;
    let token = session.refresh_token();
    let (status, _) = app
        .post(
            "/api/auth/logout",
            &Actor::Anonymous,
            Some(&serde_json::json!({"refresh_token": token.expose()})),
        )
        .await;
    assert!(status.is_success(), "{status}");
    let refused = session.refresh(session.token_generation()).await;
    assert!(matches!(refused, Err(ClientError::SignInExpired)));
    next(&mut events, "signed out", |e| {
        matches!(e, MechanicEvent::SignedOut).then_some(())
    })
    .await;
    let after = session
        .call(|api| async move { api.requests().await })
        .await;
    assert!(matches!(after, Err(ClientError::SignInExpired)));
    session.stop().await;
}

#[tokio::test]
async fn an_accepted_request_opens_a_chat_that_reports_presence_and_messages() {
    let app = spawn_app().await;
    let (session, mut events) = signed_in(&app, "Joy").await;
    live(&mut events).await;
    let (customer, id) = app.offered_session().await;
    let accepted = session.accept(id).await.expect("the first accept wins");
    assert_eq!(accepted.mechanic_id, Some(session.user().id));
    session.open_chat(id).await;
    let state = next(
        &mut events,
        "the mechanic present in the chat",
        |e| match e {
            MechanicEvent::Chat(ChatEvent::Presence { session_id, state }) if *session_id == id => {
                Some(state.clone())
            }
            _ => None,
        },
    )
    .await;
    let me = session.user().id.to_string();
    assert!(
        wrenchline_protocol::presence::present_user_ids(&state).contains(&me),
        "{state}"
    );
    let (status, _) = app
        .post(
            &format!("/api/sessions/{id}/messages"),
            &customer,
            Some(&serde_json::json!({"body": "Are you there?", "client_id": "c-1"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    next(&mut events, "the customer's message", |e| match e {
        MechanicEvent::Chat(ChatEvent::Message { message, .. })
            if message["body"] == "Are you there?" =>
        {
            Some(())
        }
        _ => None,
    })
    .await;
    session.close_chat(id).await;
    session.stop().await;
}
