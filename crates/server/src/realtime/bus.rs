//! The bus boundary: what one node tells the others so that every subscriber, on whichever node,
//! hears every realtime event once. Two implementations sit behind it: in-process (a single node,
//! the SQLite default: nothing leaves the process, `Hub::relay` is unset) and Redis (cluster
//! mode: `crate::cluster` turns each [`Outbound`] into pipelined Redis commands and publishes
//! [`Envelope`]s on one channel that every node subscribes to).
//!
//! The node that produces an event always delivers it to its own subscribers directly, then
//! hands it to the bus; a node ignores its own envelopes when they come back from Redis, so
//! nobody hears an event twice. One node's events are published by one task in the order they
//! happened, so each node's events arrive everywhere in that order (commit order for row
//! changes, which each node publishes in commit order).

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::oneshot;
use wrenchline_protocol::realtime::{BroadcastPayload, UserBroadcast};

use crate::events::Change;

/// One event on the bus, as JSON on the wire: `{"node": "...", "event": {...}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    /// The node that produced the event (its own subscribers already have it).
    pub node: String,
    pub event: Event,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// A committed row change, in commit order.
    Change { change: Change },
    /// A user broadcast (from a socket or `POST /realtime/v1/api/broadcast`) on a topic:
    /// `text` is the JSON form (`{type, event, payload}`), `binary` the kind 4 form when it
    /// arrived as binary.
    Broadcast {
        topic: String,
        text: Option<Value>,
        binary: Option<BinaryBroadcast>,
    },
    /// A presence change on a topic, as `presence_diff` says it.
    PresenceDiff {
        topic: String,
        joins: Value,
        leaves: Value,
    },
    /// A node came back after losing the bus: whatever was committed since `since_ms` (Unix
    /// milliseconds) may not have reached other nodes' subscribers; each node catches its own
    /// up.
    Resync { since_ms: i64 },
}

/// A binary user broadcast, without the refs only its sender needed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BinaryBroadcast {
    pub event: String,
    #[serde(default)]
    pub json: Option<Value>,
    /// Raw bytes, base64 (standard alphabet).
    #[serde(default)]
    pub bytes: Option<String>,
}

impl BinaryBroadcast {
    pub fn from_user(broadcast: &UserBroadcast) -> Self {
        let (json, bytes) = match &broadcast.payload {
            BroadcastPayload::Json(value) => (Some(value.clone()), None),
            BroadcastPayload::Binary(bytes) => (
                None,
                Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
            ),
        };
        BinaryBroadcast {
            event: broadcast.event.clone(),
            json,
            bytes,
        }
    }

    /// The broadcast again, for `topic` (full name); `None` when its bytes are not base64.
    pub fn to_user(&self, topic: &str) -> Option<UserBroadcast> {
        let payload = match (&self.json, &self.bytes) {
            (Some(json), _) => BroadcastPayload::Json(json.clone()),
            (None, Some(bytes)) => BroadcastPayload::Binary(
                base64::engine::general_purpose::STANDARD
                    .decode(bytes)
                    .ok()?,
            ),
            (None, None) => return None,
        };
        Some(UserBroadcast {
            join_ref: None,
            r#ref: None,
            topic: topic.to_string(),
            event: self.event.clone(),
            metadata: None,
            payload,
        })
    }
}

/// What the hub hands to the bus, in the order it happened on this node.
#[derive(Debug)]
pub enum Outbound {
    /// An event for the other nodes.
    Publish(Event),
    /// A connection tracked (or re-tracked) its presence on `topic`: `entry` is what the shared
    /// presence keeps for it; `diff` is published after it is stored.
    Track {
        topic: String,
        conn: u64,
        entry: Value,
        diff: Event,
    },
    /// A connection's presence left `topic`.
    Untrack {
        topic: String,
        conn: u64,
        diff: Event,
    },
    /// Answered once everything queued before it has been written.
    Flush(oneshot::Sender<()>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_broadcasts_survive_the_trip() {
        let raw = UserBroadcast {
            join_ref: Some("1".into()),
            r#ref: Some("2".into()),
            topic: "realtime:chat:x".into(),
            event: "typing".into(),
            metadata: Some("{}".into()),
            payload: BroadcastPayload::Binary(vec![0, 1, 2, 255]),
        };
        let wire = serde_json::to_string(&Envelope {
            node: "a".into(),
            event: Event::Broadcast {
                topic: raw.topic.clone(),
                text: None,
                binary: Some(BinaryBroadcast::from_user(&raw)),
            },
        })
        .unwrap();
        let back: Envelope = serde_json::from_str(&wire).unwrap();
        let Event::Broadcast {
            binary: Some(b), ..
        } = back.event
        else {
            panic!("not a broadcast: {wire}");
        };
        let user = b.to_user("realtime:chat:x").unwrap();
        assert_eq!(user.payload, raw.payload);
        assert_eq!(user.event, "typing");
        assert_eq!(user.metadata, None);
    }
}
