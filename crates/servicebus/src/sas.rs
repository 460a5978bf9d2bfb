//! Shared access signature tokens, as clients put them on `$cbs` (and as the admin API will
//! take them): `SharedAccessSignature sr=<resource>&sig=<signature>&se=<expiry>&skn=<key name>`.
//!
//! The signature is HMAC-SHA256, keyed with the key's text, over the URL-encoded resource, a
//! newline and the expiry in seconds since the epoch, in base64 (Microsoft, "Service Bus
//! access control with Shared Access Signatures"). Clients encode the resource with slightly
//! different encoders, so the signature is checked against the resource exactly as the token
//! carries it first, then against its canonical encoding.

use base64::Engine as _;
use hematite_servicebus_protocol::sas::{sign, COMPONENT};
use percent_encoding::{percent_decode_str, utf8_percent_encode};
use subtle::ConstantTimeEq;

use crate::address;

/// A namespace key: its name (`SharedAccessKeyName`), value and rights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub name: String,
    pub value: String,
    pub rights: Rights,
}

/// A claim a shared access policy grants (Microsoft, "Service Bus access control with Shared
/// Access Signatures": Send, Listen, Manage; Manage includes the other two).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Right {
    Send,
    Listen,
    Manage,
}

impl Right {
    pub fn name(self) -> &'static str {
        match self {
            Right::Send => "Send",
            Right::Listen => "Listen",
            Right::Manage => "Manage",
        }
    }
}

/// The rights of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rights {
    pub send: bool,
    pub listen: bool,
    pub manage: bool,
}

impl Rights {
    pub const ALL: Rights = Rights {
        send: true,
        listen: true,
        manage: true,
    };

    pub fn allow(self, right: Right) -> bool {
        self.manage
            || match right {
                Right::Send => self.send,
                Right::Listen => self.listen,
                Right::Manage => false,
            }
    }

    /// `Send`, `Listen`, `Manage`, comma-separated, any case. `None` for anything else.
    pub fn parse(s: &str) -> Option<Rights> {
        let mut r = Rights {
            send: false,
            listen: false,
            manage: false,
        };
        for part in s.split(',') {
            match part.trim().to_ascii_lowercase().as_str() {
                "send" => r.send = true,
                "listen" => r.listen = true,
                "manage" => r.manage = true,
                _ => return None,
            }
        }
        Some(r)
    }
}

/// What a valid token grants: the path it was signed for (empty for the whole namespace),
/// with its key's rights, until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub scope: String,
    pub rights: Rights,
    pub expires_at_secs: i64,
}

impl Grant {
    /// Whether the grant covers the node at `path` (an entity, its sub-queue or its
    /// management node) at `now_secs`.
    pub fn covers(&self, path: &str, now_secs: i64) -> bool {
        now_secs < self.expires_at_secs
            && (self.scope.is_empty()
                || path == self.scope
                || path
                    .strip_prefix(self.scope.as_str())
                    .is_some_and(|rest| rest.starts_with('/')))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the token is not a SharedAccessSignature")]
    Malformed,
    #[error("no key named {0}")]
    UnknownKey(String),
    #[error("the token has expired")]
    Expired,
    #[error("the signature does not match")]
    BadSignature,
}

/// Checks `token` against `keys` at `now_secs`.
pub fn validate(token: &str, keys: &[Key], now_secs: i64) -> Result<Grant, Refused> {
    let fields = token
        .trim()
        .strip_prefix("SharedAccessSignature ")
        .ok_or(Refused::Malformed)?;
    let (mut sr, mut sig, mut se, mut skn) = (None, None, None, None);
    for pair in fields.split('&') {
        let (k, v) = pair.split_once('=').ok_or(Refused::Malformed)?;
        match k {
            "sr" => sr = Some(v),
            "sig" => sig = Some(v),
            "se" => se = Some(v),
            "skn" => skn = Some(v),
            _ => {}
        }
    }
    let (sr, sig, se, skn) = match (sr, sig, se, skn) {
        (Some(a), Some(b), Some(c), Some(d)) => (a, b, c, d),
        _ => return Err(Refused::Malformed),
    };
    let expiry: i64 = se.parse().map_err(|_| Refused::Malformed)?;
    let key_name = decode(skn);
    let key = keys
        .iter()
        .find(|k| k.name == key_name)
        .ok_or(Refused::UnknownKey(key_name))?;
    let signature = base64::engine::general_purpose::STANDARD
        .decode(decode(sig))
        .map_err(|_| Refused::Malformed)?;
    let resource = decode(sr);
    let canonical = utf8_percent_encode(&resource, COMPONENT).to_string();
    let matches = [sr.to_owned(), canonical]
        .iter()
        .any(|encoded| sign(&key.value, encoded, expiry).ct_eq(&signature).into());
    if !matches {
        return Err(Refused::BadSignature);
    }
    if expiry <= now_secs {
        return Err(Refused::Expired);
    }
    Ok(Grant {
        scope: address::path(&resource),
        rights: key.rights,
        expires_at_secs: expiry,
    })
}

fn decode(s: &str) -> String {
    percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// A token for `resource`, as the SDKs make them (for tests and for our own clients).
pub fn token(resource: &str, key: &Key, expiry: i64) -> String {
    hematite_servicebus_protocol::sas::token(resource, &key.name, &key.value, expiry)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Key {
        Key {
            name: "RootManageSharedAccessKey".into(),
            value: "SAS_KEY_VALUE".into(),
            rights: Rights::ALL,
        }
    }

    #[test]
    fn rights_parse_and_manage_includes_the_others() {
        let listen = Rights::parse("Listen").expect("parses");
        assert!(listen.allow(Right::Listen) && !listen.allow(Right::Send));
        let both = Rights::parse("send, LISTEN").expect("parses");
        assert!(both.allow(Right::Send) && both.allow(Right::Listen) && !both.allow(Right::Manage));
        assert!(Rights::parse("Manage").expect("parses").allow(Right::Send));
        assert_eq!(Rights::parse("Write"), None);
    }

    #[test]
    fn a_token_from_the_keys_grants_its_resource_until_it_expires() {
        let t = token("sb://localhost/queue.1", &key(), 2_000);
        let grant = validate(&t, &[key()], 1_000).expect("valid");
        assert_eq!(grant.scope, "queue.1");
        assert!(grant.covers("queue.1", 1_000));
        assert!(grant.covers("queue.1/$management", 1_000));
        assert!(!grant.covers("queue.10", 1_000));
        assert!(!grant.covers("queue.1", 2_000));
        assert_eq!(validate(&t, &[key()], 2_000), Err(Refused::Expired));
    }

    #[test]
    fn a_python_style_token_validates() {
        // pyamqp: quote_plus(audience) signed, the same encoding in sr, the key's text as key.
        let sr = "sb%3A%2F%2Flocalhost%2Fqueue.1";
        let sig =
            base64::engine::general_purpose::STANDARD.encode(sign("SAS_KEY_VALUE", sr, 5_000));
        let t = format!(
            "SharedAccessSignature sr={sr}&sig={}&se=5000&skn=RootManageSharedAccessKey",
            utf8_percent_encode(&sig, COMPONENT)
        );
        assert!(validate(&t, &[key()], 0).is_ok());
    }

    #[test]
    fn wrong_keys_and_damaged_tokens_are_refused() {
        let other = Key {
            value: "another".into(),
            ..key()
        };
        let t = token("sb://localhost/queue.1", &other, 2_000);
        assert_eq!(validate(&t, &[key()], 0), Err(Refused::BadSignature));
        let unknown = Key {
            name: "nobody".into(),
            ..key()
        };
        let t = token("sb://localhost/", &unknown, 2_000);
        assert_eq!(
            validate(&t, &[key()], 0),
            Err(Refused::UnknownKey("nobody".into()))
        );
        for bad in [
            "",
            "Bearer x",
            "SharedAccessSignature sr=a&sig=b",
            "SharedAccessSignature sr=a&sig=%%&se=1&skn=RootManageSharedAccessKey",
        ] {
            assert!(validate(bad, &[key()], 0).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_namespace_token_covers_every_entity() {
        let t = token("sb://localhost", &key(), 2_000);
        let grant = validate(&t, &[key()], 0).expect("valid");
        assert!(grant.covers("anything/$deadletterqueue", 0));
    }
}
