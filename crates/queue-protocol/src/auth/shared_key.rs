//! Shared Key and Shared Key Lite: the `Authorization: SharedKey account:signature` schemes.
//!
//! The signature covers a canonical rendering of the request whose rules changed with the
//! API version (a zero Content-Length, empty-valued headers). The server rebuilds the string
//! from the request as received and compares; since SDKs differ in small ways (`+` in the
//! query, header order), [`Variant`] lets the front retry with the tolerated alternatives.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use super::collation;
use crate::query::query_pairs;
use crate::version::ApiVersion;

pub use super::{sign, verify};

/// What signing needs of a request.
#[derive(Debug, Clone, Copy)]
pub struct SignableRequest<'a> {
    /// The HTTP method, e.g. `GET`.
    pub method: &'a str,
    /// The raw path, still percent-encoded, without the query.
    pub path: &'a str,
    /// The raw query string, without the leading `?`.
    pub raw_query: &'a str,
    /// Every header, names in their original case, values as received.
    pub headers: &'a [(&'a str, &'a str)],
}

impl SignableRequest<'_> {
    /// First value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthScheme {
    SharedKey,
    SharedKeyLite,
}

impl AuthScheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SharedKey => "SharedKey",
            Self::SharedKeyLite => "SharedKeyLite",
        }
    }
}

impl fmt::Display for AuthScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `SharedKey` or `SharedKeyLite` credential from the `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedAuthorization {
    pub scheme: AuthScheme,
    pub account: String,
    pub signature: String,
}

/// Renders the header value, e.g. `SharedKey devstoreaccount1:abc=`, for the client.
impl fmt::Display for ParsedAuthorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}:{}", self.scheme, self.account, self.signature)
    }
}

/// The `Authorization` header, by scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizationHeader {
    Signed(ParsedAuthorization),
    /// An OAuth token, unverified.
    Bearer(String),
}

/// The header is not `SharedKey a:s`, `SharedKeyLite a:s` or `Bearer t`; the front answers
/// `InvalidAuthenticationInfo`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed Authorization header: {0}")]
pub struct InvalidAuthorizationHeader(pub &'static str);

impl FromStr for AuthorizationHeader {
    type Err = InvalidAuthorizationHeader;

    /// Scheme names are matched case-insensitively; a Shared Key credential must not contain
    /// spaces. A bearer credential is taken whole, whatever it holds: the token check then
    /// refuses it with the service's 401 rather than a format error.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (scheme, cred) =
            s.split_once(|c: char| c.is_ascii_whitespace())
                .ok_or(InvalidAuthorizationHeader(
                    "no credentials after the scheme",
                ))?;
        let cred = cred.trim();
        if scheme.eq_ignore_ascii_case("Bearer") && !cred.is_empty() {
            return Ok(Self::Bearer(cred.to_owned()));
        }
        if cred.is_empty() || cred.contains(|c: char| c.is_ascii_whitespace()) {
            return Err(InvalidAuthorizationHeader("credentials must be one token"));
        }
        let scheme = if scheme.eq_ignore_ascii_case("SharedKey") {
            AuthScheme::SharedKey
        } else if scheme.eq_ignore_ascii_case("SharedKeyLite") {
            AuthScheme::SharedKeyLite
        } else if scheme.eq_ignore_ascii_case("Bearer") {
            return Ok(Self::Bearer(cred.to_owned()));
        } else {
            return Err(InvalidAuthorizationHeader("unknown scheme"));
        };
        let (account, signature) = cred
            .split_once(':')
            .ok_or(InvalidAuthorizationHeader("expected account:signature"))?;
        if account.is_empty() || signature.is_empty() {
            return Err(InvalidAuthorizationHeader("empty account or signature"));
        }
        Ok(Self::Signed(ParsedAuthorization {
            scheme,
            account: account.to_owned(),
            signature: signature.to_owned(),
        }))
    }
}

/// Knobs for the tolerant retries the service behaviour calls for: ordinal header sort
/// instead of the service collation, and `+` decoded as a space in the canonicalized query.
/// The default is what the current SDKs sign.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Variant {
    pub ordinal_header_sort: bool,
    pub plus_as_space: bool,
    /// Header values only trimmed, not whitespace-collapsed: the Python and JS SDKs sign them
    /// this way, so a metadata value with a double space verifies only under this variant.
    pub keep_whitespace: bool,
}

/// Builds the string to sign.
///
/// `account` goes into the canonicalized resource (the front passes the primary name, and
/// may retry with `-secondary`). `version` is the request's `x-ms-version`; `None` (missing)
/// applies the oldest rules, as the service treats such requests.
pub fn string_to_sign(
    req: &SignableRequest<'_>,
    account: &str,
    version: Option<ApiVersion>,
    scheme: AuthScheme,
    variant: Variant,
) -> String {
    let mut out = String::new();
    string_to_sign_into(&mut out, req, account, version, scheme, variant);
    out
}

/// [`string_to_sign`] into a caller's buffer, which is cleared first (a server verifying
/// many requests reuses one).
pub fn string_to_sign_into(
    out: &mut String,
    req: &SignableRequest<'_>,
    account: &str,
    version: Option<ApiVersion>,
    scheme: AuthScheme,
    variant: Variant,
) {
    out.clear();
    out.reserve(512);
    let at_least = |v: ApiVersion| version.is_some_and(|have| have >= v);
    let std_header = |name: &str| req.header(name).map(str::trim).unwrap_or("");
    // With x-ms-date present the service ignores Date, and so does the signature.
    let date = if req.header("x-ms-date").is_some() {
        ""
    } else {
        std_header("date")
    };

    out.extend(req.method.chars().map(|c| c.to_ascii_uppercase()));
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
            canonicalized_headers(out, req, at_least(ApiVersion::V2016_05_31), variant);
            canonicalized_resource(out, req, account, variant);
        }
        AuthScheme::SharedKeyLite => {
            for value in [std_header("content-md5"), std_header("content-type"), date] {
                out.push_str(value);
                out.push('\n');
            }
            canonicalized_headers(out, req, at_least(ApiVersion::V2016_05_31), variant);
            lite_resource(out, req, account, variant);
        }
    }
}

/// `s` with ASCII letters lowercased, borrowed when it has no uppercase letter.
fn ascii_lowercase(s: &str) -> Cow<'_, str> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(s.to_ascii_lowercase())
    } else {
        Cow::Borrowed(s)
    }
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
    let mut headers: Vec<(Cow<'_, str>, Cow<'_, str>)> = Vec::with_capacity(req.headers.len());
    for (name, value) in req.headers {
        let name = name.trim();
        if !name
            .as_bytes()
            .get(..5)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"x-ms-"))
        {
            continue;
        }
        let name = ascii_lowercase(name);
        let value = if variant.keep_whitespace {
            Cow::Borrowed(value.trim())
        } else {
            canonical_value(value)
        };
        match headers.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => {
                let v = v.to_mut();
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
fn canonical_value(v: &str) -> Cow<'_, str> {
    let v = v.trim();
    // Single spaces and nothing else to collapse: the value is already canonical.
    if !v.contains(['\t', '\r', '\n']) && !v.contains("  ") {
        return Cow::Borrowed(v);
    }
    let mut out = String::with_capacity(v.len());
    let mut in_quotes = false;
    let mut pending_space = false;
    for c in v.chars() {
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
    Cow::Owned(out)
}

/// Returns the lowercased name of the first `x-ms-*` header sent more than once, which the
/// service refuses with 400.
pub fn duplicate_x_ms_header(headers: &[(&str, &str)]) -> Option<String> {
    let mut seen: Vec<String> = Vec::new();
    for (name, _) in headers {
        let name = name.trim().to_ascii_lowercase();
        if name.starts_with("x-ms-") {
            if seen.contains(&name) {
                return Some(name);
            }
            seen.push(name);
        }
    }
    None
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
    // Sorting (name, value) pairs orders names and, within a name, its values, both
    // ordinally: the same as grouping values by name and sorting each group.
    let mut params: Vec<(Cow<'_, str>, Cow<'_, str>)> =
        query_pairs(req.raw_query, variant.plus_as_space)
            .map(|(name, value)| {
                let name = match name {
                    Cow::Borrowed(n) => ascii_lowercase(n),
                    Cow::Owned(n) => Cow::Owned(n.to_ascii_lowercase()),
                };
                (name, value)
            })
            .collect();
    params.sort_unstable();
    let mut previous: Option<&str> = None;
    for (name, value) in &params {
        if previous == Some(name) {
            out.push(',');
        } else {
            out.push('\n');
            out.push_str(name);
            out.push(':');
            previous = Some(name);
        }
        out.push_str(value);
    }
}

/// `/account/path`, plus `?comp=value` when the request has a `comp` parameter.
fn lite_resource(out: &mut String, req: &SignableRequest<'_>, account: &str, variant: Variant) {
    out.push('/');
    out.push_str(account);
    out.push_str(path_or_root(req));
    if let Some((_, comp)) = query_pairs(req.raw_query, variant.plus_as_space)
        .find(|(n, _)| n.eq_ignore_ascii_case("comp"))
    {
        out.push_str("?comp=");
        out.push_str(&comp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::test_support::dev_key;

    const ACCOUNT: &str = "devstoreaccount1";
    const DATE: &str = "Mon, 01 Jan 2024 00:00:00 GMT";
    const RID: &str = "00000000-0000-0000-0000-000000000001";
    const V_LATEST: Option<ApiVersion> = Some(ApiVersion::new(2026, 10, 6));

    fn common() -> Vec<(&'static str, &'static str)> {
        vec![
            ("x-ms-date", DATE),
            ("x-ms-version", "2026-10-06"),
            ("x-ms-client-request-id", RID),
        ]
    }

    fn check(req: &SignableRequest<'_>, scheme: AuthScheme, want_sts: &str, want_sig: &str) {
        let sts = string_to_sign(req, ACCOUNT, V_LATEST, scheme, Variant::default());
        assert_eq!(sts, want_sts);
        assert_eq!(sign(&dev_key(), &sts), want_sig);
        assert!(verify(&dev_key(), &sts, want_sig));
    }

    #[test]
    fn vector_1_get_metadata() {
        let headers = common();
        let req = SignableRequest {
            method: "GET",
            path: "/devstoreaccount1/myqueue",
            raw_query: "comp=metadata",
            headers: &headers,
        };
        check(
            &req,
            AuthScheme::SharedKey,
            "GET\n\n\n\n\n\n\n\n\n\n\n\nx-ms-client-request-id:00000000-0000-0000-0000-000000000001\nx-ms-date:Mon, 01 Jan 2024 00:00:00 GMT\nx-ms-version:2026-10-06\n/devstoreaccount1/devstoreaccount1/myqueue\ncomp:metadata",
            "I3cc2Ydi9tjlvg6vsrXe8Cj6ifpA70cL+Se+ntqDOeA=",
        );
    }

    #[test]
    fn vector_2_metadata_collation() {
        let mut headers = common();
        headers.extend([
            ("x-ms-meta-Color", "red"),
            ("x-ms-meta-a_b", "1"),
            ("x-ms-meta-a1", "2"),
        ]);
        let req = SignableRequest {
            method: "PUT",
            path: "/devstoreaccount1/myqueue",
            raw_query: "",
            headers: &headers,
        };
        let want_sts = "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-client-request-id:00000000-0000-0000-0000-000000000001\nx-ms-date:Mon, 01 Jan 2024 00:00:00 GMT\nx-ms-meta-a_b:1\nx-ms-meta-a1:2\nx-ms-meta-color:red\nx-ms-version:2026-10-06\n/devstoreaccount1/devstoreaccount1/myqueue";
        check(
            &req,
            AuthScheme::SharedKey,
            want_sts,
            "8K2YCViK/3zSxOwOD1yOmUJrkCg6C+7lwSr1qN1R6rQ=",
        );
        // The ordinal retry puts a1 first and so cannot match this client.
        let ordinal = string_to_sign(
            &req,
            ACCOUNT,
            V_LATEST,
            AuthScheme::SharedKey,
            Variant {
                ordinal_header_sort: true,
                ..Variant::default()
            },
        );
        assert!(ordinal.contains("x-ms-meta-a1:2\nx-ms-meta-a_b:1\n"));
        assert!(!verify(
            &dev_key(),
            &ordinal,
            "8K2YCViK/3zSxOwOD1yOmUJrkCg6C+7lwSr1qN1R6rQ="
        ));
    }

    #[test]
    fn vector_3_put_message() {
        let mut headers = common();
        headers.extend([
            ("Content-Type", "application/xml"),
            ("Content-Length", "67"),
        ]);
        let req = SignableRequest {
            method: "POST",
            path: "/devstoreaccount1/myqueue/messages",
            raw_query: "visibilitytimeout=0&messagettl=-1",
            headers: &headers,
        };
        check(
            &req,
            AuthScheme::SharedKey,
            "POST\n\n\n67\n\napplication/xml\n\n\n\n\n\n\nx-ms-client-request-id:00000000-0000-0000-0000-000000000001\nx-ms-date:Mon, 01 Jan 2024 00:00:00 GMT\nx-ms-version:2026-10-06\n/devstoreaccount1/devstoreaccount1/myqueue/messages\nmessagettl:-1\nvisibilitytimeout:0",
            "C3LChbpOp4505rMPwFl3QGwG7koM54vZfNq4t4e3mbA=",
        );
    }

    #[test]
    fn vector_4_host_style_list() {
        let headers = common();
        let req = SignableRequest {
            method: "GET",
            path: "/",
            raw_query: "comp=list&include=metadata&maxresults=3&prefix=q",
            headers: &headers,
        };
        check(
            &req,
            AuthScheme::SharedKey,
            "GET\n\n\n\n\n\n\n\n\n\n\n\nx-ms-client-request-id:00000000-0000-0000-0000-000000000001\nx-ms-date:Mon, 01 Jan 2024 00:00:00 GMT\nx-ms-version:2026-10-06\n/devstoreaccount1/\ncomp:list\ninclude:metadata\nmaxresults:3\nprefix:q",
            "vQC3HTagqOpvPG87BZobT6hhGLY/KdYeT/iplkVu6OM=",
        );
        // An empty path (absolute-form quirks) signs as the root.
        let empty = SignableRequest { path: "", ..req };
        assert_eq!(
            string_to_sign(
                &empty,
                ACCOUNT,
                V_LATEST,
                AuthScheme::SharedKey,
                Variant::default()
            ),
            string_to_sign(
                &req,
                ACCOUNT,
                V_LATEST,
                AuthScheme::SharedKey,
                Variant::default()
            )
        );
    }

    #[test]
    fn vector_5_shared_key_lite() {
        let headers = common();
        let req = SignableRequest {
            method: "GET",
            path: "/devstoreaccount1/myqueue",
            raw_query: "comp=metadata",
            headers: &headers,
        };
        check(
            &req,
            AuthScheme::SharedKeyLite,
            "GET\n\n\n\nx-ms-client-request-id:00000000-0000-0000-0000-000000000001\nx-ms-date:Mon, 01 Jan 2024 00:00:00 GMT\nx-ms-version:2026-10-06\n/devstoreaccount1/devstoreaccount1/myqueue?comp=metadata",
            "btuAmqtuUotaiIU7Imv4nFtqSLDpInWbnUfdj1zby3c=",
        );
    }

    fn legacy_req<'a>(headers: &'a [(&'a str, &'a str)]) -> SignableRequest<'a> {
        SignableRequest {
            method: "PUT",
            path: "/devstoreaccount1/myqueue",
            raw_query: "comp=metadata",
            headers,
        }
    }

    // The legacy vectors below follow from the documented rules. Each expected signature was
    // computed once, independently of this crate, with
    //   printf '%b' '<string to sign>' | openssl dgst -sha256 -mac HMAC \
    //     -macopt hexkey:<hex of the devstoreaccount1 key> -binary | base64

    #[test]
    fn legacy_zero_content_length_signs_zero() {
        let headers = [
            ("Content-Length", "0"),
            ("x-ms-date", DATE),
            ("x-ms-version", "2014-02-14"),
        ];
        let sts = string_to_sign(
            &legacy_req(&headers),
            ACCOUNT,
            Some(ApiVersion::V2014_02_14),
            AuthScheme::SharedKey,
            Variant::default(),
        );
        assert_eq!(
            sts,
            "PUT\n\n\n0\n\n\n\n\n\n\n\n\nx-ms-date:Mon, 01 Jan 2024 00:00:00 GMT\nx-ms-version:2014-02-14\n/devstoreaccount1/devstoreaccount1/myqueue\ncomp:metadata"
        );
        assert_eq!(
            sign(&dev_key(), &sts),
            "pbt/vX+0FNaq2wdiWPqe/ABkic8xDTr8A57fXFLZCcw="
        );
    }

    #[test]
    fn zero_content_length_signs_empty_from_2015_02_21() {
        let headers = [
            ("Content-Length", "0"),
            ("x-ms-date", DATE),
            ("x-ms-version", "2015-02-21"),
        ];
        let sts = string_to_sign(
            &legacy_req(&headers),
            ACCOUNT,
            Some(ApiVersion::V2015_02_21),
            AuthScheme::SharedKey,
            Variant::default(),
        );
        assert_eq!(
            sts,
            "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:Mon, 01 Jan 2024 00:00:00 GMT\nx-ms-version:2015-02-21\n/devstoreaccount1/devstoreaccount1/myqueue\ncomp:metadata"
        );
        assert_eq!(
            sign(&dev_key(), &sts),
            "df+ATY1nkqCmaIc3CVtHlXN2t1pwMtp4FHf7ln8dxYU="
        );
    }

    #[test]
    fn empty_header_signed_from_2016_05_31() {
        let headers = [
            ("x-ms-date", DATE),
            ("x-ms-version", "2016-05-31"),
            ("x-ms-meta-empty", ""),
        ];
        let sts = string_to_sign(
            &legacy_req(&headers),
            ACCOUNT,
            Some(ApiVersion::V2016_05_31),
            AuthScheme::SharedKey,
            Variant::default(),
        );
        assert_eq!(
            sts,
            "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:Mon, 01 Jan 2024 00:00:00 GMT\nx-ms-meta-empty:\nx-ms-version:2016-05-31\n/devstoreaccount1/devstoreaccount1/myqueue\ncomp:metadata"
        );
        assert_eq!(
            sign(&dev_key(), &sts),
            "K4sj2zqjjQajiBsFBwFi03goGUtYOyORSX9Irv8IpfU="
        );
    }

    #[test]
    fn empty_header_not_signed_before_2016_05_31() {
        let headers = [
            ("x-ms-date", DATE),
            ("x-ms-version", "2015-12-11"),
            ("x-ms-meta-empty", ""),
        ];
        let sts = string_to_sign(
            &legacy_req(&headers),
            ACCOUNT,
            Some(ApiVersion::new(2015, 12, 11)),
            AuthScheme::SharedKey,
            Variant::default(),
        );
        assert_eq!(
            sts,
            "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:Mon, 01 Jan 2024 00:00:00 GMT\nx-ms-version:2015-12-11\n/devstoreaccount1/devstoreaccount1/myqueue\ncomp:metadata"
        );
        assert_eq!(
            sign(&dev_key(), &sts),
            "XF1Z+p6MnmvPR+s2inLY4YOzKroqCSp6eXaJNORidrE="
        );
    }

    #[test]
    fn missing_version_uses_oldest_rules() {
        let headers = [
            ("Content-Length", "0"),
            ("x-ms-date", DATE),
            ("x-ms-meta-empty", " "),
        ];
        let sts = string_to_sign(
            &legacy_req(&headers),
            ACCOUNT,
            None,
            AuthScheme::SharedKey,
            Variant::default(),
        );
        assert_eq!(
            sts,
            "PUT\n\n\n0\n\n\n\n\n\n\n\n\nx-ms-date:Mon, 01 Jan 2024 00:00:00 GMT\n/devstoreaccount1/devstoreaccount1/myqueue\ncomp:metadata"
        );
    }

    #[test]
    fn date_header_used_only_without_x_ms_date() {
        let headers = [("Date", DATE), ("x-ms-version", "2026-10-06")];
        let req = SignableRequest {
            method: "get",
            path: "/a/q",
            raw_query: "",
            headers: &headers,
        };
        assert_eq!(
            string_to_sign(&req, "a", V_LATEST, AuthScheme::SharedKey, Variant::default()),
            "GET\n\n\n\n\n\nMon, 01 Jan 2024 00:00:00 GMT\n\n\n\n\n\nx-ms-version:2026-10-06\n/a/a/q"
        );
        assert_eq!(
            string_to_sign(
                &req,
                "a",
                V_LATEST,
                AuthScheme::SharedKeyLite,
                Variant::default()
            ),
            "GET\n\n\nMon, 01 Jan 2024 00:00:00 GMT\nx-ms-version:2026-10-06\n/a/a/q"
        );
        let both = [
            ("Date", "Tue, 02 Jan 2024 00:00:00 GMT"),
            ("X-MS-Date", DATE),
        ];
        let req = SignableRequest {
            headers: &both,
            ..req
        };
        assert_eq!(
            string_to_sign(
                &req,
                "a",
                V_LATEST,
                AuthScheme::SharedKey,
                Variant::default()
            ),
            "GET\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:Mon, 01 Jan 2024 00:00:00 GMT\n/a/a/q"
        );
    }

    #[test]
    fn all_standard_header_slots() {
        let headers = [
            ("Content-Encoding", "gzip"),
            ("Content-Language", "en"),
            ("Content-Length", "10"),
            ("Content-MD5", "md5"),
            ("Content-Type", "text/plain"),
            ("If-Modified-Since", "ims"),
            ("If-Match", "im"),
            ("If-None-Match", "inm"),
            ("If-Unmodified-Since", "ius"),
            ("Range", "bytes=0-1"),
            ("x-ms-date", DATE),
        ];
        let req = SignableRequest {
            method: "PUT",
            path: "/a/q",
            raw_query: "",
            headers: &headers,
        };
        assert_eq!(
            string_to_sign(&req, "a", V_LATEST, AuthScheme::SharedKey, Variant::default()),
            "PUT\ngzip\nen\n10\nmd5\ntext/plain\n\nims\nim\ninm\nius\nbytes=0-1\nx-ms-date:Mon, 01 Jan 2024 00:00:00 GMT\n/a/a/q"
        );
        assert_eq!(
            string_to_sign(
                &req,
                "a",
                V_LATEST,
                AuthScheme::SharedKeyLite,
                Variant::default()
            ),
            "PUT\nmd5\ntext/plain\n\nx-ms-date:Mon, 01 Jan 2024 00:00:00 GMT\n/a/a/q"
        );
    }

    #[test]
    fn header_canonicalization() {
        let headers = [
            ("X-MS-Meta-Quoted", "  a   \"b   c\"   d  "),
            ("x-ms-meta", "{'Color': 'red'}"),
            ("x-ms-meta-tabs", "a\t\tb"),
            ("x-ms-meta-rep", "1"),
            ("x-ms-meta-rep", "2"),
            ("x-msnot", "ignored"),
            ("Authorization", "ignored"),
        ];
        let req = SignableRequest {
            method: "PUT",
            path: "/a/q",
            raw_query: "",
            headers: &headers,
        };
        assert_eq!(
            string_to_sign(&req, "a", V_LATEST, AuthScheme::SharedKey, Variant::default()),
            "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-meta:{'Color': 'red'}\nx-ms-meta-quoted:a \"b   c\" d\nx-ms-meta-rep:1,2\nx-ms-meta-tabs:a b\n/a/a/q"
        );
        assert_eq!(
            duplicate_x_ms_header(&headers),
            Some("x-ms-meta-rep".into())
        );
        assert_eq!(
            duplicate_x_ms_header(&[("x-ms-a", "1"), ("X-MS-A", "2")]),
            Some("x-ms-a".into())
        );
        assert_eq!(
            duplicate_x_ms_header(&[("x-ms-a", "1"), ("a", "2"), ("A", "3")]),
            None
        );
    }

    #[test]
    fn query_canonicalization() {
        let headers: [(&str, &str); 0] = [];
        let req = SignableRequest {
            method: "GET",
            path: "/a/q%20x/messages",
            raw_query:
                "popreceipt=a%2Bb%2Fc%3D&b=2&B=1&_=123&timeout=30&empty&plus=a+b&MessageTTL=5",
            headers: &headers,
        };
        assert_eq!(
            string_to_sign(&req, "a", V_LATEST, AuthScheme::SharedKey, Variant::default()),
            "GET\n\n\n\n\n\n\n\n\n\n\n\n/a/a/q%20x/messages\n_:123\nb:1,2\nempty:\nmessagettl:5\nplus:a+b\npopreceipt:a+b/c=\ntimeout:30"
        );
        let spaced = string_to_sign(
            &req,
            "a",
            V_LATEST,
            AuthScheme::SharedKey,
            Variant {
                plus_as_space: true,
                ..Variant::default()
            },
        );
        assert!(spaced.contains("\nplus:a b\npopreceipt:a+b/c=\n"));
        // Lite only keeps comp.
        let lite = SignableRequest {
            raw_query: "a=1&Comp=acl&z=2",
            ..req
        };
        assert_eq!(
            string_to_sign(
                &lite,
                "a",
                V_LATEST,
                AuthScheme::SharedKeyLite,
                Variant::default()
            ),
            "GET\n\n\n\n/a/a/q%20x/messages?comp=acl"
        );
    }

    #[test]
    fn parses_authorization_headers() {
        assert_eq!(
            "SharedKey devstoreaccount1:I3cc2Ydi9tjlvg6vsrXe8Cj6ifpA70cL+Se+ntqDOeA=".parse(),
            Ok(AuthorizationHeader::Signed(ParsedAuthorization {
                scheme: AuthScheme::SharedKey,
                account: "devstoreaccount1".into(),
                signature: "I3cc2Ydi9tjlvg6vsrXe8Cj6ifpA70cL+Se+ntqDOeA=".into(),
            }))
        );
        assert_eq!(
            "  sharedkeylite  acct:sig  ".parse(),
            Ok(AuthorizationHeader::Signed(ParsedAuthorization {
                scheme: AuthScheme::SharedKeyLite,
                account: "acct".into(),
                signature: "sig".into(),
            }))
        );
        assert_eq!(
            "Bearer eyJ.x.y".parse(),
            Ok(AuthorizationHeader::Bearer("eyJ.x.y".into()))
        );
        assert_eq!(
            "Bearer invalid token".parse(),
            Ok(AuthorizationHeader::Bearer("invalid token".into()))
        );
        for bad in [
            "",
            "SharedKey",
            "SharedKey ",
            "SharedKey acct",
            "SharedKey :sig",
            "SharedKey acct:",
            "SharedKey a b:c",
            "Basic dXNlcjpwYXNz",
            "SharedKeyacct:sig",
            "Bearer",
        ] {
            assert!(bad.parse::<AuthorizationHeader>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn authorization_display_round_trips() {
        let a = ParsedAuthorization {
            scheme: AuthScheme::SharedKeyLite,
            account: "acct".into(),
            signature: "c2ln".into(),
        };
        assert_eq!(a.to_string(), "SharedKeyLite acct:c2ln");
        assert_eq!(a.to_string().parse(), Ok(AuthorizationHeader::Signed(a)));
    }
}
