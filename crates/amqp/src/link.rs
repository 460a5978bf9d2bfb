//! What a service sees of a link: the attach to answer, the events the peer causes, and the
//! handle through which it sends, settles and detaches.
//!
//! Every link is driven by the service in a task of its own, talking to the connection's
//! driver through channels: the driver owns the socket and the protocol state, the link task
//! owns the application's work (an engine call that waits for an fsync, say). The driver
//! never waits for a link task, so one slow link never stalls the others. Events to a link are
//! bounded by the protocol: transfers by the credit the driver granted, dispositions by the
//! deliveries the link sent, credit and drain by what the link has not used yet.

use crate::inbound::HeldBytes;
use bytes::Bytes;
use fe2o3_amqp_types::definitions::{Error, Fields, ReceiverSettleMode, Role, SenderSettleMode};
use fe2o3_amqp_types::messaging::{DeliveryState, Source, TargetArchetype};
use fe2o3_amqp_types::performatives::Attach;
use tokio::sync::mpsc;

/// A link's identity for its whole life on one connection (handles are reused, this is not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkId(pub(crate) u64);

/// A session's identity on one connection, so that links of one session can be paired
/// (a request/response node is a pair of links in one session).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId(pub(crate) u64);

/// A message the peer sent, assembled from all its frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: u32,
    pub tag: Bytes,
    pub format: u32,
    /// The peer settled it on sending: it wants no outcome.
    pub settled: bool,
    pub payload: Bytes,
    /// The payload's bytes stay counted against the connection's inbound limit until the
    /// delivery is dropped.
    pub held: HeldBytes,
}

/// What happened on a link, as its task sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum LinkEvent {
    /// A message arrived (the peer is the sender). Answer it with [`LinkHandle::settle`].
    Transfer(Delivery),
    /// The link may send this many more messages (the peer is the receiver).
    Credit(u32),
    /// The peer asks to use up or give back all credit: send what is ready, then
    /// [`LinkHandle::drained`].
    Drain,
    /// The peer's disposition of a message this link sent.
    Disposition {
        delivery: u32,
        tag: Bytes,
        settled: bool,
        state: Option<DeliveryState>,
    },
    /// The link is gone: the peer detached it (with its error, if any), or the connection
    /// ended.
    Detached(Option<Error>),
}

/// How the service answers an attach.
#[derive(Debug, Clone, Default)]
pub struct AttachReply {
    pub source: Option<Box<Source>>,
    pub target: Option<Box<TargetArchetype>>,
    pub snd_settle_mode: SenderSettleMode,
    pub rcv_settle_mode: ReceiverSettleMode,
    /// The largest message this side accepts (receiving links) or will send.
    pub max_message_size: Option<u64>,
    pub properties: Option<Fields>,
    /// For a receiving link: the credit kept open to the peer.
    pub credit: u32,
}

/// An attach waiting for the service's answer. Dropped unanswered, it refuses the link with
/// `amqp:internal-error`, so a peer is never left waiting for an attach reply.
#[derive(Debug)]
pub struct Attaching {
    pub attach: Attach,
    pub session: SessionId,
    pub(crate) id: LinkId,
    pub(crate) commands: mpsc::Sender<Command>,
    pub(crate) events: Option<mpsc::UnboundedReceiver<LinkEvent>>,
}

impl Attaching {
    /// This side's role on the link: the opposite of the peer's.
    pub fn role(&self) -> Role {
        match self.attach.role {
            Role::Sender => Role::Receiver,
            Role::Receiver => Role::Sender,
        }
    }

    pub fn id(&self) -> LinkId {
        self.id
    }

    /// Answers the attach; returns the link for its task to drive, or `None` once the
    /// connection is gone.
    pub async fn accept(mut self, reply: AttachReply) -> Option<Link> {
        let events = self.events.take()?;
        let accept = Command::Accept {
            link: self.id,
            reply: Box::new(reply),
        };
        self.commands.send(accept).await.ok()?;
        Some(Link {
            events,
            handle: LinkHandle {
                id: self.id,
                commands: self.commands.clone(),
            },
        })
    }

    /// Refuses the attach: an attach reply without source or target, then a detach carrying
    /// `error` (part 2, §2.6.3).
    pub async fn refuse(mut self, error: Error) {
        self.events = None;
        let refuse = Command::Refuse {
            link: self.id,
            error: Box::new(error),
        };
        let _ = self.commands.send(refuse).await;
    }
}

impl Drop for Attaching {
    fn drop(&mut self) {
        if self.events.take().is_some() {
            let error = Error::new(
                fe2o3_amqp_types::definitions::AmqpError::InternalError,
                Some("the link was not answered".to_owned()),
                None,
            );
            let _ = self.commands.try_send(Command::Refuse {
                link: self.id,
                error: Box::new(error),
            });
        }
    }
}

/// An attached link, for the task that drives it.
#[derive(Debug)]
pub struct Link {
    pub events: mpsc::UnboundedReceiver<LinkEvent>,
    pub handle: LinkHandle,
}

/// Sends on behalf of one link. Every method returns `false` once the connection is gone.
#[derive(Debug, Clone)]
pub struct LinkHandle {
    id: LinkId,
    commands: mpsc::Sender<Command>,
}

impl LinkHandle {
    pub fn id(&self) -> LinkId {
        self.id
    }

    async fn command(&self, c: Command) -> bool {
        self.commands.send(c).await.is_ok()
    }

    /// Sends a message under `tag`, pre-settled or awaiting the peer's disposition. Use at most
    /// the credit the link was given.
    pub async fn send(&self, tag: Bytes, format: u32, payload: Bytes, settled: bool) -> bool {
        let send = Outgoing {
            tag,
            format,
            payload,
            settled,
        };
        self.command(Command::Send {
            link: self.id,
            send: Box::new(send),
        })
        .await
    }

    /// The outcome of a message the peer sent; also returns its credit. `state` is sent to the
    /// peer unless it settled the delivery itself.
    pub async fn settle(&self, delivery: u32, state: DeliveryState) -> bool {
        self.command(Command::Settle {
            link: self.id,
            delivery,
            state: Box::new(state),
        })
        .await
    }

    /// Settles a delivery this link sent, telling the peer the outcome that applied (the
    /// settled echo a receiver in `second` mode waits for).
    pub async fn echo(&self, delivery: u32, state: DeliveryState) -> bool {
        self.command(Command::Echo {
            link: self.id,
            delivery,
            state: Box::new(state),
        })
        .await
    }

    /// After [`LinkEvent::Drain`]: nothing more to send; the rest of the credit is used up.
    pub async fn drained(&self) -> bool {
        self.command(Command::Drained { link: self.id }).await
    }

    /// Detaches (closes) the link, with an error when it failed.
    pub async fn detach(&self, error: Option<Error>) -> bool {
        self.command(Command::Detach {
            link: self.id,
            error: error.map(Box::new),
        })
        .await
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outgoing {
    pub tag: Bytes,
    pub format: u32,
    pub payload: Bytes,
    pub settled: bool,
}

/// What link tasks ask of the driver.
#[derive(Debug)]
pub(crate) enum Command {
    Accept {
        link: LinkId,
        reply: Box<AttachReply>,
    },
    Refuse {
        link: LinkId,
        error: Box<Error>,
    },
    Send {
        link: LinkId,
        send: Box<Outgoing>,
    },
    Settle {
        link: LinkId,
        delivery: u32,
        state: Box<DeliveryState>,
    },
    Echo {
        link: LinkId,
        delivery: u32,
        state: Box<DeliveryState>,
    },
    Drained {
        link: LinkId,
    },
    Detach {
        link: LinkId,
        error: Option<Box<Error>>,
    },
}
