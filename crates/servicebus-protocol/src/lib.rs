//! The Azure Service Bus administration API's wire format, shared by the server's admin front
//! and the `hematite sb` client: entity descriptions as ATOM entries, feeds, error bodies, and
//! the two ways .NET spells a TimeSpan, and shared access signature tokens. No I/O.
//!
//! The API is .NET DataContract XML wrapped in ATOM (Microsoft, "Service Bus REST API
//! reference: Create Queue"). Clients differ in what they send (namespace prefixes, sparse
//! bodies, element order, TimeSpan forms), so parsing is lenient and works on local names,
//! while writing follows the service's element order exactly: the SDKs' own serializers say
//! the order matters to them.

pub mod atom;
pub mod duration;
mod fields;
pub mod queue;
pub mod rule;
pub mod sas;
pub mod subscription;
pub mod topic;

pub use atom::{AdminError, Entry, Feed};
pub use duration::{format_duration, parse_duration, TIMESPAN_MAX};
pub use queue::{CountDetails, EntityStatus, QueueDescription, QueueRuntime};
pub use rule::{Action, CorrelationFilter, Filter, RuleDescription, TypedValue, DEFAULT_RULE};
pub use subscription::{SubscriptionDescription, SubscriptionRuntime};
pub use topic::{TopicDescription, TopicRuntime};

/// The namespace of every description element.
pub const CONNECT_NS: &str = "http://schemas.microsoft.com/netservices/2010/10/servicebus/connect";
/// The XML Schema instance namespace (`i:type`, `i:nil`).
pub const INSTANCE_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";
/// The namespace of `CountDetails`' children.
pub const COUNTS_NS: &str = "http://schemas.microsoft.com/netservices/2011/06/servicebus";
/// ATOM.
pub const ATOM_NS: &str = "http://www.w3.org/2005/Atom";
