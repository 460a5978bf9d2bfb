//! The one error type of the client.
//!
//! A service answer keeps everything a user needs to act on it or to ask support about it:
//! the HTTP status, the Azure error code (from `x-ms-error-code`, or the body's `<Code>` when
//! the header is missing), the service's message and the `x-ms-request-id`. Callers match on
//! the code string or on [`ErrorCode`] rather than parsing text.

use std::fmt;

use hematite_queue_protocol::ErrorCode;

/// Everything a call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The service answered with an error status.
    #[error("{0}")]
    Service(Box<ServiceError>),
    /// The request never got a complete answer: connection refused or reset, timeout, TLS.
    /// Retried already, as [`crate::ClientOptions`] allows.
    #[error("request failed: {}", chain(.0))]
    Transport(#[source] reqwest::Error),
    /// A connection string, endpoint or key that cannot be used.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// An argument the service could never accept, caught before sending (e.g. a metadata
    /// name that is not a valid header name, or message text XML cannot carry).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A success status with a body or headers this client cannot read.
    #[error("unexpected response: {0}")]
    Response(String),
}

/// An error answer from the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceError {
    /// The HTTP status, e.g. 404.
    pub status: u16,
    /// The Azure error code, e.g. `QueueNotFound`; `None` if the answer carried none.
    pub code: Option<String>,
    /// The service's message, first line only (the service appends the request id and time
    /// on further lines, which are kept in [`Self::request_id`] instead).
    pub message: String,
    /// `x-ms-request-id`, for support requests and server logs.
    pub request_id: Option<String>,
}

impl ServiceError {
    /// The code as a known [`ErrorCode`]; `None` for a missing or unknown code.
    pub fn error_code(&self) -> Option<ErrorCode> {
        self.code.as_deref().and_then(|c| c.parse().ok())
    }
}

/// `QueueNotFound (404): The specified queue does not exist. [request id 0f…]`
impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.code {
            Some(code) => write!(f, "{code} ({})", self.status)?,
            None => write!(f, "HTTP {}", self.status)?,
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        if let Some(id) = &self.request_id {
            write!(f, " [request id {id}]")?;
        }
        Ok(())
    }
}

impl Error {
    /// The HTTP status of a service error.
    pub fn status(&self) -> Option<u16> {
        self.service().map(|e| e.status)
    }

    /// The Azure error code string of a service error.
    pub fn code(&self) -> Option<&str> {
        self.service().and_then(|e| e.code.as_deref())
    }

    /// The Azure error code of a service error, when it is one the protocol crate knows.
    pub fn error_code(&self) -> Option<ErrorCode> {
        self.service().and_then(ServiceError::error_code)
    }

    /// The `x-ms-request-id` of a service error.
    pub fn request_id(&self) -> Option<&str> {
        self.service().and_then(|e| e.request_id.as_deref())
    }

    /// The service error, if this is one.
    pub fn service(&self) -> Option<&ServiceError> {
        match self {
            Self::Service(e) => Some(e),
            _ => None,
        }
    }

    /// A 404 answer: the queue or message does not exist.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }
}

impl From<ServiceError> for Error {
    fn from(e: ServiceError) -> Self {
        Self::Service(Box::new(e))
    }
}

/// reqwest's own message is generic ("error sending request for url"); the cause is in its
/// source chain, which a one-line report must include.
fn chain(e: &reqwest::Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_error_formats_on_one_line() {
        let e = Error::from(ServiceError {
            status: 404,
            code: Some("QueueNotFound".into()),
            message: "The specified queue does not exist.".into(),
            request_id: Some("abc".into()),
        });
        assert_eq!(
            e.to_string(),
            "QueueNotFound (404): The specified queue does not exist. [request id abc]"
        );
        assert_eq!(e.error_code(), Some(ErrorCode::QueueNotFound));
        assert!(e.is_not_found());
        assert_eq!(e.request_id(), Some("abc"));

        let e = Error::from(ServiceError {
            status: 502,
            code: None,
            message: String::new(),
            request_id: None,
        });
        assert_eq!(e.to_string(), "HTTP 502");
        assert_eq!(e.error_code(), None);
    }

    #[test]
    fn unknown_codes_keep_their_string() {
        let e = ServiceError {
            status: 400,
            code: Some("SomethingNew".into()),
            message: "m".into(),
            request_id: None,
        };
        assert_eq!(e.error_code(), None);
        assert_eq!(e.to_string(), "SomethingNew (400): m");
    }
}
