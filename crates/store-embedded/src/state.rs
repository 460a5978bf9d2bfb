//! The store's working state: every queue's index in memory, every body in the log.
//!
//! Each operation changes the in-memory index (the engine's [`QueueMessages`], shared with the
//! in-memory store, so both stores implement one state machine) and appends the record of its
//! effect to the log. Replay on open feeds the same records back through [`State::replay`].
//! Message bodies stay on disk: the index keeps messages without bodies plus where each body is
//! ([`Loc`]), and replies read bodies back from the log (page cache, one `pread` each).
//!
//! The state also knows which segments still hold records that recovery needs ("live"
//! records): a queue's latest definition, a document's latest value, and the latest whole record
//! of each message that is still alive. A segment with no live record can be retired; one with
//! few can be compacted by appending its live records again at the head of the log.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io;

use hematite_engine::index::{Changes, Entity};
use hematite_engine::model::NewMessage;
use hematite_engine::store::{
    CreateOutcome, Enqueue, Enqueued, LeaseGrant, LeaseRules, MessageUpdate, OnExpiry,
    ReceiptOutcome, SettleError, Settled, Settlement, SubQueue,
};
use hematite_engine::{
    AccessPolicy, Message, MessageId, Metadata, PopReceipt, QueueInfo, QueueRef, QueueSummary,
    Timestamp,
};

use crate::log::{Log, Pos, FRAME_HEADER};
use crate::record::{self, QueueDef, Record, MESSAGE_BODY_OFFSET};

/// Where a message's whole record is in the log.
#[derive(Copy, Clone, Debug)]
struct Loc {
    pos: Pos,
    body_len: u32,
}

impl Loc {
    fn record_bytes(&self) -> u64 {
        (FRAME_HEADER + MESSAGE_BODY_OFFSET) as u64 + u64::from(self.body_len)
    }
}

struct QueueEntry {
    account: String,
    name: String,
    metadata: Metadata,
    policies: Vec<AccessPolicy>,
    /// Segment of the latest definition record.
    def_segment: u32,
    /// False while replay has seen records of this queue but not yet its definition.
    defined: bool,
    /// The queue's messages (without bodies) and its dead-letter sub-queue.
    entity: Entity,
    /// Body positions by sequence, in either sub-queue (a message keeps its sequence number
    /// when it is dead-lettered); a B-tree for the same reason as the index's maps.
    locs: BTreeMap<u64, Loc>,
}

impl QueueEntry {
    fn def(&self, queue: u64) -> QueueDef {
        QueueDef {
            queue,
            account: self.account.clone(),
            name: self.name.clone(),
            next_sequence: self.entity.main.next_sequence(),
            metadata: self.metadata.clone(),
            policies: self.policies.clone(),
            rules: self.entity.main.rules(),
        }
    }
}

struct Document {
    value: Vec<u8>,
    segment: u32,
}

/// Live-record accounting per segment: how many records recovery still needs there, and how
/// many bytes of message records among them.
#[derive(Default)]
struct Live {
    records: HashMap<u32, (u64, u64)>,
    message_bytes: u64,
}

impl Live {
    fn hold(&mut self, segment: u32) {
        self.records.entry(segment).or_default().0 += 1;
    }

    fn release(&mut self, segment: u32) {
        if let Some((n, _)) = self.records.get_mut(&segment) {
            *n = n.saturating_sub(1);
        }
    }

    fn count(&self, segment: u32) -> u64 {
        self.records.get(&segment).map_or(0, |r| r.0)
    }

    fn bytes(&self, segment: u32) -> u64 {
        self.records.get(&segment).map_or(0, |r| r.1)
    }

    fn hold_message(&mut self, loc: &Loc) {
        let r = self.records.entry(loc.pos.segment).or_default();
        r.0 += 1;
        r.1 += loc.record_bytes();
        self.message_bytes += loc.record_bytes();
    }

    fn release_message(&mut self, loc: &Loc) {
        if let Some((n, b)) = self.records.get_mut(&loc.pos.segment) {
            *n = n.saturating_sub(1);
            *b = b.saturating_sub(loc.record_bytes());
        }
        self.message_bytes = self.message_bytes.saturating_sub(loc.record_bytes());
    }

    /// A non-message record (definition, document) was written again in segment `to`.
    fn moved(&mut self, from: u32, to: u32) {
        self.release(from);
        self.hold(to);
    }

    /// Message `sequence` of `e` now has its latest whole record at `loc`.
    fn place_message(&mut self, e: &mut QueueEntry, sequence: u64, loc: Loc) {
        if let Some(old) = e.locs.insert(sequence, loc) {
            self.release_message(&old);
        }
        self.hold_message(&loc);
    }

    /// Message `sequence` of `e` is gone: its record is no longer needed.
    fn forget_message(&mut self, e: &mut QueueEntry, sequence: u64) {
        if let Some(loc) = e.locs.remove(&sequence) {
            self.release_message(&loc);
        }
    }

    /// Every message of `e` is gone (Clear Messages, Delete Queue).
    fn forget_all_messages(&mut self, e: &mut QueueEntry) {
        for loc in e.locs.values() {
            self.release_message(loc);
        }
        e.locs.clear();
        e.entity.main.clear();
        e.entity.dead_letter.clear();
    }
}

/// A segment being compacted, and its records (position, payload) not yet looked at.
type Compaction = (u32, VecDeque<(Pos, Vec<u8>)>);

#[derive(Default)]
pub struct State {
    names: BTreeMap<String, BTreeMap<String, u64>>,
    queues: HashMap<u64, QueueEntry>,
    next_queue: u64,
    documents: HashMap<(String, String), Document>,
    live: Live,
    /// A segment being compacted, and its records not yet looked at.
    compacting: Option<Compaction>,
    /// Dead segments waiting for the log to be durable past the given end before retiring.
    /// Segments handed to [`State::start_compaction`] (for stats).
    compaction_reads: u64,
    dead_since: HashMap<u32, u64>,
    /// During replay: the batch whose message records are being read.
    batch: PendingBatch,
}

/// A batch being replayed: its queue, how many records are still to come, and the sequence
/// numbers read so far.
#[derive(Default)]
struct PendingBatch(Option<(u64, u32, Vec<u64>)>);

impl PendingBatch {
    fn begin(&mut self, queue: u64, count: u32) {
        self.0 = (count > 0).then(|| (queue, count, Vec::new()));
    }

    /// A message record was replayed: it counts toward the batch of its queue.
    fn note(&mut self, queue: u64, sequence: u64) {
        if let Some((q, left, seqs)) = &mut self.0 {
            if *q == queue {
                seqs.push(sequence);
                *left -= 1;
                if *left == 0 {
                    self.0 = None;
                }
            }
        }
    }

    fn incomplete(&mut self) -> Option<(u64, Vec<u64>)> {
        self.0.take().map(|(q, _, seqs)| (q, seqs))
    }
}

/// Counts for tests and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    pub queues: u64,
    /// Messages held in the index, including expired ones not yet purged.
    pub messages: u64,
    /// Segment files of the log.
    pub segments: u64,
    /// Bytes of the message records still needed.
    pub live_message_bytes: u64,
    /// Sealed segments read back whole for compaction since the store opened.
    pub compaction_reads: u64,
}

fn io_err(e: record::DecodeError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.0)
}

impl State {
    fn queue_id(&self, account: &str, name: &str) -> Option<u64> {
        self.names.get(account)?.get(name).copied()
    }

    /// A queue by name; a free function of the two maps so `self.live` stays borrowable.
    fn entry<'s>(
        names: &BTreeMap<String, BTreeMap<String, u64>>,
        queues: &'s mut HashMap<u64, QueueEntry>,
        account: &str,
        name: &str,
    ) -> Option<(u64, &'s mut QueueEntry)> {
        let id = *names.get(account)?.get(name)?;
        queues.get_mut(&id).map(|e| (id, e))
    }

    fn drop_queue(&mut self, id: u64) {
        if let Some(mut e) = self.queues.remove(&id) {
            if e.defined {
                self.live.release(e.def_segment);
            }
            self.live.forget_all_messages(&mut e);
            if let Some(names) = self.names.get_mut(&e.account) {
                if names.get(&e.name) == Some(&id) {
                    names.remove(&e.name);
                }
                if names.is_empty() {
                    self.names.remove(&e.account);
                }
            }
        }
    }

    /// The queue a replayed record is about. A record may come before its queue's definition:
    /// compaction carries a live queue's definition forward past records of that queue written
    /// after the old definition. Such records go to a provisional entry that the definition
    /// adopts later (or a logged Delete Queue drops); see [`State::finish_replay`].
    fn replay_entry<'s>(
        queues: &'s mut HashMap<u64, QueueEntry>,
        next_queue: &mut u64,
        queue: u64,
    ) -> &'s mut QueueEntry {
        *next_queue = (*next_queue).max(queue + 1);
        queues.entry(queue).or_insert_with(|| QueueEntry {
            account: String::new(),
            name: String::new(),
            metadata: Metadata::default(),
            policies: Vec::new(),
            def_segment: 0,
            defined: false,
            entity: Entity::default(),
            locs: BTreeMap::new(),
        })
    }

    /// Ends a replay: drops records of queues whose definition never came (none should remain,
    /// since a queue's definition is retired only with the queue or after being carried forward).
    pub fn finish_replay(&mut self) {
        // A batch the log ends in the middle of was never acknowledged: none of it stays.
        if let Some((queue, sequences)) = self.batch.incomplete() {
            if let Some(e) = self.queues.get_mut(&queue) {
                for seq in sequences {
                    e.entity.remove(seq);
                    self.live.forget_message(e, seq);
                }
            }
        }
        let orphans: Vec<u64> = self
            .queues
            .iter()
            .filter(|(_, e)| !e.defined)
            .map(|(id, _)| *id)
            .collect();
        for id in orphans {
            tracing::warn!(
                queue = id,
                "records of a queue without a definition dropped at replay"
            );
            self.drop_queue(id);
        }
    }

    /// Drops expired messages that simply go. Where expiry dead-letters, the move is logged
    /// by [`State::housekeep`] instead, so nothing is dropped here.
    fn purge(live: &mut Live, e: &mut QueueEntry, now: Timestamp) {
        if e.entity.main.rules().on_expiry == OnExpiry::DeadLetter {
            return;
        }
        for m in e.entity.main.purge_expired(now) {
            live.forget_message(e, m.sequence);
        }
    }

    fn read_body(log: &Log, loc: &Loc) -> io::Result<Vec<u8>> {
        let mut body = vec![0u8; loc.body_len as usize];
        log.read(loc.pos, MESSAGE_BODY_OFFSET, body.len(), &mut body)?;
        Ok(body)
    }

    fn with_bodies(log: &Log, e: &QueueEntry, mut ms: Vec<Message>) -> io::Result<Vec<Message>> {
        for m in &mut ms {
            let loc = e
                .locs
                .get(&m.sequence)
                .ok_or_else(|| io::Error::other("message without a body location"))?;
            m.body = Self::read_body(log, loc)?;
        }
        Ok(ms)
    }

    // ---- replay ------------------------------------------------------------------------------

    /// Applies one record read back from the log.
    pub fn replay(&mut self, pos: Pos, payload: &[u8]) -> Result<(), String> {
        let rec = record::decode(payload, false).map_err(|e| e.0.to_owned())?;
        match rec {
            Record::QueueDefine(def) => {
                self.next_queue = self.next_queue.max(def.queue + 1);
                match self.queue_id(&def.account, &def.name) {
                    Some(id) if id == def.queue => {
                        if let Some(e) = self.queues.get_mut(&id) {
                            self.live.moved(e.def_segment, pos.segment);
                            e.def_segment = pos.segment;
                            e.metadata = def.metadata;
                            e.policies = def.policies;
                            // A later definition may carry changed rules (`set_rules`).
                            if e.entity.main.rules() != def.rules {
                                e.entity.set_rules(def.rules);
                            }
                            e.entity.main.raise_next_sequence(def.next_sequence);
                        }
                    }
                    other => {
                        if let Some(old) = other {
                            self.drop_queue(old);
                        }
                        match self.queues.get_mut(&def.queue) {
                            // Records of this queue came first: adopt them.
                            Some(e) if !e.defined => {
                                e.defined = true;
                                e.def_segment = pos.segment;
                                e.account = def.account.clone();
                                e.name = def.name.clone();
                                e.metadata = def.metadata;
                                e.policies = def.policies;
                                e.entity.set_rules(def.rules);
                                e.entity.main.raise_next_sequence(def.next_sequence);
                                self.live.hold(pos.segment);
                                self.names
                                    .entry(def.account)
                                    .or_default()
                                    .insert(def.name, def.queue);
                            }
                            _ => self.insert_queue(def, pos.segment),
                        }
                    }
                }
            }
            Record::QueueDelete { queue } => self.drop_queue(queue),
            Record::QueueClear { queue } => {
                let e = Self::replay_entry(&mut self.queues, &mut self.next_queue, queue);
                self.live.forget_all_messages(e);
            }
            Record::Message {
                queue,
                sub,
                message,
                body_len,
            } => {
                let e = Self::replay_entry(&mut self.queues, &mut self.next_queue, queue);
                let loc = Loc { pos, body_len };
                self.live.place_message(e, message.sequence, loc);
                self.batch.note(queue, message.sequence);
                e.entity.place(sub, message);
            }
            Record::Lease {
                queue,
                sequence,
                visible_at,
                dequeue_count,
                receipt,
            } => {
                let e = Self::replay_entry(&mut self.queues, &mut self.next_queue, queue);
                if let Some(m) = e.entity.main.get_by_sequence(sequence) {
                    let mut m = m.clone();
                    m.visible_at = visible_at;
                    m.dequeue_count = dequeue_count;
                    m.receipt = receipt;
                    e.entity.main.restore(m);
                }
            }
            Record::MessageState {
                queue,
                sub,
                mut message,
            } => {
                let e = Self::replay_entry(&mut self.queues, &mut self.next_queue, queue);
                // A state for a message the replay does not know: it died and its record's
                // segment was reclaimed.
                if e.entity.find(message.sequence).is_some() {
                    // The state record carries no body; the size is the body record's.
                    message.size = e.locs.get(&message.sequence).map_or(0, |l| l.body_len);
                    e.entity.place(sub, message);
                }
            }
            Record::MessageDelete { queue, sequence } => {
                let e = Self::replay_entry(&mut self.queues, &mut self.next_queue, queue);
                e.entity.remove(sequence);
                self.live.forget_message(e, sequence);
            }
            Record::Batch { queue, count } => self.batch.begin(queue, count),
            Record::Document {
                account,
                key,
                value,
            } => self.place_document((account, key), value, pos.segment),
        }
        Ok(())
    }

    fn insert_queue(&mut self, def: QueueDef, segment: u32) {
        let mut entity = Entity::new(def.rules);
        entity.main.raise_next_sequence(def.next_sequence);
        self.live.hold(segment);
        self.names
            .entry(def.account.clone())
            .or_default()
            .insert(def.name.clone(), def.queue);
        self.queues.insert(
            def.queue,
            QueueEntry {
                account: def.account,
                name: def.name,
                metadata: def.metadata,
                policies: def.policies,
                def_segment: segment,
                defined: true,
                entity,
                locs: BTreeMap::new(),
            },
        );
    }

    // ---- operations --------------------------------------------------------------------------

    pub fn create_queue(
        &mut self,
        log: &mut Log,
        account: &str,
        name: &str,
        metadata: &Metadata,
        rules: LeaseRules,
    ) -> io::Result<CreateOutcome> {
        if let Some((_, e)) = Self::entry(&self.names, &mut self.queues, account, name) {
            return Ok(CreateOutcome::Existing(e.metadata.clone()));
        }
        self.next_queue = self.next_queue.max(1);
        let def = QueueDef {
            queue: self.next_queue,
            account: account.to_owned(),
            name: name.to_owned(),
            next_sequence: 0,
            metadata: metadata.clone(),
            policies: Vec::new(),
            rules,
        };
        self.next_queue += 1;
        let pos = log.append(|out| record::encode_queue_define(out, &def))?;
        self.insert_queue(def, pos.segment);
        Ok(CreateOutcome::Created)
    }

    pub fn delete_queue(&mut self, log: &mut Log, account: &str, name: &str) -> io::Result<bool> {
        let Some(id) = self.queue_id(account, name) else {
            return Ok(false);
        };
        log.append(|out| record::encode_queue_delete(out, id))?;
        self.drop_queue(id);
        Ok(true)
    }

    pub fn list_queues(
        &self,
        account: &str,
        prefix: &str,
        start_at: Option<&str>,
        limit: usize,
    ) -> Vec<QueueSummary> {
        let Some(names) = self.names.get(account) else {
            return Vec::new();
        };
        let from = match start_at {
            Some(s) if s > prefix => s,
            _ => prefix,
        };
        names
            .range::<str, _>((std::ops::Bound::Included(from), std::ops::Bound::Unbounded))
            .take_while(|(name, _)| name.starts_with(prefix))
            .take(limit)
            .filter_map(|(name, id)| {
                Some(QueueSummary {
                    name: name.clone(),
                    metadata: self.queues.get(id)?.metadata.clone(),
                })
            })
            .collect()
    }

    pub fn queue_info(&mut self, account: &str, name: &str, now: Timestamp) -> Option<QueueInfo> {
        let (_, e) = Self::entry(&self.names, &mut self.queues, account, name)?;
        Self::purge(&mut self.live, e, now);
        Some(QueueInfo {
            metadata: e.metadata.clone(),
            message_count: e.entity.main.len() as u64,
            scheduled_count: e.entity.main.scheduled(),
            dead_letter_count: e.entity.dead_letter.len() as u64,
            size_bytes: e.entity.bytes(),
        })
    }

    /// Rewrites a queue's definition after `change`.
    fn redefine(
        &mut self,
        log: &mut Log,
        account: &str,
        name: &str,
        change: impl FnOnce(&mut QueueEntry),
    ) -> io::Result<bool> {
        let Some((id, e)) = Self::entry(&self.names, &mut self.queues, account, name) else {
            return Ok(false);
        };
        change(e);
        Self::write_definition(&mut self.live, log, id, e)?;
        Ok(true)
    }

    /// Writes queue `id`'s definition as it now stands (after a change, or to carry it
    /// forward); the previous one is no longer needed.
    fn write_definition(
        live: &mut Live,
        log: &mut Log,
        id: u64,
        e: &mut QueueEntry,
    ) -> io::Result<()> {
        let def = e.def(id);
        let pos = log.append(|out| record::encode_queue_define(out, &def))?;
        live.moved(e.def_segment, pos.segment);
        e.def_segment = pos.segment;
        Ok(())
    }

    pub fn set_metadata(
        &mut self,
        log: &mut Log,
        account: &str,
        name: &str,
        metadata: Metadata,
    ) -> io::Result<bool> {
        self.redefine(log, account, name, |e| e.metadata = metadata)
    }

    /// Replaces a queue's metadata if it is still `expected`: `None` if there is no such
    /// queue, `Some(false)` if the metadata was something else.
    pub fn swap_metadata(
        &mut self,
        log: &mut Log,
        account: &str,
        name: &str,
        expected: &Metadata,
        metadata: Metadata,
    ) -> io::Result<Option<bool>> {
        let Some((id, e)) = Self::entry(&self.names, &mut self.queues, account, name) else {
            return Ok(None);
        };
        if e.metadata != *expected {
            return Ok(Some(false));
        }
        e.metadata = metadata;
        Self::write_definition(&mut self.live, log, id, e)?;
        Ok(Some(true))
    }

    pub fn set_rules(
        &mut self,
        log: &mut Log,
        account: &str,
        name: &str,
        rules: LeaseRules,
    ) -> io::Result<bool> {
        // Every start sets a Service Bus queue's rules: write only what changed.
        if let Some(id) = self.queue_id(account, name) {
            if self.queues.get(&id).map(|e| e.entity.main.rules()) == Some(rules) {
                return Ok(true);
            }
        }
        self.redefine(log, account, name, |e| e.entity.set_rules(rules))
    }

    pub fn access_policies(&self, account: &str, name: &str) -> Option<Vec<AccessPolicy>> {
        let id = self.queue_id(account, name)?;
        Some(self.queues.get(&id)?.policies.clone())
    }

    pub fn set_access_policies(
        &mut self,
        log: &mut Log,
        account: &str,
        name: &str,
        policies: Vec<AccessPolicy>,
    ) -> io::Result<bool> {
        self.redefine(log, account, name, |e| e.policies = policies)
    }

    pub fn put(
        &mut self,
        log: &mut Log,
        account: &str,
        name: &str,
        mut message: NewMessage,
    ) -> io::Result<Option<Message>> {
        let Some((id, e)) = Self::entry(&self.names, &mut self.queues, account, name) else {
            return Ok(None);
        };
        let body = std::mem::take(&mut message.body);
        let mut m = e.entity.main.insert(message);
        Self::write_message(&mut self.live, log, id, e, SubQueue::Main, &mut m, body)?;
        Ok(Some(m))
    }

    /// Logs `m` whole with `body` (put, or update with a new body), makes that record the one
    /// recovery needs, and hands the body to `m` for the reply.
    fn write_message(
        live: &mut Live,
        log: &mut Log,
        id: u64,
        e: &mut QueueEntry,
        sub: SubQueue,
        m: &mut Message,
        body: Vec<u8>,
    ) -> io::Result<()> {
        let pos = log.append(|out| record::encode_message(out, id, sub, m, &body))?;
        let loc = Loc {
            pos,
            body_len: body.len() as u32,
        };
        live.place_message(e, m.sequence, loc);
        // The index keeps no body, but knows its size.
        m.size = loc.body_len;
        e.entity.queue_mut(sub).resize(m.sequence, loc.body_len);
        m.body = body;
        Ok(())
    }

    pub fn receive(
        &mut self,
        log: &mut Log,
        account: &str,
        name: &str,
        now: Timestamp,
        grant: &LeaseGrant,
    ) -> io::Result<Option<Vec<Message>>> {
        let Some((id, e)) = Self::entry(&self.names, &mut self.queues, account, name) else {
            return Ok(None);
        };
        Self::purge(&mut self.live, e, now);
        let got = e.entity.main.receive(now, grant);
        for m in &got {
            log.append(|out| record::encode_lease(out, id, m))?;
        }
        Self::with_bodies(log, e, got).map(Some)
    }

    pub fn peek(
        &mut self,
        log: &Log,
        account: &str,
        name: &str,
        now: Timestamp,
        max: usize,
    ) -> io::Result<Option<Vec<Message>>> {
        let Some((_, e)) = Self::entry(&self.names, &mut self.queues, account, name) else {
            return Ok(None);
        };
        Self::purge(&mut self.live, e, now);
        let got = e.entity.main.peek(now, max);
        Self::with_bodies(log, e, got).map(Some)
    }

    pub fn delete_message(
        &mut self,
        log: &mut Log,
        account: &str,
        name: &str,
        message: MessageId,
        receipt: PopReceipt,
        now: Timestamp,
    ) -> io::Result<ReceiptOutcome<()>> {
        let Some((id, e)) = Self::entry(&self.names, &mut self.queues, account, name) else {
            return Ok(ReceiptOutcome::QueueNotFound);
        };
        match e.entity.main.delete(message, receipt, now) {
            Ok(m) => {
                log.append(|out| record::encode_message_delete(out, id, m.sequence))?;
                self.live.forget_message(e, m.sequence);
                Ok(ReceiptOutcome::Done(()))
            }
            Err(r) => Ok(ReceiptOutcome::Rejected(r)),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn update_message(
        &mut self,
        log: &mut Log,
        account: &str,
        name: &str,
        message: MessageId,
        receipt: PopReceipt,
        now: Timestamp,
        mut update: MessageUpdate,
    ) -> io::Result<ReceiptOutcome<Message>> {
        let Some((id, e)) = Self::entry(&self.names, &mut self.queues, account, name) else {
            return Ok(ReceiptOutcome::QueueNotFound);
        };
        let new_body = update.body.take();
        let mut m = match e.entity.main.update(message, receipt, now, update) {
            Ok(m) => m,
            Err(r) => return Ok(ReceiptOutcome::Rejected(r)),
        };
        match new_body {
            Some(body) => {
                Self::write_message(&mut self.live, log, id, e, SubQueue::Main, &mut m, body)?
            }
            None => {
                log.append(|out| record::encode_lease(out, id, &m))?;
                let loc = e
                    .locs
                    .get(&m.sequence)
                    .ok_or_else(|| io::Error::other("message without a body location"))?;
                m.body = Self::read_body(log, loc)?;
            }
        }
        Ok(ReceiptOutcome::Done(m))
    }

    pub fn clear(&mut self, log: &mut Log, account: &str, name: &str) -> io::Result<bool> {
        let Some((id, e)) = Self::entry(&self.names, &mut self.queues, account, name) else {
            return Ok(false);
        };
        log.append(|out| record::encode_queue_clear(out, id))?;
        self.live.forget_all_messages(e);
        Ok(true)
    }

    // ---- Service Bus: locks, settlement, sub-queues --------------------------------------------

    /// Logs what an entity operation changed: a message's new state (including a move between
    /// sub-queues, whose body stays where it was logged), or its deletion.
    fn log_changes(
        live: &mut Live,
        log: &mut Log,
        id: u64,
        e: &mut QueueEntry,
        changes: Changes,
    ) -> io::Result<()> {
        for (sub, m) in &changes.upserted {
            log.append(|out| record::encode_message_state(out, id, *sub, m))?;
        }
        for (_, seq) in changes.removed {
            if changes.upserted.iter().any(|(_, m)| m.sequence == seq) {
                continue; // moved, not gone
            }
            log.append(|out| record::encode_message_delete(out, id, seq))?;
            live.forget_message(e, seq);
        }
        Ok(())
    }

    /// Appends `batch` to queue `account/name`: one record per message, after a batch marker
    /// so that recovery keeps all of them or none. Nothing is written for a full entity.
    pub fn enqueue(
        &mut self,
        log: &mut Log,
        q: QueueRef<'_>,
        batch: Vec<Enqueue>,
        max_bytes: u64,
    ) -> io::Result<Option<Enqueued>> {
        let Some((id, e)) = Self::entry(&self.names, &mut self.queues, q.account, q.queue) else {
            return Ok(None);
        };
        let size_bytes = e.entity.bytes();
        if size_bytes >= max_bytes {
            return Ok(Some(Enqueued::Full { size_bytes }));
        }
        if batch.len() > 1 {
            let n = u32::try_from(batch.len()).unwrap_or(u32::MAX);
            log.append(|out| record::encode_batch(out, id, n))?;
        }
        let mut out = Vec::with_capacity(batch.len());
        for Enqueue {
            mut message,
            scheduled,
        } in batch
        {
            let body = std::mem::take(&mut message.body);
            let mut m = if scheduled {
                let at = message.visible_at;
                e.entity.main.insert_scheduled(message, at)
            } else {
                e.entity.main.insert(message)
            };
            Self::write_message(&mut self.live, log, id, e, SubQueue::Main, &mut m, body)?;
            out.push(m);
        }
        Ok(Some(Enqueued::Stored(out)))
    }

    pub fn lock(
        &mut self,
        log: &mut Log,
        q: QueueRef<'_>,
        sub: SubQueue,
        now: Timestamp,
        grant: &LeaseGrant,
    ) -> io::Result<Option<Vec<Message>>> {
        let Some((id, e)) = Self::entry(&self.names, &mut self.queues, q.account, q.queue) else {
            return Ok(None);
        };
        let (got, changes) = e.entity.lock(sub, now, grant);
        Self::log_changes(&mut self.live, log, id, e, changes)?;
        Self::with_bodies(log, e, got).map(Some)
    }

    pub fn take(
        &mut self,
        log: &mut Log,
        q: QueueRef<'_>,
        sub: SubQueue,
        now: Timestamp,
        max: usize,
    ) -> io::Result<Option<Vec<Message>>> {
        let Some((id, e)) = Self::entry(&self.names, &mut self.queues, q.account, q.queue) else {
            return Ok(None);
        };
        let (got, changes) = e.entity.take(sub, now, max);
        // Bodies first: logging the removals forgets where they are.
        let got = Self::with_bodies(log, e, got)?;
        Self::log_changes(&mut self.live, log, id, e, changes)?;
        Ok(Some(got))
    }

    pub fn settle(
        &mut self,
        log: &mut Log,
        q: QueueRef<'_>,
        sub: SubQueue,
        token: PopReceipt,
        now: Timestamp,
        how: Settlement,
    ) -> io::Result<Option<Result<Settled, SettleError>>> {
        let Some((id, e)) = Self::entry(&self.names, &mut self.queues, q.account, q.queue) else {
            return Ok(None);
        };
        match e.entity.settle(sub, token, now, how) {
            Ok((settled, changes)) => {
                Self::log_changes(&mut self.live, log, id, e, changes)?;
                Ok(Some(Ok(settled)))
            }
            Err(err) => Ok(Some(Err(err))),
        }
    }

    pub fn browse(
        &mut self,
        log: &Log,
        q: QueueRef<'_>,
        sub: SubQueue,
        from: u64,
        max: usize,
        now: Timestamp,
    ) -> io::Result<Option<Vec<Message>>> {
        let Some((_, e)) = Self::entry(&self.names, &mut self.queues, q.account, q.queue) else {
            return Ok(None);
        };
        let got = e.entity.queue(sub).browse(from, max, now);
        Self::with_bodies(log, e, got).map(Some)
    }

    pub fn lock_deferred(
        &mut self,
        log: &mut Log,
        q: QueueRef<'_>,
        sub: SubQueue,
        sequences: &[u64],
        now: Timestamp,
        grant: &LeaseGrant,
    ) -> io::Result<Option<Vec<Message>>> {
        let Some((id, e)) = Self::entry(&self.names, &mut self.queues, q.account, q.queue) else {
            return Ok(None);
        };
        let got = e.entity.queue_mut(sub).lock_deferred(sequences, now, grant);
        let changes = Changes {
            upserted: got.iter().map(|m| (sub, m.clone())).collect(),
            removed: Vec::new(),
        };
        Self::log_changes(&mut self.live, log, id, e, changes)?;
        Self::with_bodies(log, e, got).map(Some)
    }

    pub fn cancel_scheduled(
        &mut self,
        log: &mut Log,
        q: QueueRef<'_>,
        sequences: &[u64],
        now: Timestamp,
    ) -> io::Result<Option<Vec<u64>>> {
        let Some((id, e)) = Self::entry(&self.names, &mut self.queues, q.account, q.queue) else {
            return Ok(None);
        };
        let gone: Vec<u64> = sequences
            .iter()
            .copied()
            .filter(|seq| e.entity.main.cancel_scheduled(*seq, now).is_some())
            .collect();
        let changes = Changes {
            upserted: Vec::new(),
            removed: gone.iter().map(|seq| (SubQueue::Main, *seq)).collect(),
        };
        Self::log_changes(&mut self.live, log, id, e, changes)?;
        Ok(Some(gone))
    }

    /// Lapsed locks and expiry in every queue, logged; returns how many messages changed.
    pub fn housekeep(&mut self, log: &mut Log, now: Timestamp, budget: usize) -> io::Result<usize> {
        let mut changed = 0;
        for (&id, e) in self.queues.iter_mut() {
            let changes = e.entity.housekeep(now, budget);
            changed += changes.upserted.len() + changes.removed.len();
            Self::log_changes(&mut self.live, log, id, e, changes)?;
        }
        Ok(changed)
    }

    pub fn document(&self, account: &str, key: &str) -> Option<Vec<u8>> {
        self.documents
            .get(&(account.to_owned(), key.to_owned()))
            .map(|d| d.value.clone())
    }

    pub fn set_document(
        &mut self,
        log: &mut Log,
        account: &str,
        key: &str,
        value: Vec<u8>,
    ) -> io::Result<()> {
        let pos = log.append(|out| record::encode_document(out, account, key, &value))?;
        self.place_document((account.to_owned(), key.to_owned()), value, pos.segment);
        Ok(())
    }

    /// Document `key`'s latest value, written in `segment`.
    fn place_document(&mut self, key: (String, String), value: Vec<u8>, segment: u32) {
        self.live.hold(segment);
        if let Some(old) = self.documents.insert(key, Document { value, segment }) {
            self.live.release(old.segment);
        }
    }

    /// Writes document `key` again, its value unchanged (to carry it forward).
    fn rewrite_document(
        live: &mut Live,
        log: &mut Log,
        key: &(String, String),
        d: &mut Document,
    ) -> io::Result<()> {
        let pos = log.append(|out| record::encode_document(out, &key.0, &key.1, &d.value))?;
        live.moved(d.segment, pos.segment);
        d.segment = pos.segment;
        Ok(())
    }

    pub fn stats(&self, log: &Log) -> Stats {
        Stats {
            queues: self.queues.len() as u64,
            messages: self
                .queues
                .values()
                .map(|e| (e.entity.main.len() + e.entity.dead_letter.len()) as u64)
                .sum(),
            segments: log.segment_numbers().count() as u64,
            live_message_bytes: self.live.message_bytes,
            compaction_reads: self.compaction_reads,
        }
    }

    // ---- housekeeping ------------------------------------------------------------------------

    /// Drops expired messages of every queue.
    pub fn purge_all(&mut self, now: Timestamp) {
        for e in self.queues.values_mut() {
            Self::purge(&mut self.live, e, now);
        }
    }

    /// Moves up to `budget` records out of the oldest segment when the log holds much more than
    /// what is live. Returns whether compaction work remains.
    /// The segment compaction should read next, if any: the oldest, when a few stragglers pin
    /// it or the log holds far more than is live. Reading it happens outside the store lock.
    pub fn compaction_candidate(&self, log: &Log) -> Option<u32> {
        if self.compacting.is_some() {
            return None;
        }
        let segments: Vec<u32> = log.segment_numbers().collect();
        let &oldest = segments.first()?;
        let size = log.segment_size().max(1);
        let needed = self.live.message_bytes.div_ceil(size);
        let sealed = segments.len() as u64 - 1;
        // Stragglers pin the oldest segment only once a second sealed segment exists: right
        // after sealing, a FIFO queue's last messages there are usually about to be consumed,
        // and reading the segment back for them would be wasted.
        let pinned = sealed >= 2 && self.live.bytes(oldest) <= size / 16;
        let bloated = sealed >= 4 && sealed > 2 * needed + 2;
        (oldest != log.current_segment() && self.live.count(oldest) > 0 && (pinned || bloated))
            .then_some(oldest)
    }

    /// Starts compacting `segment` with its records, read by [`crate::log::SegmentReader::read`].
    pub fn start_compaction(&mut self, log: &Log, segment: u32, records: Vec<(Pos, Vec<u8>)>) {
        if self.compacting.is_none()
            && segment != log.current_segment()
            && log.segment_numbers().any(|n| n == segment)
        {
            self.compacting = Some((segment, records.into()));
            self.compaction_reads += 1;
        }
    }

    /// When the oldest sealed segment holds no live message, only queue definitions and
    /// documents (which the state holds whole), appends those again from memory, so the
    /// segment can go without being read back. In a FIFO queue this is the usual case: every
    /// message of a segment is consumed long before the queue's definition, written once, is
    /// rewritten, and reading 32 MiB to find that one record cost ≈50 ms.
    pub fn carry_forward_from_memory(&mut self, log: &mut Log) -> io::Result<()> {
        let Some(oldest) = log.segment_numbers().next() else {
            return Ok(());
        };
        if oldest == log.current_segment()
            || self.compacting.is_some()
            || self.live.count(oldest) == 0
            || self.live.bytes(oldest) > 0
        {
            return Ok(());
        }
        // Each record goes only where it fits without creating a file; on a full disk the
        // rest waits for the next pass.
        let fits = |log: &Log, encode: &dyn Fn(&mut Vec<u8>)| {
            let mut scratch = Vec::new();
            encode(&mut scratch);
            log.has_room(crate::log::frame_len(scratch.len()))
        };
        for (&id, e) in self.queues.iter_mut() {
            if e.def_segment == oldest
                && fits(log, &|out| record::encode_queue_define(out, &e.def(id)))
            {
                Self::write_definition(&mut self.live, log, id, e)?;
            }
        }
        for (key, d) in self.documents.iter_mut() {
            if d.segment == oldest
                && fits(log, &|out| {
                    record::encode_document(out, &key.0, &key.1, &d.value)
                })
            {
                Self::rewrite_document(&mut self.live, log, key, d)?;
            }
        }
        Ok(())
    }

    /// Carries forward up to `budget` records of the segment being compacted. Returns whether
    /// compaction work remains.
    pub fn compact(&mut self, log: &mut Log, budget: usize) -> io::Result<bool> {
        let Some((segment, mut records)) = self.compacting.take() else {
            return Ok(false);
        };
        let mut done = 0;
        while done < budget {
            let Some((pos, payload)) = records.pop_front() else {
                break;
            };
            // On a full disk, carry forward what fits and try the rest later, rather than
            // fail half-way through a record.
            if !log.has_room(crate::log::frame_len(payload.len())) {
                records.push_front((pos, payload));
                self.compacting = Some((segment, records));
                return Ok(false);
            }
            done += 1;
            self.carry_forward(log, pos, &payload)?;
        }
        if !records.is_empty() {
            self.compacting = Some((segment, records));
            return Ok(true);
        }
        // Every record of the segment has been looked at, so nothing in it is needed any more.
        let left = self.live.records.insert(segment, (0, 0)).map_or(0, |r| r.0);
        if left > 0 {
            tracing::warn!(segment, left, "live-record count was off after compaction");
        }
        Ok(false)
    }

    /// Appends again a record from a segment being compacted, if recovery still needs it.
    fn carry_forward(&mut self, log: &mut Log, pos: Pos, payload: &[u8]) -> io::Result<()> {
        match record::decode(payload, false).map_err(io_err)? {
            Record::QueueDefine(def) => {
                if let Some(e) = self.queues.get_mut(&def.queue) {
                    if e.def_segment == pos.segment {
                        Self::write_definition(&mut self.live, log, def.queue, e)?;
                    }
                }
            }
            Record::Message {
                queue,
                message,
                body_len,
                ..
            } => {
                let Some(e) = self.queues.get_mut(&queue) else {
                    return Ok(());
                };
                let Some(loc) = e.locs.get(&message.sequence).copied() else {
                    return Ok(());
                };
                if loc.pos != pos {
                    return Ok(());
                }
                let Some((sub, current)) = e.entity.find(message.sequence) else {
                    return Ok(());
                };
                let body = &payload[MESSAGE_BODY_OFFSET..MESSAGE_BODY_OFFSET + body_len as usize];
                let new =
                    log.append(|out| record::encode_message(out, queue, sub, current, body))?;
                let moved = Loc {
                    pos: new,
                    body_len: loc.body_len,
                };
                self.live.place_message(e, message.sequence, moved);
            }
            Record::Document { account, key, .. } => {
                let key = (account, key);
                if let Some(d) = self.documents.get_mut(&key) {
                    if d.segment == pos.segment {
                        Self::rewrite_document(&mut self.live, log, &key, d)?;
                    }
                }
            }
            // Effects on records that are carried forward whole: never needed on their own.
            Record::QueueDelete { .. }
            | Record::QueueClear { .. }
            | Record::Lease { .. }
            | Record::MessageState { .. }
            | Record::Batch { .. }
            | Record::MessageDelete { .. } => {}
        }
        Ok(())
    }

    /// Retires the oldest segments while nothing live is left in them.
    ///
    /// A segment's records die when newer records supersede them (a carried-forward copy, a
    /// redefinition, a delete), and those newer records may not be durable yet. So a segment
    /// found dead is only noted, with the log's end at that moment, and retired once the
    /// durable end (`synced_end`, ordered like [`Log::end`]) has passed that point.
    pub fn retire_dead(&mut self, log: &mut Log, synced_end: u64) -> Vec<crate::log::Retired> {
        let mut retired = Vec::new();
        loop {
            let Some(oldest) = log.segment_numbers().next() else {
                break;
            };
            if oldest == log.current_segment()
                || self.live.count(oldest) > 0
                || self.compacting.as_ref().is_some_and(|(s, _)| *s == oldest)
            {
                break;
            }
            match self.dead_since.get(&oldest) {
                Some(&end) if synced_end >= end => {}
                Some(_) => break,
                None => {
                    self.dead_since.insert(oldest, log.end());
                    break;
                }
            }
            if let Some(r) = log.retire_oldest() {
                retired.push(r);
            }
            self.live.records.remove(&oldest);
            self.dead_since.remove(&oldest);
        }
        retired
    }
}
