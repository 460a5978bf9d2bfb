//! A minimal HTTP/1.1 server connection, written for this front.
//!
//! Why not hyper: Azure metadata travels in header *names* (`x-ms-meta-Color`), and the Python SDK
//! keys metadata by the exact name it receives. The `http` crate lowercases names on the way in and
//! hyper offers no public way to read the original case or to write a chosen one. This module keeps
//! names as sent and writes them as given. It does what the Azure SDKs and tools need and no more:
//! keep-alive, pipelining, `Content-Length` and chunked request bodies, `Expect: 100-continue`,
//! bounded header and body sizes, an idle timeout, and a graceful stop.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// The largest header block accepted (request line + headers).
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
const MAX_HEADERS: usize = 128;
/// How long an idle keep-alive connection is kept. Azurite's fixed 5 s reset clients (#2053).
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Bodies larger than the limit are read and discarded up to this much, so the client sees the
/// 413 answer instead of a reset; beyond it the connection is closed.
const MAX_DRAIN_BYTES: usize = 8 * 1024 * 1024;

/// A parsed request. Header names keep the case they were sent in.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Path as sent, still percent-encoded, without the query.
    pub path: String,
    /// Query string as sent, without the `?`.
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub peer: SocketAddr,
    /// Set when the body exceeded the limit; `body` is then empty.
    pub body_too_large: bool,
}

impl Request {
    /// The first header with this name, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A response. Headers are written exactly as given, in order.
#[derive(Debug, Clone, Default)]
pub struct Response {
    pub status: u16,
    pub reason: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16) -> Self {
        Response {
            status,
            ..Default::default()
        }
    }

    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn push_header(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.headers.push((name.into(), value.into()));
    }

    pub fn xml(mut self, body: String) -> Self {
        self.headers
            .push(("Content-Type".into(), "application/xml".into()));
        self.body = body.into_bytes();
        self
    }
}

/// Answers a parsed request. Implemented by the front's router.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, req: Request) -> impl std::future::Future<Output = Response> + Send;
    /// The response to send when the request could not even be parsed.
    fn bad_request(&self, reason: BadRequest) -> Response;
}

/// Why a request was refused before it reached the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadRequest {
    Malformed,
    HeadTooLarge,
    /// A body with neither Content-Length nor chunked encoding on a method that needs one.
    LengthRequired,
}

/// Serves one connection until the peer closes it, it idles out, or `stop` turns true.
pub async fn serve_connection<H: Handler>(
    mut stream: TcpStream,
    peer: SocketAddr,
    handler: &H,
    max_body: usize,
    mut stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let mut buf: Vec<u8> = Vec::with_capacity(8 * 1024);
    loop {
        // Read until a complete head is buffered.
        let head = loop {
            match parse_head(&buf) {
                Ok(Some(h)) if h.len <= MAX_HEAD_BYTES => break h,
                // Checked on complete heads too: a fast client delivers a large head whole.
                Ok(Some(_)) => {
                    return refuse(stream, handler, BadRequest::HeadTooLarge).await;
                }
                Ok(None) if buf.len() > MAX_HEAD_BYTES => {
                    return refuse(stream, handler, BadRequest::HeadTooLarge).await;
                }
                Ok(None) => {}
                Err(()) => return refuse(stream, handler, BadRequest::Malformed).await,
            }
            let read = tokio::select! {
                r = tokio::time::timeout(IDLE_TIMEOUT, read_more(&mut stream, &mut buf)) => r,
                _ = stop.changed() => return,
            };
            match read {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return,
                Ok(Ok(_)) => {}
            }
            if *stop.borrow() && buf.is_empty() {
                return;
            }
        };
        buf.drain(..head.len);

        let is_head = head.method == "HEAD";
        let keep_alive = head.keep_alive;
        if head.expect_continue
            && stream
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await
                .is_err()
        {
            return;
        }
        let body = match read_body(&mut stream, &mut buf, &head.framing, max_body).await {
            Ok(b) => b,
            Err(BodyError::Io) => return,
            Err(BodyError::Malformed) => {
                return refuse(stream, handler, BadRequest::Malformed).await;
            }
        };
        let (body, body_too_large, resync) = match body {
            Body::Complete(b) => (b, false, true),
            Body::TooLarge { drained } => (Vec::new(), true, drained),
        };
        let req = Request {
            method: head.method,
            path: head.path,
            query: head.query,
            headers: head.headers,
            body,
            peer,
            body_too_large,
        };
        let resp = handler.handle(req).await;
        let keep = keep_alive && resync && !*stop.borrow();
        if write_response(&mut stream, resp, is_head, keep)
            .await
            .is_err()
            || !keep
        {
            return;
        }
    }
}

/// Answers a request that cannot be served and closes the connection without losing the answer.
///
/// Closing a socket that still holds unread client data makes the kernel send a reset, which
/// can destroy the response before the client reads it. So, like nginx's lingering close, shut
/// the write side and discard what still arrives, for a bounded time and amount.
async fn refuse<H: Handler>(mut stream: TcpStream, handler: &H, reason: BadRequest) {
    let resp = handler.bad_request(reason);
    if write_response(&mut stream, resp, false, false)
        .await
        .is_err()
    {
        return;
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let mut sink = [0u8; 16 * 1024];
        let mut total = 0usize;
        while total < MAX_DRAIN_BYTES {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    })
    .await;
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut chunk = [0u8; 16 * 1024];
    let n = stream.read(&mut chunk).await?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

#[derive(Debug)]
enum Framing {
    None,
    Length(usize),
    Chunked,
}

#[derive(Debug)]
struct Head {
    len: usize,
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    framing: Framing,
    keep_alive: bool,
    expect_continue: bool,
}

fn parse_head(buf: &[u8]) -> Result<Option<Head>, ()> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(()),
    };
    let method = req.method.ok_or(())?.to_owned();
    let target = req.path.ok_or(())?;
    let version = req.version.ok_or(())?;
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_owned(), q.to_owned()),
        None => (target.to_owned(), String::new()),
    };
    let mut out = Vec::with_capacity(req.headers.len());
    let mut framing = Framing::None;
    let mut keep_alive = version == 1;
    let mut expect_continue = false;
    for h in req.headers.iter() {
        let value = String::from_utf8_lossy(h.value).trim().to_owned();
        if h.name.eq_ignore_ascii_case("content-length") {
            let n: usize = value.parse().map_err(|_| ())?;
            if matches!(framing, Framing::Length(m) if m != n) {
                return Err(());
            }
            if !matches!(framing, Framing::Chunked) {
                framing = Framing::Length(n);
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            if value.to_ascii_lowercase().ends_with("chunked") {
                framing = Framing::Chunked;
            } else {
                return Err(());
            }
        } else if h.name.eq_ignore_ascii_case("connection") {
            let v = value.to_ascii_lowercase();
            if v.contains("close") {
                keep_alive = false;
            } else if v.contains("keep-alive") {
                keep_alive = true;
            }
        } else if h.name.eq_ignore_ascii_case("expect") {
            expect_continue = value.eq_ignore_ascii_case("100-continue");
        }
        out.push((h.name.to_owned(), value));
    }
    Ok(Some(Head {
        len,
        method,
        path,
        query,
        headers: out,
        framing,
        keep_alive,
        expect_continue,
    }))
}

enum Body {
    Complete(Vec<u8>),
    /// Over the limit. `drained` tells whether the connection is still in sync.
    TooLarge {
        drained: bool,
    },
}

enum BodyError {
    Io,
    Malformed,
}

async fn read_body(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    framing: &Framing,
    max: usize,
) -> Result<Body, BodyError> {
    match *framing {
        Framing::None | Framing::Length(0) => Ok(Body::Complete(Vec::new())),
        Framing::Length(n) => {
            if n > max {
                if n > MAX_DRAIN_BYTES {
                    return Ok(Body::TooLarge { drained: false });
                }
                fill(stream, buf, n).await?;
                buf.drain(..n);
                return Ok(Body::TooLarge { drained: true });
            }
            fill(stream, buf, n).await?;
            Ok(Body::Complete(buf.drain(..n).collect()))
        }
        Framing::Chunked => read_chunked(stream, buf, max).await,
    }
}

async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>, n: usize) -> Result<(), BodyError> {
    while buf.len() < n {
        match tokio::time::timeout(IDLE_TIMEOUT, read_more(stream, buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return Err(BodyError::Io),
            Ok(Ok(_)) => {}
        }
    }
    Ok(())
}

async fn read_chunked(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    max: usize,
) -> Result<Body, BodyError> {
    let mut body = Vec::new();
    let mut total = 0usize;
    loop {
        let (used, size) = loop {
            match httparse::parse_chunk_size(buf) {
                Ok(httparse::Status::Complete((used, size))) => break (used, size),
                Ok(httparse::Status::Partial) => {
                    if buf.len() > 4096 {
                        return Err(BodyError::Malformed);
                    }
                    fill(stream, buf, buf.len() + 1).await?;
                }
                Err(_) => return Err(BodyError::Malformed),
            }
        };
        buf.drain(..used);
        let size = usize::try_from(size).map_err(|_| BodyError::Malformed)?;
        if size == 0 {
            // Trailers, if any, end with an empty line.
            loop {
                let pos = loop {
                    if let Some(p) = buf.windows(2).position(|w| w == b"\r\n") {
                        break p;
                    }
                    fill(stream, buf, buf.len() + 1).await?;
                };
                buf.drain(..pos + 2);
                if pos == 0 {
                    break;
                }
            }
            return Ok(if total > max {
                Body::TooLarge { drained: true }
            } else {
                Body::Complete(body)
            });
        }
        total = total.saturating_add(size);
        if total > MAX_DRAIN_BYTES {
            return Ok(Body::TooLarge { drained: false });
        }
        fill(stream, buf, size + 2).await?;
        if &buf[size..size + 2] != b"\r\n" {
            return Err(BodyError::Malformed);
        }
        if total <= max {
            body.extend_from_slice(&buf[..size]);
        }
        buf.drain(..size + 2);
    }
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Request Entity Too Large",
        416 => "Requested Range Not Satisfiable",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

async fn write_response(
    stream: &mut TcpStream,
    resp: Response,
    is_head: bool,
    keep_alive: bool,
) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(256 + resp.body.len());
    let reason = resp
        .reason
        .as_deref()
        .unwrap_or_else(|| reason_phrase(resp.status));
    // A reason phrase may not contain CR or LF; Azure's texts never do, but be safe.
    let reason: String = reason
        .chars()
        .filter(|c| *c != '\r' && *c != '\n')
        .collect();
    out.extend_from_slice(format!("HTTP/1.1 {} {}\r\n", resp.status, reason).as_bytes());
    for (k, v) in &resp.headers {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let body_len = if is_head { 0 } else { resp.body.len() };
    out.extend_from_slice(format!("Content-Length: {body_len}\r\n").as_bytes());
    if !keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !is_head {
        out.extend_from_slice(&resp.body);
    }
    stream.write_all(&out).await?;
    if !keep_alive {
        let _ = stream.shutdown().await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_keeps_header_case_and_splits_query() {
        let raw = b"PUT /devstoreaccount1/q?comp=metadata&x=1 HTTP/1.1\r\nHost: h\r\nx-ms-meta-Color: red \r\nContent-Length: 0\r\n\r\n";
        let h = parse_head(raw).expect("parses").expect("complete");
        assert_eq!(h.len, raw.len());
        assert_eq!(h.path, "/devstoreaccount1/q");
        assert_eq!(h.query, "comp=metadata&x=1");
        assert!(h
            .headers
            .iter()
            .any(|(k, v)| k == "x-ms-meta-Color" && v == "red"));
        assert!(h.keep_alive);
        assert!(matches!(h.framing, Framing::Length(0)));
    }

    #[test]
    fn head_incomplete_and_malformed() {
        assert!(matches!(parse_head(b"GET / HTTP/1.1\r\nHost"), Ok(None)));
        assert!(parse_head(b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n").is_err());
        assert!(
            parse_head(b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
                .is_err()
        );
        let h = parse_head(b"GET / HTTP/1.0\r\n\r\n")
            .expect("ok")
            .expect("complete");
        assert!(!h.keep_alive, "HTTP/1.0 closes by default");
    }
}
