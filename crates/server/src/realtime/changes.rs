//! Turns committed changes into `postgres_changes` messages for the topics allowed to see them:
//! a session's row and its messages go to that session's topics; offered requests, and the
//! update that takes one out of the offer, go to the mechanics' request feed.

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::sync::mpsc;
use wrenchline_protocol::realtime::topics::Topic;
use wrenchline_protocol::SessionStatus;

use crate::events::Change;
use crate::state::AppState;

const SESSION_COLUMNS: &[(&str, &str)] = &[
    ("id", "uuid"),
    ("status", "text"),
    ("plan", "text"),
    ("customer_id", "uuid"),
    ("customer_name", "text"),
    ("mechanic_id", "uuid"),
    ("mechanic_name", "text"),
    ("vehicle", "jsonb"),
    ("concern", "text"),
    ("created_at", "timestamptz"),
    ("waiver_signed_at", "timestamptz"),
    ("accepted_at", "timestamptz"),
    ("started_at", "timestamptz"),
    ("ends_at", "timestamptz"),
    ("ended_at", "timestamptz"),
    ("end_reason", "text"),
];

const MESSAGE_COLUMNS: &[(&str, &str)] = &[
    ("id", "uuid"),
    ("session_id", "uuid"),
    ("seq", "int8"),
    ("sender_id", "uuid"),
    ("sender_role", "text"),
    ("body", "text"),
    ("client_id", "text"),
    ("created_at", "timestamptz"),
];

fn data(
    table: &str,
    columns: &[(&str, &str)],
    change_type: &str,
    record: &Value,
    old: Option<&Value>,
) -> Value {
    let columns: Vec<Value> = columns
        .iter()
        .map(|(name, ty)| json!({ "name": name, "type": ty }))
        .collect();
    let mut data = json!({
        "schema": "public",
        "table": table,
        "commit_timestamp": OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default(),
        "type": change_type,
        "columns": columns,
        "record": record,
        "errors": null,
    });
    if let Some(old) = old {
        data["old_record"] = old.clone();
    }
    data
}

/// Publishes changes in the order they were committed, until the server stops.
pub async fn dispatch(state: AppState, mut changes: mpsc::UnboundedReceiver<Change>) {
    while let Some(change) = changes.recv().await {
        publish(&state, change);
    }
}

fn publish(state: &AppState, change: Change) {
    let hub = &state.hub;
    match change {
        Change::SessionInserted(session) => {
            hub.note_status(session.id, session.status);
            let record = serde_json::to_value(&session).expect("a session serializes");
            let data = data("sessions", SESSION_COLUMNS, "INSERT", &record, None);
            for topic in [
                Topic::SessionChat(session.id),
                Topic::SessionPresence(session.id),
            ] {
                hub.deliver_change(topic, &data, "sessions", "INSERT", &record, None);
            }
        }
        Change::SessionUpdated { old, new } => {
            hub.note_status(new.id, new.status);
            let record = serde_json::to_value(&new).expect("a session serializes");
            let old_record = old
                .as_ref()
                .map(|o| serde_json::to_value(o).expect("a session serializes"));
            let data = data(
                "sessions",
                SESSION_COLUMNS,
                "UPDATE",
                &record,
                old_record.as_ref(),
            );
            for topic in [Topic::SessionChat(new.id), Topic::SessionPresence(new.id)] {
                hub.deliver_change(
                    topic,
                    &data,
                    "sessions",
                    "UPDATE",
                    &record,
                    old_record.as_ref(),
                );
            }
            let was_offered = old.as_ref().is_some_and(|o| o.is_offered());
            if was_offered || new.is_offered() {
                hub.deliver_change(
                    Topic::Requests,
                    &data,
                    "sessions",
                    "UPDATE",
                    &record,
                    old_record.as_ref(),
                );
            }
            let newly_waiting = new.status == SessionStatus::Waiting
                && old
                    .as_ref()
                    .is_none_or(|o| o.status != SessionStatus::Waiting);
            if newly_waiting {
                tokio::spawn(super::evaluate_start(state.clone(), new.id));
            }
        }
        Change::MessageInserted(message) => {
            let record = serde_json::to_value(&message).expect("a message serializes");
            let data = data("messages", MESSAGE_COLUMNS, "INSERT", &record, None);
            for topic in [
                Topic::SessionChat(message.session_id),
                Topic::SessionPresence(message.session_id),
            ] {
                hub.deliver_change(topic, &data, "messages", "INSERT", &record, None);
            }
        }
    }
}
