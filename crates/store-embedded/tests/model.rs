//! The embedded store against the in-memory store (the executable specification), under random
//! operations, with restarts and compaction in between.
//!
//! Guards against what the hand-written durability tests can miss: a record that replay applies
//! differently from the live path, compaction carrying forward the wrong version of a message or
//! queue, a segment retired while something in it is still needed. Tiny segments and a 1 ms
//! housekeeping interval make rotation, compaction and retirement happen constantly.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hematite_engine::model::NewMessage;
use hematite_engine::store::{LeaseGrant, MessageUpdate, QueueSettings};
use hematite_engine::{
    ManualClock, MemoryStore, Message, MessageId, Metadata, PopReceipt, QueueRef, Store, Timestamp,
};
use hematite_store_embedded::{EmbeddedStore, Options};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Put {
        q: usize,
        len: usize,
        ttl_s: Option<u64>,
        delay_s: u64,
    },
    Receive {
        q: usize,
        n: usize,
        vis_s: u64,
    },
    Peek {
        q: usize,
    },
    /// Delete the `k`-th message last received from `q` (with its receipt).
    Delete {
        q: usize,
        k: usize,
        stale: bool,
    },
    Update {
        q: usize,
        k: usize,
        vis_s: u64,
        body: Option<usize>,
    },
    Clear {
        q: usize,
    },
    Recreate {
        q: usize,
    },
    Metadata {
        q: usize,
        v: u8,
    },
    Document {
        v: u8,
    },
    Advance {
        s: u64,
    },
    Settle,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    let q = 0..2usize;
    prop_oneof![
        10 => (q.clone(), 0..6000usize, proptest::option::of(1..120u64), prop_oneof![3 => Just(0u64), 1 => 1..60u64])
            .prop_map(|(q, len, ttl_s, delay_s)| Op::Put { q, len, ttl_s, delay_s }),
        4 => (q.clone(), 1..5usize, 1..90u64).prop_map(|(q, n, vis_s)| Op::Receive { q, n, vis_s }),
        1 => q.clone().prop_map(|q| Op::Peek { q }),
        4 => (q.clone(), 0..5usize, proptest::bool::weighted(0.1)).prop_map(|(q, k, stale)| Op::Delete { q, k, stale }),
        1 => (q.clone(), 0..5usize, 0..60u64, proptest::option::of(0..2000usize))
            .prop_map(|(q, k, vis_s, body)| Op::Update { q, k, vis_s, body }),
        1 => q.clone().prop_map(|q| Op::Clear { q }),
        1 => q.clone().prop_map(|q| Op::Recreate { q }),
        1 => (q.clone(), any::<u8>()).prop_map(|(q, v)| Op::Metadata { q, v }),
        1 => any::<u8>().prop_map(|v| Op::Document { v }),
        2 => (1..100u64).prop_map(|s| Op::Advance { s }),
        2 => Just(Op::Settle),
        2 => Just(Op::Reopen),
    ]
}

const QUEUES: [&str; 2] = ["alpha", "beta"];

fn qref(i: usize) -> QueueRef<'static> {
    QueueRef::new("acct", QUEUES[i])
}

fn scratch() -> PathBuf {
    common::scratch("model")
}

fn options() -> Options {
    Options {
        segment_bytes: 64 * 1024,
        housekeeping_every: Duration::from_millis(1),
        ..Options::default()
    }
}

struct Run {
    dir: PathBuf,
    clock: Arc<ManualClock>,
    real: Option<EmbeddedStore>,
    model: MemoryStore,
    /// Per queue, the messages last received (to delete or update them).
    leased: [Vec<Message>; 2],
    counter: u128,
}

impl Run {
    fn real(&self) -> &EmbeddedStore {
        self.real.as_ref().expect("open")
    }

    fn next(&mut self) -> u128 {
        self.counter += 1;
        self.counter
    }

    async fn compare_all(&self, when: &str) {
        let now = self.clock.now_ts();
        for (i, name) in QUEUES.iter().enumerate() {
            let q = qref(i);
            let a = self.real().queue_info(q, now).await.expect("info");
            let b = self.model.queue_info(q, now).await.expect("info");
            assert_eq!(a, b, "{when}: queue_info of {}", name);
            let a = self.real().peek(q, now, 32).await.expect("peek");
            let b = self.model.peek(q, now, 32).await.expect("peek");
            assert_eq!(a, b, "{when}: peek of {}", name);
            let a = self.real().access_policies(q).await.expect("acl");
            let b = self.model.access_policies(q).await.expect("acl");
            assert_eq!(a, b, "{when}: policies of {}", name);
        }
        let a = self
            .real()
            .account_document("acct", "doc")
            .await
            .expect("doc");
        let b = self
            .model
            .account_document("acct", "doc")
            .await
            .expect("doc");
        assert_eq!(a, b, "{when}: document");
        let a = self
            .real()
            .list_queues("acct", "", None, 10)
            .await
            .expect("list");
        let b = self
            .model
            .list_queues("acct", "", None, 10)
            .await
            .expect("list");
        assert_eq!(a, b, "{when}: list");
    }

    async fn step(&mut self, op: &Op) {
        if std::env::var("MODEL_DEBUG").is_ok() {
            eprintln!("OP {op:?}");
        }
        let now = self.clock.now_ts();
        match *op {
            Op::Put {
                q,
                len,
                ttl_s,
                delay_s,
            } => {
                let id = MessageId(self.next());
                let receipt = PopReceipt(self.next());
                let m = NewMessage {
                    id,
                    body: (0..len).map(|i| (i as u8) ^ (id.0 as u8)).collect(),
                    inserted_at: now,
                    expires_at: ttl_s.map_or(Timestamp::NEVER, |s| {
                        now.saturating_add(Duration::from_secs(s))
                    }),
                    visible_at: now.saturating_add(Duration::from_secs(delay_s)),
                    receipt,
                };
                let a = self
                    .real()
                    .put_message(qref(q), m.clone())
                    .await
                    .expect("put");
                let b = self.model.put_message(qref(q), m).await.expect("put");
                assert_eq!(a, b, "put");
            }
            Op::Receive { q, n, vis_s } => {
                let receipts = (0..n).map(|_| PopReceipt(self.next())).collect();
                let grant = LeaseGrant {
                    visible_until: now.saturating_add(Duration::from_secs(vis_s)),
                    receipts,
                };
                let a = self
                    .real()
                    .receive(qref(q), now, grant.clone())
                    .await
                    .expect("recv");
                let b = self.model.receive(qref(q), now, grant).await.expect("recv");
                assert_eq!(a, b, "receive");
                self.leased[q] = b.unwrap_or_default();
            }
            Op::Peek { q } => {
                let a = self.real().peek(qref(q), now, 32).await.expect("peek");
                let b = self.model.peek(qref(q), now, 32).await.expect("peek");
                assert_eq!(a, b, "peek");
            }
            Op::Delete { q, k, stale } => {
                let Some(m) = self.leased[q].get(k).cloned() else {
                    return;
                };
                let receipt = if stale {
                    PopReceipt(self.next())
                } else {
                    m.receipt
                };
                let a = self
                    .real()
                    .delete_message(qref(q), m.id, receipt, now)
                    .await
                    .expect("del");
                let b = self
                    .model
                    .delete_message(qref(q), m.id, receipt, now)
                    .await
                    .expect("del");
                assert_eq!(a, b, "delete");
            }
            Op::Update { q, k, vis_s, body } => {
                let Some(m) = self.leased[q].get(k).cloned() else {
                    return;
                };
                let update = MessageUpdate {
                    visible_at: now.saturating_add(Duration::from_secs(vis_s)),
                    receipt: PopReceipt(self.next()),
                    body: body.map(|n| vec![b'u'; n]),
                };
                let a = self
                    .real()
                    .update_message(qref(q), m.id, m.receipt, now, update.clone())
                    .await
                    .expect("update");
                let b = self
                    .model
                    .update_message(qref(q), m.id, m.receipt, now, update)
                    .await
                    .expect("update");
                assert_eq!(a, b, "update");
                if let hematite_engine::store::ReceiptOutcome::Done(new) = b {
                    self.leased[q][k] = new;
                }
            }
            Op::Clear { q } => {
                let a = self.real().clear_messages(qref(q)).await.expect("clear");
                let b = self.model.clear_messages(qref(q)).await.expect("clear");
                assert_eq!(a, b, "clear");
            }
            Op::Recreate { q } => {
                let a = self
                    .real()
                    .delete_queue(qref(q))
                    .await
                    .expect("delete queue");
                let b = self
                    .model
                    .delete_queue(qref(q))
                    .await
                    .expect("delete queue");
                assert_eq!(a, b, "delete queue");
                let md = Metadata(vec![("gen".into(), self.next().to_string())]);
                let a = self
                    .real()
                    .create_queue(qref(q), &md, QueueSettings::default())
                    .await
                    .expect("create");
                let b = self
                    .model
                    .create_queue(qref(q), &md, QueueSettings::default())
                    .await
                    .expect("create");
                assert_eq!(a, b, "create");
                self.leased[q].clear();
            }
            Op::Metadata { q, v } => {
                let md = Metadata(vec![("v".into(), v.to_string())]);
                let a = self
                    .real()
                    .set_metadata(qref(q), md.clone())
                    .await
                    .expect("md");
                let b = self.model.set_metadata(qref(q), md).await.expect("md");
                assert_eq!(a, b, "metadata");
            }
            Op::Document { v } => {
                // A compare-and-set on what each store holds, then one on a stale value.
                let value = vec![v; 100];
                let stale = Some(vec![v; 99]);
                let was = self
                    .model
                    .account_document("acct", "doc")
                    .await
                    .expect("doc");
                let a = self
                    .real()
                    .swap_account_document("acct", "doc", was.clone(), value.clone())
                    .await
                    .expect("doc");
                let b = self
                    .model
                    .swap_account_document("acct", "doc", was, value.clone())
                    .await
                    .expect("doc");
                assert_eq!((a, b), (true, true), "document swap");
                let a = self
                    .real()
                    .swap_account_document("acct", "doc", stale.clone(), vec![0])
                    .await
                    .expect("doc");
                let b = self
                    .model
                    .swap_account_document("acct", "doc", stale, vec![0])
                    .await
                    .expect("doc");
                assert_eq!((a, b), (false, false), "stale document swap");
            }
            Op::Advance { s } => self.clock.advance(Duration::from_secs(s)),
            Op::Settle => tokio::time::sleep(Duration::from_millis(20)).await,
            Op::Reopen => {
                self.compare_all("before reopen").await;
                drop(self.real.take());
                self.real = Some(
                    EmbeddedStore::open(&self.dir, options(), self.clock.clone()).expect("reopen"),
                );
                self.compare_all("after reopen").await;
            }
        }
    }
}

trait NowTs {
    fn now_ts(&self) -> Timestamp;
}

impl NowTs for ManualClock {
    fn now_ts(&self) -> Timestamp {
        hematite_engine::Clock::now(self)
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn embedded_store_matches_the_model(ops in proptest::collection::vec(op(), 50..400)) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let dir = scratch();
            let clock = Arc::new(hematite_engine::clock::test_clock());
            let real = EmbeddedStore::open(&dir, options(), clock.clone()).expect("open");
            let model = MemoryStore::new();
            for i in 0..2 {
                let md = Metadata::default();
                real.create_queue(qref(i), &md, QueueSettings::default()).await.expect("create");
                model.create_queue(qref(i), &md, QueueSettings::default()).await.expect("create");
            }
            let mut run = Run { dir, clock, real: Some(real), model, leased: [Vec::new(), Vec::new()], counter: 0 };
            for op in &ops {
                run.step(op).await;
            }
            run.step(&Op::Settle).await;
            run.step(&Op::Reopen).await;
            let _ = std::fs::remove_dir_all(&run.dir);
        });
    }
}
