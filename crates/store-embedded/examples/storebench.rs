//! Measures the embedded store directly (no HTTP), for `docs/storage-embedded.md`.
//!
//! ```text
//! cargo run --release -p hematite-store-embedded --example storebench -- run DIR BACKLOG CLIENTS SECONDS [RECLAIM]
//! cargo run --release -p hematite-store-embedded --example storebench -- crash DIR BACKLOG
//! ```
//!
//! `run` pre-fills one queue to BACKLOG 1 KiB messages (reporting put throughput), runs
//! receive+delete cycles from CLIENTS concurrent tasks for SECONDS (cycles/s, p50/p99/p99.9/max),
//! reports RSS and file size, then closes and times a clean reopen. With RECLAIM, a second queue of
//! that many messages is cleared as the load starts, so its background reclaim runs during it. `crash` fills DIR in a child
//! process, `kill -9`s it mid-load and times the reopen (recovery + integrity check).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hematite_engine::{Clock, Engine, Metadata, QueueRef, SendOptions, Store, SystemClock, Ttl};
use hematite_store_embedded::{EmbeddedStore, Options};

const Q: QueueRef<'static> = QueueRef {
    account: "bench",
    queue: "q",
};

fn open(dir: &Path) -> (EmbeddedStore, Engine) {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let store = EmbeddedStore::open(dir, Options::default(), clock.clone()).expect("open");
    let engine = Engine::new(Arc::new(store.clone()) as Arc<dyn Store>, clock);
    (store, engine)
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|k| k.parse::<f64>().ok())
            })
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

fn dir_mib(dir: &Path) -> f64 {
    std::fs::read_dir(dir)
        .map(|it| {
            it.filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum::<u64>()
        })
        .unwrap_or(0) as f64
        / (1024.0 * 1024.0)
}

async fn fill(engine: &Engine, n: u64, clients: u64) -> f64 {
    let _ = engine.create_queue(Q, Metadata::default()).await;
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (e, next) = (engine.clone(), next.clone());
        tasks.spawn(async move {
            let body = vec![b'x'; 1024];
            while next.fetch_add(1, Ordering::Relaxed) < n {
                let opts = SendOptions {
                    visibility_delay: Duration::ZERO,
                    ttl: Ttl::Never,
                };
                e.send(Q, body.clone(), opts).await.expect("send");
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    n as f64 / start.elapsed().as_secs_f64()
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

async fn run(dir: PathBuf, backlog: u64, clients: u64, seconds: u64, reclaim: u64) {
    let _ = std::fs::remove_dir_all(&dir);
    let (store, engine) = open(&dir);
    let put_rate = fill(&engine, backlog, 64).await;
    println!("prefill: {backlog} x 1 KiB at {put_rate:.0} puts/s (64 concurrent)");
    if reclaim > 0 {
        // A second queue, cleared just before the load: its rows are reclaimed in the
        // background while the cycles run, which is what the latency figures then include.
        let junk = QueueRef::new("bench", "junk");
        engine
            .create_queue(junk, Metadata::default())
            .await
            .expect("create");
        let body = vec![b'j'; 1024];
        let mut tasks = tokio::task::JoinSet::new();
        for w in 0..64u64 {
            let (e, body) = (engine.clone(), body.clone());
            tasks.spawn(async move {
                for _ in (w..reclaim).step_by(64) {
                    let opts = SendOptions {
                        visibility_delay: Duration::ZERO,
                        ttl: Ttl::Never,
                    };
                    e.send(junk, body.clone(), opts).await.expect("send");
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        engine.clear_messages(junk).await.expect("clear");
        println!("cleared a second queue of {reclaim} messages; reclaim runs during the load");
    }
    println!(
        "after prefill: RSS {:.1} MiB, data {:.1} MiB",
        rss_mib(),
        dir_mib(&dir)
    );
    // Keep the backlog steady: each cycle puts one back after deleting one.
    let stop = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let e = engine.clone();
        tasks.spawn(async move {
            let mut lat = Vec::new();
            let body = vec![b'y'; 1024];
            while Instant::now() < stop {
                let t = Instant::now();
                let got = e
                    .receive(Q, 1, Duration::from_secs(30))
                    .await
                    .expect("recv");
                let Some(m) = got.into_iter().next() else {
                    continue;
                };
                e.delete_message(Q, m.id, m.receipt).await.expect("delete");
                lat.push(t.elapsed());
                let opts = SendOptions {
                    visibility_delay: Duration::ZERO,
                    ttl: Ttl::Never,
                };
                e.send(Q, body.clone(), opts).await.expect("send");
            }
            lat
        });
    }
    let mut lat = Vec::new();
    while let Some(r) = tasks.join_next().await {
        lat.extend(r.expect("task"));
    }
    lat.sort();
    println!(
        "receive+delete (+put to keep the backlog) at backlog {backlog}, {clients} clients: {:.0} cycles/s; cycle latency p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
        lat.len() as f64 / seconds as f64,
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        pct(&lat, 0.999),
        lat.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    );
    println!(
        "after load: RSS {:.1} MiB, data {:.1} MiB",
        rss_mib(),
        dir_mib(&dir)
    );
    drop(engine);
    drop(store);
    let t = Instant::now();
    let (_store, engine) = open(&dir);
    let open_ms = t.elapsed().as_secs_f64() * 1000.0;
    let count = engine.queue_info(Q).await.expect("info").message_count;
    println!("clean reopen with {count} messages: {open_ms:.0} ms (includes the integrity check)");
}

async fn crash(dir: PathBuf, backlog: u64) {
    let _ = std::fs::remove_dir_all(&dir);
    let exe = std::env::current_exe().expect("exe");
    let mut child = std::process::Command::new(exe)
        .args(["child", dir.to_str().expect("utf-8"), &backlog.to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn child");
    // The child prints "filled" once the backlog is in, then keeps writing until killed.
    let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).expect("read");
    std::thread::sleep(Duration::from_millis(500));
    child.kill().expect("kill -9");
    child.wait().expect("wait");
    let t = Instant::now();
    let (_store, engine) = open(&dir);
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    let count = engine.queue_info(Q).await.expect("info").message_count;
    println!(
        "reopen after kill -9 with {count} messages ({:.0} MiB): {ms:.0} ms",
        dir_mib(&dir)
    );
}

async fn child(dir: PathBuf, backlog: u64) {
    let (_store, engine) = open(&dir);
    fill(&engine, backlog, 64).await;
    println!("filled");
    fill(&engine, u64::MAX, 64).await;
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let num = |i: usize| {
        args.get(i)
            .and_then(|s| s.parse::<u64>().ok())
            .expect("number argument")
    };
    match args.get(1).map(String::as_str) {
        Some("run") => {
            let reclaim = args.get(6).and_then(|s| s.parse().ok()).unwrap_or(0);
            run(PathBuf::from(&args[2]), num(3), num(4), num(5), reclaim).await
        }
        Some("crash") => crash(PathBuf::from(&args[2]), num(3)).await,
        Some("child") => child(PathBuf::from(&args[2]), num(3)).await,
        _ => eprintln!("usage: storebench run DIR BACKLOG CLIENTS SECONDS | crash DIR BACKLOG"),
    }
}
