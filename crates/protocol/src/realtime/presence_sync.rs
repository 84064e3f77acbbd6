//! Phoenix' presence synchronisation (`Presence.syncState` / `Presence.syncDiff` of phoenix.js),
//! for clients that keep presence state: a full `presence_state` replaces the state, reporting
//! what joined and left; a `presence_diff` applies joins, then leaves, matched by `phx_ref`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// Presence state: key → metas (each a tracked payload plus `phx_ref`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PresenceState {
    entries: BTreeMap<String, Vec<Value>>,
}

/// What a sync changed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PresenceChange {
    pub joins: Vec<(String, Vec<Value>)>,
    pub leaves: Vec<(String, Vec<Value>)>,
}

fn phx_ref(meta: &Value) -> Option<&str> {
    meta.get("phx_ref").and_then(Value::as_str)
}

/// Reads `{key: {metas: [...]}}`, ignoring malformed entries.
fn parse(raw: &Value) -> BTreeMap<String, Vec<Value>> {
    raw.as_object()
        .map(|obj| {
            obj.iter()
                .filter_map(|(k, v)| {
                    let metas = v.get("metas")?.as_array()?;
                    Some((
                        k.clone(),
                        metas.iter().filter(|m| m.is_object()).cloned().collect(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

impl PresenceState {
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the state with a full `presence_state` payload.
    pub fn sync_state(&mut self, new_state: &Value) -> PresenceChange {
        let new = parse(new_state);
        let mut joins: Vec<(String, Vec<Value>)> = Vec::new();
        let mut leaves: Vec<(String, Vec<Value>)> = Vec::new();
        for (key, metas) in &self.entries {
            if !new.contains_key(key) {
                leaves.push((key.clone(), metas.clone()));
            }
        }
        for (key, new_metas) in &new {
            match self.entries.get(key) {
                Some(current) => {
                    let joined: Vec<Value> = new_metas
                        .iter()
                        .filter(|m| !current.iter().any(|c| phx_ref(c) == phx_ref(m)))
                        .cloned()
                        .collect();
                    let left: Vec<Value> = current
                        .iter()
                        .filter(|c| !new_metas.iter().any(|m| phx_ref(m) == phx_ref(c)))
                        .cloned()
                        .collect();
                    if !joined.is_empty() {
                        joins.push((key.clone(), joined));
                    }
                    if !left.is_empty() {
                        leaves.push((key.clone(), left));
                    }
                }
                None => joins.push((key.clone(), new_metas.clone())),
            }
        }
        self.apply(joins, leaves)
    }

    /// Applies a `presence_diff` payload `{joins, leaves}`.
    pub fn sync_diff(&mut self, diff: &Value) -> PresenceChange {
        let joins = parse(diff.get("joins").unwrap_or(&Value::Null))
            .into_iter()
            .collect();
        let leaves = parse(diff.get("leaves").unwrap_or(&Value::Null))
            .into_iter()
            .collect();
        self.apply(joins, leaves)
    }

    fn apply(
        &mut self,
        joins: Vec<(String, Vec<Value>)>,
        leaves: Vec<(String, Vec<Value>)>,
    ) -> PresenceChange {
        for (key, new_metas) in &joins {
            let mut metas = new_metas.clone();
            if let Some(current) = self.entries.get(key) {
                let kept: Vec<Value> = current
                    .iter()
                    .filter(|c| !new_metas.iter().any(|m| phx_ref(m) == phx_ref(c)))
                    .cloned()
                    .collect();
                metas.splice(0..0, kept);
            }
            self.entries.insert(key.clone(), metas);
        }
        for (key, left) in &leaves {
            if let Some(current) = self.entries.get_mut(key) {
                current.retain(|c| !left.iter().any(|l| phx_ref(l) == phx_ref(c)));
                if current.is_empty() {
                    self.entries.remove(key);
                }
            }
        }
        PresenceChange { joins, leaves }
    }

    /// The state in Phoenix' raw form, `{key: {metas: [...]}}`, which
    /// [`crate::presence::is_present`] reads.
    pub fn to_value(&self) -> Value {
        let mut obj = Map::new();
        for (key, metas) in &self.entries {
            obj.insert(key.clone(), serde_json::json!({ "metas": metas }));
        }
        Value::Object(obj)
    }

    pub fn is_present(&self, user_id: &str) -> bool {
        !user_id.is_empty()
            && self
                .entries
                .values()
                .flatten()
                .any(|m| m.get("user_id").and_then(Value::as_str) == Some(user_id))
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn state_then_diffs_follow_phoenix() {
        let mut p = PresenceState::new();
        let change = p.sync_state(&json!({
            "k1": {"metas": [{"phx_ref": "1", "user_id": "u1"}]},
            "k2": {"metas": [{"phx_ref": "2", "user_id": "u2"}]}
        }));
        assert_eq!(change.joins.len(), 2);
        assert!(p.is_present("u1") && p.is_present("u2"));

        p.sync_diff(
            &json!({"joins": {"k1": {"metas": [{"phx_ref": "3", "user_id": "u1"}]}}, "leaves": {}}),
        );
        assert_eq!(
            p.to_value()["k1"]["metas"].as_array().unwrap().len(),
            2,
            "a second connection under one key"
        );

        p.sync_diff(&json!({"joins": {}, "leaves": {"k1": {"metas": [{"phx_ref": "1"}]}}}));
        assert!(p.is_present("u1"), "still present on the other connection");
        p.sync_diff(&json!({"joins": {}, "leaves": {"k1": {"metas": [{"phx_ref": "3"}]}}}));
        assert!(!p.is_present("u1"));
        assert_eq!(p.len(), 1);

        let change = p.sync_state(&json!({"k3": {"metas": [{"phx_ref": "9", "user_id": "u3"}]}}));
        assert_eq!(
            change.leaves,
            vec![(
                "k2".to_string(),
                vec![json!({"phx_ref": "2", "user_id": "u2"})]
            )]
        );
        assert!(!p.is_present("u2") && p.is_present("u3"));
    }

    #[test]
    fn an_update_replaces_the_meta_by_ref() {
        let mut p = PresenceState::new();
        p.sync_state(&json!({"k": {"metas": [{"phx_ref": "1", "user_id": "u", "status": "a"}]}}));
        p.sync_diff(&json!({
            "joins": {"k": {"metas": [{"phx_ref": "2", "phx_ref_prev": "1", "user_id": "u", "status": "b"}]}},
            "leaves": {"k": {"metas": [{"phx_ref": "1", "user_id": "u", "status": "a"}]}}
        }));
        assert_eq!(
            p.to_value(),
            json!({"k": {"metas": [{"phx_ref": "2", "phx_ref_prev": "1", "user_id": "u", "status": "b"}]}})
        );
    }

    #[test]
    fn malformed_input_is_ignored() {
        let mut p = PresenceState::new();
        p.sync_state(&json!({"k": 1, "j": {"metas": "x"}, "m": {"metas": [1, {"phx_ref": "1"}]}}));
        assert_eq!(p.len(), 1);
        p.sync_diff(&json!(null));
        assert_eq!(p.len(), 1);
    }
}
