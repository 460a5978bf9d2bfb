//! The engine's store conformance suite, run against the embedded store on a real file.

mod common;

use std::sync::Arc;

use hematite_engine::{ManualClock, Store, Timestamp};
use hematite_store_embedded::{EmbeddedStore, Options};

fn fresh() -> Arc<dyn Store> {
    let dir = common::scratch("conformance");
    // Background expiry runs on this clock; pinned at the epoch it never races the cases'
    // own manual clock, which drives expiry through the operations themselves.
    let clock = Arc::new(ManualClock::new(Timestamp::EPOCH));
    Arc::new(EmbeddedStore::open(&dir, Options::default(), clock).expect("open store"))
}

hematite_engine::store_conformance_tests!(
    #[tokio::test]
    fresh
);
