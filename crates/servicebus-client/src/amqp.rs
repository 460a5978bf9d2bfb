//! Messages over AMQP 1.0: one connection and session per [`Client`], a link per sender or
//! receiver, and `$management` requests for peeking.
//!
//! Authentication is SASL PLAIN with the connection string's key name and key, which Azure
//! Service Bus takes as well as Hematite (Microsoft, "AMQP 1.0 in Azure Service Bus: SASL
//! PLAIN"), so no `$cbs` token exchange is needed. Settlement follows the SDKs: complete is
//! `accepted`, abandon is `modified` (delivery failed), dead-letter is `rejected` with
//! `com.microsoft:dead-letter` and the reason in the error's info.

use std::time::Duration;

use fe2o3_amqp::connection::ConnectionHandle;
use fe2o3_amqp::link::delivery::{Delivery, DeliveryFut};
use fe2o3_amqp::link::receiver::CreditMode;
use fe2o3_amqp::link::{DetachError, LinkStateError, RecvError, SendError};
use fe2o3_amqp::sasl_profile::SaslProfile;
use fe2o3_amqp::session::SessionHandle;
use fe2o3_amqp::types::definitions::{self, Fields, ReceiverSettleMode, SenderSettleMode};
use fe2o3_amqp::types::messaging::{
    AmqpValue, ApplicationProperties, Body, Message, Modified, Outcome, Properties,
};
use fe2o3_amqp::types::primitives::{OrderedMap, SimpleValue, Symbol, Value};
use fe2o3_amqp::{Connection, Session};
use tokio::net::TcpStream;

use crate::message::{OutgoingMessage, ReceivedMessage};
use crate::{ConnectionString, Error};

/// The longest a close waits for the broker's answer. A benchmark run against RabbitMQ hung
/// for minutes on one link whose detach was never answered.
pub const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// How a receiver takes messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiveMode {
    /// Each message is locked until settled (complete, abandon, dead-letter) or the lock ends.
    PeekLock,
    /// Each message is removed as it is delivered.
    ReceiveAndDelete,
}

/// What to do with a locked message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settle {
    Complete,
    Abandon,
    DeadLetter {
        reason: Option<String>,
        description: Option<String>,
    },
}

fn condition_text(c: &definitions::ErrorCondition) -> String {
    match serde_amqp::to_value(c) {
        Ok(Value::Symbol(s)) => s.to_string(),
        _ => format!("{c:?}"),
    }
}

pub(crate) fn remote(e: definitions::Error) -> Error {
    Error::Amqp {
        condition: condition_text(&e.condition),
        description: e.description.unwrap_or_default(),
    }
}

fn detached(e: DetachError) -> Error {
    match e {
        DetachError::RemoteDetachedWithError(e) | DetachError::RemoteClosedWithError(e) => {
            remote(e)
        }
        other => Error::transport(other),
    }
}

fn link_state(e: LinkStateError) -> Error {
    match e {
        LinkStateError::RemoteDetachedWithError(e) | LinkStateError::RemoteClosedWithError(e) => {
            remote(e)
        }
        other => Error::transport(other),
    }
}

fn send_error(e: SendError) -> Error {
    match e {
        SendError::Detached(d) => detached(d),
        SendError::LinkStateError(l) => link_state(l),
        other => Error::transport(other),
    }
}

fn recv_error(e: RecvError) -> Error {
    match e {
        RecvError::LinkStateError(l) => link_state(l),
        other => Error::transport(other),
    }
}

fn sender_attach_error(e: fe2o3_amqp::link::SenderAttachError) -> Error {
    match e {
        fe2o3_amqp::link::SenderAttachError::RemoteClosedWithError(e) => remote(e),
        other => Error::transport(other),
    }
}

fn receiver_attach_error(e: fe2o3_amqp::link::ReceiverAttachError) -> Error {
    match e {
        fe2o3_amqp::link::ReceiverAttachError::RemoteClosedWithError(e) => remote(e),
        other => Error::transport(other),
    }
}

fn outcome(o: Outcome) -> Result<(), Error> {
    match o {
        Outcome::Accepted(_) => Ok(()),
        Outcome::Rejected(r) => Err(r.error.map(remote).unwrap_or_else(|| Error::Amqp {
            condition: "amqp:rejected".into(),
            description: "the broker rejected the message".into(),
        })),
        Outcome::Released(_) | Outcome::Modified(_) => Err(Error::Amqp {
            condition: "amqp:released".into(),
            description: "the broker did not take the message".into(),
        }),
        #[allow(unreachable_patterns)]
        other => Err(Error::Transport(format!("unexpected outcome {other:?}"))),
    }
}

/// One AMQP connection with one session.
pub struct Client {
    connection: ConnectionHandle<()>,
    session: SessionHandle<()>,
    links: u64,
}

impl Client {
    /// Connects as the connection string says: TLS unless it names the emulator.
    pub async fn connect(cs: &ConnectionString) -> Result<Client, Error> {
        let tcp = TcpStream::connect((cs.host.as_str(), cs.amqp_port()))
            .await
            .map_err(|e| {
                Error::Transport(format!("connecting to {}:{}: {e}", cs.host, cs.amqp_port()))
            })?;
        let _ = tcp.set_nodelay(true);
        let builder = Connection::builder()
            .container_id(format!("hematite-{}", uuid::Uuid::new_v4().simple()))
            .hostname(cs.host.as_str())
            .scheme("amqp")
            .sasl_profile(SaslProfile::Plain {
                username: cs.key_name.clone(),
                password: cs.key.clone(),
            })
            .max_frame_size(256 * 1024)
            .idle_time_out(120_000u32);
        let connection = if cs.tls() {
            let connector = tokio_rustls::TlsConnector::from(crate::tls::client_config()?);
            let name = rustls::pki_types::ServerName::try_from(cs.host.clone())
                .map_err(|e| Error::Config(format!("{}: {e}", cs.host)))?;
            let tls = connector
                .connect(name, tcp)
                .await
                .map_err(|e| Error::Transport(format!("TLS with {}: {e}", cs.host)))?;
            builder.open_with_stream(tls).await
        } else {
            builder.open_with_stream(tcp).await
        }
        .map_err(|e| match e {
            // Azure and Hematite answer a wrong key name or key so.
            fe2o3_amqp::connection::OpenError::SaslError { .. } => Error::Amqp {
                condition: "amqp:unauthorized-access".into(),
                description: format!("SASL PLAIN with key {:?} was refused: {e}", cs.key_name),
            },
            other => Error::transport(other),
        })?;
        let mut connection = connection;
        let session = Session::begin(&mut connection).await.map_err(|e| match e {
            fe2o3_amqp::session::BeginError::RemoteEndedWithError(e) => remote(e),
            other => Error::transport(other),
        })?;
        Ok(Client {
            connection,
            session,
            links: 0,
        })
    }

    fn link_name(&mut self, kind: &str) -> String {
        self.links += 1;
        format!("{kind}-{}-{}", self.links, uuid::Uuid::new_v4().simple())
    }

    pub async fn sender(&mut self, entity: &str) -> Result<Sender, Error> {
        let name = self.link_name("sender");
        let inner = fe2o3_amqp::Sender::builder()
            .name(name)
            .target(entity)
            .sender_settle_mode(SenderSettleMode::Unsettled)
            .attach(&mut self.session)
            .await
            .map_err(sender_attach_error)?;
        Ok(Sender { inner })
    }

    /// A receiver on `entity` (a queue, or `queue/$DeadLetterQueue`). With `prefetch`, the
    /// broker keeps that many messages coming ahead of [`Receiver::receive`] (fast, but a
    /// peek-lock message fetched ahead and never handed out stays locked until its lock
    /// ends, on Azure too); without, each `receive` asks for exactly what it wants.
    pub async fn receiver(
        &mut self,
        entity: &str,
        mode: ReceiveMode,
        prefetch: Option<u32>,
    ) -> Result<Receiver, Error> {
        let name = self.link_name("receiver");
        let settle = match mode {
            ReceiveMode::PeekLock => SenderSettleMode::Unsettled,
            ReceiveMode::ReceiveAndDelete => SenderSettleMode::Settled,
        };
        let inner = fe2o3_amqp::Receiver::builder()
            .name(name)
            .source(entity)
            .target(format!("hematite-cli-{}", uuid::Uuid::new_v4().simple()))
            .sender_settle_mode(settle)
            .receiver_settle_mode(ReceiverSettleMode::First)
            .credit_mode(match prefetch {
                Some(n) => CreditMode::Auto(n.max(1)),
                None => CreditMode::Manual,
            })
            .attach(&mut self.session)
            .await
            .map_err(receiver_attach_error)?;
        Ok(Receiver {
            inner,
            mode,
            manual: prefetch.is_none(),
            prefetch: prefetch.unwrap_or(0).max(1),
            unsettled_taken: 0,
        })
    }

    /// Up to `count` messages of `entity` from sequence number `from`, whatever their state,
    /// without locking them: the `com.microsoft:peek-message` operation of its `$management`
    /// node.
    pub async fn peek(
        &mut self,
        entity: &str,
        from: i64,
        count: i32,
    ) -> Result<Vec<ReceivedMessage>, Error> {
        let node = format!("{entity}/$management");
        let reply_to = format!("hematite-cli-{}", uuid::Uuid::new_v4().simple());
        let (sender_name, receiver_name) = (
            self.link_name("mgmt-sender"),
            self.link_name("mgmt-receiver"),
        );
        let mut sender = fe2o3_amqp::Sender::attach(&mut self.session, sender_name, node.as_str())
            .await
            .map_err(sender_attach_error)?;
        let mut receiver = fe2o3_amqp::Receiver::builder()
            .name(receiver_name)
            .source(node.as_str())
            .target(reply_to.as_str())
            .attach(&mut self.session)
            .await
            .map_err(receiver_attach_error)?;
        let mut body = OrderedMap::new();
        body.insert(
            Value::String("from-sequence-number".into()),
            Value::Long(from),
        );
        body.insert(Value::String("message-count".into()), Value::Int(count));
        let request = Message::builder()
            .properties(
                Properties::builder()
                    .message_id(uuid::Uuid::new_v4().to_string())
                    .reply_to(reply_to.as_str())
                    .build(),
            )
            .application_properties(
                ApplicationProperties::builder()
                    .insert(
                        "operation",
                        SimpleValue::String("com.microsoft:peek-message".into()),
                    )
                    .build(),
            )
            .value(Value::Map(body))
            .build();
        let result = async {
            outcome(sender.send(request).await.map_err(send_error)?)?;
            let reply: Delivery<Body<Value>> =
                tokio::time::timeout(Duration::from_secs(60), receiver.recv())
                    .await
                    .map_err(|_| {
                        Error::Transport("no answer to the peek request within 60 s".into())
                    })?
                    .map_err(recv_error)?;
            receiver.accept(&reply).await.map_err(Error::transport)?;
            peeked(reply.message())
        }
        .await;
        let _ = sender.close().await;
        let _ = receiver.close().await;
        result
    }

    /// Ends the session and closes the connection, waiting at most [`CLOSE_WAIT`] for each
    /// answer: a broker that never answers must not hang a command.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(CLOSE_WAIT, self.session.end()).await;
        let _ = tokio::time::timeout(CLOSE_WAIT, self.connection.close()).await;
    }
}

/// The messages of a peek answer: status 200 with `messages`, each an encoded message; 204
/// when there are none.
fn peeked(reply: &Message<Body<Value>>) -> Result<Vec<ReceivedMessage>, Error> {
    let props = reply.application_properties.as_ref();
    let status = props
        .and_then(|p| p.0.get("statusCode").or_else(|| p.0.get("status-code")))
        .and_then(|v| match v {
            SimpleValue::Int(n) => Some(*n),
            SimpleValue::Long(n) => Some(*n as i32),
            _ => None,
        })
        .unwrap_or(0);
    let text = |key: &str| {
        props
            .and_then(|p| p.0.get(key))
            .and_then(|v| match v {
                SimpleValue::String(s) => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_default()
    };
    match status {
        204 => return Ok(Vec::new()),
        200 => {}
        _ => {
            return Err(Error::Amqp {
                condition: text("errorCondition"),
                description: format!("{status}: {}", text("statusDescription")),
            })
        }
    }
    let Body::Value(AmqpValue(Value::Map(map))) = &reply.body else {
        return Err(Error::Transport("the peek answer has no map".into()));
    };
    let Some(Value::List(messages)) = map.get(&Value::String("messages".into())) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(messages.len());
    for m in messages {
        let Value::Map(m) = m else { continue };
        let Some(Value::Binary(bytes)) = m.get(&Value::String("message".into())) else {
            continue;
        };
        let decoded: fe2o3_amqp::types::messaging::message::__private::Deserializable<
            Message<Body<Value>>,
        > = serde_amqp::from_slice(bytes)
            .map_err(|e| Error::Transport(format!("a peeked message does not decode: {e}")))?;
        out.push(ReceivedMessage::from_amqp(&decoded.0));
    }
    Ok(out)
}

/// A sender link.
pub struct Sender {
    inner: fe2o3_amqp::Sender,
}

impl Sender {
    /// Sends one message and waits for the broker's outcome.
    pub async fn send(&mut self, m: &OutgoingMessage) -> Result<(), Error> {
        outcome(self.inner.send(m.to_amqp()).await.map_err(send_error)?)
    }

    /// Sends messages back to back, then waits for every outcome: as many in flight as the
    /// link's credit allows. Fails with the first refusal.
    pub async fn send_all(&mut self, messages: &[OutgoingMessage]) -> Result<(), Error> {
        let mut pending: Vec<DeliveryFut<Result<Outcome, SendError>>> =
            Vec::with_capacity(messages.len());
        for m in messages {
            pending.push(
                self.inner
                    .send_batchable(m.to_amqp())
                    .await
                    .map_err(send_error)?,
            );
        }
        for fut in pending {
            outcome(fut.await.map_err(send_error)?)?;
        }
        Ok(())
    }

    /// Puts one message on the wire without waiting for its outcome: many may be in flight
    /// on a link, each answered in turn.
    pub async fn start(&mut self, m: &OutgoingMessage) -> Result<Pending, Error> {
        let fut = self
            .inner
            .send_batchable(m.to_amqp())
            .await
            .map_err(send_error)?;
        Ok(Pending(fut))
    }

    /// Detaches the link, waiting at most [`CLOSE_WAIT`] for the broker's detach.
    pub async fn close(self) {
        let _ = tokio::time::timeout(CLOSE_WAIT, self.inner.close()).await;
    }
}

/// A message sent whose outcome has not been read yet.
pub struct Pending(DeliveryFut<Result<Outcome, SendError>>);

impl Pending {
    /// Waits for the broker's outcome: `Ok` when it accepted the message.
    pub async fn outcome(self) -> Result<(), Error> {
        outcome(self.0.await.map_err(send_error)?)
    }
}

/// A message received, with what settling it needs.
pub struct Received {
    pub message: ReceivedMessage,
    delivery: Delivery<Body<Value>>,
}

/// A receiver link.
pub struct Receiver {
    inner: fe2o3_amqp::Receiver,
    mode: ReceiveMode,
    /// Credit is given per `receive`, then drained.
    manual: bool,
    prefetch: u32,
    /// Deliveries taken since credit was last renewed by hand. fe2o3 renews automatic credit
    /// when the receiver settles, which a receive-and-delete receiver never does, so this
    /// one renews it itself (without, it stalled after its first `prefetch` messages).
    unsettled_taken: u32,
}

impl Receiver {
    /// Up to `max` messages, waiting at most `wait` in all. A receiver without prefetch
    /// grants exactly `max` credits, and at the end drains what is left, so that no message
    /// is locked for it that it does not hand out.
    pub async fn receive(&mut self, max: usize, wait: Duration) -> Result<Vec<Received>, Error> {
        let mut out = Vec::new();
        if self.manual {
            let credit = u32::try_from(max).unwrap_or(u32::MAX);
            self.inner
                .set_credit(credit)
                .await
                .map_err(Error::transport)?;
        }
        let deadline = tokio::time::Instant::now() + wait;
        self.take(&mut out, max, deadline).await?;
        if self.manual && out.len() < max {
            // Messages the broker sent before it saw the drain still arrive, and are ours.
            self.inner.drain().await.map_err(Error::transport)?;
            let grace = tokio::time::Instant::now() + Duration::from_millis(250);
            self.take(&mut out, max, grace).await?;
        }
        Ok(out)
    }

    async fn take(
        &mut self,
        out: &mut Vec<Received>,
        max: usize,
        until: tokio::time::Instant,
    ) -> Result<(), Error> {
        while out.len() < max {
            match tokio::time::timeout_at(until, self.inner.recv::<Body<Value>>()).await {
                Err(_) => break,
                Ok(r) => {
                    let delivery = r.map_err(recv_error)?;
                    out.push(Received {
                        message: ReceivedMessage::from_amqp(delivery.message()),
                        delivery,
                    });
                    self.renew_credit().await?;
                }
            }
        }
        Ok(())
    }

    async fn renew_credit(&mut self) -> Result<(), Error> {
        if self.manual || self.mode != ReceiveMode::ReceiveAndDelete {
            return Ok(());
        }
        self.unsettled_taken += 1;
        if self.unsettled_taken >= self.prefetch.div_ceil(2) {
            self.unsettled_taken = 0;
            self.inner
                .set_credit(self.prefetch)
                .await
                .map_err(Error::transport)?;
        }
        Ok(())
    }

    pub fn mode(&self) -> ReceiveMode {
        self.mode
    }

    pub async fn settle(&mut self, r: &Received, how: &Settle) -> Result<(), Error> {
        let done = match how {
            Settle::Complete => self.inner.accept(&r.delivery).await,
            Settle::Abandon => {
                let modified = Modified {
                    delivery_failed: Some(true),
                    undeliverable_here: None,
                    message_annotations: None,
                };
                self.inner.modify(&r.delivery, modified).await
            }
            Settle::DeadLetter {
                reason,
                description,
            } => {
                let mut info = Fields::new();
                if let Some(r) = reason {
                    info.insert(Symbol::from("DeadLetterReason"), Value::String(r.clone()));
                }
                if let Some(d) = description {
                    info.insert(
                        Symbol::from("DeadLetterErrorDescription"),
                        Value::String(d.clone()),
                    );
                }
                let error = definitions::Error::new(
                    definitions::ErrorCondition::Custom(Symbol::from("com.microsoft:dead-letter")),
                    None,
                    Some(info),
                );
                self.inner.reject(&r.delivery, error).await
            }
        };
        done.map_err(Error::transport)
    }

    /// Detaches the link, waiting at most [`CLOSE_WAIT`] for the broker's detach.
    pub async fn close(self) {
        let _ = tokio::time::timeout(CLOSE_WAIT, self.inner.close()).await;
    }
}
