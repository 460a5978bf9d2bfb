//! What the clients take and return.
//!
//! Plain structs with public fields, named after the Azure SDKs' models. Times are
//! `time::OffsetDateTime` in UTC, as parsed from the service's RFC 1123 strings.

use std::collections::BTreeMap;
use std::time::Duration;

use time::OffsetDateTime;

/// Queue metadata: name to value. Ordered, so output is stable. See the crate docs for why
/// names read back through headers are lowercase.
pub type Metadata = BTreeMap<String, String>;

/// How [`crate::QueueClient::create`] went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateOutcome {
    /// 201: the queue is new.
    Created,
    /// 204: the queue already existed with identical metadata; nothing changed. (Different
    /// metadata is a 409 `QueueAlreadyExists` error instead.)
    AlreadyExists,
}

/// Get Queue Metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueProperties {
    /// `x-ms-approximate-messages-count`: never below the real count, may be above.
    pub approximate_message_count: u64,
    pub metadata: Metadata,
}

/// What to list and how much per page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQueuesOptions {
    /// Only queues whose name starts with this.
    pub prefix: Option<String>,
    /// Where to continue: the `next_marker` of the previous page.
    pub marker: Option<String>,
    /// Page size; the service caps it at 5000 (its default).
    pub max_results: Option<u32>,
    /// Return each queue's metadata (names in their stored case).
    pub include_metadata: bool,
}

/// One queue in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueItem {
    pub name: String,
    /// `Some` when the listing asked for metadata.
    pub metadata: Option<Metadata>,
}

/// One page of List Queues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQueuesSegment {
    pub queues: Vec<QueueItem>,
    pub prefix: Option<String>,
    pub marker: Option<String>,
    pub max_results: Option<u32>,
    /// The marker of the next page; `None` on the last one.
    pub next_marker: Option<String>,
}

/// Get Service Stats (answered by the secondary endpoint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceStatistics {
    /// `live`, `bootstrap` or `unavailable`.
    pub geo_replication_status: String,
    /// Writes before this time are readable on the secondary; `None` when unknown.
    pub last_sync_time: Option<OffsetDateTime>,
}

/// How long a message lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeToLive {
    /// Expires this long after it is sent (whole seconds, at least one).
    After(Duration),
    /// Never expires (`messagettl=-1`, API version 2017-07-29 and later).
    Infinite,
}

impl From<Duration> for TimeToLive {
    fn from(d: Duration) -> Self {
        Self::After(d)
    }
}

/// Options of Put Message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendMessageOptions {
    /// Hidden for this long after sending (0..=7 days; the service's default is 0).
    pub visibility_timeout: Option<Duration>,
    /// The service's default is 7 days.
    pub time_to_live: Option<TimeToLive>,
}

/// What Put Message returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendReceipt {
    pub message_id: String,
    /// Lets the sender update or delete the message before anyone receives it.
    pub pop_receipt: String,
    pub insertion_time: OffsetDateTime,
    pub expiration_time: OffsetDateTime,
    pub time_next_visible: OffsetDateTime,
}

/// A message from Get Messages, leased to this receiver until `time_next_visible`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    pub message_id: String,
    /// Needed to delete or update the message; replaced by every receive and update.
    pub pop_receipt: String,
    pub text: String,
    /// How many times the message has been received, this time included.
    pub dequeue_count: u64,
    pub insertion_time: OffsetDateTime,
    pub expiration_time: OffsetDateTime,
    pub time_next_visible: OffsetDateTime,
}

/// A message from Peek Messages: read without leasing it, so no receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeekedMessage {
    pub message_id: String,
    pub text: String,
    pub dequeue_count: u64,
    pub insertion_time: OffsetDateTime,
    pub expiration_time: OffsetDateTime,
}

/// What Update Message returns (from the `x-ms-popreceipt` and `x-ms-time-next-visible`
/// headers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateReceipt {
    /// The new receipt; the old one no longer works.
    pub pop_receipt: String,
    pub time_next_visible: OffsetDateTime,
}
