//! The XML this client handles itself.
//!
//! The protocol crate parses what a server receives and writes what it answers; its parsers for
//! messages, ACLs and service properties serve the client too. The List Queues, Service Stats
//! and error documents only ever travel to clients, so their (small) readers live here, over a
//! tiny element tree like the protocol crate's. Message text is written here as well, with the
//! same escaping rules as the server's writer so text round-trips byte for byte.

use quick_xml::events::Event;
use quick_xml::Reader;

use crate::models::{ListQueuesSegment, Metadata, QueueItem, ServiceStatistics};

/// Deeper nesting than any queue document has.
const MAX_DEPTH: usize = 16;

#[derive(Debug, Default)]
pub(crate) struct Node {
    pub name: String,
    pub children: Vec<Node>,
    pub text: String,
}

impl Node {
    fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.as_str())
    }
}

/// Parses a document into its root element.
pub(crate) fn parse(body: &[u8]) -> Result<Node, String> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let text = std::str::from_utf8(body).map_err(|_| "the body is not UTF-8".to_owned())?;
    let mut reader = Reader::from_str(text);
    reader.config_mut().trim_text(false);
    let mut stack: Vec<Node> = Vec::new();
    loop {
        match reader
            .read_event()
            .map_err(|e| format!("malformed XML: {e}"))?
        {
            Event::Start(e) => {
                if stack.len() >= MAX_DEPTH {
                    return Err("XML nested too deeply".into());
                }
                stack.push(Node {
                    name: local_name(e.local_name().as_ref())?,
                    ..Node::default()
                });
            }
            Event::Empty(e) => {
                let node = Node {
                    name: local_name(e.local_name().as_ref())?,
                    ..Node::default()
                };
                if let Some(root) = attach(&mut stack, node) {
                    return Ok(root);
                }
            }
            Event::End(_) => {
                let node = stack.pop().ok_or("unbalanced XML")?;
                if let Some(root) = attach(&mut stack, node) {
                    return Ok(root);
                }
            }
            Event::Text(t) => {
                let raw = std::str::from_utf8(&t).map_err(|_| "the body is not UTF-8")?;
                let s =
                    quick_xml::escape::unescape(raw).map_err(|e| format!("bad XML escape: {e}"))?;
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&s);
                }
            }
            Event::CData(c) => {
                let raw = c.into_inner();
                let s = std::str::from_utf8(&raw).map_err(|_| "the body is not UTF-8")?;
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(s);
                }
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) | Event::DocType(_) => {}
            Event::Eof => return Err("the XML document is empty or truncated".into()),
        }
    }
}

fn local_name(raw: &[u8]) -> Result<String, String> {
    std::str::from_utf8(raw)
        .map(str::to_owned)
        .map_err(|_| "an element name is not UTF-8".to_owned())
}

/// Adds a finished element to its parent; returns it when it is the root.
fn attach(stack: &mut [Node], node: Node) -> Option<Node> {
    match stack.last_mut() {
        Some(parent) => {
            parent.children.push(node);
            None
        }
        None => Some(node),
    }
}

/// A List Queues answer (`EnumerationResults`).
pub(crate) fn parse_list_queues(body: &[u8]) -> Result<ListQueuesSegment, String> {
    let root = parse(body)?;
    if root.name != "EnumerationResults" {
        return Err(format!("expected EnumerationResults, got <{}>", root.name));
    }
    let queues = root
        .child("Queues")
        .map(|qs| {
            qs.children
                .iter()
                .filter(|q| q.name == "Queue")
                .map(|q| {
                    let name = q
                        .child_text("Name")
                        .ok_or("a listed queue has no <Name>")?
                        .trim()
                        .to_owned();
                    let metadata = q.child("Metadata").map(|md| {
                        md.children
                            .iter()
                            .map(|m| (m.name.clone(), m.text.clone()))
                            .collect::<Metadata>()
                    });
                    Ok(QueueItem { name, metadata })
                })
                .collect::<Result<Vec<_>, String>>()
        })
        .transpose()?
        .unwrap_or_default();
    let opt = |name: &str| {
        root.child_text(name)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    Ok(ListQueuesSegment {
        queues,
        prefix: opt("Prefix"),
        marker: opt("Marker"),
        max_results: opt("MaxResults").and_then(|s| s.parse().ok()),
        next_marker: opt("NextMarker"),
    })
}

/// A Get Service Stats answer (`StorageServiceStats`).
pub(crate) fn parse_service_stats(body: &[u8]) -> Result<ServiceStatistics, String> {
    let root = parse(body)?;
    let geo = root
        .child("GeoReplication")
        .ok_or("the stats have no <GeoReplication>")?;
    let status = geo
        .child_text("Status")
        .ok_or("the stats have no <Status>")?
        .trim()
        .to_owned();
    let last_sync_time = match geo.child_text("LastSyncTime").map(str::trim) {
        None | Some("") => None,
        Some(s) => Some(
            hematite_queue_protocol::datetime::parse_http_date(s)
                .ok_or_else(|| format!("bad LastSyncTime {s:?}"))?,
        ),
    };
    Ok(ServiceStatistics {
        geo_replication_status: status,
        last_sync_time,
    })
}

/// The code and first message line of an error body, when it is one.
pub(crate) fn parse_error(body: &[u8]) -> Option<(Option<String>, Option<String>)> {
    let root = parse(body).ok()?;
    if root.name != "Error" {
        return None;
    }
    let code = root
        .child_text("Code")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    // The service appends "\nRequestId:…\nTime:…"; the request id is reported separately.
    let message = root
        .child_text("Message")
        .and_then(|m| m.lines().next())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    Some((code, message))
}

/// The Put/Update Message body; the protocol crate owns the escaping.
pub(crate) fn message_body(text: &str) -> Result<String, String> {
    hematite_queue_protocol::xml::write_queue_message(text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hematite_queue_protocol::xml::parse_message_text;

    #[test]
    fn message_text_round_trips_through_the_server_parser() {
        for text in [
            "",
            "hello",
            "a <b> & c",
            "line1\r\nline2\rline3\n",
            "tab\there",
            "😀 é ü",
            "]]> <![CDATA[",
        ] {
            let body = message_body(text).unwrap();
            assert_eq!(parse_message_text(body.as_bytes()).unwrap(), text);
        }
        assert!(message_body("nul\u{0}").is_err());
        assert!(message_body("bell\u{7}").is_err());
    }

    #[test]
    fn list_queues_page() {
        let body = br#"<?xml version="1.0" encoding="utf-8"?><EnumerationResults ServiceEndpoint="http://127.0.0.1:10001/devstoreaccount1"><Prefix>q</Prefix><MaxResults>2</MaxResults><Queues><Queue><Name>q1</Name><Metadata><Color>red &amp; blue</Color><a_b /></Metadata></Queue><Queue><Name>q2</Name></Queue></Queues><NextMarker>q3</NextMarker></EnumerationResults>"#;
        let page = parse_list_queues(body).unwrap();
        assert_eq!(page.queues.len(), 2);
        assert_eq!(page.queues[0].name, "q1");
        let md = page.queues[0].metadata.as_ref().unwrap();
        assert_eq!(md.get("Color").map(String::as_str), Some("red & blue"));
        assert_eq!(md.get("a_b").map(String::as_str), Some(""));
        assert!(page.queues[1].metadata.is_none());
        assert_eq!(page.prefix.as_deref(), Some("q"));
        assert_eq!(page.max_results, Some(2));
        assert_eq!(page.next_marker.as_deref(), Some("q3"));

        let last = parse_list_queues(
            br#"<EnumerationResults ServiceEndpoint="x"><Queues /><NextMarker /></EnumerationResults>"#,
        )
        .unwrap();
        assert!(last.queues.is_empty());
        assert!(last.next_marker.is_none());
        assert!(parse_list_queues(b"<Other/>").is_err());
        assert!(parse_list_queues(b"<EnumerationResults><Queues>").is_err());
    }

    #[test]
    fn stats_and_errors() {
        let s = parse_service_stats(b"<StorageServiceStats><GeoReplication><Status>live</Status><LastSyncTime>Wed, 23 Oct 2013 22:05:54 GMT</LastSyncTime></GeoReplication></StorageServiceStats>").unwrap();
        assert_eq!(s.geo_replication_status, "live");
        assert!(s.last_sync_time.is_some());
        let s = parse_service_stats(b"<StorageServiceStats><GeoReplication><Status>bootstrap</Status><LastSyncTime /></GeoReplication></StorageServiceStats>").unwrap();
        assert!(s.last_sync_time.is_none());

        let (code, msg) = parse_error(b"<?xml version=\"1.0\"?><Error><Code>QueueNotFound</Code><Message>The specified queue does not exist.\nRequestId:abc\nTime:2024-01-01T00:00:00.0000000Z</Message></Error>").unwrap();
        assert_eq!(code.as_deref(), Some("QueueNotFound"));
        assert_eq!(msg.as_deref(), Some("The specified queue does not exist."));
        assert!(parse_error(b"<html>nope</html>").is_none());
        assert!(parse_error(b"").is_none());
    }
}
