//! Byte encodings of the records stored in redb values.
//!
//! Hand-written, fixed and versioned: each record starts with a version byte, so a future format
//! can be read next to this one, and any record that does not decode exactly is reported as
//! corruption rather than guessed at.

use hematite_engine::model::MessageState;
use hematite_engine::{AccessPolicy, Message, MessageId, Metadata, PopReceipt, Timestamp};

const MESSAGE_V1: u8 = 1;
const QUEUE_V1: u8 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub &'static str);

/// A queue's durable description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueRecord {
    pub id: u64,
    pub metadata: Metadata,
    pub policies: Vec<AccessPolicy>,
}

/// A message's state, without its body (kept in its own table so a lease update does not
/// rewrite up to 64 KiB).
pub fn encode_message(m: &Message) -> Vec<u8> {
    let mut out = Vec::with_capacity(62);
    out.push(MESSAGE_V1);
    out.extend_from_slice(&m.id.0.to_le_bytes());
    out.extend_from_slice(&m.inserted_at.as_millis().to_le_bytes());
    out.extend_from_slice(&m.expires_at.as_millis().to_le_bytes());
    out.extend_from_slice(&m.visible_at.as_millis().to_le_bytes());
    out.extend_from_slice(&m.dequeue_count.to_le_bytes());
    out.extend_from_slice(&m.receipt.0.to_le_bytes());
    out.push(match m.state {
        MessageState::Active => 0,
        MessageState::Deferred => 1,
        MessageState::DeadLettered => 2,
    });
    out
}

/// Decodes a message state; the body is attached by the caller.
pub fn decode_message(sequence: u64, bytes: &[u8]) -> Result<Message, DecodeError> {
    let mut r = Reader(bytes);
    if r.u8()? != MESSAGE_V1 {
        return Err(DecodeError("unknown message record version"));
    }
    let m = Message {
        id: MessageId(r.u128()?),
        sequence,
        body: Vec::new(),
        inserted_at: Timestamp::from_millis(r.i64()?),
        expires_at: Timestamp::from_millis(r.i64()?),
        visible_at: Timestamp::from_millis(r.i64()?),
        dequeue_count: r.u32()?,
        receipt: PopReceipt(r.u128()?),
        state: match r.u8()? {
            0 => MessageState::Active,
            1 => MessageState::Deferred,
            2 => MessageState::DeadLettered,
            _ => return Err(DecodeError("unknown message state")),
        },
    };
    r.end()?;
    Ok(m)
}

pub fn encode_queue(q: &QueueRecord) -> Vec<u8> {
    let mut out = vec![QUEUE_V1];
    out.extend_from_slice(&q.id.to_le_bytes());
    put_u32(&mut out, q.metadata.0.len());
    for (k, v) in &q.metadata.0 {
        put_str(&mut out, k);
        put_str(&mut out, v);
    }
    put_u32(&mut out, q.policies.len());
    for p in &q.policies {
        put_str(&mut out, &p.id);
        let flags = u8::from(p.start.is_some())
            | u8::from(p.expiry.is_some()) << 1
            | u8::from(p.permissions.is_some()) << 2;
        out.push(flags);
        if let Some(t) = p.start {
            out.extend_from_slice(&t.as_millis().to_le_bytes());
        }
        if let Some(t) = p.expiry {
            out.extend_from_slice(&t.as_millis().to_le_bytes());
        }
        if let Some(s) = &p.permissions {
            put_str(&mut out, s);
        }
    }
    out
}

pub fn decode_queue(bytes: &[u8]) -> Result<QueueRecord, DecodeError> {
    let mut r = Reader(bytes);
    if r.u8()? != QUEUE_V1 {
        return Err(DecodeError("unknown queue record version"));
    }
    let id = r.u64()?;
    let n = r.u32()? as usize;
    let mut metadata = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        metadata.push((r.string()?, r.string()?));
    }
    let n = r.u32()? as usize;
    let mut policies = Vec::with_capacity(n.min(16));
    for _ in 0..n {
        let id = r.string()?;
        let flags = r.u8()?;
        if flags & !0b111 != 0 {
            return Err(DecodeError("unknown access policy flags"));
        }
        let start = if flags & 1 != 0 {
            Some(Timestamp::from_millis(r.i64()?))
        } else {
            None
        };
        let expiry = if flags & 2 != 0 {
            Some(Timestamp::from_millis(r.i64()?))
        } else {
            None
        };
        let permissions = if flags & 4 != 0 {
            Some(r.string()?)
        } else {
            None
        };
        policies.push(AccessPolicy {
            id,
            start,
            expiry,
            permissions,
        });
    }
    r.end()?;
    Ok(QueueRecord {
        id,
        metadata: Metadata(metadata),
        policies,
    })
}

fn put_u32(out: &mut Vec<u8>, n: usize) {
    // Lengths here are bounded by request limits (metadata 8 KiB, 5 policies), far below u32.
    out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_u32(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError("record is truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(self.array()?))
    }
    fn u128(&mut self) -> Result<u128, DecodeError> {
        Ok(u128::from_le_bytes(self.array()?))
    }
    fn string(&mut self) -> Result<String, DecodeError> {
        let n = self.u32()? as usize;
        let bytes = self.take(n)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError("string is not UTF-8"))
    }
    fn end(&self) -> Result<(), DecodeError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(DecodeError("record has trailing bytes"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> Message {
        Message {
            id: MessageId(0x1234_5678_9abc_def0_1122_3344_5566_7788),
            sequence: 9,
            body: Vec::new(),
            inserted_at: Timestamp::from_millis(1_000),
            expires_at: Timestamp::NEVER,
            visible_at: Timestamp::from_millis(-5),
            dequeue_count: 3,
            receipt: PopReceipt(u128::MAX - 1),
            state: MessageState::Active,
        }
    }

    #[test]
    fn message_round_trip_and_corruption() {
        let m = message();
        let bytes = encode_message(&m);
        assert_eq!(bytes.len(), 62);
        assert_eq!(decode_message(9, &bytes), Ok(m));
        assert!(decode_message(9, &bytes[..61]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_message(9, &longer).is_err());
        let mut bad = bytes;
        bad[0] = 7;
        assert!(decode_message(9, &bad).is_err());
    }

    #[test]
    fn queue_round_trip_and_corruption() {
        let q = QueueRecord {
            id: 42,
            metadata: Metadata(vec![
                ("Color".into(), "red".into()),
                ("é".into(), String::new()),
            ]),
            policies: vec![
                AccessPolicy {
                    id: "p1".into(),
                    start: Some(Timestamp::from_millis(1)),
                    expiry: None,
                    permissions: Some("raup".into()),
                },
                AccessPolicy {
                    id: "p2".into(),
                    start: None,
                    expiry: Some(Timestamp::from_millis(2)),
                    permissions: None,
                },
            ],
        };
        let bytes = encode_queue(&q);
        assert_eq!(decode_queue(&bytes), Ok(q));
        for cut in 0..bytes.len() {
            assert!(decode_queue(&bytes[..cut]).is_err(), "truncated at {cut}");
        }
    }
}
