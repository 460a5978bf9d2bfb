//! The AMQP listener: each admitted connection runs the AMQP driver with the front.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use hematite_net::conns::{Conn, Phase};
use hematite_net::listener::{self, Serve, Setup, Stream};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::{AmqpConfig, Front, ServiceBus};

struct Amqp {
    front: Front,
    config: Arc<AmqpConfig>,
}

impl Serve for Amqp {
    async fn serve(
        &self,
        stream: Stream,
        peer: SocketAddr,
        conn: Conn,
        mut stop: watch::Receiver<bool>,
    ) {
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
            stream,
            peer,
            Arc::new(self.front.clone()),
            Arc::clone(&self.config),
            stopped,
        )
        .await;
    }
}

/// Serves AMQP on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    sb: Arc<ServiceBus>,
    setup: Setup,
    config: AmqpConfig,
    shutdown: impl Future<Output = ()>,
) {
    let service = Amqp {
        front: Front(sb),
        config: Arc::new(config),
    };
    listener::serve(listener, setup, Arc::new(service), shutdown).await;
}
