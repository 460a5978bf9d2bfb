//! JSON Web Tokens as Azure Storage receives them in `Authorization: Bearer …` (RFC 7519, in
//! the compact serialization of RFC 7515): the header, the claims the service checks, and the
//! signature with the bytes it covers.
//!
//! Reading only: no cryptography and no clock here. The front checks the signature over
//! [`Jwt::signing_input`] with the keys it trusts, then the lifetime, issuer and audience. The
//! token comes from anyone on the network, so every length is bounded and nothing is trusted
//! before the signature is.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use serde_json::Value;

/// Longer tokens are refused unread (Entra ID tokens are 1–3 KB).
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// base64url, with or without padding (RFC 7515 says without; some libraries pad).
const B64URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a token could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the token is not a well-formed JWT: {0}")]
pub struct JwtError(pub &'static str);

/// A token split into its parts, its signature not yet checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Jwt<'a> {
    /// The header's `alg`, e.g. `RS256`.
    pub alg: String,
    /// The header's `kid`: which of the issuer's keys signed it.
    pub kid: Option<String>,
    pub claims: Claims,
    /// `header.payload`, the bytes the signature covers.
    pub signing_input: &'a str,
    pub signature: Vec<u8>,
}

/// The claims Azure Storage looks at.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Claims {
    /// `aud`: a string or an array of them.
    pub audiences: Vec<String>,
    pub issuer: Option<String>,
    /// Seconds since the Unix epoch (`nbf`, `exp`, `iat`).
    pub not_before: Option<i64>,
    pub expires: Option<i64>,
    pub issued_at: Option<i64>,
    /// The caller's object id and tenant (`oid`, `tid`).
    pub object_id: Option<String>,
    pub tenant_id: Option<String>,
}

/// Reads a compact JWT: `base64url(header).base64url(claims).base64url(signature)`.
pub fn parse(token: &str) -> Result<Jwt<'_>, JwtError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(JwtError("longer than any token this server accepts"));
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError("expected three dot-separated parts"));
    };
    let header = json_object(
        header,
        (
            "the header is not base64url",
            "the header is not a JSON object",
        ),
    )?;
    let claims = json_object(
        payload,
        (
            "the claims are not base64url",
            "the claims are not a JSON object",
        ),
    )?;
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or(JwtError("the header has no alg"))?
        .to_owned();
    let kid = header.get("kid").and_then(Value::as_str).map(str::to_owned);
    let signature = B64URL
        .decode(signature)
        .map_err(|_| JwtError("the signature is not base64url"))?;
    Ok(Jwt {
        alg,
        kid,
        claims: read_claims(&claims)?,
        signing_input: &token[..header_and_payload_len(token)],
        signature,
    })
}

fn header_and_payload_len(token: &str) -> usize {
    token.rfind('.').unwrap_or(token.len())
}

/// A base64url JSON object; `why` says which part failed and how.
fn json_object(
    part: &str,
    why: (&'static str, &'static str),
) -> Result<serde_json::Map<String, Value>, JwtError> {
    let bytes = B64URL.decode(part).map_err(|_| JwtError(why.0))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(JwtError(why.1)),
    }
}

fn read_claims(c: &serde_json::Map<String, Value>) -> Result<Claims, JwtError> {
    let text = |name: &str| -> Result<Option<String>, JwtError> {
        match c.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(JwtError("a claim that must be a string is not")),
        }
    };
    let date = |name: &str| -> Result<Option<i64>, JwtError> {
        match c.get(name) {
            None | Some(Value::Null) => Ok(None),
            // NumericDate may carry a fraction (RFC 7519 §2); whole seconds are what counts.
            Some(Value::Number(n)) => n
                .as_i64()
                .or_else(|| {
                    n.as_f64()
                        .filter(|f| f.is_finite())
                        .map(|f| f.floor() as i64)
                })
                .map(Some)
                .ok_or(JwtError("a date claim is out of range")),
            Some(_) => Err(JwtError("a date claim is not a number")),
        }
    };
    let audiences = match c.get("aud") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or(JwtError("aud holds something other than strings"))?,
        Some(_) => return Err(JwtError("aud is neither a string nor an array")),
    };
    Ok(Claims {
        audiences,
        issuer: text("iss")?,
        not_before: date("nbf")?,
        expires: date("exp")?,
        issued_at: date("iat")?,
        object_id: text("oid")?,
        tenant_id: text("tid")?,
    })
}

/// Encodes bytes as unpadded base64url (for tests and for the tokens a client mints).
pub fn base64url(bytes: &[u8]) -> String {
    B64URL.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(header: &str, claims: &str, sig: &[u8]) -> String {
        format!(
            "{}.{}.{}",
            base64url(header.as_bytes()),
            base64url(claims.as_bytes()),
            base64url(sig)
        )
    }

    #[test]
    fn reads_the_parts_and_the_claims_storage_checks() {
        let t = token(
            r#"{"alg":"RS256","typ":"JWT","kid":"k1"}"#,
            r#"{"aud":"https://storage.azure.com","iss":"https://sts.windows.net/t/","nbf":1,"exp":2.9,"iat":1,"oid":"o","tid":"t","scp":"user_impersonation"}"#,
            b"sig",
        );
        let jwt = parse(&t).expect("parses");
        assert_eq!(jwt.alg, "RS256");
        assert_eq!(jwt.kid.as_deref(), Some("k1"));
        assert_eq!(jwt.signature, b"sig");
        assert_eq!(jwt.signing_input, &t[..t.rfind('.').expect("dot")]);
        assert_eq!(
            jwt.claims,
            Claims {
                audiences: vec!["https://storage.azure.com".into()],
                issuer: Some("https://sts.windows.net/t/".into()),
                not_before: Some(1),
                expires: Some(2),
                issued_at: Some(1),
                object_id: Some("o".into()),
                tenant_id: Some("t".into()),
            }
        );
        let arr = token(r#"{"alg":"none"}"#, r#"{"aud":["a","b"]}"#, b"");
        assert_eq!(parse(&arr).expect("parses").claims.audiences, ["a", "b"]);
    }

    #[test]
    fn refuses_what_is_not_a_jwt() {
        let long = "a".repeat(MAX_TOKEN_LEN + 1);
        for bad in [
            "invalid token".to_owned(),
            "a.b".to_owned(),
            "a.b.c.d".to_owned(),
            token("{}", "{}", b""),
            token(r#"{"alg":1}"#, "{}", b""),
            token(r#"{"alg":"RS256"}"#, "[]", b""),
            token(r#"{"alg":"RS256"}"#, r#"{"exp":"soon"}"#, b""),
            token(r#"{"alg":"RS256"}"#, r#"{"aud":[1]}"#, b""),
            token(r#"{"alg":"RS256"}"#, r#"{"iss":5}"#, b""),
            format!("{}.!!.x", base64url(b"{}")),
            long,
        ] {
            assert!(parse(&bad).is_err(), "{bad:.60}");
        }
    }
}
