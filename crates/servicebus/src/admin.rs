//! The Service Bus HTTP port (5300 by default, as the emulator's): `GET /health` today; the
//! ATOM administration API joins it later.
//!
//! The emulator answers `/health` with `200 {"status":"healthy"}` once it serves, and tools
//! such as Testcontainers and Aspire wait for it; Hematite is ready when this port listens.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use hematite_net::conns::Conn;
use hematite_net::http1::{self, Handler, Limits, Request, Response};
use hematite_net::listener::{self, Serve, Setup, Stream};
use tokio::net::TcpListener;
use tokio::sync::watch;

struct Admin;

impl Handler for Admin {
    async fn handle(&self, req: Request) -> Response {
        let json = |status: u16, body: &str| {
            let mut r = Response::new(status).header("Content-Type", "application/json");
            r.body = body.as_bytes().to_vec();
            r
        };
        match (req.method(), req.path().to_ascii_lowercase().as_str()) {
            ("GET" | "HEAD", "/health") => json(200, r#"{"status":"healthy"}"#),
            (_, "/health") => json(405, r#"{"error":"method not allowed"}"#),
            _ => json(404, r#"{"error":"not found"}"#),
        }
    }
}

struct Http {
    limits: Limits,
}

impl Serve for Http {
    async fn serve(
        &self,
        stream: Stream,
        peer: SocketAddr,
        conn: Conn,
        stop: watch::Receiver<bool>,
    ) {
        let tls = stream.is_tls();
        http1::serve_connection(stream, peer, tls, &Admin, &self.limits, &conn, stop).await;
    }
}

/// Serves the Service Bus HTTP port on `listener` until `shutdown` completes.
pub async fn serve(listener: TcpListener, setup: Setup, shutdown: impl Future<Output = ()>) {
    let limits = Limits {
        max_body: 1 << 20,
        ..Limits::default()
    };
    listener::serve(listener, setup, Arc::new(Http { limits }), shutdown).await;
}
