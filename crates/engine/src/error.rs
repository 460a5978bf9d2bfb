//! The engine's domain errors: protocol-neutral facts that each front maps, exhaustively, to its
//! own wire error. Adding a variant breaks every front's build until it is mapped.

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the queue does not exist")]
    QueueNotFound,
    #[error("the queue already exists with different metadata")]
    QueueAlreadyExists,
    #[error("the message does not exist or has expired")]
    MessageNotFound,
    #[error("the receipt is not the message's current one")]
    PopReceiptMismatch,
    /// No message is locked under the token any more: the lock lapsed, or the message was
    /// settled or moved (Service Bus `MessageLockLost`).
    #[error("the message's lock was lost")]
    LockLost,
    /// The entity holds its maximum size or more, so nothing more is enqueued (Service Bus
    /// `QuotaExceeded`).
    #[error("the entity is full: it holds {size_bytes} bytes")]
    EntityFull { size_bytes: u64 },
    /// An argument outside what the engine can honour; fronts validate first, so this is a bug
    /// in a front if it ever reaches a client.
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
    #[error("storage failure: {0}")]
    Storage(#[from] StoreError),
}
