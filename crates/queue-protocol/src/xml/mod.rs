//! XML bodies: lenient request parsing and compact, byte-exact response writing.
//!
//! Requests come from many clients (single-quoted declarations, BOMs, namespaces, any
//! element order), so parsing goes through a small tree built from `quick-xml` events and
//! matches on local names. Responses follow the service's compact style exactly, because
//! golden tests and some strict clients compare them.

mod acl;
mod dom;
mod list;
mod message;
mod service;
pub(crate) mod writer;

pub use acl::{parse_signed_identifiers, write_signed_identifiers, SignedIdentifier};
pub use list::{write_list_queues, ListQueuesPage, ListedQueue};
pub use message::{
    parse_message_text, parse_messages_list, write_messages_list, MessageXml, ParsedMessage,
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
}
