//! Entry points for the fuzz targets in `fuzz/` (run with `cargo fuzz`, nightly) and for
//! replaying their corpus as ordinary tests on stable (`tests/fuzz_corpus.rs`): the request
//! head parser alone, and a whole connection (framing, chunked bodies, pipelining, refusals)
//! fed any bytes. Neither may panic, and a connection answers only in whole HTTP/1.1
//! responses.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use crate::conns::Registry;
use crate::http1::{self, Handler, Limits, Request, Response};

/// The request head parser on any bytes; what it accepts stays within them.
pub fn head(data: &[u8]) {
    if let Ok(Some(h)) = http1::parse_head_for_fuzzing(data) {
        assert!(h <= data.len());
    }
}

/// Answers with the method, path and body length; refuses `Expect` uploads to `/deny`.
struct Echo;

impl Handler for Echo {
    async fn handle(&self, req: Request) -> Response {
        let mut resp = Response::new(200);
        resp.body = format!(
            "{} {} {} {}",
            req.method(),
            req.path(),
            req.body.len(),
            req.body_too_large
        )
        .into_bytes();
        resp
    }

    async fn admit(&self, req: &Request) -> Option<Response> {
        (req.path() == "/deny").then(|| Response::new(403))
    }
}

thread_local! {
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for the fuzz target");
}

/// Serves one connection that sends `data` and closes its side; returns what it was sent.
pub fn connection(data: &[u8]) -> Vec<u8> {
    RUNTIME.with(|rt| {
        rt.block_on(async {
            let (mut client, server) = tokio::io::duplex(1 << 20);
            let registry = Registry::new(4);
            let conn = registry.admit().expect("room");
            let limits = Limits {
                max_body: 1024,
                ..Limits::default()
            };
            let (_stop_tx, stop) = watch::channel(false);
            let peer = SocketAddr::from(([127, 0, 0, 1], 1));
            let serve = http1::serve_connection(server, peer, false, &Echo, &limits, &conn, stop);
            let talk = async {
                let _ = client.write_all(data).await;
                let _ = client.shutdown().await;
                let mut out = Vec::new();
                let _ = client.read_to_end(&mut out).await;
                out
            };
            let (_, out) =
                tokio::time::timeout(Duration::from_secs(10), async { tokio::join!(serve, talk) })
                    .await
                    .expect("a connection fed a closed input ends");
            out
        })
    })
}

/// [`connection`], checking that every byte sent back belongs to a whole response.
pub fn connection_answers_whole_responses(data: &[u8]) {
    let out = connection(data);
    let mut rest = out.as_slice();
    while !rest.is_empty() {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        let n = match resp.parse(rest) {
            Ok(httparse::Status::Complete(n)) => n,
            other => panic!("not a whole response head: {other:?}"),
        };
        let status = resp.code.expect("status");
        let length = resp
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .and_then(|h| std::str::from_utf8(h.value).ok()?.parse().ok());
        // An interim `100 Continue` has no body; every final response says its length.
        let body = if status == 100 {
            0
        } else {
            length.expect("every final response has a Content-Length")
        };
        assert!(rest.len() >= n + body, "a response was cut short");
        rest = &rest[n + body..];
    }
}
