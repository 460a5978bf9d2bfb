//! ATOM around the descriptions: one entity is an `<entry>`, a list is a `<feed>`, a missing
//! entity is an empty feed, and a refusal is an `<Error>` body.
//!
//! What the SDKs read: the JS client takes an entity's name from the path of `<id>` (so
//! subscriptions and rules are spelled `Subscriptions`/`Rules` there); Python and .NET read
//! `<title>`; every client pages a list by `$skip`/`$top`, the JS one through
//! `<link rel="next">`. Azure answers a GET for a missing entity with 200 and an empty feed.

use hematite_queue_protocol::datetime::format_iso8601_7;
use hematite_queue_protocol::xml::dom::{self, Element};
use hematite_queue_protocol::xml::writer::{push_attr, push_text};
use time::OffsetDateTime;

use crate::ATOM_NS;

/// A refusal with its HTTP status and the `<Detail>` text Azure gives.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {detail}")]
pub struct AdminError {
    pub status: u16,
    pub detail: String,
}

impl AdminError {
    pub fn new(status: u16, detail: impl Into<String>) -> Self {
        AdminError {
            status,
            detail: detail.into(),
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(400, detail)
    }

    /// `<Error><Code>status</Code><Detail>…</Detail></Error>`, the body every SDK parses.
    pub fn body(&self) -> String {
        let mut out = String::from("<Error><Code>");
        out.push_str(&self.status.to_string());
        out.push_str("</Code><Detail>");
        push_text(&mut out, &self.detail);
        out.push_str("</Detail></Error>");
        out
    }

    /// The status and detail of an `<Error>` body (for clients).
    pub fn parse(status: u16, body: &[u8]) -> AdminError {
        let detail = dom::parse(body)
            .ok()
            .flatten()
            .and_then(|e| e.child_text("Detail").map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
        AdminError { status, detail }
    }
}

/// One entity as an ATOM entry.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    /// The entity's URL, e.g. `https://host/q1` or `https://host/t1/Subscriptions/s1`.
    pub id: &'a str,
    pub title: &'a str,
    pub published: OffsetDateTime,
    pub updated: OffsetDateTime,
    /// The namespace name.
    pub author: &'a str,
    /// The description element, written by its type's writer.
    pub content: &'a str,
}

impl Entry<'_> {
    pub fn write(&self) -> String {
        let mut out = String::with_capacity(512 + self.content.len());
        self.push(&mut out, true);
        out
    }

    fn push(&self, out: &mut String, with_namespace: bool) {
        out.push_str("<entry");
        if with_namespace {
            out.push_str(" xmlns=\"");
            out.push_str(ATOM_NS);
            out.push('"');
        }
        out.push_str("><id>");
        push_text(out, self.id);
        out.push_str("</id><title type=\"text\">");
        push_text(out, self.title);
        out.push_str("</title><published>");
        out.push_str(&format_iso8601_7(self.published));
        out.push_str("</published><updated>");
        out.push_str(&format_iso8601_7(self.updated));
        out.push_str("</updated><author><name>");
        push_text(out, self.author);
        out.push_str("</name></author><link rel=\"self\" href=\"");
        push_attr(out, self.id);
        out.push_str("\"/><content type=\"application/xml\">");
        out.push_str(self.content);
        out.push_str("</content></entry>");
    }
}

/// A list of entities, or the empty feed that stands for a missing one.
#[derive(Debug, Clone)]
pub struct Feed<'a> {
    pub title: &'a str,
    /// The request's URL.
    pub id: &'a str,
    pub updated: OffsetDateTime,
    /// The URL of the next page, when there is more.
    pub next: Option<String>,
    pub entries: Vec<Entry<'a>>,
}

impl Feed<'_> {
    pub fn write(&self) -> String {
        let mut out = String::with_capacity(256 + self.entries.len() * 1500);
        out.push_str("<feed xmlns=\"");
        out.push_str(ATOM_NS);
        out.push_str("\"><title type=\"text\">");
        push_text(&mut out, self.title);
        out.push_str("</title><id>");
        push_text(&mut out, self.id);
        out.push_str("</id><updated>");
        out.push_str(&format_iso8601_7(self.updated));
        out.push_str("</updated><link rel=\"self\" href=\"");
        push_attr(&mut out, self.id);
        out.push_str("\"/>");
        if let Some(next) = &self.next {
            out.push_str("<link rel=\"next\" href=\"");
            push_attr(&mut out, next);
            out.push_str("\"/>");
        }
        for e in &self.entries {
            e.push(&mut out, false);
        }
        out.push_str("</feed>");
        out
    }

    /// Azure's answer to a GET for an entity that does not exist.
    pub fn not_found(id: &str, updated: OffsetDateTime) -> String {
        Feed {
            title: "Publicly Listed Services",
            id,
            updated,
            next: None,
            entries: Vec::new(),
        }
        .write()
    }
}

/// The description element inside a request's `<entry><content>`, by local name (clients
/// use any namespace prefix). A body that is not such an entry is refused as Azure does.
pub fn parse_entry(body: &[u8]) -> Result<Element, AdminError> {
    let malformed = || AdminError::bad_request("The request body is not a valid ATOM entry.");
    let root = dom::parse(body)
        .map_err(|_| malformed())?
        .ok_or_else(malformed)?;
    if root.name != "entry" {
        return Err(malformed());
    }
    let mut content = root.child("content").ok_or_else(malformed)?.children.iter();
    let description = content.next().ok_or_else(malformed)?;
    if content.next().is_some() {
        return Err(malformed());
    }
    Ok(description.clone())
}

/// The description elements of a response's entries with their titles (for clients): one
/// for an entry, any number for a feed, none for the empty feed of a missing entity.
pub fn parse_response(body: &[u8]) -> Result<Vec<(String, Element)>, AdminError> {
    let bad = || AdminError::new(500, "the response is not an ATOM entry or feed");
    let root = dom::parse(body).map_err(|_| bad())?.ok_or_else(bad)?;
    let entries: Vec<&Element> = match root.name.as_str() {
        "entry" => vec![&root],
        "feed" => root.children_named("entry").collect(),
        _ => return Err(bad()),
    };
    entries
        .into_iter()
        .map(|e| {
            let title = e.child_text("title").unwrap_or_default().to_owned();
            let description = e
                .child("content")
                .and_then(|c| c.children.first())
                .ok_or_else(bad)?;
            Ok((title, description.clone()))
        })
        .collect()
}

/// `$namespaceinfo`'s description.
pub fn namespace_info(name: &str, created: OffsetDateTime) -> String {
    let mut out = String::from("<NamespaceInfo xmlns=\"");
    out.push_str(crate::CONNECT_NS);
    out.push_str("\" xmlns:i=\"");
    out.push_str(crate::INSTANCE_NS);
    out.push_str("\"><CreatedTime>");
    out.push_str(&format_iso8601_7(created));
    out.push_str("</CreatedTime><MessagingSKU>Standard</MessagingSKU><MessagingUnits>1</MessagingUnits><ModifiedTime>");
    out.push_str(&format_iso8601_7(created));
    out.push_str("</ModifiedTime><Name>");
    push_text(&mut out, name);
    out.push_str("</Name><NamespaceType>Messaging</NamespaceType></NamespaceInfo>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_from_both_sdks_give_their_description() {
        // As captured from the JS 7.10 beta and Python 7.15 clients.
        let js = br#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><entry xmlns="http://www.w3.org/2005/Atom"><updated>2026-12-04T15:51:01.885Z</updated><content type="application/xml"><QueueDescription xmlns="http://schemas.microsoft.com/netservices/2010/10/servicebus/connect" xmlns:i="http://www.w3.org/2001/XMLSchema-instance"><LockDuration>PT30S</LockDuration><RequiresSession>false</RequiresSession><MaxDeliveryCount>5</MaxDeliveryCount></QueueDescription></content></entry>"#;
        let py = br#"<?xml version='1.0' encoding='utf-8'?>
<ns0:entry xmlns:ns0="http://www.w3.org/2005/Atom" xmlns="http://schemas.microsoft.com/netservices/2010/10/servicebus/connect"><ns0:content type="application/xml"><QueueDescription><LockDuration>PT30S</LockDuration><MaxDeliveryCount>5</MaxDeliveryCount></QueueDescription></ns0:content></ns0:entry>"#;
        for body in [&js[..], &py[..]] {
            let d = parse_entry(body).expect("parses");
            assert_eq!(d.name, "QueueDescription");
            assert_eq!(d.child_text("MaxDeliveryCount"), Some("5"));
        }
        for bad in [
            &b""[..],
            b"<entry/>",
            b"<feed><content><A/></content></feed>",
            b"<entry><content><A/><B/></content></entry>",
            b"<entry",
        ] {
            assert_eq!(parse_entry(bad).expect_err("refused").status, 400);
        }
    }

    #[test]
    fn an_error_body_reads_back() {
        let e = AdminError::new(409, "The messaging entity 'ns:Queue:q<1>' already exists.");
        assert_eq!(
            e.body(),
            "<Error><Code>409</Code><Detail>The messaging entity 'ns:Queue:q&lt;1&gt;' already exists.</Detail></Error>"
        );
        assert_eq!(AdminError::parse(409, e.body().as_bytes()), e);
    }

    #[test]
    fn a_feed_links_its_next_page_and_reads_back() {
        let t = OffsetDateTime::UNIX_EPOCH;
        let content = "<QueueDescription><MaxDeliveryCount>3</MaxDeliveryCount></QueueDescription>";
        let entry = |title| Entry {
            id: "https://h/q",
            title,
            published: t,
            updated: t,
            author: "ns",
            content,
        };
        let feed = Feed {
            title: "Queues",
            id: "https://h/$Resources/Queues",
            updated: t,
            next: Some("https://h/$Resources/Queues?$skip=2&$top=2".into()),
            entries: vec![entry("a"), entry("b")],
        }
        .write();
        assert!(feed.contains(
            r#"<link rel="next" href="https://h/$Resources/Queues?$skip=2&amp;$top=2"/>"#
        ));
        let read = parse_response(feed.as_bytes()).expect("reads");
        assert_eq!(read.len(), 2);
        assert_eq!(read[1].0, "b");
        assert_eq!(read[1].1.child_text("MaxDeliveryCount"), Some("3"));
        assert!(parse_response(Feed::not_found("x", t).as_bytes())
            .expect("reads")
            .is_empty());
    }
}
