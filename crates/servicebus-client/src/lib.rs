//! A small Azure Service Bus client over the public protocols, for `hematite sb` and
//! `hematite bench --amqp`: AMQP 1.0 for messages (SASL PLAIN with the connection string's
//! key, which Azure Service Bus and Hematite both take), the ATOM administration API over
//! HTTP(S) for entities. Nothing in it knows Hematite, so it works against Azure too.

pub mod admin;
pub mod amqp;
pub mod connection_string;
pub mod message;
mod tls;

pub use admin::{AdminClient, QueueInfo};
pub use amqp::{Client, ReceiveMode, Receiver, Sender, Settle};
pub use connection_string::ConnectionString;
pub use message::{OutgoingMessage, ReceivedMessage};

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The connection string or an argument is not usable.
    #[error("{0}")]
    Config(String),
    /// The administration API refused, with its HTTP status.
    #[error("{status}: {detail}")]
    Admin { status: u16, detail: String },
    /// The broker refused over AMQP, with the error condition it gave.
    #[error("{condition}: {description}")]
    Amqp {
        condition: String,
        description: String,
    },
    /// The connection failed or broke.
    #[error("{0}")]
    Transport(String),
}

impl Error {
    pub(crate) fn transport(e: impl std::fmt::Display) -> Self {
        Error::Transport(e.to_string())
    }

    /// The AMQP condition (`amqp:not-found`, `com.microsoft:…`), or for the administration
    /// API the HTTP status as text.
    pub fn condition(&self) -> Option<String> {
        match self {
            Error::Amqp { condition, .. } => Some(condition.clone()),
            Error::Admin { status, .. } => Some(status.to_string()),
            Error::Config(_) | Error::Transport(_) => None,
        }
    }
}
