//! Bytes → `Inbound::binary(V2, …)`: any binary WebSocket message a client sends. Decoding must
//! not panic and is refused outright on vsn 1.0.0. A decoded kind-3 push must survive
//! `encode_push` → `decode_push` unchanged, and its kind-4 form (what the hub relays to other
//! vsn 2.0.0 sockets, `encode_broadcast`) must encode and decode to the same broadcast without
//! refs: a push the server accepted must never become one it cannot relay.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wrenchline_protocol::realtime::{FrameError, Inbound, UserBroadcast, Vsn};

fuzz_target!(|bytes: &[u8]| {
    assert_eq!(
        Inbound::binary(Vsn::V1, bytes),
        Err(FrameError::BinaryNotAccepted)
    );
    let Ok(inbound) = Inbound::binary(Vsn::V2, bytes) else {
        return;
    };
    let Inbound::UserBroadcast(push) = inbound else {
        panic!("a binary frame decoded as {inbound:?}");
    };
    let _ = push.json_payload();

    let encoded = push
        .encode_push()
        .unwrap_or_else(|e| panic!("re-encoding accepted push {push:?} as kind 3: {e}"));
    let again = UserBroadcast::decode_push(&encoded).expect("an encoded push decodes");
    assert_eq!(again, push, "kind 3 round trip through {encoded:?}");

    let relayed = push
        .encode_broadcast()
        .unwrap_or_else(|e| panic!("relaying accepted push {push:?} as kind 4: {e}"));
    let received = UserBroadcast::decode_broadcast(&relayed).expect("an encoded broadcast decodes");
    let expected = UserBroadcast {
        join_ref: None,
        r#ref: None,
        ..push
    };
    assert_eq!(received, expected, "kind 4 round trip through {relayed:?}");
});
