//! Message bodies: the `QueueMessage` request and the `QueueMessagesList` response.
//!
//! The text is opaque to the server (clients may or may not base64 it), so the only job is
//! to decode XML on the way in and re-escape it on the way out without changing a byte.

use time::OffsetDateTime;

use super::dom;
use super::writer::{
    close, empty_element, is_non_character_at, is_xml_char, open, text_element, ATTENTION,
    DECLARATION,
};
use super::XmlError;
use std::fmt::Write as _;

use crate::datetime::{parse_http_date, push_rfc1123};

/// Reads the text of a Put/Update Message body,
/// `<QueueMessage><MessageText>…</MessageText></QueueMessage>`.
///
/// Entities, character references and CDATA are decoded; literal line ends are normalized to
/// `\n` as every XML parser (the service's included) does; everything else is kept byte for
/// byte. A missing `MessageText` (or another root) is `Malformed`, as
/// Azurite answers `InvalidXmlDocument`; an empty one is the empty string. Child elements
/// inside `MessageText` are an `InvalidValue`, since the text would otherwise be ambiguous.
pub fn parse_message_text(body: &[u8]) -> Result<String, XmlError> {
    if let Some(text) = plain_message_text(body) {
        return Ok(text.to_owned());
    }
    parse_message_text_in_full(body)
}

fn parse_message_text_in_full(body: &[u8]) -> Result<String, XmlError> {
    let root = dom::parse(body)?.ok_or(XmlError::Malformed)?;
    if root.name != "QueueMessage" {
        return Err(XmlError::Malformed);
    }
    let text = root
        .children
        .into_iter()
        .find(|c| c.name == "MessageText")
        .ok_or(XmlError::Malformed)?;
    if !text.children.is_empty() {
        return Err(XmlError::InvalidValue("MessageText".into()));
    }
    Ok(text.text)
}

/// The text of a body in the shape the SDKs send,
/// `[BOM][<?xml version="1.0" encoding="utf-8"?>]<QueueMessage><MessageText>…</MessageText></QueueMessage>`
/// with whitespace around the root, when the text has nothing to decode or check: no markup,
/// no references, no CR, no character XML forbids. Then the full parse would return exactly
/// these bytes, so this is only a shortcut; `None` sends every other body down that parse.
fn plain_message_text(body: &[u8]) -> Option<&str> {
    const OPEN: &[u8] = b"<QueueMessage><MessageText>";
    const CLOSE: &[u8] = b"</MessageText></QueueMessage>";
    let is_space = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    let mut rest = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    for decl in [
        DECLARATION.as_bytes(),
        b"<?xml version='1.0' encoding='utf-8'?>".as_slice(),
    ] {
        if let Some(r) = rest.strip_prefix(decl) {
            rest = r;
            break;
        }
    }
    let start = rest.iter().position(|b| !is_space(b))?;
    let end = rest.iter().rposition(|b| !is_space(b))? + 1;
    let text = rest[start..end].strip_prefix(OPEN)?.strip_suffix(CLOSE)?;
    // Markup, references, controls (CR included: a full parse normalises it) and U+FFFE/U+FFFF
    // all need the full parse; other characters starting with 0xEF do not.
    let plain = text
        .iter()
        .enumerate()
        .all(|(i, &b)| !ATTENTION[usize::from(b)] || (b == 0xef && !is_non_character_at(text, i)));
    if !plain {
        return None;
    }
    std::str::from_utf8(text).ok()
}

/// A character XML 1.0 cannot carry, so a message text holding it cannot be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("message text contains U+{:04X}, which XML cannot carry; base64-encode binary content", *.0 as u32)]
pub struct UnrepresentableChar(pub char);

/// The Put/Update Message request body, `<QueueMessage><MessageText>…</MessageText></QueueMessage>`,
/// for clients. Unlike the response writers, it refuses text XML cannot carry rather than
/// writing a reference a strict parser would reject.
pub fn write_queue_message(text: &str) -> Result<String, UnrepresentableChar> {
    if let Some(c) = text.chars().find(|c| !is_xml_char(*c)) {
        return Err(UnrepresentableChar(c));
    }
    let mut out = String::with_capacity(DECLARATION.len() + text.len() + 60);
    out.push_str(DECLARATION);
    open(&mut out, "QueueMessage");
    text_element(&mut out, "MessageText", text);
    close(&mut out, "QueueMessage");
    Ok(out)
}

/// One `<QueueMessage>` of a response; each field is written only when set, so the same
/// type serves Put (no text), Get (everything) and Peek (no receipt or visibility).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageXml<'a> {
    pub message_id: &'a str,
    pub insertion_time: OffsetDateTime,
    pub expiration_time: OffsetDateTime,
    pub pop_receipt: Option<&'a str>,
    pub time_next_visible: Option<OffsetDateTime>,
    pub dequeue_count: Option<u64>,
    pub message_text: Option<&'a str>,
}

/// The `QueueMessagesList` document; an empty list is `<QueueMessagesList />`.
pub fn write_messages_list(msgs: &[MessageXml<'_>]) -> String {
    let mut out = String::with_capacity(
        DECLARATION.len()
            + 64
            + msgs
                .iter()
                .map(|m| 512 + m.message_text.map_or(0, |t| t.len() + t.len() / 8))
                .sum::<usize>(),
    );
    out.push_str(DECLARATION);
    if msgs.is_empty() {
        empty_element(&mut out, "QueueMessagesList");
        return out;
    }
    // Dates and counts are never empty, so they are written as `<Name>value</Name>` directly.
    let date_element = |out: &mut String, name: &str, t: OffsetDateTime| {
        open(out, name);
        push_rfc1123(out, t);
        close(out, name);
    };
    open(&mut out, "QueueMessagesList");
    for m in msgs {
        open(&mut out, "QueueMessage");
        text_element(&mut out, "MessageId", m.message_id);
        date_element(&mut out, "InsertionTime", m.insertion_time);
        date_element(&mut out, "ExpirationTime", m.expiration_time);
        if let Some(r) = m.pop_receipt {
            text_element(&mut out, "PopReceipt", r);
        }
        if let Some(t) = m.time_next_visible {
            date_element(&mut out, "TimeNextVisible", t);
        }
        if let Some(n) = m.dequeue_count {
            open(&mut out, "DequeueCount");
            let _ = write!(out, "{n}");
            close(&mut out, "DequeueCount");
        }
        if let Some(t) = m.message_text {
            text_element(&mut out, "MessageText", t);
        }
        close(&mut out, "QueueMessage");
    }
    close(&mut out, "QueueMessagesList");
    out
}

/// A message read back from a `QueueMessagesList` response (client side).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParsedMessage {
    pub message_id: String,
    pub insertion_time: Option<OffsetDateTime>,
    pub expiration_time: Option<OffsetDateTime>,
    pub pop_receipt: Option<String>,
    pub time_next_visible: Option<OffsetDateTime>,
    pub dequeue_count: Option<u64>,
    pub message_text: Option<String>,
}

/// Parses a `QueueMessagesList` response, for the client and for round-trip tests.
pub fn parse_messages_list(body: &[u8]) -> Result<Vec<ParsedMessage>, XmlError> {
    let root = dom::parse(body)?.ok_or(XmlError::Malformed)?;
    if root.name != "QueueMessagesList" {
        return Err(XmlError::Malformed);
    }
    let date = |m: &dom::Element, name: &str| -> Result<Option<OffsetDateTime>, XmlError> {
        m.child_text(name)
            .map(|s| parse_http_date(s).ok_or_else(|| XmlError::InvalidValue(name.into())))
            .transpose()
    };
    root.children_named("QueueMessage")
        .map(|m| {
            Ok(ParsedMessage {
                message_id: m.required_text("MessageId")?.to_owned(),
                insertion_time: date(m, "InsertionTime")?,
                expiration_time: date(m, "ExpirationTime")?,
                pop_receipt: m.child_text("PopReceipt").map(str::to_owned),
                time_next_visible: date(m, "TimeNextVisible")?,
                dequeue_count: m
                    .child_text("DequeueCount")
                    .map(|s| {
                        s.parse()
                            .map_err(|_| XmlError::InvalidValue("DequeueCount".into()))
                    })
                    .transpose()?,
                // Untrimmed: the text is the payload.
                message_text: m.child("MessageText").map(|t| t.text.clone()),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    proptest::proptest! {
        #[test]
        fn shortcut_agrees_with_the_full_parse(
            prefix in proptest::prop_oneof![
                proptest::strategy::Just(""),
                proptest::strategy::Just("\u{FEFF}"),
                proptest::strategy::Just("<?xml version=\"1.0\" encoding=\"utf-8\"?>"),
                proptest::strategy::Just("\u{FEFF}<?xml version='1.0' encoding='utf-8'?>\n"),
                proptest::strategy::Just(" \r\n\t"),
            ],
            text in "\\PC{0,24}|[\t\n\r -~]{0,24}|[a-z\u{0}-\u{1F}\u{FFFD}-\u{FFFF}]{0,8}",
            suffix in "[ \t\r\n]{0,3}",
        ) {
            let body = format!(
                "{prefix}<QueueMessage><MessageText>{text}</MessageText></QueueMessage>{suffix}"
            );
            let full = parse_message_text_in_full(body.as_bytes());
            match plain_message_text(body.as_bytes()) {
                Some(fast) => proptest::prop_assert_eq!(Ok(fast.to_owned()), full),
                // Plain text must take the shortcut.
                None => proptest::prop_assert!(
                    text.contains(['<', '>', '&', '\r', '\u{FFFE}', '\u{FFFF}'])
                        || text.chars().any(|c| c < ' ' && c != '\t' && c != '\n'),
                    "{:?}", body
                ),
            }
        }
    }

    #[test]
    fn shortcut_leaves_other_shapes_to_the_parser() {
        for body in [
            "<QueueMessage><MessageText>a</MessageText></QueueMessage>x",
            "<QueueMessage ><MessageText>a</MessageText></QueueMessage>",
            "<QueueMessage><MessageText>a</MessageText><MessageText>b</MessageText></QueueMessage>",
            "<?xml version=\"1.0\"?><QueueMessage><MessageText>a</MessageText></QueueMessage>",
            "<QueueMessage><MessageText>a&amp;b</MessageText></QueueMessage>",
        ] {
            assert_eq!(plain_message_text(body.as_bytes()), None, "{body}");
        }
        assert_eq!(
            plain_message_text(b"<QueueMessage><MessageText>\xFF</MessageText></QueueMessage>"),
            None
        );
    }

    #[test]
    fn parses_plain_message() {
        let body = b"<QueueMessage><MessageText>hello world</MessageText></QueueMessage>";
        assert_eq!(parse_message_text(body).unwrap(), "hello world");
    }

    #[test]
    fn parses_python_style_body() {
        // Captured from azure-storage-queue 12.18.1: single-quoted declaration and newline.
        let body = b"<?xml version='1.0' encoding='utf-8'?>\n<QueueMessage><MessageText>hi &lt;&amp;&gt; there</MessageText></QueueMessage>";
        assert_eq!(parse_message_text(body).unwrap(), "hi <&> there");
    }

    #[test]
    fn leniency() {
        let cases: &[(&[u8], &str)] = &[
            (b"\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"utf-8\"?><QueueMessage><MessageText>a</MessageText></QueueMessage>", "a"),
            (b"  \r\n<QueueMessage>\n  <MessageText>a</MessageText>\n</QueueMessage>\n", "a"),
            (b"<q:QueueMessage xmlns:q=\"urn:x\"><q:MessageText>a</q:MessageText></q:QueueMessage>", "a"),
            (b"<QueueMessage xmlns=\"urn:x\"><Other>z</Other><MessageText>a</MessageText></QueueMessage>", "a"),
            (b"<QueueMessage><MessageText><![CDATA[<b>&amp;</b>]]></MessageText></QueueMessage>", "<b>&amp;</b>"),
            (b"<QueueMessage><MessageText>x<![CDATA[<]]>y&#x1F600;&#233;</MessageText></QueueMessage>", "x<y\u{1F600}\u{E9}"),
            (b"<QueueMessage><MessageText/></QueueMessage>", ""),
            (b"<QueueMessage><MessageText></MessageText></QueueMessage>", ""),
            (b"<QueueMessage><MessageText>  a\r\n\tb  </MessageText></QueueMessage>", "  a\n\tb  "),
            (b"<QueueMessage><MessageText>a&#xD;&#xA;b</MessageText></QueueMessage>", "a\r\nb"),
            (b"<QueueMessage><MessageText>&quot;&apos;</MessageText></QueueMessage>", "\"'"),
            (b"<QueueMessage><!-- note --><MessageText>a<!-- x -->b</MessageText></QueueMessage>", "ab"),
        ];
        for (body, want) in cases {
            assert_eq!(
                parse_message_text(body).as_deref(),
                Ok(*want),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn error_paths() {
        let cases: &[(&[u8], XmlError)] = &[
            (b"", XmlError::Malformed),
            (b"<?xml version='1.0'?>", XmlError::Malformed),
            (b"<QueueMessage></QueueMessage>", XmlError::Malformed),
            (
                b"<QueueMessage><Text>a</Text></QueueMessage>",
                XmlError::Malformed,
            ),
            (
                b"<Message><MessageText>a</MessageText></Message>",
                XmlError::Malformed,
            ),
            (
                b"<QueueMessage><MessageText>a</QueueMessage>",
                XmlError::Malformed,
            ),
            (
                b"<QueueMessage><MessageText>&#0;</MessageText></QueueMessage>",
                XmlError::Malformed,
            ),
            (
                b"<QueueMessage><MessageText>&#x1;</MessageText></QueueMessage>",
                XmlError::Malformed,
            ),
            (
                b"<QueueMessage><MessageText>&#xFFFF;</MessageText></QueueMessage>",
                XmlError::Malformed,
            ),
            (
                b"<QueueMessage><MessageText>&nbsp;</MessageText></QueueMessage>",
                XmlError::Malformed,
            ),
            (
                b"<QueueMessage><MessageText>\xC3</MessageText></QueueMessage>",
                XmlError::Malformed,
            ),
            (
                b"<QueueMessage><MessageText>a</MessageText></QueueMessage><x/>",
                XmlError::Malformed,
            ),
            (
                b"<QueueMessage><MessageText>a<b>c</b></MessageText></QueueMessage>",
                XmlError::InvalidValue("MessageText".into()),
            ),
        ];
        for (body, want) in cases {
            assert_eq!(
                parse_message_text(body).as_ref(),
                Err(want),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    fn sample() -> MessageXml<'static> {
        MessageXml {
            message_id: "5974b586-0df3-4e2d-ad0c-18e3892bfca2",
            insertion_time: datetime!(2016-10-09 21:04:30 UTC),
            expiration_time: datetime!(2016-10-16 21:04:30 UTC),
            pop_receipt: Some("YzQ4Yzg1MDI="),
            time_next_visible: Some(datetime!(2016-10-09 21:05:00 UTC)),
            dequeue_count: Some(1),
            message_text: Some("a < b & c"),
        }
    }

    #[test]
    fn golden_get_messages() {
        assert_eq!(
            write_messages_list(&[sample()]),
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><QueueMessagesList><QueueMessage>\
             <MessageId>5974b586-0df3-4e2d-ad0c-18e3892bfca2</MessageId>\
             <InsertionTime>Sun, 09 Oct 2016 21:04:30 GMT</InsertionTime>\
             <ExpirationTime>Sun, 16 Oct 2016 21:04:30 GMT</ExpirationTime>\
             <PopReceipt>YzQ4Yzg1MDI=</PopReceipt>\
             <TimeNextVisible>Sun, 09 Oct 2016 21:05:00 GMT</TimeNextVisible>\
             <DequeueCount>1</DequeueCount><MessageText>a &lt; b &amp; c</MessageText>\
             </QueueMessage></QueueMessagesList>"
        );
    }

    #[test]
    fn golden_put_and_peek_shapes() {
        let put = MessageXml {
            dequeue_count: None,
            message_text: None,
            ..sample()
        };
        let peek = MessageXml {
            message_id: "m2",
            pop_receipt: None,
            time_next_visible: None,
            dequeue_count: Some(0),
            message_text: Some(""),
            ..sample()
        };
        assert_eq!(
            write_messages_list(&[put, peek]),
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><QueueMessagesList><QueueMessage>\
             <MessageId>5974b586-0df3-4e2d-ad0c-18e3892bfca2</MessageId>\
             <InsertionTime>Sun, 09 Oct 2016 21:04:30 GMT</InsertionTime>\
             <ExpirationTime>Sun, 16 Oct 2016 21:04:30 GMT</ExpirationTime>\
             <PopReceipt>YzQ4Yzg1MDI=</PopReceipt>\
             <TimeNextVisible>Sun, 09 Oct 2016 21:05:00 GMT</TimeNextVisible></QueueMessage>\
             <QueueMessage><MessageId>m2</MessageId>\
             <InsertionTime>Sun, 09 Oct 2016 21:04:30 GMT</InsertionTime>\
             <ExpirationTime>Sun, 16 Oct 2016 21:04:30 GMT</ExpirationTime>\
             <DequeueCount>0</DequeueCount><MessageText /></QueueMessage></QueueMessagesList>"
        );
    }

    #[test]
    fn golden_empty_list() {
        assert_eq!(
            write_messages_list(&[]),
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><QueueMessagesList />"
        );
    }

    /// Pulls the raw (still escaped) MessageText out of a written list, the way any XML
    /// client would see it before decoding.
    fn raw_message_text(xml: &str) -> &str {
        let start = xml.find("<MessageText>").unwrap() + "<MessageText>".len();
        let end = xml.find("</MessageText>").unwrap();
        &xml[start..end]
    }

    #[test]
    fn text_round_trips_byte_for_byte() {
        let original = "a\r\nb <&> é 😀\r";
        let msg = MessageXml {
            message_text: Some(original),
            ..sample()
        };
        let xml = write_messages_list(&[msg]);
        let raw = raw_message_text(&xml);
        // No bare CR survives, so a normalising parser cannot turn it into LF.
        assert!(!raw.contains('\r'));
        assert_eq!(raw, "a&#xD;\nb &lt;&amp;&gt; é 😀&#xD;");
        let wrapped = format!("<QueueMessage><MessageText>{raw}</MessageText></QueueMessage>");
        assert_eq!(parse_message_text(wrapped.as_bytes()).unwrap(), original);
        let parsed = parse_messages_list(xml.as_bytes()).unwrap();
        assert_eq!(parsed[0].message_text.as_deref(), Some(original));
    }

    #[test]
    fn parses_list_back() {
        let xml = write_messages_list(&[sample()]);
        assert_eq!(
            parse_messages_list(xml.as_bytes()).unwrap(),
            vec![ParsedMessage {
                message_id: "5974b586-0df3-4e2d-ad0c-18e3892bfca2".into(),
                insertion_time: Some(datetime!(2016-10-09 21:04:30 UTC)),
                expiration_time: Some(datetime!(2016-10-16 21:04:30 UTC)),
                pop_receipt: Some("YzQ4Yzg1MDI=".into()),
                time_next_visible: Some(datetime!(2016-10-09 21:05:00 UTC)),
                dequeue_count: Some(1),
                message_text: Some("a < b & c".into()),
            }]
        );
        assert_eq!(
            parse_messages_list(write_messages_list(&[]).as_bytes()),
            Ok(vec![])
        );
    }

    #[test]
    fn list_parser_errors() {
        assert_eq!(parse_messages_list(b""), Err(XmlError::Malformed));
        assert_eq!(parse_messages_list(b"<Other/>"), Err(XmlError::Malformed));
        assert_eq!(
            parse_messages_list(b"<QueueMessagesList><QueueMessage/></QueueMessagesList>"),
            Err(XmlError::MissingNode("MessageId"))
        );
        assert_eq!(
            parse_messages_list(
                b"<QueueMessagesList><QueueMessage><MessageId>m</MessageId>\
                  <InsertionTime>yesterday</InsertionTime></QueueMessage></QueueMessagesList>"
            ),
            Err(XmlError::InvalidValue("InsertionTime".into()))
        );
        assert_eq!(
            parse_messages_list(
                b"<QueueMessagesList><QueueMessage><MessageId>m</MessageId>\
                  <DequeueCount>-1</DequeueCount></QueueMessage></QueueMessagesList>"
            ),
            Err(XmlError::InvalidValue("DequeueCount".into()))
        );
    }
}
