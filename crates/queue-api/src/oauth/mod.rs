//! OAuth bearer tokens, checked as Azure Storage checks them: signature (against keys the
//! operator trusts), lifetime with Azure's five minutes of clock skew, issuer, audience.
//!
//! Two modes. `Signed` verifies the signature with the keys of a JWKS or PEM file (an Entra ID
//! tenant's published keys, or a test identity provider's). `Basic` skips the signature and
//! checks the rest, as Azurite's `--oauth basic` does: for tests only, since anyone can mint a
//! token it accepts. Either way a token is accepted over HTTPS only.
//!
//! The checks run in Azurite's order (lifetime, issuer, audience), so a token wrong in several
//! ways is refused for the same reason by both; the detail texts begin with Azure's.

mod keys;

use std::path::Path;

use hematite_queue_protocol::auth::jwt::{self, Jwt};
use time::OffsetDateTime;

pub use keys::{KeyError, Keys};

/// Azure's default allowance for clocks that disagree (Microsoft.IdentityModel's
/// `TokenValidationParameters.DefaultClockSkew`).
pub const CLOCK_SKEW_SECS: i64 = 300;

/// Issuers accepted by prefix: Entra ID's v1 (`sts.…/{tenant}/`) and v2
/// (`login.…/{tenant}/v2.0`) forms in the public and national clouds.
const ISSUER_PREFIXES: &[&str] = &[
    "https://sts.windows.net/",
    "https://sts.microsoftonline.de/",
    "https://sts.chinacloudapi.cn/",
    "https://sts.windows-ppe.net",
    "https://login.microsoftonline.com/",
    "https://login.microsoftonline.us/",
    "https://login.chinacloudapi.cn/",
    "https://login.partner.microsoftonline.cn/",
    "https://login.windows-ppe.net/",
];

/// Storage's application id: the audience of v2 tokens asked for `https://storage.azure.com`.
const STORAGE_APP_ID: &str = "e406a681-f3d4-42a8-90b6-c2b029497af1";

/// The queue endpoint suffixes of the public and national clouds.
const QUEUE_SUFFIXES: &[&str] = &[
    ".queue.core.windows.net",
    ".queue.core.chinacloudapi.cn",
    ".queue.core.usgovcloudapi.net",
    ".queue.core.cloudapi.de",
];

/// How tokens are checked.
#[derive(Debug)]
pub enum Mode {
    /// Signatures are checked against these keys.
    Signed(Keys),
    /// Signatures are not checked (tests only).
    Basic,
}

/// The OAuth settings of the front.
#[derive(Debug)]
pub struct OAuth {
    pub mode: Mode,
    /// Issuer prefixes accepted besides Entra ID's (a test identity provider's, say).
    pub issuers: Vec<String>,
    /// Audiences accepted besides Storage's.
    pub audiences: Vec<String>,
}

/// Who a valid token says the caller is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub object_id: String,
    pub tenant_id: String,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    Malformed(String),
    Signature,
    NotYetValid,
    Expired,
    Issuer(String),
    Audience(String),
}

impl TokenError {
    /// The `AuthenticationErrorDetail`: Azure's sentence, then what this server saw (which
    /// also names the check in lower case, as Azurite's texts do and its tests look for).
    pub fn detail(&self) -> String {
        match self {
            TokenError::Malformed(why) => {
                format!("Authentication scheme Bearer is not supported: the token could not be read ({why}).")
            }
            TokenError::Signature => {
                "Signature validation failed. The token is not signed by a key this server trusts."
                    .into()
            }
            TokenError::NotYetValid => {
                "Lifetime validation failed. The token is not yet valid (nbf).".into()
            }
            TokenError::Expired => "Lifetime validation failed. The token is expired.".into(),
            TokenError::Issuer(iss) => {
                format!("Issuer validation failed. Issuer did not match: the token issuer '{iss}' is not accepted.")
            }
            TokenError::Audience(aud) => {
                format!("Audience validation failed. Audience did not match: the token audience '{aud}' is not accepted.")
            }
        }
    }
}

impl OAuth {
    /// Signed mode with the keys in `path` (a JWKS document or PEM public keys/certificates).
    pub fn signed(path: &Path) -> Result<Self, KeyError> {
        Ok(OAuth {
            mode: Mode::Signed(Keys::load(path)?),
            issuers: Vec::new(),
            audiences: Vec::new(),
        })
    }

    pub fn basic() -> Self {
        OAuth {
            mode: Mode::Basic,
            issuers: Vec::new(),
            audiences: Vec::new(),
        }
    }

    /// Checks `token` for a request to `account` at `now`.
    pub fn validate(
        &self,
        token: &str,
        account: &str,
        now: OffsetDateTime,
    ) -> Result<Identity, TokenError> {
        let jwt = jwt::parse(token).map_err(|e| TokenError::Malformed(e.0.into()))?;
        if let Mode::Signed(keys) = &self.mode {
            if !keys.verify(&jwt) {
                return Err(TokenError::Signature);
            }
        }
        self.check_claims(&jwt, account, now.unix_timestamp())?;
        Ok(Identity {
            object_id: jwt.claims.object_id.clone().unwrap_or_default(),
            tenant_id: jwt.claims.tenant_id.clone().unwrap_or_default(),
        })
    }

    fn check_claims(&self, jwt: &Jwt<'_>, account: &str, now: i64) -> Result<(), TokenError> {
        let c = &jwt.claims;
        let (Some(nbf), Some(exp)) = (c.not_before, c.expires) else {
            return Err(TokenError::Malformed("nbf or exp is missing".into()));
        };
        if now + CLOCK_SKEW_SECS < nbf {
            return Err(TokenError::NotYetValid);
        }
        if now - CLOCK_SKEW_SECS >= exp {
            return Err(TokenError::Expired);
        }
        let iss = c
            .issuer
            .as_deref()
            .ok_or_else(|| TokenError::Malformed("iss is missing".into()))?;
        let issuer_ok = ISSUER_PREFIXES.iter().any(|p| iss.starts_with(p))
            || self.issuers.iter().any(|p| iss.starts_with(p.as_str()));
        if !issuer_ok {
            return Err(TokenError::Issuer(iss.to_owned()));
        }
        if c.audiences.is_empty() {
            return Err(TokenError::Malformed("aud is missing".into()));
        }
        if !c.audiences.iter().any(|a| self.audience_ok(a, account)) {
            return Err(TokenError::Audience(c.audiences.join(", ")));
        }
        Ok(())
    }

    /// `https://storage.azure.com`, Storage's application id, or the account's own queue
    /// endpoint in any cloud; each with or without a trailing slash.
    fn audience_ok(&self, aud: &str, account: &str) -> bool {
        let bare = aud.strip_suffix('/').unwrap_or(aud);
        if bare == "https://storage.azure.com" || aud == STORAGE_APP_ID {
            return true;
        }
        if self
            .audiences
            .iter()
            .any(|a| a.strip_suffix('/').unwrap_or(a) == bare)
        {
            return true;
        }
        bare.strip_prefix("https://").is_some_and(|host| {
            QUEUE_SUFFIXES
                .iter()
                .any(|s| host.strip_suffix(s) == Some(account))
        })
    }
}

/// The `WWW-Authenticate` challenge Azure sends with a refused or missing token.
pub fn challenge(tenant: Option<&str>) -> String {
    let tenant = tenant.filter(|t| is_tenant(t)).unwrap_or("common");
    format!("Bearer authorization_uri=https://login.microsoftonline.com/{tenant}/oauth2/authorize resource_id=https://storage.azure.com")
}

/// A tenant id fit to echo in a header: a GUID's characters only.
fn is_tenant(t: &str) -> bool {
    !t.is_empty() && t.len() <= 64 && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// The tenant a token claims, read without trusting it, for the challenge.
pub fn claimed_tenant(token: &str) -> Option<String> {
    jwt::parse(token).ok()?.claims.tenant_id
}

#[cfg(test)]
mod tests {
    use super::*;
    use hematite_queue_protocol::auth::jwt::base64url;

    fn token(claims: &str) -> String {
        format!(
            "{}.{}.{}",
            base64url(br#"{"alg":"RS256","typ":"JWT"}"#),
            base64url(claims.as_bytes()),
            base64url(b"not checked in basic mode")
        )
    }

    fn claims(nbf: i64, exp: i64, iss: &str, aud: &str) -> String {
        format!(
            r#"{{"nbf":{nbf},"exp":{exp},"iat":{nbf},"iss":"{iss}","aud":"{aud}","oid":"o1","tid":"t1"}}"#
        )
    }

    const NOW: i64 = 1_700_000_000;
    const ISS: &str = "https://sts.windows.net/t1/";

    fn check(claims: &str) -> Result<Identity, TokenError> {
        let now = OffsetDateTime::from_unix_timestamp(NOW).expect("time");
        OAuth::basic().validate(&token(claims), "devstoreaccount1", now)
    }

    #[test]
    fn accepts_storage_audiences_and_entra_issuers() {
        for aud in [
            "https://storage.azure.com",
            "https://storage.azure.com/",
            STORAGE_APP_ID,
            "https://devstoreaccount1.queue.core.windows.net",
            "https://devstoreaccount1.queue.core.chinacloudapi.cn/",
            "https://devstoreaccount1.queue.core.usgovcloudapi.net",
            "https://devstoreaccount1.queue.core.cloudapi.de/",
        ] {
            assert_eq!(
                check(&claims(NOW - 60, NOW + 60, ISS, aud)),
                Ok(Identity {
                    object_id: "o1".into(),
                    tenant_id: "t1".into()
                }),
                "{aud}"
            );
        }
        for iss in [
            "https://login.microsoftonline.com/t1/v2.0",
            "https://sts.chinacloudapi.cn//t1/",
            "https://sts.windows-ppe.net/t1/",
        ] {
            assert!(
                check(&claims(NOW, NOW + 60, iss, STORAGE_APP_ID)).is_ok(),
                "{iss}"
            );
        }
    }

    #[test]
    fn refuses_in_azurites_order_with_texts_that_name_the_check() {
        let aud = "https://storage.azure.com";
        let bad = |c: &str| check(c).expect_err("refused").detail();
        assert!(
            bad(&claims(NOW + 301, NOW + 600, ISS, aud)).starts_with("Lifetime validation failed.")
        );
        assert!(bad(&claims(NOW - 600, NOW - 300, ISS, aud)).contains("expire"));
        // Within the five minutes of skew, both ways.
        assert!(check(&claims(NOW + 299, NOW + 600, ISS, aud)).is_ok());
        assert!(check(&claims(NOW - 600, NOW - 299, ISS, aud)).is_ok());
        // Issuer before audience: a token wrong in both is refused for its issuer.
        let both = bad(&claims(
            NOW,
            NOW + 60,
            "https://invalidissuer/t1/",
            "https://x.queue.core.windows.net",
        ));
        assert!(both.contains("issuer"), "{both}");
        let audience = bad(&claims(
            NOW,
            NOW + 60,
            ISS,
            "https://invalidaccount.queue.core.windows.net",
        ));
        assert!(audience.contains("audience"), "{audience}");
        assert!(matches!(check("{}"), Err(TokenError::Malformed(_))));
        assert!(matches!(
            OAuth::basic().validate("invalid token", "a", OffsetDateTime::UNIX_EPOCH),
            Err(TokenError::Malformed(_))
        ));
    }

    #[test]
    fn the_challenge_names_the_tokens_tenant_only_when_it_is_safe() {
        assert!(challenge(Some("72f988bf-86f1-41af-91ab-2d7cd011db47"))
            .contains("/72f988bf-86f1-41af-91ab-2d7cd011db47/oauth2/authorize"));
        assert!(challenge(Some("a b\r\nX: y")).contains("/common/oauth2/authorize"));
        assert!(challenge(None).ends_with("resource_id=https://storage.azure.com"));
    }
}
