//! `hematite bench`: a load generator for any Queue endpoint (Hematite, Azurite, real Azure, or
//! nginx answering 204 as the HTTP ceiling).
//!
//! Each client is one task with one keep-alive connection, sending Shared Key signed requests
//! back to back (or paced, with `--rate`). Latencies go into HDR histograms (microseconds), merged
//! at the end.
//!
//! With `--rate`, the clients' schedules are staggered evenly over one interval, so requests
//! arrive spread out rather than in bursts of `--clients`. A client that is behind its schedule
//! measures latency from the operation's scheduled start, so a stalled server is not hidden by
//! clients that stopped sending (coordinated omission). A client that is on time measures from
//! when its timer woke it: tokio's timer fires on a 1 ms wheel, and charging that up-to-1 ms
//! wake-up delay to the server would put a floor under every latency (an in-memory Hematite at
//! 10k/s measured p50 1.4 ms that way, against 0.25 ms unpaced at 57k/s).
//!
//! With `--warmup`, the clients run for that long first and the ops that start in it are
//! reported apart: the measured window then begins with warm connections and a server past its
//! start-up work, and a paced schedule carries on into it without a break.
//!
//! Over the measured window, the bench also samples the CPU time the hypervisor took from this
//! machine ([`host`]), so a latency tail the machine made can be told from one the server made.
//!
//! Scenarios (one "op" each):
//! - `put`: Put Message.
//! - `cycle`: Get Messages (1) then Delete Message with its receipt. Unless `--no-refill`, each
//!   cycle then puts one message back (not part of the op's latency), so the backlog stays at
//!   `--prefill`.
//! - `mixed`: half the clients put, half cycle without refill.

mod amqp;
mod host;
mod http;
mod request;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use base64::Engine as _;
use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;
use hematite_queue_api::accounts::{DEV_ACCOUNT, DEV_KEY};
use hematite_queue_protocol::version::LATEST_KNOWN;

use self::http::Connection;
use self::request::{message_body, xml_text, Target};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Put Message; over AMQP, send and wait for the broker's outcome.
    Put,
    /// Receive and delete one message; over AMQP, receive in peek-lock and complete.
    Cycle,
    /// Half the clients put, half cycle.
    Mixed,
    /// Over AMQP only: receive in receive-and-delete mode.
    ReceiveAndDelete,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Put => "put",
            Scenario::Cycle => "cycle",
            Scenario::Mixed => "mixed",
            Scenario::ReceiveAndDelete => "receive-and-delete",
        }
    }
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// The account endpoint, path-style (`http://127.0.0.1:10001/devstoreaccount1`) or
    /// host-style (`http://acct.queue.localhost:10001`).
    #[arg(long, default_value = "http://127.0.0.1:10001/devstoreaccount1")]
    endpoint: String,
    /// Account name, when the endpoint does not give it.
    #[arg(long, default_value = DEV_ACCOUNT)]
    account: String,
    /// Base64 account key.
    #[arg(long, default_value = DEV_KEY, hide_default_value = true)]
    key: String,
    #[arg(long, value_enum, default_value = "put")]
    scenario: Scenario,
    /// Concurrent clients, one connection each.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Message text size in bytes.
    #[arg(long, default_value_t = 1024)]
    message_size: usize,
    /// How long to run (e.g. 10s, 500ms, 2m).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Stop after this many ops instead (whichever comes first).
    #[arg(long)]
    count: Option<u64>,
    /// Run this long before measuring (e.g. 2s); its ops are reported apart, not in the results.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    warmup: Duration,
    /// Fill the queue to this many messages before measuring.
    #[arg(long, default_value_t = 0)]
    prefill: u64,
    /// With `cycle`: do not put a message back after each cycle.
    #[arg(long)]
    no_refill: bool,
    /// Total ops per second to aim for (paced); default: as fast as possible.
    #[arg(long)]
    rate: Option<f64>,
    /// Queue to use (created if missing). Default: a fresh `bench-<random>` queue, deleted after.
    #[arg(long)]
    queue: Option<String>,
    /// One JSON object on stdout instead of the human summary.
    #[arg(long)]
    json: bool,
    /// Speak AMQP 1.0 to a Service Bus namespace or any AMQP broker instead of Queue REST;
    /// each client is one connection with its links.
    #[arg(long)]
    amqp: bool,
    #[command(flatten)]
    amqp_options: amqp::AmqpOptions,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((s, "s"), |i| (&s[..i], &s[i..]));
    let n: f64 = num.parse().map_err(|_| format!("not a duration: {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("unknown unit in {s:?}: use ms, s or m")),
    };
    Ok(Duration::from_secs_f64(secs))
}

/// Splits `http://host:port/path` into the connect address, Host header, and account.
fn target(args: &BenchArgs, queue: &str) -> anyhow::Result<Target> {
    let rest = args
        .endpoint
        .strip_prefix("http://")
        .context("only http:// endpoints are supported by the load generator")?;
    let (hostport, path) = rest.split_once('/').unwrap_or((rest, ""));
    let path = path.trim_end_matches('/');
    let addr = if hostport.contains(':') {
        hostport.to_owned()
    } else {
        format!("{hostport}:80")
    };
    let (account, prefix) = if path.is_empty() {
        let host = hostport.split(':').next().unwrap_or_default();
        let first = host.split('.').next().unwrap_or_default();
        let account = if host.contains('.') && host.parse::<std::net::IpAddr>().is_err() {
            first.to_owned()
        } else {
            args.account.clone()
        };
        (account, String::new())
    } else {
        (path.to_owned(), format!("/{path}"))
    };
    let key = base64::engine::general_purpose::STANDARD
        .decode(args.key.trim())
        .context("--key is not base64")?;
    Ok(Target {
        addr,
        host: hostport.to_owned(),
        account,
        key,
        queue_path: format!("{prefix}/{queue}"),
        version: LATEST_KNOWN.to_string(),
    })
}

/// What happened in one period of the run (the warm-up or the measured window).
#[derive(Default)]
struct Tally {
    ops: AtomicU64,
    errors: AtomicU64,
    requests: AtomicU64,
    empty_receives: AtomicU64,
}

impl Tally {
    fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

struct Shared {
    body: Vec<u8>,
    stop: AtomicBool,
    warmup: Tally,
    measured: Tally,
    started: Instant,
    /// End of the warm-up: an op that starts from here on is measured.
    measure_from: Instant,
    deadline: Instant,
    count: Option<u64>,
}

impl Shared {
    fn done(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
            || Instant::now() >= self.deadline
            || self
                .count
                .is_some_and(|c| Tally::get(&self.measured.ops) >= c)
    }
}

async fn put(conn: &mut Connection, t: &Target, s: &Shared, tally: &Tally) -> anyhow::Result<bool> {
    let path = format!("{}/messages", t.queue_path);
    let req = t.request("POST", &path, "", &s.body);
    let r = conn.send(&req).await?;
    Tally::count(&tally.requests);
    // nginx (the ceiling) answers 204; a queue service 201.
    Ok(r.status == 201 || r.status == 204)
}

/// Receive one message and delete it. `Ok(None)` when the queue had nothing visible.
async fn cycle(conn: &mut Connection, t: &Target, tally: &Tally) -> anyhow::Result<Option<bool>> {
    let path = format!("{}/messages", t.queue_path);
    let req = t.request("GET", &path, "numofmessages=1&visibilitytimeout=30", b"");
    let r = conn.send(&req).await?;
    Tally::count(&tally.requests);
    if r.status != 200 {
        return Ok(Some(false));
    }
    let body = String::from_utf8_lossy(&r.body);
    let (Some(id), Some(receipt)) = (xml_text(&body, "MessageId"), xml_text(&body, "PopReceipt"))
    else {
        return Ok(None);
    };
    let receipt: String = receipt
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    let req = t.request(
        "DELETE",
        &format!("{path}/{id}"),
        &format!("popreceipt={receipt}"),
        b"",
    );
    let r = conn.send(&req).await?;
    Tally::count(&tally.requests);
    Ok(Some(r.status == 204))
}

/// When the next op starts: now, or with `--rate` at its turn in the schedule (`None` once
/// the turn falls after the run). Shared by both protocols' clients.
pub(crate) struct Pacer {
    interval: Option<Duration>,
    next: Instant,
}

impl Pacer {
    fn new(interval: Option<Duration>, phase: Duration) -> Self {
        Pacer {
            interval,
            next: Instant::now() + phase,
        }
    }

    /// When the next op is due; `None` when unpaced (at once, always).
    pub(crate) fn due(&self) -> Option<Instant> {
        self.interval.map(|_| self.next)
    }

    async fn start(&mut self, deadline: Instant) -> Option<Instant> {
        let Some(i) = self.interval else {
            return Some(Instant::now());
        };
        let scheduled = self.next;
        self.next += i;
        if scheduled >= deadline {
            // Its turn comes after the run ends: it must not count, nor keep the run going.
            return None;
        }
        if Instant::now() < scheduled {
            tokio::time::sleep_until(scheduled.into()).await;
            Some(Instant::now())
        } else {
            Some(scheduled)
        }
    }
}

async fn client(
    s: Arc<Shared>,
    t: Arc<Target>,
    scenario: Scenario,
    refill: bool,
    mut pacer: Pacer,
) -> [Histogram<u64>; 2] {
    let (mut warmup_hist, mut hist) = (latency_histogram(), latency_histogram());
    let mut conn = Connection::new(&t.addr);
    while !s.done() {
        let Some(start) = pacer.start(s.deadline).await else {
            break;
        };
        let (tally, hist) = if start < s.measure_from {
            (&s.warmup, &mut warmup_hist)
        } else {
            (&s.measured, &mut hist)
        };
        let outcome = match scenario {
            Scenario::Put => put(&mut conn, &t, &s, tally).await.map(Some),
            Scenario::Cycle | Scenario::Mixed | Scenario::ReceiveAndDelete => {
                cycle(&mut conn, &t, tally).await
            }
        };
        let elapsed = start.elapsed();
        match outcome {
            Ok(Some(true)) => {
                let _ = hist.record(elapsed.as_micros().max(1) as u64);
                Tally::count(&tally.ops);
                if refill
                    && scenario == Scenario::Cycle
                    && put(&mut conn, &t, &s, tally).await.unwrap_or(false)
                {
                    // The refill keeps the backlog steady; it is not part of the op.
                }
            }
            Ok(Some(false)) => Tally::count(&tally.errors),
            Ok(None) => {
                Tally::count(&tally.empty_receives);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err(_) => {
                Tally::count(&tally.errors);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    [warmup_hist, hist]
}

async fn setup_queue(t: &Target) -> anyhow::Result<()> {
    let mut conn = Connection::new(&t.addr);
    let r = conn.send(&t.request("PUT", &t.queue_path, "", b"")).await?;
    if !matches!(r.status, 201 | 204) {
        bail!(
            "creating the queue answered {}: {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
    }
    Ok(())
}

async fn prefill(t: &Target, body: &[u8], n: u64) -> anyhow::Result<f64> {
    let left = Arc::new(AtomicU64::new(n));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..64.min(n.max(1)) {
        let (t, body, left) = (t.clone(), body.to_vec(), left.clone());
        tasks.spawn(async move {
            let mut conn = Connection::new(&t.addr);
            let path = format!("{}/messages", t.queue_path);
            while left
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1))
                .is_ok()
            {
                let r = conn.send(&t.request("POST", &path, "", &body)).await?;
                if !matches!(r.status, 201 | 204) {
                    bail!("prefill put answered {}", r.status);
                }
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64().max(1e-9))
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.clients == 0 {
        bail!("--clients must be at least 1");
    }
    if args.scenario == Scenario::ReceiveAndDelete && !args.amqp {
        bail!("--scenario receive-and-delete needs --amqp: Queue REST has no such receive");
    }
    let owned_queue = args.queue.is_none();
    let queue = args
        .queue
        .clone()
        .unwrap_or_else(|| format!("bench-{:08x}", rand_u32()));
    let body = message_body(args.message_size);
    let (target, amqp) = if args.amqp {
        let a = amqp::Target::new(&args.amqp_options, &queue, owned_queue)?;
        a.setup().await?;
        (None, Some(Arc::new(a)))
    } else {
        let t = target(&args, &queue)?;
        setup_queue(&t).await?;
        (Some(Arc::new(t)), None)
    };
    let prefill_rate = if args.prefill > 0 {
        if !args.json {
            eprintln!("prefilling {} messages…", args.prefill);
        }
        Some(match (&target, &amqp) {
            (Some(t), _) => prefill(t, &body, args.prefill).await?,
            (None, Some(a)) => a.prefill(&body, args.prefill).await?,
            (None, None) => 0.0,
        })
    } else {
        None
    };

    let started = Instant::now();
    let measure_from = started + args.warmup;
    let shared = Arc::new(Shared {
        body,
        stop: AtomicBool::new(false),
        warmup: Tally::default(),
        measured: Tally::default(),
        started,
        measure_from,
        deadline: measure_from + args.duration,
        count: args.count,
    });
    let interval = args
        .rate
        .filter(|r| *r > 0.0)
        .map(|r| Duration::from_secs_f64(args.clients as f64 / r));
    let progress = progress_bar(&args);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..args.clients {
        let scenario = match args.scenario {
            Scenario::Mixed if i % 2 == 0 => Scenario::Put,
            s => s,
        };
        let phase = interval.map_or(Duration::ZERO, |d| {
            d.mul_f64(i as f64 / args.clients as f64)
        });
        let pacer = Pacer::new(interval, phase);
        match (&target, &amqp) {
            (Some(t), _) => tasks.spawn(client(
                shared.clone(),
                t.clone(),
                scenario,
                !args.no_refill,
                pacer,
            )),
            (None, Some(a)) => tasks.spawn(amqp::client(
                shared.clone(),
                a.clone(),
                scenario,
                !args.no_refill,
                pacer,
            )),
            (None, None) => continue,
        };
    }
    let host = {
        let s = shared.clone();
        tokio::spawn(host::sample(measure_from, move || s.done()))
    };
    let ticker = progress.clone().map(|pb| {
        let s = shared.clone();
        tokio::spawn(async move {
            while !s.done() {
                pb.set_position(s.started.elapsed().as_millis() as u64);
                let ops = Tally::get(&s.warmup.ops) + Tally::get(&s.measured.ops);
                pb.set_message(format!("{ops} ops"));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    });
    let (mut warmup_hist, mut hist) = (latency_histogram(), latency_histogram());
    while let Some(h) = tasks.join_next().await {
        let [w, m] = h?;
        warmup_hist.add(w)?;
        hist.add(m)?;
    }
    let elapsed = measure_from.elapsed().as_secs_f64();
    shared.stop.store(true, Ordering::Relaxed);
    if let Some(t) = ticker {
        let _ = t.await;
    }
    let host = host.await.ok().flatten();
    if let Some(pb) = progress {
        pb.finish_and_clear();
    }
    if owned_queue {
        match (&target, &amqp) {
            (Some(t), _) => {
                let mut conn = Connection::new(&t.addr);
                let _ = conn
                    .send(&t.request("DELETE", &t.queue_path, "", b""))
                    .await;
            }
            (None, Some(a)) => a.teardown().await,
            (None, None) => {}
        }
    }

    let m = &shared.measured;
    let ops = Tally::get(&m.ops);
    let report = Report {
        endpoint: match &amqp {
            Some(a) => a.endpoint(),
            None => args.endpoint.clone(),
        },
        scenario: args.scenario,
        clients: args.clients,
        message_size: args.message_size,
        duration_s: elapsed,
        prefill: args.prefill,
        prefill_per_s: prefill_rate,
        ops,
        requests: Tally::get(&m.requests),
        errors: Tally::get(&m.errors),
        empty_receives: Tally::get(&m.empty_receives),
        rate: args.rate,
        hist,
        warmup: (!args.warmup.is_zero()).then(|| Warmup {
            duration_s: args.warmup.as_secs_f64(),
            ops: Tally::get(&shared.warmup.ops),
            errors: Tally::get(&shared.warmup.errors),
            hist: warmup_hist,
        }),
        host,
    };
    if args.json {
        println!("{}", report.json());
    } else {
        println!("{}", report.human());
    }
    if ops == 0 {
        if let Some(w) = report.warmup.as_ref().filter(|w| w.ops > 0) {
            bail!(
                "no operation was measured: the {} that succeeded all started in the {:.1} s \
                 warm-up (use a longer --duration or a shorter --warmup)",
                w.ops,
                w.duration_s
            );
        }
        bail!("no operation succeeded ({} errors)", report.errors);
    }
    Ok(())
}

fn progress_bar(args: &BenchArgs) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if args.json || !std::io::stderr().is_terminal() {
        return None;
    }
    let pb = indicatif::ProgressBar::new((args.warmup + args.duration).as_millis() as u64);
    pb.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {elapsed}/{duration} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    Some(pb)
}

fn rand_u32() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    nanos ^ std::process::id().rotate_left(16)
}

struct Report {
    endpoint: String,
    scenario: Scenario,
    clients: usize,
    message_size: usize,
    duration_s: f64,
    prefill: u64,
    prefill_per_s: Option<f64>,
    ops: u64,
    requests: u64,
    errors: u64,
    empty_receives: u64,
    rate: Option<f64>,
    hist: Histogram<u64>,
    warmup: Option<Warmup>,
    host: Option<host::HostReport>,
}

/// The warm-up's own figures, reported so that what was left out can be seen.
struct Warmup {
    duration_s: f64,
    ops: u64,
    errors: u64,
    hist: Histogram<u64>,
}

/// Latencies in microseconds, from 1 µs to a minute, to 3 significant digits.
fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("constant, valid histogram bounds")
}

fn ms(hist: &Histogram<u64>, q: f64) -> f64 {
    hist.value_at_quantile(q) as f64 / 1000.0
}

fn max_ms(hist: &Histogram<u64>) -> f64 {
    hist.max() as f64 / 1000.0
}

impl Report {
    fn ms(&self, q: f64) -> f64 {
        ms(&self.hist, q)
    }

    /// A count over the measured window; 0 for an empty window (JSON has no NaN).
    fn per_s(&self, n: u64) -> f64 {
        if self.duration_s > 0.0 {
            n as f64 / self.duration_s
        } else {
            0.0
        }
    }

    fn json(&self) -> String {
        let scenario = self.scenario.name();
        let opt = |v: Option<f64>| v.map_or("null".to_owned(), |x| format!("{x:.1}"));
        let warmup = self.warmup.as_ref().map_or("null".to_owned(), |w| {
            format!(
                "{{\"duration_s\":{:.3},\"ops\":{},\"errors\":{},\"latency_ms\":{{\"p50\":{:.3},\"p99\":{:.3},\"max\":{:.3}}}}}",
                w.duration_s,
                w.ops,
                w.errors,
                ms(&w.hist, 0.5),
                ms(&w.hist, 0.99),
                max_ms(&w.hist)
            )
        });
        let host = self.host.map_or("null".to_owned(), |h| {
            format!(
                "{{\"steal_ms\":{:.0},\"worst_steal_ms\":{:.0},\"idle_pct\":{:.1}}}",
                h.steal_ms, h.worst_steal_ms, h.idle_pct
            )
        });
        format!(
            "{{\"endpoint\":{:?},\"scenario\":\"{scenario}\",\"clients\":{},\"message_size\":{},\"duration_s\":{:.3},\"prefill\":{},\"prefill_per_s\":{},\"ops\":{},\"requests\":{},\"errors\":{},\"empty_receives\":{},\"rate\":{},\"ops_per_s\":{:.1},\"requests_per_s\":{:.1},\"latency_ms\":{{\"p50\":{:.3},\"p99\":{:.3},\"p999\":{:.3},\"max\":{:.3}}},\"warmup\":{warmup},\"host\":{host}}}",
            self.endpoint,
            self.clients,
            self.message_size,
            self.duration_s,
            self.prefill,
            opt(self.prefill_per_s),
            self.ops,
            self.requests,
            self.errors,
            self.empty_receives,
            opt(self.rate),
            self.per_s(self.ops),
            self.per_s(self.requests),
            self.ms(0.5),
            self.ms(0.99),
            self.ms(0.999),
            max_ms(&self.hist),
        )
    }

    fn human(&self) -> String {
        let mut out = format!(
            "{} against {} — {} clients, {} B messages, {:.1} s\n",
            self.scenario.name(),
            self.endpoint,
            self.clients,
            self.message_size,
            self.duration_s
        );
        if let Some(r) = self.prefill_per_s {
            out.push_str(&format!(
                "  prefill   {} messages at {r:.0}/s\n",
                self.prefill
            ));
        }
        if let Some(w) = &self.warmup {
            out.push_str(&format!(
                "  warm-up   {:.1} s first, not counted: {} ops, {} errors, p99 {:.2} ms\n",
                w.duration_s,
                w.ops,
                w.errors,
                ms(&w.hist, 0.99)
            ));
        }
        out.push_str(&format!(
            "  ops       {} ({:.0}/s), {} requests ({:.0}/s), {} errors, {} empty receives\n",
            self.ops,
            self.per_s(self.ops),
            self.requests,
            self.per_s(self.requests),
            self.errors,
            self.empty_receives
        ));
        out.push_str(&format!(
            "  latency   p50 {:.2} ms   p99 {:.2} ms   p99.9 {:.2} ms   max {:.2} ms",
            self.ms(0.5),
            self.ms(0.99),
            self.ms(0.999),
            max_ms(&self.hist)
        ));
        if let Some(h) = self.host {
            out.push_str(&format!(
                "\n  machine   {:.0} ms of CPU stolen by the hypervisor (worst {:.0} ms in {} ms), {:.0}% idle",
                h.steal_ms,
                h.worst_steal_ms,
                host::SAMPLE_EVERY.as_millis(),
                h.idle_pct
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("3h").is_err());
    }
}
