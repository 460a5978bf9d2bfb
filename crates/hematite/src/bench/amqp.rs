//! `hematite bench --amqp`: the same load over AMQP 1.0, against a Service Bus namespace
//! (Hematite, the emulator, Azure) or any AMQP 1.0 broker (RabbitMQ's AMQP 1.0 plugin, say).
//!
//! Each client opens one connection with a sender link, and for the receiving scenarios a
//! receiver link with `--prefetch` credit.
//! - `put`: up to `--in-flight` messages on the wire per link; an op is one message, from the
//!   moment it is written to the broker's outcome (the publisher settles on the outcome).
//! - `cycle`: peek-lock receive, then complete. The complete is sent settled (receiver settle
//!   mode first), as a consumer does on every broker; the op is from asking for the message to
//!   the complete written. Unless `--no-refill`, one message is sent back afterwards (not
//!   part of the op; up to `--in-flight` of them await their outcome at once), so the
//!   backlog stays at `--prefill`.
//! - `receive-and-delete`: the broker settles each message as it sends it; refilled the same.
//!
//! The queue: with a Service Bus connection string, a fresh `bench-…` queue is created over
//! the administration API and deleted after, unless `--queue` names one. With `--no-admin`
//! (brokers without that API) the queue must exist; `--address` maps its name to the link
//! address (`/amqp/queue/{queue}` for RabbitMQ 3's plugin, `/queues/{queue}` for RabbitMQ 4).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use hdrhistogram::Histogram;
use hematite_servicebus_client::amqp::Pending;
use hematite_servicebus_client::connection_string::LOCAL_DEFAULT;
use hematite_servicebus_client::{
    AdminClient, Client, ConnectionString, OutgoingMessage, ReceiveMode, Settle,
};
use hematite_servicebus_protocol::QueueDescription;

use super::{latency_histogram, Pacer, Scenario, Shared, Tally};

/// The longest an op waits for the broker's outcome before it counts as an error.
const OUTCOME_WAIT: Duration = Duration::from_secs(30);

#[derive(Args, Debug)]
pub struct AmqpOptions {
    /// With --amqp: where to connect. A Service Bus connection string; for another broker,
    /// its SASL PLAIN user and password go in SharedAccessKeyName and SharedAccessKey, and
    /// UseDevelopmentEmulator=true means plain TCP. [default: the local Hematite namespace]
    #[arg(long, env = "SERVICEBUS_CONNECTION_STRING", hide_env_values = true)]
    connection_string: Option<String>,
    /// With --amqp: the link address for the queue, `{queue}` standing for its name.
    #[arg(long, default_value = "{queue}")]
    address: String,
    /// With --amqp: do not create or delete the queue over the Service Bus administration API
    /// (a broker without it); --queue must name an existing queue.
    #[arg(long)]
    no_admin: bool,
    /// With --amqp: messages a receiver link lets the broker send ahead.
    #[arg(long, default_value_t = 64)]
    prefetch: u32,
    /// With --amqp: messages in flight per sender link, awaiting their outcome (`put`'s
    /// sends, and the refills of the receiving scenarios).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    in_flight: u32,
    /// With --amqp: the MaxSizeInMegabytes of the queue the bench creates. Azure's default
    /// (1 GB) is less than a million 1 KiB messages, or a minute of sending; 5 GB is the
    /// most a Standard namespace takes.
    #[arg(long, default_value_t = 5120)]
    max_size_mb: u64,
}

/// Where the clients connect, and the queue they use.
pub struct Target {
    cs: ConnectionString,
    queue: String,
    address: String,
    admin: bool,
    owned: bool,
    prefetch: u32,
    in_flight: usize,
    max_size_mb: u64,
}

impl Target {
    pub fn new(o: &AmqpOptions, queue: &str, owned: bool) -> anyhow::Result<Target> {
        let cs = ConnectionString::parse(o.connection_string.as_deref().unwrap_or(LOCAL_DEFAULT))?;
        if o.no_admin && owned {
            anyhow::bail!("--no-admin needs --queue: the queue must exist on the broker");
        }
        Ok(Target {
            cs,
            queue: queue.to_owned(),
            address: o.address.replace("{queue}", queue),
            admin: !o.no_admin,
            owned,
            prefetch: o.prefetch.max(1),
            in_flight: o.in_flight as usize,
            max_size_mb: o.max_size_mb,
        })
    }

    pub fn endpoint(&self) -> String {
        let scheme = if self.cs.tls() { "amqps" } else { "amqp" };
        format!(
            "{scheme}://{}:{}/{}",
            self.cs.host,
            self.cs.amqp_port(),
            self.address
        )
    }

    /// Creates the queue when the bench owns it: Azure's defaults but its size limit.
    pub async fn setup(&self) -> anyhow::Result<()> {
        if self.admin && self.owned {
            let d = QueueDescription {
                max_size_in_megabytes: self.max_size_mb,
                ..QueueDescription::default()
            };
            AdminClient::new(&self.cs)?
                .create_queue(&self.queue, &d)
                .await
                .with_context(|| format!("creating queue {}", self.queue))?;
        }
        Ok(())
    }

    pub async fn teardown(&self) {
        if self.admin && self.owned {
            if let Ok(admin) = AdminClient::new(&self.cs) {
                let _ = admin.delete_queue(&self.queue).await;
            }
        }
    }

    /// Sends `n` messages over 16 links, 64 in flight each; returns messages per second.
    pub async fn prefill(self: &Arc<Self>, body: &[u8], n: u64) -> anyhow::Result<f64> {
        let left = Arc::new(AtomicU64::new(n));
        let start = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..16.min(n.max(1)) {
            let (t, left, m) = (
                self.clone(),
                left.clone(),
                OutgoingMessage::new(body.to_vec()),
            );
            tasks.spawn(async move {
                let mut client = Client::connect(&t.cs).await?;
                let mut sender = client.sender(&t.address).await?;
                let mut pending = std::collections::VecDeque::new();
                loop {
                    let more = left
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1))
                        .is_ok();
                    if more {
                        pending.push_back(sender.start(&m).await?);
                    }
                    if pending.len() >= 64 || (!more && !pending.is_empty()) {
                        if let Some(p) = pending.pop_front() {
                            tokio::time::timeout(OUTCOME_WAIT, p.outcome())
                                .await
                                .context("no outcome for a prefill message within 30 s")??;
                        }
                    }
                    if !more && pending.is_empty() {
                        break;
                    }
                }
                sender.close().await;
                client.close().await;
                anyhow::Ok(())
            });
        }
        while let Some(r) = tasks.join_next().await {
            r??;
        }
        Ok(n as f64 / start.elapsed().as_secs_f64().max(1e-9))
    }
}

/// One client: a connection, its links, and ops until the run ends.
pub async fn client(
    s: Arc<Shared>,
    t: Arc<Target>,
    scenario: Scenario,
    refill: bool,
    pacer: Pacer,
) -> [Histogram<u64>; 2] {
    let mut hists = [latency_histogram(), latency_histogram()];
    // A client that cannot connect or attach counts one error and stops; the report says so.
    if let Err(e) = run_client(&s, &t, scenario, refill, pacer, &mut hists).await {
        tracing::debug!(error = %e, "bench client stopped");
        Tally::count(&s.measured.errors);
    }
    hists
}

fn pick<'a>(
    s: &'a Shared,
    start: Instant,
    hists: &'a mut [Histogram<u64>; 2],
) -> (&'a Tally, &'a mut Histogram<u64>) {
    let [warmup, measured] = hists;
    if start < s.measure_from {
        (&s.warmup, warmup)
    } else {
        (&s.measured, measured)
    }
}

fn record(tally: &Tally, hist: &mut Histogram<u64>, start: Instant) {
    let _ = hist.record(start.elapsed().as_micros().max(1) as u64);
    Tally::count(&tally.ops);
}

async fn run_client(
    s: &Shared,
    t: &Target,
    scenario: Scenario,
    refill: bool,
    mut pacer: Pacer,
    hists: &mut [Histogram<u64>; 2],
) -> anyhow::Result<()> {
    let mut client = Client::connect(&t.cs).await?;
    let mut sender = client.sender(&t.address).await?;
    let message = OutgoingMessage::new(s.body.clone());
    let mode = match scenario {
        Scenario::Put => None,
        Scenario::ReceiveAndDelete => Some(ReceiveMode::ReceiveAndDelete),
        Scenario::Cycle | Scenario::Mixed => Some(ReceiveMode::PeekLock),
    };
    let Some(mode) = mode else {
        send_loop(s, t, &mut sender, &message, pacer, hists).await?;
        sender.close().await;
        client.close().await;
        return Ok(());
    };
    let mut receiver = client.receiver(&t.address, mode, Some(t.prefetch)).await?;
    let mut refills = Refills::default();
    while !s.done() {
        let Some(start) = pacer.start(s.deadline).await else {
            break;
        };
        let (tally, hist) = pick(s, start, hists);
        let got = receiver.receive(1, Duration::from_millis(200)).await?;
        Tally::count(&tally.requests);
        let Some(r) = got.into_iter().next() else {
            Tally::count(&tally.empty_receives);
            continue;
        };
        if mode == ReceiveMode::PeekLock {
            if receiver.settle(&r, &Settle::Complete).await.is_err() {
                Tally::count(&tally.errors);
                continue;
            }
            Tally::count(&tally.requests);
        }
        record(tally, hist, start);
        if refill {
            refills
                .send(&mut sender, &message, t.in_flight, tally)
                .await?;
        }
    }
    refills.finish(&s.measured).await;
    receiver.close().await;
    sender.close().await;
    client.close().await;
    Ok(())
}

/// The messages a receiving client sends back to keep the backlog level: up to
/// `--in-flight` on the wire, the oldest awaited when the window is full (so with the
/// default of one, each refill is awaited before the next receive).
#[derive(Default)]
struct Refills(std::collections::VecDeque<Pending>);

impl Refills {
    async fn send(
        &mut self,
        sender: &mut hematite_servicebus_client::Sender,
        message: &OutgoingMessage,
        in_flight: usize,
        tally: &Tally,
    ) -> anyhow::Result<()> {
        self.0.push_back(sender.start(message).await?);
        while self.0.len() >= in_flight {
            let Some(p) = self.0.pop_front() else { break };
            if !matches!(
                tokio::time::timeout(OUTCOME_WAIT, p.outcome()).await,
                Ok(Ok(()))
            ) {
                Tally::count(&tally.errors);
            }
        }
        Ok(())
    }

    async fn finish(&mut self, tally: &Tally) {
        while let Some(p) = self.0.pop_front() {
            if !matches!(
                tokio::time::timeout(OUTCOME_WAIT, p.outcome()).await,
                Ok(Ok(()))
            ) {
                Tally::count(&tally.errors);
            }
        }
    }
}

/// Keeps up to `in_flight` messages on the wire; each op ends with its outcome, timed when
/// the outcome arrives: outcomes are collected while the loop waits for the next paced send,
/// not only when the window is full (which once counted a paced op's wait for seven more
/// sends into its latency).
async fn send_loop(
    s: &Shared,
    t: &Target,
    sender: &mut hematite_servicebus_client::Sender,
    message: &OutgoingMessage,
    mut pacer: Pacer,
    hists: &mut [Histogram<u64>; 2],
) -> anyhow::Result<()> {
    use futures_util::stream::{FuturesUnordered, StreamExt};
    let mut pending = FuturesUnordered::new();
    let mut paced_out = false;
    loop {
        let more = !paced_out && !s.done();
        if more && pending.len() < t.in_flight {
            // Paced with sends on the wire: gather what completes until the next is due.
            // Woken on time, the send starts now (the timer's lateness is not the broker's);
            // a send already late starts at its due time, as `Pacer::start` has it.
            let mut slept = false;
            if let Some(due) = pacer
                .due()
                .filter(|d| *d > Instant::now() && !pending.is_empty())
            {
                tokio::select! {
                    Some(done) = pending.next() => {
                        finished(s, hists, done);
                        continue;
                    }
                    _ = tokio::time::sleep_until(due.into()) => slept = true,
                }
            }
            let Some(start) = pacer.start(s.deadline).await else {
                paced_out = true;
                continue;
            };
            let start = if slept { Instant::now() } else { start };
            let p = sender.start(message).await?;
            pending.push(async move {
                // An outcome that never comes is an error, not a run that never ends.
                let ok = matches!(
                    tokio::time::timeout(OUTCOME_WAIT, p.outcome()).await,
                    Ok(Ok(()))
                );
                (start, ok, Instant::now())
            });
            continue;
        }
        let Some(done) = pending.next().await else {
            return Ok(());
        };
        finished(s, hists, done);
    }
}

/// Counts a send whose outcome came: its latency from start to outcome, or an error.
fn finished(
    s: &Shared,
    hists: &mut [Histogram<u64>; 2],
    (start, ok, at): (Instant, bool, Instant),
) {
    let (tally, hist) = pick(s, start, hists);
    Tally::count(&tally.requests);
    if ok {
        let _ = hist.record(at.duration_since(start).as_micros().max(1) as u64);
        Tally::count(&tally.ops);
    } else {
        Tally::count(&tally.errors);
    }
}
