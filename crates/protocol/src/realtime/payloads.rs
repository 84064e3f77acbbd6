//! What Wrenchline's channels carry inside the frames: the `postgres_changes` message (its
//! record and column list, as Supabase sends it), the `typing` broadcast of the chat topic and
//! the server's `session_ending` broadcast. The server builds these and every client reads them
//! with these types, so each shape is written down once; docs/architecture.md lists the topics
//! and who may see what.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::model::Role;

/// The kind of row change in a [`PostgresChange`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[serde(rename_all = "UPPERCASE")]
pub enum ChangeType {
    Insert,
    Update,
    Delete,
}

impl ChangeType {
    pub fn parse(text: &str) -> Option<ChangeType> {
        match text {
            "INSERT" => Some(ChangeType::Insert),
            "UPDATE" => Some(ChangeType::Update),
            "DELETE" => Some(ChangeType::Delete),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ChangeType::Insert => "INSERT",
            ChangeType::Update => "UPDATE",
            ChangeType::Delete => "DELETE",
        }
    }
}

/// One column of a changed table, as PostgreSQL names its type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
}

/// The columns of the `sessions` records (the `Session` model's fields).
pub const SESSION_COLUMNS: &[(&str, &str)] = &[
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

/// The columns of the `messages` records (the `Message` model's fields).
pub const MESSAGE_COLUMNS: &[(&str, &str)] = &[
    ("id", "uuid"),
    ("session_id", "uuid"),
    ("seq", "int8"),
    ("sender_id", "uuid"),
    ("sender_role", "text"),
    ("body", "text"),
    ("client_id", "text"),
    ("created_at", "timestamptz"),
    ("attachments", "jsonb"),
];

fn public() -> String {
    "public".into()
}

/// A committed row change: the `data` of a `postgres_changes` message,
/// `{schema, table, commit_timestamp, type, columns, record, old_record?, errors}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct PostgresChange {
    #[serde(default = "public")]
    pub schema: String,
    pub table: String,
    /// RFC 3339, UTC.
    #[serde(default)]
    pub commit_timestamp: Option<String>,
    #[serde(rename = "type")]
    pub change_type: ChangeType,
    #[serde(default)]
    pub columns: Vec<Column>,
    /// The row after the change (a `Session` or a `Message`); `null` for a delete.
    #[serde(default)]
    #[cfg_attr(feature = "ts", ts(type = "unknown"))]
    pub record: Value,
    /// The row before the change, for updates when the server knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(type = "unknown", optional))]
    pub old_record: Option<Value>,
    /// Always `null`: Supabase reports per-change errors here.
    #[serde(default)]
    #[cfg_attr(feature = "ts", ts(type = "null"))]
    pub errors: Option<Value>,
}

impl PostgresChange {
    /// A change of one of Wrenchline's tables (schema `public`) committed now.
    pub fn new(
        table: &str,
        columns: &[(&str, &str)],
        change_type: ChangeType,
        record: Value,
        old_record: Option<Value>,
    ) -> PostgresChange {
        PostgresChange {
            schema: public(),
            table: table.to_string(),
            commit_timestamp: OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .ok(),
            change_type,
            columns: columns
                .iter()
                .map(|(name, kind)| Column {
                    name: name.to_string(),
                    kind: kind.to_string(),
                })
                .collect(),
            record,
            old_record,
            errors: None,
        }
    }
}

/// The payload of a `postgres_changes` event: the ids of the subscriber's bindings the change
/// matched (from the join reply) and the change. `D` lets the server send an already encoded
/// change to many subscribers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PostgresChangesMessage<D = PostgresChange> {
    pub ids: Vec<u32>,
    pub data: D,
}

/// `typing` on `chat:session-{id}`: a participant is typing. Clients send it at most every two
/// seconds and show it for a few.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct Typing {
    pub user_id: Uuid,
    pub role: Role,
}

impl Typing {
    /// The broadcast event.
    pub const EVENT: &'static str = "typing";
}

/// `session_ending` on `chat:session-{id}`, broadcast by the server once, shortly before a live
/// session's time is up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct SessionEnding {
    pub session_id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    pub ends_at: OffsetDateTime,
    /// Whole seconds left when it was sent.
    pub seconds_left: i64,
}

impl SessionEnding {
    /// The broadcast event.
    pub const EVENT: &'static str = "session_ending";
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_change_reads_back_as_written() {
        let change = PostgresChange::new(
            "messages",
            MESSAGE_COLUMNS,
            ChangeType::Insert,
            json!({"id": "m1", "seq": 1}),
            None,
        );
        let wire = serde_json::to_value(PostgresChangesMessage {
            ids: vec![7],
            data: &change,
        })
        .unwrap();
        assert_eq!(wire["data"]["type"], "INSERT");
        assert_eq!(wire["data"]["schema"], "public");
        assert_eq!(wire["data"]["errors"], Value::Null);
        assert_eq!(
            wire["data"]["columns"][2],
            json!({"name": "seq", "type": "int8"})
        );
        assert!(wire["data"].get("old_record").is_none());
        let read: PostgresChangesMessage = serde_json::from_value(wire).unwrap();
        assert_eq!(read.ids, vec![7]);
        assert_eq!(read.data, change);
    }

    #[test]
    fn a_minimal_change_is_read_with_defaults() {
        let read: PostgresChange = serde_json::from_value(
            json!({"table": "sessions", "type": "UPDATE", "record": {"id": "s"}, "old_record": null}),
        )
        .unwrap();
        assert_eq!(read.schema, "public");
        assert_eq!(read.change_type, ChangeType::Update);
        assert_eq!(read.old_record, None);
        assert!(
            serde_json::from_value::<PostgresChange>(json!({"table": "t", "type": "MERGE"}))
                .is_err()
        );
    }

    #[test]
    fn broadcasts_have_the_documented_fields() {
        let id = Uuid::new_v4();
        let typing = serde_json::to_value(Typing {
            user_id: id,
            role: Role::Mechanic,
        })
        .unwrap();
        assert_eq!(typing, json!({"user_id": id, "role": "mechanic"}));
        let ending = SessionEnding {
            session_id: id,
            ends_at: time::macros::datetime!(2026-01-01 10:30 UTC),
            seconds_left: 59,
        };
        assert_eq!(
            serde_json::to_value(&ending).unwrap(),
            json!({"session_id": id, "ends_at": "2026-01-01T10:30:00Z", "seconds_left": 59})
        );
    }
}
