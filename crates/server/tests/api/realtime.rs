//! The realtime hub spoken to frame by frame over a real socket (vsn 2.0.0), for the rules that
//! matter most: authorization, presence by payload, the server-side live start, row changes,
//! and cutting off a client that does not read.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use uuid::Uuid;

use crate::helpers::{spawn_app, Actor, TestApp};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub struct Client {
    pub ws: Ws,
    pub next_ref: u64,
}

impl Client {
    pub async fn connect(app: &TestApp) -> Client {
        let url = format!(
            "{}/realtime/v1/websocket?vsn=2.0.0",
            app.base.replace("http://", "ws://")
        );
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("websocket connects");
        Client { ws, next_ref: 0 }
    }

    pub async fn push(
        &mut self,
        join_ref: Option<&str>,
        topic: &str,
        event: &str,
        payload: Value,
    ) -> String {
        self.next_ref += 1;
        let r = self.next_ref.to_string();
        let frame = json!([join_ref, r, topic, event, payload]).to_string();
        self.ws.send(Message::text(frame)).await.unwrap();
        r
    }

    /// The next frame matching `pred`, skipping others; panics after a few seconds.
    pub async fn expect(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.next()).await;
            let Ok(Some(Ok(message))) = next else {
                panic!("no frame for: {what} (got {next:?})");
            };
            if let Message::Text(text) = message {
                let frame: Value = serde_json::from_str(text.as_str()).unwrap();
                if pred(&frame) {
                    return frame;
                }
            }
        }
    }

    pub async fn reply(&mut self, r: &str) -> Value {
        let r = r.to_string();
        self.expect(&format!("reply to {r}"), move |f| {
            f[3] == "phx_reply" && f[1] == r.as_str()
        })
        .await
    }

    /// Frames that arrive within `window`.
    pub async fn drain(&mut self, window: Duration) -> Vec<Value> {
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + window;
        while let Ok(Some(Ok(message))) = tokio::time::timeout_at(deadline, self.ws.next()).await {
            if let Message::Text(text) = message {
                out.push(serde_json::from_str(text.as_str()).unwrap());
            }
        }
        out
    }

    pub async fn join(&mut self, topic: &str, token: &str, config: Value) -> Value {
        let r = self.next_ref + 1;
        let r = r.to_string();
        self.push(
            Some(&r),
            topic,
            "phx_join",
            json!({"config": config, "access_token": token}),
        )
        .await;
        self.reply(&r).await
    }
}

pub fn config(bindings: Value) -> Value {
    json!({"broadcast": {"self": false, "ack": true}, "presence": {"key": "", "enabled": true}, "postgres_changes": bindings, "private": false})
}

pub async fn token(app: &TestApp, actor: &Actor) -> String {
    match actor {
        Actor::Mechanic { token, .. } => token.clone(),
        Actor::Customer { .. } => {
            let (_, body) = app.post("/api/auth/token", actor, None).await;
            body["access_token"].as_str().unwrap().to_string()
        }
        Actor::Anonymous => String::new(),
    }
}

pub fn presence_topic(id: Uuid) -> String {
    format!("realtime:chat:session-{id}:presence")
}

pub async fn track(
    client: &mut Client,
    topic: &str,
    join_ref: &str,
    actor: &Actor,
    role: &str,
) -> Value {
    let r = client
        .push(
            Some(join_ref),
            topic,
            "presence",
            json!({"type": "presence", "event": "track", "payload": {"user_id": actor.id().unwrap().to_string(), "role": role, "online_at": "2026-11-25T10:00:00Z"}}),
        )
        .await;
    client.reply(&r).await
}

#[tokio::test]
async fn heartbeats_are_answered_and_unknown_topics_refused() {
    let app = spawn_app().await;
    let mut c = Client::connect(&app).await;
    let r = c.push(None, "phoenix", "heartbeat", json!({})).await;
    assert_eq!(
        c.reply(&r).await[4],
        json!({"status": "ok", "response": {}})
    );
    let (_, mechanic, _) = app.waiting_session().await;
    let t = token(&app, &mechanic).await;
    let reply = c.join("realtime:room1", &t, config(json!([]))).await;
    assert_eq!(reply[4]["status"], "error");
    assert!(reply[4]["response"]["reason"]
        .as_str()
        .unwrap()
        .starts_with("UnknownTopic"));
    let reply = c.join("room1", &t, config(json!([]))).await;
    assert_eq!(reply[4]["response"]["reason"], "unmatched topic");
}

#[tokio::test]
async fn the_seed_flow_goes_live_when_both_are_present_by_payload() {
    let app = spawn_app().await;
    let (customer, session) = app.offered_session().await;
    let customer_token = token(&app, &customer).await;
    let topic = presence_topic(session);
    let chat = format!("realtime:chat:session-{session}");

    // Test 1: the customer alone: waiting for a mechanic.
    let mut cust = Client::connect(&app).await;
    let joined = cust.join(&topic, &customer_token, config(json!([]))).await;
    assert_eq!(joined[4]["status"], "ok", "{joined}");
    let join_ref = joined[0].as_str().unwrap().to_string();
    cust.expect("presence_state", |f| f[3] == "presence_state")
        .await;
    assert_eq!(
        track(&mut cust, &topic, &join_ref, &customer, "customer").await[4]["status"],
        "ok"
    );
    let mut cust_chat = Client::connect(&app).await;
    let binding = json!([{"event": "*", "schema": "public", "table": "sessions", "filter": format!("id=eq.{session}")}]);
    let joined_chat = cust_chat
        .join(&chat, &customer_token, config(binding.clone()))
        .await;
    assert_eq!(
        joined_chat[4]["response"]["postgres_changes"][0]["table"],
        "sessions"
    );
    let binding_id = joined_chat[4]["response"]["postgres_changes"][0]["id"].clone();
    assert!(binding_id.is_u64());

    // Test 2: a mechanic accepts, then joins and tracks.
    let mechanic = app.mechanic("Sam").await;
    let (status, _) = app
        .post(&format!("/api/sessions/{session}/accept"), &mechanic, None)
        .await;
    assert_eq!(status, reqwest::StatusCode::OK);
    let accepted = cust_chat
        .expect("the accept as a row change", |f| f[3] == "postgres_changes")
        .await;
    assert_eq!(accepted[4]["ids"], json!([binding_id]));
    assert_eq!(accepted[4]["data"]["type"], "UPDATE");
    assert_eq!(accepted[4]["data"]["record"]["status"], "waiting");
    let (_, read) = app
        .get(&format!("/api/sessions/{session}"), &customer)
        .await;
    assert_eq!(read["status"], "waiting", "the mechanic is not present yet");

    let mut mech = Client::connect(&app).await;
    let mech_token = token(&app, &mechanic).await;
    let joined = mech.join(&topic, &mech_token, config(json!([]))).await;
    let mech_ref = joined[0].as_str().unwrap().to_string();
    let state = mech
        .expect("presence_state", |f| f[3] == "presence_state")
        .await;
    let keys: Vec<&String> = state[4].as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 1);
    assert_ne!(
        keys[0],
        &customer.id().unwrap().to_string(),
        "keys are per connection, not user ids"
    );
    track(&mut mech, &topic, &mech_ref, &mechanic, "mechanic").await;

    // Test 3: the server starts the session itself.
    let live = cust_chat
        .expect("the session going live", |f| {
            f[3] == "postgres_changes" && f[4]["data"]["record"]["status"] == "live"
        })
        .await;
    let record = &live[4]["data"]["record"];
    let started = time::OffsetDateTime::parse(
        record["started_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let ends = time::OffsetDateTime::parse(
        record["ends_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(
        ends - started,
        time::Duration::minutes(30),
        "the standard plan"
    );
    let (status, again) = app
        .post(&format!("/api/sessions/{session}/start"), &customer, None)
        .await;
    assert_eq!(
        status,
        reqwest::StatusCode::OK,
        "start is idempotent once live"
    );
    assert_eq!(again["started_at"], record["started_at"]);
}

#[tokio::test]
async fn a_mechanic_assigned_after_the_customer_is_present_still_starts_it() {
    let app = spawn_app().await;
    let (customer, session) = app.offered_session().await;
    let mechanic = app.mechanic("Sam").await;
    let topic = presence_topic(session);
    // The customer is present before any mechanic exists for the session.
    let mut cust = Client::connect(&app).await;
    let ct = token(&app, &customer).await;
    let joined = cust.join(&topic, &ct, config(json!([]))).await;
    let cref = joined[0].as_str().unwrap().to_string();
    track(&mut cust, &topic, &cref, &customer, "customer").await;
    // The mechanic cannot join before being assigned.
    let mt = token(&app, &mechanic).await;
    let mut mech = Client::connect(&app).await;
    let refused = mech.join(&topic, &mt, config(json!([]))).await;
    assert_eq!(refused[4]["status"], "error");
    // Assigned, joined and tracked: live without anyone calling start.
    app.post(&format!("/api/sessions/{session}/accept"), &mechanic, None)
        .await;
    let joined = mech.join(&topic, &mt, config(json!([]))).await;
    let mref = joined[0].as_str().unwrap().to_string();
    track(&mut mech, &topic, &mref, &mechanic, "mechanic").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (_, read) = app
            .get(&format!("/api/sessions/{session}"), &customer)
            .await;
        if read["status"] == "live" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never went live: {read}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn forged_presence_is_refused_and_never_seen() {
    let app = spawn_app().await;
    let (customer, mechanic, session) = app.waiting_session().await;
    let topic = presence_topic(session);
    let mut mech = Client::connect(&app).await;
    let joined = mech
        .join(&topic, &token(&app, &mechanic).await, config(json!([])))
        .await;
    let mref = joined[0].as_str().unwrap().to_string();
    mech.expect("presence_state", |f| f[3] == "presence_state")
        .await;
    // The mechanic pretends to be the customer.
    let r = mech
        .push(
            Some(&mref),
            &topic,
            "presence",
            json!({"type": "presence", "event": "track", "payload": {"user_id": customer.id().unwrap().to_string(), "role": "customer"}}),
        )
        .await;
    let reply = mech.reply(&r).await;
    assert_eq!(reply[4]["status"], "error");
    assert!(reply[4]["response"]["reason"]
        .as_str()
        .unwrap()
        .starts_with("Forbidden"));
    let mut cust = Client::connect(&app).await;
    cust.join(&topic, &token(&app, &customer).await, config(json!([])))
        .await;
    let state = cust
        .expect("presence_state", |f| f[3] == "presence_state")
        .await;
    assert_eq!(state[4], json!({}), "the forged track left no trace");
    let (status, body) = app
        .post(&format!("/api/sessions/{session}/start"), &mechanic, None)
        .await;
    assert_eq!(status, reqwest::StatusCode::CONFLICT);
    assert_eq!(body["missing"], json!(["customer", "mechanic"]));
}

#[tokio::test]
async fn outsiders_are_refused_and_row_changes_reach_only_participants() {
    // One spy per forbidden binding, all the same customer on one topic: above the usual cap.
    let app = crate::helpers::spawn_app_with(|s| {
        s.limits.session_topic_subscribers_per_user = 20;
        s.limits.session_topic_subscribers = 30;
    })
    .await;
    let (customer, mechanic, session) = app.waiting_session().await;
    let (other_customer, _) = app.offered_session().await;
    let other_mechanic = app.mechanic("Yuri").await;
    let chat = format!("realtime:chat:session-{session}");
    let messages = json!([{"event": "INSERT", "schema": "public", "table": "messages", "filter": format!("session_id=eq.{session}")}]);
    for (who, actor) in [
        ("other customer", &other_customer),
        ("other mechanic", &other_mechanic),
    ] {
        let mut c = Client::connect(&app).await;
        let reply = c
            .join(&chat, &token(&app, actor).await, config(messages.clone()))
            .await;
        assert_eq!(reply[4]["status"], "error", "{who}");
        assert!(
            reply[4]["response"]["reason"]
                .as_str()
                .unwrap()
                .starts_with("Unauthorized"),
            "{who}"
        );
    }
    let mut c = Client::connect(&app).await;
    let reply = c
        .join(
            "realtime:requests",
            &token(&app, &customer).await,
            config(json!([])),
        )
        .await;
    assert_eq!(
        reply[4]["status"], "error",
        "customers cannot read the request feed"
    );
    let mut c = Client::connect(&app).await;
    let reply = c.join(&chat, "not-a-token", config(json!([]))).await;
    assert!(reply[4]["response"]["reason"]
        .as_str()
        .unwrap()
        .starts_with("InvalidJWTToken"));

    // A participant of another session asks for rows it may not see, one binding per join, so
    // that each refusal is seen on its own and no accepted binding hides behind another's error.
    let (c2, _m2, s2) = app.waiting_session().await;
    let c2_token = token(&app, &c2).await;
    let c2_chat = format!("realtime:chat:session-{s2}");
    let c2_id = c2.id().unwrap();
    let binding = |schema: &str, table: &str, filter: Option<String>| {
        let mut binding = json!({"event": "*", "schema": schema, "table": table});
        if let Some(filter) = filter {
            binding["filter"] = json!(filter);
        }
        binding
    };
    let forbidden = [
        (
            "another session's messages",
            binding(
                "public",
                "messages",
                Some(format!("session_id=eq.{session}")),
            ),
            "is not allowed on this channel",
        ),
        (
            "an injected OR",
            binding("public", "sessions", Some("id=eq.1) OR (1=1".into())),
            "is not allowed on this channel",
        ),
        (
            "an injected OR after its own id",
            binding("public", "sessions", Some(format!("id=eq.{s2}) OR (1=1"))),
            "is not allowed on this channel",
        ),
        (
            "an unknown column",
            binding("public", "messages", Some(format!("nope=eq.{s2}"))),
            "is not allowed on this channel",
        ),
        (
            "another operator",
            binding("public", "messages", Some(format!("session_id=neq.{s2}"))),
            "Error parsing `filter` params",
        ),
        (
            "no filter",
            binding("public", "messages", None),
            "a filter is required",
        ),
        (
            "another table",
            binding("public", "users", Some(format!("id=eq.{c2_id}"))),
            "table \"users\" is not available",
        ),
        (
            "another schema",
            binding("auth", "messages", Some(format!("session_id=eq.{s2}"))),
            "schema \"auth\" is not available",
        ),
    ];
    let mut spies = Vec::new();
    for (what, binding, reason) in forbidden {
        let mut spy = Client::connect(&app).await;
        let reply = spy
            .join(&c2_chat, &c2_token, config(json!([binding])))
            .await;
        assert_eq!(reply[4]["status"], "ok", "{what}: the join itself succeeds");
        let system = spy
            .expect(&format!("{what}: a refusal"), |f| {
                f[3] == "system" && f[4]["extension"] == "postgres_changes"
            })
            .await;
        assert_eq!(system[4]["status"], "error", "{what}: {system}");
        assert!(
            system[4]["message"].as_str().unwrap().contains(reason),
            "{what}: {system}"
        );
        spies.push((what, spy));
    }
    // The same participant with the bindings its session allows: proof that the changes below
    // are published, so that the spies' silence means something.
    let mut own = Client::connect(&app).await;
    let own_bindings = json!([
        binding("public", "messages", Some(format!("session_id=eq.{s2}"))),
        binding("public", "sessions", Some(format!("id=eq.{s2}"))),
    ]);
    own.join(&c2_chat, &c2_token, config(own_bindings)).await;
    let subscribed = own.expect("subscribed", |f| f[3] == "system").await;
    assert_eq!(subscribed[4]["status"], "ok", "{subscribed}");

    let mut cust = Client::connect(&app).await;
    cust.join(
        &chat,
        &token(&app, &customer).await,
        config(messages.clone()),
    )
    .await;
    let mut mech = Client::connect(&app).await;
    mech.join(
        &chat,
        &token(&app, &mechanic).await,
        config(messages.clone()),
    )
    .await;
    let (status, posted) = app
        .post(
            &format!("/api/sessions/{session}/messages"),
            &customer,
            Some(&json!({"body": "hello", "client_id": "c1"})),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED);
    for c in [&mut cust, &mut mech] {
        let change = c
            .expect("message insert", |f| f[3] == "postgres_changes")
            .await;
        assert_eq!(change[4]["data"]["type"], "INSERT");
        assert_eq!(change[4]["data"]["record"]["id"], posted["id"]);
        assert_eq!(change[4]["data"]["record"]["seq"], 1);
    }
    let (status, _) = app
        .post(
            &format!("/api/sessions/{s2}/messages"),
            &c2,
            Some(&json!({"body": "mine", "client_id": "c2"})),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED);
    let (status, _) = app
        .post(&format!("/api/sessions/{s2}/end"), &c2, None)
        .await;
    assert_eq!(status, reqwest::StatusCode::OK);
    for table in ["messages", "sessions"] {
        own.expect(&format!("{table} change of its own session"), |f| {
            f[3] == "postgres_changes" && f[4]["data"]["table"] == table
        })
        .await;
    }
    for (what, mut spy) in spies {
        let leaked = spy.drain(Duration::from_millis(300)).await;
        assert!(
            leaked.iter().all(
                |f| f[3] != "postgres_changes" && !(f[3] == "system" && f[4]["status"] == "ok")
            ),
            "{what}: {leaked:?}"
        );
    }
}

#[tokio::test]
async fn the_request_feed_sees_offers_and_their_acceptance() {
    let app = spawn_app().await;
    let mechanic = app.mechanic("Sam").await;
    let mut feed = Client::connect(&app).await;
    let binding = json!([{"event": "*", "schema": "public", "table": "sessions", "filter": "status=eq.pending"}]);
    let reply = feed
        .join(
            "realtime:requests",
            &token(&app, &mechanic).await,
            config(binding),
        )
        .await;
    assert_eq!(reply[4]["status"], "ok");
    let (_, unsigned) = app.customer_with_session().await;
    let (_, offered) = app.offered_session().await;
    let change = feed
        .expect("the offer", |f| f[3] == "postgres_changes")
        .await;
    assert_eq!(
        change[4]["data"]["record"]["id"],
        offered.to_string(),
        "unsigned requests are never offered"
    );
    assert_ne!(change[4]["data"]["record"]["id"], unsigned.to_string());
    app.post(&format!("/api/sessions/{offered}/accept"), &mechanic, None)
        .await;
    let taken = feed
        .expect("the acceptance", |f| {
            f[3] == "postgres_changes" && f[4]["data"]["record"]["status"] == "waiting"
        })
        .await;
    assert_eq!(taken[4]["data"]["old_record"]["status"], "pending");
}

#[tokio::test]
async fn a_client_that_never_reads_is_disconnected() {
    let app = crate::helpers::spawn_app_with(|s| {
        s.limits.broadcasts_per_connection_per_second = 1_000_000;
        s.limits.broadcasts_per_user_per_second = 1_000_000;
    })
    .await;
    let (customer, mechanic, session) = app.waiting_session().await;
    let chat = format!("realtime:chat:session-{session}");
    // The reader that never reads.
    let mut stuck = Client::connect(&app).await;
    stuck
        .join(&chat, &token(&app, &customer).await, config(json!([])))
        .await;
    let mut sender = Client::connect(&app).await;
    let joined = sender
        .join(
            &chat,
            &token(&app, &mechanic).await,
            json!({"broadcast": {"self": false, "ack": false}}),
        )
        .await;
    let sref = joined[0].as_str().unwrap().to_string();
    let big = "x".repeat(16 * 1024);
    let before = app.state.metrics.realtime_connections.get();
    assert_eq!(before, 2);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut sent = 0;
    while app.state.metrics.realtime_connections.get() == before {
        assert!(
            std::time::Instant::now() < deadline,
            "the stuck reader was never cut off after {sent} broadcasts"
        );
        for _ in 0..50 {
            sender
                .push(
                    Some(&sref),
                    &chat,
                    "broadcast",
                    json!({"type": "broadcast", "event": "typing", "payload": {"pad": big}}),
                )
                .await;
            sent += 1;
        }
        // The sender reads nothing back either way (self is off); yield to the server.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        app.state.metrics.realtime_connections.get(),
        1,
        "only the stuck reader was cut off"
    );
}

#[tokio::test]
async fn connections_per_address_are_limited() {
    let app = crate::helpers::spawn_app_with(|s| s.limits.connections_per_address = 2).await;
    let _a = Client::connect(&app).await;
    let b = Client::connect(&app).await;
    let url = format!(
        "{}/realtime/v1/websocket?vsn=2.0.0",
        app.base.replace("http://", "ws://")
    );
    let refused = tokio_tungstenite::connect_async(&url).await.unwrap_err();
    let tokio_tungstenite::tungstenite::Error::Http(refused) = refused else {
        panic!("refused with an HTTP answer, not {refused}");
    };
    assert_eq!(refused.status(), reqwest::StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1, "Retry-After: {retry_after}");
    let body: Value = serde_json::from_slice(refused.body().as_deref().unwrap_or_default())
        .expect("a JSON error body");
    assert_eq!(body["error"], "rate_limited", "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("connections")),
        "{body}"
    );
    drop(b);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while tokio_tungstenite::connect_async(&url).await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "a closed connection frees its slot"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn behind_a_trusted_proxy_connections_are_counted_per_forwarded_client() {
    let app = crate::helpers::spawn_app_with(|s| {
        s.limits.connections_per_address = 1;
        s.trusted_proxies = wrenchline_server::proxy::TrustedProxies::parse("127.0.0.1").unwrap();
    })
    .await;
    let url = format!(
        "{}/realtime/v1/websocket?vsn=2.0.0",
        app.base.replace("http://", "ws://")
    );
    let connect = |forwarded_for: &'static str| {
        let mut request = url.as_str().into_client_request().unwrap();
        request
            .headers_mut()
            .insert("x-forwarded-for", forwarded_for.parse().unwrap());
        tokio_tungstenite::connect_async(request)
    };
    let _first = connect("203.0.113.1")
        .await
        .expect("the first client connects");
    let refused = connect("203.0.113.1").await.unwrap_err();
    assert!(refused.to_string().contains("429"), "{refused}");
    let _other = connect("203.0.113.2")
        .await
        .expect("another client behind the same proxy connects");
    let _spoofed = connect("203.0.113.1, 203.0.113.3")
        .await
        .expect("the entry the proxy appended counts");
}

#[tokio::test]
async fn joins_and_presence_events_per_connection_are_limited() {
    let app = crate::helpers::spawn_app_with(|s| {
        s.limits.joins_per_connection_per_second = 2;
        s.limits.presence_per_connection_per_second = 2;
    })
    .await;
    let (customer, _mechanic, session) = app.waiting_session().await;
    let t = token(&app, &customer).await;
    let topic = presence_topic(session);
    let mut c = Client::connect(&app).await;
    assert_eq!(
        c.join(&topic, &t, config(json!([]))).await[4]["status"],
        "ok"
    );
    let joined = c.join(&topic, &t, config(json!([]))).await;
    assert_eq!(joined[4]["status"], "ok");
    let third = c.join(&topic, &t, config(json!([]))).await;
    assert_eq!(third[4]["status"], "error");
    assert!(third[4]["response"]["reason"]
        .as_str()
        .unwrap()
        .starts_with("ClientJoinRateLimitReached"));
    let jref = joined[0].as_str().unwrap().to_string();
    assert_eq!(
        track(&mut c, &topic, &jref, &customer, "customer").await[4]["status"],
        "ok"
    );
    assert_eq!(
        track(&mut c, &topic, &jref, &customer, "customer").await[4]["status"],
        "ok"
    );
    let limited = track(&mut c, &topic, &jref, &customer, "customer").await;
    assert_eq!(limited[4]["status"], "error");
    assert!(limited[4]["response"]["reason"]
        .as_str()
        .unwrap()
        .contains("Too many presence"));
}

#[tokio::test]
async fn oversized_presence_and_broadcasts_are_refused() {
    let app = spawn_app().await;
    let (customer, _mechanic, session) = app.waiting_session().await;
    let t = token(&app, &customer).await;
    let topic = presence_topic(session);
    let mut c = Client::connect(&app).await;
    let joined = c.join(&topic, &t, config(json!([]))).await;
    let jref = joined[0].as_str().unwrap().to_string();
    let r = c
        .push(
            Some(&jref),
            &topic,
            "presence",
            json!({"type": "presence", "event": "track", "payload": {"user_id": customer.id().unwrap().to_string(), "pad": "x".repeat(8 * 1024)}}),
        )
        .await;
    assert_eq!(
        c.reply(&r).await[4]["response"]["reason"],
        "Track message size exceeded"
    );
    let r = c
        .push(Some(&jref), &topic, "broadcast", json!({"type": "broadcast", "event": "typing", "payload": {"pad": "x".repeat(80 * 1024)}}))
        .await;
    let reply = c.reply(&r).await;
    assert!(reply[4]["response"]["reason"]
        .as_str()
        .unwrap()
        .starts_with("payload_size_exceeded"));
}

/// A text frame of exactly `size` bytes: `payload` is given the padding that makes it so.
fn frame_of_size(
    size: usize,
    join_ref: &str,
    r: &str,
    topic: &str,
    event: &str,
    payload: impl Fn(String) -> Value,
) -> String {
    let bare = json!([join_ref, r, topic, event, payload(String::new())]).to_string();
    let frame = json!([
        join_ref,
        r,
        topic,
        event,
        payload("x".repeat(size - bare.len()))
    ])
    .to_string();
    assert_eq!(frame.len(), size);
    frame
}

#[tokio::test]
async fn presence_and_broadcast_sizes_come_from_configuration() {
    let app = crate::helpers::spawn_app_with(|s| {
        s.limits.presence_payload_max_bytes = 400;
        s.limits.broadcast_payload_max_bytes = 600;
    })
    .await;
    let (customer, _mechanic, session) = app.waiting_session().await;
    let t = token(&app, &customer).await;
    let topic = presence_topic(session);
    let mut c = Client::connect(&app).await;
    let joined = c.join(&topic, &t, config(json!([]))).await;
    let jref = joined[0].as_str().unwrap().to_string();
    let user_id = customer.id().unwrap().to_string();
    let track = |pad: String| json!({"type": "presence", "event": "track", "payload": {"user_id": user_id, "role": "customer", "pad": pad}});
    let typing =
        |pad: String| json!({"type": "broadcast", "event": "typing", "payload": {"pad": pad}});

    for (size, r, event, payload, expected) in [
        (
            400,
            "p-at",
            "presence",
            &track as &dyn Fn(String) -> Value,
            None,
        ),
        (
            401,
            "p-over",
            "presence",
            &track,
            Some("Track message size exceeded"),
        ),
        (600, "b-at", "broadcast", &typing, None),
        (
            601,
            "b-over",
            "broadcast",
            &typing,
            Some("payload_size_exceeded: broadcasts are limited to 600 bytes"),
        ),
    ] {
        let frame = frame_of_size(size, &jref, r, &topic, event, payload);
        c.ws.send(Message::text(frame)).await.unwrap();
        let reply = c.reply(r).await;
        match expected {
            None => assert_eq!(reply[4]["status"], "ok", "{event} of {size} bytes: {reply}"),
            Some(reason) => {
                assert_eq!(reply[4]["status"], "error", "{event} of {size} bytes");
                assert_eq!(reply[4]["response"]["reason"], reason);
            }
        }
    }
}

#[tokio::test]
async fn binary_broadcasts_reach_realtime_js_readers_without_client_metadata() {
    let app = spawn_app().await;
    let (customer, mechanic, session) = app.waiting_session().await;
    let chat = format!("realtime:chat:session-{session}");
    let mut receiver = Client::connect(&app).await;
    receiver
        .join(&chat, &token(&app, &customer).await, config(json!([])))
        .await;
    let mut sender = Client::connect(&app).await;
    let joined = sender
        .join(&chat, &token(&app, &mechanic).await, config(json!([])))
        .await;
    let jref = joined[0].as_str().unwrap().to_string();
    // Metadata that grows when re-serialized (251 bytes on the wire, 951 once re-encoded).
    let metadata = format!("[{}]", vec!["1e15"; 50].join(","));
    let push = wrenchline_protocol::realtime::UserBroadcast {
        join_ref: Some(jref),
        r#ref: Some("77".into()),
        topic: chat.clone(),
        event: "typing".into(),
        metadata: None,
        payload: wrenchline_protocol::realtime::BroadcastPayload::Json(
            json!({"typing": true, "x": 1234.5678901234567}),
        ),
    };
    let mut bytes = push.encode_push().unwrap();
    // Splice the raw metadata in: header byte 5 is its length, it follows the event name.
    bytes[5] = metadata.len() as u8;
    let at = 7 + 1 + 2 + chat.len() + "typing".len();
    bytes.splice(at..at, metadata.bytes());
    sender.ws.send(Message::binary(bytes)).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let next = tokio::time::timeout_at(deadline, receiver.ws.next())
            .await
            .expect("a kind 4 frame arrives");
        if let Some(Ok(Message::Binary(frame))) = next {
            let got =
                wrenchline_protocol::realtime::UserBroadcast::decode_broadcast(&frame).unwrap();
            assert_eq!(got.event, "typing");
            assert_eq!(got.metadata, None);
            let wrenchline_protocol::realtime::BroadcastPayload::Json(payload) = got.payload else {
                panic!("JSON payload")
            };
            assert_eq!(
                payload["x"].as_f64(),
                Some(1234.5678901234567),
                "numbers relayed exactly"
            );
            break;
        }
    }
}

#[tokio::test]
async fn a_client_that_closes_gets_its_close_answered() {
    let app = spawn_app().await;
    let mut client = Client::connect(&app).await;
    client.ws.close(None).await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(2), client.ws.next())
        .await
        .expect("the server answers the close at once");
    assert!(
        matches!(answer, Some(Ok(Message::Close(_)))),
        "a close frame back, not a dropped connection: {answer:?}"
    );
}
