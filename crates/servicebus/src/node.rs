//! Request/response nodes (`$cbs` and `<entity>/$management`): a client attaches a sender link
//! for its requests and a receiver link for the answers, and each answer goes back on the
//! receiver link its request named.
//!
//! The clients differ in how they name it: JS puts the receiver link's name (or target) in
//! `reply-to`; Python puts the node's own address there, which cannot tell two clients apart,
//! so the answer goes to that node's receiver link in the request's session. Answers are sent
//! pre-settled: pyamqp never settles them, and a broker that waited for it would stall the
//! next request.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use hematite_amqp::types::definitions::ReceiverSettleMode;
use hematite_amqp::types::messaging::{
    Accepted, AmqpValue, ApplicationProperties, DeliveryState, MessageId as AmqpMessageId,
    Properties,
};
use hematite_amqp::types::primitives::SimpleValue;
use hematite_amqp::{AttachReply, Attaching, LinkEvent, SessionId};
use hematite_engine::SubQueue;
use serde_amqp::primitives::OrderedMap;
use serde_amqp::Value;
use tokio::sync::mpsc;

use crate::message::split;
use crate::{management, sas, Connection, ServiceBus};

/// A request as a node reads it.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub message_id: Option<AmqpMessageId>,
    pub reply_to: Option<String>,
    pub properties: OrderedMap<String, SimpleValue>,
    pub body: Value,
}

impl Request {
    pub fn parse(bytes: &[u8]) -> Option<Request> {
        let s = split(bytes).ok()?;
        let props: Properties = match s.properties {
            Some(p) => hematite_amqp::codec::decode(p).ok()?,
            None => Properties::default(),
        };
        let app: OrderedMap<String, SimpleValue> = match s.application_properties {
            Some(a) => {
                hematite_amqp::codec::decode::<ApplicationProperties>(a)
                    .ok()?
                    .0
            }
            None => OrderedMap::new(),
        };
        let body = if s.rest.is_empty() {
            Value::Null
        } else {
            let len = hematite_amqp::codec::value_len(s.rest).ok()?;
            hematite_amqp::codec::decode::<AmqpValue<Value>>(&s.rest[..len])
                .ok()?
                .0
        };
        Some(Request {
            message_id: props.message_id,
            reply_to: props.reply_to,
            properties: app,
            body,
        })
    }

    pub fn string(&self, key: &str) -> Option<&str> {
        match self.properties.get(key) {
            Some(SimpleValue::String(s)) => Some(s),
            Some(SimpleValue::Symbol(s)) => Some(s.as_str()),
            _ => None,
        }
    }
}

/// A response: status, description, an error condition when it failed, and a body.
#[derive(Debug, Clone)]
pub(crate) struct Response {
    pub status: i32,
    pub description: String,
    pub condition: Option<&'static str>,
    pub body: Value,
}

impl Response {
    pub fn ok(body: Value) -> Self {
        Response {
            status: 200,
            description: "OK".into(),
            condition: None,
            body,
        }
    }

    pub fn error(status: i32, condition: &'static str, description: impl Into<String>) -> Self {
        Response {
            status,
            description: description.into(),
            condition: Some(condition),
            body: Value::Null,
        }
    }

    /// Encodes the response to `request`; `$cbs` spells its keys with hyphens,
    /// `$management` in camel case.
    pub fn encode(&self, request: &Request, cbs: bool) -> Vec<u8> {
        let props = Properties {
            // The same AMQP type as the request's id: JS matches a string, Python a uuid.
            correlation_id: request.message_id.clone(),
            ..Default::default()
        };
        let (status, description, condition) = if cbs {
            ("status-code", "status-description", "error-condition")
        } else {
            ("statusCode", "statusDescription", "errorCondition")
        };
        let mut app = OrderedMap::new();
        app.insert(status.to_owned(), SimpleValue::Int(self.status));
        app.insert(
            description.to_owned(),
            SimpleValue::String(self.description.clone()),
        );
        if let Some(c) = self.condition {
            app.insert(condition.to_owned(), SimpleValue::Symbol(c.into()));
        }
        let mut out = serde_amqp::to_vec(&props).unwrap_or_default();
        out.extend(serde_amqp::to_vec(&ApplicationProperties(app)).unwrap_or_default());
        out.extend(serde_amqp::to_vec(&AmqpValue(self.body.clone())).unwrap_or_default());
        out
    }
}

/// The receiver links answers go out on.
#[derive(Default)]
pub(crate) struct Replies {
    links: Mutex<Vec<Reply>>,
}

struct Reply {
    session: SessionId,
    /// The node's path (`$cbs`, `queue/$management`).
    node: String,
    /// The link's name and its target address: what JS puts in `reply-to`.
    name: String,
    target: Option<String>,
    tx: mpsc::Sender<Vec<u8>>,
}

/// Answers waiting for a reply link's credit. When they are this many, the request task waits
/// before settling its request, so the request link's credit (and the client) waits too.
const WAITING_ANSWERS: usize = 16;

impl Replies {
    fn add(&self, reply: Reply) {
        self.lock().push(reply);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Reply>> {
        self.links.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends `answer` to the link `reply_to` names, else to `node`'s link in `session`.
    async fn send(&self, session: SessionId, node: &str, reply_to: Option<&str>, answer: Vec<u8>) {
        let tx = self.choose(session, node, reply_to);
        match tx {
            Some(tx) => {
                let _ = tx.send(answer).await;
            }
            None => tracing::debug!(node, "no link to answer on"),
        }
    }

    fn choose(
        &self,
        session: SessionId,
        node: &str,
        reply_to: Option<&str>,
    ) -> Option<mpsc::Sender<Vec<u8>>> {
        let mut links = self.lock();
        links.retain(|r| !r.tx.is_closed());
        let named = reply_to.and_then(|to| {
            links
                .iter()
                .find(|r| r.name == to || r.target.as_deref() == Some(to))
        });
        let chosen = named.or_else(|| {
            links
                .iter()
                .find(|r| r.session == session && r.node == node)
        });
        chosen.map(|r| r.tx.clone())
    }
}

/// A receiver link of a node: answers queued for it go out as its credit allows.
pub(crate) async fn replies(conn: Arc<Connection>, link: Attaching, node: String) {
    let reply = AttachReply {
        source: link.attach.source.clone(),
        target: link.attach.target.clone(),
        snd_settle_mode: link.attach.snd_settle_mode.clone(),
        rcv_settle_mode: ReceiverSettleMode::First,
        ..Default::default()
    };
    let session = link.session;
    let name = link.attach.name.clone();
    let target = link.attach.target.as_ref().and_then(|t| match t.as_ref() {
        hematite_amqp::types::messaging::TargetArchetype::Target(t) => t.address.clone(),
    });
    // Registered before the attach is answered: a client may send its first request as soon
    // as it sees the answer, and that request's answer must find this link.
    let (tx, mut rx) = mpsc::channel(WAITING_ANSWERS);
    conn.replies.add(Reply {
        session,
        node,
        name,
        target,
        tx,
    });
    let Some(mut link) = link.accept(reply).await else {
        return;
    };
    let mut credit = 0u32;
    let mut next_tag = 0u128;
    loop {
        tokio::select! {
            event = link.events.recv() => match event {
                Some(LinkEvent::Credit(n)) => credit += n,
                Some(LinkEvent::Drain) => {
                    credit = 0;
                    link.handle.drained().await;
                }
                Some(LinkEvent::Detached(_)) | None => return,
                Some(LinkEvent::Transfer(_) | LinkEvent::Disposition { .. }) => {}
            },
            // Answers are taken only as the link's credit allows; the rest wait in the channel.
            answer = rx.recv(), if credit > 0 => match answer {
                Some(a) => {
                    credit -= 1;
                    next_tag += 1;
                    let tag = Bytes::copy_from_slice(&next_tag.to_be_bytes());
                    if !link.handle.send(tag, 0, Bytes::from(a), true).await {
                        return;
                    }
                }
                None => return,
            },
        }
    }
}

/// The largest request a node takes: a token for `$cbs`; for `$management`, the entity's
/// message size (Azure holds a request to it too) but at least 1 MiB, and a little room. It
/// bounds what a connection may hold (`amqp::inbound`), so it is not the protocol's maximum.
fn request_limit(sb: &ServiceBus, entity: Option<&(String, SubQueue)>) -> u64 {
    match entity.and_then(|(name, _)| sb.queue(name)) {
        None => 64 * 1024,
        // One message to schedule, or lists of tokens and sequence numbers, with room to spare.
        Some(props) => props.max_message_bytes().max(1 << 20) + 64 * 1024,
    }
}

/// A sender link of a node: each request is answered, then accepted.
pub(crate) async fn requests(
    sb: Arc<ServiceBus>,
    conn: Arc<Connection>,
    link: Attaching,
    entity: Option<(String, SubQueue)>,
) {
    let node = match &entity {
        None => "$cbs".to_owned(),
        Some((name, sub)) => crate::address::management_path(name, *sub),
    };
    if let Some((name, _)) = &entity {
        sb.ensure_known(name).await;
        // Either claim opens the node; each operation then needs its own (management.rs).
        let open = sb
            .entity(&conn, name, &node, crate::sas::Right::Listen)
            .or_else(|_| sb.entity(&conn, name, &node, crate::sas::Right::Send));
        if let Err(e) = open {
            link.refuse(e).await;
            return;
        }
    }
    let reply = AttachReply {
        source: link.attach.source.clone(),
        target: link.attach.target.clone(),
        snd_settle_mode: link.attach.snd_settle_mode.clone(),
        rcv_settle_mode: ReceiverSettleMode::First,
        max_message_size: Some(request_limit(&sb, entity.as_ref())),
        // Requests are answered one after another; a few in flight are plenty.
        credit: 8,
        ..Default::default()
    };
    let session = link.session;
    let Some(mut link) = link.accept(reply).await else {
        return;
    };
    while let Some(event) = link.events.recv().await {
        let delivery = match event {
            LinkEvent::Transfer(d) => d,
            LinkEvent::Detached(_) => return,
            LinkEvent::Credit(_) | LinkEvent::Drain | LinkEvent::Disposition { .. } => continue,
        };
        let answer = match Request::parse(&delivery.payload) {
            Some(request) => {
                let response = match &entity {
                    None => put_token(&sb, &conn, &request),
                    Some((name, sub)) => {
                        management::handle(&sb, &conn, name, *sub, &node, &request).await
                    }
                };
                Some((
                    response.encode(&request, entity.is_none()),
                    request.reply_to,
                ))
            }
            None => None,
        };
        if let Some((bytes, reply_to)) = answer {
            conn.replies
                .send(session, &node, reply_to.as_deref(), bytes)
                .await;
        }
        let accepted = DeliveryState::Accepted(Accepted {});
        if !link.handle.settle(delivery.id, accepted).await {
            return;
        }
    }
}

/// `put-token`: a valid SAS token grants its resource to the connection until it expires.
fn put_token(sb: &ServiceBus, conn: &Connection, request: &Request) -> Response {
    if request.string("operation") != Some("put-token") {
        return Response::error(400, "amqp:not-implemented", "Only put-token is supported.");
    }
    let token = match &request.body {
        Value::String(s) => s.as_str(),
        _ => return Response::error(400, "amqp:invalid-field", "The token must be a string."),
    };
    match sas::validate(token, &sb.namespace.keys, crate::now_secs()) {
        Ok(grant) => {
            let mut grants = conn.grants.lock().unwrap_or_else(|e| e.into_inner());
            // A renewed token replaces the one for the same scope and rights, so a
            // long-lived connection renewing every few minutes does not pile them up.
            grants.retain(|g| g.scope != grant.scope || g.rights != grant.rights);
            grants.push(grant);
            Response {
                status: 202,
                description: "Accepted".into(),
                condition: None,
                body: Value::Null,
            }
        }
        Err(e) => Response::error(
            401,
            "amqp:unauthorized-access",
            format!("InvalidSignature: {e}"),
        ),
    }
}
