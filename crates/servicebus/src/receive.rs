//! A client's receiver link on an entity (or its dead-letter queue): messages go out as the
//! link's credit allows, locked (peek-lock) or removed (receive-and-delete), and the client's
//! dispositions settle them.
//!
//! Peek-lock deliveries are unsettled, tagged with the lock token (16 bytes, .NET GUID order);
//! receive-and-delete deliveries are pre-settled and tagged with a random GUID. A client in
//! `second` mode waits for the broker to settle its disposition with the outcome that applied
//! and no error (both SDKs fail the call otherwise), so each one is echoed once the engine
//! has made it durable; a lost lock is echoed as `rejected{com.microsoft:message-lock-lost}`.
//! Dispositions that arrive together are settled concurrently, so group commit covers them
//! with one fsync.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::join_all;
use hematite_amqp::types::definitions::{Error as AmqpErr, SenderSettleMode};
use hematite_amqp::types::messaging::{DeliveryState, Modified, Rejected};
use hematite_amqp::{AttachReply, Attaching, Link, LinkEvent};
use hematite_engine::{DeadLetterInfo, Error, Message, Settlement, SubQueue};
use serde_amqp::Value;

use crate::address::entity_path;
use crate::message::{deliver, Stamp};
use crate::namespace::QueueProperties;
use crate::sas::Right;
use crate::{amqp_error, detach_when_token_lapses, not_implemented, token, Connection, ServiceBus};

/// How often an idle receiver looks again for what came due by time (scheduled messages,
/// lapsed locks) without being woken.
const POLL: Duration = Duration::from_secs(1);
/// Messages locked per engine call.
const FETCH: u32 = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    PeekLock,
    ReceiveAndDelete,
}

struct Receiver {
    sb: Arc<ServiceBus>,
    name: String,
    sub: SubQueue,
    props: Arc<QueueProperties>,
    mode: Mode,
    link: Link,
    credit: u32,
    draining: bool,
    dispositions: Vec<(u32, Bytes, bool, DeliveryState)>,
    detached: bool,
}

pub(crate) async fn run(
    sb: Arc<ServiceBus>,
    conn: Arc<Connection>,
    link: Attaching,
    name: String,
    sub: SubQueue,
) {
    let path = entity_path(&name, sub);
    sb.ensure_known(&name).await;
    let props = match sb.entity(&conn, &name, &path, Right::Listen) {
        Ok(p) => p,
        Err(e) => return link.refuse(e).await,
    };
    let session_filter = link
        .attach
        .source
        .as_ref()
        .and_then(|s| s.filter.as_ref())
        .is_some_and(|f| {
            f.keys()
                .any(|k| k.as_str() == "com.microsoft:session-filter")
        });
    if session_filter || props.requires_session() {
        return link
            .refuse(not_implemented(
                "Sessions are not supported by this server yet.",
            ))
            .await;
    }
    let mode = match link.attach.snd_settle_mode {
        SenderSettleMode::Settled => Mode::ReceiveAndDelete,
        SenderSettleMode::Unsettled | SenderSettleMode::Mixed => Mode::PeekLock,
    };
    let reply = AttachReply {
        // The SDKs compare the echoed source with what they asked for.
        source: link.attach.source.clone(),
        target: link.attach.target.clone(),
        snd_settle_mode: link.attach.snd_settle_mode.clone(),
        rcv_settle_mode: link.attach.rcv_settle_mode.clone(),
        max_message_size: Some(props.max_message_bytes()),
        ..Default::default()
    };
    let Some(link) = link.accept(reply).await else {
        return;
    };
    let _watch = detach_when_token_lapses(&conn, &path, Right::Listen, link.handle.clone());
    let r = Receiver {
        sb,
        name,
        sub,
        props,
        mode,
        link,
        credit: 0,
        draining: false,
        dispositions: Vec::new(),
        detached: false,
    };
    r.run().await;
}

impl Receiver {
    async fn run(mut self) {
        let notify = self.sb.engine.watch(self.sb.queue_ref(&self.name));
        while !self.detached {
            while let Ok(event) = self.link.events.try_recv() {
                self.on_event(event);
            }
            if !self.dispositions.is_empty() {
                self.settle_all().await;
                continue;
            }
            if self.credit == 0 {
                if self.draining {
                    self.drained().await;
                    continue;
                }
                match self.link.events.recv().await {
                    Some(event) => self.on_event(event),
                    None => return,
                }
                continue;
            }
            let mut woken = std::pin::pin!(notify.notified());
            woken.as_mut().enable();
            let sent = self.deliver_some().await;
            if sent > 0 {
                continue;
            }
            if self.draining {
                self.drained().await;
                continue;
            }
            tokio::select! {
                event = self.link.events.recv() => match event {
                    Some(event) => self.on_event(event),
                    None => return,
                },
                _ = woken => {}
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }

    fn on_event(&mut self, event: LinkEvent) {
        match event {
            LinkEvent::Credit(n) => self.credit += n,
            LinkEvent::Drain => self.draining = true,
            LinkEvent::Disposition {
                delivery,
                tag,
                settled,
                state: Some(state),
            } if self.mode == Mode::PeekLock && settlement(&state).is_some() => {
                // A repeated disposition of a delivery already waiting is the same request.
                if !self.dispositions.iter().any(|(d, ..)| *d == delivery) {
                    self.dispositions.push((delivery, tag, settled, state));
                }
            }
            LinkEvent::Disposition { .. } | LinkEvent::Transfer(_) => {}
            LinkEvent::Detached(_) => self.detached = true,
        }
    }

    async fn drained(&mut self) {
        self.credit = 0;
        self.draining = false;
        if !self.link.handle.drained().await {
            self.detached = true;
        }
    }

    /// Locks or takes up to the credit, and sends what it got. Returns how many went out.
    async fn deliver_some(&mut self) -> u32 {
        let q = self.sb.queue_ref(&self.name);
        let max = self.credit.min(FETCH) as usize;
        let got = match self.mode {
            Mode::PeekLock => {
                self.sb
                    .engine
                    .lock(q, self.sub, max, self.props.lock_duration())
                    .await
            }
            Mode::ReceiveAndDelete => self.sb.engine.take(q, self.sub, max).await,
        };
        let messages = match got {
            Ok(m) => m,
            Err(e) => {
                self.fetch_failed(e).await;
                return 0;
            }
        };
        let mut sent = 0;
        for m in &messages {
            if !self.send(m).await {
                self.detached = true;
                break;
            }
            sent += 1;
        }
        self.credit -= sent;
        sent
    }

    async fn send(&self, m: &Message) -> bool {
        let locked = self.mode == Mode::PeekLock;
        let stamp = Stamp {
            locked_until: locked.then_some(m.visible_at),
            dead_letter_source: (self.sub == SubQueue::DeadLetter).then_some(self.name.as_str()),
        };
        let tag = if locked {
            token::tag(m.receipt)
        } else {
            rand::random::<[u8; 16]>()
        };
        let bytes = Bytes::from(deliver(m, &stamp));
        self.link
            .handle
            .send(Bytes::copy_from_slice(&tag), 0, bytes, !locked)
            .await
    }

    /// A fetch the engine could not serve: the entity is gone (detach), or the store is
    /// failing (wait, then try again).
    async fn fetch_failed(&mut self, e: Error) {
        match e {
            Error::QueueNotFound => {
                let e = amqp_error(
                    "amqp:not-found",
                    format!("The messaging entity '{}' could not be found.", self.name),
                );
                self.link.handle.detach(Some(e)).await;
                self.detached = true;
            }
            Error::Storage(_)
            | Error::InvalidArgument(_)
            | Error::QueueAlreadyExists
            | Error::EntityFull { .. }
            | Error::MessageNotFound
            | Error::PopReceiptMismatch
            | Error::LockLost => {
                tracing::warn!(entity = %self.name, error = %e, "receive failed; retrying");
                tokio::time::sleep(POLL).await;
            }
        }
    }

    /// Applies every pending disposition concurrently, then echoes each outcome.
    async fn settle_all(&mut self) {
        let pending = std::mem::take(&mut self.dispositions);
        let q = self.sb.queue_ref(&self.name);
        let engine = &self.sb.engine;
        let sub = self.sub;
        let results = join_all(pending.iter().map(|(_, tag, _, state)| async move {
            // Only terminal outcomes are queued (`received` settles nothing).
            let Some(how) = settlement(state) else {
                return Ok(());
            };
            let Some(receipt) = token::from_tag(tag) else {
                return Err(Error::LockLost);
            };
            engine.settle(q, sub, receipt, how).await.map(|_| ())
        }))
        .await;
        for ((delivery, _, settled, state), result) in pending.into_iter().zip(results) {
            if settled {
                continue;
            }
            let echo = match result {
                Ok(()) => applied(state),
                Err(e) => DeliveryState::Rejected(Rejected {
                    error: Some(settle_error(e)),
                }),
            };
            if !self.link.handle.echo(delivery, echo).await {
                self.detached = true;
                return;
            }
        }
    }
}

/// What a client's outcome asks of the engine; `None` for states that settle nothing.
fn settlement(state: &DeliveryState) -> Option<Settlement> {
    match state {
        DeliveryState::Accepted(_) => Some(Settlement::Complete),
        DeliveryState::Released(_) => Some(Settlement::Release),
        // Abandon whatever delivery-failed says: JS leaves it out, Python sets it.
        DeliveryState::Modified(Modified {
            undeliverable_here: Some(true),
            ..
        }) => Some(Settlement::Defer),
        DeliveryState::Modified(_) => Some(Settlement::Abandon),
        DeliveryState::Rejected(Rejected { error }) => {
            Some(Settlement::DeadLetter(dead_letter_info(error.as_ref())))
        }
        DeliveryState::Received(_) => None,
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// The reason and description a dead-letter carries: `com.microsoft:dead-letter`'s info map
/// (string or symbol keys), or a plain rejection's condition and description.
fn dead_letter_info(error: Option<&AmqpErr>) -> DeadLetterInfo {
    let Some(e) = error else {
        return DeadLetterInfo {
            reason: None,
            description: None,
        };
    };
    let info = |key: &str| {
        e.info.as_ref().and_then(|m| {
            m.iter().find_map(|(k, v)| match v {
                Value::String(s) if k.as_str() == key => Some(s.clone()),
                _ => None,
            })
        })
    };
    let condition = serde_amqp::to_value(&e.condition)
        .ok()
        .and_then(|v| match v {
            Value::Symbol(s) => Some(s.0),
            _ => None,
        })
        .unwrap_or_default();
    if condition == "com.microsoft:dead-letter" {
        DeadLetterInfo {
            reason: info("DeadLetterReason"),
            description: info("DeadLetterErrorDescription").or_else(|| e.description.clone()),
        }
    } else {
        DeadLetterInfo {
            reason: Some(condition),
            description: e.description.clone(),
        }
    }
}

/// The settled echo of an outcome that applied: the same outcome, with no error.
fn applied(state: DeliveryState) -> DeliveryState {
    match state {
        DeliveryState::Rejected(_) => DeliveryState::Rejected(Rejected { error: None }),
        other => other,
    }
}

/// The error an echo carries when a settlement failed; every variant is mapped.
fn settle_error(e: Error) -> AmqpErr {
    match e {
        Error::LockLost | Error::PopReceiptMismatch | Error::MessageNotFound => amqp_error(
            "com.microsoft:message-lock-lost",
            "The lock supplied is invalid. Either the lock expired, or the message has already been removed from the queue.",
        ),
        Error::QueueNotFound => amqp_error("amqp:not-found", "The messaging entity could not be found."),
        Error::Storage(e) => amqp_error("com.microsoft:server-busy", format!("The server is busy, try again: {e}")),
        Error::InvalidArgument(what) => amqp_error("amqp:invalid-field", what),
        Error::QueueAlreadyExists | Error::EntityFull { .. } => {
            amqp_error("amqp:internal-error", e.to_string())
        }
    }
}
