//! AMQP 1.0 for a broker: the server side of connections, sessions and links, on the
//! `fe2o3-amqp-types` codec, with no knowledge of what the messages mean.
//!
//! Why not a ready-made AMQP stack: the Service Bus clients need a 16-byte delivery tag
//! chosen by the broker (it is the lock token), a settled disposition whose outcome the
//! broker chooses, and message bytes passed through untouched; fe2o3-amqp 0.18's link layer
//! offers none of the three (`docs/decisions/0006-amqp-engine.md`).
//!
//! The crate's front door is [`serve`]: it runs one connection (SASL, open, then frames)
//! and hands each link a peer attaches to a [`Service`], which drives it from a task of its
//! own through [`Link`].

pub mod codec;
mod connection;
mod endpoint;
pub mod frame;
pub mod fuzzing;
mod inbound;
mod link;

pub use connection::{serve, Config, Peer, Service};
pub use endpoint::Limits;
pub use inbound::{HeldBytes, InboundBudget};
pub use link::{AttachReply, Attaching, Delivery, Link, LinkEvent, LinkHandle, LinkId, SessionId};

/// The codec's types, for services that build attach replies and dispositions.
pub use fe2o3_amqp_types as types;
pub use serde_amqp;
