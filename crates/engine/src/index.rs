//! One queue's messages and the indexes that make every operation O(log n) in its backlog.
//!
//! This is the message state machine of the Azure Queue model (`docs/compatibility.md`), written once and shared
//! by the stores that keep their working set in memory: the in-memory store uses it as is, and the
//! embedded store persists what each call returns. Receiving walks an ordered set keyed by
//! (visible_at, sequence), so it touches only the messages it returns, whatever the backlog, the
//! other queues or the other accounts hold. A second set keyed by (expires_at, sequence) lets
//! expired messages leave without a scan.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{Message, MessageId, MessageState, NewMessage, PopReceipt};
use crate::time::Timestamp;

/// Why a receipt-checked operation did not apply.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ReceiptError {
    /// No such message, or it has expired.
    MessageNotFound,
    /// The message exists but its current receipt is a different one.
    ReceiptMismatch,
}

/// What an update changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageUpdate {
    pub visible_at: Timestamp,
    pub receipt: PopReceipt,
    /// `None` keeps the current body.
    pub body: Option<Vec<u8>>,
}

/// A lease to grant on receive: one fresh receipt per message wanted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseGrant {
    pub visible_until: Timestamp,
    pub receipts: Vec<PopReceipt>,
}

#[derive(Debug, Default, Clone)]
pub struct QueueMessages {
    next_sequence: u64,
    // B-trees rather than hash maps: a hash map doubles by moving every entry at once, and
    // this index lives under the store's lock, so at a million messages one insert would hold
    // every other request up while ~150 MB moved. A B-tree grows a node at a time.
    by_sequence: BTreeMap<u64, Message>,
    by_id: BTreeMap<MessageId, u64>,
    /// Active messages, ordered by when they become visible, then by age.
    visibility: BTreeSet<(Timestamp, u64)>,
    /// Every message, ordered by expiry.
    expiry: BTreeSet<(Timestamp, u64)>,
}

impl QueueMessages {
    pub fn new() -> Self {
        Self::default()
    }

    /// Messages held, including expired ones not yet purged.
    pub fn len(&self) -> usize {
        self.by_sequence.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_sequence.is_empty()
    }

    /// The sequence number the next insert will get.
    pub fn next_sequence(&self) -> u64 {
        self.next_sequence
    }

    pub fn get(&self, id: MessageId) -> Option<&Message> {
        self.by_id.get(&id).and_then(|s| self.by_sequence.get(s))
    }

    pub fn get_by_sequence(&self, sequence: u64) -> Option<&Message> {
        self.by_sequence.get(&sequence)
    }

    /// Makes later inserts get sequence numbers of at least `next` (recovery from disk).
    pub fn raise_next_sequence(&mut self, next: u64) {
        self.next_sequence = self.next_sequence.max(next);
    }

    /// Stores a new message and gives it the next sequence number.
    pub fn insert(&mut self, m: NewMessage) -> Message {
        let message = m.into_message(self.next_sequence);
        self.restore(message.clone());
        message
    }

    /// Puts back a message exactly as it was (recovery from disk). Later inserts get higher
    /// sequence numbers than any restored one.
    pub fn restore(&mut self, m: Message) {
        self.next_sequence = self.next_sequence.max(m.sequence + 1);
        if let Some(old) = self.by_sequence.remove(&m.sequence) {
            self.unindex(&old);
        }
        self.index(&m);
        self.by_sequence.insert(m.sequence, m);
    }

    /// Removes every message whose expiry has come, and returns them.
    pub fn purge_expired(&mut self, now: Timestamp) -> Vec<Message> {
        let mut gone = Vec::new();
        while let Some(&(at, seq)) = self.expiry.first() {
            if at > now {
                break;
            }
            if let Some(m) = self.remove(seq) {
                gone.push(m);
            } else {
                self.expiry.pop_first();
            }
        }
        gone
    }

    /// Leases up to `grant.receipts.len()` visible messages, oldest-visible first: each becomes
    /// invisible until `grant.visible_until`, gets a new receipt and one more dequeue.
    /// Returns the messages as they now stand.
    pub fn receive(&mut self, now: Timestamp, grant: &LeaseGrant) -> Vec<Message> {
        self.purge_expired(now);
        let picked: Vec<(Timestamp, u64)> = self
            .visibility
            .range(..=(now, u64::MAX))
            .take(grant.receipts.len())
            .copied()
            .collect();
        let mut out = Vec::with_capacity(picked.len());
        for (key, receipt) in picked.into_iter().zip(&grant.receipts) {
            self.visibility.remove(&key);
            self.visibility.insert((grant.visible_until, key.1));
            if let Some(m) = self.by_sequence.get_mut(&key.1) {
                m.visible_at = grant.visible_until;
                m.receipt = *receipt;
                m.dequeue_count = m.dequeue_count.saturating_add(1);
                out.push(m.clone());
            }
        }
        out
    }

    /// Up to `max` visible messages in receive order, unchanged.
    pub fn peek(&mut self, now: Timestamp, max: usize) -> Vec<Message> {
        self.purge_expired(now);
        self.visibility
            .range(..=(now, u64::MAX))
            .take(max)
            .filter_map(|(_, seq)| self.by_sequence.get(seq).cloned())
            .collect()
    }

    /// Deletes a message if `receipt` is its current one and it has not expired.
    pub fn delete(
        &mut self,
        id: MessageId,
        receipt: PopReceipt,
        now: Timestamp,
    ) -> Result<Message, ReceiptError> {
        let seq = self.check_receipt(id, receipt, now)?;
        self.remove(seq).ok_or(ReceiptError::MessageNotFound)
    }

    /// Changes visibility (and optionally the body) if `receipt` is current; issues a new receipt.
    /// The dequeue count is unchanged.
    pub fn update(
        &mut self,
        id: MessageId,
        receipt: PopReceipt,
        now: Timestamp,
        update: MessageUpdate,
    ) -> Result<Message, ReceiptError> {
        let seq = self.check_receipt(id, receipt, now)?;
        let Some(m) = self.by_sequence.get_mut(&seq) else {
            return Err(ReceiptError::MessageNotFound);
        };
        if m.state == MessageState::Active {
            self.visibility.remove(&(m.visible_at, seq));
            self.visibility.insert((update.visible_at, seq));
        }
        m.visible_at = update.visible_at;
        m.receipt = update.receipt;
        if let Some(body) = update.body {
            m.body = body;
        }
        Ok(m.clone())
    }

    /// Removes every message.
    pub fn clear(&mut self) {
        self.by_sequence.clear();
        self.by_id.clear();
        self.visibility.clear();
        self.expiry.clear();
    }

    /// Every message held, in sequence order (for snapshots and tests).
    pub fn iter_ordered(&self) -> impl Iterator<Item = &Message> {
        let mut seqs: Vec<&u64> = self.by_sequence.keys().collect();
        seqs.sort_unstable();
        seqs.into_iter().filter_map(|s| self.by_sequence.get(s))
    }

    fn check_receipt(
        &self,
        id: MessageId,
        receipt: PopReceipt,
        now: Timestamp,
    ) -> Result<u64, ReceiptError> {
        let seq = *self.by_id.get(&id).ok_or(ReceiptError::MessageNotFound)?;
        let m = self
            .by_sequence
            .get(&seq)
            .ok_or(ReceiptError::MessageNotFound)?;
        if m.is_expired(now) {
            return Err(ReceiptError::MessageNotFound);
        }
        if m.receipt != receipt {
            return Err(ReceiptError::ReceiptMismatch);
        }
        Ok(seq)
    }

    fn index(&mut self, m: &Message) {
        self.by_id.insert(m.id, m.sequence);
        if m.state == MessageState::Active {
            self.visibility.insert((m.visible_at, m.sequence));
        }
        self.expiry.insert((m.expires_at, m.sequence));
    }

    fn unindex(&mut self, m: &Message) {
        self.by_id.remove(&m.id);
        self.visibility.remove(&(m.visible_at, m.sequence));
        self.expiry.remove(&(m.expires_at, m.sequence));
    }

    /// Removes a message whatever its receipt (also replaying a logged delete).
    pub fn remove(&mut self, seq: u64) -> Option<Message> {
        let m = self.by_sequence.remove(&seq)?;
        self.unindex(&m);
        Some(m)
    }
}
