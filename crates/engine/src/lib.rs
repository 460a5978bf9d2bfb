//! Hematite's protocol-neutral queue engine.
//!
//! Every front (Azure Queue REST today, Service Bus AMQP later) translates its wire protocol into
//! calls on [`Engine`]; every backend implements the narrow [`Store`] trait underneath it. The engine
//! knows nothing of HTTP, XML or SQL, and takes time from a [`Clock`] so that visibility and expiry
//! are testable without sleeping.
//!
//! Layout:
//! - [`time`] and [`clock`]: the engine's notion of "now".
//! - [`model`]: messages, receipts, metadata and access policies.
//! - [`index`]: the per-queue message state machine and its O(log n) indexes, shared by stores.
//! - [`store`]: the `Store` trait and the outcomes it reports.
//! - [`memory`]: the in-memory store, which is also the executable specification.
//! - [`service`]: the `Engine`, where outcomes become domain errors.
//! - [`waiters`]: receivers waiting for a queue to have messages.
//! - `conformance` (feature `conformance`): the suite every store must pass.

#![forbid(unsafe_code)]

pub mod clock;
pub mod error;
pub mod index;
pub mod memory;
pub mod model;
pub mod service;
pub mod store;
pub mod time;
pub mod waiters;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
#[cfg(test)]
mod model_check;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::Error;
pub use memory::MemoryStore;
pub use model::{
    AccessPolicy, DeadLetterInfo, Message, MessageId, MessageState, Metadata, PopReceipt,
    QueueInfo, QueueRef, QueueSummary,
};
pub use service::{Created, Engine, ListQueuesPage, Outgoing, SendOptions, Ttl};
pub use store::{
    LeaseRules, QueueSettings, Settled, Settlement, Store, StoreError, StoreErrorKind, SubQueue,
};
pub use time::Timestamp;
