//! Two nodes on one database racing on one entity: sequence numbers a reader sees never go
//! backwards or skip, a clear takes what was put before it and nothing put after, and a
//! queue deleted and made again never shows the old one's messages.

mod common;

use std::sync::Arc;

use hematite_engine::model::NewMessage;
use hematite_engine::store::{Enqueue, Enqueued, QueueSettings, SubQueue};
use hematite_engine::{LeaseRules, MessageId, Metadata, PopReceipt, QueueRef, Store, Timestamp};
use hematite_store_postgres::PostgresStore;

const NOW: Timestamp = Timestamp::from_millis(1_800_000_000_000);

async fn two_nodes() -> (Arc<PostgresStore>, Arc<PostgresStore>) {
    let db = common::fresh_database("races").await;
    let (a, b) = tokio::join!(PostgresStore::open(&db), PostgresStore::open(&db));
    (Arc::new(a.expect("a")), Arc::new(b.expect("b")))
}

fn message(body: &str) -> Enqueue {
    Enqueue {
        message: NewMessage {
            id: MessageId::random(),
            body: body.as_bytes().to_vec(),
            inserted_at: NOW,
            expires_at: Timestamp::NEVER,
            visible_at: NOW,
            receipt: PopReceipt::random(),
        },
        scheduled: false,
    }
}

const Q: QueueRef<'static> = QueueRef {
    account: "acct",
    queue: "q",
};

async fn create(s: &PostgresStore) {
    let settings = QueueSettings {
        rules: LeaseRules::service_bus(10, false),
    };
    s.create_queue(Q, &Metadata::default(), settings)
        .await
        .expect("create");
}

async fn put(s: &PostgresStore, bodies: Vec<String>) -> Vec<u64> {
    let batch = bodies.iter().map(|b| message(b)).collect();
    match s.enqueue(Q, batch, u64::MAX).await.expect("enqueue") {
        Some(Enqueued::Stored(ms)) => ms.iter().map(|m| m.sequence).collect(),
        other => panic!("not stored: {other:?}"),
    }
}

async fn bodies(s: &PostgresStore) -> Vec<String> {
    s.browse(Q, SubQueue::Main, 0, 100_000, NOW)
        .await
        .expect("browse")
        .expect("queue")
        .into_iter()
        .map(|m| String::from_utf8(m.body).expect("utf-8"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_sees_sequence_numbers_from_two_writers_without_a_gap_or_a_step_back() {
    let (a, b) = two_nodes().await;
    create(&a).await;
    let writer = |s: Arc<PostgresStore>, tag: &'static str| {
        tokio::spawn(async move {
            for i in 0..40 {
                put(&s, (0..5).map(|j| format!("{tag}{i}.{j}")).collect()).await;
            }
        })
    };
    let (wa, wb) = (writer(a.clone(), "a"), writer(b.clone(), "b"));
    // Reading from where it left off: a sequence number committed after a higher one was
    // seen would show as a gap here.
    let mut next = 1;
    while next <= 400 {
        let page = a
            .browse(Q, SubQueue::Main, next, 50, NOW)
            .await
            .expect("browse")
            .expect("queue");
        for m in page {
            assert_eq!(
                m.sequence, next,
                "a gap or a step back in what the reader sees"
            );
            next += 1;
        }
    }
    wa.await.expect("writer a");
    wb.await.expect("writer b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clear_on_one_node_takes_what_was_put_before_it_and_nothing_after() {
    let (a, b) = two_nodes().await;
    create(&a).await;
    put(&a, vec!["before".into()]).await;
    let during = tokio::spawn({
        let a = a.clone();
        async move {
            let mut acked = Vec::new();
            for i in 0..100 {
                put(&a, vec![format!("during{i}")]).await;
                acked.push(format!("during{i}"));
            }
            acked
        }
    });
    assert!(b.clear_messages(Q).await.expect("clear"));
    let cleared_at = std::time::Instant::now();
    put(&a, vec!["after".into()]).await;
    let _ = during.await.expect("putter");
    let left = bodies(&b).await;
    assert!(
        !left.contains(&"before".to_owned()),
        "put before the clear survived it"
    );
    assert!(
        left.contains(&"after".to_owned()),
        "put after the clear was lost"
    );
    // What was put concurrently either went with the clear or survives whole, in order.
    let during_left: Vec<&String> = left.iter().filter(|b| b.starts_with("during")).collect();
    let first_kept = during_left.first().map(|s| s.as_str());
    if let Some(first) = first_kept {
        let n: usize = first["during".len()..].parse().expect("number");
        assert_eq!(
            during_left.len(),
            100 - n,
            "a gap among the puts after the clear"
        );
    }
    assert!(cleared_at.elapsed().as_secs() < 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_deleted_and_made_again_never_shows_the_old_messages() {
    let (a, b) = two_nodes().await;
    create(&a).await;
    put(&a, (0..20).map(|i| format!("old{i}")).collect()).await;
    assert!(b.delete_queue(Q).await.expect("delete"));
    create(&b).await;
    assert_eq!(bodies(&a).await, Vec::<String>::new());
    let seqs = put(&a, vec!["new".into()]).await;
    assert_eq!(bodies(&b).await, ["new"]);
    assert_eq!(seqs, [1], "a new queue counts from 1");
}
