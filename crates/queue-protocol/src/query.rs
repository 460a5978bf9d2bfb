//! Query-string splitting shared by routing, Shared Key and SAS.
//!
//! One decoder for all three keeps them agreeing on what a parameter's value is; the only
//! knob is `+`, which the SDKs disagree on (Python keeps it, Azurite reads a space).

use std::borrow::Cow;

use percent_encoding::percent_decode;

/// Splits a raw query string (no leading `?`) into decoded `(name, value)` pairs, in order.
///
/// Both parts are percent-decoded; `+` stays literal unless `plus_as_space`. Invalid UTF-8
/// after decoding is replaced lossily rather than rejected, since a signature over the
/// replaced text simply fails to match. Empty segments (`a=1&&b=2`) are skipped and a
/// segment without `=` has an empty value.
pub fn decode_query(raw: &str, plus_as_space: bool) -> Vec<(String, String)> {
    query_pairs(raw, plus_as_space)
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect()
}

/// [`decode_query`] without copying: a part with nothing to decode is borrowed from `raw`.
pub fn query_pairs(
    raw: &str,
    plus_as_space: bool,
) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
    raw.split('&')
        .filter(|seg| !seg.is_empty())
        .map(move |seg| {
            let (name, value) = seg.split_once('=').unwrap_or((seg, ""));
            (decode(name, plus_as_space), decode(value, plus_as_space))
        })
}

/// Percent-decodes one component.
pub fn decode_component(s: &str, plus_as_space: bool) -> String {
    decode(s, plus_as_space).into_owned()
}

fn decode(s: &str, plus_as_space: bool) -> Cow<'_, str> {
    // Nothing to decode, and `s` is UTF-8 already: skip the decoder's UTF-8 check.
    if !s.contains(['%', '+']) {
        return Cow::Borrowed(s);
    }
    if plus_as_space && s.contains('+') {
        let replaced = s.replace('+', " ");
        Cow::Owned(
            percent_decode(replaced.as_bytes())
                .decode_utf8_lossy()
                .into_owned(),
        )
    } else {
        percent_decode(s.as_bytes()).decode_utf8_lossy()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn splits_and_decodes() {
        assert_eq!(
            decode_query("comp=list&prefix=q%20x&marker=a%2Bb%2Fc%3D", false),
            pairs(&[("comp", "list"), ("prefix", "q x"), ("marker", "a+b/c=")])
        );
    }

    #[test]
    fn plus_handling() {
        assert_eq!(decode_query("a=b+c", false), pairs(&[("a", "b+c")]));
        assert_eq!(decode_query("a=b+c", true), pairs(&[("a", "b c")]));
        // An encoded plus is a plus in both modes.
        assert_eq!(decode_query("a=b%2Bc", true), pairs(&[("a", "b+c")]));
    }

    #[test]
    fn edge_cases() {
        assert_eq!(decode_query("", false), pairs(&[]));
        assert_eq!(
            decode_query("&a&&b=&c=1=2&", false),
            pairs(&[("a", ""), ("b", ""), ("c", "1=2")])
        );
        assert_eq!(decode_query("n%61me=v", false), pairs(&[("name", "v")]));
        assert_eq!(decode_query("a=%ZZ%4", false), pairs(&[("a", "%ZZ%4")]));
        assert_eq!(decode_query("a=%FF", false), pairs(&[("a", "\u{FFFD}")]));
        assert_eq!(decode_query("a=%C3%A9", false), pairs(&[("a", "é")]));
        assert_eq!(
            decode_query("a=1&a=2", false),
            pairs(&[("a", "1"), ("a", "2")])
        );
    }
}
