//! The Service Bus ports. Each tells by a connection's first byte what it speaks: `0x16`
//! opens TLS (when a certificate is configured), `A` opens AMQP (its header is `AMQP…`),
//! anything else is HTTP for the administration API, since no HTTP method starts with `A`.
//! Inside TLS the same choice is made again.
//!
//! So `sb://localhost:5672` serves the data plane and the administration clients that use
//! http on the endpoint's port (JS with `UseDevelopmentEmulator`, .NET), the AMQPS port
//! serves clients that insist on TLS for both, and the emulator's HTTP port 5300 answers
//! everything too.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hematite_net::conns::{Conn, Phase};
use hematite_net::http1::{self, Limits};
use hematite_net::listener::{self, Serve, Setup, Stream};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::admin::{self, Admin};
use crate::{AmqpConfig, Front, ServiceBus};

/// What every Service Bus port serves.
pub struct Ports {
    front: Front,
    admin: Arc<Admin>,
    amqp: Arc<AmqpConfig>,
    limits: Limits,
    tls: Option<TlsAcceptor>,
    /// How long a client may take to send its first byte, and to finish a TLS handshake.
    first_bytes: Duration,
}

impl Ports {
    pub fn new(
        sb: Arc<ServiceBus>,
        amqp: AmqpConfig,
        tls: Option<TlsAcceptor>,
        first_bytes: Duration,
    ) -> Arc<Self> {
        Arc::new(Ports {
            front: Front(sb.clone()),
            admin: Arc::new(Admin::new(sb)),
            amqp: Arc::new(amqp),
            limits: admin::limits(),
            tls,
            first_bytes,
        })
    }

    async fn speak<S>(
        &self,
        io: S,
        first: u8,
        tls: bool,
        peer: SocketAddr,
        conn: Conn,
        mut stop: watch::Receiver<bool>,
    ) where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        if first != b'A' {
            http1::serve_connection(io, peer, tls, &*self.admin, &self.limits, &conn, stop).await;
            return;
        }
        // A connection can be shed for a newcomer at the cap like any idle HTTP one: AMQP
        // clients reconnect and resume.
        conn.set_phase(Phase::Idle);
        let stopped = async {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => {}
                _ = conn.shed() => {}
            }
        };
        hematite_amqp::serve(
            io,
            peer,
            Arc::new(self.front.clone()),
            Arc::clone(&self.amqp),
            stopped,
        )
        .await;
    }

    /// The first byte, within the deadline: peeked on plain TCP, read (and kept) in TLS.
    async fn first_byte<S: AsyncRead + Unpin>(&self, io: &mut S, conn: &Conn) -> Option<u8> {
        let mut b = [0u8; 1];
        tokio::select! {
            r = tokio::time::timeout(self.first_bytes, io.read(&mut b)) => match r {
                Ok(Ok(1)) => Some(b[0]),
                _ => None,
            },
            _ = conn.shed() => None,
        }
    }
}

impl Serve for Ports {
    async fn serve(
        &self,
        stream: Stream,
        peer: SocketAddr,
        conn: Conn,
        stop: watch::Receiver<bool>,
    ) {
        conn.set_phase(Phase::Head);
        let tcp = match stream {
            Stream::Plain(tcp) => tcp,
            // The listener's setup did the handshake (not how these ports are set up).
            Stream::Tls(mut tls) => {
                let Some(first) = self.first_byte(&mut tls, &conn).await else {
                    return;
                };
                let io = Rewound::new(first, tls);
                return self.speak(io, first, true, peer, conn, stop).await;
            }
        };
        let mut b = [0u8; 1];
        let peeked = tokio::select! {
            r = tokio::time::timeout(self.first_bytes, tcp.peek(&mut b)) => matches!(r, Ok(Ok(1))),
            _ = conn.shed() => false,
        };
        if !peeked {
            return;
        }
        match (&self.tls, b[0]) {
            (Some(acceptor), 0x16) => {
                let Some(mut tls) =
                    listener::accept_tls(tcp, acceptor, self.first_bytes, &conn).await
                else {
                    return;
                };
                let Some(first) = self.first_byte(&mut tls, &conn).await else {
                    return;
                };
                self.speak(Rewound::new(first, tls), first, true, peer, conn, stop)
                    .await;
            }
            (_, first) => {
                self.speak(Stream::Plain(tcp), first, false, peer, conn, stop)
                    .await
            }
        }
    }
}

/// A stream with one byte already read put back in front.
struct Rewound<S> {
    first: Option<u8>,
    inner: S,
}

impl<S> Rewound<S> {
    fn new(first: u8, inner: S) -> Self {
        Rewound {
            first: Some(first),
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewound<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(b) = this.first.take() {
            buf.put_slice(&[b]);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewound<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Serves one Service Bus port on `listener` until `shutdown` completes. `setup` admits
/// connections; its TLS, if any, is left to `ports`.
pub async fn serve(
    listener: TcpListener,
    ports: Arc<Ports>,
    setup: Setup,
    shutdown: impl Future<Output = ()>,
) {
    let setup = Setup { tls: None, ..setup };
    listener::serve(listener, setup, ports, shutdown).await;
}
