//! HTTPS, bearer tokens and user delegation SAS, in-process over TLS with a certificate and a
//! signing key the test makes: what Azure answers for each way a token can be wrong, and the
//! whole user delegation round trip.

mod common;

use std::sync::Arc;

use base64::Engine as _;
use common::{q, req, start_custom, test_tls, Auth, Custom, ACCOUNT};
use hematite_engine::Clock;
use hematite_queue_api::auth::to_offset;
use hematite_queue_api::oauth::OAuth;
use hematite_queue_api::Options;
use hematite_queue_protocol::auth::jwt::base64url;
use hematite_queue_protocol::auth::sas::{self, DelegationKey, SasParams};
use hematite_queue_protocol::auth::SigningKey;
use hematite_queue_protocol::datetime::format_iso8601_seconds;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

const OID: &str = "23657296-5cd5-45b0-a809-d972a7f4dfe1";
const TID: &str = "dd0d0df1-06c3-436c-8034-4b9a153097ce";

/// An identity provider for the test: one P-256 key, published as a JWKS file.
struct Idp {
    pair: EcdsaKeyPair,
    jwks: std::path::PathBuf,
}

impl Idp {
    fn new() -> Self {
        let rng = SystemRandom::new();
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("generate");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .expect("load");
        let point = pair.public_key().as_ref();
        let jwks = std::env::temp_dir().join(format!(
            "hematite-jwks-{}-{}.json",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::write(
            &jwks,
            format!(
                r#"{{"keys":[{{"kty":"EC","crv":"P-256","kid":"test","x":"{}","y":"{}"}}]}}"#,
                base64url(&point[1..33]),
                base64url(&point[33..])
            ),
        )
        .expect("write jwks");
        Idp { pair, jwks }
    }

    fn mint(&self, claims: &str) -> String {
        let input = format!(
            "{}.{}",
            base64url(br#"{"alg":"ES256","typ":"JWT","kid":"test"}"#),
            base64url(claims.as_bytes())
        );
        let sig = self
            .pair
            .sign(&SystemRandom::new(), input.as_bytes())
            .expect("sign");
        format!("{input}.{}", base64url(sig.as_ref()))
    }
}

/// Claims valid around the server's clock, for `aud`, from `iss`.
fn claims(s: &common::Server, nbf_offset: i64, exp_offset: i64, iss: &str, aud: &str) -> String {
    let now = to_offset(s.clock.now()).unix_timestamp();
    format!(
        r#"{{"aud":"{aud}","iss":"{iss}","nbf":{},"exp":{},"iat":{},"oid":"{OID}","tid":"{TID}","scp":"user_impersonation"}}"#,
        now + nbf_offset,
        now + exp_offset,
        now + nbf_offset
    )
}

const ISS: &str = "https://sts.windows.net/dd0d0df1-06c3-436c-8034-4b9a153097ce/";
const AUD: &str = "https://storage.azure.com";

async fn https_server(idp: &Idp) -> common::Server {
    let (acceptor, connector) = test_tls();
    start_custom(Custom {
        options: Options {
            oauth: Some(Arc::new(OAuth::signed(&idp.jwks).expect("keys"))),
            ..Options::default()
        },
        tls: Some(acceptor),
        tls_client: Some(connector),
        ..Custom::default()
    })
    .await
}

fn bearer(r: common::Req, token: &str) -> common::Req {
    r.auth(Auth::None)
        .header("Authorization", &format!("Bearer {token}"))
}

#[tokio::test]
async fn https_serves_shared_key_and_plain_http_is_not_spoken_there() {
    let idp = Idp::new();
    let s = https_server(&idp).await;
    s.send(req("PUT", &q("overtls"))).await.assert_status(201);
    // A plain-HTTP client on the TLS port gets no HTTP answer.
    let mut c = tokio::net::TcpStream::connect(s.addr)
        .await
        .expect("connect");
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    c.write_all(b"GET /devstoreaccount1?comp=list HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), c.read(&mut buf))
        .await
        .expect("closed in time")
        .unwrap_or(0);
    assert!(!String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn a_valid_token_is_served_and_every_wrong_one_gets_azures_401() {
    let idp = Idp::new();
    let s = https_server(&idp).await;
    let good = idp.mint(&claims(&s, -60, 3600, ISS, AUD));
    s.send(bearer(req("PUT", &q("tokenq")), &good))
        .await
        .assert_status(201);
    s.send(bearer(req("POST", &q("tokenq/messages")), &good).message("hi"))
        .await
        .assert_status(201);

    let other = Idp::new();
    let cases = [
        (
            other.mint(&claims(&s, -60, 3600, ISS, AUD)),
            "Signature validation failed.",
        ),
        (
            idp.mint(&claims(&s, 3600, 7200, ISS, AUD)),
            "Lifetime validation failed.",
        ),
        (
            idp.mint(&claims(&s, -7200, -3600, ISS, AUD)),
            "The token is expired.",
        ),
        (
            idp.mint(&claims(&s, -60, 3600, "https://invalidissuer/t/", AUD)),
            "issuer",
        ),
        (
            idp.mint(&claims(
                &s,
                -60,
                3600,
                ISS,
                "https://invalidaccount.queue.core.windows.net",
            )),
            "audience",
        ),
        ("invalid token".to_owned(), "Bearer"),
    ];
    for (token, says) in cases {
        let r = s
            .send(bearer(req("GET", &q("tokenq?comp=metadata")), &token))
            .await;
        r.assert_error(401, "InvalidAuthenticationInfo");
        let detail = r.xml("AuthenticationErrorDetail").unwrap_or_default();
        assert!(detail.contains(says), "{says:?} not in {detail:?}");
        assert!(r
            .body
            .contains("Server failed to authenticate the request."));
        let challenge = r.header("WWW-Authenticate").unwrap_or_default();
        assert!(
            challenge.starts_with("Bearer authorization_uri=https://login.microsoftonline.com/")
                && challenge.ends_with("resource_id=https://storage.azure.com"),
            "{challenge}"
        );
    }
    // Versions before OAuth existed.
    s.send(bearer(req("GET", &q("tokenq?comp=metadata")), &good).version(Some("2017-07-29")))
        .await
        .assert_error(403, "AuthenticationFailed");
    // The ACL needs the account key.
    s.send(bearer(req("GET", &q("tokenq?comp=acl")), &good))
        .await
        .assert_error(403, "AuthenticationFailed");
}

#[tokio::test]
async fn bearer_tokens_are_refused_over_plain_http() {
    let idp = Idp::new();
    let s = start_custom(Custom {
        options: Options {
            oauth: Some(Arc::new(OAuth::basic())),
            ..Options::default()
        },
        ..Custom::default()
    })
    .await;
    let token = idp.mint(&claims(&s, -60, 3600, ISS, AUD));
    let r = s.send(bearer(req("PUT", &q("plain")), &token)).await;
    r.assert_error(403, "AuthenticationFailed");
    assert!(r
        .body
        .contains("Authentication scheme Bearer is not allowed with HTTP."));
}

/// A user delegation SAS for `queue`, signed as the SDKs sign it with `key` and its value.
fn ud_sas(
    key: &DelegationKey,
    value: &str,
    queue: &str,
    sp: &str,
    se: &str,
    sduoid: Option<&str>,
) -> String {
    let mut p = SasParams {
        sv: "2026-10-06".into(),
        se: Some(se.into()),
        sp: Some(sp.into()),
        skoid: Some(key.object_id.clone()),
        sktid: Some(key.tenant_id.clone()),
        skt: Some(key.start.clone()),
        ske: Some(key.expiry.clone()),
        sks: Some(key.service.clone()),
        skv: Some(key.version.clone()),
        sduoid: sduoid.map(str::to_owned),
        ..SasParams::default()
    };
    let sts = sas::user_delegation_string_to_sign(&p, ACCOUNT, queue);
    let raw = base64::engine::general_purpose::STANDARD
        .decode(value)
        .expect("value");
    p.sig = SigningKey::new(&raw).sign(&sts);
    p.to_query()
}

#[tokio::test]
async fn user_delegation_keys_sign_sas_tokens_the_server_accepts() {
    let idp = Idp::new();
    let s = https_server(&idp).await;
    let token = idp.mint(&claims(&s, -60, 3600, ISS, AUD));
    s.send(req("PUT", &q("udq"))).await.assert_status(201);
    s.send(req("POST", &q("udq/messages")).message("delegated"))
        .await
        .assert_status(201);
    let now = to_offset(s.clock.now());
    let key_info = |expiry: time::OffsetDateTime| {
        format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><KeyInfo><Start>{}</Start><Expiry>{}</Expiry></KeyInfo>",
            format_iso8601_seconds(now - time::Duration::minutes(1)),
            format_iso8601_seconds(expiry)
        )
    };
    // Only a bearer caller may ask, for at most seven days.
    s.send(
        req("POST", &q("?restype=service&comp=userdelegationkey"))
            .body(key_info(now + time::Duration::hours(1))),
    )
    .await
    .assert_error(403, "AuthenticationFailed");
    s.send(
        bearer(
            req("POST", &q("?restype=service&comp=userdelegationkey")),
            &token,
        )
        .body(key_info(now + time::Duration::days(8))),
    )
    .await
    .assert_error(400, "InvalidXmlNodeValue");
    let r = s
        .send(
            bearer(
                req("POST", &q("?restype=service&comp=userdelegationkey")),
                &token,
            )
            .body(key_info(now + time::Duration::hours(1))),
        )
        .await;
    r.assert_status(200);
    let key = DelegationKey {
        object_id: r.xml("SignedOid").expect("oid"),
        tenant_id: r.xml("SignedTid").expect("tid"),
        start: r.xml("SignedStart").expect("start"),
        expiry: r.xml("SignedExpiry").expect("expiry"),
        service: r.xml("SignedService").expect("service"),
        version: r.xml("SignedVersion").expect("version"),
        delegated_tenant_id: None,
    };
    assert_eq!(
        (
            key.object_id.as_str(),
            key.tenant_id.as_str(),
            key.service.as_str()
        ),
        (OID, TID, "q")
    );
    let value = r.xml("Value").expect("value");
    let se = format_iso8601_seconds(now + time::Duration::minutes(30));

    let peek = |token: &str| {
        req(
            "GET",
            &format!("{}&{token}", q("udq/messages?peekonly=true")),
        )
        .auth(Auth::None)
        .version(None)
    };
    let good = ud_sas(&key, &value, "udq", "r", &se, None);
    let r = s.send(peek(&good)).await;
    r.assert_status(200);
    assert!(r.body.contains("delegated"));
    // Read-only: no adding.
    s.send(
        req("POST", &format!("{}?{good}", q("udq/messages")))
            .auth(Auth::None)
            .version(None)
            .message("x"),
    )
    .await
    .assert_error(403, "AuthorizationPermissionMismatch");
    // A forged key value, another queue, or a key claimed for another user do not verify.
    let forged_value = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    let forged = ud_sas(&key, &forged_value, "udq", "r", &se, None);
    s.send(peek(&forged))
        .await
        .assert_error(403, "AuthenticationFailed");
    let other = DelegationKey {
        object_id: "someone-else".into(),
        ..key.clone()
    };
    let stolen = ud_sas(&other, &value, "udq", "r", &se, None);
    s.send(peek(&stolen))
        .await
        .assert_error(403, "AuthenticationFailed");
    // A delegated user must bring their own token.
    let for_user = ud_sas(&key, &value, "udq", "r", &se, Some(OID));
    s.send(peek(&for_user))
        .await
        .assert_error(403, "AuthenticationFailed");
    s.send(
        peek(&for_user)
            .header("Authorization", &format!("Bearer {token}"))
            .version(Some("2026-10-06")),
    )
    .await
    .assert_status(200);
    // Once the key has expired, so have its tokens.
    s.advance(3700);
    s.send(peek(&good))
        .await
        .assert_error(403, "AuthenticationFailed");
}
