//! The Queue REST listener: the shared accept loop (cap, shedding, TLS) running our HTTP/1.1
//! connection for each client, with this front's body limit.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use hematite_net::conns::{Conn, Registry};
use hematite_net::http1::{self, Limits};
use hematite_net::listener::{self, Serve, Setup, Stream};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::api::{QueueApi, MAX_BODY_BYTES};

/// The front's HTTP settings: the service's body limit and HTTP.sys's default deadlines.
pub fn default_limits() -> Limits {
    Limits {
        max_body: MAX_BODY_BYTES,
        ..Limits::default()
    }
}

/// The connection cap used when no listener setup is given (tests, embedding).
const DEFAULT_CAP: usize = 4096;

struct Rest {
    api: Arc<QueueApi>,
    limits: Limits,
}

impl Serve for Rest {
    async fn serve(
        &self,
        stream: Stream,
        peer: SocketAddr,
        conn: Conn,
        stop: watch::Receiver<bool>,
    ) {
        let tls = stream.is_tls();
        http1::serve_connection(stream, peer, tls, &*self.api, &self.limits, &conn, stop).await;
    }
}

/// Serves the Queue REST API on `listener` until `shutdown` completes.
pub async fn serve_with(
    listener: TcpListener,
    api: Arc<QueueApi>,
    setup: Setup,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let limits = Limits {
        max_body: MAX_BODY_BYTES,
        ..limits
    };
    listener::serve(listener, setup, Arc::new(Rest { api, limits }), shutdown).await;
}

/// Serves plain HTTP with the default limits and a connection cap of 4,096.
pub async fn serve(listener: TcpListener, api: Arc<QueueApi>, shutdown: impl Future<Output = ()>) {
    let setup = Setup {
        registry: Registry::new(DEFAULT_CAP),
        tls: None,
        handshake_timeout: default_limits().head,
    };
    serve_with(listener, api, setup, default_limits(), shutdown).await;
}
