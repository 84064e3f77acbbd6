//! Data retention: customers' personal data and chat transcripts are deleted a set number of days
//! after their session ended, by a conditional pass that any number of servers may run at once,
//! and the server runs it itself (`--retention-days`).

use time::{Duration, OffsetDateTime};
use uuid::Uuid;
use wrenchline_protocol::{EndReason, Intake, SessionStatus, User, Vehicle};
use wrenchline_server::storage::{Forgotten, Store};

use crate::helpers::{fresh_database_url, spawn_server_process};

fn intake(email: &str) -> Intake {
    Intake {
        name: "Dana Driver".into(),
        email: email.into(),
        phone: Some("+1 555 010 2030".into()),
        vehicle: Vehicle {
            year: 2018,
            make: "Honda".into(),
            model: "Civic".into(),
            vin: Some("1HGCM82633A004352".into()),
            mileage: Some(84_000),
        },
        concern: "Grinding noise when braking".into(),
        plan: "trial".into(),
    }
}

/// A customer whose session was created at `at`, accepted, chatted on (two messages) and, unless
/// `ended` is `None`, ended at that time. Returns the customer and the session.
async fn session_at(
    store: &Store,
    mechanic: &User,
    at: OffsetDateTime,
    ended: Option<OffsetDateTime>,
) -> (User, Uuid) {
    let email = format!("dana-{}@example.com", Uuid::new_v4().simple());
    let customer = store
        .create_customer("Dana Driver", &email, Some("+1 555 010 2030"), at)
        .await
        .unwrap();
    let session = store
        .create_session(customer.id, &intake(&email), 10, at)
        .await
        .unwrap();
    store
        .sign_waiver(session.id, customer.id, "Dana Driver", "2026-01", at)
        .await
        .unwrap();
    store.accept(session.id, mechanic.id, at).await.unwrap();
    for (who, body) in [(&customer, "It grinds"), (mechanic, "Check the pads")] {
        store
            .post_message(
                session.id,
                who,
                &Uuid::new_v4().to_string(),
                body,
                &[SessionStatus::Waiting],
                at,
            )
            .await
            .unwrap()
            .unwrap();
    }
    if let Some(end) = ended {
        store
            .finish(
                session.id,
                SessionStatus::Waiting,
                SessionStatus::Cancelled,
                EndReason::EndedByMechanic,
                end,
            )
            .await
            .unwrap();
    }
    (customer, session.id)
}

async fn customer_row(store: &Store, id: Uuid) -> (String, String) {
    let user = store
        .user(id)
        .await
        .unwrap()
        .expect("the customer row stays");
    (user.name, user.email)
}

#[tokio::test]
async fn personal_data_goes_once_the_retention_period_after_the_end_has_passed() {
    let db = fresh_database_url().await;
    let store = Store::connect(&db).await.unwrap();
    let now = OffsetDateTime::now_utc();
    let mechanic = store
        .create_mechanic("pat@garage.example", "Pat", "x", now - Duration::days(900))
        .await
        .unwrap()
        .unwrap();
    let days = 365;
    let old = now - Duration::days(400);
    // Ended 400 days ago: forgotten.
    let (gone, gone_session) = session_at(&store, &mechanic, old, Some(old)).await;
    // Started 400 days ago, ended 10 days ago: kept.
    let (late, late_session) =
        session_at(&store, &mechanic, old, Some(now - Duration::days(10))).await;
    // Still open after 400 days (accepted, never ended): kept.
    let (open, _) = session_at(&store, &mechanic, old, None).await;

    let cutoff = now - Duration::days(days);
    let done = store.forget_ended_sessions(cutoff).await.unwrap();
    assert_eq!(
        done,
        Forgotten {
            messages: 2,
            sessions: 1,
            customers: 1
        }
    );
    assert!(store
        .messages(gone_session, 0, 100)
        .await
        .unwrap()
        .is_empty());
    let session = store.session(gone_session).await.unwrap().unwrap();
    assert_eq!(session.concern, "");
    assert_eq!(session.vehicle.vin, None);
    assert_eq!(session.customer_name, "");
    assert_eq!(
        session.status,
        SessionStatus::Cancelled,
        "the record of the session stays"
    );
    assert_eq!(
        customer_row(&store, gone.id).await,
        (String::new(), String::new())
    );

    assert_eq!(store.messages(late_session, 0, 100).await.unwrap().len(), 2);
    let kept = store.session(late_session).await.unwrap().unwrap();
    assert_eq!(kept.concern, "Grinding noise when braking");
    assert_eq!(customer_row(&store, late.id).await.0, "Dana Driver");
    assert_eq!(customer_row(&store, open.id).await.0, "Dana Driver");

    // Again, and by two servers at once: nothing left to delete, nothing fails.
    let (a, b) = tokio::join!(
        store.forget_ended_sessions(cutoff),
        store.forget_ended_sessions(cutoff)
    );
    assert_eq!(a.unwrap(), Forgotten::default());
    assert_eq!(b.unwrap(), Forgotten::default());
    // A customer whose later session also ends long enough ago goes then.
    let done = store
        .forget_ended_sessions(now - Duration::days(5))
        .await
        .unwrap();
    assert_eq!(done.customers, 1, "{done:?}");
    assert_eq!(customer_row(&store, late.id).await.0, "");
    assert_eq!(customer_row(&store, open.id).await.0, "Dana Driver");
    store.close().await;
}

#[tokio::test]
async fn the_server_runs_retention_itself_at_start() {
    let db = fresh_database_url().await;
    let store = Store::connect(&db).await.unwrap();
    let now = OffsetDateTime::now_utc();
    let mechanic = store
        .create_mechanic("pat@garage.example", "Pat", "x", now)
        .await
        .unwrap()
        .unwrap();
    let ended = now - Duration::days(3);
    let (customer, session) = session_at(&store, &mechanic, ended, Some(ended)).await;

    // The default (365 days) keeps it.
    let mut server = spawn_server_process(|serve| {
        serve.args(["--bind", "127.0.0.1:0", "--database-url", &db]);
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    server.kill();
    assert_eq!(store.messages(session, 0, 100).await.unwrap().len(), 2);

    let _server = spawn_server_process(|serve| {
        serve
            .args(["--bind", "127.0.0.1:0", "--database-url", &db])
            .env("WRENCHLINE_RETENTION_DAYS", "2");
    })
    .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while !store.messages(session, 0, 100).await.unwrap().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the server deleted the transcript"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(customer_row(&store, customer.id).await.1, "");
    store.close().await;
}
