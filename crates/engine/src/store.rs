//! The narrow interface every backend implements, and its written contract.
//!
//! It works at queue-operation granularity: each method is one atomic step that the store performs
//! itself (PostgreSQL needs that, because several nodes share it). Methods report *outcomes*
//! (`Created | Existing`, `Done | MessageNotFound | ReceiptMismatch`, …) rather than errors; the
//! [`Engine`](crate::Engine) turns outcomes into domain errors, so the semantics are decided in one
//! place. `Err(StoreError)` is reserved for the store itself failing. Every method returning
//! `Option` answers `None` when the queue does not exist.
//!
//! The contract, for every store (the conformance suite in [`crate::conformance`] pins it):
//! - **Times** are the caller's `now`; a store never reads a clock of its own for semantics.
//! - **Acknowledged means done**: when a future resolves `Ok`, the effect is as durable as the
//!   store promises (the embedded store: fsynced), and visible to every later call.
//! - **Atomicity**: each call applies whole or not at all, including a batch enqueue and a move
//!   to the dead-letter sub-queue; two concurrent calls never both lease the same message.
//! - **Lease rules** are fixed when a queue is created ([`QueueSettings`]) and decide what
//!   receive, settle and expiry do ([`LeaseRules`]); the same store serves Azure queues and
//!   Service Bus queues side by side.
//! - **Sequence numbers** increase by one per enqueued message within a queue, never reused;
//!   a message keeps its number when it moves to the dead-letter sub-queue.
//!
//! Futures are boxed so the trait stays object-safe: the binary picks a backend at run time.

use std::future::Future;
use std::pin::Pin;

use crate::model::{
    AccessPolicy, DeadLetterInfo, Message, MessageId, Metadata, NewMessage, PopReceipt, QueueInfo,
    QueueRef, QueueSummary,
};
use crate::time::Timestamp;

// ---- The contract's own types -------------------------------------------------------------

/// When a message's delivery count rises.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DeliveryCounting {
    /// On every lease (Azure's dequeue count).
    EveryLease,
    /// On every failed delivery: a lock that lapses, or an abandon; never a release (Service
    /// Bus).
    FailedDeliveries,
}

/// What happens to a message whose time to live has passed.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum OnExpiry {
    Delete,
    /// Moved to the dead-letter sub-queue (Service Bus `DeadLetteringOnMessageExpiration`).
    DeadLetter,
}

/// How an entity's leases behave.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct LeaseRules {
    pub counting: DeliveryCounting,
    /// Whether a token still settles its message after the lease has lapsed, until the
    /// message is leased again (Azure); otherwise the lock is lost when it lapses (Service
    /// Bus).
    pub lapsed_lease_settles: bool,
    /// Failed deliveries after which a message is dead-lettered (Service Bus
    /// `MaxDeliveryCount`).
    pub max_deliveries: Option<u32>,
    pub on_expiry: OnExpiry,
}

impl LeaseRules {
    /// Azure Queue Storage: the dequeue count rises on every receive, a lapsed lease's receipt
    /// works until the message is received again, expiry deletes.
    pub const AZURE_QUEUE: LeaseRules = LeaseRules {
        counting: DeliveryCounting::EveryLease,
        lapsed_lease_settles: true,
        max_deliveries: None,
        on_expiry: OnExpiry::Delete,
    };

    /// A Service Bus queue with its `MaxDeliveryCount` and `DeadLetteringOnMessageExpiration`.
    pub fn service_bus(max_deliveries: u32, dead_letter_on_expiry: bool) -> Self {
        LeaseRules {
            counting: DeliveryCounting::FailedDeliveries,
            lapsed_lease_settles: false,
            max_deliveries: Some(max_deliveries.max(1)),
            on_expiry: if dead_letter_on_expiry {
                OnExpiry::DeadLetter
            } else {
                OnExpiry::Delete
            },
        }
    }

    /// A dead-letter sub-queue: locks as Service Bus does, but nothing in it is dead-lettered
    /// again, and nothing in it expires.
    pub const DEAD_LETTER: LeaseRules = LeaseRules {
        counting: DeliveryCounting::FailedDeliveries,
        lapsed_lease_settles: false,
        max_deliveries: None,
        on_expiry: OnExpiry::Delete,
    };

    /// Whether a lease is a Service Bus lock: settled by its token alone, lost when it lapses.
    pub fn locks(&self) -> bool {
        !self.lapsed_lease_settles
    }
}

impl Default for LeaseRules {
    fn default() -> Self {
        LeaseRules::AZURE_QUEUE
    }
}

/// Why Service Bus dead-letters a message on its own.
pub const MAX_DELIVERY_COUNT_EXCEEDED: &str = "MaxDeliveryCountExceeded";
pub const TTL_EXPIRED: &str = "TTLExpiredException";

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

/// How a Service Bus receiver settles a locked message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Settlement {
    /// Done with it: removed.
    Complete,
    /// A failed delivery: available again with one more, or dead-lettered at the limit.
    Abandon,
    /// Given back unprocessed: available again, the count unchanged.
    Release,
    /// Set aside, to be received by sequence number only.
    Defer,
    DeadLetter(DeadLetterInfo),
    /// The lock is extended; the token stays.
    Renew {
        until: Timestamp,
    },
}

/// What a settlement did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Settled {
    Removed(Message),
    /// Still in the queue, as it now stands.
    Kept(Message),
    /// Taken out for the dead-letter sub-queue.
    DeadLettered(Message),
}

/// Why a settlement did not apply.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SettleError {
    /// No message is locked under the token, or its lock has lapsed.
    LockLost,
}

/// Which of an entity's queues: the queue itself or its dead-letter sub-queue.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum SubQueue {
    Main,
    DeadLetter,
}

// ---- The trait ----------------------------------------------------------------------------

pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// What went wrong inside a store. Opaque on purpose: fronts only need the kind.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind:?}: {message}")]
pub struct StoreError {
    pub kind: StoreErrorKind,
    pub message: String,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum StoreErrorKind {
    /// Temporarily unable to serve (disk full, database unreachable); a retry may succeed.
    Unavailable,
    /// Stored data failed a check.
    Corrupt,
    Other,
}

impl StoreError {
    pub fn new(kind: StoreErrorKind, message: impl Into<String>) -> Self {
        StoreError {
            kind,
            message: message.into(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CreateOutcome {
    Created,
    /// The queue was already there; nothing changed. Carries its metadata for the caller to compare.
    Existing(Metadata),
}

/// The result of an operation that needs an existing queue and a current receipt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReceiptOutcome<T> {
    Done(T),
    QueueNotFound,
    Rejected(ReceiptError),
}

/// What a queue is created with.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueSettings {
    pub rules: LeaseRules,
}

/// One message of an enqueue batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Enqueue {
    pub message: NewMessage,
    /// Held back, in state `Scheduled`, until its `visible_at` (a Service Bus scheduled
    /// message); otherwise available at `visible_at` like any message.
    pub scheduled: bool,
}

/// What [`Store::enqueue`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Enqueued {
    Stored(Vec<Message>),
    /// Nothing was stored: the entity held `size_bytes`, at or over the bound.
    Full {
        size_bytes: u64,
    },
}

pub trait Store: Send + Sync + 'static {
    /// Creates the queue unless it exists, atomically. An existing queue is left as it is,
    /// settings included.
    fn create_queue<'a>(
        &'a self,
        q: QueueRef<'a>,
        metadata: &'a Metadata,
        settings: QueueSettings,
    ) -> StoreFuture<'a, CreateOutcome>;

    /// Deletes the queue with its messages, metadata and policies. `false` if it did not exist.
    fn delete_queue<'a>(&'a self, q: QueueRef<'a>) -> StoreFuture<'a, bool>;

    /// Queues of `account` whose names start with `prefix` and are `>= start_at`, in name order,
    /// at most `limit`.
    fn list_queues<'a>(
        &'a self,
        account: &'a str,
        prefix: &'a str,
        start_at: Option<&'a str>,
        limit: usize,
    ) -> StoreFuture<'a, Vec<QueueSummary>>;

    /// Metadata and unexpired-message count as of `now`; `None` if the queue does not exist.
    fn queue_info<'a>(
        &'a self,
        q: QueueRef<'a>,
        now: Timestamp,
    ) -> StoreFuture<'a, Option<QueueInfo>>;

    /// Replaces the metadata. `false` if the queue does not exist.
    fn set_metadata<'a>(&'a self, q: QueueRef<'a>, metadata: Metadata) -> StoreFuture<'a, bool>;

    /// Replaces the metadata if it is still exactly `expected` (same pairs, same order and
    /// case): a compare-and-set for a front that keeps a document in a queue's metadata and
    /// changes it from several nodes. `None` if the queue does not exist, `Some(false)` if
    /// the metadata was something else.
    fn swap_metadata<'a>(
        &'a self,
        q: QueueRef<'a>,
        expected: Metadata,
        metadata: Metadata,
    ) -> StoreFuture<'a, Option<bool>>;

    /// Replaces the queue's lease rules, durably (a Service Bus entity whose MaxDeliveryCount
    /// or expiry behaviour changed in its configuration). Messages keep their state and
    /// counts; the new rules apply from each message's next event, and locks held stay
    /// settleable by token. `false` if the queue does not exist.
    fn set_rules<'a>(&'a self, q: QueueRef<'a>, rules: LeaseRules) -> StoreFuture<'a, bool>;

    fn access_policies<'a>(&'a self, q: QueueRef<'a>)
        -> StoreFuture<'a, Option<Vec<AccessPolicy>>>;

    /// Replaces the stored access policies. `false` if the queue does not exist.
    fn set_access_policies<'a>(
        &'a self,
        q: QueueRef<'a>,
        policies: Vec<AccessPolicy>,
    ) -> StoreFuture<'a, bool>;

    /// Appends a message; `None` if the queue does not exist.
    fn put_message<'a>(
        &'a self,
        q: QueueRef<'a>,
        message: NewMessage,
    ) -> StoreFuture<'a, Option<Message>>;

    /// Leases up to `grant.receipts.len()` visible messages, oldest-visible first (ties by
    /// sequence): each becomes invisible until `grant.visible_until` under its receipt from the
    /// grant, in order, and its delivery count rises as the queue's rules say. Expired messages
    /// are never returned. The Azure receive.
    fn receive<'a>(
        &'a self,
        q: QueueRef<'a>,
        now: Timestamp,
        grant: LeaseGrant,
    ) -> StoreFuture<'a, Option<Vec<Message>>>;

    fn peek<'a>(
        &'a self,
        q: QueueRef<'a>,
        now: Timestamp,
        max: usize,
    ) -> StoreFuture<'a, Option<Vec<Message>>>;

    fn delete_message<'a>(
        &'a self,
        q: QueueRef<'a>,
        id: MessageId,
        receipt: PopReceipt,
        now: Timestamp,
    ) -> StoreFuture<'a, ReceiptOutcome<()>>;

    fn update_message<'a>(
        &'a self,
        q: QueueRef<'a>,
        id: MessageId,
        receipt: PopReceipt,
        now: Timestamp,
        update: MessageUpdate,
    ) -> StoreFuture<'a, ReceiptOutcome<Message>>;

    /// Removes every message. `false` if the queue does not exist.
    fn clear_messages<'a>(&'a self, q: QueueRef<'a>) -> StoreFuture<'a, bool>;

    /// An account-level document owned by a front (for example the REST front's service
    /// properties), stored and returned as opaque bytes.
    fn account_document<'a>(
        &'a self,
        account: &'a str,
        key: &'a str,
    ) -> StoreFuture<'a, Option<Vec<u8>>>;

    /// Writes an account document if it is still `expected` (`None`: there is none), and
    /// says whether it did: a compare-and-set, so that fronts on several nodes sharing a store
    /// can read, change and write a document without losing each other's changes.
    fn swap_account_document<'a>(
        &'a self,
        account: &'a str,
        key: &'a str,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
    ) -> StoreFuture<'a, bool>;

    // ---- Locks settled by token, sub-queues, browsing (Service Bus) ---------------------------

    /// Appends `batch` atomically, in order, with consecutive sequence numbers; returns the
    /// stored messages. Stores nothing, and answers [`Enqueued::Full`], when the queue and its
    /// dead-letter sub-queue already hold `max_bytes` or more (Service Bus
    /// `MaxSizeInMegabytes`; a batch that starts below the bound may end above it). The check
    /// is part of the append, so it costs no read that would wait for other writes.
    fn enqueue<'a>(
        &'a self,
        q: QueueRef<'a>,
        batch: Vec<Enqueue>,
        max_bytes: u64,
    ) -> StoreFuture<'a, Option<Enqueued>>;

    /// Peek-lock: locks up to `grant.receipts.len()` available messages of `sub` until
    /// `grant.visible_until`, oldest-available first. A lapsed lock met on the way is a failed
    /// delivery, and a message at its queue's `max_deliveries` moves to the dead-letter
    /// sub-queue instead of being returned; an expired one is deleted or dead-lettered as the
    /// rules say.
    fn lock<'a>(
        &'a self,
        q: QueueRef<'a>,
        sub: SubQueue,
        now: Timestamp,
        grant: LeaseGrant,
    ) -> StoreFuture<'a, Option<Vec<Message>>>;

    /// Receive-and-delete: removes up to `max` available messages of `sub` and returns them,
    /// with the same treatment of lapsed locks and expiry as [`Store::lock`].
    fn take<'a>(
        &'a self,
        q: QueueRef<'a>,
        sub: SubQueue,
        now: Timestamp,
        max: usize,
    ) -> StoreFuture<'a, Option<Vec<Message>>>;

    /// Settles the message of `sub` locked under `token`, if its lock still holds at `now`:
    /// `LockLost` otherwise. A dead-lettering settlement moves the message to the dead-letter
    /// sub-queue in the same step.
    fn settle<'a>(
        &'a self,
        q: QueueRef<'a>,
        sub: SubQueue,
        token: PopReceipt,
        now: Timestamp,
        how: Settlement,
    ) -> StoreFuture<'a, Option<Result<Settled, SettleError>>>;

    /// Up to `max` unexpired messages of `sub` from sequence number `from` on, in sequence
    /// order and in every state, unchanged.
    fn browse<'a>(
        &'a self,
        q: QueueRef<'a>,
        sub: SubQueue,
        from: u64,
        max: usize,
        now: Timestamp,
    ) -> StoreFuture<'a, Option<Vec<Message>>>;

    /// Locks the deferred messages of `sub` among `sequences`, each under the grant's receipt
    /// of the same position; the others are skipped.
    fn lock_deferred<'a>(
        &'a self,
        q: QueueRef<'a>,
        sub: SubQueue,
        sequences: Vec<u64>,
        now: Timestamp,
        grant: LeaseGrant,
    ) -> StoreFuture<'a, Option<Vec<Message>>>;

    /// Removes the scheduled messages among `sequences` that have not come due; returns the
    /// sequence numbers removed.
    fn cancel_scheduled<'a>(
        &'a self,
        q: QueueRef<'a>,
        sequences: Vec<u64>,
        now: Timestamp,
    ) -> StoreFuture<'a, Option<Vec<u64>>>;

    /// Housekeeping the engine drives: in every queue, lapsed locks become failed deliveries
    /// (dead-lettering at the limit) and expired messages leave or move, at most `budget` per
    /// queue and kind. Returns how many messages changed. Safe to run from several callers.
    fn housekeep(&self, now: Timestamp, budget: usize) -> StoreFuture<'_, usize>;
}
