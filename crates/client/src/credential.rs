//! How requests prove who sent them: Shared Key (the account key signs every request) or a
//! shared access signature (a pre-signed token appended to every URL).
//!
//! Shared Key signing reuses the protocol crate's string-to-sign, the same code the server
//! verifies with, so a signature this client makes is one the server rebuilds byte for byte.
//! Keys never appear in `Debug` output.

use std::fmt;
use std::sync::Arc;

use hematite_queue_protocol::auth::shared_key::{self, AuthScheme, SignableRequest, Variant};
use hematite_queue_protocol::auth::{decode_account_key, sign};
use hematite_queue_protocol::version::LATEST_KNOWN;

use crate::error::Error;

/// A credential for every request a client sends.
#[derive(Clone, Debug)]
pub enum Credential {
    /// Sign each request with the account key (`Authorization: SharedKey account:signature`).
    /// Needed to generate SAS tokens.
    SharedKey(SharedKeyCredential),
    /// Append a SAS token to each URL. What it allows is fixed when the token was made.
    Sas(SasToken),
}

impl Credential {
    /// A Shared Key credential from an account name and its base64 key.
    pub fn shared_key(account: impl Into<String>, key_base64: &str) -> Result<Self, Error> {
        SharedKeyCredential::new(account, key_base64).map(Self::SharedKey)
    }

    /// A SAS credential from a token, with or without its leading `?`.
    pub fn sas(token: impl AsRef<str>) -> Result<Self, Error> {
        SasToken::new(token.as_ref()).map(Self::Sas)
    }
}

/// An account name and its key.
#[derive(Clone)]
pub struct SharedKeyCredential {
    account: String,
    key: Arc<[u8]>,
}

impl SharedKeyCredential {
    /// `key_base64` is the key as the portal and connection strings show it.
    pub fn new(account: impl Into<String>, key_base64: &str) -> Result<Self, Error> {
        let account = account.into();
        if account.is_empty() {
            return Err(Error::Config("the account name is empty".into()));
        }
        let key = decode_account_key(key_base64)
            .map_err(|e| Error::Config(format!("the account key is not base64: {e}")))?;
        if key.is_empty() {
            return Err(Error::Config("the account key is empty".into()));
        }
        Ok(Self {
            account,
            key: key.into(),
        })
    }

    pub fn account(&self) -> &str {
        &self.account
    }

    pub(crate) fn key(&self) -> &[u8] {
        &self.key
    }

    /// The `Authorization` header value for a request about to be sent.
    ///
    /// `path` and `query` must be exactly what goes on the wire (still percent-encoded), and
    /// `headers` every header that takes part in the signature: `x-ms-*`, and the standard
    /// ones the request carries (`Content-Length`, `Content-Type`).
    pub(crate) fn authorization(
        &self,
        method: &str,
        path: &str,
        query: &str,
        headers: &[(&str, &str)],
    ) -> String {
        let req = SignableRequest {
            method,
            path,
            raw_query: query,
            headers,
        };
        let sts = shared_key::string_to_sign(
            &req,
            &self.account,
            Some(LATEST_KNOWN),
            AuthScheme::SharedKey,
            Variant::default(),
        );
        format!("SharedKey {}:{}", self.account, sign(&self.key, &sts))
    }
}

impl fmt::Debug for SharedKeyCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedKeyCredential")
            .field("account", &self.account)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// A SAS token: the query string `sv=…&sig=…`, without the leading `?`.
#[derive(Clone)]
pub struct SasToken(String);

impl SasToken {
    pub fn new(token: &str) -> Result<Self, Error> {
        let token = token.trim().trim_start_matches('?');
        if !token.split('&').any(|p| p.starts_with("sig=")) {
            return Err(Error::Config(
                "the shared access signature has no sig= parameter".into(),
            ));
        }
        Ok(Self(token.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SasToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SasToken(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEV_KEY: &str =
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    #[test]
    fn signs_the_digest_vector_1() {
        // Digest §6.7 vector 1, computed with the Python SDK.
        let cred = SharedKeyCredential::new("devstoreaccount1", DEV_KEY).unwrap();
        let auth = cred.authorization(
            "GET",
            "/devstoreaccount1/myqueue",
            "comp=metadata",
            &[
                (
                    "x-ms-client-request-id",
                    "00000000-0000-0000-0000-000000000001",
                ),
                ("x-ms-date", "Mon, 01 Jan 2024 00:00:00 GMT"),
                ("x-ms-version", "2026-10-06"),
            ],
        );
        assert_eq!(
            auth,
            "SharedKey devstoreaccount1:I3cc2Ydi9tjlvg6vsrXe8Cj6ifpA70cL+Se+ntqDOeA="
        );
    }

    #[test]
    fn keys_are_redacted_and_checked() {
        let cred = Credential::shared_key("a", DEV_KEY).unwrap();
        assert!(!format!("{cred:?}").contains("Eby8"));
        assert!(Credential::shared_key("a", "not base64!").is_err());
        assert!(Credential::shared_key("", DEV_KEY).is_err());
        let sas = Credential::sas("?sv=2026-10-06&sig=abc").unwrap();
        assert!(!format!("{sas:?}").contains("abc"));
        match sas {
            Credential::Sas(t) => assert_eq!(t.as_str(), "sv=2026-10-06&sig=abc"),
            Credential::SharedKey(_) => unreachable!(),
        }
        assert!(Credential::sas("sv=2026-10-06").is_err());
    }
}
