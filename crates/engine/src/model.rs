//! The nouns of the engine: queues, messages, receipts, metadata, access policies.
//!
//! The message state is designed for both fronts: Azure Queue Storage uses visibility leases with a
//! pop receipt and a dequeue count; Service Bus adds deferral, scheduling and dead-lettering on the
//! same record, so [`MessageState`] leaves room for those states now.

use std::fmt;

use crate::time::Timestamp;

/// Identifies a queue: an account and a queue name within it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct QueueRef<'a> {
    pub account: &'a str,
    pub queue: &'a str,
}

impl<'a> QueueRef<'a> {
    pub fn new(account: &'a str, queue: &'a str) -> Self {
        QueueRef { account, queue }
    }
}

/// A message's identity: 128 random bits, shown as a GUID by the REST front.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub u128);

impl MessageId {
    pub fn random() -> Self {
        MessageId(rand::random())
    }

    /// A GUID whose first 48 bits are the creation time in milliseconds and whose other 80 are
    /// random (the layout of UUIDv7). Stores that index messages by id then insert near one end
    /// of their index and delete near the other, instead of touching a random page of an index
    /// as large as the backlog on every put and delete.
    pub fn time_ordered(now: Timestamp) -> Self {
        let ms = u128::from(now.as_millis().max(0) as u64 & 0xFFFF_FFFF_FFFF);
        let random: u128 = rand::random::<u128>() & ((1u128 << 80) - 1);
        MessageId(ms << 80 | random)
    }
}

impl fmt::Display for MessageId {
    /// Lowercase hyphenated GUID, as Azure shows message ids.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 36];
        let mut at = 0;
        for (i, byte) in self.0.to_be_bytes().into_iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                out[at] = b'-';
                at += 1;
            }
            out[at] = HEX[usize::from(byte >> 4)];
            out[at + 1] = HEX[usize::from(byte & 0xf)];
            at += 2;
        }
        f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
    }
}

impl std::str::FromStr for MessageId {
    type Err = ();

    /// Accepts the hyphenated GUID form, case-insensitively.
    fn from_str(s: &str) -> Result<Self, ()> {
        let hex: String = s.chars().filter(|&c| c != '-').collect();
        let dashes = s.len() - hex.len();
        if hex.len() != 32 || dashes != 4 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(());
        }
        let pos: Vec<usize> = s.match_indices('-').map(|(i, _)| i).collect();
        if pos != [8, 13, 18, 23] {
            return Err(());
        }
        u128::from_str_radix(&hex, 16)
            .map(MessageId)
            .map_err(|_| ())
    }
}

/// The token that proves a caller holds (or last held) a message's lease: Azure's pop receipt,
/// Service Bus's lock token. Opaque to clients.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PopReceipt(pub u128);

impl PopReceipt {
    pub fn random() -> Self {
        PopReceipt(rand::random())
    }
}

/// Where a message stands in its life.
///
/// Azure queues use only `Active`: "visible" and "leased" are both derived from `visible_at`
/// compared with now, which keeps a lapsed lease from needing any write. Service Bus uses the
/// others: a lock is `Locked` until it is settled, and a lapsed one is noticed (and counted as a
/// failed delivery) when the message is next looked at.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum MessageState {
    /// Receivable once `visible_at` has passed; leased (invisible) before that (Azure).
    Active,
    /// Set aside by the receiver; fetched only by sequence number (Service Bus).
    Deferred,
    /// In the dead-letter sub-queue (Service Bus).
    DeadLettered,
    /// Locked by a receiver until `visible_at` (Service Bus).
    Locked,
    /// Enqueued for later: becomes `Active` at `visible_at` (Service Bus scheduled messages).
    Scheduled,
    /// A deferred message locked by a receive by sequence number: when its lock ends without
    /// completion (abandon, release, lapse) it is deferred again, not active.
    DeferredLocked,
}

impl MessageState {
    /// Whether a receiver holds the message's lock (until `visible_at`).
    pub fn is_locked(self) -> bool {
        matches!(self, MessageState::Locked | MessageState::DeferredLocked)
    }

    /// The state a locked message returns to when its lock ends unsettled.
    pub fn unlocked(self) -> MessageState {
        match self {
            MessageState::DeferredLocked => MessageState::Deferred,
            _ => MessageState::Active,
        }
    }
}

/// Why a message was dead-lettered, as Service Bus reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeadLetterInfo {
    pub reason: Option<String>,
    pub description: Option<String>,
}

/// A stored message and its lease state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub id: MessageId,
    /// Monotonically increasing per queue, assigned by the store.
    pub sequence: u64,
    pub body: Vec<u8>,
    /// The body's length as stored: a store that keeps bodies out of its index (the embedded
    /// store) still knows each message's size, so an entity's size is known without reading.
    pub size: u32,
    pub inserted_at: Timestamp,
    pub expires_at: Timestamp,
    /// Before this instant the message is invisible (leased, or put with a visibility delay).
    pub visible_at: Timestamp,
    /// How many times a receive has leased it.
    pub dequeue_count: u32,
    /// The receipt of the latest lease (or of the put). Replaced on every receive and update.
    pub receipt: PopReceipt,
    pub state: MessageState,
    /// Set once the message is in a dead-letter sub-queue.
    pub dead_letter: Option<DeadLetterInfo>,
}

impl Message {
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires_at <= now
    }

    /// The state as a client should see it now: a scheduled message that has come due is
    /// active.
    pub fn effective_state(&self, now: Timestamp) -> MessageState {
        match self.state {
            MessageState::Scheduled if self.visible_at <= now => MessageState::Active,
            s => s,
        }
    }

    pub fn is_visible(&self, now: Timestamp) -> bool {
        matches!(
            self.state,
            MessageState::Active | MessageState::Scheduled | MessageState::DeadLettered
        ) && self.visible_at <= now
            && !self.is_expired(now)
    }
}

/// A message about to be stored; the store assigns the sequence number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewMessage {
    pub id: MessageId,
    pub body: Vec<u8>,
    pub inserted_at: Timestamp,
    pub expires_at: Timestamp,
    pub visible_at: Timestamp,
    pub receipt: PopReceipt,
}

impl NewMessage {
    /// The stored message it becomes at `sequence`: active, never dequeued.
    pub fn into_message(self, sequence: u64) -> Message {
        Message {
            id: self.id,
            sequence,
            size: u32::try_from(self.body.len()).unwrap_or(u32::MAX),
            body: self.body,
            inserted_at: self.inserted_at,
            expires_at: self.expires_at,
            visible_at: self.visible_at,
            dequeue_count: 0,
            receipt: self.receipt,
            state: MessageState::Active,
            dead_letter: None,
        }
    }
}

/// User metadata: name/value pairs in the order and case the caller gave.
///
/// Names compare case-insensitively (Azure's rule); the stored case is what callers get back.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metadata(pub Vec<(String, String)>);

impl Metadata {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Same pairs, names compared case-insensitively and values exactly, in any order.
    pub fn equivalent(&self, other: &Metadata) -> bool {
        if self.0.len() != other.0.len() {
            return false;
        }
        self.0.iter().all(|(k, v)| {
            other
                .0
                .iter()
                .any(|(k2, v2)| k.eq_ignore_ascii_case(k2) && v == v2)
        })
    }
}

/// A stored access policy: a named set of permissions and a validity window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessPolicy {
    pub id: String,
    pub start: Option<Timestamp>,
    pub expiry: Option<Timestamp>,
    /// Permission letters as the front defines them.
    pub permissions: Option<String>,
}

/// What listing shows of a queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueSummary {
    pub name: String,
    pub metadata: Metadata,
}

/// A queue's properties.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueInfo {
    pub metadata: Metadata,
    /// Messages not yet expired, visible or not (the dead-letter sub-queue's not included).
    pub message_count: u64,
    /// Of those, messages scheduled for later (Service Bus).
    pub scheduled_count: u64,
    /// Messages in the dead-letter sub-queue.
    pub dead_letter_count: u64,
    /// The bytes of every message body held, the dead-letter sub-queue's included (Service
    /// Bus counts an entity's size against MaxSizeInMegabytes so).
    pub size_bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_id_round_trips_as_guid() {
        let id = MessageId(0x5974b586_0df3_4e2d_ad0c_18e3892bfca2);
        assert_eq!(id.to_string(), "5974b586-0df3-4e2d-ad0c-18e3892bfca2");
        assert_eq!(
            MessageId(0).to_string(),
            "00000000-0000-0000-0000-000000000000"
        );
        assert_eq!(
            MessageId(u128::MAX).to_string(),
            "ffffffff-ffff-ffff-ffff-ffffffffffff"
        );
        assert_eq!("5974B586-0DF3-4E2D-AD0C-18E3892BFCA2".parse(), Ok(id));
        assert!("5974b586-0df3-4e2d-ad0c-18e3892bfca"
            .parse::<MessageId>()
            .is_err());
        assert!("5974b5860-df3-4e2d-ad0c-18e3892bfca2"
            .parse::<MessageId>()
            .is_err());
        assert!("not-a-guid".parse::<MessageId>().is_err());
    }

    #[test]
    fn time_ordered_ids_sort_by_creation_time() {
        let a = MessageId::time_ordered(Timestamp::from_millis(1_000));
        let b = MessageId::time_ordered(Timestamp::from_millis(1_001));
        let c = MessageId::time_ordered(Timestamp::from_millis(1_001));
        assert!(a < b && a < c);
        assert_ne!(
            b, c,
            "80 random bits tell ids of the same millisecond apart"
        );
        assert_eq!(b.0 >> 80, 1_001);
    }

    #[test]
    fn metadata_equivalence_ignores_name_case_and_order_but_not_values() {
        let a = Metadata(vec![
            ("Color".into(), "red".into()),
            ("k".into(), "v".into()),
        ]);
        let b = Metadata(vec![
            ("k".into(), "v".into()),
            ("color".into(), "red".into()),
        ]);
        let c = Metadata(vec![
            ("color".into(), "Red".into()),
            ("k".into(), "v".into()),
        ]);
        assert!(a.equivalent(&b));
        assert!(!a.equivalent(&c));
        assert!(!a.equivalent(&Metadata::default()));
        assert!(Metadata::default().equivalent(&Metadata::default()));
    }
}
