//! The one writer: a thread that applies queued operations in batches, one write transaction
//! and one fsync per batch (group commit).
//!
//! Requests wait on their reply channel; the executor takes every job that queued up while the
//! previous batch was being made durable, applies them in order inside one transaction, commits,
//! and only then replies. So a reply means "on disk", and N concurrent writers share one fsync.
//! If anything in a batch fails, the transaction is aborted and every job in it fails: no
//! partial batch is ever visible, and no reply ever depends on state that did not reach disk.
//! After an I/O error the database is closed and reopened (redb refuses further work on a
//! handle that saw one), so service resumes by itself once the disk recovers.

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use hematite_engine::{Clock, StoreError};
use redb::{Database, Durability as RedbDurability};
use tokio::sync::oneshot;

use crate::error::DbError;
use crate::tables::{Tables, HOUSEKEEPING_BUDGET};
use crate::Durability;

/// Most jobs in one transaction: bounds the latency a batch adds to its first job.
const MAX_BATCH: usize = 512;
/// How often background work (TTL reclaim, cleared queues) runs when idle.
const HOUSEKEEPING_EVERY: Duration = Duration::from_millis(200);
/// How often to retry opening the database after an I/O failure.
const REOPEN_EVERY: Duration = Duration::from_millis(500);

/// Work for the executor, applied inside a write transaction.
pub trait Job: Send {
    fn apply(&mut self, t: &mut Tables<'_>) -> Result<(), DbError>;
    /// Called once the batch is durable (`None`) or has failed.
    fn finish(self: Box<Self>, failure: Option<StoreError>);
}

/// A job computed by a closure, whose result goes back over a oneshot channel.
pub struct Call<T, F> {
    f: Option<F>,
    out: Option<T>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Call<T, F> {
    pub fn new(f: F, reply: oneshot::Sender<Result<T, StoreError>>) -> Self {
        Call {
            f: Some(f),
            out: None,
            reply,
        }
    }
}

impl<T, F> Job for Call<T, F>
where
    T: Send,
    F: FnOnce(&mut Tables<'_>) -> Result<T, DbError> + Send,
{
    fn apply(&mut self, t: &mut Tables<'_>) -> Result<(), DbError> {
        if let Some(f) = self.f.take() {
            self.out = Some(f(t)?);
        }
        Ok(())
    }

    fn finish(self: Box<Self>, failure: Option<StoreError>) {
        let result = match (failure, self.out) {
            (Some(e), _) => Err(e),
            (None, Some(v)) => Ok(v),
            (None, None) => Err(DbError::Other("job was not applied".into()).to_store_error()),
        };
        // The requester may have gone away (client disconnected); the work is done either way.
        let _ = self.reply.send(result);
    }
}

/// Opens (or reopens) the database.
pub type Opener = Box<dyn Fn() -> Result<Database, DbError> + Send>;

/// The handle readers share with the executor; `None` while reopening.
pub type SharedDb = Arc<RwLock<Option<Arc<Database>>>>;

pub struct Executor {
    pub jobs: Receiver<Box<dyn Job>>,
    pub db: SharedDb,
    pub opener: Opener,
    pub durability: Durability,
    pub clock: Arc<dyn Clock>,
}

impl Executor {
    pub fn run(self) {
        let mut last_housekeeping = Instant::now();
        let mut housekeeping_pending = true;
        let mut dirty_since: Option<Instant> = None;
        let mut broken_since: Option<Instant> = None;
        let tick = match self.durability {
            Durability::Strict => HOUSEKEEPING_EVERY,
            Durability::Relaxed { flush_every } => flush_every.min(HOUSEKEEPING_EVERY),
        };
        loop {
            let mut batch: Vec<Box<dyn Job>> = Vec::new();
            // While background work is left over, come back for it soon even when idle.
            let wait = if housekeeping_pending {
                Duration::from_millis(5)
            } else {
                tick
            };
            match self.jobs.recv_timeout(wait) {
                Ok(job) => batch.push(job),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            while batch.len() < MAX_BATCH {
                match self.jobs.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }

            if broken_since.is_some() {
                if broken_since.is_some_and(|t| t.elapsed() >= REOPEN_EVERY) {
                    broken_since = match self.reopen() {
                        Ok(()) => None,
                        Err(_) => Some(Instant::now()),
                    };
                }
                if broken_since.is_some() {
                    let err = DbError::Unavailable.to_store_error();
                    for job in batch {
                        job.finish(Some(err.clone()));
                    }
                    continue;
                }
            }

            let due = last_housekeeping.elapsed() >= HOUSEKEEPING_EVERY;
            let housekeeping = housekeeping_pending || due;
            let flush_due = dirty_since.is_some_and(|t| match self.durability {
                Durability::Strict => true,
                Durability::Relaxed { flush_every } => t.elapsed() >= flush_every,
            });
            if batch.is_empty() && !housekeeping && !flush_due {
                continue;
            }
            let durable = match self.durability {
                Durability::Strict => true,
                Durability::Relaxed { flush_every } => {
                    dirty_since.is_some_and(|t| t.elapsed() >= flush_every)
                }
            };
            let now = self.clock.now();
            let mut swept = 0usize;
            let result = self.commit(&mut batch, durable, housekeeping.then_some(now), &mut swept);
            match result {
                Ok(()) => {
                    if housekeeping {
                        last_housekeeping = Instant::now();
                        housekeeping_pending = swept >= HOUSEKEEPING_BUDGET;
                    }
                    if durable {
                        dirty_since = None;
                    } else if dirty_since.is_none() {
                        dirty_since = Some(Instant::now());
                    }
                    for job in batch {
                        job.finish(None);
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, jobs = batch.len(), "batch failed; nothing in it was applied");
                    let err = e.to_store_error();
                    for job in batch {
                        job.finish(Some(err.clone()));
                    }
                    if e.needs_reopen() {
                        self.close();
                        broken_since = Some(Instant::now());
                    }
                }
            }
        }
        // Make anything committed non-durably durable before the file closes.
        if dirty_since.is_some() {
            let mut none = Vec::new();
            let mut swept = 0;
            if let Err(e) = self.commit(&mut none, true, None, &mut swept) {
                tracing::error!(error = %e, "final flush failed");
            }
        }
        self.close();
    }

    fn commit(
        &self,
        batch: &mut [Box<dyn Job>],
        durable: bool,
        housekeeping: Option<hematite_engine::Timestamp>,
        swept: &mut usize,
    ) -> Result<(), DbError> {
        let db = self
            .db
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or(DbError::Unavailable)?;
        let mut txn = db.begin_write()?;
        txn.set_durability(if durable {
            RedbDurability::Immediate
        } else {
            RedbDurability::None
        })?;
        {
            let mut tables = Tables::open(&txn)?;
            for job in batch.iter_mut() {
                job.apply(&mut tables)?;
            }
            if let Some(now) = housekeeping {
                *swept = tables.housekeeping(now, HOUSEKEEPING_BUDGET)?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    fn close(&self) {
        *self.db.write().unwrap_or_else(|e| e.into_inner()) = None;
    }

    fn reopen(&self) -> Result<(), DbError> {
        match (self.opener)() {
            Ok(db) => {
                tracing::warn!("database reopened after an I/O failure; serving again");
                *self.db.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(db));
                Ok(())
            }
            Err(e) => {
                tracing::warn!(error = %e, "database still unavailable");
                Err(e)
            }
        }
    }
}
