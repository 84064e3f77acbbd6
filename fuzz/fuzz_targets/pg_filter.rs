//! Str → `Filter::parse`: any `postgres_changes` filter string. Input: the filter text, optionally
//! followed by `\n` and a JSON value to match against. Parsing must not panic; an accepted filter
//! names a Postgres identifier (`[a-z_][a-z0-9_]{0,62}`) with a non-empty `eq` value, and
//! `matches` never panics on any JSON value and accepts the record that holds exactly that value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use wrenchline_protocol::realtime::Filter;

fn is_identifier(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && (b[0].is_ascii_lowercase() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

fuzz_target!(|bytes: &[u8]| {
    let (text, record) = match bytes.iter().position(|&b| b == b'\n') {
        Some(i) => (&bytes[..i], Some(&bytes[i + 1..])),
        None => (bytes, None),
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let Ok(filter) = Filter::parse(text) else {
        return;
    };
    assert!(is_identifier(&filter.column), "column {:?}", filter.column);
    assert!(!filter.value.is_empty());
    assert_eq!(format!("{}=eq.{}", filter.column, filter.value), text);

    assert!(filter.matches(&json!({ filter.column.clone(): filter.value.clone() })));
    if let Ok(n) = filter.value.parse::<i64>() {
        if n.to_string() == filter.value {
            assert!(filter.matches(&json!({ filter.column.clone(): n })));
        }
    }
    for other in [
        json!(null),
        json!([]),
        json!({}),
        json!(filter.value),
        json!([filter.value]),
    ] {
        let _ = filter.matches(&other);
    }
    if let Some(Ok(value)) = record.map(serde_json::from_slice::<Value>) {
        let _ = filter.matches(&value);
        if let Value::Object(map) = &value {
            for inner in map.values() {
                let _ = filter.matches(inner);
            }
        }
    }
});
