//! SAS negatives with raw requests: every way a token can be refused, and the answer for each.

mod common;

use common::{key, q, req, start, Auth, ACCOUNT};
use hematite_engine::Clock;
use hematite_queue_api::auth::to_offset;
use hematite_queue_protocol::auth::sas::{
    AccountPermissions, AccountSasBuilder, ResourceTypes, ServicePermissions, ServiceSasBuilder,
};
use time::{Duration, OffsetDateTime};

fn now(s: &common::Server) -> OffsetDateTime {
    to_offset(s.clock.now())
}

fn service(perms: &str, s: &common::Server) -> ServiceSasBuilder {
    ServiceSasBuilder {
        permissions: Some(perms.parse::<ServicePermissions>().expect("perms")),
        expiry: Some(now(s) + Duration::hours(1)),
        ..ServiceSasBuilder::default()
    }
}

fn account(srt: &str, perms: &str, s: &common::Server) -> AccountSasBuilder {
    AccountSasBuilder {
        services: "q".into(),
        resource_types: srt.parse::<ResourceTypes>().expect("srt"),
        permissions: perms.parse::<AccountPermissions>().expect("sp"),
        expiry: Some(now(s) + Duration::hours(1)),
        ..AccountSasBuilder::default()
    }
}

/// A request carrying only the SAS: no Authorization header, no x-ms-version.
fn with_sas(method: &str, path: &str, token: &str) -> common::Req {
    let sep = if path.contains('?') { '&' } else { '?' };
    req(method, &format!("{path}{sep}{token}"))
        .auth(Auth::None)
        .version(None)
}

async fn setup() -> common::Server {
    let s = start().await;
    assert_eq!(s.send(req("PUT", &q("sasq"))).await.status, 201);
    s
}

#[tokio::test]
async fn service_sas_grants_exactly_its_letters() {
    let s = setup().await;
    let add = service("a", &s).to_query(ACCOUNT, "sasq", &key());
    let r = s
        .send(with_sas("POST", &q("sasq/messages"), &add).message("hi"))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    // The response runs under the SAS's signed version.
    assert_eq!(r.header("x-ms-version"), Some("2026-10-06"));
    s.send(with_sas("GET", &q("sasq/messages"), &add))
        .await
        .assert_error(403, "AuthorizationPermissionMismatch");
    let read = service("r", &s).to_query(ACCOUNT, "sasq", &key());
    assert_eq!(
        s.send(with_sas("GET", &q("sasq/messages?peekonly=true"), &read))
            .await
            .status,
        200
    );
    assert_eq!(
        s.send(with_sas("GET", &q("sasq?comp=metadata"), &read))
            .await
            .status,
        200
    );
    // Never for a service SAS, whatever its letters.
    let all = service("raup", &s).to_query(ACCOUNT, "sasq", &key());
    for (m, p) in [
        ("PUT", q("sasq?comp=metadata")),
        ("DELETE", q("sasq/messages")),
        ("GET", q("sasq?comp=acl")),
        ("DELETE", q("sasq")),
    ] {
        s.send(with_sas(m, &p, &all))
            .await
            .assert_error(403, "AuthorizationFailure");
    }
    // Signed for one queue, used on another: the signature no longer matches.
    assert_eq!(s.send(req("PUT", &q("otherq"))).await.status, 201);
    s.send(with_sas("GET", &q("otherq/messages?peekonly=true"), &all))
        .await
        .assert_error(403, "AuthenticationFailed");
}

#[tokio::test]
async fn sas_time_window_ip_and_protocol() {
    let s = setup().await;
    let mut expired = service("r", &s);
    expired.expiry = Some(now(&s) - Duration::seconds(1));
    let r = s
        .send(with_sas(
            "GET",
            &q("sasq?comp=metadata"),
            &expired.to_query(ACCOUNT, "sasq", &key()),
        ))
        .await;
    r.assert_error(403, "AuthenticationFailed");
    assert!(r
        .xml("AuthenticationErrorDetail")
        .expect("detail")
        .starts_with("Signature not valid in the specified time frame"));
    let mut future = service("r", &s);
    future.start = Some(now(&s) + Duration::minutes(5));
    s.send(with_sas(
        "GET",
        &q("sasq?comp=metadata"),
        &future.to_query(ACCOUNT, "sasq", &key()),
    ))
    .await
    .assert_error(403, "AuthenticationFailed");
    let mut ip = service("r", &s);
    ip.ip = Some("10.1.1.1-10.1.1.9".into());
    s.send(with_sas(
        "GET",
        &q("sasq?comp=metadata"),
        &ip.to_query(ACCOUNT, "sasq", &key()),
    ))
    .await
    .assert_error(403, "AuthorizationSourceIPMismatch");
    ip.ip = Some("127.0.0.1".into());
    assert_eq!(
        s.send(with_sas(
            "GET",
            &q("sasq?comp=metadata"),
            &ip.to_query(ACCOUNT, "sasq", &key())
        ))
        .await
        .status,
        200
    );
    let mut https = service("r", &s);
    https.protocol = Some("https".into());
    s.send(with_sas(
        "GET",
        &q("sasq?comp=metadata"),
        &https.to_query(ACCOUNT, "sasq", &key()),
    ))
    .await
    .assert_error(403, "AuthorizationProtocolMismatch");
}

#[tokio::test]
async fn tampered_and_foreign_tokens() {
    let s = setup().await;
    let token = service("r", &s).to_query(ACCOUNT, "sasq", &key());
    let tampered = token.replace("sp=r", "sp=raup");
    assert_ne!(tampered, token);
    s.send(with_sas("GET", &q("sasq/messages"), &tampered))
        .await
        .assert_error(403, "AuthenticationFailed");
    let wrong_key = service("r", &s).to_query(ACCOUNT, "sasq", &[9u8; 64]);
    s.send(with_sas("GET", &q("sasq?comp=metadata"), &wrong_key))
        .await
        .assert_error(403, "AuthenticationFailed");
}

#[tokio::test]
async fn stored_access_policies() {
    let s = setup().await;
    let exp = hematite_queue_protocol::datetime::format_iso8601_7(now(&s) + Duration::hours(1));
    let acl = format!("<SignedIdentifiers><SignedIdentifier><Id>policy1</Id><AccessPolicy><Expiry>{exp}</Expiry><Permission>r</Permission></AccessPolicy></SignedIdentifier><SignedIdentifier><Id>bare</Id><AccessPolicy /></SignedIdentifier></SignedIdentifiers>");
    assert_eq!(
        s.send(req("PUT", &q("sasq?comp=acl")).body(acl))
            .await
            .status,
        204
    );
    let by_policy = ServiceSasBuilder {
        identifier: Some("policy1".into()),
        ..ServiceSasBuilder::default()
    };
    let token = by_policy.to_query(ACCOUNT, "sasq", &key());
    assert_eq!(
        s.send(with_sas("GET", &q("sasq?comp=metadata"), &token))
            .await
            .status,
        200
    );
    s.send(with_sas("POST", &q("sasq/messages"), &token).message("x"))
        .await
        .assert_error(403, "AuthorizationPermissionMismatch");
    // A field both in the token and in the policy.
    let mut doubled = service("r", &s);
    doubled.identifier = Some("policy1".into());
    s.send(with_sas(
        "GET",
        &q("sasq?comp=metadata"),
        &doubled.to_query(ACCOUNT, "sasq", &key()),
    ))
    .await
    .assert_error(403, "AuthenticationFailed");
    // Fields the policy leaves out may come from the token.
    let mut completes = service("a", &s);
    completes.identifier = Some("bare".into());
    let r = s
        .send(
            with_sas(
                "POST",
                &q("sasq/messages"),
                &completes.to_query(ACCOUNT, "sasq", &key()),
            )
            .message("x"),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let unknown = ServiceSasBuilder {
        identifier: Some("nope".into()),
        ..ServiceSasBuilder::default()
    };
    s.send(with_sas(
        "GET",
        &q("sasq?comp=metadata"),
        &unknown.to_query(ACCOUNT, "sasq", &key()),
    ))
    .await
    .assert_error(403, "AuthenticationFailed");
    // The policy expires with the clock, and revoking it kills the token.
    s.advance(3601);
    s.send(with_sas("GET", &q("sasq?comp=metadata"), &token))
        .await
        .assert_error(403, "AuthenticationFailed");
}

#[tokio::test]
async fn account_sas_services_types_and_letters() {
    let s = setup().await;
    let list = account("s", "l", &s).to_query(ACCOUNT, &key());
    let r = s.send(with_sas("GET", &q("?comp=list"), &list)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    s.send(with_sas("PUT", &q("newq"), &list))
        .await
        .assert_error(403, "AuthorizationResourceTypeMismatch");
    let create = account("c", "r", &s).to_query(ACCOUNT, &key());
    s.send(with_sas("PUT", &q("newq"), &create))
        .await
        .assert_error(403, "AuthorizationPermissionMismatch");
    let full = account("sco", "rwdlacup", &s).to_query(ACCOUNT, &key());
    assert_eq!(s.send(with_sas("PUT", &q("newq"), &full)).await.status, 201);
    s.send(with_sas("GET", &q("newq?comp=acl"), &full))
        .await
        .assert_error(403, "AuthorizationFailure");
    // Delete/Update/Clear of messages accept `c` as well as `o` (docs and Azurite disagree).
    let container_d = account("c", "d", &s).to_query(ACCOUNT, &key());
    assert_eq!(
        s.send(with_sas("DELETE", &q("newq/messages"), &container_d))
            .await
            .status,
        204
    );
    let mut blob_only = account("sco", "rwdlacup", &s);
    blob_only.services = "b".into();
    s.send(with_sas(
        "GET",
        &q("?comp=list"),
        &blob_only.to_query(ACCOUNT, &key()),
    ))
    .await
    .assert_error(403, "AuthorizationServiceMismatch");
}
