//! Text → `Frame::decode(V1)`: any string a client sends on a vsn 1.0.0 socket. Decoding must not
//! panic; a decoded frame has an object payload and survives encode → decode unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wrenchline_protocol::realtime::{Frame, Vsn};

fuzz_target!(|text: &str| {
    let Ok(frame) = Frame::decode(Vsn::V1, text) else {
        return;
    };
    assert!(frame.payload.is_object(), "payload {:?}", frame.payload);
    let encoded = frame.encode(Vsn::V1);
    let again = Frame::decode(Vsn::V1, &encoded).expect("an encoded frame decodes");
    assert_eq!(again, frame, "round trip through {encoded}");
});
