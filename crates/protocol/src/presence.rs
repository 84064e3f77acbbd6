//! Presence matching. Supabase keys presence state by *connection* (a random UUID per socket
//! unless the client sets a key), so "is this user here" must be answered from the payloads'
//! `user_id`, across every key and every entry under a key. Keys are never compared with user ids.
//!
//! State arrives in two shapes and both are accepted: realtime-js' `presenceState()`
//! (`{key: [payload, …]}`) and Phoenix' raw form (`{key: {metas: [payload, …]}}`).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::Role;

/// The payload every Wrenchline client tracks: on a session's presence topic
/// `{user_id, role, online_at}`, on `requests` also the mechanic's `availability`. The server
/// refuses a track whose `user_id` (or `role`) is not the connection's own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct PresencePayload {
    pub user_id: String,
    pub role: Role,
    /// When this connection came online, RFC 3339.
    pub online_at: String,
    /// Only on `requests`; absent means online.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub availability: Option<Availability>,
}

impl PresencePayload {
    /// `user_id` as `role`, online from `online_at`.
    pub fn new(user_id: impl ToString, role: Role, online_at: time::OffsetDateTime) -> Self {
        PresencePayload {
            user_id: user_id.to_string(),
            role,
            online_at: online_at
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            availability: None,
        }
    }

    /// The same payload with a mechanic's availability, for the `requests` topic.
    pub fn with_availability(mut self, availability: Availability) -> Self {
        self.availability = Some(availability);
        self
    }

    /// The payload as the JSON a channel tracks.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("a presence payload serializes")
    }
}

/// Whether a mechanic takes new requests: the `availability` a mechanic's desktop app tracks in
/// its presence on the `requests` topic. `away` means no notifications, and the mechanic is not
/// counted as available to customers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[serde(rename_all = "lowercase")]
pub enum Availability {
    Online,
    Away,
}

/// An `availability` that is neither `online` nor `away` (the value as JSON text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("availability must be \"online\" or \"away\", not {0}")]
pub struct UnknownAvailability(pub String);

impl Availability {
    pub fn as_str(self) -> &'static str {
        match self {
            Availability::Online => "online",
            Availability::Away => "away",
        }
    }

    /// A presence payload's availability. A payload without the field (or with `null`) is
    /// online, so that clients written before the field existed keep counting.
    pub fn of_payload(
        payload: &serde_json::Map<String, Value>,
    ) -> Result<Self, UnknownAvailability> {
        match payload.get("availability") {
            None | Some(Value::Null) => Ok(Availability::Online),
            Some(Value::String(s)) if s == "online" => Ok(Availability::Online),
            Some(Value::String(s)) if s == "away" => Ok(Availability::Away),
            Some(other) => Err(UnknownAvailability(other.to_string())),
        }
    }
}

/// Every payload in a presence state, whatever its key.
pub fn payloads(state: &Value) -> impl Iterator<Item = &Value> {
    state
        .as_object()
        .into_iter()
        .flat_map(|keys| keys.values())
        .flat_map(|entry| {
            let list = match entry {
                Value::Array(list) => Some(list),
                Value::Object(obj) => obj.get("metas").and_then(Value::as_array),
                _ => None,
            };
            list.into_iter().flatten()
        })
}

/// The user ids present, read from the payloads.
pub fn present_user_ids(state: &Value) -> BTreeSet<String> {
    payloads(state)
        .filter_map(|p| p.get("user_id").and_then(Value::as_str))
        .map(str::to_string)
        .collect()
}

/// Whether `user_id` is tracked on at least one connection.
pub fn is_present(state: &Value, user_id: &str) -> bool {
    !user_id.is_empty()
        && payloads(state).any(|p| p.get("user_id").and_then(Value::as_str) == Some(user_id))
}

/// Who of a session's two participants is present; an unassigned mechanic is never present.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participants {
    pub customer_present: bool,
    pub mechanic_present: bool,
}

impl Participants {
    pub fn of(state: &Value, customer_id: &str, mechanic_id: Option<&str>) -> Self {
        Participants {
            customer_present: is_present(state, customer_id),
            mechanic_present: mechanic_id.is_some_and(|id| is_present(state, id)),
        }
    }

    pub fn both(self) -> bool {
        self.customer_present && self.mechanic_present
    }

    /// The roles still missing, customer first.
    pub fn missing(self) -> Vec<Role> {
        let mut missing = Vec::new();
        if !self.customer_present {
            missing.push(Role::Customer);
        }
        if !self.mechanic_present {
            missing.push(Role::Mechanic);
        }
        missing
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[derive(Deserialize)]
    struct Fixture {
        description: String,
        customer_id: String,
        mechanic_id: Option<String>,
        state: Value,
        expect: Expect,
    }

    #[derive(Deserialize)]
    struct Expect {
        customer_present: bool,
        mechanic_present: bool,
        present_user_ids: Vec<String>,
    }

    fn fixtures() -> Vec<(PathBuf, Fixture)> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/presence");
        let mut out: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .map(|p| {
                let text = std::fs::read_to_string(&p).unwrap();
                let fixture =
                    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                (p, fixture)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    #[test]
    fn shared_fixtures_match() {
        let all = fixtures();
        assert!(
            all.len() >= 6,
            "expected the shared fixture set, found {}",
            all.len()
        );
        for (path, f) in all {
            let got = Participants::of(&f.state, &f.customer_id, f.mechanic_id.as_deref());
            assert_eq!(
                (got.customer_present, got.mechanic_present),
                (f.expect.customer_present, f.expect.mechanic_present),
                "{}: {}",
                path.display(),
                f.description
            );
            let ids: Vec<String> = present_user_ids(&f.state).into_iter().collect();
            let mut want = f.expect.present_user_ids.clone();
            want.sort();
            assert_eq!(ids, want, "{}", path.display());
        }
    }

    #[test]
    fn keys_are_never_taken_for_user_ids() {
        let state = serde_json::json!({ "u1": [{ "user_id": "someone-else" }] });
        assert!(!is_present(&state, "u1"));
        assert!(is_present(&state, "someone-else"));
    }

    #[test]
    fn missing_lists_roles() {
        let p = Participants {
            customer_present: true,
            mechanic_present: false,
        };
        assert_eq!(p.missing(), vec![Role::Mechanic]);
        assert!(!p.both());
    }

    #[test]
    fn a_payload_carries_availability_only_when_given() {
        let at = time::macros::datetime!(2026-01-01 10:00 UTC);
        let plain = PresencePayload::new("u1", Role::Customer, at).to_value();
        assert_eq!(
            plain,
            serde_json::json!({"user_id": "u1", "role": "customer", "online_at": "2026-01-01T10:00:00Z"})
        );
        let away = PresencePayload::new("m1", Role::Mechanic, at)
            .with_availability(Availability::Away)
            .to_value();
        assert_eq!(away["availability"], "away");
        assert_eq!(
            Availability::of_payload(away.as_object().unwrap()),
            Ok(Availability::Away)
        );
        assert_eq!(
            Availability::of_payload(plain.as_object().unwrap()),
            Ok(Availability::Online)
        );
    }

    #[test]
    fn availability_is_online_unless_it_says_away() {
        let of = |v: Value| Availability::of_payload(v.as_object().unwrap());
        let id = "7b0c6d52-1f57-4bde-9d43-2d1f0f5f7a11";
        assert_eq!(
            of(serde_json::json!({"user_id": id})),
            Ok(Availability::Online)
        );
        assert_eq!(
            of(serde_json::json!({"user_id": id, "availability": null})),
            Ok(Availability::Online)
        );
        assert_eq!(
            of(serde_json::json!({"availability": "online"})),
            Ok(Availability::Online)
        );
        assert_eq!(
            of(serde_json::json!({"availability": "away"})),
            Ok(Availability::Away)
        );
        for bad in [
            serde_json::json!("Away"),
            serde_json::json!("busy"),
            serde_json::json!(""),
            serde_json::json!(true),
            serde_json::json!({"status": "online"}),
        ] {
            let err = of(serde_json::json!({ "availability": bad })).unwrap_err();
            assert_eq!(err.0, bad.to_string());
        }
        assert_eq!(
            serde_json::to_value(Availability::Away).unwrap(),
            serde_json::json!("away")
        );
    }
}
