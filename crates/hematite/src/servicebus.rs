//! Starting Service Bus beside the Queue REST API: the namespace's queues in the engine, the
//! AMQP listener and the HTTP port, and what the banner says about them.

use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context;
use hematite_engine::Engine;
use hematite_net::listener::Setup;
use hematite_net::tls;
use hematite_servicebus::{AmqpConfig, InboundBudget, Ports, ServiceBus};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::config::ServiceBusConfig;

/// Binds `addr`; a default address that is taken gives `None` (the caller says so), a
/// chosen one an error.
async fn bind(addr: SocketAddr, explicit: bool, what: &str) -> anyhow::Result<Option<TcpListener>> {
    match TcpListener::bind(addr).await {
        Ok(l) => Ok(Some(l)),
        Err(e) if !explicit && e.kind() == std::io::ErrorKind::AddrInUse => {
            tracing::warn!(%addr, "{what}: the default address is in use; not served");
            Ok(None)
        }
        Err(e) => Err(e).with_context(|| format!("binding {addr} for {what}")),
    }
}

/// Starts Service Bus; returns the banner's lines for it.
pub async fn start<F, Fut>(
    config: ServiceBusConfig,
    engine: Engine,
    setup: Setup,
    tasks: &mut JoinSet<()>,
    stopped: &F,
) -> anyhow::Result<String>
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    for skipped in &config.namespace.skipped {
        tracing::warn!("Service Bus configuration: {skipped}");
    }
    let Some(amqp) = bind(config.amqp, config.amqp_explicit, "Service Bus AMQP").await? else {
        return Ok(format!(
            "Service Bus: not served ({} is in use; choose another with --amqp-listen)",
            config.amqp
        ));
    };
    let amqp_addr = amqp.local_addr().context("reading the AMQP address")?;
    // No ALPN: AMQP clients offer none, and HTTP clients fall back to HTTP/1.1 without it.
    let tls = match &config.tls {
        Some((cert, key)) => Some(tls::acceptor(tls::load(cert, key, &[])?)),
        None => None,
    };
    let sb = ServiceBus::new(engine, config.namespace)
        .await
        .context("creating the Service Bus queues")?;
    if config.shared_store {
        // Entities other nodes create at run time are seen here within this.
        sb.follow_shared_store(std::time::Duration::from_secs(2));
    }
    let ports = Ports::new(
        sb.clone(),
        amqp_config(),
        tls.clone(),
        setup.handshake_timeout,
    );
    let serve = |listener, tasks: &mut JoinSet<()>| {
        tasks.spawn(hematite_servicebus::serve(
            listener,
            ports.clone(),
            setup.clone(),
            stopped(),
        ));
    };
    let mut lines = format!("Service Bus listening on amqp://{amqp_addr}");
    serve(amqp, tasks);
    if tls.is_some() {
        match bind(config.amqps, config.amqps_explicit, "Service Bus AMQPS").await? {
            Some(l) => {
                let addr = l.local_addr().context("reading the AMQPS address")?;
                lines.push_str(&format!(" and amqps://{addr}"));
                serve(l, tasks);
            }
            None => lines.push_str(" (AMQPS not served: its default address is in use)"),
        }
    }
    match bind(config.admin, config.admin_explicit, "Service Bus HTTP").await? {
        Some(http) => {
            let addr = http.local_addr().context("reading the HTTP address")?;
            let scheme = if tls.is_some() { "http(s)" } else { "http" };
            lines.push_str(&format!(
                "\nService Bus administration on {scheme}://{addr} and the AMQP ports (health: http://{addr}/health)"
            ));
            serve(http, tasks);
        }
        None => lines.push_str("\nService Bus HTTP port not served: its default address is in use"),
    }
    let host = if amqp_addr.port() == 5672 {
        "localhost".to_owned()
    } else {
        format!("localhost:{}", amqp_addr.port())
    };
    lines.push_str(&format!(
        "\nService Bus connection string:\n  {}",
        sb.connection_string(&host)
    ));
    Ok(lines)
}

/// The AMQP settings, with the process-wide bound on what peers' messages may hold in memory
/// set from the machine's memory (an eighth of it, at least 64 MiB).
fn amqp_config() -> AmqpConfig {
    let memory = hematite_net::system::total_memory().unwrap_or(8 << 30);
    let limit = (memory / 8).max(64 << 20);
    AmqpConfig {
        inbound: InboundBudget::new(usize::try_from(limit).unwrap_or(usize::MAX)),
        ..AmqpConfig::default()
    }
}
