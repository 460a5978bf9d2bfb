//! Nodes on one database take their time from it (`DbClock`): two nodes agree to within a
//! round trip whatever their wall clocks say, and time never runs backwards.

mod common;

use hematite_engine::Clock;
use hematite_store_postgres::{DbClock, PostgresStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_read_one_time_from_the_database() {
    let url = common::server_url();
    let (a, b) = tokio::join!(PostgresStore::open(&url), PostgresStore::open(&url));
    let (a, b) = (a.expect("node a"), b.expect("node b"));
    let (ca, cb) = (
        DbClock::start(&a).await.expect("clock a"),
        DbClock::start(&b).await.expect("clock b"),
    );
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    let db: i64 = client
        .query_one(
            "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::int8",
            &[],
        )
        .await
        .expect("database time")
        .get(0);
    let (ta, tb) = (ca.now().as_millis(), cb.now().as_millis());
    assert!((ta - tb).abs() < 50, "the nodes disagree: {ta} and {tb}");
    assert!(
        (ta - db).abs() < 100,
        "node a is {} ms off the database",
        ta - db
    );
    let mut last = ca.now();
    for _ in 0..10_000 {
        let now = ca.now();
        assert!(now >= last, "time ran backwards");
        last = now;
    }
}
