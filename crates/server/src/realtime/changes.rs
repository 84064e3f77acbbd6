//! Turns committed changes into `postgres_changes` messages for the topics allowed to see them:
//! a session's row and its messages go to that session's topics; offered requests, and the
//! update that takes one out of the offer, go to the mechanics' request feed. A mechanic a
//! session no longer has is closed out of its topics after hearing of the change. In a cluster
//! each change is delivered here first and then handed to the bus, and changes committed on
//! other nodes arrive through [`deliver`].

use serde_json::Value;
use tokio::sync::mpsc;
use wrenchline_protocol::realtime::payloads::{
    ChangeType, PostgresChange, MESSAGE_COLUMNS, SESSION_COLUMNS,
};
use wrenchline_protocol::realtime::topics::Topic;
use wrenchline_protocol::SessionStatus;

use super::bus::{Event, Outbound};
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

/// Publishes changes in the order they were committed until `stop`, then what is already
/// queued: a node that stops leaves nothing committed unannounced.
pub async fn dispatch(
    state: AppState,
    mut changes: mpsc::UnboundedReceiver<Change>,
    stop: tokio_util::sync::CancellationToken,
) {
    loop {
        tokio::select! {
            change = changes.recv() => match change {
                Some(change) => publish(&state, change),
                None => return,
            },
            () = stop.cancelled() => {
                while let Ok(change) = changes.try_recv() {
                    publish(&state, change);
                }
                return;
            }
        }
    }
}

fn publish(state: &AppState, change: Change) {
    deliver(state, &change, true);
    if state.hub.is_clustered() {
        state.hub.relay(Outbound::Publish(Event::Change { change }));
    }
}

/// Catches this node's subscribers up after the bus was away since `since_ms` (Unix ms): each
/// session with subscribers here gets its row again, and the messages after the last one
/// delivered here (or, when none was, those written since the outage began). What they had
/// already comes again at worst; clients keep messages by `seq`.
pub async fn catch_up(state: AppState, since_ms: i64) {
    let mut sessions: std::collections::HashMap<uuid::Uuid, i64> = Default::default();
    for (topic, last_seq) in state.hub.session_topics() {
        if let Some(id) = topic.session() {
            // The lowest known count among the session's topics (0 where none is known).
            let seen = sessions.entry(id).or_insert(last_seq);
            if *seen == 0 || (last_seq > 0 && last_seq < *seen) {
                *seen = last_seq;
            }
        }
    }
    let since = crate::storage::from_millis(since_ms - 1000);
    for (id, last_seq) in sessions {
        let session = match state.store.session(id).await {
            Ok(Some(session)) => session,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(error = %e, session_id = %id, "catching up failed");
                continue;
            }
        };
        let messages = match state.store.messages(id, last_seq, 1000).await {
            Ok(messages) => messages,
            Err(e) => {
                tracing::warn!(error = %e, session_id = %id, "catching up failed");
                continue;
            }
        };
        deliver(
            &state,
            &Change::SessionUpdated {
                old: None,
                new: session,
            },
            false,
        );
        for message in messages
            .into_iter()
            .filter(|m| last_seq > 0 || m.created_at >= since)
        {
            deliver(&state, &Change::MessageInserted(message), false);
        }
    }
}

/// Delivers a change to this node's subscribers; `here` when it was committed on this node
/// (which then also runs what follows from it once, such as the live-start check).
pub fn deliver(state: &AppState, change: &Change, here: bool) {
    let hub = &state.hub;
    match change {
        Change::SessionInserted(session) => {
            hub.note_status(session.id, session.status);
            let record = serde_json::to_value(session).expect("a session serializes");
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
            let record = serde_json::to_value(new).expect("a session serializes");
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
            if newly_waiting && here {
                tokio::spawn(super::evaluate_start(state.clone(), new.id));
            }
        }
        Change::MessageInserted(message) => {
            let record = serde_json::to_value(message).expect("a message serializes");
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
