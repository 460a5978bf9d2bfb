//! The HTTP/1.1 server connection, written for Hematite's HTTP fronts.
//!
//! Why not hyper: Azure metadata travels in header *names* (`x-ms-meta-Color`), and the Python SDK
//! keys metadata by the exact name it receives. The `http` crate lowercases names on the way in and
//! hyper offers no public way to read the original case or to write a chosen one. This module keeps
//! names as sent and writes them as given (`docs/decisions/0001-own-http1-layer.md`).
//!
//! It is also where a hostile client meets the server, so every wait has an end and every buffer
//! a bound (`docs/hostile-clients.md` gives the figures):
//! - Framing is strict (RFC 9112 §6): `Content-Length` is digits only and agrees with itself;
//!   `Transfer-Encoding` is exactly `chunked` or the request is refused (501) and the connection
//!   closed; both together are refused (400) and the connection closed, so no proxy in front
//!   can be made to see two requests where this server sees one. Two `Host` headers are refused;
//!   absolute-form targets are accepted (§3.2.2). Errors at this level get the answers of
//!   HTTP.sys, which fronts Azure Storage ([`transport_error`]).
//! - Deadlines: [`Limits`] gives the time allowed between requests, for a whole request head
//!   from its first byte, for a whole body, and the slowest rate at which a response may be
//!   taken (HTTP.sys's 150 B/s model). Per-read idle timers alone let a client trickle one
//!   byte a second forever.
//! - Memory: a pipelined request is not read until the previous response has been written; a
//!   head is at most [`MAX_HEAD_BYTES`], a body at most the front's limit (larger bodies up to
//!   [`MAX_DRAIN_BYTES`] are discarded as they arrive, not buffered); a response is written
//!   from its own buffer, not copied. Large responses hold a [`Reservation`] of the process-wide
//!   [`crate::budget::Budget`] until written.
//! - `Expect: 100-continue` is answered only after the handler admitted the request head
//!   (authenticated, length accepted), so an unauthenticated client cannot make the server read
//!   a large body.

use std::borrow::Cow;
use std::future::Future;
use std::net::SocketAddr;
use std::ops::Range;
use std::pin::Pin;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

use crate::budget::Reservation;
use crate::conns::{Conn, Phase};

/// The largest header block accepted (request line + headers).
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Bodies larger than the front's limit are read and discarded up to this much, so the client
/// sees the 413 answer instead of a reset; beyond it the connection is closed.
pub const MAX_DRAIN_BYTES: usize = 8 * 1024 * 1024;
/// Headers parsed without a heap allocation; more are parsed from the heap.
const STACK_HEADERS: usize = 64;
/// Room one read of the socket gets; an idle connection keeps this much at most.
const READ_CHUNK: usize = 4 * 1024;
/// A response body up to this size is copied behind its head and written with it in one call.
const COALESCE: usize = 16 * 1024;
/// The send rate is checked over windows of this many bytes: each must go out within
/// `SEND_WINDOW / min_send_rate` (27 s at 150 B/s).
const SEND_WINDOW: usize = 4096;
/// The longest chunk-size or trailer line of a chunked body.
const MAX_LINE: usize = 4096;
/// How long a refused connection is drained before it is closed.
const LINGER: Duration = Duration::from_secs(1);

/// The deadlines of a connection.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Between requests on a kept-alive connection (Azurite's fixed 5 s reset clients, #2053).
    pub idle: Duration,
    /// For a whole request head, from its first byte (HTTP.sys HeaderWait: 120 s).
    pub head: Duration,
    /// For a whole request body (HTTP.sys EntityBody: 120 s).
    pub body: Duration,
    /// The slowest a response may be taken, in bytes per second (HTTP.sys MinSendRate: 150).
    pub min_send_rate: u64,
    /// The largest body handed to the handler; larger ones are flagged `body_too_large`.
    pub max_body: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            idle: Duration::from_secs(120),
            head: Duration::from_secs(120),
            body: Duration::from_secs(120),
            min_send_rate: 150,
            max_body: 1024 * 1024,
        }
    }
}

impl Limits {
    fn send_window_time(&self) -> Duration {
        Duration::from_secs_f64(SEND_WINDOW as f64 / self.min_send_rate.max(1) as f64)
    }
}

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
    /// The authority of an absolute-form target, which replaces the Host header (RFC 9112
    /// §3.2.2).
    authority: Option<Range<usize>>,
    headers: Vec<(Range<usize>, Range<usize>)>,
    /// The declared `Content-Length`; `None` for a chunked body or none at all.
    pub content_length: Option<u64>,
    pub body: Vec<u8>,
    pub peer: SocketAddr,
    /// Whether the request came over TLS.
    pub tls: bool,
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

    /// The host the request is for: an absolute-form target's authority, else `Host`.
    pub fn host(&self) -> Option<&str> {
        match &self.authority {
            Some(r) => Some(&self.text[r.clone()]),
            None => self.header("Host"),
        }
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
#[derive(Debug, Default)]
pub struct Response {
    pub status: u16,
    pub reason: Option<String>,
    pub headers: Vec<(HeaderText, HeaderText)>,
    pub body: Vec<u8>,
    /// The share of the response budget this body holds until it is written.
    pub reservation: Option<Reservation>,
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

/// Answers a parsed request. Implemented by each HTTP front's router.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, req: Request) -> impl Future<Output = Response> + Send;

    /// Called before a request that sent `Expect: 100-continue` is invited to send its body
    /// (its `body` is still empty). `Some` answers it at once and closes the connection.
    fn admit(&self, req: &Request) -> impl Future<Output = Option<Response>> + Send {
        let _ = req;
        async { None }
    }
}

/// Why a request was refused before it reached the handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadRequest {
    /// Not HTTP/1.x, or a broken line, header or chunk.
    Malformed,
    /// The head is larger than [`MAX_HEAD_BYTES`].
    HeadTooLarge,
    /// A `Content-Length` that is not plain digits, or two that disagree.
    InvalidLength,
    /// `Content-Length` and `Transfer-Encoding` together.
    AmbiguousLength,
    /// A `Transfer-Encoding` other than exactly `chunked`.
    UnsupportedEncoding,
    /// More than one `Host`, or an empty absolute-form authority.
    InvalidHost,
}

/// The answer HTTP.sys, in front of Azure Storage, gives a request it cannot parse: a small
/// HTML page, `Server: Microsoft-HTTPAPI/2.0`, and the connection closed after it.
pub fn transport_error(reason: BadRequest) -> Response {
    let (status, title, heading, text) = match reason {
        BadRequest::Malformed | BadRequest::InvalidLength | BadRequest::AmbiguousLength => (
            400,
            "Bad Request",
            "Bad Request",
            "HTTP Error 400. The request is badly formed.",
        ),
        BadRequest::HeadTooLarge => (
            400,
            "Bad Request",
            "Bad Request - Request Too Long",
            "HTTP Error 400. The size of the request headers is too long.",
        ),
        BadRequest::UnsupportedEncoding => (
            501,
            "Not Implemented",
            "Not Implemented",
            "HTTP Error 501. The request transfer encoding type is not supported.",
        ),
        BadRequest::InvalidHost => (
            400,
            "Bad Request",
            "Bad Request - Invalid Hostname",
            "HTTP Error 400. The request hostname is invalid.",
        ),
    };
    let body = format!(
        "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.01//EN\"\"http://www.w3.org/TR/html4/strict.dtd\">\r\n<HTML><HEAD><TITLE>{title}</TITLE>\r\n<META HTTP-EQUIV=\"Content-Type\" Content=\"text/html; charset=us-ascii\"></HEAD>\r\n<BODY><h2>{heading}</h2>\r\n<hr><p>{text}</p>\r\n</BODY></HTML>\r\n"
    );
    let mut resp = Response::new(status)
        .header("Content-Type", "text/html; charset=us-ascii")
        .header("Server", "Microsoft-HTTPAPI/2.0");
    resp.body = body.into_bytes();
    resp
}

/// How a wait on the socket ended.
enum Wait {
    Data,
    /// The peer closed, the read or write failed, or the deadline passed.
    Closed,
    /// The server is stopping, or the registry shed this connection.
    Stopped,
}

type Signal = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One connection's socket, buffer and timer.
///
/// The timer is one per connection, moved only when it fires before the deadline in force or
/// when a nearer deadline comes, rather than registered and cancelled around every read.
struct Io<'c, S> {
    stream: S,
    /// Bytes read and not yet consumed.
    buf: Vec<u8>,
    conn: &'c Conn,
    limits: &'c Limits,
    timer: Pin<Box<Sleep>>,
    armed: Instant,
    /// Resolves when the server stops (or its stop sender is gone).
    stopped: Signal,
    stop: watch::Receiver<bool>,
}

impl<'c, S: AsyncRead + AsyncWrite + Unpin> Io<'c, S> {
    fn new(stream: S, conn: &'c Conn, limits: &'c Limits, stop: watch::Receiver<bool>) -> Self {
        let mut watch = stop.clone();
        let armed = Instant::now() + limits.idle;
        Io {
            stream,
            buf: Vec::new(),
            conn,
            limits,
            timer: Box::pin(tokio::time::sleep_until(armed)),
            armed,
            stopped: Box::pin(async move {
                if !*watch.borrow_and_update() {
                    let _ = watch.changed().await;
                }
            }),
            stop,
        }
    }

    /// Makes the timer fire no later than `deadline`.
    fn arm(&mut self, deadline: Instant) {
        if self.armed > deadline {
            self.armed = deadline;
            self.timer.as_mut().reset(deadline);
        }
    }

    /// Whether the timer firing means `deadline` has passed; if not, moves it there.
    fn expired(&mut self, deadline: Instant) -> bool {
        if Instant::now() >= deadline {
            return true;
        }
        self.armed = deadline;
        self.timer.as_mut().reset(deadline);
        false
    }

    /// Reads more bytes into `buf` by `deadline`; when `idle`, a server stop ends the wait too.
    async fn read_more(&mut self, deadline: Instant, idle: bool) -> Wait {
        // Checked first too: a shed connection whose client keeps sending would otherwise
        // always find the read ready before the shed signal.
        if self.conn.is_shed() {
            return Wait::Stopped;
        }
        if self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
            self.buf.reserve(READ_CHUNK.max(self.buf.len()));
        }
        self.arm(deadline);
        loop {
            tokio::select! {
                biased;
                r = self.stream.read_buf(&mut self.buf) => {
                    return match r {
                        Ok(0) | Err(_) => Wait::Closed,
                        Ok(_) => Wait::Data,
                    };
                }
                _ = self.conn.shed() => return Wait::Stopped,
                _ = &mut self.stopped, if idle => return Wait::Stopped,
                _ = self.timer.as_mut() => {
                    if self.expired(deadline) {
                        return Wait::Closed;
                    }
                }
            }
        }
    }

    /// Reads until `buf` holds at least `n` bytes, by `deadline`.
    async fn fill(&mut self, n: usize, deadline: Instant) -> Result<(), BodyError> {
        while self.buf.len() < n {
            match self.read_more(deadline, false).await {
                Wait::Data => {}
                Wait::Closed | Wait::Stopped => return Err(BodyError::Io),
            }
        }
        Ok(())
    }

    /// Reads until `buf` holds a line (of at most [`MAX_LINE`] bytes); returns where its `\n`
    /// is. Each read's bytes are scanned once, so a line trickled a byte at a time costs no
    /// more than one sent whole.
    async fn line(&mut self, deadline: Instant) -> Result<usize, BodyError> {
        let mut scanned = 0;
        loop {
            if let Some(i) = self.buf[scanned..].iter().position(|b| *b == b'\n') {
                return Ok(scanned + i);
            }
            scanned = self.buf.len();
            if scanned > MAX_LINE {
                return Err(BodyError::Malformed);
            }
            self.fill(scanned + 1, deadline).await?;
        }
    }

    /// Reads and throws away `n` bytes by `deadline`, holding at most one read's worth.
    async fn discard(&mut self, mut n: usize, deadline: Instant) -> Result<(), BodyError> {
        loop {
            let k = n.min(self.buf.len());
            self.buf.drain(..k);
            n -= k;
            if n == 0 {
                return Ok(());
            }
            match self.read_more(deadline, false).await {
                Wait::Data => {}
                Wait::Closed | Wait::Stopped => return Err(BodyError::Io),
            }
        }
    }

    /// Writes all of `data`, keeping to the minimum send rate.
    async fn write_paced(&mut self, data: &[u8], pace: &mut Pace) -> Wait {
        let mut at = 0;
        while at < data.len() {
            if self.conn.is_shed() {
                return Wait::Stopped;
            }
            let deadline = pace.deadline;
            let wrote = tokio::select! {
                biased;
                r = self.stream.write(&data[at..]) => r,
                _ = self.conn.shed() => return Wait::Stopped,
                _ = tokio::time::sleep_until(deadline) => return Wait::Closed,
            };
            match wrote {
                Ok(0) | Err(_) => return Wait::Closed,
                Ok(n) => {
                    at += n;
                    pace.sent(n, self.limits);
                }
            }
        }
        Wait::Data
    }

    /// Flushes what a TLS layer may still hold, keeping to the minimum send rate.
    async fn flush_paced(&mut self, pace: &Pace) -> Wait {
        tokio::select! {
            biased;
            r = self.stream.flush() => if r.is_ok() { Wait::Data } else { Wait::Closed },
            _ = self.conn.shed() => Wait::Stopped,
            _ = tokio::time::sleep_until(pace.deadline) => Wait::Closed,
        }
    }
}

/// The send-rate clock of one response: each [`SEND_WINDOW`] bytes must be taken by the
/// client within the window's time.
struct Pace {
    window_sent: usize,
    deadline: Instant,
}

impl Pace {
    fn start(limits: &Limits) -> Self {
        Pace {
            window_sent: 0,
            deadline: Instant::now() + limits.send_window_time(),
        }
    }

    fn sent(&mut self, n: usize, limits: &Limits) {
        self.window_sent += n;
        if self.window_sent >= SEND_WINDOW {
            self.window_sent = 0;
            self.deadline = Instant::now() + limits.send_window_time();
        }
    }
}

/// Serves one connection until the peer closes it, it times out, it is shed, or `stop` turns
/// true.
pub async fn serve_connection<S, H>(
    stream: S,
    peer: SocketAddr,
    tls: bool,
    handler: &H,
    limits: &Limits,
    conn: &Conn,
    stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
    H: Handler,
{
    let mut io = Io::new(stream, conn, limits, stop);
    loop {
        let head = match read_head(&mut io).await {
            Ok(Some(h)) => h,
            Ok(None) => return,
            Err(reason) => return refuse(io, transport_error(reason)).await,
        };
        let is_head = head.req.method() == "HEAD";
        let mut req = head.req;
        req.peer = peer;
        req.tls = tls;
        if head.expect_continue {
            conn.set_phase(Phase::Handling);
            if let Some(resp) = handler.admit(&req).await {
                return refuse(io, resp).await;
            }
            let mut pace = Pace::start(limits);
            let sent = match io
                .write_paced(b"HTTP/1.1 100 Continue\r\n\r\n", &mut pace)
                .await
            {
                // Flushed, or a TLS layer could keep it until the body it invites arrives.
                Wait::Data => io.flush_paced(&pace).await,
                other => other,
            };
            if !matches!(sent, Wait::Data) {
                return;
            }
        }
        conn.set_phase(Phase::Body);
        let body = match read_body(&mut io, &head.framing).await {
            Ok(b) => b,
            Err(BodyError::Io) => return,
            Err(BodyError::Malformed) => {
                return refuse(io, transport_error(BadRequest::Malformed)).await
            }
        };
        let resync = match body {
            Body::Complete(b) => {
                req.body = b;
                true
            }
            Body::TooLarge { drained } => {
                req.body_too_large = true;
                drained
            }
        };
        conn.set_phase(Phase::Handling);
        let resp = handler.handle(req).await;
        let keep = head.keep_alive && resync && !*io.stop.borrow();
        conn.set_phase(Phase::Writing);
        if !matches!(
            write_response(&mut io, resp, is_head, keep).await,
            Wait::Data
        ) || !keep
        {
            return;
        }
    }
}

/// Reads the next request head: waits up to the idle time for its first byte, then up to the
/// head time for the rest. `Ok(None)` when the connection should just close.
async fn read_head<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut Io<'_, S>,
) -> Result<Option<Head>, BadRequest> {
    let mut deadline = if io.buf.is_empty() {
        io.conn.set_phase(Phase::Idle);
        if io.buf.capacity() > READ_CHUNK {
            io.buf = Vec::new();
        }
        Instant::now() + io.limits.idle
    } else {
        io.conn.set_phase(Phase::Head);
        Instant::now() + io.limits.head
    };
    // How far the buffer is known to hold no end of head: a head trickled a byte at a time is
    // then scanned once, not once per byte (which made a 64 KiB head cost 2 GB of parsing).
    let mut scanned = 0;
    loop {
        let parsed = if has_head_end(&io.buf, &mut scanned) {
            parse_head(&io.buf)?
        } else {
            None
        };
        match parsed {
            Some(h) if h.len <= MAX_HEAD_BYTES => {
                io.buf.drain(..h.len);
                return Ok(Some(h));
            }
            // Checked on complete heads too: a fast client delivers a large head whole.
            Some(_) => return Err(BadRequest::HeadTooLarge),
            None if io.buf.len() > MAX_HEAD_BYTES => return Err(BadRequest::HeadTooLarge),
            None => {}
        }
        let idle = io.buf.is_empty();
        match io.read_more(deadline, idle).await {
            Wait::Data => {
                if idle {
                    io.conn.set_phase(Phase::Head);
                    deadline = Instant::now() + io.limits.head;
                }
            }
            Wait::Closed | Wait::Stopped => return Ok(None),
        }
    }
}

/// Whether `buf` holds an empty line (`\n\n` or `\n\r\n`), which ends a head, looking only
/// past `scanned` (and the two bytes before it); moves `scanned` to the end.
fn has_head_end(buf: &[u8], scanned: &mut usize) -> bool {
    let from = scanned.saturating_sub(2);
    *scanned = buf.len();
    buf[from..]
        .windows(2)
        .enumerate()
        .any(|(i, w)| w == b"\n\n" || (w == b"\n\r" && buf.get(from + i + 2) == Some(&b'\n')))
}

/// Answers a request that cannot be served and closes the connection without losing the answer.
///
/// Closing a socket that still holds unread client data makes the kernel send a reset, which
/// can destroy the response before the client reads it. So, like nginx's lingering close, shut
/// the write side and discard what still arrives, for a bounded time and amount.
async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(mut io: Io<'_, S>, resp: Response) {
    io.conn.set_phase(Phase::Writing);
    if !matches!(
        write_response(&mut io, resp, false, false).await,
        Wait::Data
    ) {
        return;
    }
    let deadline = Instant::now() + LINGER;
    let _ = io.discard(MAX_DRAIN_BYTES, deadline).await;
}

#[derive(Debug)]
enum Framing {
    None,
    Length(u64),
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

/// Whether a comma-separated header value lists `token`, ignoring ASCII case.
fn lists_token(value: &str, token: &str) -> bool {
    value
        .split(',')
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// A `Content-Length` value: one to nineteen ASCII digits, nothing else (RFC 9110 §8.6).
fn parse_length(value: &str) -> Option<u64> {
    let digits = value.as_bytes();
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    value.parse().ok()
}

/// Splits an absolute-form target (`http://host:port/path?query`) into authority and the rest.
fn split_absolute(target: &str) -> Option<(&str, &str)> {
    let scheme_len = ["http://", "https://"].iter().find_map(|s| {
        target
            .get(..s.len())
            .filter(|p| p.eq_ignore_ascii_case(s))
            .map(|_| s.len())
    })?;
    let rest = &target[scheme_len..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Some((&rest[..end], &rest[end..]))
}

/// The head parser for the fuzz targets: the length of a complete, accepted head.
#[doc(hidden)]
pub fn parse_head_for_fuzzing(buf: &[u8]) -> Result<Option<usize>, BadRequest> {
    parse_head(buf).map(|h| h.map(|h| h.len))
}

fn parse_head(buf: &[u8]) -> Result<Option<Head>, BadRequest> {
    let mut headers = [httparse::EMPTY_HEADER; STACK_HEADERS];
    match parse_head_with(buf, &mut headers) {
        Err(Some(httparse::Error::TooManyHeaders)) => {
            // The head's size bounds the count, not a number chosen here: every header line
            // ends in a newline.
            let lines = buf
                .iter()
                .take(MAX_HEAD_BYTES + 4)
                .filter(|b| **b == b'\n')
                .count();
            let mut headers = vec![httparse::EMPTY_HEADER; lines];
            parse_head_with(buf, &mut headers).unwrap_or(Err(BadRequest::Malformed))
        }
        Err(_) => Err(BadRequest::Malformed),
        Ok(Ok(h)) => Ok(h),
        Ok(Err(reason)) => Err(reason),
    }
}

type Parsed = Result<Option<Head>, BadRequest>;

/// Parses with the given header storage; the outer error is httparse's, the inner one ours.
fn parse_head_with<'b>(
    buf: &'b [u8],
    storage: &mut [httparse::Header<'b>],
) -> Result<Parsed, Option<httparse::Error>> {
    let mut req = httparse::Request::new(storage);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(Ok(None)),
        Err(e) => return Err(Some(e)),
    };
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Err(None);
    };
    Ok(build_head(len, method, target, version, req.headers))
}

fn build_head(
    len: usize,
    method: &str,
    target: &str,
    version: u8,
    headers: &[httparse::Header<'_>],
) -> Parsed {
    let (authority, target) = match split_absolute(target) {
        Some(("", _)) => return Err(BadRequest::InvalidHost),
        Some((a, rest)) => (Some(a), if rest.is_empty() { "/" } else { rest }),
        None => (None, target),
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let path = if path.is_empty() { "/" } else { path };

    let mut text = String::with_capacity(len);
    let span = |text: &mut String, s: &str| {
        let start = text.len();
        text.push_str(s);
        start..text.len()
    };
    let method = span(&mut text, method);
    let path = span(&mut text, path);
    let query = span(&mut text, query);
    let authority = authority.map(|a| span(&mut text, a));
    let mut spans = Vec::with_capacity(headers.len());
    let mut length: Option<u64> = None;
    let mut encodings = 0usize;
    let mut chunked = false;
    let mut hosts = 0usize;
    let mut keep_alive = version == 1;
    let mut expect_continue = false;
    for h in headers {
        let value = match std::str::from_utf8(h.value) {
            Ok(v) => Cow::Borrowed(v),
            Err(_) => String::from_utf8_lossy(h.value),
        };
        let value = value.trim();
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            let n = parse_length(value).ok_or(BadRequest::InvalidLength)?;
            if length.is_some_and(|m| m != n) {
                return Err(BadRequest::InvalidLength);
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            encodings += 1;
            chunked = value.eq_ignore_ascii_case("chunked");
        } else if name.eq_ignore_ascii_case("host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case("connection") {
            if lists_token(value, "close") {
                keep_alive = false;
            } else if lists_token(value, "keep-alive") {
                keep_alive = true;
            }
        } else if name.eq_ignore_ascii_case("expect") {
            expect_continue = version == 1 && value.eq_ignore_ascii_case("100-continue");
        }
        let name = span(&mut text, name);
        let value = span(&mut text, value);
        spans.push((name, value));
    }
    if hosts > 1 {
        return Err(BadRequest::InvalidHost);
    }
    let framing = match (encodings, length) {
        (0, None) => Framing::None,
        (0, Some(n)) => Framing::Length(n),
        (_, Some(_)) => return Err(BadRequest::AmbiguousLength),
        (_, None) if version == 0 => return Err(BadRequest::Malformed),
        (1, None) if chunked => Framing::Chunked,
        (_, None) => return Err(BadRequest::UnsupportedEncoding),
    };
    Ok(Some(Head {
        len,
        req: Request {
            text,
            method,
            path,
            query,
            authority,
            headers: spans,
            content_length: length,
            body: Vec::new(),
            peer: SocketAddr::from(([0, 0, 0, 0], 0)),
            tls: false,
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

async fn read_body<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut Io<'_, S>,
    framing: &Framing,
) -> Result<Body, BodyError> {
    let deadline = Instant::now() + io.limits.body;
    let max = io.limits.max_body;
    match *framing {
        Framing::None | Framing::Length(0) => Ok(Body::Complete(Vec::new())),
        Framing::Length(n) => {
            let Ok(n) = usize::try_from(n) else {
                return Ok(Body::TooLarge { drained: false });
            };
            if n > max {
                if n > MAX_DRAIN_BYTES {
                    return Ok(Body::TooLarge { drained: false });
                }
                io.discard(n, deadline).await?;
                return Ok(Body::TooLarge { drained: true });
            }
            io.fill(n, deadline).await?;
            Ok(Body::Complete(io.buf.drain(..n).collect()))
        }
        Framing::Chunked => read_chunked(io, max, deadline).await,
    }
}

async fn read_chunked<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut Io<'_, S>,
    max: usize,
    deadline: Instant,
) -> Result<Body, BodyError> {
    let mut body = Vec::new();
    let mut total = 0usize;
    loop {
        io.line(deadline).await?;
        let (used, size) = match httparse::parse_chunk_size(&io.buf) {
            Ok(httparse::Status::Complete(done)) => done,
            Ok(httparse::Status::Partial) | Err(_) => return Err(BodyError::Malformed),
        };
        io.buf.drain(..used);
        let size = usize::try_from(size).map_err(|_| BodyError::Malformed)?;
        if size == 0 {
            // Trailers, if any, end with an empty line.
            loop {
                let end = io.line(deadline).await?;
                if end == 0 || io.buf[end - 1] != b'\r' {
                    return Err(BodyError::Malformed);
                }
                io.buf.drain(..=end);
                if end == 1 {
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
        if total <= max {
            io.fill(size + 2, deadline).await?;
            body.extend_from_slice(&io.buf[..size]);
            io.buf.drain(..size);
        } else {
            // Over the limit: nothing more is kept, and the chunk is not buffered whole.
            body = Vec::new();
            io.discard(size, deadline).await?;
            io.fill(2, deadline).await?;
        }
        if &io.buf[..2] != b"\r\n" {
            return Err(BodyError::Malformed);
        }
        io.buf.drain(..2);
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
        501 => "Not Implemented",
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

/// Writes the response: a small one with one write, a large one as its head and then its body
/// from the response's own buffer, at no less than the minimum send rate.
async fn write_response<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut Io<'_, S>,
    resp: Response,
    is_head: bool,
    keep_alive: bool,
) -> Wait {
    let body: &[u8] = if is_head { &[] } else { &resp.body };
    let mut out = Vec::with_capacity(256 + resp.headers.len() * 48 + body.len().min(COALESCE));
    let reason = resp
        .reason
        .as_deref()
        .unwrap_or_else(|| reason_phrase(resp.status));
    out.extend_from_slice(b"HTTP/1.1 ");
    push_decimal(&mut out, usize::from(resp.status));
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
    out.extend_from_slice(b"Content-Length: ");
    push_decimal(&mut out, body.len());
    out.extend_from_slice(b"\r\n");
    if !keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    let coalesced = body.len() <= COALESCE;
    if coalesced {
        out.extend_from_slice(body);
    }
    let mut pace = Pace::start(io.limits);
    let mut done = io.write_paced(&out, &mut pace).await;
    if matches!(done, Wait::Data) && !coalesced {
        done = io.write_paced(body, &mut pace).await;
    }
    if matches!(done, Wait::Data) {
        done = io.flush_paced(&pace).await;
    }
    if matches!(done, Wait::Data) && !keep_alive {
        let _ = tokio::time::timeout(Duration::from_secs(1), io.stream.shutdown()).await;
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &[u8]) -> Head {
        parse_head(raw).expect("parses").expect("complete")
    }

    #[test]
    fn head_keeps_header_case_and_splits_query() {
        let raw = b"PUT /devstoreaccount1/q?comp=metadata&x=1 HTTP/1.1\r\nHost: h\r\nx-ms-meta-Color: red \r\nContent-Length: 0\r\n\r\n";
        let h = head(raw);
        assert_eq!(h.len, raw.len());
        assert_eq!(h.req.method(), "PUT");
        assert_eq!(h.req.path(), "/devstoreaccount1/q");
        assert_eq!(h.req.query(), "comp=metadata&x=1");
        assert!(h
            .req
            .headers()
            .any(|(k, v)| k == "x-ms-meta-Color" && v == "red"));
        assert_eq!(h.req.header("HOST"), Some("h"));
        assert_eq!(h.req.host(), Some("h"));
        assert!(h.keep_alive);
        assert!(matches!(h.framing, Framing::Length(0)));
    }

    #[test]
    fn head_incomplete_and_malformed() {
        assert!(matches!(parse_head(b"GET / HTTP/1.1\r\nHost"), Ok(None)));
        let h = head(b"GET / HTTP/1.0\r\n\r\n");
        assert!(!h.keep_alive, "HTTP/1.0 closes by default");
        assert!(parse_head(b"NOT HTTP AT ALL\r\n\r\n").is_err());
    }

    #[test]
    fn framing_is_strict() {
        // Each of these let a front-end proxy and this server disagree on where a request
        // ends: the bytes after the body would have been served as a second request.
        let refused: &[(&[u8], BadRequest)] = &[
            (b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", BadRequest::AmbiguousLength),
            (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", BadRequest::AmbiguousLength),
            (b"POST / HTTP/1.1\r\nTransfer-Encoding: notchunked\r\n\r\n", BadRequest::UnsupportedEncoding),
            (b"POST / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n", BadRequest::UnsupportedEncoding),
            (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", BadRequest::UnsupportedEncoding),
            (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", BadRequest::UnsupportedEncoding),
            (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", BadRequest::UnsupportedEncoding),
            (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", BadRequest::Malformed),
            (b"POST / HTTP/1.1\r\nContent-Length: +57\r\n\r\n", BadRequest::InvalidLength),
            (b"POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n", BadRequest::InvalidLength),
            (b"POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n", BadRequest::InvalidLength),
            (b"POST / HTTP/1.1\r\nContent-Length: \r\n\r\n", BadRequest::InvalidLength),
            (b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", BadRequest::InvalidLength),
            (b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", BadRequest::InvalidLength),
            (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", BadRequest::InvalidHost),
            (b"GET http:///q HTTP/1.1\r\n\r\n", BadRequest::InvalidHost),
        ];
        for (raw, why) in refused {
            assert_eq!(
                parse_head(raw).err(),
                Some(*why),
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
        assert!(matches!(
            head(b"POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n").framing,
            Framing::Chunked
        ));
        assert!(matches!(
            head(b"POST / HTTP/1.1\r\nContent-Length: 7\r\nContent-Length: 7\r\n\r\n").framing,
            Framing::Length(7)
        ));
    }

    #[test]
    fn absolute_form_targets_replace_the_host() {
        let h = head(b"GET http://acct.queue.example:10001/q/messages?peekonly=true HTTP/1.1\r\nHost: other\r\n\r\n");
        assert_eq!(h.req.path(), "/q/messages");
        assert_eq!(h.req.query(), "peekonly=true");
        assert_eq!(h.req.host(), Some("acct.queue.example:10001"));
        let h = head(b"GET HTTPS://127.0.0.1:10001?comp=list HTTP/1.1\r\n\r\n");
        assert_eq!((h.req.path(), h.req.query()), ("/", "comp=list"));
    }

    #[test]
    fn header_count_follows_the_byte_limit() {
        // 150 metadata pairs (2.4 KB) were refused for exceeding a fixed count of headers.
        let mut raw = b"PUT /a/q?comp=metadata HTTP/1.1\r\nHost: h\r\n".to_vec();
        for i in 0..150 {
            raw.extend_from_slice(format!("x-ms-meta-k{i}: v\r\n").as_bytes());
        }
        raw.extend_from_slice(b"\r\n");
        let h = head(&raw);
        assert_eq!(h.req.headers().count(), 151);
        assert_eq!(h.req.header("x-ms-meta-k149"), Some("v"));
    }

    #[test]
    fn the_end_of_a_head_is_found_across_reads() {
        let whole = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n";
        for split in 1..whole.len() {
            let mut scanned = 0;
            let early = has_head_end(&whole[..split], &mut scanned);
            assert!(!early || split >= whole.len() - 1, "{split}");
            assert!(has_head_end(whole, &mut scanned) || early, "{split}");
        }
        assert!(has_head_end(b"GET / HTTP/1.1\nHost: h\n\n", &mut 0));
        assert!(!has_head_end(b"GET / HTTP/1.1\r\nHost: h\r\n", &mut 0));
    }

    #[test]
    fn connection_tokens_are_matched_whole() {
        assert!(head(b"GET / HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\n\r\n").keep_alive);
        assert!(!head(b"GET / HTTP/1.1\r\nConnection: Close\r\n\r\n").keep_alive);
        assert!(head(b"GET / HTTP/1.1\r\nConnection: closer\r\n\r\n").keep_alive);
    }

    #[test]
    fn transport_errors_have_httpsys_bodies() {
        // The lengths HTTP.sys sends for these pages, as captured from Azure.
        assert_eq!(
            transport_error(BadRequest::UnsupportedEncoding).body.len(),
            343
        );
        assert_eq!(transport_error(BadRequest::HeadTooLarge).body.len(), 346);
        assert_eq!(transport_error(BadRequest::Malformed).body.len(), 311);
        assert_eq!(transport_error(BadRequest::InvalidHost).body.len(), 334);
    }
}
