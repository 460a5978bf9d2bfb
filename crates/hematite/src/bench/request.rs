//! Building Shared Key signed queue requests for the load generator.

use std::time::SystemTime;

use hematite_queue_protocol::auth::shared_key::{self, AuthScheme, SignableRequest, Variant};
use hematite_queue_protocol::version::ApiVersion;

/// Where requests go and how they are signed.
#[derive(Clone)]
pub struct Target {
    /// `host:port` to connect to.
    pub addr: String,
    /// The Host header value.
    pub host: String,
    pub account: String,
    pub key: Vec<u8>,
    /// Path of the queue, e.g. `/devstoreaccount1/bench` (path-style) or `/bench`.
    pub queue_path: String,
    /// `x-ms-version` sent (and signed) on every request.
    pub version: String,
}

impl Target {
    /// A signed request, ready to write on the wire.
    pub fn request(&self, method: &str, path: &str, query: &str, body: &[u8]) -> Vec<u8> {
        let date = httpdate(SystemTime::now());
        let len = body.len().to_string();
        let mut headers: Vec<(&str, &str)> =
            vec![("x-ms-date", &date), ("x-ms-version", &self.version)];
        if !body.is_empty() || method != "GET" {
            headers.push(("Content-Length", &len));
        }
        if !body.is_empty() {
            headers.push(("Content-Type", "application/xml"));
        }
        let sts = shared_key::string_to_sign(
            &SignableRequest {
                method,
                path,
                raw_query: query,
                headers: &headers,
            },
            &self.account,
            self.version.parse::<ApiVersion>().ok(),
            AuthScheme::SharedKey,
            Variant::default(),
        );
        let sig = shared_key::sign(&self.key, &sts);
        let target = if query.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{query}")
        };
        let mut out = format!("{method} {target} HTTP/1.1\r\nHost: {}\r\n", self.host).into_bytes();
        for (k, v) in &headers {
            out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
        }
        out.extend_from_slice(
            format!("Authorization: SharedKey {}:{sig}\r\n\r\n", self.account).as_bytes(),
        );
        out.extend_from_slice(body);
        out
    }
}

fn httpdate(t: SystemTime) -> String {
    let odt = time::OffsetDateTime::from(t);
    hematite_queue_protocol::datetime::format_rfc1123(odt)
}

/// The text of the first `<tag>` element, enough to pick ids and receipts out of a response.
pub fn xml_text<'a>(body: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = body.find(&open)? + open.len();
    let end = body[start..].find(&format!("</{tag}>"))? + start;
    Some(&body[start..end])
}

/// A Put Message body whose text is `size` bytes.
pub fn message_body(size: usize) -> Vec<u8> {
    let mut text = String::with_capacity(size);
    while text.len() < size {
        text.push_str("hematite-bench-");
    }
    text.truncate(size);
    format!("<QueueMessage><MessageText>{text}</MessageText></QueueMessage>").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_xml_text_and_builds_bodies() {
        let b = "<QueueMessagesList><QueueMessage><MessageId>abc</MessageId><PopReceipt>r1</PopReceipt></QueueMessage></QueueMessagesList>";
        assert_eq!(xml_text(b, "MessageId"), Some("abc"));
        assert_eq!(xml_text(b, "PopReceipt"), Some("r1"));
        assert_eq!(xml_text(b, "Nope"), None);
        let body = String::from_utf8(message_body(1024)).expect("utf-8");
        assert_eq!(xml_text(&body, "MessageText").map(str::len), Some(1024));
    }
}
