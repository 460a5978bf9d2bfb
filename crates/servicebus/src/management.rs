//! `<entity>/$management` operations: peek, lock renewal, settlement by lock token, receive
//! of deferred messages, scheduling and its cancellation.
//!
//! Request and response bodies are AMQP maps with string keys; lock tokens travel as
//! `uuid`s, sequence numbers as `long`s (Microsoft, "AMQP 1.0 in Azure Service Bus: request-
//! response-based operations").

use std::time::Duration;

use hematite_engine::{
    DeadLetterInfo, Error, Message, MessageState, Outgoing, Settlement, SubQueue, Ttl,
};
use serde_amqp::primitives::{Array, OrderedMap, Timestamp as AmqpTimestamp};
use serde_amqp::Value;
use serde_bytes::ByteBuf;

use crate::message::{deliver, read_sent, Stamp};
use crate::namespace::QueueProperties;
use crate::node::{Request, Response};
use crate::sas::Right;
use crate::{token, Connection, ServiceBus};

/// Answers one management request on entity `name`'s `sub` queue, whose node is at `node`.
pub(crate) async fn handle(
    sb: &ServiceBus,
    conn: &Connection,
    name: &str,
    sub: SubQueue,
    node: &str,
    req: &Request,
) -> Response {
    let Some(props) = sb.queue(name) else {
        return Response::error(
            404,
            "amqp:not-found",
            format!("The messaging entity '{name}' could not be found."),
        );
    };
    let op = req.string("operation").unwrap_or_default();
    // Scheduling sends; everything else here acts on received messages.
    let right = match op {
        "com.microsoft:schedule-message" | "com.microsoft:cancel-scheduled-message" => Right::Send,
        _ => Right::Listen,
    };
    if right == Right::Send && sub == SubQueue::DeadLetter {
        return Response::error(
            400,
            "amqp:not-allowed",
            "Messages cannot be scheduled on a dead-letter queue.",
        );
    }
    // Checked on the node's own path: a token for the entity covers it, and so does one for
    // the node alone, which is what the JS SDK puts on $cbs for its management link.
    if !conn.authorized(node, right) {
        let e = sb.unauthorized(conn, node, right);
        return Response::error(
            401,
            "amqp:unauthorized-access",
            e.description.unwrap_or_default(),
        );
    }
    let result = match op {
        "com.microsoft:peek-message" => peek(sb, name, sub, req).await,
        "com.microsoft:renew-lock" => renew(sb, name, sub, req, props.lock_duration()).await,
        "com.microsoft:update-disposition" => dispose(sb, name, sub, req).await,
        "com.microsoft:receive-by-sequence-number" => {
            deferred(sb, name, sub, req, props.lock_duration()).await
        }
        "com.microsoft:schedule-message" => schedule(sb, name, req, &props).await,
        "com.microsoft:cancel-scheduled-message" => cancel(sb, name, req).await,
        other => Err(Response::error(
            400,
            "amqp:not-implemented",
            format!("The operation '{other}' is not supported."),
        )),
    };
    result.unwrap_or_else(|r| r)
}

type Outcome = Result<Response, Response>;

/// The response an engine error gives; every variant is mapped.
fn engine_error(e: Error) -> Response {
    match e {
        Error::QueueNotFound => Response::error(404, "amqp:not-found", "The messaging entity could not be found."),
        Error::LockLost | Error::PopReceiptMismatch | Error::MessageNotFound => Response::error(
            410,
            "com.microsoft:message-lock-lost",
            "The lock supplied is invalid. Either the lock expired, or the message has already been removed from the queue.",
        ),
        Error::QueueAlreadyExists => Response::error(409, "com.microsoft:entity-already-exists", e.to_string()),
        Error::EntityFull { .. } => Response::error(403, "amqp:resource-limit-exceeded", e.to_string()),
        Error::InvalidArgument(what) => Response::error(400, "amqp:invalid-field", what),
        Error::Storage(e) => Response::error(503, "com.microsoft:server-busy", format!("The server is busy: {e}")),
    }
}

fn bad(what: impl Into<String>) -> Response {
    Response::error(400, "amqp:invalid-field", what)
}

fn field<'a>(body: &'a Value, key: &str) -> Option<&'a Value> {
    let Value::Map(map) = body else {
        return None;
    };
    map.iter().find_map(|(k, v)| match k {
        Value::String(s) if s == key => Some(v),
        Value::Symbol(s) if s.as_str() == key => Some(v),
        _ => None,
    })
}

fn integer(v: &Value) -> Option<i64> {
    match v {
        Value::Long(n) => Some(*n),
        Value::Int(n) => Some(i64::from(*n)),
        Value::Short(n) => Some(i64::from(*n)),
        Value::Byte(n) => Some(i64::from(*n)),
        Value::Ulong(n) => i64::try_from(*n).ok(),
        Value::Uint(n) => Some(i64::from(*n)),
        Value::Ushort(n) => Some(i64::from(*n)),
        Value::Ubyte(n) => Some(i64::from(*n)),
        _ => None,
    }
}

fn items(v: &Value) -> Option<&[Value]> {
    match v {
        Value::Array(Array(items)) | Value::List(items) => Some(items),
        _ => None,
    }
}

/// The most lock tokens or sequence numbers one request may name: each is an engine call,
/// and the SDKs send a receiver's batch at a time.
const MAX_LIST: usize = 4096;

fn listed<'a>(req: &'a Request, key: &str) -> Result<&'a [Value], Response> {
    let list = field(&req.body, key)
        .and_then(items)
        .ok_or_else(|| bad(format!("{key} is required")))?;
    if list.len() > MAX_LIST {
        return Err(bad(format!("{key} may name at most {MAX_LIST} items")));
    }
    Ok(list)
}

fn sequences(req: &Request) -> Result<Vec<u64>, Response> {
    listed(req, "sequence-numbers")?
        .iter()
        .map(|v| integer(v).and_then(|n| u64::try_from(n).ok()))
        .collect::<Option<Vec<u64>>>()
        .ok_or_else(|| bad("sequence-numbers must be longs"))
}

fn lock_tokens(req: &Request) -> Result<Vec<hematite_engine::PopReceipt>, Response> {
    listed(req, "lock-tokens")?
        .iter()
        .map(|v| match v {
            Value::Uuid(u) => Some(token::from_uuid(u)),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| bad("lock-tokens must be uuids"))
}

fn map(entries: Vec<(&str, Value)>) -> Value {
    let mut m = OrderedMap::new();
    for (k, v) in entries {
        m.insert(Value::String(k.to_owned()), v);
    }
    Value::Map(m)
}

fn encoded(name: &str, sub: SubQueue, m: &Message, locked: bool) -> Value {
    let source = (sub == SubQueue::DeadLetter).then_some(name);
    let stamp = Stamp {
        locked_until: locked.then_some(m.visible_at),
        dead_letter_source: source.filter(|_| m.state == MessageState::DeadLettered),
    };
    Value::Binary(ByteBuf::from(deliver(m, &stamp)))
}

async fn peek(sb: &ServiceBus, name: &str, sub: SubQueue, req: &Request) -> Outcome {
    let from = field(&req.body, "from-sequence-number")
        .and_then(integer)
        .unwrap_or(0)
        .max(0) as u64;
    let count = field(&req.body, "message-count")
        .and_then(integer)
        .unwrap_or(1)
        .clamp(1, 1000) as usize;
    let messages = sb
        .engine
        .browse(sb.queue_ref(name), sub, from, count)
        .await
        .map_err(engine_error)?;
    if messages.is_empty() {
        return Ok(Response {
            status: 204,
            description: "No messages".into(),
            condition: Some("com.microsoft:message-not-found"),
            body: Value::Null,
        });
    }
    let list = messages
        .iter()
        .map(|m| map(vec![("message", encoded(name, sub, m, false))]))
        .collect();
    Ok(Response::ok(map(vec![("messages", Value::List(list))])))
}

async fn renew(
    sb: &ServiceBus,
    name: &str,
    sub: SubQueue,
    req: &Request,
    lock: Duration,
) -> Outcome {
    let mut expirations = Vec::new();
    for t in lock_tokens(req)? {
        let m = sb
            .engine
            .renew_lock(sb.queue_ref(name), sub, t, lock)
            .await
            .map_err(engine_error)?;
        expirations.push(Value::Timestamp(AmqpTimestamp::from_milliseconds(
            m.visible_at.as_millis(),
        )));
    }
    Ok(Response::ok(map(vec![(
        "expirations",
        Value::Array(Array(expirations)),
    )])))
}

async fn dispose(sb: &ServiceBus, name: &str, sub: SubQueue, req: &Request) -> Outcome {
    let text = |key: &str| match field(&req.body, key) {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    let how = match text("disposition-status").as_deref() {
        Some("completed") => Settlement::Complete,
        Some("abandoned") => Settlement::Abandon,
        // Sic: the service's own spelling.
        Some("defered" | "deferred") => Settlement::Defer,
        Some("suspended") => Settlement::DeadLetter(DeadLetterInfo {
            reason: text("deadletter-reason"),
            description: text("deadletter-description"),
        }),
        _ => {
            return Err(bad(
                "disposition-status must be completed, abandoned, defered or suspended",
            ))
        }
    };
    for t in lock_tokens(req)? {
        sb.engine
            .settle(sb.queue_ref(name), sub, t, how.clone())
            .await
            .map_err(engine_error)?;
    }
    Ok(Response::ok(map(vec![])))
}

async fn deferred(
    sb: &ServiceBus,
    name: &str,
    sub: SubQueue,
    req: &Request,
    lock: Duration,
) -> Outcome {
    let wanted = sequences(req)?;
    // receiver-settle-mode: 1 (second) is peek-lock, 0 (first) receive-and-delete.
    let peek_lock = field(&req.body, "receiver-settle-mode")
        .and_then(integer)
        .unwrap_or(1)
        == 1;
    let q = sb.queue_ref(name);
    let got = sb
        .engine
        .lock_deferred(q, sub, wanted.clone(), lock)
        .await
        .map_err(engine_error)?;
    if got.len() < wanted.len() {
        // Azure fails the whole call when any of them is not a deferred message.
        for m in &got {
            let _ = sb.engine.settle(q, sub, m.receipt, Settlement::Defer).await;
        }
        return Err(Response::error(
            404,
            "com.microsoft:message-not-found",
            "Failed to lock one or more specified messages. Either the message is already locked, or it does not exist, or it is not deferred.",
        ));
    }
    let mut list = Vec::new();
    for m in &got {
        let bytes = encoded(name, sub, m, peek_lock);
        if !peek_lock {
            sb.engine
                .settle(q, sub, m.receipt, Settlement::Complete)
                .await
                .map_err(engine_error)?;
        }
        list.push(map(vec![
            ("lock-token", Value::Uuid(token::to_uuid(m.receipt))),
            ("message", bytes),
        ]));
    }
    Ok(Response::ok(map(vec![("messages", Value::List(list))])))
}

async fn schedule(sb: &ServiceBus, name: &str, req: &Request, props: &QueueProperties) -> Outcome {
    let default_ttl = props.default_ttl();
    let entries = field(&req.body, "messages")
        .and_then(items)
        .ok_or_else(|| bad("messages is required"))?;
    let mut batch = Vec::with_capacity(entries.len());
    for e in entries {
        let Some(Value::Binary(bytes)) = field(e, "message") else {
            return Err(bad("each scheduled message needs its encoded message"));
        };
        let sent =
            read_sent(bytes).map_err(|_| bad("a scheduled message is not a valid AMQP message"))?;
        let scheduled = sent
            .scheduled
            .ok_or_else(|| bad("a scheduled message needs x-opt-scheduled-enqueue-time"))?;
        batch.push(Outgoing {
            body: bytes.to_vec(),
            ttl: effective_ttl(sent.ttl, default_ttl),
            scheduled_at: Some(scheduled),
        });
    }
    let stored = sb
        .engine
        .enqueue(sb.queue_ref(name), batch, props.max_size_bytes())
        .await
        .map_err(|e| match e {
            Error::EntityFull { size_bytes } => {
                let full = crate::send::quota_exceeded(sb, name, props, size_bytes);
                let description = full.description.unwrap_or_default();
                Response::error(403, "amqp:resource-limit-exceeded", description)
            }
            e => engine_error(e),
        })?;
    let numbers = stored
        .iter()
        .map(|m| Value::Long(m.sequence as i64))
        .collect();
    Ok(Response::ok(map(vec![(
        "sequence-numbers",
        Value::Array(Array(numbers)),
    )])))
}

async fn cancel(sb: &ServiceBus, name: &str, req: &Request) -> Outcome {
    let wanted = sequences(req)?;
    sb.engine
        .cancel_scheduled(sb.queue_ref(name), wanted)
        .await
        .map_err(engine_error)?;
    Ok(Response::ok(map(vec![])))
}

/// A message's TTL, capped by its entity's default as Service Bus does.
pub(crate) fn effective_ttl(sent: Option<Duration>, default: Option<Duration>) -> Ttl {
    match (sent, default) {
        (Some(a), Some(b)) => Ttl::After(a.min(b)),
        (Some(t), None) | (None, Some(t)) => Ttl::After(t),
        (None, None) => Ttl::Never,
    }
}
