//! Starting Service Bus beside the Queue REST API: the namespace's queues in the engine, the
//! AMQP listener and the HTTP port, and what the banner says about them.

use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context;
use hematite_engine::Engine;
use hematite_net::listener::Setup;
use hematite_servicebus::{admin, AmqpConfig, InboundBudget, ServiceBus};
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
    let sb = ServiceBus::new(engine, config.namespace)
        .await
        .context("creating the Service Bus queues")?;
    let mut lines = format!("Service Bus listening on amqp://{amqp_addr}");
    tasks.spawn(hematite_servicebus::serve(
        amqp,
        sb.clone(),
        setup.clone(),
        amqp_config(),
        stopped(),
    ));
    match bind(config.admin, config.admin_explicit, "Service Bus HTTP").await? {
        Some(http) => {
            let addr = http.local_addr().context("reading the HTTP address")?;
            lines.push_str(&format!(" (health: http://{addr}/health)"));
            tasks.spawn(admin::serve(http, setup, stopped()));
        }
        None => lines.push_str(" (HTTP port not served: its default address is in use)"),
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
