//! The string-to-sign builder is written to avoid allocations; this pins it, byte for byte,
//! to the straightforward version it replaced (kept below as the reference) on generated
//! requests: header names in any case and order, repeated headers, whitespace runs, quoted
//! values, empty values, percent-encoded and repeated query parameters.

use std::collections::BTreeMap;

use hematite_queue_protocol::auth::collation;
use hematite_queue_protocol::auth::shared_key::{
    string_to_sign, AuthScheme, SignableRequest, Variant,
};
use hematite_queue_protocol::query::decode_query;
use hematite_queue_protocol::version::ApiVersion;
use proptest::prelude::*;

// ---- the reference: the string-to-sign as first written ----
//
// Header names are sorted with the crate's own collation: its fast path is pinned to the
// original comparison by the unit tests in `auth::collation`.

/// Builds the string to sign.
///
/// `account` goes into the canonicalized resource (the front passes the primary name, and
/// may retry with `-secondary`). `version` is the request's `x-ms-version`; `None` (missing)
/// applies the oldest rules, as the service treats such requests.
pub fn reference_string_to_sign(
    req: &SignableRequest<'_>,
    account: &str,
    version: Option<ApiVersion>,
    scheme: AuthScheme,
    variant: Variant,
) -> String {
    let at_least = |v: ApiVersion| version.is_some_and(|have| have >= v);
    let std_header = |name: &str| req.header(name).map(str::trim).unwrap_or("");
    // With x-ms-date present the service ignores Date, and so does the signature.
    let date = if req.header("x-ms-date").is_some() {
        ""
    } else {
        std_header("date")
    };

    let mut out = String::with_capacity(256);
    out.push_str(&req.method.to_ascii_uppercase());
    out.push('\n');
    match scheme {
        AuthScheme::SharedKey => {
            let mut content_length = std_header("content-length");
            if content_length == "0" && at_least(ApiVersion::V2015_02_21) {
                content_length = "";
            }
            for value in [
                std_header("content-encoding"),
                std_header("content-language"),
                content_length,
                std_header("content-md5"),
                std_header("content-type"),
                date,
                std_header("if-modified-since"),
                std_header("if-match"),
                std_header("if-none-match"),
                std_header("if-unmodified-since"),
                std_header("range"),
            ] {
                out.push_str(value);
                out.push('\n');
            }
            canonicalized_headers(&mut out, req, at_least(ApiVersion::V2016_05_31), variant);
            canonicalized_resource(&mut out, req, account, variant);
        }
        AuthScheme::SharedKeyLite => {
            for value in [std_header("content-md5"), std_header("content-type"), date] {
                out.push_str(value);
                out.push('\n');
            }
            canonicalized_headers(&mut out, req, at_least(ApiVersion::V2016_05_31), variant);
            lite_resource(&mut out, req, account, variant);
        }
    }
    out
}

/// The `x-ms-*` headers, lowercased, collated, one `name:value\n` each.
///
/// A repeated header is folded into one comma-joined value, as HTTP defines; the service
/// rejects repeats outright, which the front can do with [`duplicate_x_ms_header`].
fn canonicalized_headers(
    out: &mut String,
    req: &SignableRequest<'_>,
    include_empty: bool,
    variant: Variant,
) {
    let mut headers: Vec<(String, String)> = Vec::new();
    for (name, value) in req.headers {
        let name = name.trim().to_ascii_lowercase();
        if !name.starts_with("x-ms-") {
            continue;
        }
        let value = if variant.keep_whitespace {
            value.trim().to_owned()
        } else {
            canonical_value(value)
        };
        match headers.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => {
                v.push(',');
                v.push_str(&value);
            }
            None => headers.push((name, value)),
        }
    }
    if !include_empty {
        headers.retain(|(_, v)| !v.is_empty());
    }
    if variant.ordinal_header_sort {
        headers.sort_by(|a, b| a.0.cmp(&b.0));
    } else {
        headers.sort_by(|a, b| collation::compare(&a.0, &b.0));
    }
    for (name, value) in headers {
        out.push_str(&name);
        out.push(':');
        out.push_str(&value);
        out.push('\n');
    }
}

/// Collapses whitespace runs to one space outside double quotes, then trims.
fn canonical_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut in_quotes = false;
    let mut pending_space = false;
    for c in v.trim().chars() {
        if !in_quotes && matches!(c, ' ' | '\t' | '\r' | '\n') {
            pending_space = true;
            continue;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        if c == '"' {
            in_quotes = !in_quotes;
        }
        out.push(c);
    }
    out
}

fn path_or_root<'a>(req: &SignableRequest<'a>) -> &'a str {
    if req.path.is_empty() {
        "/"
    } else {
        req.path
    }
}

/// `/account/path` then `\nname:v1,v2` per parameter: names lowercased and sorted, values
/// decoded and, for a repeated name, sorted and comma-joined.
fn canonicalized_resource(
    out: &mut String,
    req: &SignableRequest<'_>,
    account: &str,
    variant: Variant,
) {
    out.push('/');
    out.push_str(account);
    out.push_str(path_or_root(req));
    let mut params: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in decode_query(req.raw_query, variant.plus_as_space) {
        params
            .entry(name.to_ascii_lowercase())
            .or_default()
            .push(value);
    }
    for (name, mut values) in params {
        values.sort();
        out.push('\n');
        out.push_str(&name);
        out.push(':');
        out.push_str(&values.join(","));
    }
}

/// `/account/path`, plus `?comp=value` when the request has a `comp` parameter.
fn lite_resource(out: &mut String, req: &SignableRequest<'_>, account: &str, variant: Variant) {
    out.push('/');
    out.push_str(account);
    out.push_str(path_or_root(req));
    if let Some((_, comp)) = decode_query(req.raw_query, variant.plus_as_space)
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("comp"))
    {
        out.push_str("?comp=");
        out.push_str(&comp);
    }
}

// ---- generated requests ----

fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("x-ms-date".to_owned()),
        Just("X-MS-Version".to_owned()),
        Just("x-ms-client-request-id".to_owned()),
        Just("Content-Length".to_owned()),
        Just("content-type".to_owned()),
        Just("Date".to_owned()),
        Just("Range".to_owned()),
        Just("If-Match".to_owned()),
        Just("Host".to_owned()),
        Just(" x-ms-meta-pad ".to_owned()),
        "x-ms-meta-[a-zA-Z0-9_'.-]{0,6}",
        "[xX]-[mM][sS]-[a-z]{1,4}",
        "x-ms-meta-é[a-z]{0,2}",
    ]
}

fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("0".to_owned()),
        Just("Mon, 01 Jan 2024 00:00:00 GMT".to_owned()),
        "[ a-z\"\t]{0,12}",
        "[ -~]{0,16}",
        "[a-z]{1,4}( {1,3}|\t|\r\n)[a-z]{1,4}",
    ]
}

fn query() -> impl Strategy<Value = String> {
    let part = prop_oneof![
        Just("comp".to_owned()),
        Just("COMP".to_owned()),
        Just("popreceipt".to_owned()),
        Just("a%20b".to_owned()),
        Just("x%FF".to_owned()),
        "[a-zA-Z0-9+%=]{0,6}",
    ];
    prop::collection::vec((part.clone(), prop::option::of(part)), 0..6).prop_map(|v| {
        v.into_iter()
            .map(|(n, val)| match val {
                Some(val) => format!("{n}={val}"),
                None => n,
            })
            .collect::<Vec<_>>()
            .join("&")
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn string_to_sign_matches_reference(
        method in prop_oneof![Just("GET"), Just("put"), Just("Delete")],
        path in prop_oneof![Just(""), Just("/devstoreaccount1/q/messages"), Just("/a%20b/")],
        query in query(),
        headers in prop::collection::vec((header_name(), header_value()), 0..10),
        version in prop_oneof![
            Just(None),
            Just(Some(ApiVersion::new(2009, 9, 19))),
            Just(Some(ApiVersion::new(2015, 2, 21))),
            Just(Some(ApiVersion::new(2016, 5, 31))),
            Just(Some(ApiVersion::new(2026, 10, 6))),
        ],
        lite in any::<bool>(),
        ordinal_header_sort in any::<bool>(),
        plus_as_space in any::<bool>(),
        keep_whitespace in any::<bool>(),
    ) {
        let refs: Vec<(&str, &str)> =
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let req = SignableRequest { method, path, raw_query: &query, headers: &refs };
        let scheme = if lite { AuthScheme::SharedKeyLite } else { AuthScheme::SharedKey };
        let variant = Variant { ordinal_header_sort, plus_as_space, keep_whitespace };
        prop_assert_eq!(
            string_to_sign(&req, "devstoreaccount1", version, scheme, variant),
            reference_string_to_sign(&req, "devstoreaccount1", version, scheme, variant)
        );
    }
}
