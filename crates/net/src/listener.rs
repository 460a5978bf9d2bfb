//! The accept loop shared by every listener: admission against the connection cap, the TLS
//! handshake under a deadline, one task per connection, and a graceful stop.
//!
//! On shutdown it stops accepting, lets requests in flight finish for a short grace period,
//! closes idle keep-alive connections at once, and aborts whatever is left, so SIGTERM ends the
//! process in well under a second.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::conns::{Conn, Phase, Registry};

const GRACE: Duration = Duration::from_millis(500);

/// How a listener admits and wraps its connections.
#[derive(Clone)]
pub struct Setup {
    pub registry: Arc<Registry>,
    /// Serve TLS with this acceptor; plain TCP when `None`.
    pub tls: Option<TlsAcceptor>,
    /// The longest a TLS handshake may take.
    pub handshake_timeout: Duration,
}

/// A client connection, plain or TLS.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// What a listener runs for each admitted connection.
pub trait Serve: Send + Sync + 'static {
    fn serve(
        &self,
        stream: Stream,
        peer: SocketAddr,
        conn: Conn,
        stop: watch::Receiver<bool>,
    ) -> impl Future<Output = ()> + Send;
}

/// Accepts on `listener` until `shutdown` completes, running `service` for each connection.
pub async fn serve<S: Serve>(
    listener: TcpListener,
    setup: Setup,
    service: Arc<S>,
    shutdown: impl Future<Output = ()>,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let Ok(conn) = setup.registry.admit() else {
                        // Every connection is busy in the engine: nobody can make room.
                        tracing::debug!(%peer, "connection cap reached; refusing");
                        continue;
                    };
                    let service = service.clone();
                    let stop = stop_rx.clone();
                    let setup = setup.clone();
                    connections.spawn(async move {
                        if let Some(stream) = handshake(stream, &setup, &conn).await {
                            service.serve(stream, peer, conn, stop).await;
                        }
                    });
                }
                Err(e) => {
                    // EMFILE/ENFILE: descriptors ran out below the cap (other files, other
                    // processes). Make room the way the cap would, and back off a little.
                    tracing::warn!(error = %e, "accept failed");
                    setup.registry.shed_oldest();
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
        }
        while connections.try_join_next().is_some() {}
    }
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        connections.abort_all();
    }
}

/// Wraps the socket in TLS when the listener serves it, within the handshake deadline and
/// unless the connection is shed meanwhile.
async fn handshake(stream: TcpStream, setup: &Setup, conn: &Conn) -> Option<Stream> {
    let _ = stream.set_nodelay(true);
    let Some(acceptor) = &setup.tls else {
        return Some(Stream::Plain(stream));
    };
    accept_tls(stream, acceptor, setup.handshake_timeout, conn).await
}

/// A TLS handshake on `stream` within `deadline`, unless the connection is shed meanwhile;
/// `None` when it fails. For listeners that decide by the first bytes whether to speak TLS.
pub async fn accept_tls(
    stream: TcpStream,
    acceptor: &TlsAcceptor,
    deadline: Duration,
    conn: &Conn,
) -> Option<Stream> {
    conn.set_phase(Phase::Head);
    tokio::select! {
        r = tokio::time::timeout(deadline, acceptor.accept(stream)) => match r {
            Ok(Ok(s)) => Some(Stream::Tls(Box::new(s))),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "TLS handshake failed");
                None
            }
            Err(_) => None,
        },
        _ = conn.shed() => None,
    }
}
