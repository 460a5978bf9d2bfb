//! The conformance suite on two nodes sharing one database: two stores, each with its own
//! pool, and every call of a case sent to the node the previous call did not use. A case
//! passes only if what one node commits is what the other reads, locks and settles.
//!
//! Like `conformance.rs`, it needs `HEMATITE_TEST_POSTGRES` (`scripts/test` sets it).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use hematite_engine::model::NewMessage;
use hematite_engine::store::{
    CreateOutcome, Enqueue, Enqueued, LeaseGrant, LeaseRules, MessageUpdate, QueueSettings,
    ReceiptOutcome, SettleError, Settled, Settlement, StoreFuture, SubQueue,
};
use hematite_engine::{
    AccessPolicy, Message, MessageId, Metadata, PopReceipt, QueueInfo, QueueRef, QueueSummary,
    Store, Timestamp,
};
use hematite_store_postgres::PostgresStore;

struct TwoNodes {
    nodes: [PostgresStore; 2],
    next: AtomicUsize,
}

impl TwoNodes {
    fn node(&self) -> &PostgresStore {
        &self.nodes[self.next.fetch_add(1, Ordering::Relaxed) % 2]
    }
}

async fn fresh() -> Arc<dyn Store> {
    let db = common::fresh_database("two_nodes").await;
    let (a, b) = tokio::join!(PostgresStore::open(&db), PostgresStore::open(&db));
    Arc::new(TwoNodes {
        nodes: [a.expect("node a"), b.expect("node b")],
        next: AtomicUsize::new(0),
    })
}

hematite_engine::store_conformance_tests!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    || { tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(fresh())) }
);

impl Store for TwoNodes {
    fn create_queue<'a>(
        &'a self,
        q: QueueRef<'a>,
        metadata: &'a Metadata,
        settings: QueueSettings,
    ) -> StoreFuture<'a, CreateOutcome> {
        self.node().create_queue(q, metadata, settings)
    }
    fn delete_queue<'a>(&'a self, q: QueueRef<'a>) -> StoreFuture<'a, bool> {
        self.node().delete_queue(q)
    }
    fn list_queues<'a>(
        &'a self,
        account: &'a str,
        prefix: &'a str,
        start_at: Option<&'a str>,
        limit: usize,
    ) -> StoreFuture<'a, Vec<QueueSummary>> {
        self.node().list_queues(account, prefix, start_at, limit)
    }
    fn queue_info<'a>(
        &'a self,
        q: QueueRef<'a>,
        now: Timestamp,
    ) -> StoreFuture<'a, Option<QueueInfo>> {
        self.node().queue_info(q, now)
    }
    fn set_metadata<'a>(&'a self, q: QueueRef<'a>, metadata: Metadata) -> StoreFuture<'a, bool> {
        self.node().set_metadata(q, metadata)
    }
    fn swap_metadata<'a>(
        &'a self,
        q: QueueRef<'a>,
        expected: Metadata,
        metadata: Metadata,
    ) -> StoreFuture<'a, Option<bool>> {
        self.node().swap_metadata(q, expected, metadata)
    }
    fn set_rules<'a>(&'a self, q: QueueRef<'a>, rules: LeaseRules) -> StoreFuture<'a, bool> {
        self.node().set_rules(q, rules)
    }
    fn access_policies<'a>(
        &'a self,
        q: QueueRef<'a>,
    ) -> StoreFuture<'a, Option<Vec<AccessPolicy>>> {
        self.node().access_policies(q)
    }
    fn set_access_policies<'a>(
        &'a self,
        q: QueueRef<'a>,
        policies: Vec<AccessPolicy>,
    ) -> StoreFuture<'a, bool> {
        self.node().set_access_policies(q, policies)
    }
    fn put_message<'a>(
        &'a self,
        q: QueueRef<'a>,
        message: NewMessage,
    ) -> StoreFuture<'a, Option<Message>> {
        self.node().put_message(q, message)
    }
    fn receive<'a>(
        &'a self,
        q: QueueRef<'a>,
        now: Timestamp,
        grant: LeaseGrant,
    ) -> StoreFuture<'a, Option<Vec<Message>>> {
        self.node().receive(q, now, grant)
    }
    fn peek<'a>(
        &'a self,
        q: QueueRef<'a>,
        now: Timestamp,
        max: usize,
    ) -> StoreFuture<'a, Option<Vec<Message>>> {
        self.node().peek(q, now, max)
    }
    fn delete_message<'a>(
        &'a self,
        q: QueueRef<'a>,
        id: MessageId,
        receipt: PopReceipt,
        now: Timestamp,
    ) -> StoreFuture<'a, ReceiptOutcome<()>> {
        self.node().delete_message(q, id, receipt, now)
    }
    fn update_message<'a>(
        &'a self,
        q: QueueRef<'a>,
        id: MessageId,
        receipt: PopReceipt,
        now: Timestamp,
        update: MessageUpdate,
    ) -> StoreFuture<'a, ReceiptOutcome<Message>> {
        self.node().update_message(q, id, receipt, now, update)
    }
    fn clear_messages<'a>(&'a self, q: QueueRef<'a>) -> StoreFuture<'a, bool> {
        self.node().clear_messages(q)
    }
    fn account_document<'a>(
        &'a self,
        account: &'a str,
        key: &'a str,
    ) -> StoreFuture<'a, Option<Vec<u8>>> {
        self.node().account_document(account, key)
    }
    fn swap_account_document<'a>(
        &'a self,
        account: &'a str,
        key: &'a str,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
    ) -> StoreFuture<'a, bool> {
        self.node()
            .swap_account_document(account, key, expected, value)
    }
    fn enqueue<'a>(
        &'a self,
        q: QueueRef<'a>,
        batch: Vec<Enqueue>,
        max_bytes: u64,
    ) -> StoreFuture<'a, Option<Enqueued>> {
        self.node().enqueue(q, batch, max_bytes)
    }
    fn lock<'a>(
        &'a self,
        q: QueueRef<'a>,
        sub: SubQueue,
        now: Timestamp,
        grant: LeaseGrant,
    ) -> StoreFuture<'a, Option<Vec<Message>>> {
        self.node().lock(q, sub, now, grant)
    }
    fn take<'a>(
        &'a self,
        q: QueueRef<'a>,
        sub: SubQueue,
        now: Timestamp,
        max: usize,
    ) -> StoreFuture<'a, Option<Vec<Message>>> {
        self.node().take(q, sub, now, max)
    }
    fn settle<'a>(
        &'a self,
        q: QueueRef<'a>,
        sub: SubQueue,
        token: PopReceipt,
        now: Timestamp,
        how: Settlement,
    ) -> StoreFuture<'a, Option<Result<Settled, SettleError>>> {
        self.node().settle(q, sub, token, now, how)
    }
    fn browse<'a>(
        &'a self,
        q: QueueRef<'a>,
        sub: SubQueue,
        from: u64,
        max: usize,
        now: Timestamp,
    ) -> StoreFuture<'a, Option<Vec<Message>>> {
        self.node().browse(q, sub, from, max, now)
    }
    fn lock_deferred<'a>(
        &'a self,
        q: QueueRef<'a>,
        sub: SubQueue,
        sequences: Vec<u64>,
        now: Timestamp,
        grant: LeaseGrant,
    ) -> StoreFuture<'a, Option<Vec<Message>>> {
        self.node().lock_deferred(q, sub, sequences, now, grant)
    }
    fn cancel_scheduled<'a>(
        &'a self,
        q: QueueRef<'a>,
        sequences: Vec<u64>,
        now: Timestamp,
    ) -> StoreFuture<'a, Option<Vec<u64>>> {
        self.node().cancel_scheduled(q, sequences, now)
    }
    fn housekeep(&self, now: Timestamp, budget: usize) -> StoreFuture<'_, usize> {
        self.node().housekeep(now, budget)
    }
}
