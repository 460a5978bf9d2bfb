//! The in-memory store: nothing persists, everything is simple.
//!
//! It serves `--in-memory` runs and is the executable specification the conformance suite and the
//! model test pin down. Each queue has its own lock, so traffic on one queue never waits for
//! another; the account map is behind a read-write lock taken only briefly.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use crate::index::Entity;
use crate::model::{
    AccessPolicy, Message, MessageId, Metadata, NewMessage, PopReceipt, QueueInfo, QueueRef,
    QueueSummary,
};
use crate::store::{
    CreateOutcome, Enqueue, Enqueued, LeaseGrant, LeaseRules, MessageUpdate, OnExpiry,
    QueueSettings, ReceiptOutcome, SettleError, Settled, Settlement, Store, StoreFuture, SubQueue,
};
use crate::time::Timestamp;

#[derive(Debug, Default)]
struct QueueEntry {
    metadata: Metadata,
    policies: Vec<AccessPolicy>,
    /// The queue's messages and its dead-letter sub-queue.
    entity: Entity,
}

#[derive(Debug, Default)]
struct Account {
    queues: BTreeMap<String, Arc<Mutex<QueueEntry>>>,
    documents: HashMap<String, Vec<u8>>,
}

#[derive(Debug, Default)]
pub struct MemoryStore {
    accounts: RwLock<HashMap<String, Account>>,
}

/// A poisoned lock means a panic mid-operation elsewhere; the data is still structurally sound
/// (every mutation here is a few field writes), so keep serving rather than cascade the panic.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn queue(&self, q: QueueRef<'_>) -> Option<Arc<Mutex<QueueEntry>>> {
        let accounts = self.accounts.read().unwrap_or_else(|e| e.into_inner());
        accounts.get(q.account)?.queues.get(q.queue).cloned()
    }

    fn with_queue<T>(&self, q: QueueRef<'_>, f: impl FnOnce(&mut QueueEntry) -> T) -> Option<T> {
        let entry = self.queue(q)?;
        let mut guard = lock(&entry);
        Some(f(&mut guard))
    }
}

impl Store for MemoryStore {
    fn create_queue<'a>(
        &'a self,
        q: QueueRef<'a>,
        metadata: &'a Metadata,
        settings: QueueSettings,
    ) -> StoreFuture<'a, CreateOutcome> {
        Box::pin(async move {
            let mut accounts = self.accounts.write().unwrap_or_else(|e| e.into_inner());
            let account = accounts.entry(q.account.to_owned()).or_default();
            if let Some(existing) = account.queues.get(q.queue) {
                return Ok(CreateOutcome::Existing(lock(existing).metadata.clone()));
            }
            let entry = QueueEntry {
                metadata: metadata.clone(),
                policies: Vec::new(),
                entity: Entity::new(settings.rules),
            };
            account
                .queues
                .insert(q.queue.to_owned(), Arc::new(Mutex::new(entry)));
            Ok(CreateOutcome::Created)
        })
    }

    fn delete_queue<'a>(&'a self, q: QueueRef<'a>) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut accounts = self.accounts.write().unwrap_or_else(|e| e.into_inner());
            Ok(accounts
                .get_mut(q.account)
                .and_then(|a| a.queues.remove(q.queue))
                .is_some())
        })
    }

    fn list_queues<'a>(
        &'a self,
        account: &'a str,
        prefix: &'a str,
        start_at: Option<&'a str>,
        limit: usize,
    ) -> StoreFuture<'a, Vec<QueueSummary>> {
        Box::pin(async move {
            let accounts = self.accounts.read().unwrap_or_else(|e| e.into_inner());
            let Some(acc) = accounts.get(account) else {
                return Ok(Vec::new());
            };
            let from = match start_at {
                Some(s) if s > prefix => s,
                _ => prefix,
            };
            Ok(acc
                .queues
                .range::<str, _>((std::ops::Bound::Included(from), std::ops::Bound::Unbounded))
                .take_while(|(name, _)| name.starts_with(prefix))
                .take(limit)
                .map(|(name, e)| QueueSummary {
                    name: name.clone(),
                    metadata: lock(e).metadata.clone(),
                })
                .collect())
        })
    }

    fn queue_info<'a>(
        &'a self,
        q: QueueRef<'a>,
        now: Timestamp,
    ) -> StoreFuture<'a, Option<QueueInfo>> {
        Box::pin(async move {
            Ok(self.with_queue(q, |e| {
                // Expiry that dead-letters is housekeeping's: purging here would delete.
                if e.entity.main.rules().on_expiry != OnExpiry::DeadLetter {
                    e.entity.main.purge_expired(now);
                }
                QueueInfo {
                    metadata: e.metadata.clone(),
                    message_count: e.entity.main.len() as u64,
                    scheduled_count: e.entity.main.scheduled(),
                    dead_letter_count: e.entity.dead_letter.len() as u64,
                    size_bytes: e.entity.bytes(),
                }
            }))
        })
    }

    fn set_metadata<'a>(&'a self, q: QueueRef<'a>, metadata: Metadata) -> StoreFuture<'a, bool> {
        Box::pin(async move { Ok(self.with_queue(q, |e| e.metadata = metadata).is_some()) })
    }

    fn swap_metadata<'a>(
        &'a self,
        q: QueueRef<'a>,
        expected: Metadata,
        metadata: Metadata,
    ) -> StoreFuture<'a, Option<bool>> {
        Box::pin(async move {
            Ok(self.with_queue(q, |e| {
                let same = e.metadata == expected;
                if same {
                    e.metadata = metadata;
                }
                same
            }))
        })
    }

    fn set_rules<'a>(&'a self, q: QueueRef<'a>, rules: LeaseRules) -> StoreFuture<'a, bool> {
        Box::pin(async move { Ok(self.with_queue(q, |e| e.entity.set_rules(rules)).is_some()) })
    }

    fn access_policies<'a>(
        &'a self,
        q: QueueRef<'a>,
    ) -> StoreFuture<'a, Option<Vec<AccessPolicy>>> {
        Box::pin(async move { Ok(self.with_queue(q, |e| e.policies.clone())) })
    }

    fn set_access_policies<'a>(
        &'a self,
        q: QueueRef<'a>,
        policies: Vec<AccessPolicy>,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move { Ok(self.with_queue(q, |e| e.policies = policies).is_some()) })
    }

    fn put_message<'a>(
        &'a self,
        q: QueueRef<'a>,
        message: NewMessage,
    ) -> StoreFuture<'a, Option<Message>> {
        Box::pin(async move { Ok(self.with_queue(q, |e| e.entity.main.insert(message))) })
    }

    fn receive<'a>(
        &'a self,
        q: QueueRef<'a>,
        now: Timestamp,
        grant: LeaseGrant,
    ) -> StoreFuture<'a, Option<Vec<Message>>> {
        Box::pin(async move { Ok(self.with_queue(q, |e| e.entity.main.receive(now, &grant))) })
    }

    fn peek<'a>(
        &'a self,
        q: QueueRef<'a>,
        now: Timestamp,
        max: usize,
    ) -> StoreFuture<'a, Option<Vec<Message>>> {
        Box::pin(async move { Ok(self.with_queue(q, |e| e.entity.main.peek(now, max))) })
    }

    fn delete_message<'a>(
        &'a self,
        q: QueueRef<'a>,
        id: MessageId,
        receipt: PopReceipt,
        now: Timestamp,
    ) -> StoreFuture<'a, ReceiptOutcome<()>> {
        Box::pin(async move {
            Ok(
                match self.with_queue(q, |e| e.entity.main.delete(id, receipt, now)) {
                    None => ReceiptOutcome::QueueNotFound,
                    Some(Ok(_)) => ReceiptOutcome::Done(()),
                    Some(Err(e)) => ReceiptOutcome::Rejected(e),
                },
            )
        })
    }

    fn update_message<'a>(
        &'a self,
        q: QueueRef<'a>,
        id: MessageId,
        receipt: PopReceipt,
        now: Timestamp,
        update: MessageUpdate,
    ) -> StoreFuture<'a, ReceiptOutcome<Message>> {
        Box::pin(async move {
            Ok(
                match self.with_queue(q, |e| e.entity.main.update(id, receipt, now, update)) {
                    None => ReceiptOutcome::QueueNotFound,
                    Some(Ok(m)) => ReceiptOutcome::Done(m),
                    Some(Err(e)) => ReceiptOutcome::Rejected(e),
                },
            )
        })
    }

    fn clear_messages<'a>(&'a self, q: QueueRef<'a>) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            Ok(self
                .with_queue(q, |e| {
                    e.entity.main.clear();
                    e.entity.dead_letter.clear();
                })
                .is_some())
        })
    }

    fn account_document<'a>(
        &'a self,
        account: &'a str,
        key: &'a str,
    ) -> StoreFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            let accounts = self.accounts.read().unwrap_or_else(|e| e.into_inner());
            Ok(accounts
                .get(account)
                .and_then(|a| a.documents.get(key).cloned()))
        })
    }

    fn swap_account_document<'a>(
        &'a self,
        account: &'a str,
        key: &'a str,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut accounts = self.accounts.write().unwrap_or_else(|e| e.into_inner());
            let documents = &mut accounts.entry(account.to_owned()).or_default().documents;
            if documents.get(key) != expected.as_ref() {
                return Ok(false);
            }
            documents.insert(key.to_owned(), value);
            Ok(true)
        })
    }

    fn enqueue<'a>(
        &'a self,
        q: QueueRef<'a>,
        batch: Vec<Enqueue>,
        max_bytes: u64,
    ) -> StoreFuture<'a, Option<Enqueued>> {
        Box::pin(async move {
            Ok(self.with_queue(q, |e| {
                let size_bytes = e.entity.bytes();
                if size_bytes >= max_bytes {
                    return Enqueued::Full { size_bytes };
                }
                let stored = batch
                    .into_iter()
                    .map(|b| match b.scheduled {
                        true => {
                            let at = b.message.visible_at;
                            e.entity.main.insert_scheduled(b.message, at)
                        }
                        false => e.entity.main.insert(b.message),
                    })
                    .collect();
                Enqueued::Stored(stored)
            }))
        })
    }

    fn lock<'a>(
        &'a self,
        q: QueueRef<'a>,
        sub: SubQueue,
        now: Timestamp,
        grant: LeaseGrant,
    ) -> StoreFuture<'a, Option<Vec<Message>>> {
        Box::pin(async move { Ok(self.with_queue(q, |e| e.entity.lock(sub, now, &grant).0)) })
    }

    fn take<'a>(
        &'a self,
        q: QueueRef<'a>,
        sub: SubQueue,
        now: Timestamp,
        max: usize,
    ) -> StoreFuture<'a, Option<Vec<Message>>> {
        Box::pin(async move { Ok(self.with_queue(q, |e| e.entity.take(sub, now, max).0)) })
    }

    fn settle<'a>(
        &'a self,
        q: QueueRef<'a>,
        sub: SubQueue,
        token: PopReceipt,
        now: Timestamp,
        how: Settlement,
    ) -> StoreFuture<'a, Option<Result<Settled, SettleError>>> {
        Box::pin(async move {
            Ok(self.with_queue(q, |e| e.entity.settle(sub, token, now, how).map(|(s, _)| s)))
        })
    }

    fn browse<'a>(
        &'a self,
        q: QueueRef<'a>,
        sub: SubQueue,
        from: u64,
        max: usize,
        now: Timestamp,
    ) -> StoreFuture<'a, Option<Vec<Message>>> {
        Box::pin(
            async move { Ok(self.with_queue(q, |e| e.entity.queue(sub).browse(from, max, now))) },
        )
    }

    fn lock_deferred<'a>(
        &'a self,
        q: QueueRef<'a>,
        sub: SubQueue,
        sequences: Vec<u64>,
        now: Timestamp,
        grant: LeaseGrant,
    ) -> StoreFuture<'a, Option<Vec<Message>>> {
        Box::pin(async move {
            Ok(self.with_queue(q, |e| {
                e.entity
                    .queue_mut(sub)
                    .lock_deferred(&sequences, now, &grant)
            }))
        })
    }

    fn cancel_scheduled<'a>(
        &'a self,
        q: QueueRef<'a>,
        sequences: Vec<u64>,
        now: Timestamp,
    ) -> StoreFuture<'a, Option<Vec<u64>>> {
        Box::pin(async move {
            Ok(self.with_queue(q, |e| {
                sequences
                    .into_iter()
                    .filter(|s| e.entity.main.cancel_scheduled(*s, now).is_some())
                    .collect()
            }))
        })
    }

    fn housekeep(&self, now: Timestamp, budget: usize) -> StoreFuture<'_, usize> {
        Box::pin(async move {
            let entries: Vec<Arc<Mutex<QueueEntry>>> = {
                let accounts = self.accounts.read().unwrap_or_else(|e| e.into_inner());
                accounts
                    .values()
                    .flat_map(|a| a.queues.values().cloned())
                    .collect()
            };
            let mut changed = 0;
            for entry in entries {
                let c = lock(&entry).entity.housekeep(now, budget);
                changed += c.upserted.len() + c.removed.len();
            }
            Ok(changed)
        })
    }
}
