//! CORS: preflight answers and the headers added to real requests, evaluated against the
//! account's stored rules in order (Microsoft's "CORS support for Azure Storage").

use hematite_queue_protocol::error::ErrorCode;
use hematite_queue_protocol::xml::CorsRule;

use crate::error::ApiError;
use crate::http1::Response;

fn origin_matches(rule: &CorsRule, origin: &str) -> bool {
    rule.allowed_origins
        .iter()
        .any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
}

fn method_matches(rule: &CorsRule, method: &str) -> bool {
    rule.allowed_methods
        .iter()
        .any(|m| m.eq_ignore_ascii_case(method))
}

/// A header name against a rule's list: literal, or a prefix entry ending in `*`.
fn header_listed(list: &[String], header: &str) -> bool {
    list.iter().any(|h| {
        let h = h.trim();
        if h == "*" {
            true
        } else if let Some(prefix) = h.strip_suffix('*') {
            header
                .to_ascii_lowercase()
                .starts_with(&prefix.to_ascii_lowercase())
        } else {
            h.eq_ignore_ascii_case(header)
        }
    })
}

/// Answers an OPTIONS preflight. The first rule matching origin and method decides; if a
/// requested header is not allowed by it, the preflight fails without trying later rules.
pub fn preflight(
    rules: &[CorsRule],
    origin: Option<&str>,
    method: Option<&str>,
    request_headers: Option<&str>,
) -> Result<Response, ApiError> {
    let missing = |name: &str| {
        ApiError::new(ErrorCode::InvalidHeaderValue)
            .message("A required CORS header is not present.")
            .detail(
                "MessageDetails",
                format!("Missing required CORS header {name}"),
            )
    };
    // An empty header counts as missing, as the service checks it.
    let Some(origin) = origin.filter(|o| !o.is_empty()) else {
        return Err(missing("Origin"));
    };
    let Some(method) = method.filter(|m| !m.is_empty()) else {
        return Err(missing("Access-Control-Request-Method"));
    };
    let fail = || ApiError::new(ErrorCode::CorsPreflightFailure);
    let rule = rules
        .iter()
        .find(|r| origin_matches(r, origin) && method_matches(r, method))
        .ok_or_else(fail)?;
    let requested: Vec<&str> = request_headers
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .collect();
    if !requested
        .iter()
        .all(|h| header_listed(&rule.allowed_headers, h))
    {
        return Err(fail());
    }
    let mut resp = Response::new(200)
        .header("Access-Control-Allow-Origin", origin.to_owned())
        .header("Access-Control-Allow-Methods", method.to_owned())
        .header("Access-Control-Max-Age", rule.max_age_seconds.to_string())
        .header("Access-Control-Allow-Credentials", "true");
    if !requested.is_empty() {
        resp.push_header("Access-Control-Allow-Headers", requested.join(","));
    }
    Ok(resp)
}

/// Adds CORS headers to the response of a real request that carried `Origin`.
pub fn decorate(rules: &[CorsRule], origin: &str, method: &str, resp: &mut Response) {
    if rules.is_empty() {
        return;
    }
    let Some(rule) = rules
        .iter()
        .find(|r| origin_matches(r, origin) && method_matches(r, method))
    else {
        resp.push_header("Vary", "Origin");
        return;
    };
    let any_origin = rule.allowed_origins.iter().any(|o| o == "*");
    let exposed: Vec<String> = resp
        .headers
        .iter()
        .map(|(k, _)| k.to_string())
        .filter(|k| header_listed(&rule.exposed_headers, k))
        .collect();
    if any_origin {
        resp.push_header("Access-Control-Allow-Origin", "*");
    } else {
        resp.push_header("Access-Control-Allow-Origin", origin.to_owned());
        resp.push_header("Access-Control-Allow-Credentials", "true");
        resp.push_header("Vary", "Origin");
    }
    if !exposed.is_empty() {
        resp.push_header("Access-Control-Expose-Headers", exposed.join(","));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(origins: &[&str], methods: &[&str], headers: &[&str]) -> CorsRule {
        let v = |x: &[&str]| x.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        CorsRule {
            allowed_origins: v(origins),
            allowed_methods: v(methods),
            allowed_headers: v(headers),
            exposed_headers: v(&["x-ms-meta-*"]),
            max_age_seconds: 500,
        }
    }

    fn header<'a>(r: &'a Response, name: &str) -> Option<&'a str> {
        r.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_ref())
    }

    #[test]
    fn preflight_first_matching_rule_decides() {
        let rules = vec![
            rule(&["http://a.com"], &["GET"], &["x-ms-meta-target*"]),
            rule(&["*"], &["GET", "PUT"], &["*"]),
        ];
        let ok = preflight(
            &rules,
            Some("http://a.com"),
            Some("GET"),
            Some("x-ms-meta-targetX"),
        )
        .expect("allowed");
        assert_eq!(ok.status, 200);
        assert_eq!(
            header(&ok, "Access-Control-Allow-Origin"),
            Some("http://a.com")
        );
        assert_eq!(header(&ok, "Access-Control-Max-Age"), Some("500"));
        // The first rule matches origin and method but not the header: no fallback to rule 2.
        let e = preflight(&rules, Some("http://a.com"), Some("GET"), Some("x-other"))
            .expect_err("refused");
        assert_eq!(e.code(), ErrorCode::CorsPreflightFailure);
        assert!(preflight(&rules, Some("http://b.com"), Some("PUT"), None).is_ok());
        assert!(preflight(&rules, Some("http://b.com"), Some("DELETE"), None).is_err());
        assert!(preflight(&[], Some("http://b.com"), Some("GET"), None).is_err());
        let e = preflight(&rules, None, Some("GET"), None).expect_err("no origin");
        assert_eq!(e.code(), ErrorCode::InvalidHeaderValue);
    }

    #[test]
    fn real_request_headers() {
        let rules = vec![rule(&["http://a.com"], &["GET"], &[])];
        let mut r = Response::new(200).header("x-ms-meta-Color", "red");
        decorate(&rules, "http://a.com", "GET", &mut r);
        assert_eq!(
            header(&r, "Access-Control-Allow-Origin"),
            Some("http://a.com")
        );
        assert_eq!(
            header(&r, "Access-Control-Expose-Headers"),
            Some("x-ms-meta-Color")
        );
        assert_eq!(header(&r, "Access-Control-Allow-Credentials"), Some("true"));
        let mut r = Response::new(200);
        decorate(&rules, "http://evil.com", "GET", &mut r);
        assert_eq!(header(&r, "Access-Control-Allow-Origin"), None);
    }
}
