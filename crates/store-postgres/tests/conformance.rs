//! The store contract's conformance suite on PostgreSQL, each case on a database of its own.
//!
//! The database server comes from `HEMATITE_TEST_POSTGRES` (a URL to a server where the
//! user may create databases); `scripts/test` starts a throwaway cluster and sets it. Without
//! it the cases fail rather than pass unseen.

use std::sync::Arc;

use hematite_engine::Store;
use hematite_store_postgres::PostgresStore;

fn server_url() -> String {
    std::env::var("HEMATITE_TEST_POSTGRES").unwrap_or_else(|_| {
        panic!("set HEMATITE_TEST_POSTGRES to a PostgreSQL URL (scripts/test starts a cluster and sets it)")
    })
}

/// A fresh database on the test server, and a store on it.
async fn fresh() -> Arc<dyn Store> {
    let url = server_url();
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect to the test server");
    tokio::spawn(conn);
    let name = format!("conformance_{}", uuid::Uuid::new_v4().simple());
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create database");
    let db_url = match url.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => panic!("HEMATITE_TEST_POSTGRES needs a database path: {url}"),
    };
    Arc::new(PostgresStore::open(&db_url).await.expect("open the store"))
}

hematite_engine::store_conformance_tests!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    || { tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(fresh())) }
);
