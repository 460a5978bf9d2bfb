//! The narrow interface every backend implements.
//!
//! It works at queue-operation granularity: each method is one atomic step that the store performs
//! itself (PostgreSQL needs that, because several nodes share it). Methods report *outcomes*
//! (`Created | Existing`, `Done | MessageNotFound | ReceiptMismatch`, …) rather than errors; the
//! [`Engine`](crate::Engine) turns outcomes into domain errors, so Azure semantics are decided in one
//! place. `Err(StoreError)` is reserved for the store itself failing.
//!
//! Futures are boxed so the trait stays object-safe: the binary picks a backend at run time.

use std::future::Future;
use std::pin::Pin;

use crate::index::{LeaseGrant, MessageUpdate, ReceiptError};
use crate::model::{
    AccessPolicy, Message, MessageId, Metadata, NewMessage, PopReceipt, QueueInfo, QueueRef,
    QueueSummary,
};
use crate::time::Timestamp;

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

pub trait Store: Send + Sync + 'static {
    /// Creates the queue unless it exists, atomically.
    fn create_queue<'a>(
        &'a self,
        q: QueueRef<'a>,
        metadata: &'a Metadata,
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

    /// Leases visible messages (see [`crate::index::QueueMessages::receive`]).
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

    fn set_account_document<'a>(
        &'a self,
        account: &'a str,
        key: &'a str,
        value: Vec<u8>,
    ) -> StoreFuture<'a, ()>;
}
