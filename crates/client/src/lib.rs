//! An async Rust client for the Azure Queue Storage REST API.
//!
//! It speaks only the public protocol, so the same code works against Hematite, Azurite and
//! real Azure. Names follow the official Azure SDKs: a [`QueueServiceClient`] for the account
//! (list queues, service properties and statistics, account SAS) hands out [`QueueClient`]s for
//! single queues (create, delete, metadata, access policies, messages, service SAS).
//!
//! ```no_run
//! # async fn demo() -> Result<(), hematite_client::Error> {
//! use hematite_client::{QueueServiceClient, SendMessageOptions};
//!
//! let service = QueueServiceClient::from_connection_string("UseDevelopmentStorage=true")?;
//! let queue = service.queue_client("jobs");
//! queue.create_if_not_exists(&Default::default()).await?;
//! queue.send_message("hello", &SendMessageOptions::default()).await?;
//! for m in queue.receive_messages(10, None).await? {
//!     println!("{}", m.text);
//!     queue.delete_message(&m.message_id, &m.pop_receipt).await?;
//! }
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! - [`connection_string`]: `UseDevelopmentStorage=true`, account key and SAS connection strings.
//! - [`credential`]: Shared Key signing and SAS tokens.
//! - [`options`]: timeouts and the retry policy.
//! - [`error`]: the one [`Error`] type, carrying the status, Azure code and request id.
//! - `pipeline`: one request end to end: sign, send, retry, map errors.
//! - `xml`: the few response documents the protocol crate does not parse (it is written for the
//!   server side) and the message request body.
//! - [`models`]: what calls return.
//! - [`service`] and [`queue`]: the two clients.
//!
//! Wire formats, signing and SAS string-to-sign rules come from `hematite-queue-protocol`, the
//! crate the server uses too, so the two sides cannot drift apart.
//!
//! # Retries
//!
//! Every call is retried on 5xx, 408, timeouts and connection errors, with exponential backoff
//! and jitter ([`ClientOptions`]); other 4xx answers are final. Like the official SDKs, this
//! retries `send_message` as well, so a message whose first answer was lost can be enqueued
//! twice: queue delivery is at-least-once anyway.
//!
//! # Known limitation: metadata names are lowercase on the wire
//!
//! Queue metadata travels in `x-ms-meta-<name>` headers, and the service keeps the case of the
//! names it receives. This client sends requests with `reqwest`, whose `http::HeaderName`
//! stores every header name in lowercase and writes it that way (hyper's case-preserving
//! option is not exposed by reqwest). So:
//!
//! - metadata set through this client is stored with lowercase names (`Color` becomes
//!   `color`), even on real Azure;
//! - [`QueueClient::get_properties`] returns metadata names lowercased, whatever case another
//!   client stored them in, because response header names are lowercased too;
//! - [`QueueServiceClient::list_queues`] with `include_metadata` returns names in their stored
//!   case, because there they travel as XML element names.
//!
//! Signing is unaffected: Shared Key lowercases header names before signing anyway.

// Tests assert on exact values; an unwrap there is the assertion, not a shortcut.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod connection_string;
pub mod credential;
pub mod error;
pub mod models;
pub mod options;
mod pipeline;
pub mod queue;
pub mod service;
mod xml;

pub use connection_string::ConnectionString;
pub use credential::{Credential, SharedKeyCredential};
pub use error::{Error, ServiceError};
pub use models::{
    CreateOutcome, ListQueuesOptions, ListQueuesSegment, Metadata, PeekedMessage, QueueItem,
    QueueProperties, ReceivedMessage, SendMessageOptions, SendReceipt, ServiceStatistics,
    TimeToLive, UpdateReceipt,
};
pub use options::ClientOptions;
pub use queue::QueueClient;
pub use service::QueueServiceClient;

/// Wire types the clients take and return, re-exported so callers need not depend on the
/// protocol crate: SAS builders and permission sets, stored access policies, service
/// properties, error codes and API versions.
pub mod protocol {
    pub use hematite_queue_protocol::auth::sas::{
        AccountPermissions, AccountSasBuilder, ResourceTypes, ServicePermissions, ServiceSasBuilder,
    };
    pub use hematite_queue_protocol::version::LATEST_KNOWN;
    pub use hematite_queue_protocol::xml::{
        CorsRule, Logging, Metrics, RetentionPolicy, ServiceProperties, SignedIdentifier,
    };
    pub use hematite_queue_protocol::{ApiVersion, ErrorCode};
}
