//! `POST /realtime/v1/api/broadcast`: realtime-js's HTTP path for broadcasts, which it takes
//! when a channel cannot push (not joined, socket down). Authorized exactly like a broadcast on
//! the socket: an access token (bearer), a session topic of which the caller is a participant,
//! no event only the server sends, the broadcast size limit, and the same per-user broadcast
//! budget. A request is taken whole or refused whole.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use uuid::Uuid;
use wrenchline_protocol::realtime::topics::Topic;
use wrenchline_protocol::realtime::Frame;

use super::hub::SERVER_EVENTS;
use super::rates::Action;
use crate::error::ApiError;
use crate::extract::{ApiJson, Caller};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub struct BroadcastRequest {
    messages: Vec<BroadcastMessage>,
}

#[derive(Debug, Deserialize)]
pub struct BroadcastMessage {
    /// The topic as realtime-js names it, without `realtime:` (`chat:session-{id}`).
    topic: String,
    event: String,
    #[serde(default)]
    payload: Map<String, Value>,
    /// Private channels do not exist here; the flag is accepted and means nothing.
    #[serde(default, rename = "private")]
    _private: bool,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::BadRequest {
        code: "invalid_broadcast",
        message: message.into(),
    }
}

pub async fn broadcast(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<BroadcastRequest>,
) -> Result<Response, ApiError> {
    if caller.via_cookie {
        return Err(ApiError::unauthorized(
            "Broadcasts need an access token (Authorization: Bearer …)",
        ));
    }
    if request.messages.is_empty() {
        return Err(invalid("messages must hold at least one broadcast"));
    }
    let max = state.limiters.limits.broadcast_payload_max_bytes;
    let mut topics: HashMap<String, Topic> = HashMap::new();
    let mut frames = Vec::with_capacity(request.messages.len());
    for message in &request.messages {
        let full = format!("realtime:{}", message.topic);
        let topic = match topics.get(&full) {
            Some(topic) => *topic,
            None => {
                let topic = Topic::parse(&full)
                    .map_err(|e| invalid(format!("topic {:?}: {e}", message.topic)))?;
                let Some(session) = topic.session() else {
                    return Err(ApiError::forbidden(
                        "forbidden",
                        "Broadcasts are not allowed on this topic",
                    ));
                };
                participant(&state, &caller, session).await?;
                topics.insert(full.clone(), topic);
                topic
            }
        };
        if SERVER_EVENTS.contains(&message.event.as_str()) {
            return Err(ApiError::forbidden(
                "forbidden",
                format!("{:?} is an event only the server sends", message.event),
            ));
        }
        let payload =
            json!({"type": "broadcast", "event": message.event, "payload": message.payload});
        let frame = Frame::new(&full, "broadcast", payload);
        if frame.encode(wrenchline_protocol::realtime::Vsn::V2).len() > max {
            return Err(ApiError::PayloadTooLarge);
        }
        frames.push((topic, frame));
    }
    for _ in &frames {
        if !state
            .hub
            .rates
            .admit(caller.user.id, Action::Broadcast)
            .await
        {
            return Err(ApiError::TooManyRequests {
                message: "Too many broadcasts per second".into(),
                retry_after: std::time::Duration::from_secs(1),
            });
        }
    }
    for (topic, frame) in frames {
        state.hub.api_broadcast(topic, frame.payload);
    }
    Ok(StatusCode::ACCEPTED.into_response())
}

/// The session's customer or its assigned mechanic; anyone else gets a not-found.
async fn participant(state: &AppState, caller: &Caller, session: Uuid) -> Result<(), ApiError> {
    match state.store.session(session).await? {
        Some(s) if s.is_participant(caller.user.id) => Ok(()),
        _ => Err(ApiError::not_found("session")),
    }
}
