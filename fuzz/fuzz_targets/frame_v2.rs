//! Text → `Frame::decode(V2)`: any string a client sends on a vsn 2.0.0 socket. Decoding must not
//! panic; a decoded frame has an object payload and survives encode → decode unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wrenchline_protocol::realtime::{Frame, Inbound, Vsn};

fuzz_target!(|text: &str| {
    let Ok(frame) = Frame::decode(Vsn::V2, text) else {
        return;
    };
    assert!(frame.payload.is_object(), "payload {:?}", frame.payload);
    assert_eq!(
        Inbound::text(Vsn::V2, text),
        Ok(Inbound::Frame(frame.clone()))
    );
    let encoded = frame.encode(Vsn::V2);
    let again = Frame::decode(Vsn::V2, &encoded).expect("an encoded frame decodes");
    assert_eq!(again, frame, "round trip through {encoded}");
});
