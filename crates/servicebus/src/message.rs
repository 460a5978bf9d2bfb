//! Service Bus messages as AMQP bytes: what the broker reads from a message it is sent, how a
//! batch is unpacked, and what it adds on delivery.
//!
//! A message is stored exactly as the client encoded it. On delivery the broker writes its own
//! header (with the delivery count) and adds its annotations (`x-opt-sequence-number`,
//! `x-opt-enqueued-time`, `x-opt-locked-until`, …) to the message-annotations map, and for a
//! dead-lettered message the reason to the application properties. Maps are edited entry by
//! entry at the byte level, so every entry the client wrote, and every other section, goes
//! back byte for byte (the SDKs compare property types, a timestamp must stay a timestamp).

use std::time::Duration;

use hematite_amqp::codec::{descriptor_code, value_len, Malformed};
use hematite_amqp::types::messaging::{Header, MessageId as AmqpMessageId, Properties};
use hematite_engine::{Message, MessageState, Timestamp};

/// Section descriptor codes (AMQP 1.0 part 3, §3.2).
const HEADER: u64 = 0x70;
const DELIVERY_ANNOTATIONS: u64 = 0x71;
const MESSAGE_ANNOTATIONS: u64 = 0x72;
const PROPERTIES: u64 = 0x73;
const APPLICATION_PROPERTIES: u64 = 0x74;
const DATA: u64 = 0x75;

/// The message format of a Service Bus batch: a body of data sections, each one message.
pub const BATCH_FORMAT: u32 = 0x8001_3700;

/// A message cut into its sections, each as encoded.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sections<'a> {
    pub header: Option<&'a [u8]>,
    pub message_annotations: Option<&'a [u8]>,
    pub properties: Option<&'a [u8]>,
    pub application_properties: Option<&'a [u8]>,
    /// The body sections and the footer, untouched.
    pub rest: &'a [u8],
}

/// Cuts `bytes` into sections. Delivery annotations are for the hop from the sender to the
/// broker and are dropped.
pub fn split(bytes: &[u8]) -> Result<Sections<'_>, Malformed> {
    let mut s = Sections::default();
    let mut at = 0;
    while at < bytes.len() {
        let len = value_len(&bytes[at..])?;
        let section = &bytes[at..at + len];
        match descriptor_code(section).ok_or(Malformed)? {
            HEADER => s.header = Some(section),
            DELIVERY_ANNOTATIONS => {}
            MESSAGE_ANNOTATIONS => s.message_annotations = Some(section),
            PROPERTIES => s.properties = Some(section),
            APPLICATION_PROPERTIES => s.application_properties = Some(section),
            0x75..=0x78 => {
                s.rest = &bytes[at..];
                // Whatever follows the body must still be well-formed sections.
                let mut tail = at;
                while tail < bytes.len() {
                    tail += value_len(&bytes[tail..])?;
                }
                return Ok(s);
            }
            _ => return Err(Malformed),
        }
        at += len;
    }
    Ok(s)
}

/// The messages in a batch (format [`BATCH_FORMAT`]): the bytes of each data section.
pub fn unbatch(bytes: &[u8]) -> Result<Vec<&[u8]>, Malformed> {
    let sections = split(bytes)?;
    let mut messages = Vec::new();
    let mut at = 0;
    let rest = sections.rest;
    while at < rest.len() {
        let len = value_len(&rest[at..])?;
        let section = &rest[at..at + len];
        if descriptor_code(section) == Some(DATA) {
            messages.push(binary(section)?);
        }
        at += len;
    }
    Ok(messages)
}

/// The payload of a described binary (a data section).
fn binary(section: &[u8]) -> Result<&[u8], Malformed> {
    let value = skip_descriptor(section)?;
    match value.first() {
        Some(0xa0) => value.get(2..).ok_or(Malformed),
        Some(0xb0) => value.get(5..).ok_or(Malformed),
        _ => Err(Malformed),
    }
}

fn skip_descriptor(section: &[u8]) -> Result<&[u8], Malformed> {
    let descriptor = value_len(section.get(1..).ok_or(Malformed)?)?;
    section.get(1 + descriptor..).ok_or(Malformed)
}

/// What the broker reads from a message it is sent.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Sent {
    /// `header.ttl`.
    pub ttl: Option<Duration>,
    /// `x-opt-scheduled-enqueue-time`, as ms since the epoch.
    pub scheduled: Option<Timestamp>,
}

/// Reads a sent message: it must be well-formed sections, with a decodable header.
pub fn read_sent(bytes: &[u8]) -> Result<Sent, Malformed> {
    let s = split(bytes)?;
    let header: Option<Header> = s
        .header
        .map(hematite_amqp::codec::decode)
        .transpose()
        .map_err(|_| Malformed)?;
    let ttl = header
        .and_then(|h| h.ttl)
        .map(|ms| Duration::from_millis(u64::from(ms)));
    let scheduled = match s.message_annotations {
        Some(ma) => map_entries(ma)?
            .into_iter()
            .find(|(k, _)| key_is(k, "x-opt-scheduled-enqueue-time"))
            .and_then(|(_, v)| read_timestamp(v)),
        None => None,
    };
    Ok(Sent { ttl, scheduled })
}

/// What the broker adds to a message it delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp<'a> {
    pub locked_until: Option<Timestamp>,
    /// The entity a dead-lettered message came from.
    pub dead_letter_source: Option<&'a str>,
}

/// The message as delivered: the broker's header and annotations, the client's sections.
pub fn deliver(m: &Message, stamp: &Stamp<'_>) -> Vec<u8> {
    // Stored bytes were checked on the way in; a message that no longer splits is delivered
    // as stored rather than not at all.
    let Ok(s) = split(&m.body) else {
        return m.body.clone();
    };
    let mut out = Vec::with_capacity(m.body.len() + 160);
    write_header(&mut out, s.header, m);
    write_annotations(&mut out, s.message_annotations, m, stamp);
    write_properties(&mut out, s.properties, m);
    write_application_properties(&mut out, s.application_properties, m);
    out.extend_from_slice(s.rest);
    out
}

/// The header, written out whole: every field explicit, since a `delivery-count` of 0 left to
/// its default reads as "unknown" in the Python SDK (`delivery_count` is then `None`, where
/// Azure's first delivery shows 0).
fn write_header(out: &mut Vec<u8>, original: Option<&[u8]>, m: &Message) {
    let header: Header = original
        .and_then(|h| hematite_amqp::codec::decode(h).ok())
        .unwrap_or_default();
    // The TTL that applies: the message's, capped by the entity's default.
    let lifetime = m.expires_at.as_millis() - m.inserted_at.as_millis();
    let ttl = (m.expires_at != Timestamp::NEVER && lifetime >= 0)
        .then(|| u32::try_from(lifetime).ok())
        .flatten();
    let mut fields = Vec::with_capacity(16);
    fields.push(if header.durable { 0x41 } else { 0x42 });
    fields.extend_from_slice(&[0x50, header.priority.0]);
    match ttl {
        Some(ms) => {
            fields.push(0x70);
            fields.extend_from_slice(&ms.to_be_bytes());
        }
        None => fields.push(0x40),
    }
    fields.push(if header.first_acquirer { 0x41 } else { 0x42 });
    fields.push(0x70);
    fields.extend_from_slice(&m.dequeue_count.to_be_bytes());
    out.extend_from_slice(&[0x00, 0x53, 0x70, 0xc0, fields.len() as u8 + 1, 5]);
    out.extend_from_slice(&fields);
}

fn write_annotations(out: &mut Vec<u8>, original: Option<&[u8]>, m: &Message, stamp: &Stamp<'_>) {
    let mut added = Vec::new();
    put_symbol(&mut added, "x-opt-sequence-number");
    put_long(&mut added, m.sequence as i64);
    put_symbol(&mut added, "x-opt-enqueued-time");
    put_timestamp(&mut added, m.inserted_at);
    let mut count = 2;
    if let Some(until) = stamp.locked_until {
        put_symbol(&mut added, "x-opt-locked-until");
        put_timestamp(&mut added, until);
        count += 1;
    }
    let state = match m.state {
        MessageState::Deferred | MessageState::DeferredLocked => 1,
        MessageState::Scheduled => 2,
        MessageState::Active | MessageState::Locked | MessageState::DeadLettered => 0,
    };
    put_symbol(&mut added, "x-opt-message-state");
    put_int(&mut added, state);
    count += 1;
    if let Some(source) = stamp.dead_letter_source {
        put_symbol(&mut added, "x-opt-deadletter-source");
        put_string(&mut added, source);
        count += 1;
    }
    let replaced = [
        "x-opt-sequence-number",
        "x-opt-enqueued-time",
        "x-opt-locked-until",
        "x-opt-message-state",
        "x-opt-deadletter-source",
    ];
    write_map_section(out, MESSAGE_ANNOTATIONS, original, &replaced, &added, count);
}

fn write_properties(out: &mut Vec<u8>, original: Option<&[u8]>, m: &Message) {
    let decoded: Option<Properties> = original.and_then(|p| hematite_amqp::codec::decode(p).ok());
    match decoded {
        Some(p) if p.message_id.is_some() => out.extend_from_slice(original.unwrap_or_default()),
        other => {
            // Service Bus stamps a message-id when the sender gave none (the JS client's
            // lock renewal is keyed by it): 32 hex digits of the broker's id.
            let mut p = other.unwrap_or_default();
            p.message_id = Some(AmqpMessageId::String(format!("{:032x}", m.id.0)));
            if let Ok(bytes) = serde_amqp::to_vec(&p) {
                out.extend_from_slice(&bytes);
            }
        }
    }
}

fn write_application_properties(out: &mut Vec<u8>, original: Option<&[u8]>, m: &Message) {
    let Some(dl) = &m.dead_letter else {
        out.extend_from_slice(original.unwrap_or_default());
        return;
    };
    let mut added = Vec::new();
    let mut count = 0;
    for (key, value) in [
        ("DeadLetterReason", &dl.reason),
        ("DeadLetterErrorDescription", &dl.description),
    ] {
        if let Some(v) = value {
            put_string(&mut added, key);
            put_string(&mut added, v);
            count += 1;
        }
    }
    let replaced = ["DeadLetterReason", "DeadLetterErrorDescription"];
    if count == 0 {
        out.extend_from_slice(original.unwrap_or_default());
    } else {
        write_map_section(
            out,
            APPLICATION_PROPERTIES,
            original,
            &replaced,
            &added,
            count,
        );
    }
}

/// Writes a map section: the original entries whose keys are not in `replaced`, then `added`
/// (`count` entries, already encoded).
fn write_map_section(
    out: &mut Vec<u8>,
    code: u64,
    original: Option<&[u8]>,
    replaced: &[&str],
    added: &[u8],
    count: u32,
) {
    let kept = original
        .and_then(|section| map_entries(section).ok())
        .unwrap_or_default();
    let mut body = Vec::with_capacity(added.len() + 64);
    let mut n = count;
    for (k, v) in kept {
        if !replaced.iter().any(|r| key_is(k, r)) {
            body.extend_from_slice(k);
            body.extend_from_slice(v);
            n += 1;
        }
    }
    body.extend_from_slice(added);
    out.extend_from_slice(&[0x00, 0x53, code as u8, 0xd1]);
    out.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    out.extend_from_slice(&(n * 2).to_be_bytes());
    out.extend_from_slice(&body);
}

/// One map entry: the key's encoding and the value's.
type Entry<'a> = (&'a [u8], &'a [u8]);

/// The key and value encodings of a map section's entries.
fn map_entries(section: &[u8]) -> Result<Vec<Entry<'_>>, Malformed> {
    let map = skip_descriptor(section)?;
    let (count, mut at) = match map.first() {
        Some(0xc1) => (u32::from(*map.get(2).ok_or(Malformed)?), 3),
        Some(0xd1) => {
            let c = map.get(5..9).ok_or(Malformed)?;
            (u32::from_be_bytes([c[0], c[1], c[2], c[3]]), 9)
        }
        Some(0x40) => return Ok(Vec::new()),
        _ => return Err(Malformed),
    };
    let end = value_len(map)?;
    let mut entries = Vec::new();
    for _ in 0..count / 2 {
        let k = value_len(map.get(at..end).ok_or(Malformed)?)?;
        let key = &map[at..at + k];
        at += k;
        let v = value_len(map.get(at..end).ok_or(Malformed)?)?;
        entries.push((key, &map[at..at + v]));
        at += v;
    }
    Ok(entries)
}

/// Whether an encoded key (symbol or string) is `name`.
fn key_is(key: &[u8], name: &str) -> bool {
    let text = match key.first() {
        Some(0xa3 | 0xa1) => key.get(2..),
        Some(0xb3 | 0xb1) => key.get(5..),
        _ => None,
    };
    text == Some(name.as_bytes())
}

fn read_timestamp(v: &[u8]) -> Option<Timestamp> {
    match v {
        [0x83, b @ ..] if b.len() == 8 => {
            let mut be = [0u8; 8];
            be.copy_from_slice(b);
            Some(Timestamp::from_millis(i64::from_be_bytes(be)))
        }
        _ => None,
    }
}

fn put_symbol(out: &mut Vec<u8>, s: &str) {
    out.push(0xa3);
    out.push(s.len() as u8);
    out.extend_from_slice(s.as_bytes());
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    if s.len() < 256 {
        out.push(0xa1);
        out.push(s.len() as u8);
    } else {
        out.push(0xb1);
        out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    }
    out.extend_from_slice(s.as_bytes());
}

fn put_long(out: &mut Vec<u8>, v: i64) {
    out.push(0x81);
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_int(out: &mut Vec<u8>, v: i32) {
    out.push(0x71);
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_timestamp(out: &mut Vec<u8>, t: Timestamp) {
    out.push(0x83);
    out.extend_from_slice(&t.as_millis().to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use hematite_amqp::types::messaging::annotations::OwnedKey;
    use hematite_amqp::types::messaging::{
        AmqpValue, ApplicationProperties, Data, MessageAnnotations,
    };
    use hematite_amqp::types::primitives::{SimpleValue, Timestamp as AmqpTimestamp};
    use hematite_engine::{DeadLetterInfo, MessageId, PopReceipt};
    use serde_amqp::primitives::{OrderedMap, Symbol};
    use serde_amqp::Value;

    fn encode<T: serde::Serialize>(v: &T) -> Vec<u8> {
        serde_amqp::to_vec(v).expect("encodes")
    }

    fn sample(ttl: Option<u32>, with_id: bool) -> Vec<u8> {
        let mut bytes = Vec::new();
        if let Some(ms) = ttl {
            bytes.extend(encode(&Header {
                ttl: Some(ms),
                ..Default::default()
            }));
        }
        let mut ma = OrderedMap::new();
        ma.insert(
            Symbol::from("x-opt-scheduled-enqueue-time").into(),
            Value::Timestamp(AmqpTimestamp::from_milliseconds(5_000)),
        );
        bytes.extend(encode(&MessageAnnotations(ma)));
        let p = Properties {
            message_id: with_id.then(|| AmqpMessageId::String("m-1".into())),
            subject: Some("greeting".into()),
            ..Default::default()
        };
        bytes.extend(encode(&p));
        let mut ap = OrderedMap::new();
        ap.insert(
            "when".to_owned(),
            SimpleValue::Timestamp(AmqpTimestamp::from_milliseconds(7)),
        );
        bytes.extend(encode(&ApplicationProperties(ap)));
        bytes.extend(encode(&Data(b"Test Message".to_vec().into())));
        bytes
    }

    fn stored(body: Vec<u8>) -> Message {
        Message {
            id: MessageId(0xabc),
            sequence: 42,
            size: body.len() as u32,
            body,
            inserted_at: Timestamp::from_millis(1_000),
            expires_at: Timestamp::from_millis(61_000),
            visible_at: Timestamp::from_millis(1_000),
            dequeue_count: 2,
            receipt: PopReceipt(1),
            state: MessageState::Locked,
            dead_letter: None,
        }
    }

    #[test]
    fn a_sent_message_gives_its_ttl_and_schedule() {
        let sent = read_sent(&sample(Some(30_000), true)).expect("reads");
        assert_eq!(sent.ttl, Some(Duration::from_secs(30)));
        assert_eq!(sent.scheduled, Some(Timestamp::from_millis(5_000)));
        assert_eq!(read_sent(&sample(None, true)).expect("reads").ttl, None);
    }

    #[test]
    fn malformed_messages_are_refused() {
        assert!(read_sent(&[0x00, 0x53, 0x99, 0x45]).is_err());
        assert!(read_sent(&[0xa1, 3, b'a']).is_err());
        let mut cut = sample(None, true);
        cut.pop();
        assert!(read_sent(&cut).is_err());
    }

    #[test]
    fn delivery_adds_the_brokers_facts_and_keeps_the_clients_bytes() {
        let body = sample(Some(30_000), true);
        let m = stored(body.clone());
        let stamp = Stamp {
            locked_until: Some(Timestamp::from_millis(9_000)),
            dead_letter_source: None,
        };
        let out = deliver(&m, &stamp);
        let s = split(&out).expect("splits");
        let original = split(&body).expect("splits");
        // Properties, application properties and the body are the client's bytes.
        assert_eq!(s.properties, original.properties);
        assert_eq!(s.application_properties, original.application_properties);
        assert_eq!(s.rest, original.rest);
        let header: Header = serde_amqp::from_slice(s.header.expect("header")).expect("decodes");
        assert_eq!(header.delivery_count, 2);
        assert_eq!(header.ttl, Some(60_000));
        let ma: MessageAnnotations =
            serde_amqp::from_slice(s.message_annotations.expect("annotations")).expect("decodes");
        let get = |k: &str| ma.0.get(&OwnedKey::from(Symbol::from(k))).cloned();
        assert_eq!(get("x-opt-sequence-number"), Some(Value::Long(42)));
        assert_eq!(
            get("x-opt-enqueued-time"),
            Some(Value::Timestamp(AmqpTimestamp::from_milliseconds(1_000)))
        );
        assert_eq!(
            get("x-opt-locked-until"),
            Some(Value::Timestamp(AmqpTimestamp::from_milliseconds(9_000)))
        );
        assert_eq!(get("x-opt-message-state"), Some(Value::Int(0)));
        // The client's own annotation is still there.
        assert!(get("x-opt-scheduled-enqueue-time").is_some());
    }

    #[test]
    fn a_message_without_an_id_gets_one_that_stays_the_same() {
        let m = stored(sample(None, false));
        let stamp = Stamp {
            locked_until: None,
            dead_letter_source: None,
        };
        let read_id = |bytes: &[u8]| {
            let s = split(bytes).expect("splits");
            let p: Properties = serde_amqp::from_slice(s.properties.expect("p")).expect("p");
            (p.message_id, p.subject)
        };
        let first = read_id(&deliver(&m, &stamp));
        assert_eq!(
            first,
            (
                Some(AmqpMessageId::String(format!("{:032x}", 0xabc))),
                Some("greeting".into())
            )
        );
        assert_eq!(read_id(&deliver(&m, &stamp)), first);
    }

    #[test]
    fn dead_letter_reasons_go_into_the_application_properties() {
        let mut m = stored(sample(None, true));
        m.dead_letter = Some(DeadLetterInfo {
            reason: Some("MaxDeliveryCountExceeded".into()),
            description: Some("too many".into()),
        });
        m.state = MessageState::DeadLettered;
        let stamp = Stamp {
            locked_until: None,
            dead_letter_source: Some("orders"),
        };
        let out = deliver(&m, &stamp);
        let s = split(&out).expect("splits");
        let ap: ApplicationProperties =
            serde_amqp::from_slice(s.application_properties.expect("ap")).expect("decodes");
        assert_eq!(
            ap.0.get("DeadLetterReason"),
            Some(&SimpleValue::String("MaxDeliveryCountExceeded".into()))
        );
        assert_eq!(
            ap.0.get("when"),
            Some(&SimpleValue::Timestamp(AmqpTimestamp::from_milliseconds(7)))
        );
        // Dead-lettered twice, the reason is replaced, not repeated.
        let again = deliver(&stored_from(out.clone(), &m), &stamp);
        let s2 = split(&again).expect("splits");
        let ap2: ApplicationProperties =
            serde_amqp::from_slice(s2.application_properties.expect("ap")).expect("decodes");
        assert_eq!(ap2.0.len(), 3);
    }

    fn stored_from(body: Vec<u8>, like: &Message) -> Message {
        Message {
            size: body.len() as u32,
            body,
            ..like.clone()
        }
    }

    #[test]
    fn a_batch_unpacks_into_its_messages() {
        let one = sample(None, true);
        let two = encode(&AmqpValue(Value::String("x".into())));
        let mut batch = encode(&Properties {
            message_id: Some(AmqpMessageId::String("envelope".into())),
            ..Default::default()
        });
        batch.extend(encode(&Data(one.clone().into())));
        batch.extend(encode(&Data(two.clone().into())));
        let messages = unbatch(&batch).expect("unbatches");
        assert_eq!(messages, vec![&one[..], &two[..]]);
    }
}
