//! Time as the database tells it, for every node that shares it.
//!
//! Leases and expiry are instants compared across nodes: a node whose wall clock runs ahead
//! would redeliver messages another node leased before their lease ended. So nodes on one
//! database take their time from it: the database's clock read at the last sync (corrected
//! by half the round trip), moved on by this process's monotonic clock since. The local wall
//! clock is never read, so its skew does not matter; the error is the sync's round trip and
//! the drift of the monotonic clock over [`RESYNC`]. Time never goes backwards: a sync that
//! would set it back holds it until it catches up.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hematite_engine::{Clock, StoreError, Timestamp};

use crate::{unavailable, PostgresStore};

/// How often the clock is read again from the database.
pub const RESYNC: Duration = Duration::from_secs(10);

pub struct DbClock {
    /// The database's time in ms at `.1`.
    at: Mutex<(i64, Instant)>,
    /// The latest time handed out.
    last: AtomicI64,
}

impl DbClock {
    /// Reads the database's clock, and keeps reading it every [`RESYNC`] while the clock is
    /// in use. A failed read keeps the time running from the last one.
    pub async fn start(store: &PostgresStore) -> Result<Arc<DbClock>, StoreError> {
        let first = sync(store).await?;
        let clock = Arc::new(DbClock {
            at: Mutex::new(first),
            last: AtomicI64::new(first.0),
        });
        let weak = Arc::downgrade(&clock);
        let pool = store.clone_handle();
        store.runtime().spawn(async move {
            loop {
                tokio::time::sleep(RESYNC).await;
                let Some(clock) = weak.upgrade() else { return };
                match sync(&pool).await {
                    Ok(at) => *clock.at.lock().unwrap_or_else(|e| e.into_inner()) = at,
                    Err(e) => tracing::warn!(error = %e, "reading the database's clock failed; keeping the last reading"),
                }
            }
        });
        Ok(clock)
    }
}

/// The database's time now, in ms, and the local instant it stands for.
async fn sync(store: &PostgresStore) -> Result<(i64, Instant), StoreError> {
    let client = store.db.client().await?;
    let sent = Instant::now();
    let row = client
        .query_one(
            "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::int8",
            &[],
        )
        .await
        .map_err(unavailable)?;
    let back = Instant::now();
    Ok((row.get(0), sent + (back - sent) / 2))
}

impl Clock for DbClock {
    fn now(&self) -> Timestamp {
        let (db_ms, at) = *self.at.lock().unwrap_or_else(|e| e.into_inner());
        let since = i64::try_from(at.elapsed().as_millis()).unwrap_or(i64::MAX);
        let now = db_ms.saturating_add(since);
        let last = self.last.fetch_max(now, Ordering::AcqRel);
        Timestamp::from_millis(now.max(last))
    }
}
