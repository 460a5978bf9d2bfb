//! The queue operations as redb reads and writes.
//!
//! Write operations run inside the executor's one write transaction per batch, through
//! [`Tables`]; read operations run in a read transaction on the caller's thread, through the
//! generic helpers that take any `ReadableTable`. Every operation touches only the rows of the
//! queue it names, by key ranges, so its cost is O(log n) in that queue's backlog plus the rows
//! it returns.

use std::collections::HashSet;

use hematite_engine::index::{LeaseGrant, MessageUpdate, ReceiptError};
use hematite_engine::model::{MessageState, NewMessage};
use hematite_engine::store::{CreateOutcome, ReceiptOutcome};
use hematite_engine::{
    AccessPolicy, Message, MessageId, Metadata, PopReceipt, QueueInfo, QueueSummary, Timestamp,
};
use redb::{ReadableTable, Table, WriteTransaction};

use crate::codec::{decode_message, decode_queue, encode_message, encode_queue, QueueRecord};
use crate::error::DbError;
use crate::schema::*;

/// Rows of expired messages or reclaimed queues that one housekeeping pass may delete; it keeps
/// any single batch short, so background work never stalls requests for long.
pub const HOUSEKEEPING_BUDGET: usize = 1000;

/// Expired rows one receive may delete on its way to visible messages.
const RECEIVE_PURGE_BUDGET: usize = 256;

pub struct Tables<'t> {
    pub meta: Table<'t, &'static str, u64>,
    pub queues: Table<'t, (&'static str, &'static str), &'static [u8]>,
    pub state: Table<'t, u64, (u64, u64)>,
    pub messages: Table<'t, (u64, u64), &'static [u8]>,
    pub bodies: Table<'t, (u64, u64), &'static [u8]>,
    pub visibility: Table<'t, (u64, i64, u64), ()>,
    pub expiry: Table<'t, (u64, i64, u64), ()>,
    pub ids: Table<'t, (u64, u128), u64>,
    pub documents: Table<'t, (&'static str, &'static str), &'static [u8]>,
    pub doomed: Table<'t, u64, ()>,
}

impl<'t> Tables<'t> {
    pub fn open(txn: &'t WriteTransaction) -> Result<Self, DbError> {
        Ok(Tables {
            meta: txn.open_table(META)?,
            queues: txn.open_table(QUEUES)?,
            state: txn.open_table(QUEUE_STATE)?,
            messages: txn.open_table(MESSAGES)?,
            bodies: txn.open_table(BODIES)?,
            visibility: txn.open_table(VISIBILITY)?,
            expiry: txn.open_table(EXPIRY)?,
            ids: txn.open_table(IDS)?,
            documents: txn.open_table(DOCUMENTS)?,
            doomed: txn.open_table(DOOMED)?,
        })
    }
}

// ---- shared read helpers ----

pub fn queue_record(
    queues: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    account: &str,
    queue: &str,
) -> Result<Option<QueueRecord>, DbError> {
    match queues.get((account, queue))? {
        Some(v) => Ok(Some(decode_queue(v.value())?)),
        None => Ok(None),
    }
}

fn message(
    messages: &impl ReadableTable<(u64, u64), &'static [u8]>,
    qid: u64,
    seq: u64,
) -> Result<Option<Message>, DbError> {
    match messages.get((qid, seq))? {
        Some(v) => Ok(Some(decode_message(seq, v.value())?)),
        None => Ok(None),
    }
}

fn body(
    bodies: &impl ReadableTable<(u64, u64), &'static [u8]>,
    qid: u64,
    seq: u64,
) -> Result<Vec<u8>, DbError> {
    match bodies.get((qid, seq))? {
        Some(v) => Ok(v.value().to_vec()),
        None => Err(DbError::Corrupt(format!("message {qid}/{seq} has no body"))),
    }
}

/// Visible, unexpired messages in receive order, at most `max`.
pub fn peek(
    visibility: &impl ReadableTable<(u64, i64, u64), ()>,
    messages: &impl ReadableTable<(u64, u64), &'static [u8]>,
    bodies: &impl ReadableTable<(u64, u64), &'static [u8]>,
    qid: u64,
    now: Timestamp,
    max: usize,
) -> Result<Vec<Message>, DbError> {
    let mut out = Vec::new();
    for entry in visibility.range((qid, i64::MIN, 0)..=(qid, now.as_millis(), u64::MAX))? {
        if out.len() >= max {
            break;
        }
        let (key, _) = entry?;
        let (_, _, seq) = key.value();
        let Some(mut m) = message(messages, qid, seq)? else {
            return Err(DbError::Corrupt(format!(
                "visibility entry {qid}/{seq} has no message"
            )));
        };
        if m.is_expired(now) {
            continue;
        }
        m.body = body(bodies, qid, seq)?;
        out.push(m);
    }
    Ok(out)
}

/// Metadata and the count of unexpired messages: the stored count minus expired rows not yet
/// reclaimed, so expired messages never count.
pub fn queue_info(
    record: &QueueRecord,
    state: &impl ReadableTable<u64, (u64, u64)>,
    expiry: &impl ReadableTable<(u64, i64, u64), ()>,
    now: Timestamp,
) -> Result<QueueInfo, DbError> {
    let (_, count) = state.get(record.id)?.map(|v| v.value()).unwrap_or((0, 0));
    let mut expired = 0u64;
    for entry in expiry.range((record.id, i64::MIN, 0)..=(record.id, now.as_millis(), u64::MAX))? {
        entry?;
        expired += 1;
    }
    Ok(QueueInfo {
        metadata: record.metadata.clone(),
        message_count: count.saturating_sub(expired),
    })
}

pub fn list_queues(
    queues: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    account: &str,
    prefix: &str,
    start_at: Option<&str>,
    limit: usize,
) -> Result<Vec<QueueSummary>, DbError> {
    let from = match start_at {
        Some(s) if s > prefix => s,
        _ => prefix,
    };
    let mut out = Vec::new();
    for entry in queues.range((account, from)..)? {
        let (key, value) = entry?;
        let (acc, name) = key.value();
        if acc != account || !name.starts_with(prefix) || out.len() >= limit {
            break;
        }
        out.push(QueueSummary {
            name: name.to_owned(),
            metadata: decode_queue(value.value())?.metadata,
        });
    }
    Ok(out)
}

// ---- writes ----

impl Tables<'_> {
    fn put_record(&mut self, account: &str, queue: &str, r: &QueueRecord) -> Result<(), DbError> {
        self.queues
            .insert((account, queue), encode_queue(r).as_slice())?;
        Ok(())
    }

    fn next_queue_id(&mut self) -> Result<u64, DbError> {
        let id = self.meta.get(META_NEXT_QUEUE_ID)?.map_or(1, |v| v.value());
        self.meta.insert(META_NEXT_QUEUE_ID, id + 1)?;
        Ok(id)
    }

    fn state_of(&self, qid: u64) -> Result<(u64, u64), DbError> {
        Ok(self.state.get(qid)?.map_or((0, 0), |v| v.value()))
    }

    pub fn create_queue(
        &mut self,
        account: &str,
        queue: &str,
        metadata: &Metadata,
    ) -> Result<CreateOutcome, DbError> {
        if let Some(existing) = queue_record(&self.queues, account, queue)? {
            return Ok(CreateOutcome::Existing(existing.metadata));
        }
        let id = self.next_queue_id()?;
        self.state.insert(id, (0, 0))?;
        self.put_record(
            account,
            queue,
            &QueueRecord {
                id,
                metadata: metadata.clone(),
                policies: Vec::new(),
            },
        )?;
        Ok(CreateOutcome::Created)
    }

    pub fn delete_queue(&mut self, account: &str, queue: &str) -> Result<bool, DbError> {
        let Some(record) = queue_record(&self.queues, account, queue)? else {
            return Ok(false);
        };
        self.queues.remove((account, queue))?;
        self.doomed.insert(record.id, ())?;
        Ok(true)
    }

    pub fn update_record(
        &mut self,
        account: &str,
        queue: &str,
        change: impl FnOnce(&mut QueueRecord),
    ) -> Result<bool, DbError> {
        let Some(mut record) = queue_record(&self.queues, account, queue)? else {
            return Ok(false);
        };
        change(&mut record);
        self.put_record(account, queue, &record)?;
        Ok(true)
    }

    pub fn set_metadata(
        &mut self,
        account: &str,
        queue: &str,
        metadata: Metadata,
    ) -> Result<bool, DbError> {
        self.update_record(account, queue, |r| r.metadata = metadata)
    }

    pub fn set_policies(
        &mut self,
        account: &str,
        queue: &str,
        policies: Vec<AccessPolicy>,
    ) -> Result<bool, DbError> {
        self.update_record(account, queue, |r| r.policies = policies)
    }

    /// Clear Messages: the queue gets a fresh id (keeping its sequence counter), and the old
    /// id's rows are reclaimed in the background. O(1) whatever the backlog.
    pub fn clear(&mut self, account: &str, queue: &str) -> Result<bool, DbError> {
        let Some(mut record) = queue_record(&self.queues, account, queue)? else {
            return Ok(false);
        };
        let (next_seq, _) = self.state_of(record.id)?;
        let old = record.id;
        record.id = self.next_queue_id()?;
        self.state.insert(record.id, (next_seq, 0))?;
        self.put_record(account, queue, &record)?;
        self.doomed.insert(old, ())?;
        Ok(true)
    }

    pub fn put(
        &mut self,
        account: &str,
        queue: &str,
        m: NewMessage,
    ) -> Result<Option<Message>, DbError> {
        let Some(record) = queue_record(&self.queues, account, queue)? else {
            return Ok(None);
        };
        let qid = record.id;
        let (seq, count) = self.state_of(qid)?;
        let message = m.into_message(seq);
        // The state record carries no body: that goes to its own table.
        self.messages
            .insert((qid, seq), encode_message(&message).as_slice())?;
        self.bodies.insert((qid, seq), message.body.as_slice())?;
        self.visibility
            .insert((qid, message.visible_at.as_millis(), seq), ())?;
        self.expiry
            .insert((qid, message.expires_at.as_millis(), seq), ())?;
        self.ids.insert((qid, message.id.0), seq)?;
        self.state.insert(qid, (seq + 1, count + 1))?;
        Ok(Some(message))
    }

    /// Deletes a message's rows from every table that holds one.
    fn remove_rows(&mut self, qid: u64, m: &Message) -> Result<(), DbError> {
        let seq = m.sequence;
        self.messages.remove((qid, seq))?;
        self.bodies.remove((qid, seq))?;
        if m.state == MessageState::Active {
            self.visibility
                .remove((qid, m.visible_at.as_millis(), seq))?;
        }
        self.expiry.remove((qid, m.expires_at.as_millis(), seq))?;
        self.ids.remove((qid, m.id.0))?;
        Ok(())
    }

    /// Deletes a live queue's message and counts it out.
    fn remove_message(&mut self, qid: u64, m: &Message) -> Result<(), DbError> {
        self.remove_rows(qid, m)?;
        let (next, count) = self.state_of(qid)?;
        self.state.insert(qid, (next, count.saturating_sub(1)))?;
        Ok(())
    }

    /// Deletes up to `budget` expired messages of a queue; returns how many.
    fn purge_expired(&mut self, qid: u64, now: Timestamp, budget: usize) -> Result<usize, DbError> {
        let keys: Vec<u64> = self
            .expiry
            .range((qid, i64::MIN, 0)..=(qid, now.as_millis(), u64::MAX))?
            .take(budget)
            .map(|e| e.map(|(k, _)| k.value().2))
            .collect::<Result<_, _>>()?;
        for seq in &keys {
            if let Some(m) = message(&self.messages, qid, *seq)? {
                self.remove_message(qid, &m)?;
            } else {
                return Err(DbError::Corrupt(format!(
                    "expiry entry {qid}/{seq} has no message"
                )));
            }
        }
        Ok(keys.len())
    }

    pub fn receive(
        &mut self,
        account: &str,
        queue: &str,
        now: Timestamp,
        grant: &LeaseGrant,
    ) -> Result<Option<Vec<Message>>, DbError> {
        let Some(record) = queue_record(&self.queues, account, queue)? else {
            return Ok(None);
        };
        let qid = record.id;
        self.purge_expired(qid, now, RECEIVE_PURGE_BUDGET)?;
        let want = grant.receipts.len();
        let mut out = Vec::with_capacity(want);
        let mut leased = HashSet::new();
        let mut from = (qid, i64::MIN, 0u64);
        while out.len() < want {
            let chunk: Vec<(i64, u64)> = self
                .visibility
                .range(from..=(qid, now.as_millis(), u64::MAX))?
                .take(want - out.len() + 8)
                .map(|e| {
                    e.map(|(k, _)| {
                        let (_, v, s) = k.value();
                        (v, s)
                    })
                })
                .collect::<Result<_, _>>()?;
            let Some(&(last_v, last_s)) = chunk.last() else {
                break;
            };
            for (vis, seq) in chunk {
                if out.len() >= want {
                    break;
                }
                if !leased.insert(seq) {
                    continue;
                }
                let Some(mut m) = message(&self.messages, qid, seq)? else {
                    return Err(DbError::Corrupt(format!(
                        "visibility entry {qid}/{seq} has no message"
                    )));
                };
                if m.is_expired(now) {
                    // Past the purge budget: leave it to housekeeping, but never hand it out.
                    continue;
                }
                let receipt = grant.receipts[out.len()];
                self.visibility.remove((qid, vis, seq))?;
                self.visibility
                    .insert((qid, grant.visible_until.as_millis(), seq), ())?;
                m.visible_at = grant.visible_until;
                m.receipt = receipt;
                m.dequeue_count = m.dequeue_count.saturating_add(1);
                self.messages
                    .insert((qid, seq), encode_message(&m).as_slice())?;
                m.body = body(&self.bodies, qid, seq)?;
                out.push(m);
            }
            match last_s.checked_add(1) {
                Some(s) => from = (qid, last_v, s),
                None => break,
            }
        }
        Ok(Some(out))
    }

    fn checked(
        &self,
        qid: u64,
        id: MessageId,
        receipt: PopReceipt,
        now: Timestamp,
    ) -> Result<Result<Message, ReceiptError>, DbError> {
        let Some(seq) = self.ids.get((qid, id.0))?.map(|v| v.value()) else {
            return Ok(Err(ReceiptError::MessageNotFound));
        };
        let Some(m) = message(&self.messages, qid, seq)? else {
            return Err(DbError::Corrupt(format!(
                "id entry {qid}/{seq} has no message"
            )));
        };
        if m.is_expired(now) {
            return Ok(Err(ReceiptError::MessageNotFound));
        }
        if m.receipt != receipt {
            return Ok(Err(ReceiptError::ReceiptMismatch));
        }
        Ok(Ok(m))
    }

    pub fn delete_message(
        &mut self,
        account: &str,
        queue: &str,
        id: MessageId,
        receipt: PopReceipt,
        now: Timestamp,
    ) -> Result<ReceiptOutcome<()>, DbError> {
        let Some(record) = queue_record(&self.queues, account, queue)? else {
            return Ok(ReceiptOutcome::QueueNotFound);
        };
        match self.checked(record.id, id, receipt, now)? {
            Ok(m) => {
                self.remove_message(record.id, &m)?;
                Ok(ReceiptOutcome::Done(()))
            }
            Err(e) => Ok(ReceiptOutcome::Rejected(e)),
        }
    }

    pub fn update_message(
        &mut self,
        account: &str,
        queue: &str,
        id: MessageId,
        receipt: PopReceipt,
        now: Timestamp,
        update: MessageUpdate,
    ) -> Result<ReceiptOutcome<Message>, DbError> {
        let Some(record) = queue_record(&self.queues, account, queue)? else {
            return Ok(ReceiptOutcome::QueueNotFound);
        };
        let qid = record.id;
        let mut m = match self.checked(qid, id, receipt, now)? {
            Ok(m) => m,
            Err(e) => return Ok(ReceiptOutcome::Rejected(e)),
        };
        let seq = m.sequence;
        if m.state == MessageState::Active {
            self.visibility
                .remove((qid, m.visible_at.as_millis(), seq))?;
            self.visibility
                .insert((qid, update.visible_at.as_millis(), seq), ())?;
        }
        m.visible_at = update.visible_at;
        m.receipt = update.receipt;
        self.messages
            .insert((qid, seq), encode_message(&m).as_slice())?;
        m.body = match update.body {
            Some(b) => {
                self.bodies.insert((qid, seq), b.as_slice())?;
                b
            }
            None => body(&self.bodies, qid, seq)?,
        };
        Ok(ReceiptOutcome::Done(m))
    }

    pub fn set_document(&mut self, account: &str, key: &str, value: &[u8]) -> Result<(), DbError> {
        self.documents.insert((account, key), value)?;
        Ok(())
    }

    /// One bounded pass of background work: reclaim rows of cleared or deleted queues, then
    /// delete expired messages. Returns the rows it deleted (0 when there is nothing to do).
    pub fn housekeeping(&mut self, now: Timestamp, budget: usize) -> Result<usize, DbError> {
        let mut done = 0;
        let doomed: Vec<u64> = self
            .doomed
            .iter()?
            .take(4)
            .map(|e| e.map(|(k, _)| k.value()))
            .collect::<Result<_, _>>()?;
        for qid in doomed {
            if done >= budget {
                return Ok(done);
            }
            let n = self.reclaim(qid, budget - done)?;
            done += n;
            if n < budget {
                // Everything of that id is gone.
                self.doomed.remove(qid)?;
                self.state.remove(qid)?;
            }
        }
        let live: Vec<u64> = self
            .state
            .iter()?
            .map(|e| e.map(|(k, v)| (k.value(), v.value().1)))
            .filter(|e| e.as_ref().map_or(true, |(_, count)| *count > 0))
            .map(|e| e.map(|(k, _)| k))
            .collect::<Result<_, _>>()?;
        for qid in live {
            if done >= budget {
                break;
            }
            done += self.purge_expired(qid, now, budget - done)?;
        }
        Ok(done)
    }

    /// Deletes up to `budget` messages of a dead queue id, with all their index rows.
    fn reclaim(&mut self, qid: u64, budget: usize) -> Result<usize, DbError> {
        let batch: Vec<(u64, Vec<u8>)> = self
            .messages
            .range((qid, 0)..=(qid, u64::MAX))?
            .take(budget)
            .map(|e| e.map(|(k, v)| (k.value().1, v.value().to_vec())))
            .collect::<Result<_, _>>()?;
        for (seq, bytes) in &batch {
            // A dead id has no count to keep.
            self.remove_rows(qid, &decode_message(*seq, bytes)?)?;
        }
        Ok(batch.len())
    }
}
