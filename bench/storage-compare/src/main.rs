//! storage-compare: redb (B-tree) against fjall (LSM) under Hematite's queue-store workload.
//!
//! Hand-run only, never in CI. It exists to choose the embedded KV under the durable queue
//! store by measurement (docs/decisions/0002-embedded-storage-engine.md has the figures).
//!
//! Both engines get the same logical schema and the same group commit:
//! - `msg`:  queue_id u64 BE ‖ seq u64 BE → 64-byte state (id, times, dequeue count, receipt)
//! - `body`: same key → 1 KiB body (pseudo-random bytes, so compression cannot flatter fjall)
//! - `vis`:  queue_id ‖ visible_at i64 BE (ms) ‖ seq → empty (the visibility index)
//! - put = 3 inserts; receive = range-scan `vis` from (qid, 0) to (qid, now) for the first key,
//!   delete it, insert (qid, now + 30 s, seq), rewrite `msg`; delete = remove msg, body, vis key.
//! - One committer thread owns the write handle. Clients send ops over a channel and block for
//!   the reply. The committer drains up to 1024 queued ops, applies them in ONE write
//!   transaction (redb, `Durability::Immediate`) or ONE write batch followed by ONE
//!   `Database::persist(PersistMode::SyncData)` (fjall), and only then replies: an
//!   acknowledged op is an fdatasync'ed op. Both engines call fdatasync (redb's file backend
//!   uses `sync_data`).
//!
//! Subcommands (all take `--engine redb|fjall` except `fsync`, and `--dir` for the data dir):
//! - `fsync`    raw 4 KiB write + fdatasync per op (append, then overwrite-in-place): the ceiling.
//! - `put`      N clients putting 1 KiB messages into one queue.
//! - `cycle`    prefill one queue to `--backlog`, then 16 clients do receive → delete → put
//!              (the put refills, so the backlog stays constant while the head churns and
//!              deleted `vis` keys — tombstones in an LSM — pile up at the queue head).
//! - `recovery` prefill 1M, clean close, timed reopen + count; then a child process loads
//!              the DB with 16 put clients, is killed with SIGKILL, and the reopen is timed and
//!              every acknowledged put is checked to be present.
//! - `space`    size after 1M puts, after deleting all, after 1M more put+delete, after compaction.
//! - `load`     (internal) the child process for `recovery`; prints `acked N` after each fsync.
//!
//! Cache: 64 MiB for both (`--cache-mib`). fjall keeps its default 64 MiB memtable per keyspace.
//! `--quick-repair` turns on redb's quick-repair (2-phase commit, fast crash recovery).

use std::collections::{HashMap, HashSet};
use std::error::Error;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

type R<T> = Result<T, Box<dyn Error + Send + Sync>>;

const BODY_LEN: usize = 1024;
const VIS_TIMEOUT_MS: i64 = 30_000;
const MAX_BATCH: usize = 1024;
const PREFILL_CHUNK: u64 = 10_000;
const QID: u64 = 1;

// ---------------------------------------------------------------- encoding

fn mkey(qid: u64, seq: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&qid.to_be_bytes());
    k[8..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn vkey(qid: u64, visible_at: i64, seq: u64) -> [u8; 24] {
    let mut k = [0u8; 24];
    k[..8].copy_from_slice(&qid.to_be_bytes());
    k[8..16].copy_from_slice(&visible_at.to_be_bytes());
    k[16..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn vkey_seq(k: &[u8]) -> u64 {
    u64::from_be_bytes(k[16..24].try_into().expect("vis key is 24 bytes"))
}

/// 64 bytes: id u128, inserted_at, expires_at, visible_at (i64), dequeue u32, receipt u128, pad.
fn msg_value(seq: u64, inserted_at: i64, visible_at: i64, dequeue: u32, receipt: u128) -> [u8; 64] {
    let mut v = [0u8; 64];
    v[..16].copy_from_slice(&(seq as u128 | 0xabcd << 64).to_be_bytes());
    v[16..24].copy_from_slice(&inserted_at.to_be_bytes());
    v[24..32].copy_from_slice(&(inserted_at + 7 * 86_400_000).to_be_bytes());
    v[32..40].copy_from_slice(&visible_at.to_be_bytes());
    v[40..44].copy_from_slice(&dequeue.to_be_bytes());
    v[44..60].copy_from_slice(&receipt.to_be_bytes());
    v
}

/// The receive rewrite: new visible_at, dequeue count + 1, new receipt.
fn msg_received(old: &[u8], visible_at: i64) -> R<[u8; 64]> {
    let mut v: [u8; 64] = old.try_into().map_err(|_| "msg value is not 64 bytes")?;
    v[32..40].copy_from_slice(&visible_at.to_be_bytes());
    let dq = u32::from_be_bytes(v[40..44].try_into()?) + 1;
    v[40..44].copy_from_slice(&dq.to_be_bytes());
    v[44..60].copy_from_slice(&((visible_at as u128) << 32 | dq as u128).to_be_bytes());
    Ok(v)
}

fn body(seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut b = Vec::with_capacity(BODY_LEN);
    while b.len() < BODY_LEN {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        b.extend_from_slice(&x.to_le_bytes());
    }
    b
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_millis() as i64
}

/// visible_at given to prefilled message `seq`: an hour ago, in seq order.
fn prefill_vis(base: i64, seq: u64) -> i64 {
    base + (seq / 1000) as i64
}

// ---------------------------------------------------------------- ops and stores

enum Op {
    Put { qid: u64, seq: u64, visible_at: i64, body: Vec<u8> },
    Receive { qid: u64, now: i64 },
    Delete { qid: u64, seq: u64, visible_at: i64 },
}

#[derive(Debug)]
enum Reply {
    Done,
    /// (seq, new visible_at) of the received message, or None if nothing was visible.
    Received(Option<(u64, i64)>),
}

trait Store: Send {
    /// Apply all `ops` in one write transaction made durable by one fdatasync.
    fn apply(&mut self, ops: &[Op], out: &mut Vec<Reply>) -> R<()>;
    /// Row counts of (msg, body, vis).
    fn counts(&self) -> R<(u64, u64, u64)>;
    /// Whatever manual compaction the engine offers.
    fn compact(&mut self) -> R<String>;
}

struct Opts {
    engine: String,
    dir: PathBuf,
    cache: usize,
    quick_repair: bool,
}

fn open(o: &Opts) -> R<Box<dyn Store>> {
    std::fs::create_dir_all(&o.dir)?;
    Ok(match o.engine.as_str() {
        "redb" => Box::new(RedbStore::open(o)?),
        "fjall" => Box::new(FjallStore::open(o)?),
        e => return Err(format!("unknown engine {e}").into()),
    })
}

// ---- redb

const MSG: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("msg");
const BODY: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("body");
const VIS: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("vis");

struct RedbStore {
    db: redb::Database,
    quick_repair: bool,
}

impl RedbStore {
    fn open(o: &Opts) -> R<Self> {
        let db = redb::Database::builder()
            .set_cache_size(o.cache)
            .create(o.dir.join("queue.redb"))?;
        let s = RedbStore { db, quick_repair: o.quick_repair };
        s.apply_txn(|_, _, _| Ok(()))?; // create the tables
        Ok(s)
    }

    fn apply_txn(
        &self,
        f: impl FnOnce(&mut redb::Table<&[u8], &[u8]>, &mut redb::Table<&[u8], &[u8]>, &mut redb::Table<&[u8], &[u8]>) -> R<()>,
    ) -> R<()> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(redb::Durability::Immediate)?;
        txn.set_quick_repair(self.quick_repair);
        {
            let mut msg = txn.open_table(MSG)?;
            let mut body = txn.open_table(BODY)?;
            let mut vis = txn.open_table(VIS)?;
            f(&mut msg, &mut body, &mut vis)?;
        }
        txn.commit()?;
        Ok(())
    }
}

impl Store for RedbStore {
    fn apply(&mut self, ops: &[Op], out: &mut Vec<Reply>) -> R<()> {
        self.apply_txn(|msg, body, vis| {
            for op in ops {
                out.push(match op {
                    Op::Put { qid, seq, visible_at, body: b } => {
                        let k = mkey(*qid, *seq);
                        msg.insert(&k[..], &msg_value(*seq, *visible_at, *visible_at, 0, 0)[..])?;
                        body.insert(&k[..], &b[..])?;
                        vis.insert(&vkey(*qid, *visible_at, *seq)[..], &[][..])?;
                        Reply::Done
                    }
                    Op::Receive { qid, now } => {
                        use redb::ReadableTable;
                        let (lo, hi) = (vkey(*qid, 0, 0), vkey(*qid, *now, u64::MAX));
                        let first = match vis.range(&lo[..]..=&hi[..])?.next() {
                            Some(r) => Some(r?.0.value().to_vec()),
                            None => None,
                        };
                        match first {
                            None => Reply::Received(None),
                            Some(vk) => {
                                let seq = vkey_seq(&vk);
                                let nv = now + VIS_TIMEOUT_MS;
                                vis.remove(&vk[..])?;
                                vis.insert(&vkey(*qid, nv, seq)[..], &[][..])?;
                                let k = mkey(*qid, seq);
                                let old = msg.get(&k[..])?.ok_or("vis key without msg")?.value().to_vec();
                                msg.insert(&k[..], &msg_received(&old, nv)?[..])?;
                                Reply::Received(Some((seq, nv)))
                            }
                        }
                    }
                    Op::Delete { qid, seq, visible_at } => {
                        let k = mkey(*qid, *seq);
                        msg.remove(&k[..])?;
                        body.remove(&k[..])?;
                        vis.remove(&vkey(*qid, *visible_at, *seq)[..])?;
                        Reply::Done
                    }
                });
            }
            Ok(())
        })
    }

    fn counts(&self) -> R<(u64, u64, u64)> {
        use redb::{ReadableDatabase, ReadableTableMetadata};
        let t = self.db.begin_read()?;
        Ok((t.open_table(MSG)?.len()?, t.open_table(BODY)?.len()?, t.open_table(VIS)?.len()?))
    }

    fn compact(&mut self) -> R<String> {
        let mut rounds = 0;
        while self.db.compact()? {
            rounds += 1;
        }
        Ok(format!("Database::compact() x{rounds}"))
    }
}

// ---- fjall

struct FjallStore {
    db: fjall::Database,
    msg: fjall::Keyspace,
    body: fjall::Keyspace,
    vis: fjall::Keyspace,
}

impl FjallStore {
    fn open(o: &Opts) -> R<Self> {
        let db = fjall::Database::builder(o.dir.join("fjall")).cache_size(o.cache as u64).open()?;
        let ks = |n: &str| db.keyspace(n, fjall::KeyspaceCreateOptions::default);
        let (msg, body, vis) = (ks("msg")?, ks("body")?, ks("vis")?);
        Ok(FjallStore { db, msg, body, vis })
    }
}

impl Store for FjallStore {
    fn apply(&mut self, ops: &[Op], out: &mut Vec<Reply>) -> R<()> {
        // A write batch cannot be read back before commit, so receives in one batch skip the
        // vis keys already claimed by an earlier receive of the same batch. (New vis keys a
        // receive writes are 30 s in the future, outside any scan of this batch.)
        let mut b = self.db.batch();
        let mut claimed: HashSet<[u8; 24]> = HashSet::new();
        for op in ops {
            out.push(match op {
                Op::Put { qid, seq, visible_at, body } => {
                    let k = mkey(*qid, *seq);
                    b.insert(&self.msg, &k[..], &msg_value(*seq, *visible_at, *visible_at, 0, 0)[..]);
                    b.insert(&self.body, &k[..], &body[..]);
                    b.insert(&self.vis, &vkey(*qid, *visible_at, *seq)[..], &[][..]);
                    Reply::Done
                }
                Op::Receive { qid, now } => {
                    let (lo, hi) = (vkey(*qid, 0, 0), vkey(*qid, *now, u64::MAX));
                    let mut found = None;
                    for g in self.vis.range(&lo[..]..=&hi[..]) {
                        let k: [u8; 24] = (&*g.key()?).try_into()?;
                        if !claimed.contains(&k) {
                            found = Some(k);
                            break;
                        }
                    }
                    match found {
                        None => Reply::Received(None),
                        Some(vk) => {
                            claimed.insert(vk);
                            let seq = vkey_seq(&vk);
                            let nv = now + VIS_TIMEOUT_MS;
                            b.remove(&self.vis, &vk[..]);
                            b.insert(&self.vis, &vkey(*qid, nv, seq)[..], &[][..]);
                            let k = mkey(*qid, seq);
                            let old = self.msg.get(&k[..])?.ok_or("vis key without msg")?;
                            b.insert(&self.msg, &k[..], &msg_received(&old, nv)?[..]);
                            Reply::Received(Some((seq, nv)))
                        }
                    }
                }
                Op::Delete { qid, seq, visible_at } => {
                    let k = mkey(*qid, *seq);
                    b.remove(&self.msg, &k[..]);
                    b.remove(&self.body, &k[..]);
                    b.remove(&self.vis, &vkey(*qid, *visible_at, *seq)[..]);
                    Reply::Done
                }
            });
        }
        b.commit()?;
        self.db.persist(fjall::PersistMode::SyncData)?;
        Ok(())
    }

    fn counts(&self) -> R<(u64, u64, u64)> {
        Ok((self.msg.len()? as u64, self.body.len()? as u64, self.vis.len()? as u64))
    }

    fn compact(&mut self) -> R<String> {
        for ks in [&self.msg, &self.body, &self.vis] {
            ks.rotate_memtable_and_wait()?;
            ks.major_compact()?;
        }
        Ok("rotate_memtable_and_wait() + major_compact() (doc(hidden)) on each keyspace".into())
    }
}

// ---------------------------------------------------------------- group commit

type Req = (Op, SyncSender<Reply>);

#[derive(Default)]
struct CommitStats {
    batches: AtomicU64,
    ops: AtomicU64,
}

/// Owns the store; applies everything queued (≤ MAX_BATCH) per transaction + fsync, then
/// replies. Returns the store when every client sender has gone.
fn committer(mut store: Box<dyn Store>, rx: Receiver<Req>, stats: Arc<CommitStats>, print_acked: bool) -> Box<dyn Store> {
    let (mut ops, mut tx, mut out) = (Vec::new(), Vec::new(), Vec::new());
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some((op, t)) = next {
            ops.push(op);
            tx.push(t);
            next = if ops.len() < MAX_BATCH { rx.try_recv().ok() } else { None };
        }
        out.clear();
        if let Err(e) = store.apply(&ops, &mut out) {
            eprintln!("FATAL: commit of {} ops failed: {e}", ops.len());
            std::process::exit(2);
        }
        stats.batches.fetch_add(1, Relaxed);
        let acked = stats.ops.fetch_add(ops.len() as u64, Relaxed) + ops.len() as u64;
        if print_acked {
            println!("acked {acked}");
        }
        for (t, r) in tx.drain(..).zip(out.drain(..)) {
            let _ = t.send(r);
        }
        ops.clear();
    }
    store
}

struct Client {
    tx: Sender<Req>,
    reply_tx: SyncSender<Reply>,
    reply_rx: Receiver<Reply>,
}

impl Client {
    fn new(tx: Sender<Req>) -> Self {
        let (reply_tx, reply_rx) = mpsc::sync_channel(1);
        Client { tx, reply_tx, reply_rx }
    }
    fn call(&self, op: Op) -> Reply {
        self.tx.send((op, self.reply_tx.clone())).expect("committer gone");
        self.reply_rx.recv().expect("committer gone")
    }
}

// ---------------------------------------------------------------- helpers

fn micros(d: Duration) -> u32 {
    d.as_micros().min(u32::MAX as u128) as u32
}

fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i] as f64 / 1000.0
}

fn lat(name: &str, mut v: Vec<u32>) -> String {
    v.sort_unstable();
    format!("{name}_p50_ms={:.2} {name}_p99_ms={:.2}", pct(&v, 0.50), pct(&v, 0.99))
}

fn proc_status(field: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field)).map(|l| l[field.len() + 1..].trim().to_string()))
        .unwrap_or_else(|| "?".into())
}

/// (apparent bytes, allocated bytes) of everything under `p`.
fn dir_size(p: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let (mut a, mut b) = (0, 0);
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => {
                    let (x, y) = dir_size(&e.path());
                    a += x;
                    b += y;
                }
                Ok(m) => {
                    a += m.len();
                    b += m.blocks() * 512;
                }
                Err(_) => {}
            }
        }
    }
    (a, b)
}

fn size_str(p: &Path) -> String {
    let (a, b) = dir_size(p);
    format!("{:.1}MiB(alloc {:.1}MiB)", a as f64 / 1048576.0, b as f64 / 1048576.0)
}

/// Fill queue `QID` with seqs [from, to) in transactions of PREFILL_CHUNK puts each.
fn prefill(store: &mut Box<dyn Store>, from: u64, to: u64, base: i64) -> R<()> {
    let mut out = Vec::new();
    let mut s = from;
    while s < to {
        let e = (s + PREFILL_CHUNK).min(to);
        let ops: Vec<Op> = (s..e)
            .map(|seq| Op::Put { qid: QID, seq, visible_at: prefill_vis(base, seq), body: body(seq) })
            .collect();
        out.clear();
        store.apply(&ops, &mut out)?;
        s = e;
    }
    Ok(())
}

fn delete_range(store: &mut Box<dyn Store>, from: u64, to: u64, base: i64) -> R<()> {
    let mut out = Vec::new();
    let mut s = from;
    while s < to {
        let e = (s + PREFILL_CHUNK).min(to);
        let ops: Vec<Op> =
            (s..e).map(|seq| Op::Delete { qid: QID, seq, visible_at: prefill_vis(base, seq) }).collect();
        out.clear();
        store.apply(&ops, &mut out)?;
        s = e;
    }
    Ok(())
}

/// Run `clients` threads against a fresh committer until `stop` says so. Each thread runs
/// `work(client, thread_index, &latency_vecs)` repeatedly. Returns the store, elapsed time and
/// commit stats.
fn with_clients<W>(
    store: Box<dyn Store>,
    clients: usize,
    work: W,
) -> (Box<dyn Store>, Vec<Vec<Vec<u32>>>, Duration, Arc<CommitStats>)
where
    W: Fn(&Client, usize, &mut Vec<Vec<u32>>) -> bool + Send + Sync + 'static,
{
    let (tx, rx) = mpsc::channel::<Req>();
    let stats = Arc::new(CommitStats::default());
    let st = stats.clone();
    let committer = std::thread::spawn(move || committer(store, rx, st, false));
    let work = Arc::new(work);
    let t0 = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|i| {
            let c = Client::new(tx.clone());
            let w = work.clone();
            std::thread::spawn(move || {
                let mut lats = Vec::new();
                while w(&c, i, &mut lats) {}
                lats
            })
        })
        .collect();
    drop(tx);
    let lats: Vec<_> = handles.into_iter().map(|h| h.join().expect("client panicked")).collect();
    let elapsed = t0.elapsed();
    let store = committer.join().expect("committer panicked");
    (store, lats, elapsed, stats)
}

fn merge(lats: &[Vec<Vec<u32>>], idx: usize) -> Vec<u32> {
    lats.iter().filter_map(|l| l.get(idx)).flatten().copied().collect()
}

fn avg_batch(s: &CommitStats) -> f64 {
    s.ops.load(Relaxed) as f64 / s.batches.load(Relaxed).max(1) as f64
}

// ---------------------------------------------------------------- subcommands

fn cmd_fsync(dir: &Path, secs: f64) -> R<()> {
    std::fs::create_dir_all(dir)?;
    let buf = vec![0x5au8; 4096];
    for mode in ["append", "overwrite"] {
        let path = dir.join(format!("fsync-{mode}.dat"));
        let f = std::fs::OpenOptions::new().create(true).write(true).truncate(true).open(&path)?;
        if mode == "overwrite" {
            for i in 0..256u64 {
                f.write_all_at(&buf, i * 4096)?;
            }
            f.sync_all()?;
        }
        let mut lats = Vec::new();
        let t0 = Instant::now();
        let mut i = 0u64;
        while t0.elapsed().as_secs_f64() < secs {
            let t = Instant::now();
            let off = if mode == "append" { i * 4096 } else { (i % 256) * 4096 };
            f.write_all_at(&buf, off)?;
            f.sync_data()?;
            lats.push(micros(t.elapsed()));
            i += 1;
        }
        let el = t0.elapsed().as_secs_f64();
        println!("RESULT fsync mode={mode} ops={i} ops_per_s={:.0} {}", i as f64 / el, lat("op", lats));
        std::fs::remove_file(&path)?;
    }
    Ok(())
}

fn cmd_put(o: &Opts, clients: usize, ops: u64, secs: f64) -> R<()> {
    let store = open(o)?;
    let next = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let n = next.clone();
    let (store, lats, el, stats) = with_clients(store, clients, move |c, _, lats| {
        let seq = n.fetch_add(1, Relaxed);
        if seq >= ops || Instant::now() >= deadline {
            return false;
        }
        let b = body(seq);
        let t = Instant::now();
        c.call(Op::Put { qid: QID, seq, visible_at: now_ms(), body: b });
        if lats.is_empty() {
            lats.push(Vec::new());
        }
        lats[0].push(micros(t.elapsed()));
        true
    });
    let done = stats.ops.load(Relaxed);
    let (m, _, _) = store.counts()?;
    println!(
        "RESULT put engine={} clients={clients} ops={done} secs={:.1} ops_per_s={:.0} batches={} avg_batch={:.1} {} rows={m} size={}",
        o.engine,
        el.as_secs_f64(),
        done as f64 / el.as_secs_f64(),
        stats.batches.load(Relaxed),
        avg_batch(&stats),
        lat("put", merge(&lats, 0)),
        size_str(&o.dir)
    );
    Ok(())
}

fn cmd_cycle(o: &Opts, backlog: u64, clients: usize, cycles: u64, secs: f64) -> R<()> {
    let mut store = open(o)?;
    let base = now_ms() - 3_600_000;
    let t = Instant::now();
    prefill(&mut store, 0, backlog, base)?;
    println!(
        "INFO cycle engine={} prefill={backlog} prefill_s={:.1} VmRSS={} VmHWM={} size={}",
        o.engine,
        t.elapsed().as_secs_f64(),
        proc_status("VmRSS:"),
        proc_status("VmHWM:"),
        size_str(&o.dir)
    );

    let next_seq = Arc::new(AtomicU64::new(backlog));
    let started = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let empty = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let (ns, st, dn, em, sp) = (next_seq.clone(), started.clone(), done.clone(), empty.clone(), stop.clone());

    // Progress monitor: cycles/s per 5 s window, to see any slowdown as tombstones pile up.
    let (dm, spm) = (done.clone(), stop.clone());
    let monitor = std::thread::spawn(move || {
        let mut windows = Vec::new();
        let (mut last, mut lt) = (0, Instant::now());
        while !spm.load(Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
            if lt.elapsed() >= Duration::from_secs(5) {
                let d = dm.load(Relaxed);
                windows.push(((d - last) as f64 / lt.elapsed().as_secs_f64()) as u64);
                last = d;
                lt = Instant::now();
            }
        }
        windows
    });

    let (store, lats, el, stats) = with_clients(store, clients, move |c, _, lats| {
        if st.fetch_add(1, Relaxed) >= cycles || Instant::now() >= deadline {
            return false;
        }
        if lats.is_empty() {
            lats.resize(4, Vec::new());
        }
        let t0 = Instant::now();
        let got = match c.call(Op::Receive { qid: QID, now: now_ms() }) {
            Reply::Received(g) => g,
            r => panic!("unexpected reply {r:?}"),
        };
        let t1 = Instant::now();
        lats[0].push(micros(t1 - t0));
        let Some((seq, vis)) = got else {
            em.fetch_add(1, Relaxed);
            return true;
        };
        c.call(Op::Delete { qid: QID, seq, visible_at: vis });
        let t2 = Instant::now();
        lats[1].push(micros(t2 - t1));
        let s = ns.fetch_add(1, Relaxed);
        c.call(Op::Put { qid: QID, seq: s, visible_at: now_ms(), body: body(s) });
        let t3 = Instant::now();
        lats[2].push(micros(t3 - t2));
        lats[3].push(micros(t3 - t0));
        dn.fetch_add(1, Relaxed);
        true
    });
    sp.store(true, Relaxed);
    let windows = monitor.join().expect("monitor panicked");
    let n = done.load(Relaxed);
    let (m, b, v) = store.counts()?;
    println!(
        "RESULT cycle engine={} backlog={backlog} clients={clients} cycles={n} empty_receives={} secs={:.1} cycles_per_s={:.0} ops_per_s={:.0} avg_batch={:.1} {} {} {} {} rows={m}/{b}/{v} size={}",
        o.engine,
        empty.load(Relaxed),
        el.as_secs_f64(),
        n as f64 / el.as_secs_f64(),
        stats.ops.load(Relaxed) as f64 / el.as_secs_f64(),
        avg_batch(&stats),
        lat("recv", merge(&lats, 0)),
        lat("del", merge(&lats, 1)),
        lat("put", merge(&lats, 2)),
        lat("cycle", merge(&lats, 3)),
        size_str(&o.dir)
    );
    println!("INFO cycle engine={} backlog={backlog} cycles_per_s_per_5s_window={windows:?}", o.engine);
    Ok(())
}

fn cmd_load(o: &Opts, clients: usize) -> R<()> {
    // Child of `recovery`: put into queue 2 until killed; the committer prints `acked N`
    // after each fdatasync, before replying.
    let store = open(o)?;
    let (tx, rx) = mpsc::channel::<Req>();
    let stats = Arc::new(CommitStats::default());
    let st = stats.clone();
    let next = Arc::new(AtomicU64::new(0));
    for _ in 0..clients {
        let c = Client::new(tx.clone());
        let n = next.clone();
        std::thread::spawn(move || loop {
            let seq = n.fetch_add(1, Relaxed);
            c.call(Op::Put { qid: 2, seq, visible_at: now_ms(), body: body(seq) });
        });
    }
    drop(tx);
    committer(store, rx, st, true);
    Ok(())
}

fn cmd_recovery(o: &Opts, count: u64, kill_after: f64) -> R<()> {
    let mut store = open(o)?;
    let t = Instant::now();
    prefill(&mut store, 0, count, now_ms() - 3_600_000)?;
    let fill_s = t.elapsed().as_secs_f64();
    let (rss, hwm) = (proc_status("VmRSS:"), proc_status("VmHWM:"));
    let t = Instant::now();
    drop(store);
    let close_s = t.elapsed().as_secs_f64();
    println!(
        "RESULT prefill engine={} count={count} prefill_s={fill_s:.1} VmRSS={rss} VmHWM={hwm} close_s={close_s:.2} size={}",
        o.engine,
        size_str(&o.dir)
    );

    let t = Instant::now();
    let store = open(o)?;
    let open_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let (m, b, v) = store.counts()?;
    println!(
        "RESULT reopen-clean engine={} open_s={open_s:.3} count_s={:.2} rows={m}/{b}/{v} intact={}",
        o.engine,
        t.elapsed().as_secs_f64(),
        m == count && b == count && v == count
    );
    drop(store);

    // Crash: a child loads the DB with 16 put clients; SIGKILL it mid-load.
    let mut cmd = std::process::Command::new(std::env::current_exe()?);
    cmd.args(["load", "--engine", &o.engine, "--dir"]).arg(&o.dir);
    cmd.args(["--cache-mib", &(o.cache >> 20).to_string(), "--clients", "16"]);
    if o.quick_repair {
        cmd.arg("--quick-repair");
    }
    let mut child = cmd.stdout(std::process::Stdio::piped()).spawn()?;
    let mut lines = BufReader::new(child.stdout.take().ok_or("no child stdout")?).lines();
    let mut acked = 0u64;
    let mut first_ack = None;
    while let Some(l) = lines.next() {
        acked = acked.max(l?.trim_start_matches("acked ").parse()?);
        let f = *first_ack.get_or_insert_with(Instant::now);
        if f.elapsed().as_secs_f64() >= kill_after {
            break;
        }
    }
    child.kill()?; // SIGKILL
    let status = child.wait()?;
    for l in lines {
        // lines already in the pipe were printed after their fdatasync: they count as acked
        acked = acked.max(l?.trim_start_matches("acked ").parse()?);
    }
    let t = Instant::now();
    let store = open(o)?;
    let open_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let (m, b, v) = store.counts()?;
    let extra = m.saturating_sub(count);
    println!(
        "RESULT reopen-crash engine={} quick_repair={} child={status} acked_before_kill={acked} open_s={open_s:.3} count_s={:.2} rows={m}/{b}/{v} recovered_puts={extra} intact={}",
        o.engine,
        o.quick_repair,
        t.elapsed().as_secs_f64(),
        m == b && b == v && extra >= acked
    );
    Ok(())
}

fn cmd_space(o: &Opts, count: u64, idle: f64) -> R<()> {
    let mut store = open(o)?;
    let base = now_ms() - 3_600_000;
    let report = |what: &str, store: &Box<dyn Store>| -> R<()> {
        let (m, b, v) = store.counts()?;
        println!("RESULT space engine={} after={what} size={} rows={m}/{b}/{v}", o.engine, size_str(&o.dir));
        Ok(())
    };
    let idle_wait = |what: &str, store: &Box<dyn Store>| -> R<()> {
        std::thread::sleep(Duration::from_secs_f64(idle));
        report(&format!("{what}+idle{idle:.0}s"), store)
    };
    let t = Instant::now();
    prefill(&mut store, 0, count, base)?;
    println!("INFO space engine={} fill_s={:.1}", o.engine, t.elapsed().as_secs_f64());
    report("fill", &store)?;
    let t = Instant::now();
    delete_range(&mut store, 0, count, base)?;
    println!("INFO space engine={} delete_s={:.1}", o.engine, t.elapsed().as_secs_f64());
    report("delete-all", &store)?;
    idle_wait("delete-all", &store)?;
    // Churn: another `count` messages, each chunk put then deleted (queue stays near-empty).
    let t = Instant::now();
    let mut s = count;
    while s < 2 * count {
        let e = (s + PREFILL_CHUNK).min(2 * count);
        prefill(&mut store, s, e, base)?;
        delete_range(&mut store, s, e, base)?;
        s = e;
    }
    println!("INFO space engine={} churn_s={:.1}", o.engine, t.elapsed().as_secs_f64());
    report("churn", &store)?;
    idle_wait("churn", &store)?;
    let t = Instant::now();
    let how = store.compact()?;
    println!("INFO space engine={} compact_s={:.1} via {how}", o.engine, t.elapsed().as_secs_f64());
    report("manual-compact", &store)?;
    Ok(())
}

// ---------------------------------------------------------------- main

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> R<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cmd = args.first().ok_or("usage: storage-compare <fsync|put|cycle|recovery|space> [--flags]")?.clone();
    let mut flags = HashMap::new();
    let mut it = args[1..].iter();
    while let Some(a) = it.next() {
        let k = a.strip_prefix("--").ok_or_else(|| format!("bad argument {a}"))?;
        if k == "quick-repair" || k == "keep" {
            flags.insert(k.to_string(), "1".to_string());
        } else {
            flags.insert(k.to_string(), it.next().ok_or_else(|| format!("--{k} needs a value"))?.clone());
        }
    }
    let get = |k: &str, d: &str| flags.get(k).cloned().unwrap_or_else(|| d.to_string());
    let num = |k: &str, d: &str| -> R<f64> { Ok(get(k, d).parse::<f64>()?) };
    let engine = get("engine", "redb");
    let dir = PathBuf::from(get("dir", &format!("/tmp/storage-compare-data/{engine}-{cmd}")));
    let o = Opts {
        engine,
        dir: dir.clone(),
        cache: (num("cache-mib", "64")? as usize) << 20,
        quick_repair: flags.contains_key("quick-repair"),
    };
    let fresh = || -> R<()> {
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        Ok(())
    };
    match cmd.as_str() {
        "fsync" => {
            fresh()?;
            cmd_fsync(&dir, num("secs", "5")?)?
        }
        "put" => {
            fresh()?;
            cmd_put(&o, num("clients", "16")? as usize, num("ops", "100000")? as u64, num("secs", "10")?)?
        }
        "cycle" => {
            fresh()?;
            let backlog = num("backlog", "1000")? as u64;
            cmd_cycle(&o, backlog, num("clients", "16")? as usize, num("cycles", "200000")? as u64, num("secs", "30")?)?
        }
        "recovery" => {
            fresh()?;
            cmd_recovery(&o, num("count", "1000000")? as u64, num("kill-after", "3")?)?
        }
        "space" => {
            fresh()?;
            cmd_space(&o, num("count", "1000000")? as u64, num("idle", "10")?)?
        }
        "load" => return cmd_load(&o, num("clients", "16")? as usize),
        c => return Err(format!("unknown subcommand {c}").into()),
    }
    std::io::stdout().flush()?;
    if !flags.contains_key("keep") && dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(())
}
