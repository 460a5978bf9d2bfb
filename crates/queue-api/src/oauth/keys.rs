//! The public keys bearer tokens are checked against, from the file the operator names: a
//! JWKS document (what Entra ID publishes at `…/discovery/v2.0/keys`), or PEM blocks of
//! `PUBLIC KEY`, `RSA PUBLIC KEY` or `CERTIFICATE`. Signatures are verified with ring:
//! RS256/384/512, PS256/384/512, ES256 and ES384.
//!
//! The file is the operator's, read once at start, so the small DER walker here only has to
//! find the key in well-formed input; it still never indexes past what it was given.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use hematite_queue_protocol::auth::jwt::Jwt;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde_json::Value;

/// Why the key file could not be used.
#[derive(Debug, thiserror::Error)]
#[error("OAuth keys in {}: {reason}", path.display())]
pub struct KeyError {
    pub path: PathBuf,
    pub reason: String,
}

#[derive(Debug)]
enum Public {
    /// Modulus and exponent, big-endian (a JWK's `n` and `e`).
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// A PKCS#1 `RSAPublicKey`.
    RsaDer(Vec<u8>),
    /// An uncompressed point on P-256 or P-384.
    P256(Vec<u8>),
    P384(Vec<u8>),
}

#[derive(Debug)]
struct Key {
    kid: Option<String>,
    public: Public,
}

/// Every key a token may be signed with.
#[derive(Debug)]
pub struct Keys(Vec<Key>);

impl Keys {
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let fail = |reason: String| KeyError {
            path: path.to_owned(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        let keys = if text.trim_start().starts_with('{') {
            from_jwks(&text)
        } else {
            from_pem(&text)
        }
        .map_err(fail)?;
        if keys.is_empty() {
            return Err(fail("no usable public key in the file".into()));
        }
        Ok(Keys(keys))
    }

    /// Whether one of the keys (the one the token names, if it names one we have) signed it.
    pub fn verify(&self, jwt: &Jwt<'_>) -> bool {
        let named = |k: &&Key| match (&jwt.kid, &k.kid) {
            (Some(want), Some(have)) => want == have,
            _ => true,
        };
        let msg = jwt.signing_input.as_bytes();
        let sig = jwt.signature.as_slice();
        self.0
            .iter()
            .filter(named)
            .any(|k| verify_one(&jwt.alg, &k.public, msg, sig))
    }
}

fn verify_one(alg: &str, key: &Public, msg: &[u8], sig: &[u8]) -> bool {
    let rsa: &signature::RsaParameters = match alg {
        "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
        "RS384" => &signature::RSA_PKCS1_2048_8192_SHA384,
        "RS512" => &signature::RSA_PKCS1_2048_8192_SHA512,
        "PS256" => &signature::RSA_PSS_2048_8192_SHA256,
        "PS384" => &signature::RSA_PSS_2048_8192_SHA384,
        "PS512" => &signature::RSA_PSS_2048_8192_SHA512,
        "ES256" => {
            return matches!(key, Public::P256(p) if UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, p).verify(msg, sig).is_ok())
        }
        "ES384" => {
            return matches!(key, Public::P384(p) if UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, p).verify(msg, sig).is_ok())
        }
        // `none`, HMAC (a shared secret is not a public key) and anything unknown.
        _ => return false,
    };
    match key {
        Public::Rsa { n, e } => RsaPublicKeyComponents { n, e }
            .verify(rsa, msg, sig)
            .is_ok(),
        Public::RsaDer(der) => UnparsedPublicKey::new(rsa, der).verify(msg, sig).is_ok(),
        Public::P256(_) | Public::P384(_) => false,
    }
}

/// A JWKS document (`{"keys": [...]}`) or a single JWK.
fn from_jwks(text: &str) -> Result<Vec<Key>, String> {
    let doc: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let list = match doc.get("keys") {
        Some(Value::Array(keys)) => keys.clone(),
        Some(_) => return Err("`keys` is not an array".into()),
        None => vec![doc],
    };
    let mut out = Vec::new();
    for jwk in &list {
        // Encryption keys and kinds we cannot check are skipped, as a JWKS client would.
        if jwk
            .get("use")
            .and_then(Value::as_str)
            .is_some_and(|u| u != "sig")
        {
            continue;
        }
        if let Some(public) = jwk_public(jwk)? {
            out.push(Key {
                kid: jwk.get("kid").and_then(Value::as_str).map(str::to_owned),
                public,
            });
        }
    }
    Ok(out)
}

fn jwk_public(jwk: &Value) -> Result<Option<Public>, String> {
    let b64 = |name: &str| -> Result<Option<Vec<u8>>, String> {
        match jwk.get(name).and_then(Value::as_str) {
            None => Ok(None),
            Some(s) => URL_SAFE_NO_PAD
                .decode(s.trim_end_matches('='))
                .map(Some)
                .map_err(|_| format!("`{name}` is not base64url")),
        }
    };
    match jwk.get("kty").and_then(Value::as_str) {
        Some("RSA") => {
            if let (Some(n), Some(e)) = (b64("n")?, b64("e")?) {
                return Ok(Some(Public::Rsa { n, e }));
            }
            // Only a certificate chain: the key is the leaf's.
            let leaf = jwk
                .get("x5c")
                .and_then(|c| c.get(0))
                .and_then(Value::as_str)
                .ok_or("an RSA key with neither n/e nor x5c")?;
            let der = STANDARD
                .decode(leaf)
                .map_err(|_| "x5c is not base64".to_owned())?;
            certificate_key(&der).map(Some)
        }
        Some("EC") => {
            let (Some(x), Some(y)) = (b64("x")?, b64("y")?) else {
                return Err("an EC key without x and y".into());
            };
            let point = [&[4u8][..], &x, &y].concat();
            Ok(match jwk.get("crv").and_then(Value::as_str) {
                Some("P-256") => Some(Public::P256(point)),
                Some("P-384") => Some(Public::P384(point)),
                _ => None,
            })
        }
        _ => Ok(None),
    }
}

/// Every key in the PEM blocks of `text`.
fn from_pem(text: &str) -> Result<Vec<Key>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(begin) = rest.find("-----BEGIN ") {
        let after = &rest[begin + 11..];
        let label_end = after.find("-----").ok_or("a PEM header is not closed")?;
        let label = &after[..label_end];
        let body_start = &after[label_end + 5..];
        let end_marker = format!("-----END {label}-----");
        let end = body_start
            .find(&end_marker)
            .ok_or_else(|| format!("no END line for {label}"))?;
        let b64: String = body_start[..end]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let der = STANDARD
            .decode(b64)
            .map_err(|_| format!("the {label} block is not base64"))?;
        let public = match label {
            "PUBLIC KEY" => spki_key(&der)?,
            "RSA PUBLIC KEY" => Public::RsaDer(der),
            "CERTIFICATE" => certificate_key(&der)?,
            other => return Err(format!("a {other} block is not a public key")),
        };
        out.push(Key { kid: None, public });
        rest = &body_start[end + end_marker.len()..];
    }
    Ok(out)
}

/// One DER element: its tag, its contents, and what follows it.
fn tlv(der: &[u8]) -> Result<(u8, &[u8], &[u8]), String> {
    let bad = || "malformed DER".to_owned();
    let (&tag, rest) = der.split_first().ok_or_else(bad)?;
    let (&first, rest) = rest.split_first().ok_or_else(bad)?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return Err(bad());
        }
        let len = rest[..n].iter().fold(0usize, |a, b| (a << 8) | *b as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return Err(bad());
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

const SEQUENCE: u8 = 0x30;
const BIT_STRING: u8 = 0x03;
const OID: u8 = 0x06;
const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];

/// The key of a `SubjectPublicKeyInfo`.
fn spki_key(der: &[u8]) -> Result<Public, String> {
    let (tag, spki, _) = tlv(der)?;
    let (alg_tag, alg, rest) = tlv(spki)?;
    let (bits_tag, bits, _) = tlv(rest)?;
    if tag != SEQUENCE || alg_tag != SEQUENCE || bits_tag != BIT_STRING {
        return Err("not a SubjectPublicKeyInfo".into());
    }
    // A BIT STRING starts with its count of unused bits, zero for a key.
    let key = bits.strip_prefix(&[0]).ok_or("a key with unused bits")?;
    let (oid_tag, oid, params) = tlv(alg)?;
    if oid_tag != OID {
        return Err("not a SubjectPublicKeyInfo".into());
    }
    match oid {
        RSA_ENCRYPTION => Ok(Public::RsaDer(key.to_vec())),
        EC_PUBLIC_KEY => match tlv(params)? {
            (OID, P256, _) => Ok(Public::P256(key.to_vec())),
            (OID, P384, _) => Ok(Public::P384(key.to_vec())),
            _ => Err("an EC key on a curve other than P-256 or P-384".into()),
        },
        _ => Err("a key that is neither RSA nor EC".into()),
    }
}

/// The subject key of an X.509 certificate: the seventh field of its `TBSCertificate`, or the
/// sixth when the explicit version is absent.
fn certificate_key(der: &[u8]) -> Result<Public, String> {
    let (_, cert, _) = tlv(der)?;
    let (_, tbs, _) = tlv(cert)?;
    let mut fields = tbs;
    let (tag, _, after) = tlv(fields)?;
    if tag == 0xa0 {
        fields = after;
    }
    // serial, signature algorithm, issuer, validity, subject; then the key.
    for _ in 0..5 {
        fields = tlv(fields)?.2;
    }
    let (_, _, after_key) = tlv(fields)?;
    spki_key(&fields[..fields.len() - after_key.len()])
}

#[cfg(test)]
mod tests {
    use super::*;
    use hematite_queue_protocol::auth::jwt::{self, base64url};
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

    fn es256_token(pair: &EcdsaKeyPair, kid: &str) -> String {
        let header = base64url(format!(r#"{{"alg":"ES256","kid":"{kid}"}}"#).as_bytes());
        let claims = base64url(br#"{"aud":"https://storage.azure.com"}"#);
        let input = format!("{header}.{claims}");
        let sig = pair
            .sign(&SystemRandom::new(), input.as_bytes())
            .expect("sign");
        format!("{input}.{}", base64url(sig.as_ref()))
    }

    fn p256() -> EcdsaKeyPair {
        let rng = SystemRandom::new();
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("generate");
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .expect("load")
    }

    fn jwks_of(pair: &EcdsaKeyPair, kid: &str) -> String {
        let point = pair.public_key().as_ref();
        format!(
            r#"{{"keys":[{{"kty":"RSA","use":"enc","n":"AQ","e":"AQ"}},{{"kty":"EC","crv":"P-256","kid":"{kid}","use":"sig","x":"{}","y":"{}"}}]}}"#,
            base64url(&point[1..33]),
            base64url(&point[33..])
        )
    }

    #[test]
    fn a_jwks_key_verifies_its_tokens_and_no_other() {
        let (pair, other) = (p256(), p256());
        let keys = Keys(from_jwks(&jwks_of(&pair, "k1")).expect("jwks"));
        assert_eq!(keys.0.len(), 1, "the encryption key is skipped");
        let good = es256_token(&pair, "k1");
        assert!(keys.verify(&jwt::parse(&good).expect("jwt")));
        assert!(!keys.verify(&jwt::parse(&es256_token(&other, "k1")).expect("jwt")));
        // A kid we do not have is not tried against the key we do have.
        assert!(!keys.verify(&jwt::parse(&es256_token(&pair, "k2")).expect("jwt")));
        // The signature covers the claims.
        let mut parts: Vec<&str> = good.split('.').collect();
        let forged = base64url(br#"{"aud":"https://evil"}"#);
        parts[1] = &forged;
        assert!(!keys.verify(&jwt::parse(&parts.join(".")).expect("jwt")));
        // `alg: none` never passes.
        let none = format!("{}.{}.", base64url(br#"{"alg":"none"}"#), parts[1]);
        assert!(!keys.verify(&jwt::parse(&none).expect("jwt")));
    }

    #[test]
    fn pem_public_keys_and_certificates_are_read() {
        // A P-256 SubjectPublicKeyInfo: the algorithm and curve OIDs, then the point.
        let pair = p256();
        let point = pair.public_key().as_ref();
        let mut spki = vec![0x30, 0x59, 0x30, 0x13, 0x06, 0x07];
        spki.extend_from_slice(EC_PUBLIC_KEY);
        spki.extend_from_slice(&[0x06, 0x08]);
        spki.extend_from_slice(P256);
        spki.extend_from_slice(&[0x03, 0x42, 0x00]);
        spki.extend_from_slice(point);
        let pem = format!(
            "junk before\n-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            STANDARD.encode(&spki)
        );
        let keys = Keys(from_pem(&pem).expect("pem"));
        assert!(keys.verify(&jwt::parse(&es256_token(&pair, "any")).expect("jwt")));
        assert!(from_pem("-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----").is_err());
        assert!(from_pem("-----BEGIN PUBLIC KEY-----\nAA==\n").is_err());
        assert!(spki_key(&[0x30, 0x05, 0x30]).is_err());
    }
}
