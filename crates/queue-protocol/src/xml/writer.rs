//! Compact XML output shared by every response writer.
//!
//! Responses are built as strings rather than through a writer library because the shapes are
//! small and fixed, and because the escaping rules are stricter than the usual `&<>`: a bare
//! carriage return in character data would be turned into `\n` by the client's parser, so it
//! is written as a character reference to come back byte for byte.

use std::fmt::Write as _;

/// The declaration every response starts with (no BOM).
pub(crate) const DECLARATION: &str = r#"<?xml version="1.0" encoding="utf-8"?>"#;

/// Appends `s` escaped for character data.
pub(crate) fn push_text(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            // Parsers normalise CR and CRLF to LF in character data, so keep it as a reference.
            '\r' => out.push_str("&#xD;"),
            '\t' | '\n' => out.push(c),
            // Not representable in XML 1.0 at all; a reference is the least-bad rendering and
            // lenient parsers (and ours) read it back. Queue text never contains these because
            // it arrives as XML, but metadata values come from headers.
            c if !is_xml_char(c) => push_char_ref(out, c),
            c => out.push(c),
        }
    }
}

/// Appends `s` escaped for a double-quoted attribute value, where parsers also normalise
/// tabs and newlines to spaces.
pub(crate) fn push_attr(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("&quot;"),
            '\t' | '\n' => push_char_ref(out, c),
            c => push_text(out, c.encode_utf8(&mut [0u8; 4])),
        }
    }
}

fn push_char_ref(out: &mut String, c: char) {
    // Writing to a String cannot fail.
    let _ = write!(out, "&#x{:X};", c as u32);
}

/// Whether `c` matches the XML 1.0 `Char` production.
pub(crate) fn is_xml_char(c: char) -> bool {
    matches!(c as u32,
        0x9 | 0xA | 0xD | 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF)
}

/// `<name>text</name>`, or `<name />` when the text is empty (the service's own style,
/// e.g. `<NextMarker />`).
pub(crate) fn text_element(out: &mut String, name: &str, text: &str) {
    if text.is_empty() {
        empty_element(out, name);
    } else {
        out.push('<');
        out.push_str(name);
        out.push('>');
        push_text(out, text);
        out.push_str("</");
        out.push_str(name);
        out.push('>');
    }
}

/// `<name />`.
pub(crate) fn empty_element(out: &mut String, name: &str) {
    out.push('<');
    out.push_str(name);
    out.push_str(" />");
}

pub(crate) fn open(out: &mut String, name: &str) {
    out.push('<');
    out.push_str(name);
    out.push('>');
}

pub(crate) fn close(out: &mut String, name: &str) {
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

/// XML Schema boolean spelling used by the service.
pub(crate) fn bool_str(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> String {
        let mut out = String::new();
        push_text(&mut out, s);
        out
    }

    fn attr(s: &str) -> String {
        let mut out = String::new();
        push_attr(&mut out, s);
        out
    }

    #[test]
    fn escapes_character_data() {
        assert_eq!(text("a<b>&c"), "a&lt;b&gt;&amp;c");
        assert_eq!(text("a\r\nb\tc"), "a&#xD;\nb\tc");
        assert_eq!(text("\"'"), "\"'");
        assert_eq!(text("é 😀"), "é 😀");
        assert_eq!(text("\u{0}\u{1}\u{1F}\u{FFFE}"), "&#x0;&#x1;&#x1F;&#xFFFE;");
    }

    #[test]
    fn escapes_attributes() {
        assert_eq!(
            attr("a\"b<&>\r\n\t"),
            "a&quot;b&lt;&amp;&gt;&#xD;&#xA;&#x9;"
        );
        assert_eq!(attr("http://x/'y'"), "http://x/'y'");
    }

    #[test]
    fn empty_text_is_self_closing() {
        let mut out = String::new();
        text_element(&mut out, "A", "");
        text_element(&mut out, "B", "x&y");
        assert_eq!(out, "<A /><B>x&amp;y</B>");
    }
}
