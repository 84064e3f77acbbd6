//! The `phx_join` payload realtime-js sends: `{config: {broadcast, presence, postgres_changes,
//! private}, access_token?}`: read by the server ([`JoinPayload::parse`]) and written by the Rust
//! client ([`JoinPayload::to_value`]). Parsing is lenient where Supabase is (unknown keys, missing
//! parts, `null` token) and strict about types that would change meaning.

use serde_json::{Map, Value};

/// One `postgres_changes` binding as the client sent it; `raw` is echoed back with an `id`.
#[derive(Debug, Clone, PartialEq)]
pub struct PgBinding {
    pub raw: Map<String, Value>,
    pub event: String,
    pub schema: String,
    pub table: Option<String>,
    pub filter: Option<String>,
}

impl PgBinding {
    /// A binding as a client asks for it: `event` (`*`, `INSERT`, `UPDATE`, `DELETE`) on `table`
    /// of schema `public`, with an optional PostgREST filter (`session_id=eq.{id}`).
    pub fn new(event: &str, table: &str, filter: Option<&str>) -> PgBinding {
        let mut raw = Map::new();
        raw.insert("event".into(), event.into());
        raw.insert("schema".into(), "public".into());
        raw.insert("table".into(), table.into());
        if let Some(filter) = filter {
            raw.insert("filter".into(), filter.into());
        }
        PgBinding {
            raw,
            event: event.to_string(),
            schema: "public".into(),
            table: Some(table.to_string()),
            filter: filter.map(str::to_string),
        }
    }

    /// A stable id derived from the binding (as Supabase does), so every subscriber with the same
    /// binding gets the same id and one encoded frame serves them all.
    pub fn id(&self) -> u32 {
        let key = format!(
            "{}\u{1f}{}\u{1f}{}\u{1f}{}",
            self.event,
            self.schema,
            self.table.as_deref().unwrap_or(""),
            self.filter.as_deref().unwrap_or("")
        );
        crc32fast::hash(key.as_bytes())
    }

    /// Whether this binding wants a change of this type (`INSERT`, `UPDATE`, `DELETE`).
    pub fn wants(&self, change_type: &str) -> bool {
        self.event == "*" || self.event.eq_ignore_ascii_case(change_type)
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct JoinConfig {
    pub broadcast_self: bool,
    pub broadcast_ack: bool,
    /// The presence key the client asked for; a random one is used when absent or empty.
    pub presence_key: Option<String>,
    pub presence_enabled: bool,
    pub postgres_changes: Vec<PgBinding>,
    pub private: bool,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct JoinPayload {
    pub config: JoinConfig,
    /// Whether the join carried a Supabase `config` (realtime-js always sends one; plain Phoenix
    /// clients do not, and cannot read binary user broadcasts).
    pub has_config: bool,
    pub access_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("InvalidJoinPayload: {0}")]
pub struct JoinError(pub String);

fn flag(obj: &Map<String, Value>, key: &str, path: &str) -> Result<bool, JoinError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(JoinError(format!("{path}.{key} must be a boolean"))),
    }
}

fn object<'a>(
    parent: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<&'a Map<String, Value>>, JoinError> {
    match parent.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(_) => Err(JoinError(format!("{path}.{key} must be an object"))),
    }
}

fn opt_string(
    obj: &Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<String>, JoinError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(JoinError(format!("{path}.{key} must be a string"))),
    }
}

impl JoinPayload {
    /// The payload as realtime-js sends it (every part of the config present, an absent presence
    /// key as `""`); [`JoinPayload::parse`] reads it back unchanged.
    pub fn to_value(&self) -> Value {
        let mut root = Map::new();
        if self.has_config {
            let c = &self.config;
            let bindings = c
                .postgres_changes
                .iter()
                .map(|b| Value::Object(b.raw.clone()))
                .collect();
            root.insert(
                "config".into(),
                serde_json::json!({
                    "broadcast": {"self": c.broadcast_self, "ack": c.broadcast_ack},
                    "presence": {"key": c.presence_key.as_deref().unwrap_or(""), "enabled": c.presence_enabled},
                    "postgres_changes": Value::Array(bindings),
                    "private": c.private,
                }),
            );
        }
        if let Some(token) = &self.access_token {
            root.insert("access_token".into(), token.as_str().into());
        }
        Value::Object(root)
    }

    pub fn parse(payload: &Value) -> Result<JoinPayload, JoinError> {
        let Value::Object(root) = payload else {
            return Err(JoinError("the join payload must be an object".into()));
        };
        let access_token = opt_string(root, "access_token", "payload")?.filter(|t| !t.is_empty());
        let Some(config) = object(root, "config", "payload")? else {
            return Ok(JoinPayload {
                config: JoinConfig::default(),
                has_config: false,
                access_token,
            });
        };
        let mut parsed = JoinConfig::default();
        if let Some(broadcast) = object(config, "broadcast", "config")? {
            parsed.broadcast_self = flag(broadcast, "self", "config.broadcast")?;
            parsed.broadcast_ack = flag(broadcast, "ack", "config.broadcast")?;
        }
        if let Some(presence) = object(config, "presence", "config")? {
            parsed.presence_enabled = flag(presence, "enabled", "config.presence")?;
            parsed.presence_key = match presence.get("key") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) if s.is_empty() => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Number(n)) => Some(n.to_string()),
                Some(Value::Bool(b)) => Some(b.to_string()),
                Some(_) => return Err(JoinError("config.presence.key must be a string".into())),
            };
            if parsed.presence_key.as_ref().is_some_and(|k| k.len() > 200) {
                return Err(JoinError("config.presence.key is too long".into()));
            }
        }
        parsed.private = flag(config, "private", "config")?;
        match config.get("postgres_changes") {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let path = format!("config.postgres_changes[{i}]");
                    let Value::Object(raw) = item else {
                        return Err(JoinError(format!("{path} must be an object")));
                    };
                    let event = opt_string(raw, "event", &path)?
                        .ok_or_else(|| JoinError(format!("{path}.event is required")))?;
                    let schema =
                        opt_string(raw, "schema", &path)?.unwrap_or_else(|| "public".into());
                    parsed.postgres_changes.push(PgBinding {
                        raw: raw.clone(),
                        event,
                        schema,
                        table: opt_string(raw, "table", &path)?,
                        filter: opt_string(raw, "filter", &path)?,
                    });
                }
            }
            Some(_) => return Err(JoinError("config.postgres_changes must be an array".into())),
        }
        Ok(JoinPayload {
            config: parsed,
            has_config: true,
            access_token,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_what_realtime_js_sends() {
        let payload = json!({
            "config": {
                "broadcast": {"self": true, "ack": true},
                "presence": {"key": "me", "enabled": true},
                "postgres_changes": [{"event": "INSERT", "schema": "public", "table": "messages", "filter": "session_id=eq.x"}],
                "private": false
            },
            "access_token": "tok-1",
            "version": "realtime-js/2.119.1"
        });
        let join = JoinPayload::parse(&payload).unwrap();
        assert!(join.has_config);
        assert!(join.config.broadcast_self && join.config.broadcast_ack);
        assert_eq!(join.config.presence_key.as_deref(), Some("me"));
        assert!(join.config.presence_enabled);
        assert_eq!(
            join.config.postgres_changes[0].table.as_deref(),
            Some("messages")
        );
        assert_eq!(join.access_token.as_deref(), Some("tok-1"));
    }

    #[test]
    fn tolerates_minimal_and_phoenix_payloads() {
        let minimal = json!({"config": {"broadcast": {"ack": false, "self": false}, "presence": {"key": "", "enabled": false}, "postgres_changes": [], "private": false}, "access_token": null});
        let join = JoinPayload::parse(&minimal).unwrap();
        assert_eq!(join.config.presence_key, None);
        assert_eq!(join.access_token, None);
        let phoenix = JoinPayload::parse(&json!({"access_token": "t"})).unwrap();
        assert!(!phoenix.has_config);
    }

    #[test]
    fn refuses_wrong_types() {
        for bad in [
            json!([]),
            json!({"config": 1}),
            json!({"config": {"broadcast": {"self": "yes"}}}),
            json!({"config": {"postgres_changes": {}}}),
            json!({"config": {"postgres_changes": [1]}}),
            json!({"config": {"postgres_changes": [{"schema": "public"}]}}),
            json!({"config": {"presence": {"key": []}}}),
            json!({"access_token": 5}),
        ] {
            assert!(JoinPayload::parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn what_is_written_reads_back_unchanged() {
        let written = JoinPayload {
            config: JoinConfig {
                broadcast_self: true,
                broadcast_ack: false,
                presence_key: Some("conn-1".into()),
                presence_enabled: true,
                postgres_changes: vec![
                    PgBinding::new("*", "sessions", Some("id=eq.1")),
                    PgBinding::new("INSERT", "messages", None),
                ],
                private: false,
            },
            has_config: true,
            access_token: Some("tok".into()),
        };
        let value = written.to_value();
        assert_eq!(value["config"]["postgres_changes"][0]["schema"], "public");
        assert_eq!(JoinPayload::parse(&value).unwrap(), written);
        let bare = JoinPayload {
            access_token: Some("t".into()),
            ..JoinPayload::default()
        };
        assert_eq!(JoinPayload::parse(&bare.to_value()).unwrap(), bare);
    }

    #[test]
    fn binding_ids_are_stable_and_distinct() {
        let a = JoinPayload::parse(&json!({"config": {"postgres_changes": [
            {"event": "*", "schema": "public", "table": "sessions", "filter": "id=eq.1"},
            {"event": "*", "schema": "public", "table": "sessions", "filter": "id=eq.2"}
        ]}}))
        .unwrap();
        let b = a.clone();
        assert_eq!(
            a.config.postgres_changes[0].id(),
            b.config.postgres_changes[0].id()
        );
        assert_ne!(
            a.config.postgres_changes[0].id(),
            a.config.postgres_changes[1].id()
        );
    }
}
