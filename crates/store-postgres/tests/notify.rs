//! A message made available on one node reaches the other node's waiting receivers through
//! one `NOTIFY` after the commit; a node is not told of its own, and a storage queue's put,
//! which nobody waits for, is not announced.

mod common;

use std::time::Duration;

use hematite_engine::model::NewMessage;
use hematite_engine::store::{Enqueue, QueueSettings};
use hematite_engine::{LeaseRules, MessageId, Metadata, PopReceipt, QueueRef, Store, Timestamp};
use hematite_store_postgres::PostgresStore;
use tokio::sync::mpsc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_on_one_node_is_announced_to_the_other_and_not_to_itself() {
    let url = common::server_url();
    let (a, b) = tokio::join!(PostgresStore::open(&url), PostgresStore::open(&url));
    let (a, b) = (a.expect("a"), b.expect("b"));
    let (to_a, mut heard_a) = mpsc::unbounded_channel();
    let (to_b, mut heard_b) = mpsc::unbounded_channel();
    a.on_remote_change(move |acct, q| {
        let _ = to_a.send((acct.to_owned(), q.to_owned()));
    });
    b.on_remote_change(move |acct, q| {
        let _ = to_b.send((acct.to_owned(), q.to_owned()));
    });
    // The listening sessions start in the background.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let account = format!("notify{}", uuid::Uuid::new_v4().simple());
    let q = QueueRef::new(&account, "q");
    let settings = QueueSettings {
        rules: LeaseRules::service_bus(10, false),
    };
    a.create_queue(q, &Metadata::default(), settings)
        .await
        .expect("create");
    let now = Timestamp::from_millis(1_800_000_000_000);
    let message = Enqueue {
        message: NewMessage {
            id: MessageId::random(),
            body: b"hello".to_vec(),
            inserted_at: now,
            expires_at: Timestamp::NEVER,
            visible_at: now,
            receipt: PopReceipt::random(),
        },
        scheduled: false,
    };
    a.enqueue(q, vec![message.clone()], u64::MAX)
        .await
        .expect("enqueue");
    let heard = tokio::time::timeout(Duration::from_secs(5), heard_b.recv())
        .await
        .expect("node b heard within 5 s")
        .expect("a message");
    assert_eq!(heard, (account.clone(), "q".to_owned()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        heard_a.try_recv().is_err(),
        "node a was told of its own send"
    );

    // Azure Queue Storage has no waiting receive: its puts cost no announcement.
    let storage = QueueRef::new(&account, "storage");
    let settings = QueueSettings {
        rules: LeaseRules::AZURE_QUEUE,
    };
    a.create_queue(storage, &Metadata::default(), settings)
        .await
        .expect("create");
    let mut put = message.clone();
    put.message.id = MessageId::random();
    a.enqueue(storage, vec![put], u64::MAX)
        .await
        .expect("enqueue");
    let heard = tokio::time::timeout(Duration::from_millis(700), heard_b.recv()).await;
    assert!(
        heard.is_err(),
        "a storage queue's put was announced: {heard:?}"
    );
}
