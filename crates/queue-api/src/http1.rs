//! A minimal HTTP/1.1 server connection, written for this front.
//!
//! Why not hyper: Azure metadata travels in header *names* (`x-ms-meta-Color`), and the Python SDK
//! keys metadata by the exact name it receives. The `http` crate lowercases names on the way in and
//! hyper offers no public way to read the original case or to write a chosen one. This module keeps
//! names as sent and writes them as given. It does what the Azure SDKs and tools need and no more:
//! keep-alive, pipelining, `Content-Length` and chunked request bodies, `Expect: 100-continue`,
//! bounded header and body sizes, an idle timeout, and a graceful stop.

use std::borrow::Cow;
use std::future::Future;
use std::net::SocketAddr;
use std::ops::Range;
use std::pin::Pin;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

/// The largest header block accepted (request line + headers).
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
const MAX_HEADERS: usize = 128;
/// How long an idle keep-alive connection is kept. Azurite's fixed 5 s reset clients (#2053).
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Bodies larger than the limit are read and discarded up to this much, so the client sees the
/// 413 answer instead of a reset; beyond it the connection is closed.
const MAX_DRAIN_BYTES: usize = 8 * 1024 * 1024;
/// How much room one read of the socket gets.
const READ_CHUNK: usize = 16 * 1024;

/// A parsed request. Header names keep the case they were sent in.
///
/// The request line's parts and the headers live in one buffer, so parsing a request costs
/// one allocation for them rather than two per header.
#[derive(Debug, Clone)]
pub struct Request {
    text: String,
    method: Range<usize>,
    path: Range<usize>,
    query: Range<usize>,
    headers: Vec<(Range<usize>, Range<usize>)>,
    pub body: Vec<u8>,
    pub peer: SocketAddr,
    /// Set when the body exceeded the limit; `body` is then empty.
    pub body_too_large: bool,
}

impl Request {
    /// The method as sent, e.g. `GET`.
    pub fn method(&self) -> &str {
        &self.text[self.method.clone()]
    }

    /// Path as sent, still percent-encoded, without the query.
    pub fn path(&self) -> &str {
        &self.text[self.path.clone()]
    }

    /// Query string as sent, without the `?`.
    pub fn query(&self) -> &str {
        &self.text[self.query.clone()]
    }

    /// Every header in order: names as sent, values trimmed.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.headers
            .iter()
            .map(|(k, v)| (&self.text[k.clone()], &self.text[v.clone()]))
    }

    /// The first header with this name, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }
}

/// A header name or value: usually a literal, so it costs no allocation.
pub type HeaderText = Cow<'static, str>;

/// A response. Headers are written exactly as given, in order.
#[derive(Debug, Clone, Default)]
pub struct Response {
    pub status: u16,
    pub reason: Option<String>,
    pub headers: Vec<(HeaderText, HeaderText)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16) -> Self {
        Response {
            status,
            ..Default::default()
        }
    }

    pub fn header(mut self, name: impl Into<HeaderText>, value: impl Into<HeaderText>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn push_header(&mut self, name: impl Into<HeaderText>, value: impl Into<HeaderText>) {
        self.headers.push((name.into(), value.into()));
    }

    pub fn xml(mut self, body: String) -> Self {
        self.headers.push((
            Cow::Borrowed("Content-Type"),
            Cow::Borrowed("application/xml"),
        ));
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

/// One connection's socket and buffers.
///
/// The idle timeout is one timer per connection, re-armed only when it fires early, rather
/// than a timer registered and cancelled around every read.
struct Conn {
    stream: TcpStream,
    /// Bytes read and not yet consumed.
    buf: Vec<u8>,
    /// The response being written, kept to reuse its allocation.
    out: Vec<u8>,
    /// Fires at the latest once a read has waited the idle timeout; it may fire early, as it is
    /// moved only when it does.
    idle: Pin<Box<Sleep>>,
    /// Resolves when the server stops (or its stop sender is gone).
    stopped: Pin<Box<dyn Future<Output = ()> + Send>>,
}

enum Read {
    Data,
    /// The peer closed, the read failed, or the connection idled out.
    Closed,
    Stopped,
}

impl Conn {
    fn new(stream: TcpStream, stop: &watch::Receiver<bool>) -> Self {
        let mut stop = stop.clone();
        let now = Instant::now();
        Conn {
            stream,
            buf: Vec::with_capacity(READ_CHUNK),
            out: Vec::with_capacity(1024),
            idle: Box::pin(tokio::time::sleep_until(now + IDLE_TIMEOUT)),
            stopped: Box::pin(async move {
                let _ = stop.changed().await;
            }),
        }
    }

    /// Reads more bytes into `buf`, waiting at most the idle timeout, and for the stop signal
    /// too when `watch_stop`.
    async fn read_more(&mut self, watch_stop: bool) -> Read {
        if self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
            self.buf.reserve(READ_CHUNK);
        }
        let deadline = Instant::now() + IDLE_TIMEOUT;
        loop {
            tokio::select! {
                biased;
                r = self.stream.read_buf(&mut self.buf) => {
                    return match r {
                        Ok(0) | Err(_) => Read::Closed,
                        Ok(_) => Read::Data,
                    };
                }
                _ = &mut self.stopped, if watch_stop => return Read::Stopped,
                _ = self.idle.as_mut() => {
                    if Instant::now() >= deadline {
                        return Read::Closed;
                    }
                    self.idle.as_mut().reset(deadline);
                }
            }
        }
    }

    /// Reads until `buf` holds at least `n` bytes.
    async fn fill(&mut self, n: usize) -> Result<(), BodyError> {
        while self.buf.len() < n {
            match self.read_more(false).await {
                Read::Data => {}
                Read::Closed | Read::Stopped => return Err(BodyError::Io),
            }
        }
        Ok(())
    }
}

/// Serves one connection until the peer closes it, it idles out, or `stop` turns true.
pub async fn serve_connection<H: Handler>(
    stream: TcpStream,
    peer: SocketAddr,
    handler: &H,
    max_body: usize,
    stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let mut conn = Conn::new(stream, &stop);
    loop {
        // Read until a complete head is buffered.
        let head = loop {
            match parse_head(&conn.buf) {
                Ok(Some(h)) if h.len <= MAX_HEAD_BYTES => break h,
                // Checked on complete heads too: a fast client delivers a large head whole.
                Ok(Some(_)) => {
                    return refuse(conn, handler, BadRequest::HeadTooLarge).await;
                }
                Ok(None) if conn.buf.len() > MAX_HEAD_BYTES => {
                    return refuse(conn, handler, BadRequest::HeadTooLarge).await;
                }
                Ok(None) => {}
                Err(()) => return refuse(conn, handler, BadRequest::Malformed).await,
            }
            match conn.read_more(true).await {
                Read::Data => {}
                Read::Closed | Read::Stopped => return,
            }
            if *stop.borrow() && conn.buf.is_empty() {
                return;
            }
        };
        conn.buf.drain(..head.len);

        let is_head = head.req.method() == "HEAD";
        let keep_alive = head.keep_alive;
        if head.expect_continue
            && conn
                .stream
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await
                .is_err()
        {
            return;
        }
        let body = match read_body(&mut conn, &head.framing, max_body).await {
            Ok(b) => b,
            Err(BodyError::Io) => return,
            Err(BodyError::Malformed) => {
                return refuse(conn, handler, BadRequest::Malformed).await;
            }
        };
        let (body, body_too_large, resync) = match body {
            Body::Complete(b) => (b, false, true),
            Body::TooLarge { drained } => (Vec::new(), true, drained),
        };
        let mut req = head.req;
        req.body = body;
        req.peer = peer;
        req.body_too_large = body_too_large;
        let resp = handler.handle(req).await;
        let keep = keep_alive && resync && !*stop.borrow();
        if write_response(&mut conn, resp, is_head, keep)
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
async fn refuse<H: Handler>(mut conn: Conn, handler: &H, reason: BadRequest) {
    let resp = handler.bad_request(reason);
    if write_response(&mut conn, resp, false, false).await.is_err() {
        return;
    }
    let mut stream = conn.stream;
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

#[derive(Debug)]
enum Framing {
    None,
    Length(usize),
    Chunked,
}

#[derive(Debug)]
struct Head {
    len: usize,
    /// The request without its body yet.
    req: Request,
    framing: Framing,
    keep_alive: bool,
    expect_continue: bool,
}

/// Whether `haystack` contains `needle` (lowercase ASCII), ignoring ASCII case.
fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    haystack
        .as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

fn ends_with_ignore_case(haystack: &str, suffix: &str) -> bool {
    let (h, s) = (haystack.as_bytes(), suffix.as_bytes());
    h.len() >= s.len() && h[h.len() - s.len()..].eq_ignore_ascii_case(s)
}

fn parse_head(buf: &[u8]) -> Result<Option<Head>, ()> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(()),
    };
    let method = req.method.ok_or(())?;
    let target = req.path.ok_or(())?;
    let version = req.version.ok_or(())?;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));

    let mut text = String::with_capacity(len);
    let span = |text: &mut String, s: &str| {
        let start = text.len();
        text.push_str(s);
        start..text.len()
    };
    let method = span(&mut text, method);
    let path = span(&mut text, path);
    let query = span(&mut text, query);
    let mut spans = Vec::with_capacity(req.headers.len());
    let mut framing = Framing::None;
    let mut keep_alive = version == 1;
    let mut expect_continue = false;
    for h in req.headers.iter() {
        let value = match std::str::from_utf8(h.value) {
            Ok(v) => Cow::Borrowed(v),
            Err(_) => String::from_utf8_lossy(h.value),
        };
        let value = value.trim();
        if h.name.eq_ignore_ascii_case("content-length") {
            let n: usize = value.parse().map_err(|_| ())?;
            if matches!(framing, Framing::Length(m) if m != n) {
                return Err(());
            }
            if !matches!(framing, Framing::Chunked) {
                framing = Framing::Length(n);
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            if ends_with_ignore_case(value, "chunked") {
                framing = Framing::Chunked;
            } else {
                return Err(());
            }
        } else if h.name.eq_ignore_ascii_case("connection") {
            if contains_ignore_case(value, "close") {
                keep_alive = false;
            } else if contains_ignore_case(value, "keep-alive") {
                keep_alive = true;
            }
        } else if h.name.eq_ignore_ascii_case("expect") {
            expect_continue = value.eq_ignore_ascii_case("100-continue");
        }
        let name = span(&mut text, h.name);
        let value = span(&mut text, value);
        spans.push((name, value));
    }
    Ok(Some(Head {
        len,
        req: Request {
            text,
            method,
            path,
            query,
            headers: spans,
            body: Vec::new(),
            peer: SocketAddr::from(([0, 0, 0, 0], 0)),
            body_too_large: false,
        },
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

async fn read_body(conn: &mut Conn, framing: &Framing, max: usize) -> Result<Body, BodyError> {
    match *framing {
        Framing::None | Framing::Length(0) => Ok(Body::Complete(Vec::new())),
        Framing::Length(n) => {
            if n > max {
                if n > MAX_DRAIN_BYTES {
                    return Ok(Body::TooLarge { drained: false });
                }
                conn.fill(n).await?;
                conn.buf.drain(..n);
                return Ok(Body::TooLarge { drained: true });
            }
            conn.fill(n).await?;
            Ok(Body::Complete(conn.buf.drain(..n).collect()))
        }
        Framing::Chunked => read_chunked(conn, max).await,
    }
}

async fn read_chunked(conn: &mut Conn, max: usize) -> Result<Body, BodyError> {
    let mut body = Vec::new();
    let mut total = 0usize;
    loop {
        let (used, size) = loop {
            match httparse::parse_chunk_size(&conn.buf) {
                Ok(httparse::Status::Complete((used, size))) => break (used, size),
                Ok(httparse::Status::Partial) => {
                    if conn.buf.len() > 4096 {
                        return Err(BodyError::Malformed);
                    }
                    conn.fill(conn.buf.len() + 1).await?;
                }
                Err(_) => return Err(BodyError::Malformed),
            }
        };
        conn.buf.drain(..used);
        let size = usize::try_from(size).map_err(|_| BodyError::Malformed)?;
        if size == 0 {
            // Trailers, if any, end with an empty line.
            loop {
                let pos = loop {
                    if let Some(p) = conn.buf.windows(2).position(|w| w == b"\r\n") {
                        break p;
                    }
                    conn.fill(conn.buf.len() + 1).await?;
                };
                conn.buf.drain(..pos + 2);
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
        conn.fill(size + 2).await?;
        if &conn.buf[size..size + 2] != b"\r\n" {
            return Err(BodyError::Malformed);
        }
        if total <= max {
            body.extend_from_slice(&conn.buf[..size]);
        }
        conn.buf.drain(..size + 2);
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

/// Appends the decimal digits of `n`.
fn push_decimal(out: &mut Vec<u8>, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Writes the response with one write (head and body together).
async fn write_response(
    conn: &mut Conn,
    resp: Response,
    is_head: bool,
    keep_alive: bool,
) -> std::io::Result<()> {
    let out = &mut conn.out;
    out.clear();
    let reason = resp
        .reason
        .as_deref()
        .unwrap_or_else(|| reason_phrase(resp.status));
    out.extend_from_slice(b"HTTP/1.1 ");
    push_decimal(out, usize::from(resp.status));
    out.push(b' ');
    // A reason phrase may not contain CR or LF; Azure's texts never do, but be safe.
    out.extend(reason.bytes().filter(|b| *b != b'\r' && *b != b'\n'));
    out.extend_from_slice(b"\r\n");
    for (k, v) in &resp.headers {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let body_len = if is_head { 0 } else { resp.body.len() };
    out.extend_from_slice(b"Content-Length: ");
    push_decimal(out, body_len);
    out.extend_from_slice(b"\r\n");
    if !keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !is_head {
        out.extend_from_slice(&resp.body);
    }
    conn.stream.write_all(out).await?;
    // Keep a large response's buffer from staying with an idle connection.
    if out.capacity() > 64 * 1024 {
        *out = Vec::with_capacity(1024);
    }
    if !keep_alive {
        let _ = conn.stream.shutdown().await;
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
        assert_eq!(h.req.method(), "PUT");
        assert_eq!(h.req.path(), "/devstoreaccount1/q");
        assert_eq!(h.req.query(), "comp=metadata&x=1");
        assert!(h
            .req
            .headers()
            .any(|(k, v)| k == "x-ms-meta-Color" && v == "red"));
        assert_eq!(h.req.header("HOST"), Some("h"));
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
