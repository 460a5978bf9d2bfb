//! AMQP and SASL frames: splitting a byte stream into frames, decoding their bodies, and
//! encoding frames into an output buffer.
//!
//! A frame is an 8-byte header (size, data offset, type, channel), an optional extended
//! header, and a body: for AMQP a performative followed, in a transfer, by payload bytes
//! (AMQP 1.0 part 2, §2.3). Frames larger than the size this side announced are refused before
//! anything is buffered for them, so a peer cannot make the server hold more than one frame
//! of its choosing.

use fe2o3_amqp_types::messaging::DeliveryState;
use fe2o3_amqp_types::performatives::Performative;
use fe2o3_amqp_types::sasl::{SaslInit, SaslMechanisms, SaslOutcome};
use serde::Serialize;

use crate::codec::{check, descriptor_code, value_len, Malformed};

/// The protocol header of an AMQP connection, and of its SASL layer (part 5, §5.3.1).
pub const AMQP_HEADER: [u8; 8] = *b"AMQP\x00\x01\x00\x00";
pub const SASL_HEADER: [u8; 8] = *b"AMQP\x03\x01\x00\x00";

/// The smallest max-frame-size a peer may announce (part 2, §2.7.1).
pub const MIN_MAX_FRAME_SIZE: u32 = 512;

const HEADER_LEN: usize = 8;
const TYPE_AMQP: u8 = 0x00;
const TYPE_SASL: u8 = 0x01;

/// Why a frame could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {size} bytes is over the maximum of {max}")]
    TooLarge { size: u32, max: u32 },
    #[error("frame header is invalid: {0}")]
    Header(&'static str),
    #[error("frame body cannot be decoded: {0}")]
    Decode(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    Amqp,
    Sasl,
}

/// One frame as it sits in the input buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawFrame<'a> {
    pub kind: FrameKind,
    pub channel: u16,
    /// Empty for a heartbeat.
    pub body: &'a [u8],
}

/// The first frame in `buf` and how many bytes it took, or `None` when more bytes are needed.
pub fn next_frame(buf: &[u8], max: u32) -> Result<Option<(RawFrame<'_>, usize)>, FrameError> {
    let Some(header) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    let size = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    if size > max {
        return Err(FrameError::TooLarge { size, max });
    }
    let doff = usize::from(header[4]) * 4;
    if doff < HEADER_LEN || size < HEADER_LEN as u32 || doff > size as usize {
        return Err(FrameError::Header("size or data offset out of range"));
    }
    let kind = match header[5] {
        TYPE_AMQP => FrameKind::Amqp,
        TYPE_SASL => FrameKind::Sasl,
        _ => return Err(FrameError::Header("unknown frame type")),
    };
    let size = size as usize;
    let Some(frame) = buf.get(..size) else {
        return Ok(None);
    };
    let frame = RawFrame {
        kind,
        channel: u16::from_be_bytes([header[6], header[7]]),
        body: &frame[doff..],
    };
    Ok(Some((frame, size)))
}

fn decode_error(e: impl std::fmt::Display) -> FrameError {
    FrameError::Decode(e.to_string())
}

/// The performative of an AMQP frame body and the payload after it.
pub fn decode_performative(body: &[u8]) -> Result<(Performative, &[u8]), FrameError> {
    let len = check(body).map_err(decode_error)?;
    let encoded = &body[..len];
    // Transfers are the hot path and carry a symbol-keyed map only in an error of their state.
    let transfer = descriptor_code(encoded) == Some(0x14);
    let performative = if !transfer || encoded.windows(3).any(|w| w == [0x00, 0x53, 0x1d]) {
        let mut owned = encoded.to_vec();
        symbol_keys_in_fields(&mut owned, 0);
        serde_amqp::from_slice(&owned)
    } else {
        serde_amqp::from_slice(encoded)
    }
    .map_err(decode_error)?;
    Ok((performative, &body[len..]))
}

/// The fields the spec types as maps keyed by symbols (`fields`, `filter-set`), by the
/// descriptor code of the list that holds them: an error's info, the properties of open,
/// begin, attach and flow, a source's and a target's dynamic-node properties, and a source's
/// filter.
fn symbol_keyed(code: Option<u64>, field: usize) -> bool {
    matches!(
        (code, field),
        (Some(0x1d), 2)
            | (Some(0x10), 9)
            | (Some(0x11), 7)
            | (Some(0x12), 13)
            | (Some(0x13), 10)
            | (Some(0x28), 4 | 7)
            | (Some(0x29), 4)
    )
}

/// Rewrites the string keys of every symbol-keyed map ([`symbol_keyed`]) as symbols, in
/// place: str8/str32 and sym8/sym32 have the same layout. The codec types those maps as the
/// spec does, but clients write string keys: rhea (the JS SDK) in an error's `info`, so its
/// dead-letter disposition failed to decode and closed the connection; uamqp (the C stack
/// under the Python SDK's `uamqp_transport`) in a receiver attach's properties. Called on
/// bytes `check` has passed; walks described lists only.
fn symbol_keys_in_fields(buf: &mut [u8], depth: usize) {
    if depth > 8 || buf.first() != Some(&0x00) {
        return;
    }
    let Ok(descriptor) = value_len(&buf[1..]) else {
        return;
    };
    let code = descriptor_code(buf);
    let list = 1 + descriptor;
    let (count, mut at) = match buf.get(list) {
        Some(0xc0) => (
            usize::from(buf.get(list + 2).copied().unwrap_or(0)),
            list + 3,
        ),
        Some(0xd0) => match buf.get(list + 5..list + 9) {
            Some(c) => (
                u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize,
                list + 9,
            ),
            None => return,
        },
        _ => return,
    };
    for field in 0..count {
        let Ok(n) = value_len(&buf[at..]) else {
            return;
        };
        if symbol_keyed(code, field) {
            symbol_keys(&mut buf[at..at + n]);
        } else {
            symbol_keys_in_fields(&mut buf[at..at + n], depth + 1);
        }
        at += n;
    }
}

/// The keys of the map encoded in `map`, strings made symbols.
fn symbol_keys(map: &mut [u8]) {
    let (count, mut at) = match map.first() {
        Some(0xc1) => (usize::from(map.get(2).copied().unwrap_or(0)), 3),
        Some(0xd1) => match map.get(5..9) {
            Some(c) => (u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize, 9),
            None => return,
        },
        _ => return,
    };
    for i in 0..count {
        match map.get(at) {
            Some(0xa1) if i % 2 == 0 => map[at] = 0xa3,
            Some(0xb1) if i % 2 == 0 => map[at] = 0xb3,
            _ => {}
        }
        let Ok(n) = value_len(&map[at..]) else {
            return;
        };
        at += n;
    }
}

/// What a client sends in the SASL layer; a server never receives mechanisms or an outcome.
#[derive(Debug, Clone)]
pub enum SaslFrame {
    Init(SaslInit),
    /// A response to a challenge (this server never challenges).
    Response,
}

/// Decodes a SASL frame body sent by a client.
pub fn decode_sasl(body: &[u8]) -> Result<SaslFrame, FrameError> {
    let len = check(body).map_err(decode_error)?;
    match descriptor_code(body) {
        Some(0x41) => Ok(SaslFrame::Init(
            serde_amqp::from_slice(&body[..len]).map_err(decode_error)?,
        )),
        Some(0x43) => Ok(SaslFrame::Response),
        _ => Err(FrameError::Decode(
            "not a SASL frame a client sends".to_owned(),
        )),
    }
}

/// Appends a frame whose body is `body` encoded, followed by `payload`. Returns the frame's
/// size.
fn write<T: Serialize>(
    out: &mut Vec<u8>,
    kind: u8,
    channel: u16,
    body: &T,
    payload: &[u8],
) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0, 0, 0, 0, 2, kind]);
    out.extend_from_slice(&channel.to_be_bytes());
    let mut ser = serde_amqp::ser::Serializer::new(&mut *out);
    // Encoding our own performatives into a Vec cannot fail: every field is a valid AMQP type.
    if let Err(e) = body.serialize(&mut ser) {
        tracing::error!(error = %e, "could not encode a frame");
    }
    out.extend_from_slice(payload);
    let size = out.len() - start;
    out[start..start + 4].copy_from_slice(&(size as u32).to_be_bytes());
    size
}

/// Appends an AMQP frame on `channel`. The performatives a connection, session or link starts
/// and ends with carry every field, trailing nulls included, and so does every error and
/// `rejected` outcome inside a frame: pyamqp reads their fields by position
/// (`error[0][2]` for a rejected send's info, `frame[0][2]` for a close's), and serde_amqp
/// leaves trailing nulls out (`docs/decisions/0006-amqp-engine.md`).
pub fn write_amqp(out: &mut Vec<u8>, channel: u16, performative: &Performative, payload: &[u8]) {
    let rewrite = match performative {
        Performative::Open(_)
        | Performative::Begin(_)
        | Performative::Attach(_)
        | Performative::Detach(_)
        | Performative::End(_)
        | Performative::Close(_) => true,
        Performative::Disposition(d) => matches!(d.state, Some(DeliveryState::Rejected(_))),
        Performative::Flow(_) | Performative::Transfer(_) => false,
    };
    let start = out.len();
    if rewrite {
        let mut plain = Vec::with_capacity(64);
        write(&mut plain, TYPE_AMQP, channel, performative, &[]);
        out.extend_from_slice(&plain[..HEADER_LEN]);
        if copy_full_length(&plain[HEADER_LEN..], out).is_err() {
            // Our own encoding always parses; keep it as it is if it somehow did not.
            out.truncate(start);
            out.extend_from_slice(&plain);
        }
    } else {
        write(out, TYPE_AMQP, channel, performative, &[]);
    }
    out.extend_from_slice(payload);
    let size = (out.len() - start) as u32;
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
}

/// How many fields a described list is written with at least, for the types written at full
/// length and those holding them.
fn full_fields(code: u64) -> Option<u32> {
    match code {
        0x10 => Some(10),       // open
        0x11 => Some(8),        // begin
        0x12 => Some(14),       // attach
        0x16 => Some(3),        // detach
        0x17 | 0x18 => Some(1), // end, close
        0x1d => Some(3),        // error
        0x25 => Some(1),        // rejected
        0x15 => Some(0),        // disposition: as written, but its state's error padded
        _ => None,
    }
}

/// Copies the value at the start of `input` to `out`, padding the described lists
/// [`full_fields`] names with nulls, at any depth inside them. Returns the bytes read.
fn copy_full_length(input: &[u8], out: &mut Vec<u8>) -> Result<usize, Malformed> {
    let len = value_len(input)?;
    let Some(fields) = descriptor_code(input).and_then(full_fields) else {
        out.extend_from_slice(&input[..len]);
        return Ok(len);
    };
    let descriptor = 1 + value_len(&input[1..])?;
    let list = &input[descriptor..len];
    let (count, mut at) = match list.first() {
        Some(0x45) => (0, 1),
        Some(0xc0) => (u32::from(*list.get(2).ok_or(Malformed)?), 3),
        Some(0xd0) => {
            let c = list.get(5..9).ok_or(Malformed)?;
            (u32::from_be_bytes([c[0], c[1], c[2], c[3]]), 9)
        }
        _ => {
            out.extend_from_slice(&input[..len]);
            return Ok(len);
        }
    };
    let mut items = Vec::with_capacity(list.len() + fields as usize);
    for _ in 0..count {
        at += copy_full_length(list.get(at..).ok_or(Malformed)?, &mut items)?;
    }
    let total = count.max(fields);
    items.resize(items.len() + (total - count) as usize, 0x40);
    out.extend_from_slice(&input[..descriptor]);
    if items.len() < 255 && total < 256 {
        out.extend_from_slice(&[0xc0, (items.len() + 1) as u8, total as u8]);
    } else {
        out.push(0xd0);
        out.extend_from_slice(&((items.len() + 4) as u32).to_be_bytes());
        out.extend_from_slice(&total.to_be_bytes());
    }
    out.extend_from_slice(&items);
    Ok(len)
}

/// The size of the frame `performative` makes with no payload.
pub fn amqp_frame_len(performative: &Performative) -> usize {
    HEADER_LEN + serde_amqp::serialized_size(performative).unwrap_or(usize::MAX / 2)
}

/// Appends an empty AMQP frame: a heartbeat.
pub fn write_heartbeat(out: &mut Vec<u8>) {
    out.extend_from_slice(&[0, 0, 0, 8, 2, TYPE_AMQP, 0, 0]);
}

pub fn write_mechanisms(out: &mut Vec<u8>, mechanisms: &SaslMechanisms) {
    write(out, TYPE_SASL, 0, mechanisms, &[]);
}

pub fn write_outcome(out: &mut Vec<u8>, outcome: &SaslOutcome) {
    write(out, TYPE_SASL, 0, outcome, &[]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use fe2o3_amqp_types::performatives::{Begin, Close, Open};

    fn open() -> Performative {
        Performative::Open(Open {
            container_id: "hematite".into(),
            hostname: Some("localhost".into()),
            max_frame_size: 65536.into(),
            channel_max: 255.into(),
            idle_time_out: Some(60_000),
            outgoing_locales: None,
            incoming_locales: None,
            offered_capabilities: None,
            desired_capabilities: None,
            properties: None,
        })
    }

    #[test]
    fn frames_round_trip_with_their_payload() {
        let mut out = Vec::new();
        write_amqp(&mut out, 3, &open(), b"tail");
        write_heartbeat(&mut out);
        let (frame, used) = next_frame(&out, 1 << 20).expect("valid").expect("whole");
        assert_eq!((frame.kind, frame.channel), (FrameKind::Amqp, 3));
        let (p, payload) = decode_performative(frame.body).expect("decodes");
        assert_eq!(p, open());
        assert_eq!(payload, b"tail");
        let (beat, rest) = next_frame(&out[used..], 1 << 20)
            .expect("valid")
            .expect("whole");
        assert!(beat.body.is_empty());
        assert_eq!(used + rest, out.len());
    }

    #[test]
    fn partial_input_asks_for_more() {
        let mut out = Vec::new();
        write_amqp(
            &mut out,
            0,
            &Performative::Close(Close { error: None }),
            &[],
        );
        for cut in 0..out.len() {
            assert_eq!(next_frame(&out[..cut], 1 << 20), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn oversized_and_malformed_headers_are_refused() {
        let mut big = vec![0, 1, 0, 0, 2, 0, 0, 0];
        assert_eq!(
            next_frame(&big, 512),
            Err(FrameError::TooLarge {
                size: 65536,
                max: 512
            })
        );
        big[4] = 1; // data offset below the header
        assert!(matches!(
            next_frame(&big, 1 << 20),
            Err(FrameError::Header(_))
        ));
        let bad_type = [0, 0, 0, 8, 2, 9, 0, 0];
        assert!(matches!(
            next_frame(&bad_type, 512),
            Err(FrameError::Header(_))
        ));
    }

    #[test]
    fn a_frame_body_that_is_not_a_performative_is_a_decode_error() {
        assert!(decode_performative(&[0x00, 0x53, 0x99, 0x45]).is_err());
        assert!(decode_performative(&[0xa1, 1, b'x']).is_err());
        assert!(decode_performative(&[]).is_err());
    }

    /// pyamqp reads a rejected send's error as `error[0][2]`, so an error whose info (or
    /// description) is absent must still carry three fields, inside a close, a detach or
    /// a disposition's `rejected` alike; the padded frames still decode to what was written.
    #[test]
    fn errors_inside_frames_carry_every_field() {
        use fe2o3_amqp_types::definitions::{AmqpError, Error, Role};
        use fe2o3_amqp_types::messaging::Rejected;
        use fe2o3_amqp_types::performatives::{Detach, Disposition};
        let error = || Error::new(AmqpError::DecodeError, None, None);
        let frames = [
            Performative::Close(Close {
                error: Some(error()),
            }),
            Performative::Detach(Detach {
                handle: 1.into(),
                closed: true,
                error: Some(error()),
            }),
            Performative::Disposition(Disposition {
                role: Role::Receiver,
                first: 4,
                last: None,
                settled: true,
                state: Some(DeliveryState::Rejected(Rejected {
                    error: Some(error()),
                })),
                batchable: false,
            }),
        ];
        for p in frames {
            let mut out = Vec::new();
            write_amqp(&mut out, 0, &p, &[]);
            // The error's descriptor, then a list8 of 3 fields whose last two are null.
            let at = out
                .windows(3)
                .position(|w| w == [0x00, 0x53, 0x1d])
                .expect("an error");
            let list = &out[at + 3..];
            assert_eq!(list[0], 0xc0, "{p:?}");
            assert_eq!(list[2], 3, "{p:?}");
            assert_eq!(&list[list[1] as usize..list[1] as usize + 2], [0x40, 0x40]);
            let (frame, _) = next_frame(&out, 1 << 20).expect("valid").expect("whole");
            assert_eq!(frame.body.len() + 8, out.len());
            let (decoded, _) = decode_performative(frame.body).expect("decodes");
            assert_eq!(decoded, p);
        }
    }

    /// rhea writes an error's info with string keys (its dead-letter disposition carries
    /// DeadLetterReason there); the frame must decode, keys as symbols, values untouched.
    #[test]
    fn string_keys_in_error_info_decode_as_symbols() {
        // disposition(receiver, first 7, settled, rejected(error(dead-letter, null,
        // {"DeadLetterReason": "Validation"})))
        let mut info = vec![0xc1, 0, 2];
        for s in ["DeadLetterReason", "Validation"] {
            info.push(0xa1);
            info.push(s.len() as u8);
            info.extend_from_slice(s.as_bytes());
        }
        info[1] = (info.len() - 2) as u8;
        let condition = b"com.microsoft:dead-letter";
        let mut error = vec![0xa3, condition.len() as u8];
        error.extend_from_slice(condition);
        error.push(0x40);
        error.extend_from_slice(&info);
        let mut error_list = vec![0x00, 0x53, 0x1d, 0xc0, (error.len() + 1) as u8, 3];
        error_list.extend_from_slice(&error);
        let mut rejected = vec![0x00, 0x53, 0x25, 0xc0, (error_list.len() + 1) as u8, 1];
        rejected.extend_from_slice(&error_list);
        let mut fields = vec![0x41, 0x52, 7, 0x40, 0x41];
        fields.extend_from_slice(&rejected);
        let mut body = vec![0x00, 0x53, 0x15, 0xc0, (fields.len() + 1) as u8, 5];
        body.extend_from_slice(&fields);
        let (p, rest) = decode_performative(&body).expect("decodes");
        assert!(rest.is_empty());
        let Performative::Disposition(d) = p else {
            panic!("{p:?}")
        };
        let Some(DeliveryState::Rejected(r)) = d.state else {
            panic!("{d:?}")
        };
        let info = r.error.and_then(|e| e.info).expect("info");
        let value = info
            .get(&serde_amqp::primitives::Symbol::from("DeadLetterReason"))
            .expect("key");
        assert_eq!(value, &serde_amqp::Value::String("Validation".into()));
    }

    /// uamqp, the C stack under the Python SDK's `uamqp_transport`, writes a receiver
    /// attach's properties (`com.microsoft:receiver-name`) with a string key; the attach
    /// failed to decode and the connection closed with decode-error.
    #[test]
    fn string_keys_in_attach_properties_decode_as_symbols() {
        use fe2o3_amqp_types::definitions::{Fields, Role};
        use fe2o3_amqp_types::messaging::{Source, Target};
        use fe2o3_amqp_types::performatives::Attach;
        use serde_amqp::primitives::Symbol;
        let key = "com.microsoft:receiver-name";
        let mut properties = Fields::new();
        properties.insert(Symbol::from(key), serde_amqp::Value::String("r".into()));
        let attach = Performative::Attach(Attach {
            name: "link".into(),
            handle: 2.into(),
            role: Role::Receiver,
            snd_settle_mode: Default::default(),
            rcv_settle_mode: Default::default(),
            source: Some(Box::new(Source::builder().address("q").build())),
            target: Some(Box::new(Target::builder().address("me").build().into())),
            unsettled: None,
            incomplete_unsettled: false,
            initial_delivery_count: None,
            max_message_size: Some(1 << 20),
            offered_capabilities: None,
            desired_capabilities: None,
            properties: Some(properties),
        });
        let mut body = serde_amqp::to_vec(&attach).expect("encodes");
        let sym = [&[0xa3, key.len() as u8][..], key.as_bytes()].concat();
        let at = body
            .windows(sym.len())
            .position(|w| w == sym.as_slice())
            .expect("the key is there");
        body[at] = 0xa1;
        let (decoded, _) = decode_performative(&body).expect("decodes");
        assert_eq!(decoded, attach);
    }

    #[test]
    fn performatives_are_written_with_every_field() {
        // Older pyamqp read begin fields by position, so a begin must carry all eight.
        let begin = Performative::Begin(Begin {
            remote_channel: Some(0),
            next_outgoing_id: 1,
            incoming_window: 2,
            outgoing_window: 3,
            handle_max: 255.into(),
            offered_capabilities: None,
            desired_capabilities: None,
            properties: None,
        });
        let mut out = Vec::new();
        write_amqp(&mut out, 0, &begin, &[]);
        // descriptor (3 bytes) then list8/list32 with its count
        let list = &out[8 + 3..];
        let count = match list[0] {
            0xc0 => list[2] as u32,
            0xd0 => u32::from_be_bytes([list[5], list[6], list[7], list[8]]),
            other => panic!("not a list: {other:#x}"),
        };
        assert_eq!(count, 8);
        let (decoded, _) = decode_performative(&out[8..]).expect("padded begin decodes");
        assert_eq!(decoded, begin);
        let mut open_frame = Vec::new();
        write_amqp(&mut open_frame, 0, &open(), b"p");
        let (frame, _) = next_frame(&open_frame, 1 << 20)
            .expect("valid")
            .expect("whole");
        let (decoded, payload) = decode_performative(frame.body).expect("padded open decodes");
        assert_eq!((decoded, payload), (open(), &b"p"[..]));
    }
}
