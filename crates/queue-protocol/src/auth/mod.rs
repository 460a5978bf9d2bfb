//! Request authentication: Shared Key, Shared Key Lite, shared access signatures (account,
//! service and user delegation), and reading OAuth bearer tokens.
//!
//! Only the string-to-sign construction and the HMAC live here; looking up keys, policies
//! and clocks is the front's job, so both the server (verifying) and the client (signing)
//! build byte-identical strings from the same code.

pub mod collation;
pub mod jwt;
pub mod sas;
pub mod shared_key;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// An account key ready to sign with: the HMAC state after absorbing the key, so each
/// signature costs only the blocks of its string (a server keeps one per configured key).
#[derive(Clone)]
pub struct SigningKey(HmacSha256);

impl SigningKey {
    pub fn new(key: &[u8]) -> Self {
        // HMAC takes keys of any length (long ones are hashed), so this cannot fail.
        SigningKey(HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length"))
    }

    fn mac(&self, string_to_sign: &str) -> HmacSha256 {
        let mut mac = self.0.clone();
        mac.update(string_to_sign.as_bytes());
        mac
    }

    /// `base64(HMAC-SHA256(key, utf8(string_to_sign)))`.
    pub fn sign(&self, string_to_sign: &str) -> String {
        STANDARD.encode(self.mac(string_to_sign).finalize().into_bytes())
    }

    /// Checks a base64 signature in constant time; a signature that is not base64 never matches.
    pub fn verify(&self, string_to_sign: &str, signature_b64: &str) -> bool {
        // A real signature is 44 characters; anything much longer cannot match.
        let mut sig = [0u8; 64];
        if signature_b64.len() > 80 {
            return false;
        }
        match STANDARD.decode_slice(signature_b64, &mut sig) {
            Ok(n) => self.mac(string_to_sign).verify_slice(&sig[..n]).is_ok(),
            Err(_) => false,
        }
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

/// `base64(HMAC-SHA256(key, utf8(string_to_sign)))`: the signature for both Shared Key and SAS.
pub fn sign(key: &[u8], string_to_sign: &str) -> String {
    SigningKey::new(key).sign(string_to_sign)
}

/// Checks a base64 signature in constant time; a signature that is not base64 never matches.
pub fn verify(key: &[u8], string_to_sign: &str, signature_b64: &str) -> bool {
    SigningKey::new(key).verify(string_to_sign, signature_b64)
}

/// Decodes an account key as given in connection strings and configuration.
pub fn decode_account_key(key_b64: &str) -> Result<Vec<u8>, base64::DecodeError> {
    STANDARD.decode(key_b64.trim())
}

#[cfg(test)]
pub(crate) mod test_support {
    /// The well-known development storage key, shared by every emulator and SDK.
    pub const DEV_KEY_B64: &str =
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    pub fn dev_key() -> Vec<u8> {
        super::decode_account_key(DEV_KEY_B64).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::dev_key;
    use super::*;

    #[test]
    fn sign_and_verify() {
        // RFC 4231 test case 2 (hex 5bdcc146…ec3843, base64-encoded).
        let sig = sign(b"Jefe", "what do ya want for nothing?");
        assert_eq!(sig, "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM=");
        assert!(verify(b"Jefe", "what do ya want for nothing?", &sig));
        assert!(!verify(b"Jefe", "what do ya want for nothing!", &sig));
        assert!(!verify(b"jefe", "what do ya want for nothing?", &sig));
        assert!(!verify(
            b"Jefe",
            "what do ya want for nothing?",
            "not base64!"
        ));
        assert!(!verify(b"Jefe", "what do ya want for nothing?", ""));
        assert!(!verify(b"Jefe", "what do ya want for nothing?", &sig[..20]));
        let long = format!("{sig}{sig}{sig}");
        assert!(!verify(b"Jefe", "what do ya want for nothing?", &long));
        let key = SigningKey::new(b"Jefe");
        assert_eq!(key.sign("what do ya want for nothing?"), sig);
        assert!(key.verify("what do ya want for nothing?", &sig));
        assert!(!key.verify("what do ya want for nothing!", &sig));
    }

    #[test]
    fn dev_key_decodes() {
        assert_eq!(dev_key().len(), 64);
        assert!(decode_account_key("not a key").is_err());
    }
}
