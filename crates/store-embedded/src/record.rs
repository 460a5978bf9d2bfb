//! The log's record types and their byte encoding.
//!
//! Records describe *effects*, never requests: a receive is logged as the lease it granted (new
//! deadline, receipt and dequeue count), not as "receive one message", so replaying the log
//! rebuilds exactly the state that was acknowledged, whatever the clock or the random receipts
//! would say today. Each record is self-contained enough to replay after older segments are gone:
//! a [`Record::Message`] carries the whole message, and records about a message the replay does
//! not know (its segment was reclaimed because the message died) are skipped.
//!
//! Hand-written, fixed little-endian layout; anything that does not decode exactly is reported as
//! corruption rather than guessed at. Framing and checksums are the log's business ([`crate::log`]).

use hematite_engine::model::{DeadLetterInfo, MessageState};
use hematite_engine::store::{DeliveryCounting, LeaseRules, OnExpiry, SubQueue};
use hematite_engine::{AccessPolicy, Message, MessageId, Metadata, PopReceipt, Timestamp};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub &'static str);

const QUEUE_DEFINE: u8 = 1;
const QUEUE_DELETE: u8 = 2;
const QUEUE_CLEAR: u8 = 3;
const MESSAGE: u8 = 4;
const LEASE: u8 = 5;
const MESSAGE_DELETE: u8 = 6;
const DOCUMENT: u8 = 7;
// Format 3 (Service Bus): definitions with lease rules, messages with their sub-queue and
// dead-letter reason, a message's whole lease state, and the start of an atomic batch. A
// format-2 log holds none of them and reads as Azure queues.
const QUEUE_DEFINE_3: u8 = 8;
const MESSAGE_3: u8 = 9;
const MESSAGE_STATE: u8 = 10;
const BATCH: u8 = 11;

/// Bytes of a message record before its body: where the body starts inside the payload.
pub const MESSAGE_BODY_OFFSET: usize = 1 + 8 + 16 + 8 + 8 + 8 + 8 + 4 + 16 + 1 + 4;

/// A decoded record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A queue exists with this definition (create, metadata or policy change, or a copy made
    /// when its older record's segment is reclaimed). `next_sequence` never goes backwards.
    QueueDefine(QueueDef),
    QueueDelete {
        queue: u64,
    },
    QueueClear {
        queue: u64,
    },
    /// A whole message (put, update with a new body, or a copy made by compaction), in the
    /// sub-queue it is in; its body is `body_len` bytes at [`MESSAGE_BODY_OFFSET`].
    Message {
        queue: u64,
        sub: SubQueue,
        message: Message,
        body_len: u32,
    },
    /// A message's whole lease state, in the sub-queue it is now in (a Service Bus lock,
    /// settlement or move to the dead-letter sub-queue).
    MessageState {
        queue: u64,
        sub: SubQueue,
        message: Message,
    },
    /// The next `count` message records of `queue` are one batch: all or none.
    Batch {
        queue: u64,
        count: u32,
    },
    /// A message's new lease state (receive, or update without a new body).
    Lease {
        queue: u64,
        sequence: u64,
        visible_at: Timestamp,
        dequeue_count: u32,
        receipt: PopReceipt,
    },
    MessageDelete {
        queue: u64,
        sequence: u64,
    },
    Document {
        account: String,
        key: String,
        value: Vec<u8>,
    },
}

/// A queue's durable description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueDef {
    pub queue: u64,
    pub account: String,
    pub name: String,
    pub next_sequence: u64,
    pub metadata: Metadata,
    pub policies: Vec<AccessPolicy>,
    pub rules: LeaseRules,
}

pub fn encode_queue_define(out: &mut Vec<u8>, q: &QueueDef) {
    out.push(QUEUE_DEFINE_3);
    out.extend_from_slice(&q.queue.to_le_bytes());
    out.extend_from_slice(&q.next_sequence.to_le_bytes());
    put_str(out, &q.account);
    put_str(out, &q.name);
    put_u32(out, q.metadata.0.len());
    for (k, v) in &q.metadata.0 {
        put_str(out, k);
        put_str(out, v);
    }
    put_u32(out, q.policies.len());
    for p in &q.policies {
        put_str(out, &p.id);
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
            put_str(out, s);
        }
    }
    put_rules(out, &q.rules);
}

fn put_rules(out: &mut Vec<u8>, r: &LeaseRules) {
    out.push(match r.counting {
        DeliveryCounting::EveryLease => 0,
        DeliveryCounting::FailedDeliveries => 1,
    });
    out.push(u8::from(r.lapsed_lease_settles));
    out.extend_from_slice(&r.max_deliveries.unwrap_or(0).to_le_bytes());
    out.push(match r.on_expiry {
        OnExpiry::Delete => 0,
        OnExpiry::DeadLetter => 1,
    });
}

fn put_sub(out: &mut Vec<u8>, sub: SubQueue) {
    out.push(match sub {
        SubQueue::Main => 0,
        SubQueue::DeadLetter => 1,
    });
}

fn put_state(out: &mut Vec<u8>, state: MessageState) {
    out.push(match state {
        MessageState::Active => 0,
        MessageState::Deferred => 1,
        MessageState::DeadLettered => 2,
        MessageState::Locked => 3,
        MessageState::Scheduled => 4,
        MessageState::DeferredLocked => 5,
    });
}

fn put_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            put_str(out, s);
        }
    }
}

fn put_dead_letter(out: &mut Vec<u8>, d: Option<&DeadLetterInfo>) {
    match d {
        None => out.push(0),
        Some(d) => {
            out.push(1);
            put_opt_str(out, d.reason.as_deref());
            put_opt_str(out, d.description.as_deref());
        }
    }
}

pub fn encode_queue_delete(out: &mut Vec<u8>, queue: u64) {
    out.push(QUEUE_DELETE);
    out.extend_from_slice(&queue.to_le_bytes());
}

pub fn encode_queue_clear(out: &mut Vec<u8>, queue: u64) {
    out.push(QUEUE_CLEAR);
    out.extend_from_slice(&queue.to_le_bytes());
}

/// Encodes a whole message; its body is taken from `body`, not from `m.body` (the index keeps
/// messages without their bodies).
/// Encodes a whole message in sub-queue `sub`; its body is taken from `body`, not from
/// `m.body` (the index keeps messages without their bodies). The body sits at
/// [`MESSAGE_BODY_OFFSET`]; the sub-queue and dead-letter reason follow it.
pub fn encode_message(out: &mut Vec<u8>, queue: u64, sub: SubQueue, m: &Message, body: &[u8]) {
    out.push(MESSAGE_3);
    put_message_fields(out, queue, m);
    put_u32(out, body.len());
    out.extend_from_slice(body);
    put_sub(out, sub);
    put_dead_letter(out, m.dead_letter.as_ref());
}

/// Everything of a message but its body (the fields of a format-2 message record).
fn put_message_fields(out: &mut Vec<u8>, queue: u64, m: &Message) {
    out.extend_from_slice(&queue.to_le_bytes());
    out.extend_from_slice(&m.id.0.to_le_bytes());
    out.extend_from_slice(&m.sequence.to_le_bytes());
    out.extend_from_slice(&m.inserted_at.as_millis().to_le_bytes());
    out.extend_from_slice(&m.expires_at.as_millis().to_le_bytes());
    out.extend_from_slice(&m.visible_at.as_millis().to_le_bytes());
    out.extend_from_slice(&m.dequeue_count.to_le_bytes());
    out.extend_from_slice(&m.receipt.0.to_le_bytes());
    put_state(out, m.state);
}

/// A message's whole lease state in sub-queue `sub` (its body stays where it was logged).
pub fn encode_message_state(out: &mut Vec<u8>, queue: u64, sub: SubQueue, m: &Message) {
    out.push(MESSAGE_STATE);
    put_message_fields(out, queue, m);
    put_sub(out, sub);
    put_dead_letter(out, m.dead_letter.as_ref());
}

/// Marks the next `count` message records of `queue` as one batch.
pub fn encode_batch(out: &mut Vec<u8>, queue: u64, count: u32) {
    out.push(BATCH);
    out.extend_from_slice(&queue.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
}

pub fn encode_lease(out: &mut Vec<u8>, queue: u64, m: &Message) {
    out.push(LEASE);
    out.extend_from_slice(&queue.to_le_bytes());
    out.extend_from_slice(&m.sequence.to_le_bytes());
    out.extend_from_slice(&m.visible_at.as_millis().to_le_bytes());
    out.extend_from_slice(&m.dequeue_count.to_le_bytes());
    out.extend_from_slice(&m.receipt.0.to_le_bytes());
}

pub fn encode_message_delete(out: &mut Vec<u8>, queue: u64, sequence: u64) {
    out.push(MESSAGE_DELETE);
    out.extend_from_slice(&queue.to_le_bytes());
    out.extend_from_slice(&sequence.to_le_bytes());
}

pub fn encode_document(out: &mut Vec<u8>, account: &str, key: &str, value: &[u8]) {
    out.push(DOCUMENT);
    put_str(out, account);
    put_str(out, key);
    put_u32(out, value.len());
    out.extend_from_slice(value);
}

/// Decodes one record payload. Message bodies are copied only when `with_body`; replay does not
/// need them (the index points into the log instead).
pub fn decode(bytes: &[u8], with_body: bool) -> Result<Record, DecodeError> {
    let mut r = Reader(bytes);
    let record = match r.u8()? {
        kind @ (QUEUE_DEFINE | QUEUE_DEFINE_3) => {
            let queue = r.u64()?;
            let next_sequence = r.u64()?;
            let account = r.string()?;
            let name = r.string()?;
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
                let start = (flags & 1 != 0)
                    .then(|| r.i64().map(Timestamp::from_millis))
                    .transpose()?;
                let expiry = (flags & 2 != 0)
                    .then(|| r.i64().map(Timestamp::from_millis))
                    .transpose()?;
                let permissions = (flags & 4 != 0).then(|| r.string()).transpose()?;
                policies.push(AccessPolicy {
                    id,
                    start,
                    expiry,
                    permissions,
                });
            }
            let rules = if kind == QUEUE_DEFINE_3 {
                r.rules()?
            } else {
                LeaseRules::AZURE_QUEUE
            };
            Record::QueueDefine(QueueDef {
                queue,
                account,
                name,
                next_sequence,
                metadata: Metadata(metadata),
                rules,
                policies,
            })
        }
        QUEUE_DELETE => Record::QueueDelete { queue: r.u64()? },
        QUEUE_CLEAR => Record::QueueClear { queue: r.u64()? },
        kind @ (MESSAGE | MESSAGE_3) => {
            let (queue, mut message) = r.message_fields()?;
            let n = r.u32()? as usize;
            let body = r.take(n)?;
            if with_body {
                message.body = body.to_vec();
            }
            let sub = if kind == MESSAGE_3 {
                let sub = r.sub()?;
                message.dead_letter = r.dead_letter()?;
                sub
            } else {
                SubQueue::Main
            };
            message.size = n as u32;
            Record::Message {
                queue,
                sub,
                message,
                body_len: n as u32,
            }
        }
        MESSAGE_STATE => {
            let (queue, mut message) = r.message_fields()?;
            let sub = r.sub()?;
            message.dead_letter = r.dead_letter()?;
            Record::MessageState {
                queue,
                sub,
                message,
            }
        }
        BATCH => Record::Batch {
            queue: r.u64()?,
            count: r.u32()?,
        },
        LEASE => Record::Lease {
            queue: r.u64()?,
            sequence: r.u64()?,
            visible_at: Timestamp::from_millis(r.i64()?),
            dequeue_count: r.u32()?,
            receipt: PopReceipt(r.u128()?),
        },
        MESSAGE_DELETE => Record::MessageDelete {
            queue: r.u64()?,
            sequence: r.u64()?,
        },
        DOCUMENT => {
            let account = r.string()?;
            let key = r.string()?;
            let n = r.u32()? as usize;
            Record::Document {
                account,
                key,
                value: r.take(n)?.to_vec(),
            }
        }
        _ => return Err(DecodeError("unknown record type")),
    };
    r.end()?;
    Ok(record)
}

fn put_u32(out: &mut Vec<u8>, n: usize) {
    // Lengths here are bounded by request limits (64 KiB bodies, 8 KiB metadata), far below u32.
    out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_u32(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
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
    /// The fields every message record starts with: its queue, and the message without body.
    fn message_fields(&mut self) -> Result<(u64, Message), DecodeError> {
        let queue = self.u64()?;
        let message = Message {
            id: MessageId(self.u128()?),
            sequence: self.u64()?,
            body: Vec::new(),
            // A message record sets it from its body; a state record has none.
            size: 0,
            inserted_at: Timestamp::from_millis(self.i64()?),
            expires_at: Timestamp::from_millis(self.i64()?),
            visible_at: Timestamp::from_millis(self.i64()?),
            dequeue_count: self.u32()?,
            receipt: PopReceipt(self.u128()?),
            state: self.state()?,
            dead_letter: None,
        };
        Ok((queue, message))
    }
    fn state(&mut self) -> Result<MessageState, DecodeError> {
        Ok(match self.u8()? {
            0 => MessageState::Active,
            1 => MessageState::Deferred,
            2 => MessageState::DeadLettered,
            3 => MessageState::Locked,
            4 => MessageState::Scheduled,
            5 => MessageState::DeferredLocked,
            _ => return Err(DecodeError("unknown message state")),
        })
    }
    fn sub(&mut self) -> Result<SubQueue, DecodeError> {
        match self.u8()? {
            0 => Ok(SubQueue::Main),
            1 => Ok(SubQueue::DeadLetter),
            _ => Err(DecodeError("unknown sub-queue")),
        }
    }
    fn opt_string(&mut self) -> Result<Option<String>, DecodeError> {
        match self.u8()? {
            0 => Ok(None),
            1 => self.string().map(Some),
            _ => Err(DecodeError("bad option flag")),
        }
    }
    fn dead_letter(&mut self) -> Result<Option<DeadLetterInfo>, DecodeError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(DeadLetterInfo {
                reason: self.opt_string()?,
                description: self.opt_string()?,
            })),
            _ => Err(DecodeError("bad option flag")),
        }
    }
    fn rules(&mut self) -> Result<LeaseRules, DecodeError> {
        let counting = match self.u8()? {
            0 => DeliveryCounting::EveryLease,
            1 => DeliveryCounting::FailedDeliveries,
            _ => return Err(DecodeError("unknown delivery counting")),
        };
        let lapsed_lease_settles = match self.u8()? {
            0 => false,
            1 => true,
            _ => return Err(DecodeError("bad flag")),
        };
        let max = self.u32()?;
        let on_expiry = match self.u8()? {
            0 => OnExpiry::Delete,
            1 => OnExpiry::DeadLetter,
            _ => return Err(DecodeError("unknown expiry action")),
        };
        Ok(LeaseRules {
            counting,
            lapsed_lease_settles,
            max_deliveries: (max > 0).then_some(max),
            on_expiry,
        })
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
            body: b"hello".to_vec(),
            size: 5,
            inserted_at: Timestamp::from_millis(1_000),
            expires_at: Timestamp::NEVER,
            visible_at: Timestamp::from_millis(-5),
            dequeue_count: 3,
            receipt: PopReceipt(u128::MAX - 1),
            state: MessageState::Active,
            dead_letter: None,
        }
    }

    fn round_trip(bytes: &[u8], expected: &Record) {
        assert_eq!(&decode(bytes, true).expect("decodes"), expected);
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut], true).is_err(), "truncated at {cut}");
        }
        let mut longer = bytes.to_vec();
        longer.push(0);
        assert!(decode(&longer, true).is_err(), "trailing byte accepted");
    }

    #[test]
    fn message_round_trip_body_offset_and_corruption() {
        let m = message();
        let mut out = Vec::new();
        encode_message(&mut out, 7, SubQueue::Main, &m, &m.body);
        assert_eq!(&out[MESSAGE_BODY_OFFSET..MESSAGE_BODY_OFFSET + 5], b"hello");
        round_trip(
            &out,
            &Record::Message {
                queue: 7,
                sub: SubQueue::Main,
                message: m.clone(),
                body_len: 5,
            },
        );
        // In a dead-letter sub-queue, with its reason: still the same body offset.
        let dead = Message {
            state: MessageState::DeadLettered,
            dead_letter: Some(DeadLetterInfo {
                reason: Some("MaxDeliveryCountExceeded".into()),
                description: None,
            }),
            ..m.clone()
        };
        let mut out2 = Vec::new();
        encode_message(&mut out2, 7, SubQueue::DeadLetter, &dead, &m.body);
        assert_eq!(
            &out2[MESSAGE_BODY_OFFSET..MESSAGE_BODY_OFFSET + 5],
            b"hello"
        );
        round_trip(
            &out2,
            &Record::Message {
                queue: 7,
                sub: SubQueue::DeadLetter,
                message: dead,
                body_len: 5,
            },
        );
        let Ok(Record::Message { message, .. }) = decode(&out, false) else {
            panic!("decodes")
        };
        assert!(message.body.is_empty());
        let mut bad = out;
        bad[0] = 99;
        assert!(decode(&bad, true).is_err());
    }

    #[test]
    fn every_other_record_round_trips() {
        let q = QueueDef {
            queue: 42,
            account: "acct".into(),
            name: "q".into(),
            next_sequence: 1_000,
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
            rules: LeaseRules::service_bus(7, true),
        };
        let mut out = Vec::new();
        encode_queue_define(&mut out, &q);
        round_trip(&out, &Record::QueueDefine(q));

        let locked = Message {
            state: MessageState::Locked,
            body: Vec::new(),
            size: 0,
            ..message()
        };
        let mut out = Vec::new();
        encode_message_state(&mut out, 5, SubQueue::Main, &locked);
        round_trip(
            &out,
            &Record::MessageState {
                queue: 5,
                sub: SubQueue::Main,
                message: locked,
            },
        );
        let mut out = Vec::new();
        encode_batch(&mut out, 5, 3);
        round_trip(&out, &Record::Batch { queue: 5, count: 3 });

        let m = message();
        let mut out = Vec::new();
        encode_lease(&mut out, 3, &m);
        round_trip(
            &out,
            &Record::Lease {
                queue: 3,
                sequence: 9,
                visible_at: m.visible_at,
                dequeue_count: 3,
                receipt: m.receipt,
            },
        );
        let mut out = Vec::new();
        encode_message_delete(&mut out, 3, 9);
        round_trip(
            &out,
            &Record::MessageDelete {
                queue: 3,
                sequence: 9,
            },
        );
        let mut out = Vec::new();
        encode_queue_clear(&mut out, 3);
        round_trip(&out, &Record::QueueClear { queue: 3 });
        let mut out = Vec::new();
        encode_queue_delete(&mut out, 3);
        round_trip(&out, &Record::QueueDelete { queue: 3 });
        let mut out = Vec::new();
        encode_document(&mut out, "a", "k", b"<xml/>");
        round_trip(
            &out,
            &Record::Document {
                account: "a".into(),
                key: "k".into(),
                value: b"<xml/>".to_vec(),
            },
        );
    }
}
