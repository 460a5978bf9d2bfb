//! A minimal element tree for request bodies (also the Service Bus administration API's).
//!
//! Request documents are tiny and their schemas loose, so a tree keyed by local name is the
//! simplest way to accept any element order and any namespace prefix. Building it walks
//! events iteratively with a depth cap, so hostile nesting cannot exhaust the stack.

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use super::writer::is_xml_char;
use super::XmlError;

/// Deeper nesting than any queue document needs; beyond it the body is refused.
const MAX_DEPTH: usize = 32;

#[derive(Debug, Default, Clone)]
pub struct Element {
    /// Local name, namespace prefix removed.
    pub name: String,
    pub children: Vec<Element>,
    /// Decoded character data and CDATA directly inside this element, concatenated.
    pub text: String,
    /// Attributes by local name (prefix removed), values decoded. Namespace declarations are
    /// not kept: nothing here resolves prefixes.
    pub attributes: Vec<(String, String)>,
}

impl Element {
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// Trimmed text of the first child called `name`.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.trim())
    }

    /// The value of the attribute whose local name is `name` (`i:type`, `xsi:type` and
    /// `p4:type` are all `type`).
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Like [`Self::child_text`] but the child must exist.
    pub fn required_text(&self, name: &'static str) -> Result<&str, XmlError> {
        self.child_text(name).ok_or(XmlError::MissingNode(name))
    }
}

/// Parses a body into its root element; `None` when the body holds no element at all
/// (empty, whitespace, or only a declaration), which some operations treat as "no content".
pub fn parse(body: &[u8]) -> Result<Option<Element>, XmlError> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let text = std::str::from_utf8(body).map_err(|_| XmlError::Malformed)?;
    let mut reader = Reader::from_str(text);
    let cfg = reader.config_mut();
    // Message text must come back byte for byte, so no trimming at the reader.
    cfg.trim_text(false);
    cfg.check_end_names = true;
    cfg.expand_empty_elements = false;

    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        match reader.read_event().map_err(|_| XmlError::Malformed)? {
            Event::Start(e) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(XmlError::Invalid("elements are nested too deeply".into()));
                }
                stack.push(open(&e)?);
            }
            Event::Empty(e) => {
                let el = open(&e)?;
                attach(&mut stack, &mut root, el)?;
            }
            Event::End(_) => {
                let el = stack.pop().ok_or(XmlError::Malformed)?;
                attach(&mut stack, &mut root, el)?;
            }
            Event::Text(t) => {
                let raw = std::str::from_utf8(&t).map_err(|_| XmlError::Malformed)?;
                let normalized = normalize_line_ends(raw);
                let s =
                    quick_xml::escape::unescape(&normalized).map_err(|_| XmlError::Malformed)?;
                push_text(&mut stack, &s)?;
            }
            Event::CData(c) => {
                let raw = c.into_inner();
                let s = std::str::from_utf8(&raw).map_err(|_| XmlError::Malformed)?;
                if stack.is_empty() {
                    return Err(XmlError::Malformed);
                }
                push_text(&mut stack, &normalize_line_ends(s))?;
            }
            // Nothing in them affects the queue documents. DTD entities are never expanded
            // (an unknown entity reference fails to unescape), so a DOCTYPE is harmless.
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) | Event::DocType(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(XmlError::Malformed);
    }
    Ok(root)
}

/// XML 1.0 §2.11: a conforming parser hands the application `\n` for every literal `\r\n` or
/// lone `\r`, and so does the service's. A `\r` written as `&#xD;` is a character reference,
/// not a line end, and survives (it is replaced only after this step).
fn normalize_line_ends(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains('\r') {
        return std::borrow::Cow::Borrowed(s);
    }
    std::borrow::Cow::Owned(s.replace("\r\n", "\n").replace('\r', "\n"))
}

fn open(e: &BytesStart<'_>) -> Result<Element, XmlError> {
    let mut attributes = Vec::new();
    for attr in e.attributes() {
        let attr = attr.map_err(|_| XmlError::Malformed)?;
        let key = attr.key;
        if key.as_namespace_binding().is_some() {
            continue;
        }
        let local = std::str::from_utf8(key.local_name().into_inner())
            .map_err(|_| XmlError::Malformed)?
            .to_owned();
        let value = attr.unescape_value().map_err(|_| XmlError::Malformed)?;
        attributes.push((local, value.into_owned()));
    }
    let local = e.local_name();
    let name = std::str::from_utf8(local.as_ref()).map_err(|_| XmlError::Malformed)?;
    Ok(Element {
        name: name.to_owned(),
        attributes,
        ..Element::default()
    })
}

fn attach(stack: &mut [Element], root: &mut Option<Element>, el: Element) -> Result<(), XmlError> {
    if let Some(parent) = stack.last_mut() {
        parent.children.push(el);
    } else if root.is_some() {
        // A second top-level element.
        return Err(XmlError::Malformed);
    } else {
        *root = Some(el);
    }
    Ok(())
}

fn push_text(stack: &mut [Element], s: &str) -> Result<(), XmlError> {
    // Covers both raw control characters and references such as `&#1;`.
    if !s.chars().all(is_xml_char) {
        return Err(XmlError::Malformed);
    }
    match stack.last_mut() {
        Some(el) => el.text.push_str(s),
        None if s.chars().all(|c| matches!(c, ' ' | '\t' | '\r' | '\n')) => {}
        None => return Err(XmlError::Malformed),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(s: &str) -> Element {
        parse(s.as_bytes()).unwrap().unwrap()
    }

    #[test]
    fn builds_tree_with_local_names() {
        let r = root(r#"<ns:A xmlns:ns="urn:x"><ns:B>1</ns:B><C/><B>2</B></ns:A>"#);
        assert_eq!(r.name, "A");
        assert_eq!(r.children.len(), 3);
        assert_eq!(r.child_text("B"), Some("1"));
        assert_eq!(r.children_named("B").count(), 2);
        assert_eq!(r.child_text("C"), Some(""));
        assert!(r.child("D").is_none());
        assert_eq!(r.required_text("D"), Err(XmlError::MissingNode("D")));
    }

    #[test]
    fn literal_line_ends_are_normalized_but_references_kept() {
        let r = root("<a>x\r\ny\rz&#xD;\n<![CDATA[c\r\nd]]></a>");
        assert_eq!(r.text, "x\ny\nz\r\nc\nd");
    }

    #[test]
    fn empty_documents() {
        for s in [
            "",
            "  \r\n",
            "\u{FEFF}",
            "<?xml version='1.0'?>\n",
            "<!-- c -->",
        ] {
            assert!(parse(s.as_bytes()).unwrap().is_none(), "{s:?}");
        }
    }

    #[test]
    fn malformed_documents() {
        for s in [
            "<a>",
            "<a></b>",
            "</a>",
            "<a/><b/>",
            "text",
            "<a/>text",
            "<a>&bogus;</a>",
            "<a>&#0;</a>",
            "<a>&#1;</a>",
            "<a>&#xD800;</a>",
            "<a>\u{1}</a>",
            "<a>& b</a>",
            "<a b='1' b='2'/>",
            "<a b=1/>",
            "<![CDATA[x]]>",
            "<a",
        ] {
            assert_eq!(
                parse(s.as_bytes()).map(|_| ()),
                Err(XmlError::Malformed),
                "{s:?}"
            );
        }
        assert_eq!(parse(b"<a>\xFF</a>").map(|_| ()), Err(XmlError::Malformed));
    }

    #[test]
    fn nesting_is_capped() {
        let deep = "<a>".repeat(MAX_DEPTH + 1) + &"</a>".repeat(MAX_DEPTH + 1);
        assert!(matches!(parse(deep.as_bytes()), Err(XmlError::Invalid(_))));
        let ok = "<a>".repeat(MAX_DEPTH) + &"</a>".repeat(MAX_DEPTH);
        assert!(parse(ok.as_bytes()).unwrap().is_some());
    }
}
