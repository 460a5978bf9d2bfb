//! The store conformance suite: the semantics every backend must show, driven through the
//! [`Engine`] with a manual clock so visibility and expiry are exact and nothing sleeps.
//!
//! A backend crate runs it with one line:
//! `hematite_engine::store_conformance_tests!(#[tokio::test] || -> Arc<dyn Store> { ... });`
//! which expands to one test per case, so a failure names the rule that broke.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::{test_clock, ManualClock};
use crate::model::MessageState;
use crate::model::{AccessPolicy, MessageId, Metadata, PopReceipt, QueueInfo, QueueRef};
use crate::service::{Created, Engine, Outgoing, SendOptions, Ttl};
use crate::store::{LeaseRules, QueueSettings, Settled, Settlement, Store, SubQueue};
use crate::time::Timestamp;
use crate::Error;

/// Expands to one test function per conformance case.
///
/// `#[attr]` is the test attribute to put on each (an async one such as `#[tokio::test]`), and
/// `$make` a closure returning a fresh `Arc<dyn Store>`. The case list is written once, here,
/// for every store: a case cannot be left out of one store's run.
#[macro_export]
macro_rules! store_conformance_tests {
    (#[$attr:meta] $make:expr) => {
        $crate::store_conformance_tests!(@list [async #[$attr]] $make);
    };
    (@list [$($how:tt)*] $make:expr) => {
        $crate::store_conformance_tests!(@cases [$($how)*] $make;
            create_queue_rules, delete_queue_removes_everything, list_queues_pages_in_name_order,
            metadata_round_trip_keeps_case, access_policies_round_trip, put_receive_delete,
            lease_expiry_makes_message_visible_again, receipt_survives_lapsed_lease_until_redequeued,
            put_with_visibility_delay, expired_messages_vanish, peek_does_not_lease,
            update_message_rules, clear_removes_every_message, receive_order_and_batch,
            missing_queue_everywhere, accounts_are_isolated, account_documents_round_trip,
            metadata_swaps_only_what_was_read,
            sequence_numbers_increase, racing_receivers_never_share_a_message,
            sb_counts_failed_deliveries_and_loses_lapsed_locks,
            sb_dead_letters_at_max_deliveries_and_on_request,
            sb_expiry_dead_letters_when_asked, sb_scheduled_messages_and_cancellation,
            sb_deferred_messages_by_sequence_number, sb_browse_sees_every_state,
            sb_batches_and_receive_and_delete, sb_racing_lockers_never_share_a_message,
            sb_entity_size_counts_both_sub_queues, sb_full_entity_refuses_enqueues,
            sb_rules_change_with_the_configuration);
    };
    (@cases [async #[$attr:meta]] $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[$attr]
            async fn $case() {
                let make = $make;
                $crate::conformance::$case(make()).await;
            }
        )*
    };
    // A store whose futures are always ready (the in-memory store), polled without a runtime.
    (@cases [ready] $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                let make = $make;
                $crate::conformance::block_on_ready($crate::conformance::$case(make()));
            }
        )*
    };
}

const T: Duration = Duration::from_secs(1);

fn secs(n: u64) -> Duration {
    T * n as u32
}

struct Fixture {
    engine: Engine,
    clock: Arc<ManualClock>,
    /// This case's own account: stores that several cases share (one PostgreSQL database)
    /// see each case in a namespace of its own.
    account: String,
}

/// A fixture on `store` with an account no other case uses.
fn fixture(store: Arc<dyn Store>) -> Fixture {
    static CASES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = CASES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let clock = Arc::new(test_clock());
    Fixture {
        engine: Engine::new(store, clock.clone()),
        clock,
        account: format!("c{}x{n}", std::process::id()),
    }
}

impl Fixture {
    fn q<'a>(&'a self, name: &'a str) -> QueueRef<'a> {
        QueueRef::new(&self.account, name)
    }

    /// Another account, as unique as this case's.
    fn other(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.account)
    }
}

fn meta(pairs: &[(&str, &str)]) -> Metadata {
    Metadata(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    )
}

fn opts(delay: u64, ttl: Ttl) -> SendOptions {
    SendOptions {
        visibility_delay: secs(delay),
        ttl,
    }
}

const DEFAULT_TTL: Ttl = Ttl::After(Duration::from_secs(604_800));

async fn send(f: &Fixture, queue: &str, body: &str) -> crate::Message {
    f.engine
        .send(f.q(queue), body.as_bytes().to_vec(), opts(0, DEFAULT_TTL))
        .await
        .expect("send")
}

fn bodies(ms: &[crate::Message]) -> Vec<String> {
    ms.iter()
        .map(|m| String::from_utf8_lossy(&m.body).into_owned())
        .collect()
}

pub async fn create_queue_rules(store: Arc<dyn Store>) {
    let f = fixture(store);
    let m = meta(&[("Color", "red"), ("k", "v")]);
    assert_eq!(
        f.engine.create_queue(f.q("a"), m.clone()).await.ok(),
        Some(Created::New)
    );
    // Same pairs, names differing only in case, in another order: identical.
    let same = meta(&[("k", "v"), ("COLOR", "red")]);
    assert_eq!(
        f.engine.create_queue(f.q("a"), same).await.ok(),
        Some(Created::AlreadyIdentical)
    );
    let other = meta(&[("Color", "blue"), ("k", "v")]);
    assert!(matches!(
        f.engine.create_queue(f.q("a"), other).await,
        Err(Error::QueueAlreadyExists)
    ));
    assert!(matches!(
        f.engine.create_queue(f.q("a"), Metadata::default()).await,
        Err(Error::QueueAlreadyExists)
    ));
    // The failed creates changed nothing.
    let info = f.engine.queue_info(f.q("a")).await.expect("info");
    assert_eq!(info.metadata, m);
    // No metadata on both sides is identical.
    assert_eq!(
        f.engine
            .create_queue(f.q("b"), Metadata::default())
            .await
            .ok(),
        Some(Created::New)
    );
    assert_eq!(
        f.engine
            .create_queue(f.q("b"), Metadata::default())
            .await
            .ok(),
        Some(Created::AlreadyIdentical)
    );
    assert!(matches!(
        f.engine.create_queue(f.q("b"), meta(&[("x", "1")])).await,
        Err(Error::QueueAlreadyExists)
    ));
}

pub async fn delete_queue_removes_everything(store: Arc<dyn Store>) {
    let f = fixture(store);
    f.engine
        .create_queue(f.q("a"), meta(&[("x", "1")]))
        .await
        .expect("create");
    send(&f, "a", "hello").await;
    let policy = AccessPolicy {
        id: "p".into(),
        start: None,
        expiry: None,
        permissions: Some("r".into()),
    };
    f.engine
        .set_access_policies(f.q("a"), vec![policy])
        .await
        .expect("acl");
    f.engine.delete_queue(f.q("a")).await.expect("delete");
    assert!(matches!(
        f.engine.queue_info(f.q("a")).await,
        Err(Error::QueueNotFound)
    ));
    assert!(matches!(
        f.engine.delete_queue(f.q("a")).await,
        Err(Error::QueueNotFound)
    ));
    // A queue recreated under the same name starts empty.
    f.engine
        .create_queue(f.q("a"), Metadata::default())
        .await
        .expect("recreate");
    let info = f.engine.queue_info(f.q("a")).await.expect("info");
    assert_eq!(info.message_count, 0);
    assert!(info.metadata.is_empty());
    assert!(f
        .engine
        .access_policies(f.q("a"))
        .await
        .expect("acl")
        .is_empty());
    assert!(f
        .engine
        .receive(f.q("a"), 32, secs(30))
        .await
        .expect("recv")
        .is_empty());
}

pub async fn list_queues_pages_in_name_order(store: Arc<dyn Store>) {
    let f = fixture(store);
    // Created out of name order: paging must still visit each exactly once, sorted.
    for name in ["q3", "q1", "a9", "q5", "q2", "q4", "qq"] {
        f.engine
            .create_queue(f.q(name), meta(&[("N", name)]))
            .await
            .expect("create");
    }
    f.engine
        .create_queue(QueueRef::new(&f.other("other"), "q0"), Metadata::default())
        .await
        .expect("create other");
    let mut seen = Vec::new();
    let mut start: Option<String> = None;
    loop {
        let page = f
            .engine
            .list_queues(&f.account, "q", start.as_deref(), 2)
            .await
            .expect("list");
        assert!(page.queues.len() <= 2);
        seen.extend(page.queues.iter().map(|s| s.name.clone()));
        for s in &page.queues {
            assert_eq!(s.metadata, meta(&[("N", &s.name)]));
        }
        match page.next {
            Some(n) => start = Some(n),
            None => break,
        }
    }
    assert_eq!(seen, ["q1", "q2", "q3", "q4", "q5", "qq"]);
    let all = f
        .engine
        .list_queues(&f.account, "", None, 5000)
        .await
        .expect("list all");
    assert_eq!(all.queues.len(), 7);
    assert_eq!(all.next, None);
    let page = f
        .engine
        .list_queues(&f.account, "", Some("q4"), 5000)
        .await
        .expect("list from");
    let names: Vec<_> = page.queues.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["q4", "q5", "qq"]);
    assert!(f
        .engine
        .list_queues(&f.account, "zz", None, 10)
        .await
        .expect("none")
        .queues
        .is_empty());
    assert!(f
        .engine
        .list_queues("nobody", "", None, 10)
        .await
        .expect("nobody")
        .queues
        .is_empty());
    assert!(matches!(
        f.engine.list_queues(&f.account, "", None, 0).await,
        Err(Error::InvalidArgument(_))
    ));
}

pub async fn metadata_round_trip_keeps_case(store: Arc<dyn Store>) {
    let f = fixture(store);
    f.engine
        .create_queue(f.q("a"), Metadata::default())
        .await
        .expect("create");
    let m = meta(&[("Color", "red"), ("camelCase", "x y"), ("UPPER", "")]);
    f.engine
        .set_metadata(f.q("a"), m.clone())
        .await
        .expect("set");
    assert_eq!(
        f.engine.queue_info(f.q("a")).await.expect("info").metadata,
        m
    );
    f.engine
        .set_metadata(f.q("a"), Metadata::default())
        .await
        .expect("clear");
    assert!(f
        .engine
        .queue_info(f.q("a"))
        .await
        .expect("info")
        .metadata
        .is_empty());
}

pub async fn access_policies_round_trip(store: Arc<dyn Store>) {
    let f = fixture(store);
    f.engine
        .create_queue(f.q("a"), Metadata::default())
        .await
        .expect("create");
    let ps = vec![
        AccessPolicy {
            id: "p1".into(),
            start: Some(Timestamp::from_millis(1_000)),
            expiry: Some(Timestamp::from_millis(2_000)),
            permissions: Some("raup".into()),
        },
        AccessPolicy {
            id: "p2".into(),
            start: None,
            expiry: None,
            permissions: None,
        },
    ];
    f.engine
        .set_access_policies(f.q("a"), ps.clone())
        .await
        .expect("set");
    assert_eq!(f.engine.access_policies(f.q("a")).await.expect("get"), ps);
    f.engine
        .set_access_policies(f.q("a"), vec![])
        .await
        .expect("clear");
    assert!(f
        .engine
        .access_policies(f.q("a"))
        .await
        .expect("get")
        .is_empty());
}

pub async fn put_receive_delete(store: Arc<dyn Store>) {
    let f = fixture(store);
    f.engine
        .create_queue(f.q("a"), Metadata::default())
        .await
        .expect("create");
    let put = send(&f, "a", "hello").await;
    let now = f.engine.now();
    assert_eq!(put.inserted_at, now);
    assert_eq!(put.visible_at, now);
    assert_eq!(put.expires_at, now.saturating_add(secs(604_800)));
    assert_eq!(put.dequeue_count, 0);
    assert_eq!(
        f.engine
            .queue_info(f.q("a"))
            .await
            .expect("info")
            .message_count,
        1
    );

    let got = f.engine.receive(f.q("a"), 1, secs(30)).await.expect("recv");
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert_eq!(
        (m.id, m.body.as_slice(), m.dequeue_count),
        (put.id, &b"hello"[..], 1)
    );
    assert_eq!(m.visible_at, now.saturating_add(secs(30)));
    assert_ne!(m.receipt, put.receipt);
    // Leased: invisible to receive and peek, but still counted.
    assert!(f
        .engine
        .receive(f.q("a"), 1, secs(30))
        .await
        .expect("recv")
        .is_empty());
    assert!(f.engine.peek(f.q("a"), 32).await.expect("peek").is_empty());
    assert_eq!(
        f.engine
            .queue_info(f.q("a"))
            .await
            .expect("info")
            .message_count,
        1
    );

    assert!(matches!(
        f.engine.delete_message(f.q("a"), m.id, put.receipt).await,
        Err(Error::PopReceiptMismatch)
    ));
    f.engine
        .delete_message(f.q("a"), m.id, m.receipt)
        .await
        .expect("delete");
    assert!(matches!(
        f.engine.delete_message(f.q("a"), m.id, m.receipt).await,
        Err(Error::MessageNotFound)
    ));
    assert_eq!(
        f.engine
            .queue_info(f.q("a"))
            .await
            .expect("info")
            .message_count,
        0
    );
}

pub async fn lease_expiry_makes_message_visible_again(store: Arc<dyn Store>) {
    let f = fixture(store);
    f.engine
        .create_queue(f.q("a"), Metadata::default())
        .await
        .expect("create");
    send(&f, "a", "m").await;
    let first = f
        .engine
        .receive(f.q("a"), 1, secs(30))
        .await
        .expect("recv")
        .remove(0);
    f.clock.advance(secs(30) - Duration::from_millis(1));
    assert!(f
        .engine
        .receive(f.q("a"), 1, secs(30))
        .await
        .expect("recv")
        .is_empty());
    f.clock.advance(Duration::from_millis(1));
    let second = f.engine.receive(f.q("a"), 1, secs(10)).await.expect("recv");
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].id, first.id);
    assert_eq!(second[0].dequeue_count, 2);
    assert_ne!(second[0].receipt, first.receipt);
    // The first lease's receipt died when the message was dequeued again.
    assert!(matches!(
        f.engine
            .delete_message(f.q("a"), first.id, first.receipt)
            .await,
        Err(Error::PopReceiptMismatch)
    ));
    f.engine
        .delete_message(f.q("a"), first.id, second[0].receipt)
        .await
        .expect("delete");
}

pub async fn receipt_survives_lapsed_lease_until_redequeued(store: Arc<dyn Store>) {
    let f = fixture(store);
    f.engine
        .create_queue(f.q("a"), Metadata::default())
        .await
        .expect("create");
    send(&f, "a", "m").await;
    let m = f
        .engine
        .receive(f.q("a"), 1, secs(5))
        .await
        .expect("recv")
        .remove(0);
    f.clock.advance(secs(60));
    // Visible again, but nobody dequeued it: the old receipt still works (as the live service answers; `docs/compatibility.md`).
    let upd = f
        .engine
        .update_message(f.q("a"), m.id, m.receipt, secs(5), None)
        .await
        .expect("update after lapse");
    f.clock.advance(secs(60));
    f.engine
        .delete_message(f.q("a"), m.id, upd.receipt)
        .await
        .expect("delete after lapse");
}

pub async fn put_with_visibility_delay(store: Arc<dyn Store>) {
    let f = fixture(store);
    f.engine
        .create_queue(f.q("a"), Metadata::default())
        .await
        .expect("create");
    let put = f
        .engine
        .send(f.q("a"), b"later".to_vec(), opts(10, DEFAULT_TTL))
        .await
        .expect("send");
    assert_eq!(put.visible_at, f.engine.now().saturating_add(secs(10)));
    assert!(f.engine.peek(f.q("a"), 1).await.expect("peek").is_empty());
    assert_eq!(
        f.engine
            .queue_info(f.q("a"))
            .await
            .expect("info")
            .message_count,
        1
    );
    // The put's receipt is valid before the message is ever received.
    let upd = f
        .engine
        .update_message(
            f.q("a"),
            put.id,
            put.receipt,
            Duration::ZERO,
            Some(b"now".to_vec()),
        )
        .await
        .expect("update with put receipt");
    assert_eq!(upd.dequeue_count, 0);
    let got = f.engine.receive(f.q("a"), 1, secs(30)).await.expect("recv");
    assert_eq!(bodies(&got), ["now"]);
}

pub async fn expired_messages_vanish(store: Arc<dyn Store>) {
    let f = fixture(store);
    f.engine
        .create_queue(f.q("a"), Metadata::default())
        .await
        .expect("create");
    let short = f
        .engine
        .send(f.q("a"), b"short".to_vec(), opts(0, Ttl::After(secs(10))))
        .await
        .expect("send");
    let leased_short = f
        .engine
        .send(f.q("a"), b"leased".to_vec(), opts(0, Ttl::After(secs(10))))
        .await
        .expect("send");
    let forever = f
        .engine
        .send(f.q("a"), b"forever".to_vec(), opts(0, Ttl::Never))
        .await
        .expect("send");
    assert_eq!(forever.expires_at, Timestamp::NEVER);
    // Lease the second so an invisible message expires too.
    let leased = f
        .engine
        .receive(f.q("a"), 2, secs(3600))
        .await
        .expect("recv");
    assert_eq!(bodies(&leased), ["short", "leased"]);
    f.clock.advance(secs(10));
    let info = f.engine.queue_info(f.q("a")).await.expect("info");
    assert_eq!(info.message_count, 1, "expired messages do not count");
    assert_eq!(
        bodies(&f.engine.peek(f.q("a"), 32).await.expect("peek")),
        ["forever"]
    );
    for m in &leased {
        assert!(matches!(
            f.engine.delete_message(f.q("a"), m.id, m.receipt).await,
            Err(Error::MessageNotFound)
        ));
        assert!(matches!(
            f.engine
                .update_message(f.q("a"), m.id, m.receipt, secs(1), None)
                .await,
            Err(Error::MessageNotFound)
        ));
    }
    let _ = (short, leased_short);
    let got = f
        .engine
        .receive(f.q("a"), 32, secs(30))
        .await
        .expect("recv");
    assert_eq!(bodies(&got), ["forever"]);
    // A TTL that runs past year 9999 is clamped to "never".
    let huge = f
        .engine
        .send(
            f.q("a"),
            b"huge".to_vec(),
            opts(0, Ttl::After(Duration::from_secs(i32::MAX as u64 * 200))),
        )
        .await
        .expect("send");
    assert_eq!(huge.expires_at, Timestamp::NEVER);
}

pub async fn peek_does_not_lease(store: Arc<dyn Store>) {
    let f = fixture(store);
    f.engine
        .create_queue(f.q("a"), Metadata::default())
        .await
        .expect("create");
    send(&f, "a", "one").await;
    send(&f, "a", "two").await;
    let p1 = f.engine.peek(f.q("a"), 32).await.expect("peek");
    let p2 = f.engine.peek(f.q("a"), 1).await.expect("peek");
    assert_eq!(bodies(&p1), ["one", "two"]);
    assert_eq!(bodies(&p2), ["one"]);
    assert!(p1.iter().all(|m| m.dequeue_count == 0));
    let got = f.engine.receive(f.q("a"), 2, secs(30)).await.expect("recv");
    assert_eq!(bodies(&got), ["one", "two"]);
    assert!(got.iter().all(|m| m.dequeue_count == 1));
}

pub async fn update_message_rules(store: Arc<dyn Store>) {
    let f = fixture(store);
    f.engine
        .create_queue(f.q("a"), Metadata::default())
        .await
        .expect("create");
    send(&f, "a", "v1").await;
    let m = f
        .engine
        .receive(f.q("a"), 1, secs(30))
        .await
        .expect("recv")
        .remove(0);
    let u = f
        .engine
        .update_message(f.q("a"), m.id, m.receipt, secs(60), Some(b"v2".to_vec()))
        .await
        .expect("update");
    assert_ne!(u.receipt, m.receipt);
    assert_eq!(u.dequeue_count, 1);
    assert_eq!(u.visible_at, f.engine.now().saturating_add(secs(60)));
    assert_eq!(u.body, b"v2");
    // The replaced receipt no longer works.
    assert!(matches!(
        f.engine
            .update_message(f.q("a"), m.id, m.receipt, secs(1), None)
            .await,
        Err(Error::PopReceiptMismatch)
    ));
    // Body None keeps the body; visibility 0 makes it visible at once.
    let u2 = f
        .engine
        .update_message(f.q("a"), m.id, u.receipt, Duration::ZERO, None)
        .await
        .expect("update");
    assert_eq!(u2.body, b"v2");
    let got = f.engine.receive(f.q("a"), 1, secs(30)).await.expect("recv");
    assert_eq!(bodies(&got), ["v2"]);
    assert_eq!(got[0].dequeue_count, 2);
    let unknown = MessageId(42);
    assert!(matches!(
        f.engine
            .update_message(f.q("a"), unknown, got[0].receipt, secs(1), None)
            .await,
        Err(Error::MessageNotFound)
    ));
    assert!(matches!(
        f.engine
            .delete_message(f.q("a"), unknown, PopReceipt(7))
            .await,
        Err(Error::MessageNotFound)
    ));
}

pub async fn clear_removes_every_message(store: Arc<dyn Store>) {
    let f = fixture(store);
    f.engine
        .create_queue(f.q("a"), Metadata::default())
        .await
        .expect("create");
    for i in 0..5 {
        send(&f, "a", &format!("m{i}")).await;
    }
    f.engine.receive(f.q("a"), 2, secs(30)).await.expect("recv");
    f.engine.clear_messages(f.q("a")).await.expect("clear");
    assert_eq!(
        f.engine
            .queue_info(f.q("a"))
            .await
            .expect("info")
            .message_count,
        0
    );
    f.clock.advance(secs(31));
    assert!(f
        .engine
        .receive(f.q("a"), 32, secs(30))
        .await
        .expect("recv")
        .is_empty());
    send(&f, "a", "after").await;
    assert_eq!(
        bodies(&f.engine.peek(f.q("a"), 32).await.expect("peek")),
        ["after"]
    );
}

pub async fn receive_order_and_batch(store: Arc<dyn Store>) {
    let f = fixture(store);
    f.engine
        .create_queue(f.q("a"), Metadata::default())
        .await
        .expect("create");
    for i in 0..5 {
        send(&f, "a", &format!("m{i}")).await;
        f.clock.advance(Duration::from_millis(1));
    }
    let got = f.engine.receive(f.q("a"), 3, secs(30)).await.expect("recv");
    assert_eq!(bodies(&got), ["m0", "m1", "m2"]);
    assert_eq!(
        bodies(&f.engine.peek(f.q("a"), 32).await.expect("peek")),
        ["m3", "m4"]
    );
    let rest = f
        .engine
        .receive(f.q("a"), 32, secs(30))
        .await
        .expect("recv");
    assert_eq!(bodies(&rest), ["m3", "m4"]);
    // A message whose lease lapsed comes back after those that were visible earlier.
    f.clock.advance(secs(31));
    let again = f
        .engine
        .receive(f.q("a"), 32, secs(30))
        .await
        .expect("recv");
    assert_eq!(bodies(&again), ["m0", "m1", "m2", "m3", "m4"]);
}

pub async fn missing_queue_everywhere(store: Arc<dyn Store>) {
    let f = fixture(store);
    let e = &f.engine;
    let nf = |r: Result<(), Error>| assert!(matches!(r, Err(Error::QueueNotFound)), "{r:?}");
    nf(e.queue_info(f.q("x")).await.map(drop));
    nf(e.delete_queue(f.q("x")).await);
    nf(e.set_metadata(f.q("x"), Metadata::default()).await);
    nf(e.access_policies(f.q("x")).await.map(drop));
    nf(e.set_access_policies(f.q("x"), vec![]).await);
    nf(e.send(f.q("x"), vec![], opts(0, DEFAULT_TTL))
        .await
        .map(drop));
    nf(e.receive(f.q("x"), 1, secs(1)).await.map(drop));
    nf(e.peek(f.q("x"), 1).await.map(drop));
    nf(e.delete_message(f.q("x"), MessageId(1), PopReceipt(1))
        .await);
    nf(
        e.update_message(f.q("x"), MessageId(1), PopReceipt(1), secs(1), None)
            .await
            .map(drop),
    );
    nf(e.clear_messages(f.q("x")).await);
}

pub async fn accounts_are_isolated(store: Arc<dyn Store>) {
    let f = fixture(store);
    let (one, two) = (f.other("one"), f.other("two"));
    let a = QueueRef::new(&one, "q");
    let b = QueueRef::new(&two, "q");
    f.engine
        .create_queue(a, meta(&[("a", "1")]))
        .await
        .expect("create");
    assert!(matches!(
        f.engine.queue_info(b).await,
        Err(Error::QueueNotFound)
    ));
    f.engine
        .create_queue(b, Metadata::default())
        .await
        .expect("create");
    f.engine
        .send(a, b"for one".to_vec(), opts(0, DEFAULT_TTL))
        .await
        .expect("send");
    assert!(f
        .engine
        .receive(b, 32, secs(30))
        .await
        .expect("recv")
        .is_empty());
    assert_eq!(
        bodies(&f.engine.receive(a, 32, secs(30)).await.expect("recv")),
        ["for one"]
    );
    f.engine.delete_queue(a).await.expect("delete");
    assert!(f.engine.queue_info(b).await.is_ok());
}

/// Metadata changes by compare-and-set: a write based on a stale read is refused, and the
/// exact pairs (order and case) are what is compared.
pub async fn metadata_swaps_only_what_was_read(store: Arc<dyn Store>) {
    let f = fixture(store);
    let q = f.q("swapped");
    f.engine
        .create_queue(q, Metadata::default())
        .await
        .expect("create");
    let one = Metadata(vec![("a".into(), "1".into())]);
    let two = Metadata(vec![("a".into(), "2".into())]);
    assert!(f
        .engine
        .swap_metadata(q, Metadata::default(), one.clone())
        .await
        .expect("swap"));
    assert!(!f
        .engine
        .swap_metadata(q, Metadata::default(), two.clone())
        .await
        .expect("stale"));
    let upper = Metadata(vec![("A".into(), "1".into())]);
    assert!(!f
        .engine
        .swap_metadata(q, upper, two.clone())
        .await
        .expect("case differs"));
    assert!(f
        .engine
        .swap_metadata(q, one, two.clone())
        .await
        .expect("swap"));
    assert_eq!(f.engine.queue_info(q).await.expect("info").metadata, two);
    assert!(matches!(
        f.engine
            .swap_metadata(f.q("nowhere"), Metadata::default(), two)
            .await,
        Err(Error::QueueNotFound)
    ));
}

pub async fn account_documents_round_trip(store: Arc<dyn Store>) {
    let f = fixture(store);
    assert_eq!(
        f.engine
            .account_document(&f.account, "props")
            .await
            .expect("get"),
        None
    );
    let swap = |expected: Option<&[u8]>, value: &[u8]| {
        f.engine.swap_account_document(
            &f.account,
            "props",
            expected.map(<[u8]>::to_vec),
            value.to_vec(),
        )
    };
    assert!(swap(None, b"<x/>").await.expect("create"));
    // A writer that read before the first write does not overwrite it.
    assert!(!swap(None, b"<lost/>").await.expect("stale create"));
    assert!(!swap(Some(b"<w/>"), b"<lost/>").await.expect("stale"));
    assert!(swap(Some(b"<x/>"), b"<y/>").await.expect("swap"));
    assert!(!swap(Some(b"<x/>"), b"<lost/>").await.expect("stale"));
    assert_eq!(
        f.engine
            .account_document(&f.account, "props")
            .await
            .expect("get")
            .as_deref(),
        Some(&b"<y/>"[..])
    );
    assert_eq!(
        f.engine
            .account_document(&f.other("other"), "props")
            .await
            .expect("get"),
        None
    );
}

pub async fn sequence_numbers_increase(store: Arc<dyn Store>) {
    let f = fixture(store);
    f.engine
        .create_queue(f.q("a"), Metadata::default())
        .await
        .expect("create");
    let mut last = None;
    for i in 0..10 {
        let m = send(&f, "a", &format!("{i}")).await;
        if let Some(prev) = last {
            assert!(m.sequence > prev);
        }
        last = Some(m.sequence);
    }
    // Deleting messages does not let sequence numbers go back.
    f.engine.clear_messages(f.q("a")).await.expect("clear");
    let m = send(&f, "a", "after").await;
    assert!(Some(m.sequence) > last);
}

/// Two receivers race for the same messages, on two threads: no message may be handed to
/// both while its lease holds, and together they get every message once.
pub async fn racing_receivers_never_share_a_message(store: Arc<dyn Store>) {
    let f = fixture(store);
    f.engine
        .create_queue(f.q("race"), Metadata::default())
        .await
        .expect("create");
    let mut sent = std::collections::BTreeSet::new();
    for i in 0..200 {
        sent.insert(send(&f, "race", &format!("m{i}")).await.id);
    }
    let mut all =
        race_two(|| block_on(f.engine.receive(f.q("race"), 3, secs(3600))).expect("receive"));
    let total = all.len();
    all.dedup();
    assert_eq!(all.len(), total, "a message was leased to both receivers");
    assert_eq!(
        all.into_iter().collect::<std::collections::BTreeSet<_>>(),
        sent
    );
}

// ---- Service Bus rules ----------------------------------------------------------------------

const MAIN: SubQueue = SubQueue::Main;
const DLQ: SubQueue = SubQueue::DeadLetter;

/// A Service Bus queue `name` with MaxDeliveryCount `max`, holding `bodies`.
async fn sb_queue(f: &Fixture, name: &str, max: u32, dead_letter_on_expiry: bool, bodies: &[&str]) {
    let settings = QueueSettings {
        rules: LeaseRules::service_bus(max, dead_letter_on_expiry),
    };
    f.engine
        .create_queue_with(f.q(name), Metadata::default(), settings)
        .await
        .expect("create");
    if !bodies.is_empty() {
        f.engine
            .enqueue(
                f.q(name),
                bodies
                    .iter()
                    .map(|b| Outgoing {
                        body: b.as_bytes().to_vec(),
                        ttl: Ttl::Never,
                        scheduled_at: None,
                    })
                    .collect(),
                u64::MAX,
            )
            .await
            .expect("enqueue");
    }
}

async fn lock_one(f: &Fixture, name: &str, sub: SubQueue) -> crate::Message {
    let mut got = f
        .engine
        .lock(f.q(name), sub, 1, secs(30))
        .await
        .expect("lock");
    assert_eq!(got.len(), 1, "one message to lock");
    got.remove(0)
}

async fn settle(
    f: &Fixture,
    name: &str,
    sub: SubQueue,
    m: &crate::Message,
    how: Settlement,
) -> Settled {
    f.engine
        .settle(f.q(name), sub, m.receipt, how)
        .await
        .expect("settle")
}

pub async fn sb_counts_failed_deliveries_and_loses_lapsed_locks(store: Arc<dyn Store>) {
    let f = fixture(store);
    sb_queue(&f, "q", 10, false, &["m"]).await;
    let m = lock_one(&f, "q", MAIN).await;
    assert_eq!(
        (m.state, m.dequeue_count, bodies(std::slice::from_ref(&m))),
        (MessageState::Locked, 0, vec!["m".to_owned()])
    );
    settle(&f, "q", MAIN, &m, Settlement::Release).await;
    let m = lock_one(&f, "q", MAIN).await;
    assert_eq!(m.dequeue_count, 0, "a release is not a failed delivery");
    settle(&f, "q", MAIN, &m, Settlement::Abandon).await;
    let m = lock_one(&f, "q", MAIN).await;
    assert_eq!(m.dequeue_count, 1, "an abandon is");
    let renewed = f
        .engine
        .renew_lock(f.q("q"), MAIN, m.receipt, secs(60))
        .await
        .expect("renew");
    assert_eq!(renewed.receipt, m.receipt, "renewing keeps the token");
    f.clock.advance(secs(61));
    assert!(matches!(
        f.engine
            .settle(f.q("q"), MAIN, m.receipt, Settlement::Complete)
            .await,
        Err(Error::LockLost)
    ));
    let again = lock_one(&f, "q", MAIN).await;
    assert_eq!(
        (again.id, again.dequeue_count),
        (m.id, 2),
        "the lapsed lock was a failed delivery"
    );
    assert!(matches!(
        settle(&f, "q", MAIN, &again, Settlement::Complete).await,
        Settled::Removed(_)
    ));
    assert!(f
        .engine
        .lock(f.q("q"), MAIN, 1, secs(30))
        .await
        .expect("lock")
        .is_empty());
}

pub async fn sb_dead_letters_at_max_deliveries_and_on_request(store: Arc<dyn Store>) {
    let f = fixture(store);
    sb_queue(&f, "q", 2, false, &["poison", "bad"]).await;
    // Time passes between enqueue and receive: an abandoned message must still come back
    // before the younger one (its place is by enqueue time, as on Service Bus).
    f.clock.advance(secs(1));
    for _ in 0..2 {
        let m = lock_one(&f, "q", MAIN).await;
        assert_eq!(bodies(std::slice::from_ref(&m)), ["poison"]);
        settle(&f, "q", MAIN, &m, Settlement::Abandon).await;
    }
    let bad = lock_one(&f, "q", MAIN).await;
    assert_eq!(bodies(std::slice::from_ref(&bad)), ["bad"]);
    let info = crate::model::DeadLetterInfo {
        reason: Some("invalid".into()),
        description: Some("cannot parse".into()),
    };
    settle(&f, "q", MAIN, &bad, Settlement::DeadLetter(info.clone())).await;
    assert!(f
        .engine
        .lock(f.q("q"), MAIN, 5, secs(30))
        .await
        .expect("lock")
        .is_empty());
    let dead = f.engine.browse(f.q("q"), DLQ, 0, 10).await.expect("browse");
    assert_eq!(bodies(&dead), ["poison", "bad"]);
    let counts = f.engine.queue_info(f.q("q")).await.expect("info");
    assert_eq!((counts.message_count, counts.dead_letter_count), (0, 2));
    assert_eq!(
        dead[0]
            .dead_letter
            .as_ref()
            .and_then(|d| d.reason.as_deref()),
        Some(crate::index::MAX_DELIVERY_COUNT_EXCEEDED)
    );
    assert_eq!(dead[1].dead_letter.as_ref(), Some(&info));
    // The dead-letter queue is received and settled like any queue.
    let d = lock_one(&f, "q", DLQ).await;
    assert_eq!(
        d.sequence, dead[0].sequence,
        "a message keeps its sequence number"
    );
    settle(&f, "q", DLQ, &d, Settlement::Complete).await;
    let rest = f.engine.take(f.q("q"), DLQ, 10).await.expect("take");
    assert_eq!(bodies(&rest), ["bad"]);
}

pub async fn sb_expiry_dead_letters_when_asked(store: Arc<dyn Store>) {
    let f = fixture(store);
    for (name, dead_letter) in [("keep", true), ("drop", false)] {
        sb_queue(&f, name, 10, dead_letter, &[]).await;
        f.engine
            .enqueue(
                f.q(name),
                vec![Outgoing {
                    body: b"short".to_vec(),
                    ttl: Ttl::After(secs(60)),
                    scheduled_at: None,
                }],
                u64::MAX,
            )
            .await
            .expect("enqueue");
    }
    f.clock.advance(secs(61));
    // Asking for the queue's properties before housekeeping has run must not delete what
    // expiry is to dead-letter (the memory store's queue_info once purged it).
    f.engine.queue_info(f.q("keep")).await.expect("info");
    f.engine.housekeep(100).await.expect("housekeep");
    for name in ["keep", "drop"] {
        assert!(f
            .engine
            .browse(f.q(name), MAIN, 0, 10)
            .await
            .expect("browse")
            .is_empty());
    }
    let kept = f
        .engine
        .browse(f.q("keep"), DLQ, 0, 10)
        .await
        .expect("browse");
    assert_eq!(bodies(&kept), ["short"]);
    assert_eq!(
        kept[0]
            .dead_letter
            .as_ref()
            .and_then(|d| d.reason.as_deref()),
        Some(crate::index::TTL_EXPIRED)
    );
    assert!(f
        .engine
        .browse(f.q("drop"), DLQ, 0, 10)
        .await
        .expect("browse")
        .is_empty());
}

pub async fn sb_scheduled_messages_and_cancellation(store: Arc<dyn Store>) {
    let f = fixture(store);
    sb_queue(&f, "q", 10, false, &[]).await;
    let at = f.engine.now().saturating_add(secs(60));
    let scheduled = f
        .engine
        .enqueue(
            f.q("q"),
            ["later", "never"]
                .iter()
                .map(|b| Outgoing {
                    body: b.as_bytes().to_vec(),
                    // Shorter than the wait: a TTL counted from the schedule call would expire
                    // the message before it ever appeared.
                    ttl: Ttl::After(secs(30)),
                    scheduled_at: Some(at),
                })
                .collect(),
            u64::MAX,
        )
        .await
        .expect("schedule");
    assert!(scheduled.iter().all(|m| m.state == MessageState::Scheduled));
    assert!(f
        .engine
        .lock(f.q("q"), MAIN, 5, secs(30))
        .await
        .expect("lock")
        .is_empty());
    let cancelled = f
        .engine
        .cancel_scheduled(f.q("q"), vec![scheduled[1].sequence, 999])
        .await
        .expect("cancel");
    assert_eq!(cancelled, [scheduled[1].sequence]);
    let counts = |i: QueueInfo| (i.message_count, i.scheduled_count);
    let info = f.engine.queue_info(f.q("q")).await.expect("info");
    assert_eq!(counts(info), (1, 1), "the entity's counts see what waits");
    f.clock.advance(secs(60));
    let got = f
        .engine
        .lock(f.q("q"), MAIN, 5, secs(30))
        .await
        .expect("lock");
    assert_eq!(bodies(&got), ["later"]);
    let info = f.engine.queue_info(f.q("q")).await.expect("info");
    assert_eq!(
        counts(info),
        (1, 0),
        "a locked message is no longer scheduled"
    );
    assert_eq!(got[0].inserted_at, at, "enqueued at its scheduled time");
    assert_eq!(got[0].expires_at, at.saturating_add(secs(30)));
}

pub async fn sb_deferred_messages_by_sequence_number(store: Arc<dyn Store>) {
    let f = fixture(store);
    sb_queue(&f, "q", 10, false, &["deferred", "next"]).await;
    let m = lock_one(&f, "q", MAIN).await;
    settle(&f, "q", MAIN, &m, Settlement::Defer).await;
    let next = lock_one(&f, "q", MAIN).await;
    assert_eq!(
        bodies(&[next]),
        ["next"],
        "a deferred message is not received again"
    );
    let got = f
        .engine
        .lock_deferred(f.q("q"), MAIN, vec![m.sequence], secs(30))
        .await
        .expect("receive deferred");
    assert_eq!(bodies(&got), ["deferred"]);
    assert_eq!(got[0].state, MessageState::DeferredLocked);
    // Abandoned, and later lapsed, it is deferred again (as in Service Bus), never active:
    // a plain receive does not see it, a receive by sequence number does.
    settle(&f, "q", MAIN, &got[0], Settlement::Abandon).await;
    let again = f
        .engine
        .lock_deferred(f.q("q"), MAIN, vec![m.sequence], secs(5))
        .await
        .expect("receive deferred");
    assert_eq!(again.len(), 1, "abandoned, it is still deferred");
    assert_eq!(again[0].dequeue_count, 1, "the abandon counted");
    f.clock.advance(secs(6));
    f.engine.housekeep(100).await.expect("housekeep");
    let plain = f
        .engine
        .lock(f.q("q"), MAIN, 10, secs(30))
        .await
        .expect("lock");
    assert!(
        plain.is_empty(),
        "a lapsed deferred lock leaves it deferred"
    );
    let last = f
        .engine
        .lock_deferred(f.q("q"), MAIN, vec![m.sequence], secs(30))
        .await
        .expect("receive deferred");
    assert_eq!(last[0].dequeue_count, 2, "the lapse counted");
    settle(&f, "q", MAIN, &last[0], Settlement::Complete).await;
}

pub async fn sb_browse_sees_every_state(store: Arc<dyn Store>) {
    let f = fixture(store);
    sb_queue(&f, "q", 10, false, &["a", "b", "c"]).await;
    let locked = lock_one(&f, "q", MAIN).await;
    let deferred = lock_one(&f, "q", MAIN).await;
    settle(&f, "q", MAIN, &deferred, Settlement::Defer).await;
    let all = f
        .engine
        .browse(f.q("q"), MAIN, 0, 10)
        .await
        .expect("browse");
    assert_eq!(bodies(&all), ["a", "b", "c"]);
    let states: Vec<_> = all.iter().map(|m| m.state).collect();
    assert_eq!(
        states,
        [
            MessageState::Locked,
            MessageState::Deferred,
            MessageState::Active
        ]
    );
    assert_eq!(all[0].id, locked.id);
    let from = f
        .engine
        .browse(f.q("q"), MAIN, all[1].sequence, 10)
        .await
        .expect("browse");
    assert_eq!(bodies(&from), ["b", "c"]);
    assert_eq!(
        f.engine
            .browse(f.q("q"), MAIN, 0, 1)
            .await
            .expect("browse")
            .len(),
        1
    );
}

/// Service Bus refuses sends at MaxSizeInMegabytes, so every store reports an entity's
/// size: the bodies held in the queue and its dead-letter sub-queue, whatever their state.
pub async fn sb_entity_size_counts_both_sub_queues(store: Arc<dyn Store>) {
    let f = fixture(store);
    sb_queue(&f, "q", 10, false, &["aaaa", "bb", "c"]).await;
    assert_eq!(size_of(&f, "q").await, 7);
    let m = lock_one(&f, "q", MAIN).await;
    assert_eq!(size_of(&f, "q").await, 7, "a lock changes nothing");
    settle(
        &f,
        "q",
        MAIN,
        &m,
        Settlement::DeadLetter(crate::DeadLetterInfo::default()),
    )
    .await;
    assert_eq!(
        size_of(&f, "q").await,
        7,
        "the dead-letter sub-queue counts"
    );
    let dead = lock_one(&f, "q", DLQ).await;
    settle(&f, "q", DLQ, &dead, Settlement::Complete).await;
    assert_eq!(size_of(&f, "q").await, 3);
    f.engine.take(f.q("q"), MAIN, 10).await.expect("take");
    assert_eq!(size_of(&f, "q").await, 0);
}

/// MaxSizeInMegabytes is checked in the same step as the append, so a send costs no read
/// that waits behind other writes: below the bound a batch goes in whole (and may overshoot
/// it, as on Azure), at or over it nothing goes in and the size is told. Room made by a
/// receive is room again.
pub async fn sb_full_entity_refuses_enqueues(store: Arc<dyn Store>) {
    let f = fixture(store);
    sb_queue(&f, "q", 10, false, &["aaaa"]).await;
    let send = |bodies: &[&str], max: u64| {
        let batch = bodies
            .iter()
            .map(|b| Outgoing {
                body: b.as_bytes().to_vec(),
                ttl: Ttl::Never,
                scheduled_at: None,
            })
            .collect();
        f.engine.enqueue(f.q("q"), batch, max)
    };
    let stored = send(&["bbb", "cc"], 5).await.expect("below the bound");
    assert_eq!(stored.len(), 2, "the whole batch, past the bound");
    assert_eq!(size_of(&f, "q").await, 9);
    assert!(matches!(
        send(&["d"], 9).await,
        Err(Error::EntityFull { size_bytes: 9 })
    ));
    assert_eq!(size_of(&f, "q").await, 9, "a refused batch stores nothing");
    f.engine.take(f.q("q"), MAIN, 1).await.expect("take");
    send(&["d"], 9).await.expect("room again after a receive");
    assert!(matches!(
        send(&["e"], 0).await,
        Err(Error::EntityFull { .. })
    ));
    send(&["e"], u64::MAX).await.expect("no bound");
}

/// A Service Bus entity's MaxDeliveryCount changed in its configuration takes effect on the
/// queue as it is, and a lock held across the change still settles by its token.
pub async fn sb_rules_change_with_the_configuration(store: Arc<dyn Store>) {
    let f = fixture(store);
    sb_queue(&f, "q", 10, false, &["held", "poison"]).await;
    let held = lock_one(&f, "q", MAIN).await;
    f.engine
        .set_rules(f.q("q"), LeaseRules::service_bus(1, false))
        .await
        .expect("set rules");
    settle(&f, "q", MAIN, &held, Settlement::Complete).await;
    let poison = lock_one(&f, "q", MAIN).await;
    settle(&f, "q", MAIN, &poison, Settlement::Abandon).await;
    let dead = f.engine.browse(f.q("q"), DLQ, 0, 10).await.expect("browse");
    assert_eq!(
        bodies(&dead),
        ["poison"],
        "one failed delivery is now the maximum"
    );
    assert!(matches!(
        f.engine
            .set_rules(f.q("missing"), LeaseRules::service_bus(1, false))
            .await,
        Err(Error::QueueNotFound)
    ));
}

async fn size_of(f: &Fixture, name: &str) -> u64 {
    f.engine
        .queue_info(f.q(name))
        .await
        .expect("info")
        .size_bytes
}

pub async fn sb_batches_and_receive_and_delete(store: Arc<dyn Store>) {
    let f = fixture(store);
    let bodies_in: Vec<String> = (0..100).map(|i| format!("b{i}")).collect();
    let refs: Vec<&str> = bodies_in.iter().map(String::as_str).collect();
    sb_queue(&f, "q", 10, false, &refs).await;
    let all = f
        .engine
        .browse(f.q("q"), MAIN, 0, 1000)
        .await
        .expect("browse");
    let seqs: Vec<u64> = all.iter().map(|m| m.sequence).collect();
    assert_eq!(seqs.len(), 100);
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "consecutive sequence numbers"
    );
    let taken = f.engine.take(f.q("q"), MAIN, 60).await.expect("take");
    assert_eq!(bodies(&taken), bodies_in[..60]);
    let rest = f.engine.take(f.q("q"), MAIN, 60).await.expect("take");
    assert_eq!(bodies(&rest), bodies_in[60..]);
    assert!(f
        .engine
        .browse(f.q("q"), MAIN, 0, 10)
        .await
        .expect("browse")
        .is_empty());
    assert!(matches!(
        f.engine.lock(f.q("missing"), MAIN, 1, secs(1)).await,
        Err(Error::QueueNotFound)
    ));
}

/// Two lockers race on two threads: no message is locked by both, and each is locked once.
pub async fn sb_racing_lockers_never_share_a_message(store: Arc<dyn Store>) {
    let f = fixture(store);
    let names: Vec<String> = (0..200).map(|i| format!("m{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    sb_queue(&f, "race", 10, false, &refs).await;
    let mut all =
        race_two(|| block_on(f.engine.lock(f.q("race"), MAIN, 3, secs(3600))).expect("lock"));
    let total = all.len();
    all.dedup();
    assert_eq!(
        (all.len(), total),
        (200, 200),
        "every message locked exactly once"
    );
}

/// Two takers on two threads, each calling `take` until it comes back empty: the ids of
/// everything they got, sorted, a message taken by both appearing twice.
fn race_two(take: impl Fn() -> Vec<crate::Message> + Sync) -> Vec<MessageId> {
    let drain = || {
        let mut got = Vec::new();
        loop {
            let batch = take();
            if batch.is_empty() {
                return got;
            }
            got.extend(batch.into_iter().map(|m| m.id));
        }
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(drain);
        let b = s.spawn(drain);
        (a.join().expect("taker a"), b.join().expect("taker b"))
    });
    let mut all: Vec<MessageId> = a.into_iter().chain(b).collect();
    all.sort();
    all
}

/// Runs a future to completion on this thread, parking while it waits (the stores' futures
/// need no runtime).
fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

/// Drives a future whose store never waits (the in-memory store) to completion.
#[doc(hidden)]
pub fn block_on_ready<F: std::future::Future>(fut: F) -> F::Output {
    use std::task::{Context, Poll, Waker};
    let mut fut = std::pin::pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("future was not ready: the memory store must never wait"),
    }
}

#[cfg(test)]
mod memory_store {
    use std::sync::Arc;

    use crate::{MemoryStore, Store};

    crate::store_conformance_tests!(@list [ready] || -> Arc<dyn Store> { Arc::new(MemoryStore::new()) });
}
