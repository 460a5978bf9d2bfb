//! The engine proper: queue semantics over any [`Store`].
//!
//! It mints identities (message ids, receipts), reads the clock, and turns store outcomes into
//! domain [`Error`]s. It validates nothing that belongs to a wire protocol (name syntax, ranges of
//! query parameters): the fronts do that, because each protocol answers bad input its own way.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::error::Error;
use crate::model::{
    AccessPolicy, Message, MessageId, Metadata, NewMessage, PopReceipt, QueueInfo, QueueRef,
    QueueSummary,
};
use crate::store::{CreateOutcome, ReceiptOutcome, Store};
use crate::store::{
    Enqueue, Enqueued, LeaseGrant, LeaseRules, MessageUpdate, QueueSettings, ReceiptError,
    SettleError, Settled, Settlement, SubQueue,
};
use crate::time::Timestamp;
use crate::waiters::Waiters;

/// How long a message lives.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Ttl {
    After(Duration),
    Never,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SendOptions {
    /// How long the message stays invisible after the put.
    pub visibility_delay: Duration,
    pub ttl: Ttl,
}

/// One page of a queue listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListQueuesPage {
    pub queues: Vec<QueueSummary>,
    /// The name the next page starts at, if there is one.
    pub next: Option<String>,
}

/// Whether a create made a new queue or found an identical one.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Created {
    New,
    AlreadyIdentical,
}

#[derive(Clone)]
pub struct Engine {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    waiters: Arc<Waiters>,
}

impl Engine {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Engine {
            store,
            clock,
            waiters: Arc::new(Waiters::default()),
        }
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Creates an Azure queue. An existing queue with equivalent metadata is not an error
    /// (Azure answers 204); one with different metadata is.
    pub async fn create_queue(
        &self,
        q: QueueRef<'_>,
        metadata: Metadata,
    ) -> Result<Created, Error> {
        let settings = QueueSettings {
            rules: LeaseRules::AZURE_QUEUE,
        };
        self.create_queue_with(q, metadata, settings).await
    }

    /// Creates a queue whose leases follow `settings` (a Service Bus queue, say), with the
    /// same answers as [`Engine::create_queue`].
    pub async fn create_queue_with(
        &self,
        q: QueueRef<'_>,
        metadata: Metadata,
        settings: QueueSettings,
    ) -> Result<Created, Error> {
        match self.store.create_queue(q, &metadata, settings).await? {
            CreateOutcome::Created => Ok(Created::New),
            CreateOutcome::Existing(m) if m.equivalent(&metadata) => Ok(Created::AlreadyIdentical),
            CreateOutcome::Existing(_) => Err(Error::QueueAlreadyExists),
        }
    }

    pub async fn delete_queue(&self, q: QueueRef<'_>) -> Result<(), Error> {
        found(self.store.delete_queue(q).await?)
    }

    /// Lists queues in name order from `start_at`, at most `max` (≥ 1).
    pub async fn list_queues(
        &self,
        account: &str,
        prefix: &str,
        start_at: Option<&str>,
        max: usize,
    ) -> Result<ListQueuesPage, Error> {
        if max == 0 {
            return Err(Error::InvalidArgument("max must be at least 1"));
        }
        let mut queues = self
            .store
            .list_queues(account, prefix, start_at, max + 1)
            .await?;
        let next = if queues.len() > max {
            queues.pop().map(|q| q.name)
        } else {
            None
        };
        Ok(ListQueuesPage { queues, next })
    }

    pub async fn queue_info(&self, q: QueueRef<'_>) -> Result<QueueInfo, Error> {
        self.store
            .queue_info(q, self.now())
            .await?
            .ok_or(Error::QueueNotFound)
    }

    pub async fn set_metadata(&self, q: QueueRef<'_>, metadata: Metadata) -> Result<(), Error> {
        found(self.store.set_metadata(q, metadata).await?)
    }

    /// Replaces a queue's metadata if it is still `expected` (see [`Store::swap_metadata`]);
    /// `false` if it was not.
    pub async fn swap_metadata(
        &self,
        q: QueueRef<'_>,
        expected: Metadata,
        metadata: Metadata,
    ) -> Result<bool, Error> {
        self.store
            .swap_metadata(q, expected, metadata)
            .await?
            .ok_or(Error::QueueNotFound)
    }

    /// Replaces a queue's lease rules (see [`Store::set_rules`]).
    pub async fn set_rules(&self, q: QueueRef<'_>, rules: LeaseRules) -> Result<(), Error> {
        found(self.store.set_rules(q, rules).await?)
    }

    pub async fn access_policies(&self, q: QueueRef<'_>) -> Result<Vec<AccessPolicy>, Error> {
        self.store
            .access_policies(q)
            .await?
            .ok_or(Error::QueueNotFound)
    }

    pub async fn set_access_policies(
        &self,
        q: QueueRef<'_>,
        policies: Vec<AccessPolicy>,
    ) -> Result<(), Error> {
        found(self.store.set_access_policies(q, policies).await?)
    }

    /// Puts a message. The returned message carries a receipt valid for update and delete.
    pub async fn send(
        &self,
        q: QueueRef<'_>,
        body: Vec<u8>,
        options: SendOptions,
    ) -> Result<Message, Error> {
        let now = self.now();
        let expires_at = match options.ttl {
            Ttl::After(d) => now.saturating_add(d),
            Ttl::Never => Timestamp::NEVER,
        };
        let message = NewMessage {
            id: MessageId::time_ordered(now),
            body,
            inserted_at: now,
            expires_at,
            visible_at: now.saturating_add(options.visibility_delay),
            receipt: PopReceipt::random(),
        };
        self.store
            .put_message(q, message)
            .await?
            .ok_or(Error::QueueNotFound)
    }

    /// Leases up to `max` visible messages for `lease`.
    pub async fn receive(
        &self,
        q: QueueRef<'_>,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<Message>, Error> {
        if max == 0 {
            return Err(Error::InvalidArgument("max must be at least 1"));
        }
        let now = self.now();
        let grant = LeaseGrant {
            visible_until: now.saturating_add(lease),
            receipts: (0..max).map(|_| PopReceipt::random()).collect(),
        };
        self.store
            .receive(q, now, grant)
            .await?
            .ok_or(Error::QueueNotFound)
    }

    pub async fn peek(&self, q: QueueRef<'_>, max: usize) -> Result<Vec<Message>, Error> {
        self.store
            .peek(q, self.now(), max)
            .await?
            .ok_or(Error::QueueNotFound)
    }

    pub async fn delete_message(
        &self,
        q: QueueRef<'_>,
        id: MessageId,
        receipt: PopReceipt,
    ) -> Result<(), Error> {
        receipt_result(
            self.store
                .delete_message(q, id, receipt, self.now())
                .await?,
        )
    }

    /// Makes the message invisible for `visibility` from now (0 = visible at once), optionally
    /// replacing its body, and issues a new receipt.
    pub async fn update_message(
        &self,
        q: QueueRef<'_>,
        id: MessageId,
        receipt: PopReceipt,
        visibility: Duration,
        body: Option<Vec<u8>>,
    ) -> Result<Message, Error> {
        let now = self.now();
        let update = MessageUpdate {
            visible_at: now.saturating_add(visibility),
            receipt: PopReceipt::random(),
            body,
        };
        receipt_result(
            self.store
                .update_message(q, id, receipt, now, update)
                .await?,
        )
    }

    pub async fn clear_messages(&self, q: QueueRef<'_>) -> Result<(), Error> {
        found(self.store.clear_messages(q).await?)
    }

    pub async fn account_document(
        &self,
        account: &str,
        key: &str,
    ) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.store.account_document(account, key).await?)
    }

    /// Writes an account document if it is still `expected` (see
    /// [`Store::swap_account_document`]); `false` if it was not.
    pub async fn swap_account_document(
        &self,
        account: &str,
        key: &str,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
    ) -> Result<bool, Error> {
        Ok(self
            .store
            .swap_account_document(account, key, expected, value)
            .await?)
    }
}

/// One message to enqueue: its body, options, and when it is scheduled for, if it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    pub body: Vec<u8>,
    pub ttl: Ttl,
    pub scheduled_at: Option<Timestamp>,
}

impl Engine {
    /// Enqueues `batch` atomically, in order (Service Bus send and schedule), unless the
    /// entity already holds `max_bytes` or more ([`Error::EntityFull`]).
    pub async fn enqueue(
        &self,
        q: QueueRef<'_>,
        batch: Vec<Outgoing>,
        max_bytes: u64,
    ) -> Result<Vec<Message>, Error> {
        let now = self.now();
        let batch = batch
            .into_iter()
            .map(|o| {
                // A scheduled message is enqueued, and starts to live, at its time.
                let from = o.scheduled_at.map_or(now, |at| at.max(now));
                Enqueue {
                    scheduled: o.scheduled_at.is_some(),
                    message: NewMessage {
                        id: MessageId::time_ordered(now),
                        body: o.body,
                        inserted_at: from,
                        expires_at: match o.ttl {
                            Ttl::After(d) => from.saturating_add(d),
                            Ttl::Never => Timestamp::NEVER,
                        },
                        visible_at: o.scheduled_at.unwrap_or(now),
                        receipt: PopReceipt::random(),
                    },
                }
            })
            .collect();
        match self.store.enqueue(q, batch, max_bytes).await? {
            None => Err(Error::QueueNotFound),
            Some(Enqueued::Full { size_bytes }) => Err(Error::EntityFull { size_bytes }),
            Some(Enqueued::Stored(stored)) => {
                self.waiters.wake(q);
                Ok(stored)
            }
        }
    }

    /// A signal woken whenever a message of `q` may have become available through this
    /// engine; a waiting receiver also looks again periodically for what comes due by time.
    pub fn watch(&self, q: QueueRef<'_>) -> Arc<tokio::sync::Notify> {
        self.waiters.watch(q)
    }

    /// Wakes `q`'s waiting receivers for a change made elsewhere: another node sharing the
    /// store enqueued there.
    pub fn wake(&self, q: QueueRef<'_>) {
        self.waiters.wake(q);
    }

    fn grant(&self, n: usize, lock: Duration) -> (Timestamp, LeaseGrant) {
        let now = self.now();
        let grant = LeaseGrant {
            visible_until: now.saturating_add(lock),
            receipts: (0..n).map(|_| PopReceipt::random()).collect(),
        };
        (now, grant)
    }

    /// Peek-lock: locks up to `max` messages of `sub` for `lock`.
    pub async fn lock(
        &self,
        q: QueueRef<'_>,
        sub: SubQueue,
        max: usize,
        lock: Duration,
    ) -> Result<Vec<Message>, Error> {
        if max == 0 {
            return Err(Error::InvalidArgument("max must be at least 1"));
        }
        let (now, grant) = self.grant(max, lock);
        self.store
            .lock(q, sub, now, grant)
            .await?
            .ok_or(Error::QueueNotFound)
    }

    /// Receive-and-delete: up to `max` messages of `sub`, removed.
    pub async fn take(
        &self,
        q: QueueRef<'_>,
        sub: SubQueue,
        max: usize,
    ) -> Result<Vec<Message>, Error> {
        self.store
            .take(q, sub, self.now(), max)
            .await?
            .ok_or(Error::QueueNotFound)
    }

    /// Settles the message of `sub` locked under `token`.
    pub async fn settle(
        &self,
        q: QueueRef<'_>,
        sub: SubQueue,
        token: PopReceipt,
        how: Settlement,
    ) -> Result<Settled, Error> {
        let frees = matches!(how, Settlement::Abandon | Settlement::Release);
        match self.store.settle(q, sub, token, self.now(), how).await? {
            None => Err(Error::QueueNotFound),
            Some(Ok(s)) => {
                if frees {
                    self.waiters.wake(q);
                }
                Ok(s)
            }
            Some(Err(SettleError::LockLost)) => Err(Error::LockLost),
        }
    }

    /// Extends the lock under `token` by `lock` from now; the token stays.
    pub async fn renew_lock(
        &self,
        q: QueueRef<'_>,
        sub: SubQueue,
        token: PopReceipt,
        lock: Duration,
    ) -> Result<Message, Error> {
        let until = self.now().saturating_add(lock);
        match self
            .settle(q, sub, token, Settlement::Renew { until })
            .await?
        {
            Settled::Kept(m) => Ok(m),
            Settled::Removed(_) | Settled::DeadLettered(_) => Err(Error::LockLost),
        }
    }

    /// Up to `max` messages of `sub` from sequence number `from`, in every state.
    pub async fn browse(
        &self,
        q: QueueRef<'_>,
        sub: SubQueue,
        from: u64,
        max: usize,
    ) -> Result<Vec<Message>, Error> {
        self.store
            .browse(q, sub, from, max, self.now())
            .await?
            .ok_or(Error::QueueNotFound)
    }

    /// Locks the deferred messages among `sequences` for `lock`.
    pub async fn lock_deferred(
        &self,
        q: QueueRef<'_>,
        sub: SubQueue,
        sequences: Vec<u64>,
        lock: Duration,
    ) -> Result<Vec<Message>, Error> {
        let (now, grant) = self.grant(sequences.len(), lock);
        self.store
            .lock_deferred(q, sub, sequences, now, grant)
            .await?
            .ok_or(Error::QueueNotFound)
    }

    /// Cancels the scheduled messages among `sequences` not yet due; returns those cancelled.
    pub async fn cancel_scheduled(
        &self,
        q: QueueRef<'_>,
        sequences: Vec<u64>,
    ) -> Result<Vec<u64>, Error> {
        self.store
            .cancel_scheduled(q, sequences, self.now())
            .await?
            .ok_or(Error::QueueNotFound)
    }

    /// One round of housekeeping over every queue (lapsed locks, expiry), at most `budget`
    /// messages per queue and kind; returns how many changed. The binary runs it periodically.
    pub async fn housekeep(&self, budget: usize) -> Result<usize, Error> {
        let changed = self.store.housekeep(self.now(), budget).await?;
        if changed > 0 {
            self.waiters.wake_all();
        }
        Ok(changed)
    }
}

fn found(exists: bool) -> Result<(), Error> {
    if exists {
        Ok(())
    } else {
        Err(Error::QueueNotFound)
    }
}

fn receipt_result<T>(outcome: ReceiptOutcome<T>) -> Result<T, Error> {
    match outcome {
        ReceiptOutcome::Done(v) => Ok(v),
        ReceiptOutcome::QueueNotFound => Err(Error::QueueNotFound),
        ReceiptOutcome::Rejected(ReceiptError::MessageNotFound) => Err(Error::MessageNotFound),
        ReceiptOutcome::Rejected(ReceiptError::ReceiptMismatch) => Err(Error::PopReceiptMismatch),
    }
}
