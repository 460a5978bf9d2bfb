//! The store contract's conformance suite on PostgreSQL, each case on a database of its own
//! (`common/mod.rs` says where the server comes from).

mod common;

use std::sync::Arc;

use hematite_engine::Store;
use hematite_store_postgres::PostgresStore;

/// A fresh database on the test server, and a store on it.
async fn fresh() -> Arc<dyn Store> {
    let db = common::fresh_database("conformance").await;
    Arc::new(PostgresStore::open(&db).await.expect("open the store"))
}

hematite_engine::store_conformance_tests!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    || { tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(fresh())) }
);
