//! A scriptable mechanic for end-to-end tests of the customer's pages: signs in, then takes one
//! command per line on standard input and reports what happens as one JSON object per line on
//! standard output.
//!
//! Commands: `accept <session>`, `join <session>` (presence and chat, tracked as present),
//! `say <session> <text>`, `leave <session>`, `end <session>`, `availability online|away`
//! (tracked on the `requests` topic as the desktop app does; `--availability` does it at start).
//! Events: `ready`, `accepted`, `error`, `joined`, `presence`, `session`, `message`, `left`,
//! `ended`, `availability`.

use std::collections::HashMap;
use std::sync::Arc;

use clap::{Parser, ValueEnum};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::Mutex;
use uuid::Uuid;
use wrenchline_client::realtime::{
    Channel, ChannelEvent, ChannelOptions, PostgresChanges, RealtimeClient,
};
use wrenchline_client::{ApiClient, ClientError};

#[derive(Parser)]
struct Args {
    #[arg(long)]
    server: String,
    #[arg(long)]
    email: String,
    #[arg(long)]
    password: String,
    /// Join `requests` with presence and track this availability before `ready`.
    #[arg(long, value_enum)]
    availability: Option<Availability>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Availability {
    Online,
    Away,
}

impl Availability {
    fn as_str(self) -> &'static str {
        match self {
            Availability::Online => "online",
            Availability::Away => "away",
        }
    }
}

fn emit(event: Value) {
    println!("{event}");
}

fn error(code: &str, message: impl std::fmt::Display) {
    emit(json!({"event": "error", "code": code, "message": message.to_string()}));
}

fn client_error(e: &ClientError) {
    error(e.code().unwrap_or("transport"), e);
}

struct Joined {
    presence: Channel,
    chat: Channel,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let api = ApiClient::new(&args.server)?;
    let tokens = match api.login(&args.email, &args.password).await {
        Ok(tokens) => tokens,
        Err(e) => {
            client_error(&e);
            std::process::exit(1);
        }
    };
    let me = tokens.user.clone();
    let realtime = RealtimeClient::connect(&args.server, tokens.access_token.clone())?;
    let token = Arc::new(std::sync::RwLock::new(tokens.access_token.clone()));
    spawn_token_refresh(
        api.clone(),
        realtime.clone(),
        token.clone(),
        tokens.refresh_token,
        tokens.expires_in,
    );
    let authed = |token: &Arc<std::sync::RwLock<String>>| {
        api.clone().with_token(token.read().unwrap().clone())
    };
    let joined: Arc<Mutex<HashMap<Uuid, Joined>>> = Arc::default();
    let feed = realtime.channel(
        "requests",
        ChannelOptions {
            presence_enabled: true,
            ..ChannelOptions::default()
        },
    );
    let track_availability = |availability: Availability| {
        let feed = feed.clone();
        let payload = json!({"user_id": me.id, "role": "mechanic", "online_at": time_now(), "availability": availability.as_str()});
        async move {
            if let Err(e) = feed.subscribe().await {
                return error("join_refused", e);
            }
            match feed.track(payload).await {
                Ok(()) => {
                    emit(json!({"event": "availability", "availability": availability.as_str()}))
                }
                Err(e) => error("track_refused", e),
            }
        }
    };
    if let Some(availability) = args.availability {
        track_availability(availability).await;
    }
    emit(json!({"event": "ready", "user_id": me.id}));

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        let mut parts = line.trim().splitn(3, ' ');
        let (Some(command), Some(id)) = (parts.next(), parts.next()) else {
            continue;
        };
        if command == "availability" {
            match Availability::from_str(id, true) {
                Ok(availability) => track_availability(availability).await,
                Err(_) => error(
                    "invalid_availability",
                    format!("{id} is not online or away"),
                ),
            }
            continue;
        }
        let Ok(session) = id.parse::<Uuid>() else {
            error("invalid_id", format!("{id} is not a session id"));
            continue;
        };
        let api = authed(&token);
        match command {
            "accept" => match api.accept(session).await {
                Ok(s) => emit(json!({"event": "accepted", "session": s})),
                Err(e) => client_error(&e),
            },
            "join" => {
                let presence = realtime.channel(
                    &format!("chat:session-{session}:presence"),
                    ChannelOptions {
                        presence_enabled: true,
                        ..ChannelOptions::default()
                    },
                );
                let chat = realtime.channel(
                    &format!("chat:session-{session}"),
                    ChannelOptions {
                        postgres_changes: vec![
                            PostgresChanges::new("*", "sessions")
                                .filter(format!("id=eq.{session}")),
                            PostgresChanges::new("INSERT", "messages")
                                .filter(format!("session_id=eq.{session}")),
                        ],
                        ..ChannelOptions::default()
                    },
                );
                let customer = match api.session(session).await {
                    Ok(s) => s.customer_id.to_string(),
                    Err(e) => {
                        client_error(&e);
                        continue;
                    }
                };
                if let Err(e) = chat.subscribe().await {
                    error("join_refused", e);
                    continue;
                }
                if let Err(e) = presence.subscribe().await {
                    error("join_refused", e);
                    continue;
                }
                spawn_presence_reporter(presence.clone(), customer);
                spawn_chat_reporter(chat.clone());
                let payload =
                    json!({"user_id": me.id, "role": "mechanic", "online_at": time_now()});
                if let Err(e) = presence.track(payload).await {
                    error("track_refused", e);
                    continue;
                }
                joined
                    .lock()
                    .await
                    .insert(session, Joined { presence, chat });
                emit(json!({"event": "joined", "session_id": session}));
            }
            "say" => {
                let body = parts.next().unwrap_or_default();
                match api
                    .post_message(session, &Uuid::new_v4().to_string(), body)
                    .await
                {
                    Ok(m) => emit(json!({"event": "sent", "message": m})),
                    Err(e) => client_error(&e),
                }
            }
            "leave" => {
                if let Some(j) = joined.lock().await.remove(&session) {
                    let _ = j.presence.leave().await;
                    let _ = j.chat.leave().await;
                }
                emit(json!({"event": "left", "session_id": session}));
            }
            "end" => match api.end(session).await {
                Ok(s) => emit(json!({"event": "ended", "session": s})),
                Err(e) => client_error(&e),
            },
            other => error("unknown_command", format!("{other:?}")),
        }
    }
    realtime.disconnect().await;
    Ok(())
}

/// Keeps the access token fresh: refreshes at half its lifetime and hands the new token to the
/// realtime client (for rejoins and the channels' expiry) and to later HTTP calls.
fn spawn_token_refresh(
    api: ApiClient,
    realtime: RealtimeClient,
    token: Arc<std::sync::RwLock<String>>,
    mut refresh: String,
    mut expires_in: u64,
) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs((expires_in / 2).max(1))).await;
            match api.refresh(&refresh).await {
                Ok(tokens) => {
                    *token.write().unwrap() = tokens.access_token.clone();
                    let _ = realtime.set_token(tokens.access_token).await;
                    refresh = tokens.refresh_token;
                    expires_in = tokens.expires_in;
                }
                Err(e) => {
                    client_error(&e);
                    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                }
            }
        }
    });
}

fn time_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}", now.as_millis())
}

fn spawn_presence_reporter(channel: Channel, customer: String) {
    let mut events = channel.events();
    tokio::spawn(async move {
        let mut last = None;
        loop {
            match events.recv().await {
                Ok(ChannelEvent::PresenceSync) => {
                    let present = channel.is_present(&customer);
                    if last != Some(present) {
                        last = Some(present);
                        emit(
                            json!({"event": "presence", "customer_present": present, "state": channel.presence().to_value()}),
                        );
                    }
                }
                Ok(ChannelEvent::Closed { .. })
                | Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                _ => {}
            }
        }
    });
}

fn spawn_chat_reporter(channel: Channel) {
    let mut events = channel.events();
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(ChannelEvent::PostgresChange(change)) if change.table == "sessions" => {
                    emit(
                        json!({"event": "session", "status": change.record["status"], "session": change.record}),
                    );
                }
                Ok(ChannelEvent::PostgresChange(change)) if change.table == "messages" => {
                    emit(
                        json!({"event": "message", "body": change.record["body"], "sender_role": change.record["sender_role"], "message": change.record}),
                    );
                }
                Ok(ChannelEvent::Broadcast { event, payload }) => {
                    emit(json!({"event": "broadcast", "name": event, "payload": payload}));
                }
                Ok(ChannelEvent::Closed { .. })
                | Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                _ => {}
            }
        }
    });
}
