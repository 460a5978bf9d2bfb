//! Get User Delegation Key: the `KeyInfo` request and the `UserDelegationKey` answer.

use super::dom;
use super::writer::{close, open, text_element, DECLARATION};
use super::XmlError;
use crate::auth::sas::DelegationKey;

/// What a client asks a delegation key for; times as sent (ISO 8601), checked by the front.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub start: Option<String>,
    pub expiry: String,
    pub delegated_user_tid: Option<String>,
}

/// Reads `<KeyInfo><Start/>?<Expiry/><DelegatedUserTid/>?</KeyInfo>`.
pub fn parse_key_info(body: &[u8]) -> Result<KeyInfo, XmlError> {
    let root = dom::parse(body)?.ok_or(XmlError::MissingNode("KeyInfo"))?;
    if root.name != "KeyInfo" {
        return Err(XmlError::Malformed);
    }
    let text = |name: &str| {
        root.child_text(name)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
    };
    Ok(KeyInfo {
        start: text("Start"),
        expiry: root.required_text("Expiry")?.to_owned(),
        delegated_user_tid: text("DelegatedUserTid"),
    })
}

/// The answer, elements in the service's order.
pub fn write_user_delegation_key(key: &DelegationKey, value: &str) -> String {
    let mut out = String::with_capacity(DECLARATION.len() + 400);
    out.push_str(DECLARATION);
    open(&mut out, "UserDelegationKey");
    text_element(&mut out, "SignedOid", &key.object_id);
    text_element(&mut out, "SignedTid", &key.tenant_id);
    text_element(&mut out, "SignedStart", &key.start);
    text_element(&mut out, "SignedExpiry", &key.expiry);
    text_element(&mut out, "SignedService", &key.service);
    text_element(&mut out, "SignedVersion", &key.version);
    if let Some(t) = &key.delegated_tenant_id {
        text_element(&mut out, "SignedDelegatedUserTid", t);
    }
    text_element(&mut out, "Value", value);
    close(&mut out, "UserDelegationKey");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_info_round_trip_and_answer_order() {
        let k = parse_key_info(
            b"<?xml version='1.0'?><KeyInfo><Expiry>2024-01-02T00:00:00Z</Expiry><Start>2024-01-01T00:00:00Z</Start></KeyInfo>",
        )
        .expect("parses");
        assert_eq!(k.start.as_deref(), Some("2024-01-01T00:00:00Z"));
        assert_eq!(k.expiry, "2024-01-02T00:00:00Z");
        assert_eq!(
            parse_key_info(b"<KeyInfo><Start>x</Start></KeyInfo>"),
            Err(XmlError::MissingNode("Expiry"))
        );
        let xml = write_user_delegation_key(
            &DelegationKey {
                object_id: "o".into(),
                tenant_id: "t".into(),
                start: "s".into(),
                expiry: "e".into(),
                service: "q".into(),
                version: "2026-10-06".into(),
                delegated_tenant_id: None,
            },
            "dmFsdWU=",
        );
        assert!(xml.ends_with("<UserDelegationKey><SignedOid>o</SignedOid><SignedTid>t</SignedTid><SignedStart>s</SignedStart><SignedExpiry>e</SignedExpiry><SignedService>q</SignedService><SignedVersion>2026-10-06</SignedVersion><Value>dmFsdWU=</Value></UserDelegationKey>"), "{xml}");
    }
}
