//! wrenchline-client's `MechanicSession` (what the desktop app runs, without a window) against
//! the real server: single-flight token refresh, the request feed's announcements (at sign-in,
//! during its first load, across a server restart), an accept lost to another mechanic, and a
//! restore with a revoked refresh token.

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
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

/// Waits until request `id` is announced as new.
async fn announced(events: &mut MechanicEvents, what: &str, id: Uuid) {
    next(events, what, |e| match e {
        MechanicEvent::NewRequest(s) if s.id == id => Some(()),
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

/// A TCP relay in front of a server that holds back every `GET /api/requests` it carries until
/// released: the test decides when the feed's load reaches the server.
struct LoadGate {
    /// `http://ADDR` of the relay.
    base: String,
    held: watch::Receiver<bool>,
    release: watch::Sender<bool>,
}

const LOAD: &[u8] = b"GET /api/requests";

impl LoadGate {
    async fn start(server: &str) -> LoadGate {
        let upstream: SocketAddr = server
            .trim_start_matches("http://")
            .parse()
            .expect("the server's address");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (held_tx, held) = watch::channel(false);
        let (release, release_rx) = watch::channel(false);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (held, release) = (held_tx.clone(), release_rx.clone());
                tokio::spawn(async move {
                    let _ = relay(upstream, client, held, release).await;
                });
            }
        });
        LoadGate {
            base,
            held,
            release,
        }
    }

    /// Waits until a load is held at the relay.
    async fn held(&mut self) {
        tokio::time::timeout(Duration::from_secs(10), self.held.wait_for(|h| *h))
            .await
            .expect("timed out waiting for the feed's load")
            .expect("the relay runs");
    }

    /// Lets the held load, and every later one, through.
    fn open(&self) {
        self.release.send_replace(true);
    }
}

async fn relay(
    upstream: SocketAddr,
    client: TcpStream,
    held: watch::Sender<bool>,
    mut release: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let server = TcpStream::connect(upstream).await?;
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    tokio::spawn(async move { tokio::io::copy(&mut from_server, &mut to_client).await });
    let mut buf = vec![0; 16 * 1024];
    // The end of the previous read, so a request line split across two reads is still seen.
    let mut seen = Vec::new();
    loop {
        let n = from_client.read(&mut buf).await?;
        if n == 0 {
            return to_server.shutdown().await;
        }
        seen.extend_from_slice(&buf[..n]);
        let load = seen.windows(LOAD.len()).any(|w| w == LOAD);
        seen.drain(..seen.len().saturating_sub(LOAD.len() - 1));
        if load && !*release.borrow() {
            held.send_replace(true);
            let _ = release.wait_for(|r| *r).await;
        }
        to_server.write_all(&buf[..n]).await?;
    }
}

#[tokio::test]
async fn a_request_offered_during_the_first_load_is_announced_once_and_older_ones_are_listed() {
    let app = spawn_app().await;
    // On offer before the mechanic signs in: listed, not announced.
    let (_, earlier) = app.offered_session().await;
    let mut gate = LoadGate::start(&app.base).await;
    let actor = app.mechanic("Ines").await;
    let email = app.email_of(&actor).await;
    let (session, mut events) = MechanicSession::sign_in(&gate.base, &email, PASSWORD, quick())
        .await
        .expect("a mechanic signs in");
    // The feed has subscribed (the load follows the subscription) and its first load is held.
    gate.held().await;
    let status_during_load = session.feed_status();
    let (_, during) = app.offered_session().await;
    gate.open();
    live(&mut events).await;
    // Offered after the load: its row change comes after every change about `during`, so once it
    // is announced the feed has said all it will about `during`.
    let (_, after) = app.offered_session().await;
    let mut announcements = Vec::new();
    let mut listed = Vec::new();
    next(&mut events, "the request offered after the load", |e| {
        match e {
            MechanicEvent::NewRequest(s) => announcements.push(s.id),
            MechanicEvent::Requests(rows) => listed = rows.iter().map(|s| s.id).collect(),
            _ => {}
        }
        announcements.contains(&after).then_some(())
    })
    .await;
    assert_eq!(
        announcements,
        [during, after],
        "announced once each, in order; the one on offer before the sign-in is not"
    );
    assert_eq!(listed, [earlier, during, after], "oldest first");
    assert_eq!(
        status_during_load,
        FeedStatus::Connecting,
        "live only once the list is loaded"
    );
    session.stop().await;
}

#[tokio::test]
async fn the_feed_reconnects_after_a_server_restart_and_fetches_what_it_missed() {
    let app = spawn_app().await;
    let (session, mut events) = signed_in(&app, "Noor").await;
    live(&mut events).await;
    let (_, before) = app.offered_session().await;
    announced(&mut events, "the first request", before).await;

    let addr = app.base.trim_start_matches("http://").to_string();
    let url = app.stop().await;
    next(&mut events, "the feed to notice", |e| {
        matches!(e, MechanicEvent::FeedStatus(FeedStatus::Reconnecting)).then_some(())
    })
    .await;
    let restarted = spawn_app_on(url, |s| s.bind = addr.parse().unwrap()).await;
    // Offered before the feed is back: only the re-fetch after the rejoin can find it.
    let (_, missed) = restarted.offered_session().await;
    announced(&mut events, "the missed request, from the re-fetch", missed).await;
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
    announced(&mut events, "the request", id).await;
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
