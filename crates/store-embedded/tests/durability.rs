//! Durability of the embedded store: restart, fault injection through the I/O seam, simulated
//! power loss with torn writes, damaged files, and background reclaim. Each test opens with
//! the bug it guards against.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hematite_engine::clock::test_clock;
use hematite_engine::{
    AccessPolicy, Engine, ManualClock, Metadata, QueueRef, SendOptions, Store, StoreErrorKind,
    Timestamp, Ttl,
};
use hematite_store_embedded::faults::{Faults, FaultyBackend};
use hematite_store_embedded::{Durability, EmbeddedStore, OpenError, Options, FILE_NAME};

fn scratch(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "durability-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    dir
}

fn open(dir: &Path, clock: &Arc<ManualClock>) -> EmbeddedStore {
    EmbeddedStore::open(dir, Options::default(), clock.clone()).expect("open")
}

fn open_faulty(
    dir: &Path,
    clock: &Arc<ManualClock>,
    faults: &Arc<Faults>,
    options: Options,
) -> EmbeddedStore {
    let path = dir.join(FILE_NAME);
    let f = faults.clone();
    EmbeddedStore::open_with_backend(path.clone(), options, clock.clone(), move || {
        FaultyBackend::open(&path, f.clone())
    })
    .expect("open faulty")
}

fn engine(store: &EmbeddedStore, clock: &Arc<ManualClock>) -> Engine {
    Engine::new(Arc::new(store.clone()) as Arc<dyn Store>, clock.clone())
}

const Q: QueueRef<'static> = QueueRef {
    account: "acct",
    queue: "q",
};

fn opts(ttl: Ttl) -> SendOptions {
    SendOptions {
        visibility_delay: Duration::ZERO,
        ttl,
    }
}

fn body(i: usize) -> Vec<u8> {
    format!("message {i} {}", "x".repeat(i % 200)).into_bytes()
}

async fn fill(e: &Engine, n: usize) -> Vec<hematite_engine::Message> {
    let mut out = Vec::new();
    for i in 0..n {
        out.push(e.send(Q, body(i), opts(Ttl::Never)).await.expect("send"));
    }
    out
}

/// Every message still receivable, in order, with its body.
async fn drain_bodies(e: &Engine) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let got = e.peek(Q, 32).await.expect("peek");
        if got.is_empty() {
            break;
        }
        for m in got {
            let r = e
                .receive(Q, 1, Duration::from_secs(60))
                .await
                .expect("recv");
            assert_eq!(r[0].id, m.id);
            e.delete_message(Q, r[0].id, r[0].receipt)
                .await
                .expect("delete");
            out.push(m.body);
        }
    }
    out
}

#[tokio::test]
async fn restart_preserves_everything_leases_included() {
    // Guards against state kept only in memory: every field must come back from disk,
    // including a lease (still invisible, receipt still valid) and the sequence counter.
    let dir = scratch("restart");
    let clock = Arc::new(test_clock());
    let policy = AccessPolicy {
        id: "p1".into(),
        start: Some(Timestamp::from_millis(1_000)),
        expiry: None,
        permissions: Some("raup".into()),
    };
    let (leased, last_seq) = {
        let store = open(&dir, &clock);
        let e = engine(&store, &clock);
        e.create_queue(Q, Metadata(vec![("Color".into(), "red".into())]))
            .await
            .expect("create");
        e.set_access_policies(Q, vec![policy.clone()])
            .await
            .expect("acl");
        e.set_account_document("acct", "props", b"<doc/>".to_vec())
            .await
            .expect("doc");
        let put = fill(&e, 10).await;
        let leased = e
            .receive(Q, 2, Duration::from_secs(300))
            .await
            .expect("recv");
        (leased, put.last().expect("put").sequence)
    };
    let store = open(&dir, &clock);
    let e = engine(&store, &clock);
    let info = e.queue_info(Q).await.expect("info");
    assert_eq!(
        info.metadata,
        Metadata(vec![("Color".into(), "red".into())])
    );
    assert_eq!(info.message_count, 10);
    assert_eq!(e.access_policies(Q).await.expect("acl"), vec![policy]);
    assert_eq!(
        e.account_document("acct", "props")
            .await
            .expect("doc")
            .as_deref(),
        Some(&b"<doc/>"[..])
    );
    // The two leased messages stay invisible until their lease ends...
    let visible = e.peek(Q, 32).await.expect("peek");
    assert_eq!(visible.len(), 8);
    assert!(visible.iter().all(|m| leased.iter().all(|l| l.id != m.id)));
    // ...and their receipts still work.
    let u = e
        .update_message(Q, leased[0].id, leased[0].receipt, Duration::ZERO, None)
        .await
        .expect("update with pre-restart receipt");
    assert_eq!(u.dequeue_count, 1);
    e.delete_message(Q, leased[1].id, leased[1].receipt)
        .await
        .expect("delete with pre-restart receipt");
    // Sequence numbers continue past the last one written before the restart.
    let next = e
        .send(Q, b"after".to_vec(), opts(Ttl::Never))
        .await
        .expect("send");
    assert!(next.sequence > last_seq);
    clock.advance(Duration::from_secs(301));
    assert_eq!(drain_bodies(&e).await.len(), 10);
}

#[tokio::test]
async fn failed_fsync_fails_the_batch_and_service_resumes() {
    // Guards against acknowledging a write whose fsync failed, and against a store that stays
    // broken (or silently corrupt) after the disk recovers.
    let dir = scratch("fsync");
    let clock = Arc::new(test_clock());
    let faults = Faults::new();
    let store = open_faulty(&dir, &clock, &faults, Options::default());
    let e = engine(&store, &clock);
    e.create_queue(Q, Metadata::default())
        .await
        .expect("create");
    let acked = fill(&e, 5).await;
    faults.fail_sync.store(true, Ordering::SeqCst);
    let err = e
        .send(Q, b"lost?".to_vec(), opts(Ttl::Never))
        .await
        .expect_err("fsync failed");
    let hematite_engine::Error::Storage(s) = err else {
        panic!("expected a storage error, got {err:?}")
    };
    // EIO is an internal error (500); the store then reopens, answering 503 meanwhile.
    assert_eq!(s.kind, StoreErrorKind::Other, "{s}");
    // While the disk is failing, writes keep failing rather than pretending.
    assert!(e.send(Q, b"x".to_vec(), opts(Ttl::Never)).await.is_err());
    faults.fail_sync.store(false, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match e
            .send(Q, b"after recovery".to_vec(), opts(Ttl::Never))
            .await
        {
            Ok(_) => break,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(err) => panic!("store did not resume: {err:?}"),
        }
    }
    let bodies = drain_bodies(&e).await;
    for m in &acked {
        assert!(bodies.contains(&m.body), "acknowledged message lost");
    }
    assert_eq!(
        bodies.last().map(Vec::as_slice),
        Some(&b"after recovery"[..])
    );
}

#[tokio::test]
async fn full_disk_answers_unavailable_and_resumes_when_space_returns() {
    // Guards against a full disk corrupting the file or wedging the store for good.
    let dir = scratch("enospc");
    let clock = Arc::new(test_clock());
    let faults = Faults::new();
    let store = open_faulty(&dir, &clock, &faults, Options::default());
    let e = engine(&store, &clock);
    e.create_queue(Q, Metadata::default())
        .await
        .expect("create");
    let acked = fill(&e, 20).await;
    faults.space_left.store(0, Ordering::SeqCst);
    let err = e
        .send(Q, vec![b'z'; 4096], opts(Ttl::Never))
        .await
        .expect_err("disk full");
    let hematite_engine::Error::Storage(s) = err else {
        panic!("expected a storage error, got {err:?}")
    };
    assert_eq!(s.kind, StoreErrorKind::Unavailable, "{s}");
    faults.unlimited_space();
    let deadline = Instant::now() + Duration::from_secs(10);
    while e
        .send(Q, b"space again".to_vec(), opts(Ttl::Never))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "store did not resume after space returned"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(e);
    drop(store);
    // And the file is sound when opened afresh.
    let store = open(&dir, &clock);
    let e = engine(&store, &clock);
    let bodies = drain_bodies(&e).await;
    for m in &acked {
        assert!(bodies.contains(&m.body), "acknowledged message lost");
    }
    assert!(bodies.contains(&b"space again".to_vec()));
}

#[tokio::test]
async fn power_loss_with_torn_writes_keeps_every_acknowledged_write() {
    // Guards against trusting writes the disk never made durable: after a simulated power cut
    // that drops or tears every unsynced write, the file opens, every acknowledged (fsynced)
    // message is intact, and no message is half-written. Several seeds, each replayable.
    for seed in 1..=12u64 {
        let dir = scratch("powerloss");
        let clock = Arc::new(test_clock());
        let faults = Faults::new();
        let acked = {
            let store = open_faulty(&dir, &clock, &faults, Options::default());
            let e = engine(&store, &clock);
            e.create_queue(Q, Metadata::default())
                .await
                .expect("create");
            let acked = fill(&e, 30).await;
            // Leave more writes in flight that never reach an fsync: relaxed-style work is
            // simulated by failing the syncs of these last batches.
            faults.fail_sync.store(true, Ordering::SeqCst);
            for i in 0..10 {
                let _ = e.send(Q, body(1000 + i), opts(Ttl::Never)).await;
            }
            acked
        };
        faults.fail_sync.store(false, Ordering::SeqCst);
        faults.crash(&dir.join(FILE_NAME), seed).expect("crash");
        let store = EmbeddedStore::open(&dir, Options::default(), clock.clone())
            .unwrap_or_else(|e| panic!("seed {seed}: file did not open after power loss: {e}"));
        let e = engine(&store, &clock);
        let bodies = drain_bodies(&e).await;
        for m in &acked {
            assert!(
                bodies.contains(&m.body),
                "seed {seed}: acknowledged message lost"
            );
        }
        for b in &bodies {
            let ok = (0..30).chain(1000..1010).any(|i| *b == body(i));
            assert!(
                ok,
                "seed {seed}: a message came back altered: {:?}",
                String::from_utf8_lossy(b)
            );
        }
    }
}

#[tokio::test]
async fn relaxed_durability_flushes_within_its_interval() {
    // Guards against the relaxed mode never syncing: after the interval, a power cut must not
    // lose what was acknowledged before it.
    let dir = scratch("relaxed");
    let clock = Arc::new(test_clock());
    let faults = Faults::new();
    let options = Options {
        durability: Durability::Relaxed {
            flush_every: Duration::from_millis(50),
        },
        ..Options::default()
    };
    {
        let store = open_faulty(&dir, &clock, &faults, options);
        let e = engine(&store, &clock);
        e.create_queue(Q, Metadata::default())
            .await
            .expect("create");
        fill(&e, 10).await;
        tokio::time::sleep(Duration::from_millis(400)).await;
        // From here on nothing reaches the disk.
        faults.fail_sync.store(true, Ordering::SeqCst);
    }
    faults.fail_sync.store(false, Ordering::SeqCst);
    faults.crash(&dir.join(FILE_NAME), 7).expect("crash");
    let store = open(&dir, &clock);
    let e = engine(&store, &clock);
    assert_eq!(drain_bodies(&e).await.len(), 10);
}

#[tokio::test]
async fn damaged_files_are_refused_or_every_message_is_intact() {
    // Guards against silently starting empty, with part of the data, or with altered data when
    // the file was damaged while the server was down. Damage that lands only in free pages loses
    // nothing, so for partial damage the rule is: refuse with a clear error naming the file, or
    // open with every message intact. Damage to every page must be refused.
    let clock = Arc::new(test_clock());
    type Damage = (&'static str, bool, fn(&Path));
    let damage: [Damage; 3] = [
        ("truncated to half", false, |path| {
            let len = std::fs::metadata(path).expect("meta").len();
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .expect("open");
            f.set_len(len / 2).expect("truncate");
        }),
        ("one block flipped", false, |path| {
            let mut bytes = std::fs::read(path).expect("read");
            let mid = bytes.len() / 2;
            for b in &mut bytes[mid..mid + 4096] {
                *b ^= 0x5a;
            }
            std::fs::write(path, bytes).expect("write");
        }),
        ("a byte flipped in every page", true, |path| {
            let mut bytes = std::fs::read(path).expect("read");
            let mut at = 8192 + 100;
            while at < bytes.len() {
                bytes[at] ^= 0xff;
                at += 4096;
            }
            std::fs::write(path, bytes).expect("write");
        }),
    ];
    for (what, must_refuse, damage) in damage {
        let dir = scratch("damaged");
        {
            let store = open(&dir, &clock);
            let e = engine(&store, &clock);
            e.create_queue(Q, Metadata::default())
                .await
                .expect("create");
            fill(&e, 300).await;
        }
        damage(&dir.join(FILE_NAME));
        match EmbeddedStore::open(&dir, Options::default(), clock.clone()) {
            Err(err) => {
                let msg = err.to_string();
                assert!(
                    msg.contains(FILE_NAME),
                    "{what}: message names the file: {msg}"
                );
                assert!(
                    matches!(err, OpenError::Corrupt { .. } | OpenError::Other { .. }),
                    "{what}: {msg}"
                );
            }
            Ok(store) => {
                assert!(
                    !must_refuse,
                    "{what}: a file damaged in every page was opened"
                );
                let e = engine(&store, &clock);
                let bodies = drain_bodies(&e).await;
                let expected: Vec<Vec<u8>> = (0..300).map(body).collect();
                assert_eq!(bodies, expected, "{what}: opened, but the data changed");
            }
        }
    }
}

#[tokio::test]
async fn a_newer_format_is_refused() {
    // Guards against a build reading data written in a format it does not understand.
    let dir = scratch("format");
    let clock = Arc::new(test_clock());
    drop(open(&dir, &clock));
    {
        let db = redb::Database::create(dir.join(FILE_NAME)).expect("raw open");
        let txn = db.begin_write().expect("txn");
        txn.open_table(hematite_store_embedded::schema::META)
            .expect("meta")
            .insert(hematite_store_embedded::schema::META_FORMAT, 99)
            .expect("insert");
        txn.commit().expect("commit");
    }
    let err = EmbeddedStore::open(&dir, Options::default(), clock)
        .err()
        .expect("refused");
    assert!(matches!(err, OpenError::Format { found: 99, .. }), "{err}");
    assert!(err.to_string().contains("format version 99"), "{err}");
}

#[tokio::test]
async fn a_second_process_cannot_open_the_same_directory() {
    // Guards against two servers writing one file.
    let dir = scratch("locked");
    let clock = Arc::new(test_clock());
    let _first = open(&dir, &clock);
    let err = EmbeddedStore::open(&dir, Options::default(), clock)
        .err()
        .expect("refused");
    assert!(matches!(err, OpenError::InUse { .. }), "{err}");
}

async fn wait_for(
    store: &EmbeddedStore,
    what: &str,
    done: impl Fn(&hematite_store_embedded::RowCounts) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rows = store.row_counts().expect("rows");
        if done(&rows) {
            return;
        }
        assert!(Instant::now() < deadline, "{what} not reclaimed: {rows:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn cleared_deleted_and_expired_rows_are_reclaimed_in_the_background() {
    // Guards against space leaking: Clear and Delete Queue are O(1) and leave rows behind for
    // the background to reclaim, and expired messages must leave the disk, not just the answers.
    let dir = scratch("reclaim");
    let clock = Arc::new(test_clock());
    let store = open(&dir, &clock);
    let e = engine(&store, &clock);
    e.create_queue(Q, Metadata::default())
        .await
        .expect("create");
    fill(&e, 2500).await;
    e.clear_messages(Q).await.expect("clear");
    assert_eq!(e.queue_info(Q).await.expect("info").message_count, 0);
    wait_for(&store, "cleared queue", |r| {
        r.messages == 0 && r.bodies == 0 && r.doomed == 0
    })
    .await;

    let other = QueueRef::new("acct", "gone");
    e.create_queue(other, Metadata::default())
        .await
        .expect("create");
    for i in 0..1500 {
        e.send(other, body(i), opts(Ttl::Never))
            .await
            .expect("send");
    }
    e.delete_queue(other).await.expect("delete");
    wait_for(&store, "deleted queue", |r| {
        r.messages == 0 && r.ids == 0 && r.queues == 1
    })
    .await;

    for i in 0..1200 {
        e.send(Q, body(i), opts(Ttl::After(Duration::from_secs(10))))
            .await
            .expect("send");
    }
    e.send(Q, b"keeper".to_vec(), opts(Ttl::Never))
        .await
        .expect("send");
    clock.advance(Duration::from_secs(11));
    wait_for(&store, "expired messages", |r| {
        r.messages == 1 && r.expiry == 1 && r.visibility == 1
    })
    .await;
    assert_eq!(drain_bodies(&e).await, vec![b"keeper".to_vec()]);
}

#[tokio::test]
async fn a_large_backlog_stays_correct_and_isolated() {
    // The bounded-size variant of the 1M-backlog benchmark: a deep queue beside a shallow one.
    // Receiving from either touches only its own rows, in order, whatever the other holds.
    let dir = scratch("backlog");
    let clock = Arc::new(test_clock());
    let store = open(&dir, &clock);
    let e = engine(&store, &clock);
    let deep = QueueRef::new("acct", "deep");
    let shallow = QueueRef::new("other", "shallow");
    e.create_queue(deep, Metadata::default())
        .await
        .expect("create");
    e.create_queue(shallow, Metadata::default())
        .await
        .expect("create");
    let n = 20_000usize;
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..16usize {
        let e = e.clone();
        tasks.spawn(async move {
            for i in (w..n).step_by(16) {
                e.send(deep, (i as u64).to_be_bytes().to_vec(), opts(Ttl::Never))
                    .await
                    .expect("send");
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("task");
    }
    e.send(shallow, b"only".to_vec(), opts(Ttl::Never))
        .await
        .expect("send");
    assert_eq!(
        e.queue_info(deep).await.expect("info").message_count,
        n as u64
    );
    let got = e
        .receive(shallow, 32, Duration::from_secs(30))
        .await
        .expect("recv");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, b"only");
    // Receive + delete cycles from the deep queue, oldest first; deletes run concurrently, as
    // real consumers' do, so they share fsyncs.
    let mut last_seq = None;
    for _ in 0..200 {
        let got = e
            .receive(deep, 32, Duration::from_secs(30))
            .await
            .expect("recv");
        assert_eq!(got.len(), 32);
        let mut deletes = tokio::task::JoinSet::new();
        for m in got {
            assert!(last_seq.is_none_or(|s| m.sequence > s), "out of order");
            last_seq = Some(m.sequence);
            let e = e.clone();
            deletes.spawn(async move { e.delete_message(deep, m.id, m.receipt).await });
        }
        while let Some(r) = deletes.join_next().await {
            r.expect("task").expect("delete");
        }
    }
    assert_eq!(
        e.queue_info(deep).await.expect("info").message_count,
        (n - 6_400) as u64
    );
}
