//! The front's error type and the one exhaustive mapping from engine errors to Azure's answers.
//!
//! An [`ApiError`] is an Azure error response waiting for its request id: a code from the
//! protocol crate's table (which knows its status and default text) plus detail elements.

use hematite_engine::{Error as EngineError, StoreErrorKind};
use hematite_queue_protocol::error::{ErrorCode, ErrorResponse};

#[derive(Debug)]
pub struct ApiError {
    pub response: ErrorResponse,
    /// Extra response headers (e.g. `WWW-Authenticate`).
    pub headers: Vec<(&'static str, String)>,
}

impl ApiError {
    pub fn new(code: ErrorCode) -> Self {
        ApiError {
            response: ErrorResponse::new(code),
            headers: Vec::new(),
        }
    }

    pub fn message(mut self, msg: impl Into<String>) -> Self {
        self.response = self.response.with_message(msg);
        self
    }

    pub fn detail(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.response = self.response.with_detail(name, value);
        self
    }

    pub fn status(mut self, status: u16) -> Self {
        self.response = self.response.with_status(status);
        self
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn code(&self) -> ErrorCode {
        self.response.code
    }

    /// 400 InvalidQueryParameterValue for a named parameter.
    pub fn invalid_query(name: &str, value: &str, reason: Option<&str>) -> Self {
        let e = ApiError::new(ErrorCode::InvalidQueryParameterValue)
            .detail("QueryParameterName", name)
            .detail("QueryParameterValue", value);
        match reason {
            Some(r) => e.detail("Reason", r),
            None => e,
        }
    }

    /// 400 OutOfRangeQueryParameterValue with the allowed bounds.
    pub fn out_of_range_query(name: &str, value: &str, min: i64, max: i64) -> Self {
        ApiError::new(ErrorCode::OutOfRangeQueryParameterValue)
            .detail("QueryParameterName", name)
            .detail("QueryParameterValue", value)
            .detail("MinimumAllowed", min.to_string())
            .detail("MaximumAllowed", max.to_string())
    }

    pub fn missing_query(name: &str) -> Self {
        ApiError::new(ErrorCode::MissingRequiredQueryParameter).detail("QueryParameterName", name)
    }

    pub fn invalid_header(name: &str, value: &str) -> Self {
        ApiError::new(ErrorCode::InvalidHeaderValue)
            .detail("HeaderName", name)
            .detail("HeaderValue", value)
    }

    pub fn auth_failed(detail: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::AuthenticationFailed).detail("AuthenticationErrorDetail", detail)
    }

    pub fn body_too_large(limit: usize) -> Self {
        ApiError::new(ErrorCode::RequestBodyTooLarge).detail("MaxLimit", limit.to_string())
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::QueueNotFound => ApiError::new(ErrorCode::QueueNotFound),
            EngineError::QueueAlreadyExists => ApiError::new(ErrorCode::QueueAlreadyExists),
            // The live service answers a stale or foreign receipt with 404 MessageNotFound, not
            // the documented 400 PopReceiptMismatch (`docs/compatibility.md`).
            // A lost lock is a Service Bus answer; were it ever to reach this front, the
            // message the receipt named is as good as gone.
            EngineError::MessageNotFound
            | EngineError::PopReceiptMismatch
            | EngineError::LockLost => ApiError::new(ErrorCode::MessageNotFound),
            EngineError::InvalidArgument(what) => {
                tracing::error!(what, "front passed an invalid argument to the engine");
                ApiError::new(ErrorCode::InternalError)
            }
            // Queue Storage bounds no queue's size, and this front never asks for a bound.
            EngineError::EntityFull { .. } => {
                tracing::error!("the engine refused a bound this front never sets");
                ApiError::new(ErrorCode::InternalError)
            }
            EngineError::Storage(s) => {
                tracing::error!(error = %s, "store failure");
                match s.kind {
                    StoreErrorKind::Unavailable => ApiError::new(ErrorCode::ServerBusy),
                    StoreErrorKind::Corrupt | StoreErrorKind::Other => {
                        ApiError::new(ErrorCode::InternalError)
                    }
                }
            }
        }
    }
}
