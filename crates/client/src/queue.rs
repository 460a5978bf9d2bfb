//! [`QueueClient`]: one queue. Its lifecycle (create, delete), metadata, stored access
//! policies, messages, and service SAS tokens for it.
//!
//! Each method is one REST operation; the status codes checked are the ones the official SDKs
//! check (see `docs/compatibility.md`), so an answer the SDKs would refuse is refused here too.

use std::sync::Arc;
use std::time::Duration;

use hematite_queue_protocol::auth::sas::ServiceSasBuilder;
use hematite_queue_protocol::datetime::parse_http_date;
use hematite_queue_protocol::xml::{
    parse_messages_list, parse_signed_identifiers, write_signed_identifiers, ParsedMessage,
    SignedIdentifier,
};
use reqwest::{Method, Url};

use crate::credential::Credential;
use crate::error::Error;
use crate::models::{
    CreateOutcome, Metadata, PeekedMessage, QueueProperties, ReceivedMessage, SendMessageOptions,
    SendReceipt, TimeToLive, UpdateReceipt,
};
use crate::pipeline::{with_query, Pipeline, Request, Response};
use crate::xml;

const META_PREFIX: &str = "x-ms-meta-";

/// A client for one queue. Cheap to clone; made by
/// [`crate::QueueServiceClient::queue_client`].
#[derive(Debug, Clone)]
pub struct QueueClient {
    pipeline: Arc<Pipeline>,
    name: String,
    /// `…/{queue}`
    url: Url,
    /// `…/{queue}/messages`
    messages_url: Url,
}

impl QueueClient {
    pub(crate) fn new(pipeline: Arc<Pipeline>, endpoint: &Url, name: &str) -> Self {
        let url = child(endpoint, name);
        let messages_url = child(&url, "messages");
        Self {
            pipeline,
            name: name.to_owned(),
            url,
            messages_url,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The queue's URL, without any SAS.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// Create Queue. An existing queue with identical metadata is not an error
    /// ([`CreateOutcome::AlreadyExists`]); one with different metadata is 409
    /// `QueueAlreadyExists`.
    pub async fn create(&self, metadata: &Metadata) -> Result<CreateOutcome, Error> {
        let resp = self
            .send(
                Method::PUT,
                self.url.clone(),
                meta_headers(metadata),
                None,
                &[201, 204],
            )
            .await?;
        Ok(if resp.status == 201 {
            CreateOutcome::Created
        } else {
            CreateOutcome::AlreadyExists
        })
    }

    /// Creates the queue unless it exists (with any metadata). `true` if it was created.
    pub async fn create_if_not_exists(&self, metadata: &Metadata) -> Result<bool, Error> {
        match self.create(metadata).await {
            Ok(CreateOutcome::Created) => Ok(true),
            Ok(CreateOutcome::AlreadyExists) => Ok(false),
            Err(e) if e.code() == Some("QueueAlreadyExists") => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Delete Queue, with its messages, metadata and policies.
    pub async fn delete(&self) -> Result<(), Error> {
        self.send(Method::DELETE, self.url.clone(), Vec::new(), None, &[204])
            .await?;
        Ok(())
    }

    /// Deletes the queue if it exists. `true` if it was deleted.
    pub async fn delete_if_exists(&self) -> Result<bool, Error> {
        match self.delete().await {
            Ok(()) => Ok(true),
            Err(e) if e.code() == Some("QueueNotFound") => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Get Queue Metadata: the approximate message count and the metadata (names lowercase,
    /// see the crate docs).
    pub async fn get_properties(&self) -> Result<QueueProperties, Error> {
        let url = with_query(self.url.clone(), &[("comp", Some("metadata".into()))]);
        let resp = self
            .send(Method::GET, url, Vec::new(), None, &[200])
            .await?;
        let count = resp
            .header("x-ms-approximate-messages-count")
            .ok_or_else(|| Error::Response("no x-ms-approximate-messages-count header".into()))?;
        let approximate_message_count = count.trim().parse().map_err(|_| {
            Error::Response(format!("x-ms-approximate-messages-count is {count:?}"))
        })?;
        let mut metadata = Metadata::new();
        for (name, value) in &resp.headers {
            if let Some(key) = name.as_str().strip_prefix(META_PREFIX) {
                let value = value
                    .to_str()
                    .map_err(|_| Error::Response(format!("metadata {key} is not visible ASCII")))?;
                metadata.insert(key.to_owned(), value.to_owned());
            }
        }
        Ok(QueueProperties {
            approximate_message_count,
            metadata,
        })
    }

    /// Set Queue Metadata: replaces all of it; an empty map clears it.
    pub async fn set_metadata(&self, metadata: &Metadata) -> Result<(), Error> {
        let url = with_query(self.url.clone(), &[("comp", Some("metadata".into()))]);
        self.send(Method::PUT, url, meta_headers(metadata), None, &[204])
            .await?;
        Ok(())
    }

    /// Get Queue ACL: the stored access policies (account key only).
    pub async fn get_access_policy(&self) -> Result<Vec<SignedIdentifier>, Error> {
        let url = with_query(self.url.clone(), &[("comp", Some("acl".into()))]);
        let resp = self
            .send(Method::GET, url, Vec::new(), None, &[200])
            .await?;
        parse_signed_identifiers(&resp.body)
            .map_err(|e| Error::Response(format!("access policies: {e}")))
    }

    /// Set Queue ACL: replaces the stored access policies (at most 5; empty clears them).
    pub async fn set_access_policy(&self, policies: &[SignedIdentifier]) -> Result<(), Error> {
        let url = with_query(self.url.clone(), &[("comp", Some("acl".into()))]);
        let body = write_signed_identifiers(policies);
        self.send(Method::PUT, url, Vec::new(), Some(body), &[204])
            .await?;
        Ok(())
    }

    /// Put Message. The text is sent as is (no base64); it must be text XML can carry.
    pub async fn send_message(
        &self,
        text: &str,
        options: &SendMessageOptions,
    ) -> Result<SendReceipt, Error> {
        let body = xml::message_body(text).map_err(Error::InvalidArgument)?;
        let ttl = options.time_to_live.map(|t| match t {
            TimeToLive::After(d) => d.as_secs().to_string(),
            TimeToLive::Infinite => "-1".to_owned(),
        });
        let url = with_query(
            self.messages_url.clone(),
            &[
                ("visibilitytimeout", options.visibility_timeout.map(secs)),
                ("messagettl", ttl),
            ],
        );
        let resp = self
            .send(Method::POST, url, Vec::new(), Some(body), &[201])
            .await?;
        let m = messages(&resp)?
            .into_iter()
            .next()
            .ok_or_else(|| Error::Response("Put Message returned no message".into()))?;
        Ok(SendReceipt {
            pop_receipt: required(m.pop_receipt, "PopReceipt")?,
            insertion_time: required(m.insertion_time, "InsertionTime")?,
            expiration_time: required(m.expiration_time, "ExpirationTime")?,
            time_next_visible: required(m.time_next_visible, "TimeNextVisible")?,
            message_id: m.message_id,
        })
    }

    /// Get Messages: up to `max_messages` (1..=32) visible messages, each hidden from other
    /// receivers for `visibility_timeout` (the service's default is 30 s).
    pub async fn receive_messages(
        &self,
        max_messages: u32,
        visibility_timeout: Option<Duration>,
    ) -> Result<Vec<ReceivedMessage>, Error> {
        let url = with_query(
            self.messages_url.clone(),
            &[
                ("numofmessages", Some(max_messages.to_string())),
                ("visibilitytimeout", visibility_timeout.map(secs)),
            ],
        );
        let resp = self
            .send(Method::GET, url, Vec::new(), None, &[200])
            .await?;
        messages(&resp)?
            .into_iter()
            .map(|m| {
                Ok(ReceivedMessage {
                    pop_receipt: required(m.pop_receipt, "PopReceipt")?,
                    text: m.message_text.unwrap_or_default(),
                    dequeue_count: required(m.dequeue_count, "DequeueCount")?,
                    insertion_time: required(m.insertion_time, "InsertionTime")?,
                    expiration_time: required(m.expiration_time, "ExpirationTime")?,
                    time_next_visible: required(m.time_next_visible, "TimeNextVisible")?,
                    message_id: m.message_id,
                })
            })
            .collect()
    }

    /// Peek Messages: up to `max_messages` (1..=32) visible messages, without leasing them.
    pub async fn peek_messages(&self, max_messages: u32) -> Result<Vec<PeekedMessage>, Error> {
        let url = with_query(
            self.messages_url.clone(),
            &[
                ("numofmessages", Some(max_messages.to_string())),
                ("peekonly", Some("true".into())),
            ],
        );
        let resp = self
            .send(Method::GET, url, Vec::new(), None, &[200])
            .await?;
        messages(&resp)?
            .into_iter()
            .map(|m| {
                Ok(PeekedMessage {
                    text: m.message_text.unwrap_or_default(),
                    dequeue_count: required(m.dequeue_count, "DequeueCount")?,
                    insertion_time: required(m.insertion_time, "InsertionTime")?,
                    expiration_time: required(m.expiration_time, "ExpirationTime")?,
                    message_id: m.message_id,
                })
            })
            .collect()
    }

    /// Update Message: hides the message for `visibility_timeout` from now (0 makes it
    /// visible at once) and, with `text`, replaces its content. Returns the new receipt.
    pub async fn update_message(
        &self,
        message_id: &str,
        pop_receipt: &str,
        text: Option<&str>,
        visibility_timeout: Duration,
    ) -> Result<UpdateReceipt, Error> {
        let body = text
            .map(xml::message_body)
            .transpose()
            .map_err(Error::InvalidArgument)?;
        let url = with_query(
            child(&self.messages_url, message_id),
            &[
                ("popreceipt", Some(pop_receipt.to_owned())),
                ("visibilitytimeout", Some(secs(visibility_timeout))),
            ],
        );
        let resp = self
            .send(Method::PUT, url, Vec::new(), body, &[204])
            .await?;
        let pop_receipt = resp
            .header("x-ms-popreceipt")
            .ok_or_else(|| Error::Response("no x-ms-popreceipt header".into()))?
            .to_owned();
        let next = resp
            .header("x-ms-time-next-visible")
            .ok_or_else(|| Error::Response("no x-ms-time-next-visible header".into()))?;
        let time_next_visible = parse_http_date(next)
            .ok_or_else(|| Error::Response(format!("x-ms-time-next-visible is {next:?}")))?;
        Ok(UpdateReceipt {
            pop_receipt,
            time_next_visible,
        })
    }

    /// Delete Message, with its latest receipt.
    pub async fn delete_message(&self, message_id: &str, pop_receipt: &str) -> Result<(), Error> {
        let url = with_query(
            child(&self.messages_url, message_id),
            &[("popreceipt", Some(pop_receipt.to_owned()))],
        );
        self.send(Method::DELETE, url, Vec::new(), None, &[204])
            .await?;
        Ok(())
    }

    /// Clear Messages: deletes every message, leased or not.
    pub async fn clear_messages(&self) -> Result<(), Error> {
        self.send(
            Method::DELETE,
            self.messages_url.clone(),
            Vec::new(),
            None,
            &[204],
        )
        .await?;
        Ok(())
    }

    /// A service SAS token for this queue (query string without `?`), signed with the
    /// account key.
    pub fn generate_sas(&self, builder: &ServiceSasBuilder) -> Result<String, Error> {
        match self.pipeline.credential() {
            Credential::SharedKey(k) => Ok(builder.to_query(k.account(), &self.name, k.key())),
            Credential::Sas(_) => Err(Error::Config(
                "generating a SAS needs the account key, not a SAS credential".into(),
            )),
        }
    }

    async fn send(
        &self,
        method: Method,
        url: Url,
        headers: Vec<(String, String)>,
        body: Option<String>,
        expected: &[u16],
    ) -> Result<Response, Error> {
        self.pipeline
            .send(
                Request {
                    method,
                    url,
                    headers,
                    body,
                },
                expected,
            )
            .await
    }
}

/// `base/segment`, the segment percent-encoded as a path segment.
fn child(base: &Url, segment: &str) -> Url {
    let mut url = base.clone();
    if let Ok(mut segments) = url.path_segments_mut() {
        segments.pop_if_empty().push(segment);
    }
    url
}

fn meta_headers(metadata: &Metadata) -> Vec<(String, String)> {
    metadata
        .iter()
        .map(|(k, v)| (format!("{META_PREFIX}{k}"), v.clone()))
        .collect()
}

fn secs(d: Duration) -> String {
    d.as_secs().to_string()
}

fn messages(resp: &Response) -> Result<Vec<ParsedMessage>, Error> {
    parse_messages_list(&resp.body).map_err(|e| Error::Response(format!("message list: {e}")))
}

fn required<T>(value: Option<T>, name: &str) -> Result<T, Error> {
    value.ok_or_else(|| Error::Response(format!("a message has no {name}")))
}
