//! Error codes the queue service answers with, and the XML error body.
//!
//! One enum holds every code from the service's tables so the front maps its domain errors
//! exhaustively; each code knows its HTTP status and the service's own default message,
//! because SDKs surface that text to users and some tests compare it.

use std::fmt;
use std::str::FromStr;

use time::OffsetDateTime;

use crate::datetime::format_iso8601_7;
use crate::xml::writer::{close, open, push_text, text_element, DECLARATION};

/// A storage error code, as sent in `<Code>` and `x-ms-error-code`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    // Queue-specific.
    InvalidMarker,
    MessageNotFound,
    MessageTooLarge,
    PopReceiptMismatch,
    QueueAlreadyExists,
    QueueBeingDeleted,
    QueueDisabled,
    QueueNotEmpty,
    QueueNotFound,
    // Common to all storage services.
    AccountAlreadyExists,
    AccountBeingCreated,
    AccountIsDisabled,
    AuthenticationFailed,
    AuthorizationFailure,
    NoAuthenticationInformation,
    InvalidAuthenticationInfo,
    ConditionHeadersNotSupported,
    ConditionNotMet,
    EmptyMetadataKey,
    InsufficientAccountPermissions,
    InternalError,
    InvalidHeaderValue,
    InvalidHttpVerb,
    InvalidInput,
    InvalidMd5,
    Md5Mismatch,
    InvalidMetadata,
    InvalidQueryParameterValue,
    InvalidRange,
    InvalidResourceName,
    InvalidUri,
    InvalidXmlDocument,
    InvalidXmlNodeValue,
    MetadataTooLarge,
    MissingContentLengthHeader,
    MissingRequiredHeader,
    MissingRequiredQueryParameter,
    MissingRequiredXmlNode,
    MultipleConditionHeadersNotSupported,
    OperationTimedOut,
    OutOfRangeInput,
    OutOfRangeQueryParameterValue,
    RequestBodyTooLarge,
    RequestUrlFailedToParse,
    ResourceAlreadyExists,
    ResourceTypeMismatch,
    ResourceNotFound,
    ServerBusy,
    UnsupportedHeader,
    UnsupportedXmlNode,
    UnsupportedQueryParameter,
    UnsupportedHttpVerb,
    CorsPreflightFailure,
    // Shared access signatures (version 2015-04-05 and later).
    AuthorizationSourceIPMismatch,
    AuthorizationProtocolMismatch,
    AuthorizationPermissionMismatch,
    AuthorizationServiceMismatch,
    AuthorizationResourceTypeMismatch,
    FeatureVersionMismatch,
}

impl ErrorCode {
    /// Every code, for exhaustive tests and reverse lookup.
    pub const ALL: &'static [ErrorCode] = &[
        Self::InvalidMarker,
        Self::MessageNotFound,
        Self::MessageTooLarge,
        Self::PopReceiptMismatch,
        Self::QueueAlreadyExists,
        Self::QueueBeingDeleted,
        Self::QueueDisabled,
        Self::QueueNotEmpty,
        Self::QueueNotFound,
        Self::AccountAlreadyExists,
        Self::AccountBeingCreated,
        Self::AccountIsDisabled,
        Self::AuthenticationFailed,
        Self::AuthorizationFailure,
        Self::NoAuthenticationInformation,
        Self::InvalidAuthenticationInfo,
        Self::ConditionHeadersNotSupported,
        Self::ConditionNotMet,
        Self::EmptyMetadataKey,
        Self::InsufficientAccountPermissions,
        Self::InternalError,
        Self::InvalidHeaderValue,
        Self::InvalidHttpVerb,
        Self::InvalidInput,
        Self::InvalidMd5,
        Self::Md5Mismatch,
        Self::InvalidMetadata,
        Self::InvalidQueryParameterValue,
        Self::InvalidRange,
        Self::InvalidResourceName,
        Self::InvalidUri,
        Self::InvalidXmlDocument,
        Self::InvalidXmlNodeValue,
        Self::MetadataTooLarge,
        Self::MissingContentLengthHeader,
        Self::MissingRequiredHeader,
        Self::MissingRequiredQueryParameter,
        Self::MissingRequiredXmlNode,
        Self::MultipleConditionHeadersNotSupported,
        Self::OperationTimedOut,
        Self::OutOfRangeInput,
        Self::OutOfRangeQueryParameterValue,
        Self::RequestBodyTooLarge,
        Self::RequestUrlFailedToParse,
        Self::ResourceAlreadyExists,
        Self::ResourceTypeMismatch,
        Self::ResourceNotFound,
        Self::ServerBusy,
        Self::UnsupportedHeader,
        Self::UnsupportedXmlNode,
        Self::UnsupportedQueryParameter,
        Self::UnsupportedHttpVerb,
        Self::CorsPreflightFailure,
        Self::AuthorizationSourceIPMismatch,
        Self::AuthorizationProtocolMismatch,
        Self::AuthorizationPermissionMismatch,
        Self::AuthorizationServiceMismatch,
        Self::AuthorizationResourceTypeMismatch,
        Self::FeatureVersionMismatch,
    ];

    /// Code string, HTTP status and default message, kept on one line per code so the
    /// three facts cannot drift apart.
    #[rustfmt::skip]
    fn info(self) -> (&'static str, u16, &'static str) {
        use ErrorCode::*;
        match self {
            InvalidMarker => ("InvalidMarker", 400, "The specified marker is invalid."),
            MessageNotFound => ("MessageNotFound", 404, "The specified message does not exist."),
            MessageTooLarge => ("MessageTooLarge", 400, "The message exceeds the maximum allowed size."),
            PopReceiptMismatch => ("PopReceiptMismatch", 400, "The specified pop receipt did not match the pop receipt for a dequeued message."),
            QueueAlreadyExists => ("QueueAlreadyExists", 409, "The specified queue already exists."),
            QueueBeingDeleted => ("QueueBeingDeleted", 409, "The specified queue is being deleted."),
            QueueDisabled => ("QueueDisabled", 409, "The specified queue has been disabled by the administrator."),
            QueueNotEmpty => ("QueueNotEmpty", 409, "The specified queue is not empty."),
            QueueNotFound => ("QueueNotFound", 404, "The specified queue does not exist."),
            AccountAlreadyExists => ("AccountAlreadyExists", 409, "The specified account already exists."),
            AccountBeingCreated => ("AccountBeingCreated", 409, "The specified account is in the process of being created."),
            AccountIsDisabled => ("AccountIsDisabled", 403, "The specified account is disabled."),
            AuthenticationFailed => ("AuthenticationFailed", 403, "Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature."),
            AuthorizationFailure => ("AuthorizationFailure", 403, "This request is not authorized to perform this operation."),
            NoAuthenticationInformation => ("NoAuthenticationInformation", 401, "Server failed to authenticate the request. Please refer to the information in the www-authenticate header."),
            // 400 is the Shared Key answer to a malformed header; current docs list 401 for
            // OAuth flows, which this server does not implement yet.
            InvalidAuthenticationInfo => ("InvalidAuthenticationInfo", 400, "Authentication information is not given in the correct format. Check the value of Authorization header."),
            ConditionHeadersNotSupported => ("ConditionHeadersNotSupported", 400, "Condition headers are not supported."),
            // 412 for writes; a read would use 304, which the queue service never sends.
            ConditionNotMet => ("ConditionNotMet", 412, "The condition specified using HTTP conditional header(s) is not met."),
            EmptyMetadataKey => ("EmptyMetadataKey", 400, "The key for one of the metadata key-value pairs is empty."),
            InsufficientAccountPermissions => ("InsufficientAccountPermissions", 403, "The account being accessed does not have sufficient permissions to execute this operation."),
            InternalError => ("InternalError", 500, "The server encountered an internal error. Please retry the request."),
            InvalidHeaderValue => ("InvalidHeaderValue", 400, "The value for one of the HTTP headers is not in the correct format."),
            InvalidHttpVerb => ("InvalidHttpVerb", 400, "The HTTP verb specified was not recognized by the server."),
            InvalidInput => ("InvalidInput", 400, "One of the request inputs is not valid."),
            InvalidMd5 => ("InvalidMd5", 400, "The MD5 value specified in the request is invalid. The MD5 value must be 128 bits and Base64-encoded."),
            Md5Mismatch => ("Md5Mismatch", 400, "The MD5 value specified in the request did not match the MD5 value calculated by the server."),
            InvalidMetadata => ("InvalidMetadata", 400, "The metadata specified is invalid. It has characters that are not permitted."),
            InvalidQueryParameterValue => ("InvalidQueryParameterValue", 400, "Value for one of the query parameters specified in the request URI is invalid."),
            InvalidRange => ("InvalidRange", 416, "The range specified is invalid for the current size of the resource."),
            InvalidResourceName => ("InvalidResourceName", 400, "The specifed resource name contains invalid characters."),
            InvalidUri => ("InvalidUri", 400, "The requested URI does not represent any resource on the server."),
            InvalidXmlDocument => ("InvalidXmlDocument", 400, "XML specified is not syntactically valid."),
            InvalidXmlNodeValue => ("InvalidXmlNodeValue", 400, "The value for one of the XML nodes is not in the correct format."),
            MetadataTooLarge => ("MetadataTooLarge", 400, "The size of the specified metadata exceeds the maximum size permitted."),
            MissingContentLengthHeader => ("MissingContentLengthHeader", 411, "The Content-Length header was not specified."),
            MissingRequiredHeader => ("MissingRequiredHeader", 400, "An HTTP header that's mandatory for this request is not specified."),
            MissingRequiredQueryParameter => ("MissingRequiredQueryParameter", 400, "A query parameter that's mandatory for this request is not specified."),
            MissingRequiredXmlNode => ("MissingRequiredXmlNode", 400, "An XML node that's mandatory for this request is not specified."),
            MultipleConditionHeadersNotSupported => ("MultipleConditionHeadersNotSupported", 400, "Multiple condition headers are not supported."),
            OperationTimedOut => ("OperationTimedOut", 500, "The operation could not be completed within the permitted time."),
            OutOfRangeInput => ("OutOfRangeInput", 400, "One of the request inputs is out of range."),
            OutOfRangeQueryParameterValue => ("OutOfRangeQueryParameterValue", 400, "One of the query parameters specified in the request URI is outside the permissible range."),
            RequestBodyTooLarge => ("RequestBodyTooLarge", 413, "The request body is too large and exceeds the maximum permissible limit."),
            RequestUrlFailedToParse => ("RequestUrlFailedToParse", 400, "The url in the request could not be parsed."),
            ResourceAlreadyExists => ("ResourceAlreadyExists", 409, "The specified resource already exists."),
            ResourceTypeMismatch => ("ResourceTypeMismatch", 409, "The specified resource type does not match the type of the existing resource."),
            ResourceNotFound => ("ResourceNotFound", 404, "The specified resource does not exist."),
            ServerBusy => ("ServerBusy", 503, "The server is currently unable to receive requests. Please retry your request."),
            UnsupportedHeader => ("UnsupportedHeader", 400, "One of the HTTP headers specified in the request is not supported."),
            UnsupportedXmlNode => ("UnsupportedXmlNode", 400, "One of the XML nodes specified in the request body is not supported."),
            UnsupportedQueryParameter => ("UnsupportedQueryParameter", 400, "One of the query parameters specified in the request URI is not supported."),
            UnsupportedHttpVerb => ("UnsupportedHttpVerb", 405, "The resource doesn't support specified Http Verb."),
            CorsPreflightFailure => ("CorsPreflightFailure", 403, "CORS not enabled or no matching rule found for this request."),
            AuthorizationSourceIPMismatch => ("AuthorizationSourceIPMismatch", 403, "This request is not authorized to perform this operation using this source IP."),
            AuthorizationProtocolMismatch => ("AuthorizationProtocolMismatch", 403, "This request is not authorized to perform this operation using this protocol."),
            AuthorizationPermissionMismatch => ("AuthorizationPermissionMismatch", 403, "This request is not authorized to perform this operation using this permission."),
            AuthorizationServiceMismatch => ("AuthorizationServiceMismatch", 403, "This request is not authorized to perform this operation using this service."),
            AuthorizationResourceTypeMismatch => ("AuthorizationResourceTypeMismatch", 403, "This request is not authorized to perform this operation using this resource type."),
            FeatureVersionMismatch => ("FeatureVersionMismatch", 409, "The operation is not supported by the version of the request."),
        }
    }

    /// The exact code string, e.g. `"QueueNotFound"`.
    pub fn as_str(self) -> &'static str {
        self.info().0
    }

    /// The HTTP status the service answers with.
    pub fn status(self) -> u16 {
        self.info().1
    }

    /// The service's human-readable text, first line of `<Message>`.
    pub fn default_message(self) -> &'static str {
        self.info().2
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A code string this crate does not know; clients keep the raw string instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown storage error code {0:?}")]
pub struct UnknownErrorCode(pub String);

impl FromStr for ErrorCode {
    type Err = UnknownErrorCode;

    /// Case-sensitive, like the codes on the wire.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownErrorCode(s.to_owned()))
    }
}

/// An error answer ready to serialize.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorResponse {
    pub code: ErrorCode,
    /// The code's status, unless the service answers this code with another in some case
    /// (`InvalidAuthenticationInfo` is 400 for a malformed header, 401 for a refused token).
    pub status: u16,
    pub message: String,
    /// Extra child elements of `<Error>`, in order, e.g. `("QueryParameterName", "numofmessages")`.
    pub details: Vec<(&'static str, String)>,
}

impl ErrorResponse {
    /// An answer with the code's default message and no details.
    pub fn new(code: ErrorCode) -> Self {
        Self {
            code,
            status: code.status(),
            message: code.default_message().to_owned(),
            details: Vec::new(),
        }
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    pub fn with_message(mut self, msg: impl Into<String>) -> Self {
        self.message = msg.into();
        self
    }

    pub fn with_detail(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.details.push((name, value.into()));
        self
    }

    /// The HTTP status of the answer.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The full body. The message carries the request id and time on extra lines, as the
    /// service does, so a user pasting an error gives support something to search for.
    pub fn to_xml(&self, request_id: &str, now: OffsetDateTime) -> String {
        let mut out = String::with_capacity(256);
        out.push_str(DECLARATION);
        open(&mut out, "Error");
        text_element(&mut out, "Code", self.code.as_str());
        open(&mut out, "Message");
        push_text(&mut out, &self.message);
        out.push_str("\nRequestId:");
        push_text(&mut out, request_id);
        out.push_str("\nTime:");
        out.push_str(&format_iso8601_7(now));
        close(&mut out, "Message");
        for (name, value) in &self.details {
            if value.is_empty() {
                // As the service writes an empty detail, e.g. `<Reason />`.
                out.push('<');
                out.push_str(name);
                out.push_str(" />");
            } else {
                text_element(&mut out, name, value);
            }
        }
        close(&mut out, "Error");
        out
    }
}

impl From<ErrorCode> for ErrorResponse {
    fn from(code: ErrorCode) -> Self {
        Self::new(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn codes_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for &code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()), "duplicate {code}");
            assert_eq!(code.as_str().parse::<ErrorCode>(), Ok(code));
            assert_eq!(format!("{code:?}"), code.as_str());
            assert!(code.default_message().ends_with('.'), "{code}");
        }
        assert_eq!(seen.len(), 59);
        assert_eq!(
            "queuenotfound".parse::<ErrorCode>(),
            Err(UnknownErrorCode("queuenotfound".into()))
        );
    }

    #[test]
    fn statuses_and_messages() {
        let cases = [
            (ErrorCode::QueueNotFound, 404, "The specified queue does not exist."),
            (ErrorCode::QueueAlreadyExists, 409, "The specified queue already exists."),
            (ErrorCode::MessageNotFound, 404, "The specified message does not exist."),
            (ErrorCode::OutOfRangeInput, 400, "One of the request inputs is out of range."),
            (ErrorCode::InvalidResourceName, 400, "The specifed resource name contains invalid characters."),
            (ErrorCode::RequestBodyTooLarge, 413, "The request body is too large and exceeds the maximum permissible limit."),
            (ErrorCode::UnsupportedHttpVerb, 405, "The resource doesn't support specified Http Verb."),
            (ErrorCode::CorsPreflightFailure, 403, "CORS not enabled or no matching rule found for this request."),
            (ErrorCode::AuthenticationFailed, 403, "Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature."),
            (ErrorCode::OutOfRangeQueryParameterValue, 400, "One of the query parameters specified in the request URI is outside the permissible range."),
            (ErrorCode::InvalidQueryParameterValue, 400, "Value for one of the query parameters specified in the request URI is invalid."),
            (ErrorCode::NoAuthenticationInformation, 401, "Server failed to authenticate the request. Please refer to the information in the www-authenticate header."),
            (ErrorCode::MissingContentLengthHeader, 411, "The Content-Length header was not specified."),
            (ErrorCode::InvalidRange, 416, "The range specified is invalid for the current size of the resource."),
            (ErrorCode::InternalError, 500, "The server encountered an internal error. Please retry the request."),
            (ErrorCode::ServerBusy, 503, "The server is currently unable to receive requests. Please retry your request."),
        ];
        for (code, status, msg) in cases {
            assert_eq!(code.status(), status, "{code}");
            assert_eq!(code.default_message(), msg, "{code}");
        }
    }

    #[test]
    fn golden_error_body() {
        let now = datetime!(2024-01-01 00:00:00.1234567 UTC);
        let body = ErrorResponse::new(ErrorCode::QueueNotFound).to_xml("7a3d", now);
        assert_eq!(
            body,
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>QueueNotFound</Code>\
             <Message>The specified queue does not exist.\nRequestId:7a3d\n\
             Time:2024-01-01T00:00:00.1234567Z</Message></Error>"
        );
    }

    #[test]
    fn golden_error_body_with_details() {
        let now = datetime!(2024-05-06 07:08:09 UTC);
        let resp = ErrorResponse::new(ErrorCode::OutOfRangeQueryParameterValue)
            .with_detail("QueryParameterName", "numofmessages")
            .with_detail("QueryParameterValue", "33")
            .with_detail("MinimumAllowed", "1")
            .with_detail("MaximumAllowed", "32");
        assert_eq!(resp.status(), 400);
        assert_eq!(
            resp.to_xml("rid", now),
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error>\
             <Code>OutOfRangeQueryParameterValue</Code><Message>One of the query parameters \
             specified in the request URI is outside the permissible range.\nRequestId:rid\n\
             Time:2024-05-06T07:08:09.0000000Z</Message>\
             <QueryParameterName>numofmessages</QueryParameterName>\
             <QueryParameterValue>33</QueryParameterValue><MinimumAllowed>1</MinimumAllowed>\
             <MaximumAllowed>32</MaximumAllowed></Error>"
        );
    }

    #[test]
    fn custom_message_and_detail_are_escaped() {
        let now = datetime!(2024-01-01 00:00:00 UTC);
        let resp = ErrorResponse::from(ErrorCode::AuthenticationFailed)
            .with_message("bad <sig> & co")
            .with_detail("AuthenticationErrorDetail", "used 'a\r\nb'");
        assert_eq!(
            resp.to_xml("r", now),
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>AuthenticationFailed</Code>\
             <Message>bad &lt;sig&gt; &amp; co\nRequestId:r\nTime:2024-01-01T00:00:00.0000000Z\
             </Message><AuthenticationErrorDetail>used 'a&#xD;\nb'</AuthenticationErrorDetail>\
             </Error>"
        );
    }
}
