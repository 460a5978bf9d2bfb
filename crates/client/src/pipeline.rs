//! One request, end to end: authenticate, send, retry, and turn error answers into [`Error`].
//!
//! Each attempt is built afresh (a new `x-ms-date`, so a new signature), because a retry may
//! come long after the first try and the service refuses dates older than 15 minutes. The
//! `x-ms-client-request-id` stays the same across attempts, so server logs tie them together.
//! The signature covers the URL exactly as it goes on the wire: the path and query are taken
//! from the final `Url`, after any encoding it applied.

use std::time::Duration;

use hematite_queue_protocol::datetime::format_rfc1123;
use hematite_queue_protocol::version::LATEST_KNOWN;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};
use time::OffsetDateTime;

use crate::credential::Credential;
use crate::error::{Error, ServiceError};
use crate::options::{is_retryable_status, ClientOptions};
use crate::xml;

/// The HTTP client, credential and options, shared by every client made from one service
/// client (reqwest pools connections per `Client`).
#[derive(Debug)]
pub(crate) struct Pipeline {
    http: reqwest::Client,
    credential: Credential,
    options: ClientOptions,
}

/// A request before authentication.
#[derive(Debug)]
pub(crate) struct Request {
    pub method: Method,
    /// The resource URL with its query, without any SAS.
    pub url: Url,
    /// Extra headers, e.g. `x-ms-meta-*`. Names are sent lowercase (see the crate docs).
    pub headers: Vec<(String, String)>,
    /// An XML body.
    pub body: Option<String>,
}

/// A complete answer.
#[derive(Debug)]
pub(crate) struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// What query values may contain unescaped: RFC 3986 unreserved characters. Everything else
/// is percent-encoded, so `+` can never be mistaken for a space on the other side.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Builds `?a=1&b=2` with encoded values; `None` values are left out.
pub(crate) fn with_query(mut url: Url, params: &[(&str, Option<String>)]) -> Url {
    let query: Vec<String> = params
        .iter()
        .filter_map(|(k, v)| {
            v.as_ref()
                .map(|v| format!("{k}={}", utf8_percent_encode(v, QUERY_VALUE)))
        })
        .collect();
    if query.is_empty() {
        url.set_query(None);
    } else {
        url.set_query(Some(&query.join("&")));
    }
    url
}

impl Pipeline {
    pub fn new(credential: Credential, options: ClientOptions) -> Result<Self, Error> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("hematite-client/", env!("CARGO_PKG_VERSION")))
            // A redirect would invalidate the signature and could leak a SAS to another host.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(options.timeout)
            .build()
            .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            http,
            credential,
            options,
        })
    }

    pub fn credential(&self) -> &Credential {
        &self.credential
    }

    /// Sends `req`, retrying transient failures; a status outside `expected` becomes
    /// [`Error::Service`].
    pub async fn send(&self, req: Request, expected: &[u16]) -> Result<Response, Error> {
        check_headers(&req.headers)?;
        let client_request_id = uuid::Uuid::new_v4().to_string();
        let mut retry = 0;
        loop {
            let outcome = self.attempt(&req, &client_request_id).await;
            let retry_after = match &outcome {
                Ok(resp) if is_retryable_status(resp.status) => Some(retry_after(resp)),
                Ok(_) => None,
                Err(e) if is_retryable_transport(e) => Some(None),
                Err(_) => None,
            };
            if let Some(after) = retry_after {
                if retry < self.options.max_retries {
                    tokio::time::sleep(self.options.backoff(retry, after)).await;
                    retry += 1;
                    continue;
                }
            }
            let resp = outcome.map_err(Error::Transport)?;
            if expected.contains(&resp.status) {
                return Ok(resp);
            }
            return Err(service_error(&resp).into());
        }
    }

    async fn attempt(
        &self,
        req: &Request,
        client_request_id: &str,
    ) -> Result<Response, reqwest::Error> {
        let mut url = req.url.clone();
        if let Credential::Sas(token) = &self.credential {
            let query = match url.query() {
                Some(q) if !q.is_empty() => format!("{q}&{}", token.as_str()),
                _ => token.as_str().to_owned(),
            };
            url.set_query(Some(&query));
        }

        let date = format_rfc1123(OffsetDateTime::now_utc());
        let version = LATEST_KNOWN.to_string();
        let mut headers: Vec<(&str, &str)> = vec![
            ("x-ms-date", &date),
            ("x-ms-version", &version),
            ("x-ms-client-request-id", client_request_id),
        ];
        headers.extend(req.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        let content_length = req.body.as_ref().map(|b| b.len().to_string());
        if req.body.is_some() {
            headers.push(("content-type", "application/xml"));
        }

        let authorization = match &self.credential {
            Credential::SharedKey(key) => {
                let mut signed = headers.clone();
                if let Some(len) = &content_length {
                    signed.push(("content-length", len));
                }
                Some(key.authorization(
                    req.method.as_str(),
                    url.path(),
                    url.query().unwrap_or(""),
                    &signed,
                ))
            }
            Credential::Sas(_) => None,
        };

        let mut builder = self
            .http
            .request(req.method.clone(), url)
            .timeout(self.options.timeout);
        for (name, value) in &headers {
            builder = builder.header(*name, *value);
        }
        if let Some(auth) = authorization {
            builder = builder.header("authorization", auth);
        }
        if let Some(body) = &req.body {
            builder = builder.body(body.clone());
        }
        let resp = builder.send().await?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.bytes().await?.to_vec();
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

/// Refuses header names and values HTTP cannot carry before anything is sent, so the caller
/// gets an argument error instead of an opaque transport one.
fn check_headers(headers: &[(String, String)]) -> Result<(), Error> {
    for (name, value) in headers {
        HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| Error::InvalidArgument(format!("{name:?} is not a valid header name")))?;
        HeaderValue::from_str(value).map_err(|_| {
            Error::InvalidArgument(format!(
                "the value of {name} must be visible ASCII text, got {value:?}"
            ))
        })?;
    }
    Ok(())
}

/// Connection failures, timeouts and broken answers are worth retrying; a request reqwest
/// could not even build is not.
fn is_retryable_transport(e: &reqwest::Error) -> bool {
    !e.is_builder() && !e.is_redirect()
}

/// `Retry-After` in seconds (the only form the storage service sends).
fn retry_after(resp: &Response) -> Option<Duration> {
    resp.header("retry-after")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// The code from `x-ms-error-code` (HEAD answers have no body) or the body's `<Code>`; the
/// message from the body or, failing that, the code's standard text.
fn service_error(resp: &Response) -> ServiceError {
    let (body_code, body_message) = xml::parse_error(&resp.body).unwrap_or((None, None));
    let code = resp
        .header("x-ms-error-code")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .or(body_code);
    let message = body_message
        .or_else(|| {
            code.as_deref()
                .and_then(|c| c.parse::<hematite_queue_protocol::ErrorCode>().ok())
                .map(|c| c.default_message().to_owned())
        })
        .unwrap_or_else(|| {
            reqwest::StatusCode::from_u16(resp.status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("")
                .to_owned()
        });
    ServiceError {
        status: resp.status,
        code,
        message,
        request_id: resp.header("x-ms-request-id").map(str::to_owned),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_fully_encoded() {
        let url = Url::parse("http://h/a/q/messages/id").unwrap();
        let url = with_query(
            url,
            &[
                ("popreceipt", Some("a+b/c=".into())),
                ("visibilitytimeout", Some("0".into())),
                ("skip", None),
            ],
        );
        assert_eq!(
            url.query(),
            Some("popreceipt=a%2Bb%2Fc%3D&visibilitytimeout=0")
        );
        let url = with_query(url, &[("x", None)]);
        assert_eq!(url.query(), None);
    }

    #[test]
    fn error_from_header_only() {
        let mut headers = HeaderMap::new();
        headers.insert("x-ms-error-code", HeaderValue::from_static("QueueNotFound"));
        headers.insert("x-ms-request-id", HeaderValue::from_static("r1"));
        let e = service_error(&Response {
            status: 404,
            headers,
            body: Vec::new(),
        });
        assert_eq!(e.code.as_deref(), Some("QueueNotFound"));
        assert_eq!(e.message, "The specified queue does not exist.");
        assert_eq!(e.request_id.as_deref(), Some("r1"));

        let e = service_error(&Response {
            status: 502,
            headers: HeaderMap::new(),
            body: b"<html>bad gateway</html>".to_vec(),
        });
        assert_eq!((e.code, e.message.as_str()), (None, "Bad Gateway"));
    }

    #[test]
    fn bad_headers_are_argument_errors() {
        assert!(check_headers(&[("x-ms-meta-ok".into(), "v".into())]).is_ok());
        assert!(matches!(
            check_headers(&[("x-ms-meta-a b".into(), "v".into())]),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            check_headers(&[("x-ms-meta-a".into(), "line\nbreak".into())]),
            Err(Error::InvalidArgument(_))
        ));
    }
}
