//! A client's sender link to an entity: every transfer is enqueued and answered with a
//! settled `accepted` once it is on disk, or a settled `rejected` with the Service Bus error.
//!
//! Transfers that arrive while an enqueue waits for its fsync are not held up: they gather in
//! the link's queue (bounded by the credit the link gives), and the next enqueue takes them
//! all, so one fsync covers every frame that arrived meanwhile and a link's messages keep
//! their order. Credit comes back only as outcomes go out.

use std::sync::Arc;

use hematite_amqp::types::definitions::{Error as AmqpErr, ReceiverSettleMode};
use hematite_amqp::types::messaging::{Accepted, DeliveryState, Rejected};
use hematite_amqp::{AttachReply, Attaching, Delivery, LinkEvent};
use hematite_engine::{Error, Outgoing, SubQueue};

use crate::address::entity_path;
use crate::management::effective_ttl;
use crate::message::{read_sent, unbatch, BATCH_FORMAT};
use crate::namespace::QueueProperties;
use crate::sas::Right;
use crate::{amqp_error, detach_when_token_lapses, Connection, ServiceBus};

/// Messages a sending client may have in flight on one link, bounded so that a link holds
/// at most this many of its largest messages.
fn credit(props: &QueueProperties) -> u32 {
    (16 * 1024 * 1024 / props.max_message_bytes().max(1)).clamp(8, 256) as u32
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
    let props = match sb.entity(&conn, &name, &path, Right::Send) {
        Ok(p) => p,
        Err(e) => return link.refuse(e).await,
    };
    if sub == SubQueue::DeadLetter {
        let e = amqp_error(
            "amqp:not-allowed",
            "Messages cannot be sent to a dead-letter queue.",
        );
        return link.refuse(e).await;
    }
    let reply = AttachReply {
        source: link.attach.source.clone(),
        target: link.attach.target.clone(),
        snd_settle_mode: link.attach.snd_settle_mode.clone(),
        // pyamqp's sender waits for a settled outcome, which `first` promises.
        rcv_settle_mode: ReceiverSettleMode::First,
        // JS sizes its batches by this; 0 or absent breaks them.
        max_message_size: Some(props.max_message_bytes()),
        credit: credit(&props),
        ..Default::default()
    };
    let Some(mut link) = link.accept(reply).await else {
        return;
    };
    let _watch = detach_when_token_lapses(&conn, &path, Right::Send, link.handle.clone());
    let mut pending: Vec<Delivery> = Vec::new();
    loop {
        let Some(event) = link.events.recv().await else {
            return;
        };
        let mut detached = collect(event, &mut pending);
        while let Ok(more) = link.events.try_recv() {
            detached |= collect(more, &mut pending);
        }
        // Detached by either side: nobody can hear these outcomes, and a client that sends
        // again after re-attaching must not find its messages stored twice.
        if detached {
            return;
        }
        if pending.is_empty() {
            if link.events.is_closed() {
                return;
            }
            continue;
        }
        let outcomes = enqueue(&sb, &name, &props, &pending).await;
        for (d, outcome) in pending.drain(..).zip(outcomes) {
            if !link.handle.settle(d.id, outcome).await {
                return;
            }
        }
    }
}

/// Adds a transfer to `pending`; `true` once the link is detached.
fn collect(event: LinkEvent, pending: &mut Vec<Delivery>) -> bool {
    match event {
        LinkEvent::Transfer(d) => pending.push(d),
        LinkEvent::Detached(_) => return true,
        LinkEvent::Credit(_) | LinkEvent::Drain | LinkEvent::Disposition { .. } => {}
    }
    false
}

fn rejected(e: AmqpErr) -> DeliveryState {
    DeliveryState::Rejected(Rejected { error: Some(e) })
}

/// The messages of one transfer, or why it is refused.
fn messages(d: &Delivery, props: &QueueProperties) -> Result<Vec<Outgoing>, AmqpErr> {
    let bodies: Vec<&[u8]> = if d.format == BATCH_FORMAT {
        unbatch(&d.payload).map_err(|_| malformed())?
    } else {
        vec![&d.payload[..]]
    };
    bodies
        .into_iter()
        .map(|body| {
            let sent = read_sent(body).map_err(|_| malformed())?;
            Ok(Outgoing {
                body: body.to_vec(),
                ttl: effective_ttl(sent.ttl, props.default_ttl()),
                scheduled_at: sent.scheduled,
            })
        })
        .collect()
}

fn malformed() -> AmqpErr {
    amqp_error(
        "amqp:decode-error",
        "The message is not a valid AMQP message.",
    )
}

/// Enqueues every valid message of `deliveries` in one engine call; returns each delivery's
/// outcome, in order.
async fn enqueue(
    sb: &ServiceBus,
    name: &str,
    props: &QueueProperties,
    deliveries: &[Delivery],
) -> Vec<DeliveryState> {
    let mut outcomes = Vec::with_capacity(deliveries.len());
    let mut batch = Vec::new();
    for d in deliveries {
        match messages(d, props) {
            Ok(ms) => {
                batch.extend(ms);
                outcomes.push(None);
            }
            Err(e) => outcomes.push(Some(rejected(e))),
        }
    }
    let fill = if batch.is_empty() {
        DeliveryState::Accepted(Accepted {})
    } else {
        let max = props.max_size_bytes();
        match sb.engine.enqueue(sb.queue_ref(name), batch, max).await {
            Ok(_) => DeliveryState::Accepted(Accepted {}),
            Err(e) => rejected(send_error(sb, e, name, props)),
        }
    };
    outcomes
        .into_iter()
        .map(|o| o.unwrap_or_else(|| fill.clone()))
        .collect()
}

/// Service Bus refuses sends once an entity (with its dead-letter sub-queue) holds
/// MaxSizeInMegabytes; what arrives together may overshoot it, as on Azure, where the check
/// is also made before the write. The store makes the check as part of the append.
pub(crate) fn quota_exceeded(
    sb: &ServiceBus,
    name: &str,
    props: &QueueProperties,
    size: u64,
) -> AmqpErr {
    amqp_error(
        "amqp:resource-limit-exceeded",
        format!(
            "The maximum entity size has been reached or exceeded for Queue: '{}:Queue:{name}'. Size of entity in bytes:{size}, Max entity size in bytes: {}.",
            sb.namespace.name,
            props.max_size_bytes()
        ),
    )
}

/// The rejection an engine error gives a send; every variant is mapped.
fn send_error(sb: &ServiceBus, e: Error, name: &str, props: &QueueProperties) -> AmqpErr {
    match e {
        Error::EntityFull { size_bytes } => quota_exceeded(sb, name, props, size_bytes),
        Error::QueueNotFound => amqp_error(
            "amqp:not-found",
            format!("The messaging entity '{name}' could not be found."),
        ),
        Error::Storage(e) => amqp_error(
            "com.microsoft:server-busy",
            format!("The server is busy, try again: {e}"),
        ),
        Error::InvalidArgument(what) => amqp_error("amqp:invalid-field", what),
        Error::QueueAlreadyExists
        | Error::MessageNotFound
        | Error::PopReceiptMismatch
        | Error::LockLost => amqp_error("amqp:internal-error", e.to_string()),
    }
}
