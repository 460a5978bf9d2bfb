//! XML bodies: lenient request parsing and compact, byte-exact response writing.
//!
//! Requests come from many clients (single-quoted declarations, BOMs, namespaces, any
//! element order), so parsing goes through a small tree built from `quick-xml` events and
//! matches on local names. Responses follow the service's compact style exactly, because
//! golden tests and some strict clients compare them.

mod acl;
mod delegation;
pub mod dom;
mod list;
mod message;
mod service;
pub mod writer;

pub use acl::{parse_signed_identifiers, write_signed_identifiers, SignedIdentifier};
pub use delegation::{parse_key_info, write_user_delegation_key, KeyInfo};
pub use list::{write_list_queues, ListQueuesPage, ListedQueue};
pub use message::{
    parse_message_text, parse_messages_list, write_messages_list, write_queue_message, MessageXml,
    ParsedMessage, UnrepresentableChar,
};
pub use service::{
    parse_service_properties, write_service_properties, write_service_stats, CorsRule, Logging,
    Metrics, RetentionPolicy, ServiceProperties, ServicePropertiesPatch,
};

use crate::error::{ErrorCode, ErrorResponse};

/// Why a request body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    /// Not well-formed, not UTF-8, a character XML 1.0 forbids, or the wrong root.
    #[error("the XML document is not well-formed")]
    Malformed,
    /// A required element is absent; holds its name.
    #[error("required XML node <{0}> is missing")]
    MissingNode(&'static str),
    /// An element's value is out of range or of the wrong type; holds its name.
    #[error("XML node <{0}> has an invalid value")]
    InvalidValue(String),
    /// Well-formed but violates a document-level rule, e.g. too many entries.
    #[error("invalid XML document: {0}")]
    Invalid(String),
}

impl XmlError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Malformed | Self::Invalid(_) => ErrorCode::InvalidXmlDocument,
            Self::MissingNode(_) => ErrorCode::MissingRequiredXmlNode,
            Self::InvalidValue(_) => ErrorCode::InvalidXmlNodeValue,
        }
    }

    /// The error answer, with the node name as the service reports it.
    pub fn to_response(&self) -> ErrorResponse {
        let resp = ErrorResponse::new(self.code());
        match self {
            Self::MissingNode(name) => resp.with_detail("XmlNodeName", *name),
            Self::InvalidValue(name) => resp.with_detail("XmlNodeName", name.clone()),
            Self::Malformed | Self::Invalid(_) => resp,
        }
    }
}

impl From<&XmlError> for ErrorResponse {
    fn from(e: &XmlError) -> Self {
        e.to_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes() {
        assert_eq!(XmlError::Malformed.code(), ErrorCode::InvalidXmlDocument);
        assert_eq!(
            XmlError::Invalid("x".into()).code(),
            ErrorCode::InvalidXmlDocument
        );
        assert_eq!(
            XmlError::MissingNode("Id").code(),
            ErrorCode::MissingRequiredXmlNode
        );
        assert_eq!(
            XmlError::InvalidValue("Days".into()).code(),
            ErrorCode::InvalidXmlNodeValue
        );
        assert_eq!(
            XmlError::InvalidValue("Days".into()).to_response().details,
            vec![("XmlNodeName", "Days".to_string())]
        );
        assert!(XmlError::Malformed.to_response().details.is_empty());
    }

    #[test]
    fn parsers_never_panic_on_truncated_or_mangled_input() {
        // Every prefix of realistic bodies, raw and with a byte flipped, must give a value
        // or an error, never a panic: these parsers face untrusted bytes.
        let docs: [&[u8]; 4] = [
            "\u{FEFF}<?xml version='1.0'?><QueueMessage><MessageText>a&amp;b&#x1F600;é<![CDATA[<x>]]></MessageText></QueueMessage>".as_bytes(),
            b"<SignedIdentifiers><SignedIdentifier><Id>a</Id><AccessPolicy><Start>2024-01-01T00:00:00.1234567+01:00</Start><Permission>raup</Permission></AccessPolicy></SignedIdentifier></SignedIdentifiers>",
            b"<StorageServiceProperties><Logging><Version>1.0</Version><Delete>true</Delete><Read>false</Read><Write>true</Write><RetentionPolicy><Enabled>true</Enabled><Days>7</Days></RetentionPolicy></Logging><Cors><CorsRule><AllowedOrigins>*</AllowedOrigins><AllowedMethods>GET</AllowedMethods><MaxAgeInSeconds>5</MaxAgeInSeconds><ExposedHeaders/><AllowedHeaders/></CorsRule></Cors></StorageServiceProperties>",
            b"<QueueMessagesList><QueueMessage><MessageId>m</MessageId><InsertionTime>Mon, 01 Jan 2024 00:00:00 GMT</InsertionTime><DequeueCount>1</DequeueCount></QueueMessage></QueueMessagesList>",
        ];
        for doc in docs {
            for end in 0..=doc.len() {
                let mut variants = vec![doc[..end].to_vec()];
                if end > 0 {
                    let mut flipped = doc[..end].to_vec();
                    flipped[end - 1] ^= 0x80;
                    variants.push(flipped);
                }
                for body in variants {
                    let _ = parse_message_text(&body);
                    let _ = parse_signed_identifiers(&body);
                    let _ = parse_service_properties(&body, false);
                    let _ = parse_service_properties(&body, true);
                    let _ = parse_messages_list(&body);
                }
            }
        }
    }
}
