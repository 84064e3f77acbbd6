//! Turns committed changes into `postgres_changes` messages for the topics allowed to see them:
//! a session's row and its messages go to that session's topics; offered requests, and the
//! update that takes one out of the offer, go to the mechanics' request feed. A mechanic a
//! session no longer has is closed out of its topics after hearing of the change.

use serde_json::Value;
use tokio::sync::mpsc;
use wrenchline_protocol::realtime::payloads::{
    ChangeType, PostgresChange, MESSAGE_COLUMNS, SESSION_COLUMNS,
};
use wrenchline_protocol::realtime::topics::Topic;
use wrenchline_protocol::SessionStatus;

use crate::events::Change;
use crate::state::AppState;

fn data(
    table: &str,
    columns: &[(&str, &str)],
    change_type: ChangeType,
    record: &Value,
    old: Option<&Value>,
) -> Value {
    let change = PostgresChange::new(table, columns, change_type, record.clone(), old.cloned());
    serde_json::to_value(change).expect("a change serializes")
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
            let data = data(
                "sessions",
                SESSION_COLUMNS,
                ChangeType::Insert,
                &record,
                None,
            );
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
                ChangeType::Update,
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
            // A mechanic the session no longer has (it went back to the feed) loses its channels.
            if let Some(gone) = old
                .as_ref()
                .and_then(|o| o.mechanic_id)
                .filter(|m| new.mechanic_id != Some(*m))
            {
                for topic in [Topic::SessionChat(new.id), Topic::SessionPresence(new.id)] {
                    hub.evict(
                        topic,
                        gone,
                        "This session is no longer yours: it went back to the request feed",
                    );
                }
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
            let data = data(
                "messages",
                MESSAGE_COLUMNS,
                ChangeType::Insert,
                &record,
                None,
            );
            for topic in [
                Topic::SessionChat(message.session_id),
                Topic::SessionPresence(message.session_id),
            ] {
                hub.deliver_change(topic, &data, "messages", "INSERT", &record, None);
            }
        }
    }
}
