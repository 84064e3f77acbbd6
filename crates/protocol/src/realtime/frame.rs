//! Frame encoding and decoding for both serializer versions:
//! - `1.0.0`: JSON objects `{topic, event, payload, ref, join_ref}`;
//! - `2.0.0`: JSON arrays `[join_ref, ref, topic, event, payload]`, plus binary user broadcasts:
//!   kind 3 (client → server) and kind 4 (server → client), as realtime-js' `serializer.ts`
//!   lays them out.

use serde_json::{Map, Value};

/// Serializer version negotiated by the `vsn` query parameter (absent means 1.0.0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Vsn {
    V1,
    V2,
}

impl Vsn {
    pub fn parse(vsn: Option<&str>) -> Option<Vsn> {
        match vsn {
            None | Some("1.0.0") => Some(Vsn::V1),
            Some("2.0.0") => Some(Vsn::V2),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Vsn::V1 => "1.0.0",
            Vsn::V2 => "2.0.0",
        }
    }
}

/// A text frame in either version.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub join_ref: Option<String>,
    pub r#ref: Option<String>,
    pub topic: String,
    pub event: String,
    pub payload: Value,
}

impl Frame {
    pub fn new(topic: impl Into<String>, event: impl Into<String>, payload: Value) -> Self {
        Frame {
            join_ref: None,
            r#ref: None,
            topic: topic.into(),
            event: event.into(),
            payload,
        }
    }

    pub fn with_refs(mut self, join_ref: Option<&str>, r#ref: Option<&str>) -> Self {
        self.join_ref = join_ref.map(str::to_string);
        self.r#ref = r#ref.map(str::to_string);
        self
    }

    /// A `phx_reply` to this frame.
    pub fn reply(&self, status: &str, response: Value) -> Frame {
        Frame {
            join_ref: self.join_ref.clone(),
            r#ref: self.r#ref.clone(),
            topic: self.topic.clone(),
            event: "phx_reply".into(),
            payload: serde_json::json!({ "status": status, "response": response }),
        }
    }

    pub fn encode(&self, vsn: Vsn) -> String {
        match vsn {
            Vsn::V1 => {
                let mut obj = Map::new();
                obj.insert("topic".into(), Value::String(self.topic.clone()));
                obj.insert("event".into(), Value::String(self.event.clone()));
                obj.insert("payload".into(), self.payload.clone());
                obj.insert("ref".into(), opt(&self.r#ref));
                obj.insert("join_ref".into(), opt(&self.join_ref));
                Value::Object(obj).to_string()
            }
            Vsn::V2 => serde_json::to_string(&(
                &self.join_ref,
                &self.r#ref,
                &self.topic,
                &self.event,
                &self.payload,
            ))
            .expect("a JSON value always serializes"),
        }
    }

    pub fn decode(vsn: Vsn, text: &str) -> Result<Frame, FrameError> {
        let value: Value = serde_json::from_str(text).map_err(|_| FrameError::Json)?;
        match vsn {
            Vsn::V1 => {
                let Value::Object(mut obj) = value else {
                    return Err(FrameError::Shape("a 1.0.0 frame is a JSON object"));
                };
                let topic = take_string(&mut obj, "topic")?
                    .ok_or(FrameError::Shape("topic is required"))?;
                let event = take_string(&mut obj, "event")?
                    .ok_or(FrameError::Shape("event is required"))?;
                let r#ref = take_string(&mut obj, "ref")?;
                let join_ref = take_string(&mut obj, "join_ref")?;
                let payload = obj.remove("payload").unwrap_or(Value::Object(Map::new()));
                Ok(Frame {
                    join_ref,
                    r#ref,
                    topic,
                    event,
                    payload: object_payload(payload)?,
                })
            }
            Vsn::V2 => {
                let Value::Array(items) = value else {
                    return Err(FrameError::Shape("a 2.0.0 text frame is a JSON array"));
                };
                if items.len() < 5 {
                    return Err(FrameError::Shape("a 2.0.0 frame has five elements"));
                }
                let mut items = items.into_iter();
                let join_ref = ref_value(items.next().unwrap())?;
                let r#ref = ref_value(items.next().unwrap())?;
                let topic = match items.next().unwrap() {
                    Value::String(s) => s,
                    _ => return Err(FrameError::Shape("topic must be a string")),
                };
                let event = match items.next().unwrap() {
                    Value::String(s) => s,
                    _ => return Err(FrameError::Shape("event must be a string")),
                };
                let payload = object_payload(items.next().unwrap())?;
                Ok(Frame {
                    join_ref,
                    r#ref,
                    topic,
                    event,
                    payload,
                })
            }
        }
    }
}

fn opt(s: &Option<String>) -> Value {
    s.as_ref().map_or(Value::Null, |s| Value::String(s.clone()))
}

/// Refs are opaque strings; integers are tolerated as some clients send them.
fn ref_value(v: Value) -> Result<Option<String>, FrameError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        Value::Number(n) => Ok(Some(n.to_string())),
        _ => Err(FrameError::Shape("refs must be strings or null")),
    }
}

fn take_string(
    obj: &mut Map<String, Value>,
    key: &'static str,
) -> Result<Option<String>, FrameError> {
    match obj.remove(key) {
        None => Ok(None),
        Some(v) => ref_value(v),
    }
}

fn object_payload(v: Value) -> Result<Value, FrameError> {
    match v {
        Value::Object(_) => Ok(v),
        Value::Null => Ok(Value::Object(Map::new())),
        _ => Err(FrameError::Shape("payload must be a JSON object")),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("the frame is not valid JSON")]
    Json,
    #[error("malformed frame: {0}")]
    Shape(&'static str),
    #[error("binary frames are not accepted on this connection")]
    BinaryNotAccepted,
    #[error("unsupported binary frame kind {0}")]
    Kind(u8),
    #[error("the binary frame is truncated")]
    Truncated,
    #[error("a binary frame field is not valid UTF-8")]
    Utf8,
    #[error("a field is too long for a binary frame (255 bytes at most)")]
    FieldTooLong,
}

/// The payload of a user broadcast: JSON (encoding 1) or raw bytes (encoding 0).
#[derive(Debug, Clone, PartialEq)]
pub enum BroadcastPayload {
    Json(Value),
    Binary(Vec<u8>),
}

/// A user broadcast carried in a binary frame.
#[derive(Debug, Clone, PartialEq)]
pub struct UserBroadcast {
    pub join_ref: Option<String>,
    pub r#ref: Option<String>,
    pub topic: String,
    pub event: String,
    /// The metadata JSON object exactly as it was sent (kept as text, so that re-encoding gives
    /// back the same bytes and never outgrows the 255 bytes a frame allows).
    pub metadata: Option<String>,
    pub payload: BroadcastPayload,
}

/// Anything a client may send.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    Frame(Frame),
    UserBroadcast(UserBroadcast),
}

pub const KIND_USER_BROADCAST_PUSH: u8 = 3;
pub const KIND_USER_BROADCAST: u8 = 4;

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn u8(&mut self) -> Result<u8, FrameError> {
        let b = *self.bytes.get(self.at).ok_or(FrameError::Truncated)?;
        self.at += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        let end = self.at.checked_add(n).ok_or(FrameError::Truncated)?;
        let slice = self.bytes.get(self.at..end).ok_or(FrameError::Truncated)?;
        self.at = end;
        Ok(slice)
    }

    fn rest(&self) -> &'a [u8] {
        &self.bytes[self.at..]
    }
}

/// A binary frame taken apart: its length-prefixed fields, the payload encoding and the payload.
struct Fields<'a, const N: usize> {
    fields: [&'a [u8]; N],
    encoding: u8,
    payload: &'a [u8],
}

/// Both binary kinds share one layout: the kind, a length byte for each of `N` fields, the
/// payload encoding, the fields, then the payload to the end of the frame.
fn read_fields<const N: usize>(bytes: &[u8], kind: u8) -> Result<Fields<'_, N>, FrameError> {
    let mut r = Reader { bytes, at: 0 };
    let found = r.u8()?;
    if found != kind {
        return Err(FrameError::Kind(found));
    }
    let mut lens = [0usize; N];
    for len in &mut lens {
        *len = r.u8()? as usize;
    }
    let encoding = r.u8()?;
    let mut fields = [&[][..]; N];
    for (field, len) in fields.iter_mut().zip(lens) {
        *field = r.take(len)?;
    }
    Ok(Fields {
        fields,
        encoding,
        payload: r.rest(),
    })
}

/// The layout [`read_fields`] reads.
fn write_fields(
    kind: u8,
    fields: &[&[u8]],
    encoding: u8,
    payload: &[u8],
) -> Result<Vec<u8>, FrameError> {
    let mut out = Vec::with_capacity(
        2 + fields.len() + fields.iter().map(|f| f.len()).sum::<usize>() + payload.len(),
    );
    out.push(kind);
    for f in fields {
        out.push(u8::try_from(f.len()).map_err(|_| FrameError::FieldTooLong)?);
    }
    out.push(encoding);
    for f in fields {
        out.extend_from_slice(f);
    }
    out.extend_from_slice(payload);
    Ok(out)
}

fn utf8(bytes: &[u8]) -> Result<String, FrameError> {
    std::str::from_utf8(bytes)
        .map(str::to_string)
        .map_err(|_| FrameError::Utf8)
}

fn payload_from(encoding: u8, bytes: &[u8]) -> Result<BroadcastPayload, FrameError> {
    match encoding {
        0 => Ok(BroadcastPayload::Binary(bytes.to_vec())),
        1 => serde_json::from_slice(bytes)
            .map(BroadcastPayload::Json)
            .map_err(|_| FrameError::Json),
        _ => Err(FrameError::Shape("unknown payload encoding")),
    }
}

/// Metadata must be JSON; it is kept as the text that was sent.
fn metadata_from(bytes: &[u8]) -> Result<Option<String>, FrameError> {
    if bytes.is_empty() {
        return Ok(None);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| FrameError::Utf8)?;
    serde_json::from_str::<serde::de::IgnoredAny>(text).map_err(|_| FrameError::Json)?;
    Ok(Some(text.to_string()))
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

impl UserBroadcast {
    /// Decodes a kind 3 frame (what realtime-js sends for `channel.send({type: 'broadcast'})`).
    pub fn decode_push(bytes: &[u8]) -> Result<UserBroadcast, FrameError> {
        let Fields {
            fields: [join_ref, r#ref, topic, event, meta],
            encoding,
            payload,
        } = read_fields(bytes, KIND_USER_BROADCAST_PUSH)?;
        Ok(UserBroadcast {
            join_ref: non_empty(utf8(join_ref)?),
            r#ref: non_empty(utf8(r#ref)?),
            topic: utf8(topic)?,
            event: utf8(event)?,
            metadata: metadata_from(meta)?,
            payload: payload_from(encoding, payload)?,
        })
    }

    /// Decodes a kind 4 frame (server → client).
    pub fn decode_broadcast(bytes: &[u8]) -> Result<UserBroadcast, FrameError> {
        let Fields {
            fields: [topic, event, meta],
            encoding,
            payload,
        } = read_fields(bytes, KIND_USER_BROADCAST)?;
        Ok(UserBroadcast {
            join_ref: None,
            r#ref: None,
            topic: utf8(topic)?,
            event: utf8(event)?,
            metadata: metadata_from(meta)?,
            payload: payload_from(encoding, payload)?,
        })
    }

    fn payload_bytes(&self) -> (u8, Vec<u8>) {
        match &self.payload {
            BroadcastPayload::Json(v) => (1, v.to_string().into_bytes()),
            BroadcastPayload::Binary(b) => (0, b.clone()),
        }
    }

    fn meta_bytes(&self) -> Vec<u8> {
        self.metadata
            .clone()
            .map(String::into_bytes)
            .unwrap_or_default()
    }

    /// Encodes as kind 4, the frame realtime-js decodes.
    pub fn encode_broadcast(&self) -> Result<Vec<u8>, FrameError> {
        let (encoding, payload) = self.payload_bytes();
        let meta = self.meta_bytes();
        let fields = [self.topic.as_bytes(), self.event.as_bytes(), &meta];
        write_fields(KIND_USER_BROADCAST, &fields, encoding, &payload)
    }

    /// Encodes as kind 3, the frame a client sends.
    pub fn encode_push(&self) -> Result<Vec<u8>, FrameError> {
        let (encoding, payload) = self.payload_bytes();
        let meta = self.meta_bytes();
        let join_ref = self.join_ref.as_deref().unwrap_or_default();
        let r#ref = self.r#ref.as_deref().unwrap_or_default();
        let fields = [
            join_ref.as_bytes(),
            r#ref.as_bytes(),
            self.topic.as_bytes(),
            self.event.as_bytes(),
            &meta,
        ];
        write_fields(KIND_USER_BROADCAST_PUSH, &fields, encoding, &payload)
    }

    /// The JSON form of this broadcast (`{type: "broadcast", event, payload}`), for clients that
    /// cannot read binary frames; `None` for a raw binary payload.
    pub fn json_payload(&self) -> Option<Value> {
        match &self.payload {
            BroadcastPayload::Json(p) => {
                Some(serde_json::json!({ "type": "broadcast", "event": self.event, "payload": p }))
            }
            BroadcastPayload::Binary(_) => None,
        }
    }
}

impl Inbound {
    /// Decodes a text frame.
    pub fn text(vsn: Vsn, text: &str) -> Result<Inbound, FrameError> {
        Frame::decode(vsn, text).map(Inbound::Frame)
    }

    /// Decodes a binary frame: only kind 3, and only on 2.0.0 connections.
    pub fn binary(vsn: Vsn, bytes: &[u8]) -> Result<Inbound, FrameError> {
        if vsn != Vsn::V2 {
            return Err(FrameError::BinaryNotAccepted);
        }
        UserBroadcast::decode_push(bytes).map(Inbound::UserBroadcast)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn v2_arrays_round_trip() {
        let text = r#"["6","6","realtime:room1","phx_join",{"config":{"private":false}}]"#;
        let frame = Frame::decode(Vsn::V2, text).unwrap();
        assert_eq!(frame.join_ref.as_deref(), Some("6"));
        assert_eq!(frame.topic, "realtime:room1");
        assert_eq!(frame.event, "phx_join");
        assert_eq!(frame.encode(Vsn::V2), text);
        let heartbeat = Frame::decode(Vsn::V2, r#"[null,"10","phoenix","heartbeat",{}]"#).unwrap();
        assert_eq!(heartbeat.join_ref, None);
        assert_eq!(
            heartbeat.reply("ok", json!({})).encode(Vsn::V2),
            r#"[null,"10","phoenix","phx_reply",{"status":"ok","response":{}}]"#
        );
    }

    #[test]
    fn v1_objects_round_trip() {
        let text = r#"{"topic":"realtime:room1","event":"broadcast","payload":{"type":"broadcast","event":"hi","payload":{"a":1}},"ref":"8","join_ref":"6"}"#;
        let frame = Frame::decode(Vsn::V1, text).unwrap();
        assert_eq!(frame.r#ref.as_deref(), Some("8"));
        assert_eq!(frame.payload["event"], "hi");
        let again = Frame::decode(Vsn::V1, &frame.encode(Vsn::V1)).unwrap();
        assert_eq!(again, frame);
    }

    #[test]
    fn malformed_text_frames_are_errors() {
        for (vsn, text) in [
            (Vsn::V2, "not json"),
            (Vsn::V2, "{}"),
            (Vsn::V2, r#"["1","2","t"]"#),
            (Vsn::V2, r#"["1","2",3,"e",{}]"#),
            (Vsn::V2, r#"["1","2","t","e",[1]]"#),
            (Vsn::V2, r#"[{},"2","t","e",{}]"#),
            (Vsn::V1, "[]"),
            (Vsn::V1, r#"{"event":"x"}"#),
        ] {
            assert!(Frame::decode(vsn, text).is_err(), "{text}");
        }
    }

    #[test]
    fn decodes_the_kind_3_frame_realtime_js_sends() {
        // 03 01 01 0e 02 00 01 "6" "8" "realtime:room1" "hi" {"a":1}
        let mut bytes = vec![3, 1, 1, 14, 2, 0, 1];
        bytes.extend_from_slice(b"68realtime:room1hi{\"a\":1}");
        let b = UserBroadcast::decode_push(&bytes).unwrap();
        assert_eq!(b.join_ref.as_deref(), Some("6"));
        assert_eq!(b.r#ref.as_deref(), Some("8"));
        assert_eq!(b.topic, "realtime:room1");
        assert_eq!(b.event, "hi");
        assert_eq!(b.payload, BroadcastPayload::Json(json!({"a": 1})));
        assert_eq!(b.encode_push().unwrap(), bytes);
    }

    #[test]
    fn encodes_kind_4_as_realtime_js_reads_it() {
        let b = UserBroadcast {
            join_ref: None,
            r#ref: None,
            topic: "realtime:room1".into(),
            event: "hi".into(),
            metadata: Some(r#"{"id":"abc"}"#.into()),
            payload: BroadcastPayload::Json(json!({"a": 1})),
        };
        let bytes = b.encode_broadcast().unwrap();
        let mut expected = vec![4, 14, 2, 12, 1];
        expected.extend_from_slice(b"realtime:room1hi{\"id\":\"abc\"}{\"a\":1}");
        assert_eq!(bytes, expected);
        assert_eq!(UserBroadcast::decode_broadcast(&bytes).unwrap(), b);
    }

    #[test]
    fn truncated_or_foreign_binary_frames_are_errors() {
        assert_eq!(
            Inbound::binary(Vsn::V1, &[3]).unwrap_err(),
            FrameError::BinaryNotAccepted
        );
        assert_eq!(
            Inbound::binary(Vsn::V2, &[]).unwrap_err(),
            FrameError::Truncated
        );
        assert_eq!(
            Inbound::binary(Vsn::V2, &[0, 1, 1, 1, 1]).unwrap_err(),
            FrameError::Kind(0)
        );
        assert_eq!(
            Inbound::binary(Vsn::V2, &[3, 200, 1, 1, 1, 0, 1, b'x']).unwrap_err(),
            FrameError::Truncated
        );
        assert_eq!(
            Inbound::binary(Vsn::V2, &[3, 0, 0, 1, 1, 0, 1, 0xff, b'e', b'{', b'}']).unwrap_err(),
            FrameError::Utf8
        );
        assert_eq!(
            Inbound::binary(Vsn::V2, &[3, 0, 0, 1, 1, 0, 1, b't', b'e', b'{']).unwrap_err(),
            FrameError::Json
        );
        assert!(Inbound::binary(Vsn::V2, &[3, 0, 0, 1, 1, 0, 7, b't', b'e']).is_err());
    }
}
