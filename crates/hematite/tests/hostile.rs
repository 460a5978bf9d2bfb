//! The release-shaped process under memory attacks, measured from `/proc`: slow readers that
//! never take their large answers. The figures go to stderr (`-- --nocapture`), and
//! `HEMATITE_HOSTILE_CONNS` and `HEMATITE_BIN` rerun the same attack larger or against another
//! build, as `docs/hostile-clients.md` records.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use hematite_queue_api::accounts::{DEV_ACCOUNT, DEV_KEY};
use hematite_queue_protocol::auth::sas::{AccountPermissions, AccountSasBuilder, ResourceTypes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

struct Server {
    child: Child,
    addr: String,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(env: &[(&str, &str)]) -> Server {
    // One directory per server: the tests run in parallel in one process, and a second
    // server on the first one's directory is refused by its lock.
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("hematite-hostile-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let bin =
        std::env::var("HEMATITE_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_hematite").into());
    let mut cmd = Command::new(bin);
    cmd.args([
        "serve",
        "--no-servicebus",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
    ])
    .arg(&dir)
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .env_remove("AZURITE_ACCOUNTS");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn hematite");
    let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    reader.read_line(&mut first).expect("banner");
    let addr = first
        .split("http://")
        .nth(1)
        .expect("listening line")
        .trim()
        .to_owned();
    // Keep reading the banner so the pipe never fills.
    std::thread::spawn(move || for _ in reader.lines() {});
    Server {
        child,
        addr,
        _dir: TempDir(dir),
    }
}

/// Resident memory of a process, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("VmRSS");
    kib * 1024
}

fn sas() -> String {
    let key = base64::engine::general_purpose::STANDARD
        .decode(DEV_KEY)
        .expect("key");
    AccountSasBuilder {
        services: "q".into(),
        resource_types: "sco".parse::<ResourceTypes>().expect("srt"),
        permissions: "rwdlacup".parse::<AccountPermissions>().expect("sp"),
        expiry: Some(time::OffsetDateTime::now_utc() + time::Duration::hours(1)),
        ..AccountSasBuilder::default()
    }
    .to_query(DEV_ACCOUNT, &key)
}

fn request(method: &str, path_query: &str, sas: &str, body: &str) -> Vec<u8> {
    format!(
        "{method} /{DEV_ACCOUNT}/{path_query}&{sas} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Sends one request and reads the status line of its answer.
async fn call(addr: &str, raw: &[u8]) -> u16 {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(raw).await.expect("write");
    let mut buf = vec![0u8; 64 * 1024];
    let n = s.read(&mut buf).await.expect("read");
    let text = String::from_utf8_lossy(&buf[..n]);
    text.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// A queue holding 32 messages of 48 KiB: one peek of all of them answers about 2 MB.
async fn fill(addr: &str, sas: &str) {
    assert_eq!(call(addr, &request("PUT", "big?x=1", sas, "")).await, 201);
    let body = format!(
        "<QueueMessage><MessageText>{}</MessageText></QueueMessage>",
        "m".repeat(48 * 1024)
    );
    for _ in 0..32 {
        assert_eq!(
            call(addr, &request("POST", "big/messages?x=1", sas, &body)).await,
            201
        );
    }
}

const MB: f64 = 1024.0 * 1024.0;

/// How many connections an attack opens: `default`, or the count in `var` to rerun it larger.
fn env_count(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_readers_hold_bounded_memory_that_returns_when_they_go() {
    // Two pipelined large peeks per connection that are never read pinned about 3.5 MB each
    // (300 connections: 0.16 GB to 1.21 GB), and the memory stayed at 1.1 GB after they left.
    let conns = env_count("HEMATITE_HOSTILE_CONNS", 100);
    let budget_mb = 64u64;
    let server = spawn(&[("HEMATITE_RESPONSE_MEMORY_MB", &budget_mb.to_string())]);
    let pid = server.child.id();
    let sas = sas();
    fill(&server.addr, &sas).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss(pid);

    let peek = request(
        "GET",
        "big/messages?peekonly=true&numofmessages=32",
        &sas,
        "",
    );
    let pipelined: Vec<u8> = std::iter::repeat_n(peek, 2).flatten().collect();
    let mut readers = Vec::new();
    for _ in 0..conns {
        let socket = TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("rcvbuf");
        let mut s = socket
            .connect(server.addr.parse().expect("addr"))
            .await
            .expect("connect");
        s.write_all(&pipelined).await.expect("write");
        readers.push(s);
    }
    // Let every connection produce what it will and block on its reader.
    let started = Instant::now();
    let mut during = 0;
    while started.elapsed() < Duration::from_secs(5) {
        during = during.max(rss(pid));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(readers);
    // The allocator gives freed memory back on its own clock (jemalloc's background thread
    // purges pages unused for about ten seconds).
    let gone = Instant::now();
    let mut after = rss(pid);
    while after.saturating_sub(before) as f64 >= 16.0 * MB
        && gone.elapsed() < Duration::from_secs(45)
    {
        tokio::time::sleep(Duration::from_millis(500)).await;
        after = rss(pid);
    }
    eprintln!(
        "slow readers: {conns} connections x 2 peeks of 32 x 48 KiB; RSS before {:.1} MB, peak during {:.1} MB (+{:.1}), {:.1} s after they left {:.1} MB (+{:.1})",
        before as f64 / MB,
        during as f64 / MB,
        during.saturating_sub(before) as f64 / MB,
        gone.elapsed().as_secs_f64(),
        after as f64 / MB,
        after.saturating_sub(before) as f64 / MB
    );
    // The response budget, plus the answers being produced at any moment (one per core) and
    // each connection's buffers.
    let bound = (budget_mb + 16) as f64 * MB + conns as f64 * 64.0 * 1024.0;
    assert!(
        (during.saturating_sub(before) as f64) < bound,
        "slow readers grew the server by {:.1} MB (bound {:.1} MB)",
        during.saturating_sub(before) as f64 / MB,
        bound / MB
    );
    assert!(
        (after.saturating_sub(before) as f64) < 16.0 * MB,
        "memory stayed {:.1} MB above the baseline after the readers left",
        after.saturating_sub(before) as f64 / MB
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_flood_is_cut_at_the_head_deadline_and_others_are_served_meanwhile() {
    // The timeout was per read: 2,000 connections trickling a header one byte at a time were
    // all still open after 150 s, and 1,074 of them took every descriptor.
    let conns = env_count("HEMATITE_SLOWLORIS_CONNS", 500);
    let server = spawn(&[("HEMATITE_HEADER_TIMEOUT", "3")]);
    let pid = server.child.id();
    let sas = sas();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss(pid);
    let mut flood = Vec::new();
    for _ in 0..conns {
        let mut s = TcpStream::connect(&server.addr).await.expect("connect");
        s.write_all(b"PUT /devstoreaccount1/slow HTTP/1.1\r\nHost: x\r\n")
            .await
            .expect("write");
        flood.push(s);
    }
    let trickle = async {
        for round in 0..6 {
            for s in flood.iter_mut() {
                let _ = s.write_all(format!("x-{round}: y\r\n").as_bytes()).await;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    };
    let served = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let during = rss(pid);
        let t = Instant::now();
        assert_eq!(
            call(&server.addr, &request("PUT", "meanwhile?x=1", &sas, "")).await,
            201
        );
        (t.elapsed(), during)
    };
    let (waited, during) = tokio::join!(trickle, served).1;
    eprintln!(
        "slowloris: {conns} trickling connections, RSS +{:.1} MB ({:.1} KiB each); another client answered in {:?}",
        during.saturating_sub(before) as f64 / MB,
        during.saturating_sub(before) as f64 / 1024.0 / conns as f64,
        waited
    );
    assert!(
        waited < Duration::from_secs(1),
        "another client waited {waited:?}"
    );
    // Every trickling connection is closed once its head has taken 3 s, trickle or not.
    let deadline = Instant::now() + Duration::from_secs(15);
    for s in flood.iter_mut() {
        let mut buf = [0u8; 256];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(_)) => {}
                Err(_) => panic!("a trickling connection was still open 15 s later"),
            }
        }
    }
}
