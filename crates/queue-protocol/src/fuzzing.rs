//! Entry points for the fuzz targets in `fuzz/` (run with `cargo fuzz`, nightly) and for
//! replaying their corpus as ordinary tests on stable (`tests/fuzz_corpus.rs`). Each takes any
//! bytes a client could send; each must return without panicking, and where a parser has a
//! writer beside it, what it accepted must survive a round trip.

use crate::auth::jwt;
use crate::auth::sas::{
    self, AccountPermissions, DelegationKey, ResourceTypes, SasParams, ServicePermissions,
};
use crate::auth::shared_key::{self, AuthScheme, AuthorizationHeader, SignableRequest, Variant};
use crate::{datetime, query, xml};

/// The `Authorization` header, and a Shared Key string to sign built around it (the header
/// value standing in for a signed header and the query).
pub fn authorization(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(AuthorizationHeader::Signed(parsed)) = text.parse::<AuthorizationHeader>() {
        // What is displayed parses back to the same thing.
        let again: AuthorizationHeader = parsed.to_string().parse().expect("round trip");
        assert_eq!(again, AuthorizationHeader::Signed(parsed));
    }
    let headers = [("x-ms-meta-a", text.as_ref()), ("Content-Length", "0")];
    let req = SignableRequest {
        method: "PUT",
        path: "/acct/q",
        raw_query: &text,
        headers: &headers,
    };
    for variant in [
        Variant::default(),
        Variant {
            ordinal_header_sort: true,
            plus_as_space: true,
            keep_whitespace: true,
        },
    ] {
        let _ = shared_key::string_to_sign(&req, "acct", None, AuthScheme::SharedKey, variant);
        let _ = shared_key::string_to_sign(
            &req,
            "acct",
            text.trim().parse().ok(),
            AuthScheme::SharedKeyLite,
            variant,
        );
    }
    let _ = datetime::parse_http_date(&text);
}

/// A query string as a SAS: its parameters, every string to sign, and the values the front
/// parses out of it.
pub fn sas(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let pairs = query::decode_query(&text, false);
    let Some(Ok(p)) = SasParams::from_query(&pairs) else {
        return;
    };
    let _ = sas::account_sas_string_to_sign(&p, "acct");
    let _ = sas::service_sas_string_to_sign(&p, "acct", "q");
    let _ = sas::user_delegation_string_to_sign(&p, "acct", "q");
    if let Some(key) = DelegationKey::from_sas(&p) {
        let _ = key.value(&crate::auth::SigningKey::new(b"key"));
    }
    // The token written back reads as the same parameters.
    let again = SasParams::from_query(&query::decode_query(&p.to_query(), false));
    assert_eq!(again, Some(Ok(p.clone())));
    for t in [&p.st, &p.se, &p.skt, &p.ske].into_iter().flatten() {
        let _ = datetime::parse_iso8601(t);
    }
    if let Some(sp) = &p.sp {
        let _ = sp.parse::<ServicePermissions>();
        let _ = sp.parse::<AccountPermissions>();
    }
    if let Some(srt) = &p.srt {
        let _ = srt.parse::<ResourceTypes>();
    }
    if let Some(ip) = &p.sip {
        let _ = sas::parse_ip_range(ip);
    }
}

/// Every XML request body reader; the first byte picks one, the rest is the body.
pub fn xml(data: &[u8]) {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    match which % 6 {
        0 => {
            if let Ok(text) = xml::parse_message_text(body) {
                if let Ok(doc) = xml::write_queue_message(&text) {
                    assert_eq!(xml::parse_message_text(doc.as_bytes()), Ok(text));
                }
            }
        }
        1 => {
            if let Ok(ids) = xml::parse_signed_identifiers(body) {
                let doc = xml::write_signed_identifiers(&ids);
                assert_eq!(xml::parse_signed_identifiers(doc.as_bytes()), Ok(ids));
            }
        }
        2 | 3 => {
            let legacy = which % 6 == 3;
            if let Ok(patch) = xml::parse_service_properties(body, legacy) {
                let mut props = xml::ServiceProperties::default();
                props.apply(patch);
                let doc = xml::write_service_properties(&props, legacy);
                let mut again = xml::ServiceProperties::default();
                again.apply(
                    xml::parse_service_properties(doc.as_bytes(), legacy).expect("reads its own"),
                );
                assert_eq!(again, props);
            }
        }
        4 => {
            let _ = xml::parse_key_info(body);
        }
        _ => {
            let _ = xml::parse_messages_list(body);
        }
    }
}

/// A bearer token.
pub fn jwt(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(t) = jwt::parse(&text) {
        assert!(text.starts_with(t.signing_input));
        assert_eq!(text.matches('.').count(), 2);
    }
}
