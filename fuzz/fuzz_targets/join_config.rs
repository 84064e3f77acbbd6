//! Bytes → `serde_json::from_slice` → `JoinPayload::parse`: any `phx_join` payload. Parsing must
//! not panic, and binding ids (echoed in the join reply and matched later in `ids`) must be
//! deterministic: the same for a clone, for a second parse, and after the payload goes through
//! JSON text again; equal bindings get equal ids.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use wrenchline_protocol::realtime::JoinPayload;

fuzz_target!(|bytes: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(bytes) else {
        return;
    };
    let Ok(join) = JoinPayload::parse(&value) else {
        return;
    };
    if let Some(key) = &join.config.presence_key {
        assert!(!key.is_empty() && key.len() <= 200, "presence key {key:?}");
    }
    assert!(join.access_token.as_ref().is_none_or(|t| !t.is_empty()));
    if !join.has_config {
        assert_eq!(join.config, Default::default());
    }

    let ids: Vec<u32> = join
        .config
        .postgres_changes
        .iter()
        .map(|b| b.id())
        .collect();
    let again = JoinPayload::parse(&value).expect("a second parse succeeds");
    assert_eq!(again, join);
    let reparsed = JoinPayload::parse(&serde_json::from_str(&value.to_string()).unwrap())
        .expect("the payload parses again after a trip through JSON text");
    for (i, binding) in join.config.postgres_changes.iter().enumerate() {
        assert_eq!(binding.clone().id(), ids[i]);
        assert_eq!(again.config.postgres_changes[i].id(), ids[i]);
        assert_eq!(reparsed.config.postgres_changes[i].id(), ids[i]);
        for (j, other) in join.config.postgres_changes.iter().enumerate() {
            let same = (
                &binding.event,
                &binding.schema,
                &binding.table,
                &binding.filter,
            ) == (&other.event, &other.schema, &other.table, &other.filter);
            if same {
                assert_eq!(ids[i], ids[j], "equal bindings {i} and {j}");
            }
        }
        let _ = binding.wants("INSERT") | binding.wants("UPDATE") | binding.wants("DELETE");
    }
});
