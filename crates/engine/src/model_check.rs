//! Property test: random operation sequences run against the engine over the memory store and
//! against a trivially correct model (a vector scanned linearly), which must agree at every step.
//!
//! The model gets ids and receipts from the engine's answers, so it checks *which* messages come
//! back, in what order, with what counts, bodies and times, and which receipts are honoured.

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;

use crate::clock::{test_clock, ManualClock};
use crate::conformance::block_on_ready;
use crate::model::{MessageId, Metadata, PopReceipt, QueueRef};
use crate::service::{Engine, SendOptions, Ttl};
use crate::time::Timestamp;
use crate::{Error, MemoryStore};

#[derive(Clone, Debug)]
enum Op {
    Send {
        body: u8,
        delay_s: u64,
        ttl_s: Option<u64>,
    },
    Receive {
        n: usize,
        vt_s: u64,
    },
    Peek {
        n: usize,
    },
    Delete {
        pick: usize,
    },
    Update {
        pick: usize,
        vt_s: u64,
        body: Option<u8>,
    },
    Clear,
    Count,
    Advance {
        ms: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<u8>(), prop_oneof![Just(0u64), 0..20u64], prop::option::of(1..60u64))
            .prop_map(|(body, delay_s, ttl_s)| Op::Send { body, delay_s, ttl_s }),
        3 => (1..5usize, 1..30u64).prop_map(|(n, vt_s)| Op::Receive { n, vt_s }),
        1 => (1..5usize).prop_map(|n| Op::Peek { n }),
        2 => any::<usize>().prop_map(|pick| Op::Delete { pick }),
        2 => (any::<usize>(), 0..30u64, prop::option::of(any::<u8>()))
            .prop_map(|(pick, vt_s, body)| Op::Update { pick, vt_s, body }),
        1 => Just(Op::Clear),
        1 => Just(Op::Count),
        3 => (0..15_000u64).prop_map(|ms| Op::Advance { ms }),
    ]
}

#[derive(Clone, Debug)]
struct ModelMsg {
    id: MessageId,
    seq: u64,
    body: Vec<u8>,
    expires: Timestamp,
    visible: Timestamp,
    dequeues: u32,
    receipt: PopReceipt,
}

#[derive(Default)]
struct Model {
    msgs: Vec<ModelMsg>,
}

impl Model {
    fn live(&self, now: Timestamp) -> impl Iterator<Item = &ModelMsg> {
        self.msgs.iter().filter(move |m| m.expires > now)
    }

    fn visible_in_order(&self, now: Timestamp) -> Vec<ModelMsg> {
        let mut v: Vec<_> = self
            .live(now)
            .filter(|m| m.visible <= now)
            .cloned()
            .collect();
        v.sort_by_key(|m| (m.visible, m.seq));
        v
    }

    /// What a receipt-checked call should say.
    fn check(
        &self,
        id: MessageId,
        receipt: PopReceipt,
        now: Timestamp,
    ) -> Result<usize, &'static str> {
        match self.msgs.iter().position(|m| m.id == id && m.expires > now) {
            None => Err("not found"),
            Some(i) if self.msgs[i].receipt != receipt => Err("mismatch"),
            Some(i) => Ok(i),
        }
    }
}

fn kind(e: &Error) -> &'static str {
    match e {
        Error::MessageNotFound => "not found",
        Error::PopReceiptMismatch => "mismatch",
        _ => "other",
    }
}

fn run(ops: Vec<Op>) {
    let clock = Arc::new(test_clock());
    let engine = Engine::new(
        Arc::new(MemoryStore::new()),
        clock.clone() as Arc<ManualClock>,
    );
    let q = QueueRef::new("acct", "q");
    block_on_ready(engine.create_queue(q, Metadata::default())).expect("create");
    let mut model = Model::default();
    // Every (id, receipt) the engine ever handed out, stale ones included.
    let mut handles: Vec<(MessageId, PopReceipt)> = Vec::new();

    for op in ops {
        let now = engine.now();
        match op {
            Op::Send {
                body,
                delay_s,
                ttl_s,
            } => {
                let ttl = ttl_s.map_or(Ttl::Never, |s| Ttl::After(Duration::from_secs(s)));
                let opts = SendOptions {
                    visibility_delay: Duration::from_secs(delay_s),
                    ttl,
                };
                let m = block_on_ready(engine.send(q, vec![body], opts)).expect("send");
                let expires = ttl_s.map_or(Timestamp::NEVER, |s| {
                    now.saturating_add(Duration::from_secs(s))
                });
                assert_eq!(m.expires_at, expires);
                assert_eq!(
                    m.visible_at,
                    now.saturating_add(Duration::from_secs(delay_s))
                );
                model.msgs.push(ModelMsg {
                    id: m.id,
                    seq: m.sequence,
                    body: vec![body],
                    expires,
                    visible: m.visible_at,
                    dequeues: 0,
                    receipt: m.receipt,
                });
                handles.push((m.id, m.receipt));
            }
            Op::Receive { n, vt_s } => {
                let got =
                    block_on_ready(engine.receive(q, n, Duration::from_secs(vt_s))).expect("recv");
                let want: Vec<_> = model.visible_in_order(now).into_iter().take(n).collect();
                assert_eq!(
                    got.iter().map(|m| m.id).collect::<Vec<_>>(),
                    want.iter().map(|m| m.id).collect::<Vec<_>>()
                );
                for g in &got {
                    let m = model.msgs.iter_mut().find(|m| m.id == g.id).expect("known");
                    m.dequeues += 1;
                    m.visible = now.saturating_add(Duration::from_secs(vt_s));
                    m.receipt = g.receipt;
                    assert_eq!(
                        (g.dequeue_count, g.visible_at, &g.body),
                        (m.dequeues, m.visible, &m.body)
                    );
                    handles.push((g.id, g.receipt));
                }
            }
            Op::Peek { n } => {
                let got = block_on_ready(engine.peek(q, n)).expect("peek");
                let want: Vec<_> = model.visible_in_order(now).into_iter().take(n).collect();
                assert_eq!(
                    got.iter()
                        .map(|m| (m.id, m.dequeue_count, m.body.clone()))
                        .collect::<Vec<_>>(),
                    want.iter()
                        .map(|m| (m.id, m.dequeues, m.body.clone()))
                        .collect::<Vec<_>>()
                );
            }
            Op::Delete { pick } => {
                if handles.is_empty() {
                    continue;
                }
                let (id, receipt) = handles[pick % handles.len()];
                let expected = model.check(id, receipt, now);
                let got = block_on_ready(engine.delete_message(q, id, receipt));
                match (expected, got) {
                    (Ok(i), Ok(())) => {
                        model.msgs.remove(i);
                    }
                    (Err(w), Err(e)) => assert_eq!(w, kind(&e)),
                    (w, g) => panic!("delete: model {w:?}, engine {g:?}"),
                }
            }
            Op::Update { pick, vt_s, body } => {
                if handles.is_empty() {
                    continue;
                }
                let (id, receipt) = handles[pick % handles.len()];
                let expected = model.check(id, receipt, now);
                let vt = Duration::from_secs(vt_s);
                let got = block_on_ready(engine.update_message(
                    q,
                    id,
                    receipt,
                    vt,
                    body.map(|b| vec![b]),
                ));
                match (expected, got) {
                    (Ok(i), Ok(u)) => {
                        let m = &mut model.msgs[i];
                        m.visible = now.saturating_add(vt);
                        m.receipt = u.receipt;
                        if let Some(b) = body {
                            m.body = vec![b];
                        }
                        assert_eq!(
                            (u.visible_at, u.dequeue_count, &u.body),
                            (m.visible, m.dequeues, &m.body)
                        );
                        handles.push((u.id, u.receipt));
                    }
                    (Err(w), Err(e)) => assert_eq!(w, kind(&e)),
                    (w, g) => panic!("update: model {w:?}, engine {g:?}"),
                }
            }
            Op::Clear => {
                block_on_ready(engine.clear_messages(q)).expect("clear");
                model.msgs.clear();
            }
            Op::Count => {
                let info = block_on_ready(engine.queue_info(q)).expect("info");
                assert_eq!(info.message_count, model.live(now).count() as u64);
            }
            Op::Advance { ms } => clock.advance(Duration::from_millis(ms)),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
    #[test]
    fn engine_matches_model(ops in prop::collection::vec(op(), 1..120)) {
        run(ops);
    }
}
