//! What every PostgreSQL test needs: the test server's URL, and a fresh database on it.
//!
//! The server comes from `HEMATITE_TEST_POSTGRES` (a URL to a server where the user may
//! create databases); `scripts/test` starts a throwaway cluster and sets it. Without it the
//! tests fail rather than pass unseen.

// Each test file uses what it needs of this module.
#![allow(dead_code)]

pub fn server_url() -> String {
    std::env::var("HEMATITE_TEST_POSTGRES").unwrap_or_else(|_| {
        panic!("set HEMATITE_TEST_POSTGRES to a PostgreSQL URL (scripts/test starts a cluster and sets it)")
    })
}

/// A new, empty database on the test server, named from `prefix`; its URL.
pub async fn fresh_database(prefix: &str) -> String {
    let url = server_url();
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect to the test server");
    tokio::spawn(conn);
    let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create database");
    match url.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => panic!("HEMATITE_TEST_POSTGRES needs a database path: {url}"),
    }
}
