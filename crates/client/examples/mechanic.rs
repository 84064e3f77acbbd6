//! A scriptable mechanic for end-to-end tests of the customer's pages, built on
//! `MechanicSession` (the desktop app's own session, without a window): signs in, then takes one
//! command per line on standard input and reports what happens as one JSON object per line on
//! standard output.
//!
//! Commands: `accept <session>`, `join <session>` (presence and chat, tracked as present),
//! `say <session> <text>`, `leave <session>`, `end <session>`, `availability online|away`
//! (tracked on the `requests` topic as the desktop app does; `--availability` sets it from the
//! start, before `ready`).
//! Events: `ready`, `accepted`, `error`, `joined`, `presence`, `session`, `message`, `broadcast`,
//! `sent`, `left`, `ended`, `availability`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use clap::{Parser, ValueEnum};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use uuid::Uuid;
use wrenchline_client::{ChatEvent, ClientError, MechanicEvent, MechanicOptions, MechanicSession};
use wrenchline_protocol::presence::{present_user_ids, Availability};

#[derive(Parser)]
struct Args {
    #[arg(long)]
    server: String,
    #[arg(long)]
    email: String,
    #[arg(long)]
    password: String,
    /// Track this availability on `requests` before `ready`.
    #[arg(long, value_enum)]
    availability: Option<Choice>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Choice {
    Online,
    Away,
}

impl From<Choice> for Availability {
    fn from(c: Choice) -> Self {
        match c {
            Choice::Online => Availability::Online,
            Choice::Away => Availability::Away,
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

/// Per joined session: the customer (for "is the customer present"), and what was last said.
type Joined = Arc<Mutex<HashMap<Uuid, (String, Option<bool>)>>>;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let options = MechanicOptions {
        availability: args.availability.map_or(Availability::Online, Into::into),
        ..MechanicOptions::default()
    };
    let (session, mut events) =
        match MechanicSession::sign_in(&args.server, &args.email, &args.password, options).await {
            Ok(signed_in) => signed_in,
            Err(e) => {
                client_error(&e);
                std::process::exit(1);
            }
        };
    let joined: Joined = Arc::default();
    let (first_track, tracked) = tokio::sync::oneshot::channel();
    let reporter = joined.clone();
    tokio::spawn(async move {
        let mut first_track = Some(first_track);
        while let Some(event) = events.recv().await {
            match event {
                MechanicEvent::Availability(a) => {
                    emit(json!({"event": "availability", "availability": a.as_str()}));
                    if let Some(first) = first_track.take() {
                        let _ = first.send(());
                    }
                }
                MechanicEvent::Chat(chat) => report_chat(&reporter, chat),
                MechanicEvent::SignedOut => error("signed_out", "the sign-in has expired"),
                _ => {}
            }
        }
    });
    if args.availability.is_some() {
        let _ = tracked.await;
    }
    emit(json!({"event": "ready", "user_id": session.user().id}));

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        let mut parts = line.trim().splitn(3, ' ');
        let (Some(command), Some(id)) = (parts.next(), parts.next()) else {
            continue;
        };
        if command == "availability" {
            match Choice::from_str(id, true) {
                Ok(choice) => session.set_availability(choice.into()),
                Err(_) => error(
                    "invalid_availability",
                    format!("{id} is not online or away"),
                ),
            }
            continue;
        }
        let Ok(id) = id.parse::<Uuid>() else {
            error("invalid_id", format!("{id} is not a session id"));
            continue;
        };
        match command {
            "accept" => match session.accept(id).await {
                Ok(s) => emit(json!({"event": "accepted", "session": s})),
                Err(e) => client_error(&e),
            },
            "join" => match session
                .call(|api| async move { api.session(id).await })
                .await
            {
                Ok(s) => {
                    lock(&joined).insert(id, (s.customer_id.to_string(), None));
                    session.open_chat(id).await;
                }
                Err(e) => client_error(&e),
            },
            "say" => {
                let body = parts.next().unwrap_or_default().to_string();
                let client_id = Uuid::new_v4().to_string();
                let sent = session
                    .call(|api| {
                        let (body, client_id) = (body.clone(), client_id.clone());
                        async move { api.post_message(id, &client_id, &body).await }
                    })
                    .await;
                match sent {
                    Ok(m) => emit(json!({"event": "sent", "message": m})),
                    Err(e) => client_error(&e),
                }
            }
            "leave" => {
                lock(&joined).remove(&id);
                session.close_chat(id).await;
                emit(json!({"event": "left", "session_id": id}));
            }
            "end" => match session.call(|api| async move { api.end(id).await }).await {
                Ok(s) => emit(json!({"event": "ended", "session": s})),
                Err(e) => client_error(&e),
            },
            other => error("unknown_command", format!("{other:?}")),
        }
    }
    session.stop().await;
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn report_chat(joined: &Joined, event: ChatEvent) {
    match event {
        ChatEvent::Subscribed { session_id } => {
            emit(json!({"event": "joined", "session_id": session_id}))
        }
        ChatEvent::Status {
            session_id,
            status: "reconnecting",
            detail: Some(detail),
        } => {
            error("join_refused", format!("{session_id}: {detail}"));
        }
        ChatEvent::Presence { session_id, state } => {
            let mut joined = lock(joined);
            let Some((customer, last)) = joined.get_mut(&session_id) else {
                return;
            };
            let present = present_user_ids(&state).contains(customer.as_str());
            if *last != Some(present) {
                *last = Some(present);
                emit(json!({"event": "presence", "customer_present": present, "state": state}));
            }
        }
        ChatEvent::Session { session, .. } => {
            emit(json!({"event": "session", "status": session["status"], "session": session}))
        }
        ChatEvent::Message { message, .. } => emit(
            json!({"event": "message", "body": message["body"], "sender_role": message["sender_role"], "message": message}),
        ),
        ChatEvent::Typing { user_id, role, .. } => emit(
            json!({"event": "broadcast", "name": "typing", "payload": {"user_id": user_id, "role": role}}),
        ),
        ChatEvent::Ending {
            ends_at,
            seconds_left,
            ..
        } => emit(
            json!({"event": "broadcast", "name": "session_ending", "payload": {"ends_at": ends_at, "seconds_left": seconds_left}}),
        ),
        _ => {}
    }
}
