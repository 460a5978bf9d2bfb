//! Compact XML output shared by every response writer.
//!
//! Responses are built as strings rather than through a writer library because the shapes are
//! small and fixed, and because the escaping rules are stricter than the usual `&<>`: a bare
//! carriage return in character data would be turned into `\n` by the client's parser, so it
//! is written as a character reference to come back byte for byte.

use std::fmt::Write as _;

/// The declaration every response starts with (no BOM).
pub const DECLARATION: &str = r#"<?xml version="1.0" encoding="utf-8"?>"#;

/// Bytes that may need escaping in character data: `&`, `<`, `>`, and the C0 controls but tab
/// and LF; and `0xEF`, the first byte of U+FFFE and U+FFFF (and of harmless characters too).
pub(crate) const fn attention_table() -> [bool; 256] {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = b != b'\t' as usize && b != b'\n' as usize;
        b += 1;
    }
    t[b'&' as usize] = true;
    t[b'<' as usize] = true;
    t[b'>' as usize] = true;
    t[0xef] = true;
    t
}

pub(crate) static ATTENTION: [bool; 256] = attention_table();

/// Whether the three bytes at `i` are U+FFFE or U+FFFF, which XML 1.0 cannot carry.
pub(crate) fn is_non_character_at(bytes: &[u8], i: usize) -> bool {
    bytes[i] == 0xef && matches!(bytes.get(i + 1..i + 3), Some([0xbf, 0xbe | 0xbf]))
}

/// Appends `s` escaped for character data.
///
/// Runs of characters that need no escaping are copied whole. In UTF-8 text only these need
/// attention: `&`, `<`, `>`, CR, the other C0 controls but tab and LF, and U+FFFE and U+FFFF
/// (bytes `EF BF BE` and `EF BF BF`), the two non-characters a Rust string can hold.
pub fn push_text(out: &mut String, s: &str) {
    let bytes = s.as_bytes();
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if !ATTENTION[usize::from(b)] {
            i += 1;
            continue;
        }
        let (len, escape) = match b {
            b'&' => (1, "&amp;"),
            b'<' => (1, "&lt;"),
            b'>' => (1, "&gt;"),
            // Parsers normalise CR and CRLF to LF in character data, so keep it as a reference.
            b'\r' => (1, "&#xD;"),
            // Not representable in XML 1.0 at all; a reference is the least-bad rendering and
            // lenient parsers (and ours) read it back. Queue text never contains these because
            // it arrives as XML, but metadata values come from headers.
            0..=0x1f => (1, ""),
            _ if is_non_character_at(bytes, i) => (3, ""),
            _ => {
                i += 1;
                continue;
            }
        };
        out.push_str(&s[copied..i]);
        if escape.is_empty() {
            let c = s[i..].chars().next().unwrap_or_default();
            push_char_ref(out, c);
        } else {
            out.push_str(escape);
        }
        i += len;
        copied = i;
    }
    out.push_str(&s[copied..]);
}

/// Appends `s` escaped for a double-quoted attribute value, where parsers also normalise
/// tabs and newlines to spaces.
pub fn push_attr(out: &mut String, s: &str) {
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
pub fn text_element(out: &mut String, name: &str, text: &str) {
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
pub fn empty_element(out: &mut String, name: &str) {
    out.push('<');
    out.push_str(name);
    out.push_str(" />");
}

pub fn open(out: &mut String, name: &str) {
    out.push('<');
    out.push_str(name);
    out.push('>');
}

pub fn close(out: &mut String, name: &str) {
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

/// XML Schema boolean spelling used by the service.
pub fn bool_str(b: bool) -> &'static str {
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

    /// The escaping as first written, one character at a time.
    fn reference_text(s: &str) -> String {
        let mut out = String::new();
        for c in s.chars() {
            match c {
                '&' => out.push_str("&amp;"),
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                '\r' => out.push_str("&#xD;"),
                '\t' | '\n' => out.push(c),
                c if !is_xml_char(c) => push_char_ref(&mut out, c),
                c => out.push(c),
            }
        }
        out
    }

    #[test]
    fn fast_escaping_matches_reference() {
        for s in [
            "",
            "plain",
            "\u{FFFE}\u{FFFF}\u{FFFD}\u{FFBF}\u{EFBF}x",
            "a\u{FFFF}",
            "\u{FFFE}",
            "\u{10FFFF}\u{E000}\u{D7FF}\u{7F}\u{80}",
            "&&<<>>\r\r\n\t\u{0}\u{1F}\u{20}",
        ] {
            assert_eq!(text(s), reference_text(s), "{s:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn fast_escaping_matches_reference_on_any_text(s in "\\PC*|[\u{0}-\u{7F}\u{FFF0}-\u{FFFF}]*") {
            proptest::prop_assert_eq!(text(&s), reference_text(&s));
        }
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
