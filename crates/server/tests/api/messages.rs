use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn messages_are_stored_in_order_and_read_back_after_a_seq() {
    let app = spawn_app().await;
    let (customer, mechanic, session) = app.waiting_session().await;
    let path = format!("/api/sessions/{session}/messages");
    let (status, first) = app
        .post(
            &path,
            &customer,
            Some(&json!({"body": "Hello?", "client_id": "c-1"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(first["seq"], 1);
    assert_eq!(first["sender_role"], "customer");
    let (status, second) = app
        .post(
            &path,
            &mechanic,
            Some(&json!({"body": "Hi, I'm here", "client_id": "m-1"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(second["seq"], 2);
    let (_, all) = app.get(&path, &customer).await;
    assert_eq!(all.as_array().unwrap().len(), 2);
    let (_, after) = app.get(&format!("{path}?after=1"), &mechanic).await;
    let after = after.as_array().unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0]["id"], second["id"]);
}

#[tokio::test]
async fn posting_again_with_the_same_client_id_returns_the_same_message() {
    let app = spawn_app().await;
    let (customer, _mechanic, session) = app.waiting_session().await;
    let path = format!("/api/sessions/{session}/messages");
    let body = json!({"body": "It makes a clicking noise", "client_id": "0b6f6a9c-retry"});
    let (s1, m1) = app.post(&path, &customer, Some(&body)).await;
    let (s2, m2) = app.post(&path, &customer, Some(&body)).await;
    assert_eq!((s1, s2), (StatusCode::CREATED, StatusCode::OK));
    assert_eq!(m1, m2);
    assert_eq!(app.message_count().await, 1);
}

#[tokio::test]
async fn concurrent_posts_get_gap_free_sequence_numbers() {
    let app = spawn_app().await;
    let (customer, mechanic, session) = app.waiting_session().await;
    let path = format!("/api/sessions/{session}/messages");
    let bodies: Vec<_> = (0..30)
        .map(|i| {
            (
                i,
                json!({"body": format!("message {i}"), "client_id": format!("id-{i}")}),
            )
        })
        .collect();
    let results = join_all(bodies.iter().map(|(i, body)| {
        let who = if i % 2 == 0 { &customer } else { &mechanic };
        app.post(&path, who, Some(body))
    }))
    .await;
    assert!(
        results.iter().all(|(s, _)| *s == StatusCode::CREATED),
        "{results:?}"
    );
    let (_, all) = app.get(&path, &customer).await;
    let seqs: Vec<i64> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=30).collect::<Vec<_>>());
}

#[tokio::test]
async fn one_client_id_posted_many_times_at_once_among_other_posts_is_stored_once() {
    let app = spawn_app().await;
    let (customer, mechanic, session) = app.waiting_session().await;
    let path = format!("/api/sessions/{session}/messages");
    let repeated = json!({"body": "Sent again and again", "client_id": "flaky-network"});
    let others: Vec<_> = (0..10)
        .map(|i| json!({"body": format!("other {i}"), "client_id": format!("other-{i}")}))
        .collect();
    let posts = (0..10).flat_map(|i| {
        [
            app.post(&path, &customer, Some(&repeated)),
            app.post(&path, &mechanic, Some(&others[i])),
        ]
    });
    let results = join_all(posts).await;
    let (repeats, rest): (Vec<_>, Vec<_>) = results
        .into_iter()
        .enumerate()
        .partition(|(i, _)| i % 2 == 0);
    let created = repeats
        .iter()
        .filter(|(_, (s, _))| *s == StatusCode::CREATED)
        .count();
    assert_eq!(created, 1, "{repeats:?}");
    assert!(
        repeats.iter().all(
            |(_, (s, m))| (*s == StatusCode::CREATED || *s == StatusCode::OK)
                && *m == repeats[0].1 .1
        ),
        "{repeats:?}"
    );
    assert!(
        rest.iter().all(|(_, (s, _))| *s == StatusCode::CREATED),
        "{rest:?}"
    );
    let (_, all) = app.get(&path, &customer).await;
    let seqs: Vec<i64> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=11).collect::<Vec<_>>());
    assert_eq!(app.message_count().await, 11);
}

#[tokio::test]
async fn messages_need_an_accepted_open_session() {
    let app = spawn_app().await;
    let (customer, session) = app.offered_session().await;
    let path = format!("/api/sessions/{session}/messages");
    let (status, body) = app
        .post(
            &path,
            &customer,
            Some(&json!({"body": "anyone?", "client_id": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"], "not_accepted");

    let (customer, _mechanic, session) = app.waiting_session().await;
    app.post(&format!("/api/sessions/{session}/end"), &customer, None)
        .await;
    let (status, body) = app
        .post(
            &format!("/api/sessions/{session}/messages"),
            &customer,
            Some(&json!({"body": "late", "client_id": "y"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"], "session_ended");
    assert_eq!(app.message_count().await, 0);
}

#[tokio::test]
async fn bad_messages_are_refused_with_field_errors() {
    let app = spawn_app().await;
    let (customer, _mechanic, session) = app.waiting_session().await;
    let path = format!("/api/sessions/{session}/messages");
    let long = "x".repeat(wrenchline_protocol::MAX_MESSAGE_CHARS + 1);
    for (body, field) in [
        (json!({"body": "   ", "client_id": "a"}), "body"),
        (json!({"body": long, "client_id": "a"}), "body"),
        (json!({"body": "hi", "client_id": ""}), "client_id"),
        (json!({"body": "hi", "client_id": "has space"}), "client_id"),
    ] {
        let (status, err) = app.post(&path, &customer, Some(&body)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
        assert!(err["fields"][field].is_string(), "{err}");
    }
    let (status, _) = app.get(&format!("{path}?after=-1"), &customer).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = app.get(&format!("{path}?after=abc"), &customer).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(app.message_count().await, 0);
}

#[tokio::test]
async fn messages_are_refused_once_the_time_is_up_even_before_the_clock_ends_the_session() {
    let app = spawn_app().await;
    let (customer, _mechanic, session) = app.waiting_session().await;
    let now = time::OffsetDateTime::now_utc();
    // Live with a minute left: the session clock has nothing to do yet.
    let started = now - time::Duration::minutes(29);
    app.state.store.start(session, started).await.unwrap();
    let user = app
        .state
        .store
        .user(customer.id().unwrap())
        .await
        .unwrap()
        .unwrap();
    let open = wrenchline_server::lifecycle::OPEN_FOR_MESSAGES;
    // At a moment past `ends_at`, the store refuses the message although the row still says live.
    let later = now + time::Duration::minutes(2);
    let posted = app
        .state
        .store
        .post_message(session, &user, "late-1", "Too late?", open, later)
        .await
        .unwrap();
    let Err(wrenchline_server::storage::PostRefused::NotOpen(current)) = posted else {
        panic!("a message after ends_at was stored: {posted:?}");
    };
    assert_eq!(current.status, wrenchline_protocol::SessionStatus::Live);
    assert_eq!(app.message_count().await, 0);
    // Before `ends_at` it is taken.
    let posted = app
        .state
        .store
        .post_message(session, &user, "early-1", "Still here", open, now)
        .await
        .unwrap();
    assert!(posted.is_ok());

    // Over HTTP: a session past its end answers a clear 409, whether or not the clock has run.
    let (late_customer, _, late) = app.waiting_session().await;
    app.state
        .store
        .start(late, now - time::Duration::minutes(31))
        .await
        .unwrap();
    let (status, body) = app
        .post(
            &format!("/api/sessions/{late}/messages"),
            &late_customer,
            Some(&json!({"body": "Anyone?", "client_id": "late-2"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"], "session_ended");
    assert!(body["message"].is_string());
    assert_eq!(app.message_count().await, 1);
}
