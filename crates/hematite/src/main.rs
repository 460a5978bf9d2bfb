//! `hematite`: the one binary: `serve`, the `queue`/`message`/`sas` CLI on `hematite-client`
//! (in `cli/`), and `bench`. Wiring is kept short enough to read on one screen: parse the configuration,
//! build the store and engine, bind, serve until SIGINT or SIGTERM.

#![forbid(unsafe_code)]

mod bench;
mod cli;
mod config;
mod servicebus;

use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use hematite_engine::{Clock, Engine, MemoryStore, Store, SystemClock};
use hematite_net::listener::Setup;
use hematite_net::tls;
use hematite_queue_api::{serve_with, QueueApi};
use hematite_store_embedded::EmbeddedStore;

use crate::config::{ServeArgs, StoreChoice};

/// mimalloc gives freed memory back to the system; glibc's malloc kept a flood's peak (see
/// `docs/decisions/0004-allocator.md`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "hematite",
    version,
    about = "A message-queue server that speaks Azure Queue Storage and Azure Service Bus"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the Azure Queue REST API and Azure Service Bus (AMQP).
    Serve(Box<ServeArgs>),
    /// Generate load against a Queue endpoint and report throughput and latency.
    Bench(bench::BenchArgs),
    /// Manage queues: list, create, delete, show, metadata.
    Queue(cli::queue::QueueArgs),
    /// Send, receive, peek, update, delete and clear messages.
    Message(cli::message::MessageArgs),
    /// Generate a shared access signature for a queue or the account.
    Sas(cli::sas::SasArgs),
    /// Service Bus: queues, send, receive, peek and the dead-letter queue.
    Sb(cli::sb::SbArgs),
    /// Make a development CA and a server certificate signed by it, for --tls-cert/--tls-key.
    DevCert(cli::dev_cert::DevCertArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match cli.command {
        Command::Serve(args) => runtime.block_on(run_serve(*args)),
        Command::Bench(args) => runtime.block_on(bench::run(args)),
        Command::Queue(args) => cli::finish(runtime.block_on(cli::queue::run(args))),
        Command::Message(args) => cli::finish(runtime.block_on(cli::message::run(args))),
        Command::Sas(args) => cli::finish(runtime.block_on(cli::sas::run(args))),
        Command::Sb(args) => cli::finish(runtime.block_on(cli::sb::run(args))),
        Command::DevCert(args) => cli::dev_cert::run(args),
    }
}

async fn run_serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = args.resolve()?;
    let mut clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let mut shared = None;
    let store: Arc<dyn Store> = match &config.store {
        StoreChoice::Memory => Arc::new(MemoryStore::new()),
        StoreChoice::Postgres(url) => {
            let started = std::time::Instant::now();
            let store = hematite_store_postgres::PostgresStore::open(url).await?;
            // Nodes sharing the database share its clock, so leases end at one time for all.
            clock = hematite_store_postgres::DbClock::start(&store).await?;
            tracing::info!(
                took_ms = started.elapsed().as_millis(),
                "PostgreSQL store open"
            );
            let store = Arc::new(store);
            shared = Some(store.clone());
            store
        }
        StoreChoice::Embedded { dir, options } => {
            let started = std::time::Instant::now();
            let store = EmbeddedStore::open(dir, options.clone(), clock.clone())?;
            tracing::info!(dir = %dir.display(), took_ms = started.elapsed().as_millis(), "embedded store open");
            Arc::new(store)
        }
    };
    let engine = Engine::new(store, clock);
    if let Some(pg) = shared {
        // Other nodes' sends wake this node's waiting receivers at once.
        let e = engine.clone();
        pg.on_remote_change(move |account, queue| {
            e.wake(hematite_engine::QueueRef::new(account, queue))
        });
    }
    let tls = match &config.net.tls {
        Some((cert, key)) => Some(tls::acceptor(tls::load(cert, key, tls::ALPN_HTTP1)?)),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let mut banner = config.banner(addr);
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(housekeeping(engine.clone(), stopped()));
    if let Some(sb) = config.servicebus.take() {
        let setup = Setup {
            registry: config.registry.clone(),
            tls: None,
            handshake_timeout: config.net.limits.head,
        };
        banner.push('\n');
        banner.push_str(&servicebus::start(sb, engine.clone(), setup, &mut tasks, &stopped).await?);
    }
    say(&banner);
    let setup = Setup {
        registry: config.registry.clone(),
        tls,
        handshake_timeout: config.net.limits.head,
    };
    let limits = config.net.limits.clone();
    let api = Arc::new(QueueApi::new(engine, config.accounts, config.options));
    serve_with(listener, api, setup, limits, shutdown_signal()).await;
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    say("Hematite stopped.");
    Ok(())
}

/// Lapsed locks and expired messages are dealt with every second, whether or not anyone
/// looks at their queue.
async fn housekeeping(engine: Engine, stop: impl std::future::Future<Output = ()>) {
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tick.tick() => {
                if let Err(e) = engine.housekeep(10_000).await {
                    tracing::warn!(error = %e, "housekeeping failed; retrying");
                }
            }
        }
    }
}

/// Prints a line to stdout, ignoring a closed pipe: `hematite serve | head -1` must not kill the
/// server when `head` exits.
fn say(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
