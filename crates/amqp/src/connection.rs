//! One AMQP connection from its first byte to its close: the SASL exchange, the open, then the
//! loop that reads frames, runs link tasks' commands, writes, and keeps the connection alive.
//!
//! Each step of the handshake runs under one deadline, so a client that connects and trickles
//! bytes holds a connection for no longer than that. After the open, a peer that sends
//! nothing for the idle timeout this side announced is closed; this side sends an empty frame
//! whenever it has been silent for half the peer's. While the output waiting for the peer
//! is over a bound, the loop reads neither frames nor commands, so a peer that does not read
//! cannot grow the server's memory.
//!
//! The SASL outcome is written and flushed on its own; this side's AMQP header follows only
//! after the client's, and the open only after the client's open: the JS client (rhea) stalls
//! when the outcome, header and open come in one segment (`docs/compatibility.md`).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use fe2o3_amqp_types::definitions::{AmqpError, ConnectionError, Error};
use fe2o3_amqp_types::performatives::{Close, Open, Performative};
use fe2o3_amqp_types::sasl::{SaslCode, SaslInit, SaslMechanisms, SaslOutcome};
use serde_amqp::primitives::{Array, Symbol};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::{sleep, sleep_until, timeout, Instant};

use crate::endpoint::{error, Endpoint, Fatal, Limits};
use crate::frame::{
    decode_performative, decode_sasl, next_frame, write_amqp, write_heartbeat, write_mechanisms,
    write_outcome, FrameKind, SaslFrame, AMQP_HEADER, MIN_MAX_FRAME_SIZE, SASL_HEADER,
};
use crate::inbound::{InboundBudget, Meter};
use crate::link::{Attaching, Command};

/// What this side announces and enforces on every connection.
#[derive(Debug, Clone)]
pub struct Config {
    pub container_id: String,
    /// The largest frame this side accepts.
    pub max_frame_size: u32,
    /// Close a peer silent this long after the open (announced as idle-time-out).
    pub idle_timeout: Duration,
    /// The SASL exchange and the open must be done within this.
    pub handshake_timeout: Duration,
    /// SASL mechanisms offered, in order of preference.
    pub mechanisms: Vec<&'static str>,
    pub limits: Limits,
    /// Stop reading while this many bytes wait to be written.
    pub max_pending_output: usize,
    /// Stop reading while the peer's messages hold this many bytes in memory (being assembled,
    /// or handed to the service and not yet dropped by it).
    pub max_inbound_per_connection: usize,
    /// The same, across every connection sharing this budget.
    pub inbound: Arc<InboundBudget>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            container_id: "hematite".to_owned(),
            max_frame_size: 256 * 1024,
            idle_timeout: Duration::from_secs(240),
            handshake_timeout: Duration::from_secs(30),
            mechanisms: vec!["MSSBCBS", "ANONYMOUS", "PLAIN"],
            limits: Limits {
                channel_max: 255,
                handle_max: 255,
                session_window: 4096,
                max_links: 1024,
            },
            max_pending_output: 4 << 20,
            max_inbound_per_connection: 32 << 20,
            inbound: InboundBudget::new(1 << 30),
        }
    }
}

/// Who is on the other end, once open.
#[derive(Debug, Clone)]
pub struct Peer {
    pub addr: SocketAddr,
    pub mechanism: String,
    /// PLAIN's user name and password.
    pub plain: Option<(String, String)>,
    /// The host name from the open (or from sasl-init when the open has none).
    pub hostname: Option<String>,
    pub container_id: String,
}

/// What a broker does with connections and links.
pub trait Service: Send + Sync + 'static {
    /// Per-connection state shared by the connection's link tasks.
    type Connection: Send + Sync + 'static;

    /// Whether SASL `init` is accepted (the mechanism is one of those offered).
    fn authenticate(&self, init: &SaslInit) -> bool;

    /// The peer's open arrived; refusing closes the connection with the error.
    fn connect(&self, peer: &Peer) -> Result<Arc<Self::Connection>, Error>;

    /// A link was attached: accept or refuse it, now or from a task.
    fn attach(&self, connection: &Arc<Self::Connection>, link: Attaching);
}

/// Why a connection ended before it was open.
#[derive(Debug, thiserror::Error)]
enum Handshake {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("handshake timed out")]
    Timeout,
    #[error("{0}")]
    Protocol(String),
}

/// Buffers a connection's input and reads whole frames from it.
struct Input {
    buf: Vec<u8>,
    start: usize,
}

impl Input {
    fn pending(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
    }

    fn compact(&mut self) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
    }

    async fn fill<R: AsyncRead + Unpin>(&mut self, r: &mut R) -> Result<(), Handshake> {
        self.compact();
        self.buf.reserve(4096);
        if r.read_buf(&mut self.buf).await? == 0 {
            return Err(Handshake::Protocol(
                "peer closed during the handshake".into(),
            ));
        }
        Ok(())
    }

    async fn header<R: AsyncRead + Unpin>(&mut self, r: &mut R) -> Result<[u8; 8], Handshake> {
        while self.pending().len() < 8 {
            self.fill(r).await?;
        }
        let mut h = [0u8; 8];
        h.copy_from_slice(&self.pending()[..8]);
        self.consume(8);
        Ok(h)
    }

    /// The next frame's kind and body.
    async fn frame<R: AsyncRead + Unpin>(
        &mut self,
        r: &mut R,
        max: u32,
    ) -> Result<(FrameKind, Vec<u8>), Handshake> {
        loop {
            let found = next_frame(self.pending(), max)
                .map_err(|e| Handshake::Protocol(e.to_string()))?
                .map(|(f, used)| (f.kind, f.body.to_vec(), used));
            match found {
                // Heartbeats may come at any time.
                Some((_, body, used)) if body.is_empty() => self.consume(used),
                Some((kind, body, used)) => {
                    self.consume(used);
                    return Ok((kind, body));
                }
                None => self.fill(r).await?,
            }
        }
    }
}

async fn write_now<W: AsyncWrite + Unpin>(w: &mut W, bytes: &[u8]) -> std::io::Result<()> {
    w.write_all(bytes).await?;
    w.flush().await
}

/// The SASL exchange; returns the mechanism chosen, PLAIN's credentials and sasl-init's
/// host name.
async fn sasl<S: Service, IO: AsyncRead + AsyncWrite + Unpin>(
    io: &mut IO,
    input: &mut Input,
    service: &S,
    config: &Config,
) -> Result<(String, Option<(String, String)>, Option<String>), Handshake> {
    let header = input.header(io).await?;
    if header != SASL_HEADER {
        // A header this side does not speak: answer with the one it does, and close
        // (part 2, §2.2).
        write_now(io, &SASL_HEADER).await?;
        return Err(Handshake::Protocol("client did not start with SASL".into()));
    }
    let mut out = SASL_HEADER.to_vec();
    let mechanisms = config.mechanisms.iter().map(|m| Symbol::from(*m)).collect();
    write_mechanisms(
        &mut out,
        &SaslMechanisms {
            sasl_server_mechanisms: Array(mechanisms),
        },
    );
    write_now(io, &out).await?;
    let (kind, body) = input.frame(io, MIN_MAX_FRAME_SIZE * 128).await?;
    let init = match (kind, decode_sasl(&body)) {
        (FrameKind::Sasl, Ok(SaslFrame::Init(init))) => init,
        _ => return Err(Handshake::Protocol("expected sasl-init".into())),
    };
    let offered = config.mechanisms.contains(&init.mechanism.as_str());
    let ok = offered && service.authenticate(&init);
    let mut out = Vec::new();
    let code = if ok { SaslCode::Ok } else { SaslCode::Auth };
    write_outcome(
        &mut out,
        &SaslOutcome {
            code,
            additional_data: None,
        },
    );
    write_now(io, &out).await?;
    if !ok {
        return Err(Handshake::Protocol("SASL authentication failed".into()));
    }
    let plain = (init.mechanism.as_str() == "PLAIN")
        .then(|| init.initial_response.as_ref().and_then(|r| parse_plain(r)))
        .flatten();
    Ok((init.mechanism.0.clone(), plain, init.hostname))
}

/// PLAIN's message: authzid NUL authcid NUL passwd (RFC 4616).
fn parse_plain(response: &[u8]) -> Option<(String, String)> {
    let mut parts = response.split(|b| *b == 0);
    let _authzid = parts.next()?;
    let user = std::str::from_utf8(parts.next()?).ok()?;
    let pass = std::str::from_utf8(parts.next()?).ok()?;
    Some((user.to_owned(), pass.to_owned()))
}

/// The AMQP header and the peer's open; returns it with the open this side answers.
async fn open<IO: AsyncRead + AsyncWrite + Unpin>(
    io: &mut IO,
    input: &mut Input,
    config: &Config,
) -> Result<Open, Handshake> {
    let header = input.header(io).await?;
    write_now(io, &AMQP_HEADER).await?;
    if header != AMQP_HEADER {
        return Err(Handshake::Protocol(
            "expected the AMQP header after SASL".into(),
        ));
    }
    let (kind, body) = input.frame(io, config.max_frame_size).await?;
    match (kind, decode_performative(&body)) {
        (FrameKind::Amqp, Ok((Performative::Open(open), _))) => Ok(open),
        _ => Err(Handshake::Protocol("expected open".into())),
    }
}

/// Serves one connection until it closes, the peer goes quiet, or `stop` resolves.
pub async fn serve<S: Service, IO: AsyncRead + AsyncWrite + Unpin + Send>(
    mut io: IO,
    addr: SocketAddr,
    service: Arc<S>,
    config: Arc<Config>,
    stop: impl Future<Output = ()>,
) {
    let mut input = Input {
        buf: Vec::new(),
        start: 0,
    };
    let handshake = async {
        let (mechanism, plain, sasl_host) = sasl(&mut io, &mut input, &*service, &config).await?;
        let peer_open = open(&mut io, &mut input, &config).await?;
        Ok::<_, Handshake>((mechanism, plain, sasl_host, peer_open))
    };
    let (mechanism, plain, sasl_host, peer_open) =
        match timeout(config.handshake_timeout, handshake).await {
            Ok(Ok(done)) => done,
            Ok(Err(e)) => {
                tracing::debug!(%addr, error = %e, "AMQP handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%addr, error = %Handshake::Timeout, "AMQP handshake failed");
                return;
            }
        };
    let peer = Peer {
        addr,
        mechanism,
        plain,
        hostname: peer_open.hostname.clone().or(sasl_host),
        container_id: peer_open.container_id.clone(),
    };
    let mut out = Vec::new();
    let connection = match service.connect(&peer) {
        Ok(c) => c,
        Err(e) => {
            write_amqp(&mut out, 0, &our_open(&config, &peer_open), &[]);
            write_amqp(
                &mut out,
                0,
                &Performative::Close(Close { error: Some(e) }),
                &[],
            );
            let _ = timeout(Duration::from_secs(1), write_now(&mut io, &out)).await;
            return;
        }
    };
    write_amqp(&mut out, 0, &our_open(&config, &peer_open), &[]);
    if write_now(&mut io, &out).await.is_err() {
        return;
    }
    let running = Running::new(&config, &peer_open, input);
    running.run(io, service, connection, stop).await;
}

fn our_open(config: &Config, peer: &Open) -> Performative {
    Performative::Open(Open {
        container_id: config.container_id.clone(),
        hostname: peer.hostname.clone(),
        max_frame_size: config.max_frame_size.into(),
        channel_max: config.limits.channel_max.into(),
        idle_time_out: Some(config.idle_timeout.as_millis().min(u32::MAX as u128) as u32),
        outgoing_locales: None,
        incoming_locales: None,
        offered_capabilities: None,
        desired_capabilities: None,
        properties: None,
    })
}

/// Commands taken per turn of the loop before it looks at the socket again.
const COMMAND_BATCH: usize = 256;
/// The fastest heartbeat sent, whatever idle timeout the peer asks for.
const MIN_HEARTBEAT: Duration = Duration::from_secs(1);
/// How often a connection that stopped reading for its inbound limit looks again.
const INBOUND_POLL: Duration = Duration::from_millis(20);

/// The connection after the open.
struct Running {
    config: Config,
    input: Input,
    endpoint: Endpoint,
    commands: mpsc::Receiver<Command>,
    written: usize,
    /// Send an empty frame when silent this long (half the peer's idle timeout).
    heartbeat: Option<Duration>,
    last_read: Instant,
    last_write: Instant,
}

impl Running {
    fn new(config: &Config, peer: &Open, input: Input) -> Self {
        let (tx, rx) = mpsc::channel(1024);
        let peer_max = peer.max_frame_size.0.max(MIN_MAX_FRAME_SIZE);
        let mut limits = config.limits.clone();
        limits.channel_max = limits.channel_max.min(peer.channel_max.0);
        let now = Instant::now();
        Running {
            config: config.clone(),
            input,
            endpoint: Endpoint::new(limits, peer_max, tx)
                .with_meter(Meter::new(config.inbound.clone())),
            commands: rx,
            written: 0,
            heartbeat: peer
                .idle_time_out
                .filter(|ms| *ms > 0)
                // Half the peer's timeout, but not faster than once a second: an idle-time-out
                // of 1 ms would otherwise make this loop write empty frames without end.
                .map(|ms| Duration::from_millis(u64::from(ms) / 2).max(MIN_HEARTBEAT)),
            last_read: now,
            last_write: now,
        }
    }

    async fn run<S: Service, IO: AsyncRead + AsyncWrite + Unpin + Send>(
        mut self,
        io: IO,
        service: Arc<S>,
        connection: Arc<S::Connection>,
        stop: impl Future<Output = ()>,
    ) {
        let (mut reader, mut writer) = tokio::io::split(io);
        tokio::pin!(stop);
        // Frames that came in with the open (a client may write begin and attach before it
        // has our open) are handled before anything else is read: nothing more may come.
        let mut buffered = true;
        let ending: Option<Error> = loop {
            if std::mem::take(&mut buffered) {
                match self.frames() {
                    Ok(()) => {}
                    Err(Fatal::PeerClosed) => break None,
                    Err(Fatal::Error(e)) => break Some(e),
                }
            }
            for attaching in self.endpoint.attaches.drain(..) {
                service.attach(&connection, attaching);
            }
            self.endpoint.flush();
            let out_len = self.endpoint.out.len();
            let room = out_len - self.written < self.config.max_pending_output;
            // While the peer's messages hold too much, nothing more is read; the service
            // frees bytes as it stores them, which no frame from the peer is needed for.
            let limit = self
                .endpoint
                .inbound_limit(self.config.max_inbound_per_connection);
            let may_read = self.endpoint.meter.may_read(limit);
            let deadline = self.next_deadline();
            tokio::select! {
                read = reader.read_buf(&mut self.input.buf), if room && may_read => match read {
                    Ok(0) | Err(_) => {
                        self.endpoint.detach_all(None);
                        return;
                    }
                    Ok(_) => {
                        self.last_read = Instant::now();
                        match self.frames() {
                            Ok(()) => {}
                            Err(Fatal::PeerClosed) => break None,
                            Err(Fatal::Error(e)) => break Some(e),
                        }
                    }
                },
                wrote = writer.write(&self.endpoint.out[self.written..]), if self.written < out_len => {
                    match wrote {
                        Ok(n) if n > 0 => {
                            self.written += n;
                            self.last_write = Instant::now();
                            if self.written == self.endpoint.out.len() {
                                self.endpoint.out.clear();
                                self.written = 0;
                            }
                        }
                        _ => {
                            self.endpoint.detach_all(None);
                            return;
                        }
                    }
                },
                command = self.commands.recv(), if room => {
                    if let Some(c) = command {
                        self.endpoint.on_command(c);
                        for _ in 1..COMMAND_BATCH {
                            match self.commands.try_recv() {
                                Ok(c) => self.endpoint.on_command(c),
                                Err(_) => break,
                            }
                        }
                    }
                },
                _ = sleep(INBOUND_POLL), if !may_read => {}
                _ = sleep_until(deadline) => {
                    let now = Instant::now();
                    if now >= self.last_read + self.config.idle_timeout {
                        break Some(error(AmqpError::ResourceLimitExceeded, "idle timeout: nothing received"));
                    }
                    if self.endpoint.out.is_empty() {
                        write_heartbeat(&mut self.endpoint.out);
                    }
                },
                _ = &mut stop => {
                    break Some(error(ConnectionError::ConnectionForced, "the server is shutting down"));
                }
            }
        };
        self.endpoint.detach_all(ending.clone());
        let close = Performative::Close(Close { error: ending });
        write_amqp(&mut self.endpoint.out, 0, &close, &[]);
        let rest = &self.endpoint.out[self.written..];
        let _ = timeout(Duration::from_secs(1), write_now(&mut writer, rest)).await;
    }

    /// The idle deadline, and the next heartbeat's while nothing waits to be written (with
    /// output pending, a heartbeat is not needed and would be due at once, again and again).
    fn next_deadline(&self) -> Instant {
        let idle = self.last_read + self.config.idle_timeout;
        match self.heartbeat {
            Some(beat) if self.endpoint.out.is_empty() => idle.min(self.last_write + beat),
            _ => idle,
        }
    }

    /// Handles every whole frame in the input.
    fn frames(&mut self) -> Result<(), Fatal> {
        loop {
            let found = next_frame(self.input.pending(), self.config.max_frame_size);
            let (frame, used) = match found {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    return Err(Fatal::Error(error(
                        ConnectionError::FramingError,
                        &e.to_string(),
                    )))
                }
            };
            if frame.kind != FrameKind::Amqp {
                return Err(Fatal::Error(error(
                    ConnectionError::FramingError,
                    "SASL frame after the open",
                )));
            }
            if !frame.body.is_empty() {
                let channel = frame.channel;
                let (performative, payload) = decode_performative(frame.body)
                    .map_err(|e| Fatal::Error(error(AmqpError::DecodeError, &e.to_string())))?;
                // The payload is copied out by the endpoint before the input moves on.
                let payload = payload.to_vec();
                self.endpoint.on_frame(channel, performative, &payload)?;
            }
            self.input.consume(used);
        }
        self.input.compact();
        self.input.buf.reserve(16 * 1024);
        Ok(())
    }
}
