//! Shared access signature tokens: `SharedAccessSignature sr=<resource>&sig=<signature>&
//! se=<expiry>&skn=<key name>`, for the server that checks them and the clients that make
//! them.
//!
//! The signature is HMAC-SHA256, keyed with the key's text, over the URL-encoded resource, a
//! newline and the expiry in seconds since the epoch, in base64 (Microsoft, "Service Bus
//! access control with Shared Access Signatures").

use base64::Engine as _;
use hmac::{Hmac, Mac};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::Sha256;

/// encodeURIComponent's set: everything but letters, digits and `-_.!~*'()`.
pub const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

/// The raw signature over an already encoded resource.
pub fn sign(key: &str, encoded_resource: &str, expiry: i64) -> Vec<u8> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(format!("{encoded_resource}\n{expiry}").as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// A token for `resource` signed with the key called `key_name`, as the SDKs make them.
pub fn token(resource: &str, key_name: &str, key: &str, expiry: i64) -> String {
    let encoded = utf8_percent_encode(resource, COMPONENT).to_string();
    let sig = base64::engine::general_purpose::STANDARD.encode(sign(key, &encoded, expiry));
    let sig = utf8_percent_encode(&sig, COMPONENT);
    format!(
        "SharedAccessSignature sr={encoded}&sig={sig}&se={expiry}&skn={}",
        utf8_percent_encode(key_name, COMPONENT)
    )
}
