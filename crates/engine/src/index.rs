//! One queue's messages and the indexes that make every operation O(log n) in its backlog.
//!
//! This is the message state machine of both fronts, written once and shared by the stores that
//! keep their working set in memory: the in-memory store uses it as is, and the embedded store
//! persists what each call returns. Azure Queue and Service Bus are two settings of it
//! ([`LeaseRules`]): when the delivery count rises, whether a lapsed lease's token still works,
//! after how many failed deliveries a message is dead-lettered, and what expiry does. An
//! [`Entity`] pairs a queue with its dead-letter sub-queue, so a move between them is one step.
//!
//! Receiving walks an ordered set keyed by (visible_at, sequence), so it touches only the
//! messages it returns, whatever the backlog, the other queues or the other accounts hold. A
//! second set keyed by (expires_at, sequence) lets expired messages leave without a scan.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{DeadLetterInfo, Message, MessageId, MessageState, NewMessage, PopReceipt};
pub use crate::store::{
    DeliveryCounting, LeaseGrant, LeaseRules, MessageUpdate, OnExpiry, ReceiptError, SettleError,
    Settled, Settlement, SubQueue, MAX_DELIVERY_COUNT_EXCEEDED, TTL_EXPIRED,
};
use crate::time::Timestamp;

/// What a walk over available messages did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Taken {
    /// The messages picked (locked, leased or removed), as they now stand.
    pub messages: Vec<Message>,
    /// Taken out for the dead-letter sub-queue (`max_deliveries` reached).
    pub dead_lettered: Vec<Message>,
    /// Taken out because their time to live had passed.
    pub expired: Vec<Message>,
}

/// `m` as it enters a dead-letter sub-queue with `reason`.
/// Gives held message `m` a new size, keeping its queue's sum (`bytes`) right.
fn set_size(bytes: &mut u64, m: &mut Message, size: u32) {
    *bytes = bytes.saturating_sub(u64::from(m.size)) + u64::from(size);
    m.size = size;
}

fn dead_lettered(m: Message, reason: &str, description: Option<String>) -> Message {
    Message {
        dead_letter: Some(DeadLetterInfo {
            reason: Some(reason.to_owned()),
            description,
        }),
        ..m
    }
}

#[derive(Debug, Default, Clone)]
pub struct QueueMessages {
    rules: LeaseRules,
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
    /// Locked messages by lock token, where a token alone settles (Service Bus).
    by_token: BTreeMap<PopReceipt, u64>,
    /// The sum of the messages' sizes.
    bytes: u64,
    /// Messages in the `Scheduled` state, for the entity's counts without a walk.
    scheduled: u64,
}

impl QueueMessages {
    pub fn new() -> Self {
        Self::with_rules(LeaseRules::default())
    }

    /// An empty queue whose leases follow `rules`. Sequence numbers start at 1, as Service
    /// Bus's do (clients treat 0 as "none").
    pub fn with_rules(rules: LeaseRules) -> Self {
        QueueMessages {
            rules,
            next_sequence: 1,
            ..Self::default()
        }
    }

    pub fn rules(&self) -> LeaseRules {
        self.rules
    }

    /// Sets the rules of a queue that holds no locked message yet (replay adopting a
    /// definition read after some of the queue's records).
    pub fn set_rules(&mut self, rules: LeaseRules) {
        self.rules = rules;
        let locked: Vec<Message> = self
            .by_sequence
            .values()
            .filter(|m| m.state.is_locked())
            .cloned()
            .collect();
        for m in locked {
            self.restore(m);
        }
    }

    /// Messages held, including expired ones not yet purged.
    pub fn len(&self) -> usize {
        self.by_sequence.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_sequence.is_empty()
    }

    /// The sum of the sizes of the messages held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Records a message's size (a store that keeps its body elsewhere). The size keys no
    /// index, so only the sum changes: this runs on every put of the embedded store.
    pub fn resize(&mut self, seq: u64, size: u32) {
        if let Some(m) = self.by_sequence.get_mut(&seq) {
            set_size(&mut self.bytes, m, size);
        }
    }

    /// Messages enqueued for later that no receiver has met since their time came.
    pub fn scheduled(&self) -> u64 {
        self.scheduled
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
        if m.state != MessageState::Deferred {
            self.visibility.remove(&(m.visible_at, seq));
            self.visibility.insert((update.visible_at, seq));
        }
        m.visible_at = update.visible_at;
        m.receipt = update.receipt;
        if let Some(body) = update.body {
            set_size(
                &mut self.bytes,
                m,
                u32::try_from(body.len()).unwrap_or(u32::MAX),
            );
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
        self.by_token.clear();
        self.bytes = 0;
        self.scheduled = 0;
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
        self.bytes += u64::from(m.size);
        self.scheduled += u64::from(m.state == MessageState::Scheduled);
        self.by_id.insert(m.id, m.sequence);
        if m.state != MessageState::Deferred {
            self.visibility.insert((m.visible_at, m.sequence));
        }
        if m.state.is_locked() && self.rules.locks() {
            self.by_token.insert(m.receipt, m.sequence);
        }
        self.expiry.insert((m.expires_at, m.sequence));
    }

    fn unindex(&mut self, m: &Message) {
        self.bytes = self.bytes.saturating_sub(u64::from(m.size));
        self.scheduled -= u64::from(m.state == MessageState::Scheduled);
        self.by_id.remove(&m.id);
        self.visibility.remove(&(m.visible_at, m.sequence));
        self.expiry.remove(&(m.expires_at, m.sequence));
        if m.state.is_locked() {
            self.by_token.remove(&m.receipt);
        }
    }

    /// Applies `change` to message `seq` with its indexes kept right.
    fn modify<T>(&mut self, seq: u64, change: impl FnOnce(&mut Message) -> T) -> Option<T> {
        let mut m = self.by_sequence.remove(&seq)?;
        self.unindex(&m);
        let out = change(&mut m);
        self.index(&m);
        self.by_sequence.insert(seq, m);
        Some(out)
    }

    // ---- Service Bus: locks settled by token, browsing, deferral, scheduling ----------------

    /// Locks up to `grant.receipts.len()` available messages, oldest-available first, each
    /// until `grant.visible_until` under its new token. A lapsed lock met on the way is a
    /// failed delivery; a message that reaches the rules' `max_deliveries` is taken out and
    /// returned in [`Taken::dead_lettered`] instead.
    pub fn lock(&mut self, now: Timestamp, grant: &LeaseGrant) -> Taken {
        self.take_available(now, grant.receipts.len(), |q, seq, i| {
            let until = grant.visible_until;
            let token = grant.receipts[i];
            let counts = q.rules.counting == DeliveryCounting::EveryLease;
            let locks = q.rules.locks();
            q.modify(seq, |m| {
                m.visible_at = until;
                m.receipt = token;
                if locks {
                    m.state = MessageState::Locked;
                }
                if counts {
                    m.dequeue_count = m.dequeue_count.saturating_add(1);
                }
                m.clone()
            })
        })
    }

    /// Removes up to `max` available messages and returns them (Service Bus
    /// receive-and-delete).
    pub fn take(&mut self, now: Timestamp, max: usize) -> Taken {
        self.take_available(now, max, |q, seq, _| q.remove(seq))
    }

    /// Walks available messages in receive order, handing each to `pick` until `n` were
    /// picked. Expired messages leave first; lapsed locks are failed deliveries.
    fn take_available(
        &mut self,
        now: Timestamp,
        n: usize,
        mut pick: impl FnMut(&mut Self, u64, usize) -> Option<Message>,
    ) -> Taken {
        let mut out = Taken {
            expired: self.purge_expired(now),
            ..Taken::default()
        };
        let mut after = None;
        while out.messages.len() < n {
            let next = match after {
                None => self.visibility.range(..=(now, u64::MAX)).next(),
                Some(k) => self
                    .visibility
                    .range((
                        std::ops::Bound::Excluded(k),
                        std::ops::Bound::Included((now, u64::MAX)),
                    ))
                    .next(),
            };
            let Some(&key) = next else { break };
            after = Some(key);
            let seq = key.1;
            // A lease that ends at once puts the message back ahead of the walk: not twice.
            if out.messages.iter().any(|m| m.sequence == seq) {
                continue;
            }
            if self
                .by_sequence
                .get(&seq)
                .is_some_and(|m| m.state.is_locked())
            {
                if let Some(gone) = self.fail_delivery(seq, now) {
                    out.dead_lettered.push(gone);
                    continue;
                }
                // A deferred message whose lock lapsed is deferred again: not for this walk.
                if self.by_sequence.get(&seq).map(|m| m.state) == Some(MessageState::Deferred) {
                    continue;
                }
            }
            let i = out.messages.len();
            if let Some(m) = pick(self, seq, i) {
                out.messages.push(m);
            }
        }
        out
    }

    /// A delivery failed (its lock lapsed, or it was abandoned): the message is available
    /// again with one more failed delivery, or, at `max_deliveries`, taken out and returned
    /// for the dead-letter sub-queue.
    fn fail_delivery(&mut self, seq: u64, now: Timestamp) -> Option<Message> {
        let counts = self.rules.counting == DeliveryCounting::FailedDeliveries;
        let count = self.modify(seq, |m| {
            m.state = m.state.unlocked();
            // Back in its place in the queue, as on Service Bus: ordered by when it was
            // enqueued, so an abandoned message is the next one delivered again.
            m.visible_at = m.inserted_at.min(now);
            if counts {
                m.dequeue_count = m.dequeue_count.saturating_add(1);
            }
            m.dequeue_count
        })?;
        if let Some(max) = self.rules.max_deliveries.filter(|max| count >= *max) {
            // The description Service Bus gives, with the entity's MaxDeliveryCount.
            let description =
                format!("Message could not be consumed after {max} delivery attempts.");
            return self
                .remove(seq)
                .map(|m| dead_lettered(m, MAX_DELIVERY_COUNT_EXCEEDED, Some(description)));
        }
        None
    }

    /// Settles the message locked under `token` (Service Bus), if its lock still holds.
    pub fn settle(
        &mut self,
        token: PopReceipt,
        now: Timestamp,
        how: Settlement,
    ) -> Result<Settled, SettleError> {
        let seq = *self.by_token.get(&token).ok_or(SettleError::LockLost)?;
        let m = self.by_sequence.get(&seq).ok_or(SettleError::LockLost)?;
        if !m.state.is_locked() || m.visible_at <= now || m.is_expired(now) {
            return Err(SettleError::LockLost);
        }
        let settled = match how {
            Settlement::Complete => {
                Settled::Removed(self.remove(seq).ok_or(SettleError::LockLost)?)
            }
            Settlement::Abandon => match self.fail_delivery(seq, now) {
                Some(gone) => Settled::DeadLettered(gone),
                None => Settled::Kept(self.message(seq)?),
            },
            Settlement::Release => Settled::Kept(
                self.modify(seq, |m| {
                    m.state = m.state.unlocked();
                    m.visible_at = m.inserted_at.min(now);
                    m.clone()
                })
                .ok_or(SettleError::LockLost)?,
            ),
            Settlement::Defer => Settled::Kept(
                self.modify(seq, |m| {
                    m.state = MessageState::Deferred;
                    m.visible_at = now;
                    m.clone()
                })
                .ok_or(SettleError::LockLost)?,
            ),
            Settlement::DeadLetter(info) => {
                let m = self.remove(seq).ok_or(SettleError::LockLost)?;
                Settled::DeadLettered(Message {
                    dead_letter: Some(info),
                    ..m
                })
            }
            Settlement::Renew { until } => Settled::Kept(
                self.modify(seq, |m| {
                    m.visible_at = until;
                    m.clone()
                })
                .ok_or(SettleError::LockLost)?,
            ),
        };
        Ok(settled)
    }

    fn message(&self, seq: u64) -> Result<Message, SettleError> {
        self.by_sequence
            .get(&seq)
            .cloned()
            .ok_or(SettleError::LockLost)
    }

    /// Up to `max` messages from sequence number `from` on, in every state but expired
    /// (Service Bus peek: locked, deferred and scheduled messages included), unchanged.
    pub fn browse(&self, from: u64, max: usize, now: Timestamp) -> Vec<Message> {
        self.by_sequence
            .range(from..)
            .map(|(_, m)| m)
            .filter(|m| !m.is_expired(now))
            .take(max)
            .cloned()
            .collect()
    }

    /// Locks the deferred messages among `sequences` (Service Bus receive-deferred), one
    /// token each from `grant`; others are skipped.
    pub fn lock_deferred(
        &mut self,
        sequences: &[u64],
        now: Timestamp,
        grant: &LeaseGrant,
    ) -> Vec<Message> {
        let mut out = Vec::new();
        for (&seq, &token) in sequences.iter().zip(&grant.receipts) {
            let deferred = self
                .by_sequence
                .get(&seq)
                .is_some_and(|m| m.state == MessageState::Deferred && !m.is_expired(now));
            if deferred {
                out.extend(self.modify(seq, |m| {
                    m.state = MessageState::DeferredLocked;
                    m.visible_at = grant.visible_until;
                    m.receipt = token;
                    m.clone()
                }));
            }
        }
        out
    }

    /// Stores a message that becomes available only at `at` (Service Bus scheduled message).
    pub fn insert_scheduled(&mut self, m: NewMessage, at: Timestamp) -> Message {
        let mut message = m.into_message(self.next_sequence);
        message.state = MessageState::Scheduled;
        message.visible_at = at;
        self.restore(message.clone());
        message
    }

    /// Removes a scheduled message that has not come due. `None` if there is none.
    pub fn cancel_scheduled(&mut self, seq: u64, now: Timestamp) -> Option<Message> {
        let due = self
            .by_sequence
            .get(&seq)
            .is_some_and(|m| m.state == MessageState::Scheduled && m.visible_at > now);
        if due {
            self.remove(seq)
        } else {
            None
        }
    }

    /// Lapsed locks, each a failed delivery (housekeeping): returns the messages that reached
    /// `max_deliveries`, taken out for the dead-letter sub-queue, and the ones made available
    /// again.
    pub fn expire_locks(&mut self, now: Timestamp, budget: usize) -> Taken {
        let lapsed: Vec<u64> = self
            .by_token
            .values()
            .copied()
            .filter(|seq| {
                self.by_sequence
                    .get(seq)
                    .is_some_and(|m| m.visible_at <= now)
            })
            .take(budget)
            .collect();
        let mut out = Taken::default();
        for seq in lapsed {
            match self.fail_delivery(seq, now) {
                Some(gone) => out.dead_lettered.push(gone),
                None => out.messages.extend(self.by_sequence.get(&seq).cloned()),
            }
        }
        out
    }

    /// Removes a message whatever its receipt (also replaying a logged delete).
    pub fn remove(&mut self, seq: u64) -> Option<Message> {
        let m = self.by_sequence.remove(&seq)?;
        self.unindex(&m);
        Some(m)
    }
}

/// A queue and its dead-letter sub-queue, so that a move from one to the other is one step
/// under one lock.
#[derive(Debug, Clone)]
pub struct Entity {
    pub main: QueueMessages,
    pub dead_letter: QueueMessages,
}

impl Default for Entity {
    fn default() -> Self {
        Entity::new(LeaseRules::AZURE_QUEUE)
    }
}

/// What an entity operation changed, for a store that records changes (the embedded store's
/// log): messages as they now stand, and messages gone.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    pub upserted: Vec<(SubQueue, Message)>,
    pub removed: Vec<(SubQueue, u64)>,
}

impl Entity {
    /// The bytes held by the queue and its dead-letter sub-queue.
    pub fn bytes(&self) -> u64 {
        self.main.bytes() + self.dead_letter.bytes()
    }

    /// An empty entity whose queue follows `rules` (its dead-letter sub-queue follows
    /// [`LeaseRules::DEAD_LETTER`]).
    pub fn new(rules: LeaseRules) -> Self {
        Entity {
            main: QueueMessages::with_rules(rules),
            dead_letter: QueueMessages::with_rules(LeaseRules::DEAD_LETTER),
        }
    }

    /// Sets the main queue's rules (see [`QueueMessages::set_rules`]).
    pub fn set_rules(&mut self, rules: LeaseRules) {
        self.main.set_rules(rules);
    }

    /// The message with sequence number `seq`, and which sub-queue holds it.
    pub fn find(&self, seq: u64) -> Option<(SubQueue, &Message)> {
        match self.main.get_by_sequence(seq) {
            Some(m) => Some((SubQueue::Main, m)),
            None => self
                .dead_letter
                .get_by_sequence(seq)
                .map(|m| (SubQueue::DeadLetter, m)),
        }
    }

    /// Puts `m` in `sub` exactly as it is, taking it out of the other sub-queue if it was
    /// there (replaying a logged state or move).
    pub fn place(&mut self, sub: SubQueue, m: Message) {
        let other = match sub {
            SubQueue::Main => SubQueue::DeadLetter,
            SubQueue::DeadLetter => SubQueue::Main,
        };
        self.queue_mut(other).remove(m.sequence);
        if sub == SubQueue::DeadLetter {
            self.main.raise_next_sequence(m.sequence + 1);
        }
        self.queue_mut(sub).restore(m);
    }

    /// Removes message `seq` from whichever sub-queue holds it.
    pub fn remove(&mut self, seq: u64) -> Option<Message> {
        self.main
            .remove(seq)
            .or_else(|| self.dead_letter.remove(seq))
    }

    pub fn queue(&self, sub: SubQueue) -> &QueueMessages {
        match sub {
            SubQueue::Main => &self.main,
            SubQueue::DeadLetter => &self.dead_letter,
        }
    }

    pub fn queue_mut(&mut self, sub: SubQueue) -> &mut QueueMessages {
        match sub {
            SubQueue::Main => &mut self.main,
            SubQueue::DeadLetter => &mut self.dead_letter,
        }
    }

    /// Moves messages taken out of the main queue into the dead-letter sub-queue, where they
    /// keep their sequence numbers, are available at once and never expire.
    fn bury(
        &mut self,
        from: SubQueue,
        messages: Vec<Message>,
        now: Timestamp,
        changes: &mut Changes,
    ) {
        for m in messages {
            changes.removed.push((from, m.sequence));
            let m = Message {
                state: MessageState::DeadLettered,
                visible_at: now,
                expires_at: Timestamp::NEVER,
                ..m
            };
            self.dead_letter.restore(m.clone());
            changes.upserted.push((SubQueue::DeadLetter, m));
        }
    }

    /// Records what a walk took out: dead-lettered messages move, expired ones move too when
    /// the rules say so (only from the main queue), or are gone.
    fn settle_taken(
        &mut self,
        sub: SubQueue,
        taken: &mut Taken,
        now: Timestamp,
        changes: &mut Changes,
    ) {
        let dead = std::mem::take(&mut taken.dead_lettered);
        let expired = std::mem::take(&mut taken.expired);
        if sub == SubQueue::Main {
            self.bury(sub, dead, now, changes);
        }
        if sub == SubQueue::Main && self.main.rules().on_expiry == OnExpiry::DeadLetter {
            let expired = expired
                .into_iter()
                .map(|m| {
                    dead_lettered(
                        m,
                        TTL_EXPIRED,
                        Some("The message expired and was dead lettered.".to_owned()),
                    )
                })
                .collect();
            self.bury(sub, expired, now, changes);
        } else {
            changes
                .removed
                .extend(expired.iter().map(|m| (sub, m.sequence)));
        }
    }

    /// Peek-lock: locks available messages of `sub` (see [`QueueMessages::lock`]).
    pub fn lock(
        &mut self,
        sub: SubQueue,
        now: Timestamp,
        grant: &LeaseGrant,
    ) -> (Vec<Message>, Changes) {
        let mut changes = Changes::default();
        let mut taken = self.queue_mut(sub).lock(now, grant);
        self.settle_taken(sub, &mut taken, now, &mut changes);
        changes
            .upserted
            .extend(taken.messages.iter().map(|m| (sub, m.clone())));
        (taken.messages, changes)
    }

    /// Receive-and-delete: removes up to `max` available messages of `sub`.
    pub fn take(&mut self, sub: SubQueue, now: Timestamp, max: usize) -> (Vec<Message>, Changes) {
        let mut changes = Changes::default();
        let mut taken = self.queue_mut(sub).take(now, max);
        self.settle_taken(sub, &mut taken, now, &mut changes);
        changes
            .removed
            .extend(taken.messages.iter().map(|m| (sub, m.sequence)));
        (taken.messages, changes)
    }

    /// Settles the message locked under `token` in `sub`.
    pub fn settle(
        &mut self,
        sub: SubQueue,
        token: PopReceipt,
        now: Timestamp,
        how: Settlement,
    ) -> Result<(Settled, Changes), SettleError> {
        let mut changes = Changes::default();
        let settled = self.queue_mut(sub).settle(token, now, how)?;
        match &settled {
            Settled::Removed(m) => changes.removed.push((sub, m.sequence)),
            Settled::Kept(m) => changes.upserted.push((sub, m.clone())),
            Settled::DeadLettered(m) if sub == SubQueue::Main => {
                self.bury(sub, vec![m.clone()], now, &mut changes)
            }
            // Nothing leaves a dead-letter sub-queue for another: it is done with.
            Settled::DeadLettered(m) => changes.removed.push((sub, m.sequence)),
        }
        Ok((settled, changes))
    }

    /// Housekeeping: lapsed locks become failed deliveries, and expired messages leave (or
    /// move to the dead-letter sub-queue), at most `budget` of each.
    pub fn housekeep(&mut self, now: Timestamp, budget: usize) -> Changes {
        let mut changes = Changes::default();
        for sub in [SubQueue::Main, SubQueue::DeadLetter] {
            let mut taken = self.queue_mut(sub).expire_locks(now, budget);
            changes
                .upserted
                .extend(taken.messages.drain(..).map(|m| (sub, m)));
            taken.expired = self.queue_mut(sub).purge_expired(now);
            self.settle_taken(sub, &mut taken, now, &mut changes);
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Timestamp = Timestamp::from_millis(1_700_000_000_000);

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_millis(T0.as_millis() + secs * 1000)
    }

    fn new_message(body: &str, expires: Timestamp) -> NewMessage {
        NewMessage {
            id: MessageId::random(),
            body: body.as_bytes().to_vec(),
            inserted_at: T0,
            expires_at: expires,
            visible_at: T0,
            receipt: PopReceipt::random(),
        }
    }

    fn grant(n: usize, until: Timestamp) -> LeaseGrant {
        LeaseGrant {
            visible_until: until,
            receipts: (0..n).map(|_| PopReceipt::random()).collect(),
        }
    }

    /// A Service Bus queue with MaxDeliveryCount `max` holding one message.
    fn sb(max: u32, dead_letter_on_expiry: bool, expires: Timestamp) -> Entity {
        let mut e = Entity::new(LeaseRules::service_bus(max, dead_letter_on_expiry));
        e.main.insert(new_message("m", expires));
        e
    }

    fn lock_one(e: &mut Entity, sub: SubQueue, now: Timestamp) -> Message {
        let (mut got, _) = e.lock(
            sub,
            now,
            &grant(1, Timestamp::from_millis(now.as_millis() + 30_000)),
        );
        assert_eq!(got.len(), 1, "a message to lock at {now:?}");
        got.remove(0)
    }

    #[test]
    fn service_bus_counts_failed_deliveries_not_leases_or_releases() {
        let mut e = sb(10, false, Timestamp::NEVER);
        let m = lock_one(&mut e, SubQueue::Main, at(0));
        assert_eq!((m.state, m.dequeue_count), (MessageState::Locked, 0));
        e.settle(SubQueue::Main, m.receipt, at(1), Settlement::Release)
            .expect("release");
        let m = lock_one(&mut e, SubQueue::Main, at(2));
        assert_eq!(m.dequeue_count, 0, "a release is not a failed delivery");
        e.settle(SubQueue::Main, m.receipt, at(3), Settlement::Abandon)
            .expect("abandon");
        let m = lock_one(&mut e, SubQueue::Main, at(4));
        assert_eq!(m.dequeue_count, 1, "an abandon is");
        // The lock lapses (30 s): the next lock counts it as a failed delivery.
        let m2 = lock_one(&mut e, SubQueue::Main, at(40));
        assert_eq!((m2.id, m2.dequeue_count), (m.id, 2));
        // Azure counts every lease instead.
        let mut a = Entity::new(LeaseRules::AZURE_QUEUE);
        a.main.insert(new_message("a", Timestamp::NEVER));
        let first = lock_one(&mut a, SubQueue::Main, at(0));
        assert_eq!(
            (first.state, first.dequeue_count),
            (MessageState::Active, 1)
        );
        assert_eq!(lock_one(&mut a, SubQueue::Main, at(31)).dequeue_count, 2);
    }

    #[test]
    fn a_lapsed_lock_is_lost_and_a_renewed_one_keeps_its_token() {
        let mut e = sb(10, false, Timestamp::NEVER);
        let m = lock_one(&mut e, SubQueue::Main, at(0));
        let renewed = e
            .settle(
                SubQueue::Main,
                m.receipt,
                at(20),
                Settlement::Renew { until: at(80) },
            )
            .expect("renew");
        assert!(
            matches!(renewed.0, Settled::Kept(ref k) if k.receipt == m.receipt && k.visible_at == at(80))
        );
        // Past the first lock's end, the renewed lock holds.
        assert!(e.main.lock(at(50), &grant(1, at(90))).messages.is_empty());
        assert_eq!(
            e.settle(SubQueue::Main, m.receipt, at(81), Settlement::Complete)
                .err(),
            Some(SettleError::LockLost)
        );
        assert_eq!(
            e.settle(
                SubQueue::Main,
                PopReceipt::random(),
                at(1),
                Settlement::Complete
            )
            .err(),
            Some(SettleError::LockLost)
        );
        let again = lock_one(&mut e, SubQueue::Main, at(82));
        let (done, changes) = e
            .settle(SubQueue::Main, again.receipt, at(83), Settlement::Complete)
            .expect("complete");
        assert!(matches!(done, Settled::Removed(_)));
        assert_eq!(changes.removed, [(SubQueue::Main, again.sequence)]);
        assert!(e.main.is_empty());
    }

    #[test]
    fn max_deliveries_moves_a_message_to_the_dead_letter_queue_where_it_can_be_received() {
        let mut e = sb(2, false, Timestamp::NEVER);
        let m = lock_one(&mut e, SubQueue::Main, at(0));
        e.settle(SubQueue::Main, m.receipt, at(1), Settlement::Abandon)
            .expect("abandon 1");
        let m = lock_one(&mut e, SubQueue::Main, at(2));
        let (settled, changes) = e
            .settle(SubQueue::Main, m.receipt, at(3), Settlement::Abandon)
            .expect("abandon 2");
        assert!(matches!(settled, Settled::DeadLettered(_)));
        assert_eq!(changes.removed, [(SubQueue::Main, m.sequence)]);
        assert!(e.main.is_empty());
        let dead = lock_one(&mut e, SubQueue::DeadLetter, at(4));
        assert_eq!(dead.sequence, m.sequence, "it keeps its sequence number");
        assert_eq!(
            dead.dead_letter.and_then(|d| d.reason).as_deref(),
            Some(MAX_DELIVERY_COUNT_EXCEEDED)
        );
        e.settle(
            SubQueue::DeadLetter,
            dead.receipt,
            at(5),
            Settlement::Complete,
        )
        .expect("complete in the dead-letter queue");
        assert!(e.dead_letter.is_empty());
    }

    #[test]
    fn a_lapsed_lock_at_the_limit_is_dead_lettered_by_housekeeping() {
        let mut e = sb(1, false, Timestamp::NEVER);
        lock_one(&mut e, SubQueue::Main, at(0));
        let changes = e.housekeep(at(31), 100);
        assert_eq!(e.main.len(), 0);
        assert_eq!(e.dead_letter.len(), 1);
        assert!(changes
            .upserted
            .iter()
            .any(|(sub, m)| *sub == SubQueue::DeadLetter && m.state == MessageState::DeadLettered));
    }

    #[test]
    fn explicit_dead_lettering_keeps_reason_and_description() {
        let mut e = sb(10, false, Timestamp::NEVER);
        let m = lock_one(&mut e, SubQueue::Main, at(0));
        let info = DeadLetterInfo {
            reason: Some("poison".into()),
            description: Some("cannot parse".into()),
        };
        e.settle(
            SubQueue::Main,
            m.receipt,
            at(1),
            Settlement::DeadLetter(info.clone()),
        )
        .expect("dead-letter");
        let dead = e.dead_letter.browse(0, 10, at(2));
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].dead_letter.as_ref(), Some(&info));
        assert_eq!(dead[0].body, b"m");
    }

    #[test]
    fn expiry_deletes_or_dead_letters_as_the_entity_says() {
        let mut keep = sb(10, true, at(60));
        let changes = keep.housekeep(at(61), 100);
        assert_eq!((keep.main.len(), keep.dead_letter.len()), (0, 1));
        let dead = keep.dead_letter.browse(0, 1, at(1_000_000));
        assert_eq!(
            dead[0]
                .dead_letter
                .as_ref()
                .and_then(|d| d.reason.as_deref()),
            Some(TTL_EXPIRED)
        );
        assert_eq!(
            dead[0].expires_at,
            Timestamp::NEVER,
            "nothing expires in the DLQ"
        );
        assert_eq!(changes.removed, [(SubQueue::Main, 1)]);
        let mut drop = sb(10, false, at(60));
        drop.housekeep(at(61), 100);
        assert_eq!((drop.main.len(), drop.dead_letter.len()), (0, 0));
    }

    #[test]
    fn deferred_messages_come_back_only_by_sequence_number() {
        let mut e = sb(10, false, Timestamp::NEVER);
        let m = lock_one(&mut e, SubQueue::Main, at(0));
        e.settle(SubQueue::Main, m.receipt, at(1), Settlement::Defer)
            .expect("defer");
        assert!(e.main.lock(at(2), &grant(1, at(30))).messages.is_empty());
        assert_eq!(e.main.browse(0, 10, at(2))[0].state, MessageState::Deferred);
        let got = e
            .main
            .lock_deferred(&[m.sequence, 99], at(3), &grant(2, at(33)));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].state, MessageState::DeferredLocked);
        e.settle(SubQueue::Main, got[0].receipt, at(4), Settlement::Complete)
            .expect("complete");
    }

    #[test]
    fn browsing_shows_every_state_from_a_sequence_number() {
        let mut e = Entity::new(LeaseRules::service_bus(10, false));
        for i in 0..4 {
            e.main
                .insert(new_message(&format!("m{i}"), Timestamp::NEVER));
        }
        e.main
            .insert_scheduled(new_message("later", Timestamp::NEVER), at(600));
        let locked = lock_one(&mut e, SubQueue::Main, at(0));
        let other = lock_one(&mut e, SubQueue::Main, at(0));
        e.settle(SubQueue::Main, other.receipt, at(1), Settlement::Defer)
            .expect("defer");
        let all = e.main.browse(0, 10, at(2));
        let states: Vec<_> = all.iter().map(|m| m.state).collect();
        assert_eq!(
            states,
            [
                MessageState::Locked,
                MessageState::Deferred,
                MessageState::Active,
                MessageState::Active,
                MessageState::Scheduled
            ]
        );
        assert_eq!(all[0].id, locked.id);
        assert_eq!(
            e.main.browse(4, 10, at(2)).len(),
            2,
            "sequence numbers start at 1"
        );
        assert_eq!(e.main.browse(0, 2, at(2)).len(), 2);
    }

    #[test]
    fn scheduled_messages_appear_at_their_time_and_can_be_cancelled_before() {
        let mut e = Entity::new(LeaseRules::service_bus(10, false));
        let s = e
            .main
            .insert_scheduled(new_message("s", Timestamp::NEVER), at(60));
        let c = e
            .main
            .insert_scheduled(new_message("c", Timestamp::NEVER), at(60));
        assert!(e.main.lock(at(59), &grant(2, at(90))).messages.is_empty());
        assert!(e.main.cancel_scheduled(c.sequence, at(10)).is_some());
        assert!(
            e.main.cancel_scheduled(s.sequence, at(60)).is_none(),
            "due: too late"
        );
        let got = lock_one(&mut e, SubQueue::Main, at(60));
        assert_eq!(got.id, s.id);
    }

    #[test]
    fn receive_and_delete_removes_what_it_returns() {
        let mut e = Entity::new(LeaseRules::service_bus(10, false));
        for i in 0..3 {
            e.main
                .insert(new_message(&format!("m{i}"), Timestamp::NEVER));
        }
        let (got, changes) = e.take(SubQueue::Main, at(0), 2);
        assert_eq!(got.len(), 2);
        assert_eq!(e.main.len(), 1);
        assert_eq!(changes.removed.len(), 2);
    }

    #[test]
    fn a_lease_that_ends_at_once_is_not_handed_out_twice() {
        let mut q = QueueMessages::with_rules(LeaseRules::AZURE_QUEUE);
        for i in 0..3 {
            q.insert(new_message(&format!("m{i}"), Timestamp::NEVER));
        }
        let got = q.lock(at(0), &grant(5, at(0)));
        let mut seqs: Vec<u64> = got.messages.iter().map(|m| m.sequence).collect();
        seqs.dedup();
        assert_eq!(seqs.len(), 3);
    }
}
