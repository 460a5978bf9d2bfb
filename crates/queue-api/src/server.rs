//! The accept loop: one task per connection, and a graceful stop.
//!
//! On shutdown it stops accepting, lets requests in flight finish for a short grace period, closes
//! idle keep-alive connections at once, and aborts whatever is left, so SIGTERM ends the process
//! in well under a second.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::api::{QueueApi, MAX_BODY_BYTES};
use crate::http1;

const GRACE: Duration = Duration::from_millis(500);

/// Serves the Queue REST API on `listener` until `shutdown` completes.
pub async fn serve(listener: TcpListener, api: Arc<QueueApi>, shutdown: impl Future<Output = ()>) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let api = api.clone();
                    let stop = stop_rx.clone();
                    connections.spawn(async move {
                        http1::serve_connection(stream, peer, &*api, MAX_BODY_BYTES, stop).await;
                    });
                }
                Err(e) => {
                    // Typically EMFILE: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
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
