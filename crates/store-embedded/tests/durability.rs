//! Durability of the embedded store: restart, fault injection through the I/O seam, simulated
//! power loss with torn writes, damaged files, and background reclaim. Each test opens with
//! the bug it guards against.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hematite_engine::clock::test_clock;
use hematite_engine::{
    AccessPolicy, Clock, DeadLetterInfo, Engine, LeaseRules, ManualClock, MessageState, Metadata,
    Outgoing, QueueRef, QueueSettings, SendOptions, Settlement, Store, StoreErrorKind, SubQueue,
    Timestamp, Ttl,
};
use hematite_store_embedded::faults::{Faults, FaultyDisk};
use hematite_store_embedded::{Durability, EmbeddedStore, OpenError, Options};

fn scratch(name: &str) -> PathBuf {
    let dir = common::scratch(&format!("durability-{name}"));
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
    let disk = Arc::new(FaultyDisk::new(faults.clone()));
    EmbeddedStore::open_with_disk(dir, options, clock.clone(), disk).expect("open faulty")
}

/// A store on a disk whose faults the test sets, holding queue [`Q`].
struct Faulty {
    dir: PathBuf,
    clock: Arc<ManualClock>,
    faults: Arc<Faults>,
    store: EmbeddedStore,
    e: Engine,
}

async fn faulty_with_queue(name: &str) -> Faulty {
    let dir = scratch(name);
    let clock = Arc::new(test_clock());
    let faults = Faults::new();
    let store = open_faulty(&dir, &clock, &faults, Options::default());
    let e = engine(&store, &clock);
    e.create_queue(Q, Metadata::default())
        .await
        .expect("create");
    Faulty {
        dir,
        clock,
        faults,
        store,
        e,
    }
}

/// The log's segment files, oldest first.
fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "hlog")
                && p.file_stem()
                    .and_then(|s| s.to_str())
                    .is_some_and(|s| s.parse::<u32>().is_ok())
        })
        .collect();
    out.sort();
    out
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
        e.swap_account_document("acct", "props", None, b"<doc/>".to_vec())
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
    let Faulty { faults, e, .. } = faulty_with_queue("fsync").await;
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
    // Guards against a full disk corrupting the file or wedging the store for good. On a
    // copy-on-write file system even writes into allocated blocks fail, so the batch fails
    // after it was applied in memory and the store rebuilds.
    let Faulty {
        dir,
        clock,
        faults,
        store,
        e,
    } = faulty_with_queue("enospc").await;
    let acked = fill(&e, 20).await;
    faults.fail_writes.store(true, Ordering::SeqCst);
    let err = e
        .send(Q, vec![b'z'; 4096], opts(Ttl::Never))
        .await
        .expect_err("disk full");
    let hematite_engine::Error::Storage(s) = err else {
        panic!("expected a storage error, got {err:?}")
    };
    assert_eq!(s.kind, StoreErrorKind::Unavailable, "{s}");
    faults.fail_writes.store(false, Ordering::SeqCst);
    send_once_space_returns(&e).await;
    drop(e);
    drop(store);
    // And the file is sound when opened afresh.
    let bodies = reopen_and_drain(&dir, &clock).await;
    for m in &acked {
        assert!(bodies.contains(&m.body), "acknowledged message lost");
    }
    assert!(bodies.contains(&b"space again".to_vec()));
}

/// Sends "space again" until the store takes it (10 s at most).
async fn send_once_space_returns(e: &Engine) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while e
        .send(Q, b"space again".to_vec(), opts(Ttl::Never))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "writes did not resume after space returned"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Opens the store in `dir` afresh and drains every message body from it.
async fn reopen_and_drain(dir: &Path, clock: &Arc<ManualClock>) -> Vec<Vec<u8>> {
    let store = open(dir, clock);
    drain_bodies(&engine(&store, clock)).await
}

/// A store on a faulty disk with 1 MiB segments.
fn open_faulty_mib(
    dir: &Path,
    clock: &Arc<ManualClock>,
    faults: &Arc<Faults>,
) -> (EmbeddedStore, Engine) {
    let options = Options {
        segment_bytes: 1 << 20,
        ..Options::default()
    };
    let store = open_faulty(dir, clock, faults, options);
    let e = engine(&store, clock);
    (store, e)
}

/// Every read the fronts make, each of which must answer on a full disk.
async fn assert_reads_served(e: &Engine, messages: usize) {
    assert_eq!(e.peek(Q, 32).await.expect("peek").len(), messages.min(32));
    assert_eq!(
        e.queue_info(Q).await.expect("info").message_count,
        messages as u64
    );
    assert_eq!(
        e.list_queues("acct", "", None, 10)
            .await
            .expect("list")
            .queues
            .len(),
        1
    );
    e.access_policies(Q).await.expect("policies");
    e.account_document("acct", "doc").await.expect("document");
}

#[tokio::test]
async fn a_full_disk_refuses_writes_and_keeps_serving_reads() {
    // After ENOSPC every request answered 503, reads too, for as long as the disk stayed
    // full: a write ran out of space half-way (its segment not allocated, or no file for the
    // next one) after changing the state in memory, so the store went out of service to
    // rebuild, again and again. Now segments are allocated whole, and a write that could need
    // a new segment finds one before it touches anything, or is refused alone.
    let dir = scratch("full-reads");
    let clock = Arc::new(test_clock());
    let faults = Faults::new();
    let (store, e) = open_faulty_mib(&dir, &clock, &faults);
    e.create_queue(Q, Metadata::default())
        .await
        .expect("create");
    faults.space_left.store(0, Ordering::SeqCst);
    let big = vec![b'b'; 60 * 1024];
    let mut acked = 0usize;
    let refused = loop {
        match e.send(Q, big.clone(), opts(Ttl::Never)).await {
            Ok(_) => acked += 1,
            Err(err) => break err,
        }
        assert!(acked < 1000, "a full disk never refused a write");
    };
    let hematite_engine::Error::Storage(s) = refused else {
        panic!("expected a storage error, got {refused:?}")
    };
    assert_eq!(s.kind, StoreErrorKind::Unavailable, "{s}");
    // What was already allocated was used: the current segment (and any spare in hand).
    assert!(acked >= 10, "only {acked} writes before the refusal");
    for _ in 0..3 {
        assert_reads_served(&e, acked).await;
        assert!(e.send(Q, big.clone(), opts(Ttl::Never)).await.is_err());
    }

    faults.unlimited_space();
    send_once_space_returns(&e).await;
    drop(e);
    drop(store);
    let bodies = reopen_and_drain(&dir, &clock).await;
    assert_eq!(
        bodies.len(),
        acked + 1,
        "every acknowledged message is kept"
    );
}

#[tokio::test]
async fn spare_preparation_leaves_the_last_space_alone() {
    // With less than a segment free, the spare preparer filled the disk, deleted its file and
    // tried again every 1.4 s even when idle; puts landing meanwhile got 503 and every other
    // program saw a full disk. Now it leaves a segment's worth free and backs off.
    let dir = scratch("spare-reserve");
    let clock = Arc::new(test_clock());
    let faults = Faults::new();
    // Room for the first segment and a half: too little for a spare and its reserve.
    faults.space_left.store((3 << 20) / 2, Ordering::SeqCst);
    let (_store, e) = open_faulty_mib(&dir, &clock, &faults);
    e.create_queue(Q, Metadata::default())
        .await
        .expect("create");
    let left = faults.space_left.load(Ordering::SeqCst);
    assert_eq!(left, 1 << 19, "the first segment took its megabyte");
    for _ in 0..30 {
        e.send(Q, body(1), opts(Ttl::Never))
            .await
            .expect("put into the current segment");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            faults.space_left.load(Ordering::SeqCst),
            left,
            "the last free space was taken"
        );
    }
    assert_eq!(
        faults.creates.load(Ordering::SeqCst),
        1,
        "no spare file was created (and deleted) meanwhile"
    );
}

#[tokio::test]
async fn power_loss_with_torn_writes_keeps_every_acknowledged_write() {
    // Guards against trusting writes the disk never made durable: after a simulated power cut
    // that drops or tears every unsynced write, the file opens, every acknowledged (fsynced)
    // message is intact, and no message is half-written. Several seeds, each replayable.
    for seed in 1..=12u64 {
        let Faulty {
            dir,
            clock,
            faults,
            store,
            e,
        } = faulty_with_queue("powerloss").await;
        let acked = {
            let (_store, e) = (store, e);
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
        faults.crash(seed).expect("crash");
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

/// A Service Bus queue `Q` (MaxDeliveryCount 3, dead-lettering on expiry).
async fn sb_queue(e: &Engine) {
    e.create_queue_with(
        Q,
        Metadata::default(),
        QueueSettings {
            rules: LeaseRules::service_bus(3, true),
        },
    )
    .await
    .expect("create");
}

fn outgoing(body: &str, ttl: Ttl, scheduled_at: Option<Timestamp>) -> Outgoing {
    Outgoing {
        body: body.as_bytes().to_vec(),
        ttl,
        scheduled_at,
    }
}

/// Changed rules are written with the queue's definition: after a restart the new
/// MaxDeliveryCount, not the one the queue was created with, decides.
#[tokio::test]
async fn changed_rules_survive_a_restart() {
    let dir = scratch("sb-rules");
    let clock = Arc::new(test_clock());
    {
        let store = open(&dir, &clock);
        let e = engine(&store, &clock);
        sb_queue(&e).await;
        e.enqueue(Q, vec![outgoing("poison", Ttl::Never, None)], u64::MAX)
            .await
            .expect("enqueue");
        e.set_rules(Q, LeaseRules::service_bus(1, true))
            .await
            .expect("set rules");
    }
    let store = open(&dir, &clock);
    let e = engine(&store, &clock);
    let m = e
        .lock(Q, SubQueue::Main, 1, Duration::from_secs(60))
        .await
        .expect("lock");
    e.settle(Q, SubQueue::Main, m[0].receipt, Settlement::Abandon)
        .await
        .expect("abandon");
    let dead = e
        .browse(Q, SubQueue::DeadLetter, 0, 10)
        .await
        .expect("browse");
    assert_eq!(dead.len(), 1, "MaxDeliveryCount 1 came back from the log");
}

#[tokio::test]
async fn service_bus_state_survives_a_restart() {
    // Guards against Service Bus state kept only in memory: a lock (and its token), a
    // deferred message, a scheduled one, the dead-letter sub-queue with its reasons, the
    // delivery counts and the queue's rules must all come back from the log.
    let dir = scratch("sb-restart");
    let clock = Arc::new(test_clock());
    let (token, locked_id, deferred_seq) = {
        let store = open(&dir, &clock);
        let e = engine(&store, &clock);
        sb_queue(&e).await;
        let later = clock.now().saturating_add(Duration::from_secs(3600));
        e.enqueue(
            Q,
            vec![
                outgoing("locked", Ttl::Never, None),
                outgoing("deferred", Ttl::Never, None),
                outgoing("poison", Ttl::Never, None),
                outgoing("expiring", Ttl::After(Duration::from_secs(60)), None),
                outgoing("scheduled", Ttl::Never, Some(later)),
            ],
            u64::MAX,
        )
        .await
        .expect("enqueue");
        let m = e
            .lock(Q, SubQueue::Main, 1, Duration::from_secs(600))
            .await
            .expect("lock");
        let d = e
            .lock(Q, SubQueue::Main, 1, Duration::from_secs(600))
            .await
            .expect("lock");
        e.settle(Q, SubQueue::Main, d[0].receipt, Settlement::Defer)
            .await
            .expect("defer");
        let p = e
            .lock(Q, SubQueue::Main, 1, Duration::from_secs(600))
            .await
            .expect("lock");
        e.settle(
            Q,
            SubQueue::Main,
            p[0].receipt,
            Settlement::DeadLetter(DeadLetterInfo {
                reason: Some("poison".into()),
                description: Some("unreadable".into()),
            }),
        )
        .await
        .expect("dead-letter");
        clock.advance(Duration::from_secs(61));
        e.housekeep(100).await.expect("housekeep");
        (m[0].receipt, m[0].id, d[0].sequence)
    };
    let store = open(&dir, &clock);
    let e = engine(&store, &clock);
    // The entity's size comes back from the records' body lengths (the index holds no
    // bodies): locked, deferred, scheduled and the two dead-lettered messages.
    let info = e.queue_info(Q).await.expect("info");
    assert_eq!(
        info.size_bytes,
        ["locked", "deferred", "scheduled", "poison", "expiring"]
            .iter()
            .map(|b| b.len() as u64)
            .sum::<u64>()
    );
    let main = e.browse(Q, SubQueue::Main, 0, 10).await.expect("browse");
    let states: Vec<(String, MessageState)> = main
        .iter()
        .map(|m| (String::from_utf8_lossy(&m.body).into_owned(), m.state))
        .collect();
    assert_eq!(
        states,
        [
            ("locked".to_owned(), MessageState::Locked),
            ("deferred".to_owned(), MessageState::Deferred),
            ("scheduled".to_owned(), MessageState::Scheduled)
        ]
    );
    let dead = e
        .browse(Q, SubQueue::DeadLetter, 0, 10)
        .await
        .expect("browse");
    let reasons: Vec<(String, Option<String>)> = dead
        .iter()
        .map(|m| {
            (
                String::from_utf8_lossy(&m.body).into_owned(),
                m.dead_letter.as_ref().and_then(|d| d.reason.clone()),
            )
        })
        .collect();
    assert_eq!(
        reasons,
        [
            ("poison".to_owned(), Some("poison".to_owned())),
            (
                "expiring".to_owned(),
                Some("TTLExpiredException".to_owned())
            )
        ]
    );
    // The lock and its token hold across the restart; the rules too (renewal keeps the token).
    let renewed = e
        .renew_lock(Q, SubQueue::Main, token, Duration::from_secs(60))
        .await
        .expect("the lock survived");
    assert_eq!(renewed.id, locked_id);
    e.settle(Q, SubQueue::Main, token, Settlement::Complete)
        .await
        .expect("complete after restart");
    let got = e
        .lock_deferred(
            Q,
            SubQueue::Main,
            vec![deferred_seq],
            Duration::from_secs(60),
        )
        .await
        .expect("deferred");
    assert_eq!(got[0].body, b"deferred");
}

#[tokio::test]
async fn a_batch_cut_short_by_power_loss_leaves_none_of_it() {
    // Guards against half a batch: a batch that never reached an fsync may land whole, in
    // part (a torn write) or not at all; recovery must keep all of it or none. Relaxed
    // durability acknowledges the batch with its write alone and no scrub follows, so the
    // simulated power cut tears the batch write itself.
    let options = Options {
        durability: Durability::Relaxed {
            flush_every: Duration::from_secs(3600),
        },
        ..Options::default()
    };
    let mut outcomes = [0usize; 2];
    for seed in 1..=24u64 {
        let dir = scratch("batch-tear");
        let clock = Arc::new(test_clock());
        let faults = Faults::new();
        {
            let store = open_faulty(&dir, &clock, &faults, Options::default());
            sb_queue(&engine(&store, &clock)).await;
        }
        {
            let store = open_faulty(&dir, &clock, &faults, options.clone());
            let e = engine(&store, &clock);
            let batch = (0..40)
                .map(|i| outgoing(&format!("{i:03}{}", "x".repeat(100)), Ttl::Never, None))
                .collect();
            e.enqueue(Q, batch, u64::MAX).await.expect("enqueue");
            faults.fail_sync.store(true, Ordering::SeqCst);
        }
        faults.fail_sync.store(false, Ordering::SeqCst);
        faults.crash(seed).expect("crash");
        let store = EmbeddedStore::open(&dir, Options::default(), clock.clone())
            .unwrap_or_else(|e| panic!("seed {seed}: did not open: {e}"));
        let n = engine(&store, &clock)
            .browse(Q, SubQueue::Main, 0, 100)
            .await
            .expect("browse")
            .len();
        assert!(
            n == 0 || n == 40,
            "seed {seed}: {n} of 40 messages of a batch came back"
        );
        outcomes[usize::from(n == 40)] += 1;
    }
    // The seeds must have produced both outcomes, or the test proves little.
    assert!(outcomes[0] > 0 && outcomes[1] > 0, "outcomes {outcomes:?}");
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
    faults.crash(7).expect("crash");
    let store = open(&dir, &clock);
    let e = engine(&store, &clock);
    assert_eq!(drain_bodies(&e).await.len(), 10);
}

#[tokio::test]
async fn damaged_files_are_refused_with_a_clear_error() {
    // Guards against silently starting empty, with part of the data, or with altered data when
    // a segment was damaged while the server was down. Every kind of damage to acknowledged
    // records must be refused with an error naming the file: a shortened segment, a damaged
    // block followed by intact records, and damage in every page. (Damage past the last record
    // is a torn write's signature and is tolerated; the power-loss test covers it.)
    let clock = Arc::new(test_clock());
    type Damage = (&'static str, fn(&Path));
    let damage: [Damage; 3] = [
        ("truncated to half", |path| {
            let len = std::fs::metadata(path).expect("meta").len();
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .expect("open");
            f.set_len(len / 2).expect("truncate");
        }),
        ("one block flipped among the records", |path| {
            let mut bytes = std::fs::read(path).expect("read");
            for b in &mut bytes[20_000..24_096] {
                *b ^= 0x5a;
            }
            std::fs::write(path, bytes).expect("write");
        }),
        ("a byte flipped in every page", |path| {
            let mut bytes = std::fs::read(path).expect("read");
            let mut at = 8192 + 100;
            while at < bytes.len() {
                bytes[at] ^= 0xff;
                at += 4096;
            }
            std::fs::write(path, bytes).expect("write");
        }),
    ];
    for (what, damage) in damage {
        let dir = scratch("damaged");
        {
            let store = open(&dir, &clock);
            let e = engine(&store, &clock);
            e.create_queue(Q, Metadata::default())
                .await
                .expect("create");
            fill(&e, 300).await;
        }
        let files = segments(&dir);
        assert_eq!(files.len(), 1, "{what}: one segment");
        damage(&files[0]);
        let err = EmbeddedStore::open(&dir, Options::default(), clock.clone())
            .err()
            .unwrap_or_else(|| panic!("{what}: a damaged segment was opened"));
        let msg = err.to_string();
        let name = files[0].file_name().and_then(|n| n.to_str()).expect("name");
        assert!(msg.contains(name), "{what}: message names the file: {msg}");
        assert!(matches!(err, OpenError::Corrupt { .. }), "{what}: {msg}");
    }
}

#[tokio::test]
async fn a_torn_tail_opens_with_every_acknowledged_record() {
    // Guards against refusing to start after an ordinary crash: garbage after the last record
    // (a write cut short) is not damage to acknowledged data.
    let dir = scratch("torn");
    let clock = Arc::new(test_clock());
    {
        let store = open(&dir, &clock);
        let e = engine(&store, &clock);
        e.create_queue(Q, Metadata::default())
            .await
            .expect("create");
        fill(&e, 50).await;
    }
    let path = &segments(&dir)[0];
    let mut bytes = std::fs::read(path).expect("read");
    let end = (bytes.iter().rposition(|&b| b != 0).expect("records") + 1).next_multiple_of(8);
    // Half a record's worth of plausible bytes: a length, a checksum and the next LSN.
    bytes[end..end + 4].copy_from_slice(&200u32.to_le_bytes());
    bytes[end + 4..end + 8].copy_from_slice(&7u32.to_le_bytes());
    bytes[end + 8..end + 16].copy_from_slice(&52u64.to_le_bytes());
    bytes[end + 16..end + 60].fill(0x33);
    std::fs::write(path, bytes).expect("write");
    let store = open(&dir, &clock);
    let e = engine(&store, &clock);
    let expected: Vec<Vec<u8>> = (0..50).map(body).collect();
    assert_eq!(drain_bodies(&e).await, expected);
}

#[tokio::test]
async fn a_newer_format_is_refused() {
    // Guards against a build reading data written in a format it does not understand, and
    // against ignoring the redb file of format version 1.
    let dir = scratch("format");
    let clock = Arc::new(test_clock());
    drop(open(&dir, &clock));
    let path = &segments(&dir)[0];
    let mut bytes = std::fs::read(path).expect("read");
    bytes[8..12].copy_from_slice(&99u32.to_le_bytes());
    std::fs::write(path, bytes).expect("write");
    let err = EmbeddedStore::open(&dir, Options::default(), clock.clone())
        .err()
        .expect("refused");
    assert!(matches!(err, OpenError::Format { found: 99, .. }), "{err}");
    assert!(err.to_string().contains("format version 99"), "{err}");

    let old = scratch("format1");
    std::fs::write(old.join("queues.redb"), b"redb").expect("write");
    let err = EmbeddedStore::open(&old, Options::default(), clock)
        .err()
        .expect("refused");
    assert!(matches!(err, OpenError::Format { found: 1, .. }), "{err}");
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
    done: impl Fn(&hematite_store_embedded::Stats) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let stats = store.stats().await.expect("stats");
        if done(&stats) {
            return;
        }
        assert!(Instant::now() < deadline, "{what} not reclaimed: {stats:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Creates `Q` with metadata and an access policy: a queue definition worth keeping.
async fn define_queue(e: &Engine) {
    e.create_queue(Q, Metadata(vec![("k".into(), "v".into())]))
        .await
        .expect("create");
    e.set_access_policies(
        Q,
        vec![AccessPolicy {
            id: "p".into(),
            start: None,
            expiry: None,
            permissions: Some("r".into()),
        }],
    )
    .await
    .expect("acl");
}

/// `Q` holds `messages` messages and what [`define_queue`] set is still there.
async fn assert_queue_kept(e: &Engine, messages: u64) {
    let info = e.queue_info(Q).await.expect("info");
    assert_eq!(info.message_count, messages);
    assert_eq!(info.metadata, Metadata(vec![("k".into(), "v".into())]));
    assert_eq!(e.access_policies(Q).await.expect("acl").len(), 1);
}

/// `what` wrote past the eighth segment file, so reclaiming has something to do.
fn assert_many_segments(dir: &Path, what: &str) {
    let newest = segments(dir)
        .last()
        .and_then(|p| p.file_stem()?.to_str()?.parse::<u32>().ok())
        .expect("a segment");
    assert!(newest >= 8, "{what} went through many segments: {newest}");
}

/// Opens (or reopens) a store with 128 KiB segments, so a test goes through many of them.
fn open_small(dir: &Path, clock: &Arc<ManualClock>) -> (EmbeddedStore, Engine) {
    let options = Options {
        segment_bytes: 128 * 1024,
        ..Options::default()
    };
    let store = EmbeddedStore::open(dir, options, clock.clone()).expect("open");
    let e = engine(&store, clock);
    (store, e)
}

#[tokio::test]
async fn dead_segments_are_reclaimed_and_survivors_carried_forward() {
    // Guards against space leaking (cleared, deleted and expired messages must leave the disk,
    // not just the answers), and against compaction losing or altering what it carries forward:
    // long-lived messages pinning the oldest segment are copied ahead, leases included, and a
    // restart afterwards finds exactly what was there.
    let dir = scratch("reclaim");
    let clock = Arc::new(test_clock());
    let (store, e) = open_small(&dir, &clock);
    define_queue(&e).await;
    // Survivors: the first messages of the oldest segment, one of them leased.
    let keepers = fill(&e, 5).await;
    let leased = e
        .receive(Q, 1, Duration::from_secs(3600))
        .await
        .expect("recv");
    let churn = QueueRef::new("acct", "churn");
    e.create_queue(churn, Metadata::default())
        .await
        .expect("create");
    for round in 0..6 {
        for i in 0..1000 {
            e.send(churn, body(i), opts(Ttl::Never))
                .await
                .expect("send");
        }
        if round % 2 == 0 {
            e.clear_messages(churn).await.expect("clear");
        } else {
            e.delete_queue(churn).await.expect("delete");
            e.create_queue(churn, Metadata::default())
                .await
                .expect("create");
        }
    }
    for i in 0..300 {
        e.send(Q, body(i), opts(Ttl::After(Duration::from_secs(10))))
            .await
            .expect("send");
    }
    assert_many_segments(&dir, "the churn");
    clock.advance(Duration::from_secs(11));
    wait_for(&store, "dead segments", |s| {
        s.messages == 5 && s.segments <= 6
    })
    .await;
    drop(e);
    drop(store);

    let (_store, e) = open_small(&dir, &clock);
    assert_queue_kept(&e, 5).await;
    assert_eq!(e.queue_info(churn).await.expect("info").message_count, 0);
    let peeked = e.peek(Q, 32).await.expect("peek");
    let expected: Vec<Vec<u8>> = keepers[1..].iter().map(|m| m.body.clone()).collect();
    assert_eq!(
        peeked.iter().map(|m| m.body.clone()).collect::<Vec<_>>(),
        expected,
        "the unleased survivors, in order, bodies intact"
    );
    // The lease survived too: its receipt still deletes it, and nobody else can see it.
    e.delete_message(Q, leased[0].id, leased[0].receipt)
        .await
        .expect("the leased survivor keeps its receipt");
    let next = e
        .send(Q, b"after".to_vec(), opts(Ttl::Never))
        .await
        .expect("send");
    assert!(
        next.sequence > keepers[4].sequence,
        "sequence numbers never go back"
    );
}

#[tokio::test]
async fn a_fifo_queue_reclaims_segments_without_reading_them_back() {
    // In a FIFO queue every message of a segment is consumed long before the queue's
    // definition, written once at creation, is rewritten. That definition alone must not make
    // compaction read the whole segment back (≈50 ms for 32 MiB, which stalled requests): it is
    // appended again from memory. The queue's metadata and ACL must survive the move.
    let dir = scratch("fifo");
    let clock = Arc::new(test_clock());
    let (store, e) = open_small(&dir, &clock);
    define_queue(&e).await;
    for i in 0..3000 {
        e.send(Q, body(i), opts(Ttl::Never)).await.expect("send");
        if i >= 10 {
            let got = e
                .receive(Q, 1, Duration::from_secs(30))
                .await
                .expect("recv");
            e.delete_message(Q, got[0].id, got[0].receipt)
                .await
                .expect("delete");
        }
    }
    assert_many_segments(&dir, "the traffic");
    wait_for(&store, "consumed segments", |s| s.segments <= 3).await;
    let stats = store.stats().await.expect("stats");
    assert_eq!(stats.compaction_reads, 0, "{stats:?}");
    drop(e);
    drop(store);

    let (_store, e) = open_small(&dir, &clock);
    assert_queue_kept(&e, 10).await;
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
