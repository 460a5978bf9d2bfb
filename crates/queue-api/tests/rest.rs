//! The REST front end to end, in-process on port 0: every error path and auth negative with raw
//! signed requests (things no SDK sends), visibility and TTL under a manual clock, and the
//! wire details SDKs depend on (status codes, header case, common headers).

mod common;

use common::{q, req, start, start_with, Auth, ACCOUNT};
use hematite_queue_api::Options;

async fn make_queue(s: &common::Server, name: &str) {
    let r = s.send(req("PUT", &q(name))).await;
    assert_eq!(r.status, 201, "{}", r.body);
}

// ---- common headers ----

#[tokio::test]
async fn every_response_carries_the_common_headers() {
    let s = start().await;
    let ok = s
        .send(req("PUT", &q("common")).header("x-ms-client-request-id", "my-id-1"))
        .await;
    let err = s
        .send(req("GET", &q("missing?comp=metadata")).header("x-ms-client-request-id", "my-id-2"))
        .await;
    for (r, id) in [(&ok, "my-id-1"), (&err, "my-id-2")] {
        assert_eq!(r.header("x-ms-version"), Some(common::VERSION));
        assert_eq!(r.header("x-ms-client-request-id"), Some(id));
        assert_eq!(r.header("x-ms-request-id").map(str::len), Some(36));
        assert!(r.header("Date").is_some_and(|d| d.ends_with(" GMT")));
    }
    assert_eq!(ok.status, 201);
    assert_eq!(ok.header("Content-Length"), Some("0"));
    err.assert_error(404, "QueueNotFound");
    assert_eq!(err.header("Content-Type"), Some("application/xml"));
    // The message ends with the request id and time, as the service writes it.
    let msg = err.xml("Message").expect("message");
    assert!(
        msg.starts_with("The specified queue does not exist.\nRequestId:"),
        "{msg}"
    );
    assert!(msg.contains(err.header("x-ms-request-id").expect("id")));
}

#[tokio::test]
async fn future_versions_are_accepted_and_echoed_unless_strict() {
    let s = start().await;
    let r = s
        .send(req("PUT", &q("future")).version(Some("2099-01-01")))
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.header("x-ms-version"), Some("2099-01-01"));

    let strict = start_with(Options {
        strict_api_version: true,
        ..Options::default()
    })
    .await;
    let r = strict
        .send(req("PUT", &q("future")).version(Some("2099-01-01")))
        .await;
    r.assert_error(400, "InvalidHeaderValue");
    assert_eq!(r.xml("HeaderName").as_deref(), Some("x-ms-version"));
    let r = strict.send(req("PUT", &q("known"))).await;
    assert_eq!(r.status, 201);
}

#[tokio::test]
async fn malformed_or_ancient_versions_are_rejected() {
    let s = start().await;
    for v in ["2024-13-01", "yesterday", "2009-07-17"] {
        let r = s.send(req("PUT", &q("vq")).version(Some(v))).await;
        r.assert_error(400, "InvalidHeaderValue");
        assert_eq!(r.xml("HeaderName").as_deref(), Some("x-ms-version"), "{v}");
    }
}

// ---- authentication ----

#[tokio::test]
async fn anonymous_requests_get_401_with_a_bearer_challenge() {
    let s = start().await;
    let r = s.send(req("PUT", &q("anon")).auth(Auth::None)).await;
    r.assert_error(401, "NoAuthenticationInformation");
    assert!(r
        .header("WWW-Authenticate")
        .is_some_and(|v| v.starts_with("Bearer ")));
}

#[tokio::test]
async fn bad_signatures_are_rejected_with_the_string_to_sign() {
    let s = start().await;
    let r = s.send(req("PUT", &q("badsig")).auth(Auth::WrongKey)).await;
    r.assert_error(403, "AuthenticationFailed");
    let detail = r.xml("AuthenticationErrorDetail").expect("detail");
    assert!(
        detail.starts_with("The MAC signature found in the HTTP request"),
        "{detail}"
    );
    assert!(
        detail.contains("/devstoreaccount1/devstoreaccount1/badsig"),
        "{detail}"
    );
    // A tampered request fails too: sign one path, send another.
    let mut h = s.prepare(&req("PUT", &q("signed")));
    h.retain(|(k, _)| k != "Host");
    let mut raw = format!("PUT {} HTTP/1.1\r\nHost: {}\r\n", q("other"), s.addr).into_bytes();
    for (k, v) in h {
        raw.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    raw.extend_from_slice(b"\r\n");
    s.raw(&raw, false)
        .await
        .assert_error(403, "AuthenticationFailed");
    let r = s
        .send(
            req("PUT", &q("garbled"))
                .auth(Auth::None)
                .header("Authorization", "Basic abc"),
        )
        .await;
    r.assert_error(400, "InvalidAuthenticationInfo");
}

#[tokio::test]
async fn header_values_signed_without_whitespace_collapse_are_accepted() {
    // The SDKs sign header values as they are (trimmed), while the documented rule collapses
    // runs of whitespace; a metadata value with a double space must verify either way.
    let s = start().await;
    let mut r = req("PUT", &q("spaces")).header("x-ms-meta-Note", "a  b");
    let headers = s.prepare(&r);
    let refs: Vec<(&str, &str)> = headers
        .iter()
        .filter(|(k, _)| k != "Authorization")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let path = q("spaces");
    let sts = hematite_queue_protocol::auth::shared_key::string_to_sign(
        &hematite_queue_protocol::auth::shared_key::SignableRequest {
            method: "PUT",
            path: &path,
            raw_query: "",
            headers: &refs,
        },
        ACCOUNT,
        Some(common::VERSION.parse().expect("v")),
        hematite_queue_protocol::auth::shared_key::AuthScheme::SharedKey,
        hematite_queue_protocol::auth::shared_key::Variant {
            keep_whitespace: true,
            ..Default::default()
        },
    );
    let sig = hematite_queue_protocol::auth::shared_key::sign(&common::key(), &sts);
    r = r.auth(Auth::None).version(None);
    r.headers = headers
        .into_iter()
        .filter(|(k, _)| k != "Host" && k != "Content-Length")
        .collect();
    r.headers
        .push(("Authorization".into(), format!("SharedKey {ACCOUNT}:{sig}")));
    let resp = s.send(r).await;
    assert_eq!(resp.status, 201, "{}", resp.body);
    let m = s.send(req("GET", &q("spaces?comp=metadata"))).await;
    assert_eq!(m.header("x-ms-meta-Note"), Some("a  b"));
}

#[tokio::test]
async fn shared_key_lite_is_accepted() {
    let s = start().await;
    let r = s
        .send(req("PUT", &q("lite")).auth(Auth::SharedKeyLite))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = s
        .send(req("GET", &q("lite?comp=metadata")).auth(Auth::SharedKeyLite))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn request_dates_must_be_within_fifteen_minutes() {
    let s = start().await;
    assert_eq!(
        s.send(req("PUT", &q("date1")).date_offset(-14 * 60))
            .await
            .status,
        201
    );
    let r = s.send(req("PUT", &q("date2")).date_offset(-16 * 60)).await;
    r.assert_error(403, "AuthenticationFailed");
    assert!(r
        .xml("AuthenticationErrorDetail")
        .expect("detail")
        .contains("too old"));
    s.send(req("PUT", &q("date3")).date_offset(16 * 60))
        .await
        .assert_error(403, "AuthenticationFailed");
    // A 2010 date, which Azurite accepts.
    s.send(req("PUT", &q("date4")).header("x-ms-date", "Fri, 01 Jan 2010 00:00:00 GMT"))
        .await
        .assert_error(403, "AuthenticationFailed");
}

#[tokio::test]
async fn legacy_versions_sign_a_zero_content_length_as_zero() {
    // The legacy SDKs sign `Content-Length: 0` as "0" for versions up to 2014-02-14; Azurite
    // always expects "" and rejects them (Azurite #1335).
    let s = start().await;
    for v in ["2009-09-19", "2014-02-14", "2015-02-21"] {
        let name = format!("legacy{}", &v[..4]);
        let r = s.send(req("PUT", &q(&name)).version(Some(v))).await;
        assert_eq!(r.status, 201, "{v}: {}", r.body);
        assert_eq!(r.header("x-ms-version"), Some(v));
    }
}

#[tokio::test]
async fn unknown_account_is_not_found_whatever_the_credential() {
    // As Azurite answers (Azure has no answer: the account's host does not resolve).
    let s = start().await;
    let r = s.send(req("PUT", "/nosuchaccount/q1")).await;
    r.assert_error(404, "ResourceNotFound");
    let sas = "sv=2026-10-06&ss=q&srt=sco&sp=rwdlacup&se=2030-01-01T00:00:00Z&sig=AAAA";
    let r = s
        .send(req("PUT", &format!("/nosuchaccount/q1?{sas}")).auth(Auth::None))
        .await;
    r.assert_error(404, "ResourceNotFound");
}

// ---- routing ----

#[tokio::test]
async fn bad_uris_verbs_and_comps() {
    let s = start().await;
    make_queue(&s, "routes").await;
    s.send(req("GET", &q("routes/messages/x/y")))
        .await
        .assert_error(400, "InvalidUri");
    s.send(req("POST", &q("routes")))
        .await
        .assert_error(405, "UnsupportedHttpVerb");
    s.send(req("POST", &q("routes/messages/abc?popreceipt=x")))
        .await
        .assert_error(405, "UnsupportedHttpVerb");
    let r = s.send(req("GET", &q("routes?comp=bogus"))).await;
    r.assert_error(400, "InvalidQueryParameterValue");
    assert_eq!(r.xml("QueryParameterName").as_deref(), Some("comp"));
}

#[tokio::test]
async fn host_style_addressing_works() {
    let s = start().await;
    let host = format!("{ACCOUNT}.queue.localhost:{}", s.addr.port());
    let r = s.send(req("PUT", "/hostq").host(&host)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = s.send(req("GET", "/?comp=list").host(&host)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.xml_all("Name"), ["hostq"]);
    assert!(
        r.body
            .contains(&format!("ServiceEndpoint=\"http://{host}/\"")),
        "{}",
        r.body
    );
}

// ---- queues ----

#[tokio::test]
async fn queue_names_are_validated() {
    let s = start().await;
    s.send(req("PUT", &q("ab")))
        .await
        .assert_error(400, "OutOfRangeInput");
    s.send(req("PUT", &q(&"a".repeat(64))))
        .await
        .assert_error(400, "OutOfRangeInput");
    for bad in ["Abc", "a--b", "-ab", "ab-", "a_b", "a%7Cb"] {
        s.send(req("PUT", &q(bad)))
            .await
            .assert_error(400, "InvalidResourceName");
    }
    assert_eq!(s.send(req("PUT", &q(&"a".repeat(63)))).await.status, 201);
}

#[tokio::test]
async fn create_is_idempotent_only_for_identical_metadata() {
    let s = start().await;
    let create = |meta: &'static str| req("PUT", &q("idem")).header("x-ms-meta-Color", meta);
    assert_eq!(s.send(create("red")).await.status, 201);
    assert_eq!(s.send(create("red")).await.status, 204);
    s.send(create("blue"))
        .await
        .assert_error(409, "QueueAlreadyExists");
    s.send(req("PUT", &q("idem")))
        .await
        .assert_error(409, "QueueAlreadyExists");
    assert_eq!(s.send(req("DELETE", &q("idem"))).await.status, 204);
    s.send(req("DELETE", &q("idem")))
        .await
        .assert_error(404, "QueueNotFound");
}

#[tokio::test]
async fn metadata_keeps_its_case_on_the_wire() {
    let s = start().await;
    let r = s
        .send(
            req("PUT", &q("meta"))
                .header("x-ms-meta-Color", "red")
                .header("x-ms-meta-camelCase", "x")
                // Python 12.x's bogus header: ignored for metadata, but signed.
                .header("x-ms-meta", "{'Color': 'red'}"),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = s.send(req("GET", &q("meta?comp=metadata"))).await;
    assert_eq!(r.status, 200);
    let names: Vec<&str> = r
        .headers
        .iter()
        .filter(|(k, _)| k.to_ascii_lowercase().starts_with("x-ms-meta-"))
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(names, ["x-ms-meta-Color", "x-ms-meta-camelCase"]);
    assert_eq!(r.header("x-ms-approximate-messages-count"), Some("0"));
    let r = s
        .send(req("GET", &q("?comp=list&include=metadata&prefix=meta")))
        .await;
    assert!(
        r.body
            .contains("<Metadata><Color>red</Color><camelCase>x</camelCase></Metadata>"),
        "{}",
        r.body
    );
    // HEAD answers the same headers with no body.
    let r = s.send(req("HEAD", &q("meta?comp=metadata"))).await;
    assert_eq!((r.status, r.body.as_str()), (200, ""));
    assert_eq!(r.header("x-ms-meta-Color"), Some("red"));
    // Set replaces, and no headers clears.
    assert_eq!(
        s.send(req("PUT", &q("meta?comp=metadata")).header("x-ms-meta-New", "1"))
            .await
            .status,
        204
    );
    let r = s.send(req("GET", &q("meta?comp=metadata"))).await;
    assert_eq!(
        (r.header("x-ms-meta-New"), r.header("x-ms-meta-Color")),
        (Some("1"), None)
    );
    assert_eq!(
        s.send(req("PUT", &q("meta?comp=metadata"))).await.status,
        204
    );
    let r = s.send(req("GET", &q("meta?comp=metadata"))).await;
    assert!(!r.headers.iter().any(|(k, _)| k.starts_with("x-ms-meta-")));
}

#[tokio::test]
async fn bad_metadata_is_rejected_and_nothing_is_stored() {
    let s = start().await;
    s.send(req("PUT", &q("badmeta")).header("x-ms-meta-1abc", "v"))
        .await
        .assert_error(400, "InvalidMetadata");
    s.send(req("PUT", &q("badmeta")).header("x-ms-meta-", "v"))
        .await
        .assert_error(400, "EmptyMetadataKey");
    s.send(
        req("PUT", &q("badmeta"))
            .header("x-ms-meta-a", "1")
            .header("x-ms-meta-A", "2"),
    )
    .await
    .assert_error(400, "InvalidMetadata");
    s.send(req("PUT", &q("badmeta")).header("x-ms-meta-big", &"v".repeat(8200)))
        .await
        .assert_error(400, "MetadataTooLarge");
    s.send(req("GET", &q("badmeta?comp=metadata")))
        .await
        .assert_error(404, "QueueNotFound");
    let r = s.send(req("HEAD", &q("badmeta?comp=metadata"))).await;
    assert_eq!(
        (r.status, r.code(), r.body.as_str()),
        (404, Some("QueueNotFound"), "")
    );
}

#[tokio::test]
async fn list_queues_pages_whatever_the_creation_order() {
    let s = start().await;
    for name in ["q3", "q1", "q5", "q2", "q4"] {
        make_queue(&s, &format!("list{name}")).await;
    }
    let mut seen = Vec::new();
    let mut marker = String::new();
    loop {
        let mut path = q("?comp=list&prefix=list&maxresults=2");
        if !marker.is_empty() {
            path.push_str(&format!("&marker={marker}"));
        }
        let r = s.send(req("GET", &path)).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.xml("MaxResults").as_deref(), Some("2"));
        seen.extend(r.xml_all("Name"));
        marker = r.xml("NextMarker").unwrap_or_default();
        if marker.is_empty() {
            assert!(
                r.body.contains("<NextMarker />") || r.body.contains("<NextMarker></NextMarker>"),
                "{}",
                r.body
            );
            break;
        }
    }
    assert_eq!(seen, ["listq1", "listq2", "listq3", "listq4", "listq5"]);
    let r = s.send(req("GET", &q("?comp=list&marker=garbage"))).await;
    r.assert_error(400, "InvalidMarker");
    let r = s.send(req("GET", &q("?comp=list&maxresults=0"))).await;
    r.assert_error(400, "OutOfRangeQueryParameterValue");
    let r = s.send(req("GET", &q("?comp=list&include=acl"))).await;
    r.assert_error(400, "InvalidQueryParameterValue");
    // Legacy versions use the AccountName attribute and a Url per queue.
    let r = s
        .send(req("GET", &q("?comp=list&prefix=listq1")).version(Some("2012-02-12")))
        .await;
    assert!(r.body.contains("AccountName=\""), "{}", r.body);
    assert!(
        r.body.contains("/devstoreaccount1/listq1</Url>"),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn acl_round_trip_and_limits() {
    let s = start().await;
    make_queue(&s, "acl").await;
    let body = "<?xml version=\"1.0\" encoding=\"utf-8\"?><SignedIdentifiers><SignedIdentifier><Id>p1</Id><AccessPolicy><Start>2024-01-01T00:00:00Z</Start><Expiry>2030-01-01T00:00:00Z</Expiry><Permission>raup</Permission></AccessPolicy></SignedIdentifier></SignedIdentifiers>";
    let r = s.send(req("PUT", &q("acl?comp=acl")).body(body)).await;
    assert_eq!(r.status, 204, "{}", r.body);
    let r = s.send(req("GET", &q("acl?comp=acl"))).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.xml("Id").as_deref(), Some("p1"));
    assert_eq!(
        r.xml("Start").as_deref(),
        Some("2024-01-01T00:00:00.0000000Z")
    );
    assert_eq!(r.xml("Permission").as_deref(), Some("raup"));
    let six: String = (0..6)
        .map(|i| format!("<SignedIdentifier><Id>p{i}</Id><AccessPolicy><Permission>r</Permission></AccessPolicy></SignedIdentifier>"))
        .collect();
    let r = s
        .send(
            req("PUT", &q("acl?comp=acl"))
                .body(format!("<SignedIdentifiers>{six}</SignedIdentifiers>")),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    s.send(req("PUT", &q("acl?comp=acl")).body("<SignedIdentifiers><Signed"))
        .await
        .assert_error(400, "InvalidXmlDocument");
    // The failed sets changed nothing; an empty body clears.
    assert_eq!(
        s.send(req("GET", &q("acl?comp=acl"))).await.xml_all("Id"),
        ["p1"]
    );
    assert_eq!(s.send(req("PUT", &q("acl?comp=acl"))).await.status, 204);
    assert!(s
        .send(req("GET", &q("acl?comp=acl")))
        .await
        .body
        .contains("<SignedIdentifiers />"));
}

// ---- messages ----

#[tokio::test]
async fn put_get_update_delete_with_a_manual_clock() {
    let s = start().await;
    make_queue(&s, "msgs").await;
    let r = s
        .send(req("POST", &q("msgs/messages")).message("hello"))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(r.xml("PopReceipt").is_some());
    assert!(r.xml("MessageText").is_none());

    let r = s
        .send(req("GET", &q("msgs/messages?visibilitytimeout=10")))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.xml("MessageText").as_deref(), Some("hello"));
    assert_eq!(r.xml("DequeueCount").as_deref(), Some("1"));
    let id = r.xml("MessageId").expect("id");
    let receipt = r.xml("PopReceipt").expect("receipt");

    // Invisible for ten seconds, then back with a second dequeue.
    assert!(s
        .send(req("GET", &q("msgs/messages")))
        .await
        .body
        .contains("<QueueMessagesList />"));
    s.advance(10);
    let r = s
        .send(req("GET", &q("msgs/messages?visibilitytimeout=30")))
        .await;
    assert_eq!(r.xml("DequeueCount").as_deref(), Some("2"));
    let receipt2 = r.xml("PopReceipt").expect("receipt");

    // The first receipt went stale when the message was dequeued again.
    let stale = s
        .send(req(
            "DELETE",
            &q(&format!("msgs/messages/{id}?popreceipt={receipt}")),
        ))
        .await;
    stale.assert_error(404, "MessageNotFound");

    let r = s
        .send(
            req(
                "PUT",
                &q(&format!(
                    "msgs/messages/{id}?popreceipt={receipt2}&visibilitytimeout=0"
                )),
            )
            .message("changed"),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let receipt3 = r.header("x-ms-popreceipt").expect("new receipt").to_owned();
    assert!(r
        .header("x-ms-time-next-visible")
        .is_some_and(|t| t.ends_with("GMT")));
    let r = s.send(req("GET", &q("msgs/messages?peekonly=true"))).await;
    assert_eq!(r.xml("MessageText").as_deref(), Some("changed"));
    assert_eq!(r.xml("DequeueCount").as_deref(), Some("2"));
    assert!(r.xml("PopReceipt").is_none() && r.xml("TimeNextVisible").is_none());
    let r = s
        .send(req(
            "DELETE",
            &q(&format!("msgs/messages/{id}?popreceipt={receipt3}")),
        ))
        .await;
    assert_eq!(r.status, 204);
    let r = s.send(req("GET", &q("msgs?comp=metadata"))).await;
    assert_eq!(r.header("x-ms-approximate-messages-count"), Some("0"));
}

#[tokio::test]
async fn ttl_and_visibility_parameters() {
    let s = start().await;
    make_queue(&s, "ttl").await;
    let r = s
        .send(req("POST", &q("ttl/messages?messagettl=-1")).message("forever"))
        .await;
    assert_eq!(
        r.xml("ExpirationTime").as_deref(),
        Some("Fri, 31 Dec 9999 23:59:59 GMT")
    );
    let r = s
        .send(req("POST", &q("ttl/messages?messagettl=0")).message("x"))
        .await;
    r.assert_error(400, "InvalidQueryParameterValue");
    assert_eq!(r.xml("QueryParameterName").as_deref(), Some("messagettl"));
    s.send(req("POST", &q("ttl/messages?messagettl=-2")).message("x"))
        .await
        .assert_error(400, "InvalidQueryParameterValue");
    s.send(
        req(
            "POST",
            &q("ttl/messages?messagettl=10&visibilitytimeout=10"),
        )
        .message("x"),
    )
    .await
    .assert_error(400, "InvalidQueryParameterValue");
    s.send(req("POST", &q("ttl/messages?visibilitytimeout=604801")).message("x"))
        .await
        .assert_error(400, "OutOfRangeQueryParameterValue");
    // Before 2017-07-29, -1 and more than seven days are out of range.
    s.send(
        req("POST", &q("ttl/messages?messagettl=-1"))
            .version(Some("2017-04-17"))
            .message("x"),
    )
    .await
    .assert_error(400, "OutOfRangeQueryParameterValue");
    // A short-lived message expires, then neither shows nor counts.
    let r = s
        .send(req("POST", &q("ttl/messages?messagettl=5")).message("short"))
        .await;
    assert_eq!(r.status, 201);
    let count = |r: common::Resp| {
        r.header("x-ms-approximate-messages-count")
            .map(str::to_owned)
    };
    assert_eq!(
        count(s.send(req("GET", &q("ttl?comp=metadata"))).await).as_deref(),
        Some("2")
    );
    s.advance(5);
    assert_eq!(
        count(s.send(req("GET", &q("ttl?comp=metadata"))).await).as_deref(),
        Some("1")
    );
    let r = s
        .send(req(
            "GET",
            &q("ttl/messages?numofmessages=32&peekonly=true"),
        ))
        .await;
    assert_eq!(r.xml_all("MessageText"), ["forever"]);
}

#[tokio::test]
async fn get_and_peek_ranges() {
    let s = start().await;
    make_queue(&s, "ranges").await;
    for bad in ["0", "33"] {
        let r = s
            .send(req(
                "GET",
                &q(&format!("ranges/messages?numofmessages={bad}")),
            ))
            .await;
        r.assert_error(400, "OutOfRangeQueryParameterValue");
        assert_eq!(r.xml("MinimumAllowed").as_deref(), Some("1"));
        assert_eq!(r.xml("MaximumAllowed").as_deref(), Some("32"));
        assert_eq!(r.xml("QueryParameterValue").as_deref(), Some(bad));
    }
    s.send(req("GET", &q("ranges/messages?numofmessages=abc")))
        .await
        .assert_error(400, "InvalidQueryParameterValue");
    s.send(req("GET", &q("ranges/messages?visibilitytimeout=0")))
        .await
        .assert_error(400, "OutOfRangeQueryParameterValue");
    s.send(req("GET", &q("ranges/messages?visibilitytimeout=604801")))
        .await
        .assert_error(400, "OutOfRangeQueryParameterValue");
    // Before 2011-08-18 the maximum was two hours.
    s.send(req("GET", &q("ranges/messages?visibilitytimeout=7201")).version(Some("2009-09-19")))
        .await
        .assert_error(400, "OutOfRangeQueryParameterValue");
    s.send(req("GET", &q("ranges/messages?timeout=abc")))
        .await
        .assert_error(400, "InvalidQueryParameterValue");
    for i in 0..40 {
        s.send(req("POST", &q("ranges/messages")).message(&format!("m{i}")))
            .await;
    }
    let r = s
        .send(req("GET", &q("ranges/messages?numofmessages=32")))
        .await;
    assert_eq!(r.xml_all("MessageText").len(), 32);
    let r = s
        .send(req(
            "GET",
            &q("ranges/messages?numofmessages=32&peekonly=true"),
        ))
        .await;
    assert_eq!(r.xml_all("MessageText").len(), 8);
}

#[tokio::test]
async fn message_size_limits() {
    let s = start().await;
    make_queue(&s, "size").await;
    let r = s
        .send(req("POST", &q("size/messages")).message(&"a".repeat(65_536)))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = s
        .send(req("POST", &q("size/messages")).message(&"a".repeat(65_537)))
        .await;
    r.assert_error(413, "RequestBodyTooLarge");
    assert_eq!(r.xml("MaxLimit").as_deref(), Some("65536"));
    // Escapes count once decoded: 65536 '&' chars are within the limit...
    let r = s
        .send(req("POST", &q("size/messages")).message(&"&amp;".repeat(20_000)))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    // ...but a body past the service's whole-request cap is refused before parsing.
    let r = s
        .send(req("POST", &q("size/messages")).message(&"&amp;".repeat(30_000)))
        .await;
    r.assert_error(413, "RequestBodyTooLarge");
    assert_eq!(r.xml("MaxLimit").as_deref(), Some("131584"));
    // Multibyte text counts bytes: 21846 three-byte chars is 65538 bytes.
    let r = s
        .send(req("POST", &q("size/messages")).message(&"€".repeat(21_846)))
        .await;
    r.assert_error(413, "RequestBodyTooLarge");
    // Only the first put landed... plus the escaped one.
    let r = s.send(req("GET", &q("size?comp=metadata"))).await;
    assert_eq!(r.header("x-ms-approximate-messages-count"), Some("2"));
}

#[tokio::test]
async fn bad_message_bodies() {
    let s = start().await;
    make_queue(&s, "bodies").await;
    s.send(req("POST", &q("bodies/messages")).body("<QueueMessage><MessageText>x</Mess"))
        .await
        .assert_error(400, "InvalidXmlDocument");
    s.send(req("POST", &q("bodies/messages")).body("<QueueMessage></QueueMessage>"))
        .await
        .assert_error(400, "InvalidXmlDocument");
    s.send(req("POST", &q("bodies/messages")))
        .await
        .assert_error(400, "InvalidXmlDocument");
    let r = s
        .send(
            req("POST", &q("bodies/messages")).body("<QueueMessage><MessageText/></QueueMessage>"),
        )
        .await;
    assert_eq!(r.status, 201, "an empty text is valid: {}", r.body);
    let r = s.send(req("GET", &q("bodies?comp=metadata"))).await;
    assert_eq!(r.header("x-ms-approximate-messages-count"), Some("1"));
}

#[tokio::test]
async fn message_text_comes_back_byte_for_byte() {
    let s = start().await;
    make_queue(&s, "fidelity").await;
    // Everything but literal line ends comes back as sent; `&#xD;` keeps a CR that a client
    // escaped itself.
    let text = "a <b> & \"c\" 'd'\n\ttab é 日本 😀 cr\r!";
    let escaped = text
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\r', "&#xD;");
    let r = s
        .send(req("POST", &q("fidelity/messages")).message(&escaped))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    // A literal CRLF is an XML line end: the service's parser, like every other, reads "\n".
    s.send(req("POST", &q("fidelity/messages")).message("x\r\ny"))
        .await;
    let r = s
        .send(req("GET", &q("fidelity/messages?numofmessages=2")))
        .await;
    let raw = r.xml_all("MessageText");
    let decode = |s: &str| {
        s.replace("&#xD;", "\r")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
    };
    assert_eq!(decode(&raw[0]), text);
    assert!(
        !raw[0].contains('\r'),
        "a raw CR would be normalized away by the client's parser"
    );
    assert_eq!(raw[1], "x\ny");
}

#[tokio::test]
async fn receipts_and_ids() {
    let s = start().await;
    make_queue(&s, "receipts").await;
    let r = s
        .send(req("POST", &q("receipts/messages")).message("m"))
        .await;
    let id = r.xml("MessageId").expect("id");
    let receipt = r.xml("PopReceipt").expect("receipt");
    let r = s
        .send(req("DELETE", &q(&format!("receipts/messages/{id}"))))
        .await;
    r.assert_error(400, "MissingRequiredQueryParameter");
    assert_eq!(r.xml("QueryParameterName").as_deref(), Some("popreceipt"));
    let r = s
        .send(req(
            "DELETE",
            &q(&format!("receipts/messages/{id}?popreceipt=%21%21")),
        ))
        .await;
    r.assert_error(400, "InvalidQueryParameterValue");
    assert_eq!(r.xml("Reason").as_deref(), Some("invalid receipt format"));
    let r = s
        .send(req(
            "PUT",
            &q(&format!("receipts/messages/{id}?popreceipt={receipt}")),
        ))
        .await;
    r.assert_error(400, "MissingRequiredQueryParameter");
    assert_eq!(
        r.xml("QueryParameterName").as_deref(),
        Some("visibilitytimeout")
    );
    s.send(req(
        "PUT",
        &q(&format!(
            "receipts/messages/{id}?popreceipt={receipt}&visibilitytimeout=604801"
        )),
    ))
    .await
    .assert_error(400, "OutOfRangeQueryParameterValue");
    s.send(req(
        "DELETE",
        &q(&format!(
            "receipts/messages/not-a-guid?popreceipt={receipt}"
        )),
    ))
    .await
    .assert_error(404, "MessageNotFound");
    s.send(req(
        "DELETE",
        &q(&format!("nosuchqueue/messages/{id}?popreceipt={receipt}")),
    ))
    .await
    .assert_error(404, "QueueNotFound");
    // The put's own receipt deletes the message.
    assert_eq!(
        s.send(req(
            "DELETE",
            &q(&format!("receipts/messages/{id}?popreceipt={receipt}"))
        ))
        .await
        .status,
        204
    );
}

#[tokio::test]
async fn put_message_body_depends_on_version() {
    let s = start().await;
    make_queue(&s, "putver").await;
    let r = s
        .send(
            req("POST", &q("putver/messages"))
                .version(Some("2015-12-11"))
                .message("x"),
        )
        .await;
    assert_eq!((r.status, r.body.as_str()), (201, ""));
    let r = s
        .send(
            req("POST", &q("putver/messages"))
                .version(Some("2016-05-31"))
                .message("x"),
        )
        .await;
    assert_eq!(r.status, 201);
    assert!(
        r.body
            .starts_with("<?xml version=\"1.0\" encoding=\"utf-8\"?><QueueMessagesList>"),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn clear_messages_and_missing_queue() {
    let s = start().await;
    make_queue(&s, "clear").await;
    for _ in 0..3 {
        s.send(req("POST", &q("clear/messages")).message("x")).await;
    }
    s.send(req("GET", &q("clear/messages"))).await;
    assert_eq!(
        s.send(req("DELETE", &q("clear/messages"))).await.status,
        204
    );
    let r = s.send(req("GET", &q("clear?comp=metadata"))).await;
    assert_eq!(r.header("x-ms-approximate-messages-count"), Some("0"));
    s.send(req("DELETE", &q("nope/messages")))
        .await
        .assert_error(404, "QueueNotFound");
    s.send(req("POST", &q("nope/messages")).message("x"))
        .await
        .assert_error(404, "QueueNotFound");
}

// ---- service ----

#[tokio::test]
async fn service_properties_partial_updates_and_validation() {
    let s = start().await;
    let r = s
        .send(req("GET", &q("?restype=service&comp=properties")))
        .await;
    assert_eq!(r.status, 200);
    assert!(
        r.body.contains("<Cors />") || r.body.contains("<Cors></Cors>"),
        "{}",
        r.body
    );
    let cors = "<StorageServiceProperties><Cors><CorsRule><AllowedOrigins>http://a.com</AllowedOrigins><AllowedMethods>GET,PUT</AllowedMethods><MaxAgeInSeconds>500</MaxAgeInSeconds><ExposedHeaders>x-ms-meta-*</ExposedHeaders><AllowedHeaders>x-ms-meta-target*</AllowedHeaders></CorsRule></Cors></StorageServiceProperties>";
    let r = s
        .send(req("PUT", &q("?restype=service&comp=properties")).body(cors))
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let metrics = "<StorageServiceProperties><HourMetrics><Version>1.0</Version><Enabled>true</Enabled><IncludeAPIs>false</IncludeAPIs><RetentionPolicy><Enabled>true</Enabled><Days>7</Days></RetentionPolicy></HourMetrics></StorageServiceProperties>";
    assert_eq!(
        s.send(req("PUT", &q("?restype=service&comp=properties")).body(metrics))
            .await
            .status,
        202
    );
    let r = s
        .send(req("GET", &q("?restype=service&comp=properties")))
        .await;
    assert!(
        r.body
            .contains("<AllowedOrigins>http://a.com</AllowedOrigins>"),
        "CORS kept: {}",
        r.body
    );
    assert!(r.body.contains("<Days>7</Days>"), "{}", r.body);
    let bad = "<StorageServiceProperties><HourMetrics><Version>1.0</Version><Enabled>maybe</Enabled></HourMetrics></StorageServiceProperties>";
    let r = s
        .send(req("PUT", &q("?restype=service&comp=properties")).body(bad))
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    s.send(req("PUT", &q("?restype=service&comp=properties")).body("<Storage"))
        .await
        .assert_error(400, "InvalidXmlDocument");
}

#[tokio::test]
async fn cors_preflight_and_response_headers() {
    let s = start().await;
    let preflight = |origin: &str, method: &str, headers: &str| {
        let mut r = req("OPTIONS", &q("anyqueue/messages"))
            .auth(Auth::None)
            .header("Origin", origin)
            .header("Access-Control-Request-Method", method);
        if !headers.is_empty() {
            r = r.header("Access-Control-Request-Headers", headers);
        }
        r
    };
    s.send(preflight("http://a.com", "GET", ""))
        .await
        .assert_error(403, "CorsPreflightFailure");
    let cors = "<StorageServiceProperties><Cors><CorsRule><AllowedOrigins>http://a.com</AllowedOrigins><AllowedMethods>GET,PUT</AllowedMethods><MaxAgeInSeconds>500</MaxAgeInSeconds><ExposedHeaders>x-ms-meta-*</ExposedHeaders><AllowedHeaders>x-ms-meta-target*</AllowedHeaders></CorsRule></Cors></StorageServiceProperties>";
    assert_eq!(
        s.send(req("PUT", &q("?restype=service&comp=properties")).body(cors))
            .await
            .status,
        202
    );
    let r = s
        .send(preflight("http://a.com", "PUT", "x-ms-meta-target1"))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.header("Access-Control-Allow-Origin"),
        Some("http://a.com")
    );
    assert_eq!(r.header("Access-Control-Max-Age"), Some("500"));
    s.send(preflight("http://b.com", "PUT", ""))
        .await
        .assert_error(403, "CorsPreflightFailure");
    s.send(preflight("http://a.com", "DELETE", ""))
        .await
        .assert_error(403, "CorsPreflightFailure");
    s.send(preflight("http://a.com", "GET", "x-other"))
        .await
        .assert_error(403, "CorsPreflightFailure");
    let r = s
        .send(
            req("OPTIONS", &q("x"))
                .auth(Auth::None)
                .header("Origin", "http://a.com"),
        )
        .await;
    assert_eq!(r.status, 400);
    // A real request from an allowed origin gets the headers; its metadata is exposed.
    make_queue(&s, "corsq").await;
    s.send(req("PUT", &q("corsq?comp=metadata")).header("x-ms-meta-Tag", "v"))
        .await;
    let r = s
        .send(req("GET", &q("corsq?comp=metadata")).header("Origin", "http://a.com"))
        .await;
    assert_eq!(
        r.header("Access-Control-Allow-Origin"),
        Some("http://a.com")
    );
    assert!(r
        .header("Access-Control-Expose-Headers")
        .is_some_and(|h| h.contains("x-ms-meta-Tag")));
    let r = s
        .send(req("GET", &q("corsq?comp=metadata")).header("Origin", "http://evil.com"))
        .await;
    assert_eq!(r.header("Access-Control-Allow-Origin"), None);
}

#[tokio::test]
async fn stats_only_on_the_secondary_and_the_secondary_is_read_only() {
    let s = start().await;
    let r = s
        .send(req(
            "GET",
            &format!("/{ACCOUNT}-secondary/?restype=service&comp=stats"),
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.xml("Status").as_deref(), Some("live"));
    // The shape Python 12.x sends through `secondary_hostname`.
    let path = format!("/{ACCOUNT}-secondary/{ACCOUNT}/?restype=service&comp=stats");
    assert_eq!(s.send(req("GET", &path)).await.status, 200);
    s.send(req("GET", &q("?restype=service&comp=stats")))
        .await
        .assert_error(400, "InvalidQueryParameterValue");
    make_queue(&s, "sec").await;
    let r = s
        .send(req(
            "GET",
            &format!("/{ACCOUNT}-secondary/sec?comp=metadata"),
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    s.send(req("PUT", &format!("/{ACCOUNT}-secondary/other")))
        .await
        .assert_error(403, "InsufficientAccountPermissions");
}

// ---- HTTP layer ----

#[tokio::test]
async fn keep_alive_pipelining_chunked_and_expect_continue() {
    use tokio::io::AsyncWriteExt;
    let s = start().await;
    make_queue(&s, "wire").await;
    // Two requests pipelined on one connection.
    let mut conn = tokio::net::TcpStream::connect(s.addr)
        .await
        .expect("connect");
    let mut bytes = Vec::new();
    for _ in 0..2 {
        let h = s.prepare(&req("GET", &q("wire?comp=metadata")));
        bytes.extend_from_slice(format!("GET {} HTTP/1.1\r\n", q("wire?comp=metadata")).as_bytes());
        for (k, v) in h {
            bytes.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
        }
        bytes.extend_from_slice(b"\r\n");
    }
    conn.write_all(&bytes).await.expect("write");
    let mut pending = Vec::new();
    for _ in 0..2 {
        let r = common::read_response_from(&mut conn, &mut pending, false).await;
        assert_eq!(r.status, 200);
    }
    // A chunked body, announced with Expect: 100-continue.
    let body = b"<QueueMessage><MessageText>chunky</MessageText></QueueMessage>";
    let r = req("POST", &q("wire/messages")).header("Content-Type", "application/xml");
    let mut h = s.prepare(&r);
    // Sign with the length, then send chunked: Shared Key covers Content-Length, so sign a
    // request without it instead.
    h.retain(|(k, _)| k != "Content-Length" && k != "Authorization");
    let refs: Vec<(&str, &str)> = h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let path = q("wire/messages");
    let sts = hematite_queue_protocol::auth::shared_key::string_to_sign(
        &hematite_queue_protocol::auth::shared_key::SignableRequest {
            method: "POST",
            path: &path,
            raw_query: "",
            headers: &refs,
        },
        ACCOUNT,
        Some(common::VERSION.parse().expect("v")),
        hematite_queue_protocol::auth::shared_key::AuthScheme::SharedKey,
        Default::default(),
    );
    let sig = hematite_queue_protocol::auth::shared_key::sign(&common::key(), &sts);
    let mut raw = format!("POST {path} HTTP/1.1\r\n").into_bytes();
    for (k, v) in &h {
        raw.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    raw.extend_from_slice(format!("Authorization: SharedKey {ACCOUNT}:{sig}\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n").as_bytes());
    let (a, b) = body.split_at(20);
    for part in [a, b] {
        raw.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        raw.extend_from_slice(part);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let mut c2 = tokio::net::TcpStream::connect(s.addr)
        .await
        .expect("connect");
    c2.write_all(&raw).await.expect("write");
    let mut pending = Vec::new();
    let cont = common::read_response_from(&mut c2, &mut pending, true).await;
    assert_eq!(cont.status, 100);
    let r = common::read_response_from(&mut c2, &mut pending, false).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = s.send(req("GET", &q("wire/messages"))).await;
    assert_eq!(r.xml("MessageText").as_deref(), Some("chunky"));
}

#[tokio::test]
async fn oversized_header_blocks_are_refused() {
    let s = start().await;
    let r = s
        .send(req("PUT", &q("bighead")).header("x-ms-meta-a", &"v".repeat(70 * 1024)))
        .await;
    // HTTP.sys, in front of Azure Storage, answers this itself.
    assert_eq!(r.status, 400);
    assert!(
        r.body.contains("Bad Request - Request Too Long"),
        "{}",
        r.body
    );
    s.send(req("GET", &q("bighead?comp=metadata")))
        .await
        .assert_error(404, "QueueNotFound");
}

#[tokio::test]
async fn garbage_gets_a_400() {
    let s = start().await;
    let r = s.raw(b"NOT HTTP AT ALL\r\n\r\n", false).await;
    assert_eq!(r.status, 400);
}
