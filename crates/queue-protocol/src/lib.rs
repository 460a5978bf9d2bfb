//! Azure Queue Storage REST wire format, shared by the server front and the client.
//!
//! Everything here is pure: strings and bytes in, strings and values out. No I/O, no async
//! and no HTTP types, so both sides of the wire (and fuzzers) use the same rules.
//!
//! - [`version`]: `x-ms-version` dates and the behaviour gates.
//! - [`error`]: error codes, statuses and the XML error body.
//! - [`names`]: queue and metadata name rules.
//! - [`datetime`]: RFC 1123 and ISO 8601 formats.
//! - [`query`]: query-string decoding shared by routing and signing.
//! - [`xml`]: request parsers and response writers.
//! - [`auth`]: Shared Key, Shared Key Lite and SAS signing.

// Tests assert on exact values; an unwrap there is the assertion, not a shortcut.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod auth;
pub mod datetime;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod names;
pub mod query;
pub mod version;
pub mod xml;

pub use error::{ErrorCode, ErrorResponse};
pub use version::ApiVersion;
