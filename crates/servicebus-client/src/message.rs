//! Messages as the CLI and the benchmark see them: a body of bytes (sent as one data section,
//! as the SDKs send strings and bytes) and the properties Service Bus stamps on delivery.

use fe2o3_amqp_types::messaging::{Body, Data, Message, MessageId};
use fe2o3_amqp_types::primitives::{Binary, Value};
use time::OffsetDateTime;

/// A message to send.
#[derive(Debug, Clone)]
pub struct OutgoingMessage {
    pub body: Vec<u8>,
    pub message_id: Option<String>,
    /// When it becomes receivable (a scheduled message).
    pub scheduled_at: Option<OffsetDateTime>,
}

impl OutgoingMessage {
    pub fn new(body: impl Into<Vec<u8>>) -> Self {
        OutgoingMessage {
            body: body.into(),
            message_id: None,
            scheduled_at: None,
        }
    }

    pub(crate) fn to_amqp(&self) -> Message<Data> {
        let mut m = Message::builder().data(Binary::from(self.body.clone()));
        if let Some(id) = &self.message_id {
            m = m.properties(
                fe2o3_amqp_types::messaging::Properties::builder()
                    .message_id(MessageId::String(id.clone()))
                    .build(),
            );
        }
        let mut m = m.build();
        if let Some(at) = self.scheduled_at {
            let mut annotations = fe2o3_amqp_types::messaging::MessageAnnotations::default();
            let ms = (at.unix_timestamp_nanos() / 1_000_000) as i64;
            annotations.insert(
                fe2o3_amqp_types::messaging::annotations::OwnedKey::Symbol(
                    "x-opt-scheduled-enqueue-time".into(),
                ),
                Value::Timestamp(fe2o3_amqp_types::primitives::Timestamp::from_milliseconds(
                    ms,
                )),
            );
            m.message_annotations = Some(annotations);
        }
        m
    }
}

/// A message as delivered.
#[derive(Debug, Clone)]
pub struct ReceivedMessage {
    pub body: Vec<u8>,
    pub message_id: Option<String>,
    pub sequence_number: Option<i64>,
    pub enqueued_at: Option<OffsetDateTime>,
    pub delivery_count: u32,
    pub dead_letter_reason: Option<String>,
    pub dead_letter_description: Option<String>,
}

impl ReceivedMessage {
    /// The body as text: UTF-8 where it is, lossy otherwise.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub(crate) fn from_amqp(m: &Message<Body<Value>>) -> Self {
        let body = match &m.body {
            Body::Data(sections) => sections.iter().flat_map(|d| d.0.iter().copied()).collect(),
            Body::Value(v) => match &v.0 {
                Value::String(s) => s.clone().into_bytes(),
                Value::Binary(b) => b.to_vec(),
                other => format!("{other:?}").into_bytes(),
            },
            Body::Sequence(s) => format!("{s:?}").into_bytes(),
            Body::Empty => Vec::new(),
        };
        let annotation = |key: &str| {
            m.message_annotations.as_ref().and_then(|a| {
                a.iter().find_map(|(k, v)| match k {
                    fe2o3_amqp_types::messaging::annotations::OwnedKey::Symbol(s)
                        if s.as_str() == key =>
                    {
                        Some(v.clone())
                    }
                    _ => None,
                })
            })
        };
        let property = |key: &str| {
            m.application_properties
                .as_ref()
                .and_then(|p| p.0.get(key))
                .and_then(|v| match v {
                    fe2o3_amqp_types::primitives::SimpleValue::String(s) => Some(s.clone()),
                    _ => None,
                })
        };
        let message_id = m
            .properties
            .as_ref()
            .and_then(|p| p.message_id.as_ref())
            .map(|id| match id {
                MessageId::String(s) => s.clone(),
                MessageId::Ulong(n) => n.to_string(),
                MessageId::Uuid(u) => format!("{u:?}"),
                MessageId::Binary(b) => format!("{b:?}"),
            });
        ReceivedMessage {
            body,
            message_id,
            sequence_number: match annotation("x-opt-sequence-number") {
                Some(Value::Long(n)) => Some(n),
                _ => None,
            },
            enqueued_at: match annotation("x-opt-enqueued-time") {
                Some(Value::Timestamp(t)) => OffsetDateTime::from_unix_timestamp_nanos(
                    i128::from(t.milliseconds()) * 1_000_000,
                )
                .ok(),
                _ => None,
            },
            delivery_count: m.header.as_ref().map_or(0, |h| h.delivery_count),
            dead_letter_reason: property("DeadLetterReason"),
            dead_letter_description: property("DeadLetterErrorDescription"),
        }
    }
}
