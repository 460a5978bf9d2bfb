//! The one thread that owns the state and the log, applying requests in batches with one
//! `fdatasync` per batch (group commit).
//!
//! Requests queue up while the previous batch syncs; the executor then applies all of them in
//! order (each changes the in-memory index and appends its record), writes the batch with one
//! `pwrite`, syncs once, and only then answers, reads included, so no answer ever depends on
//! state that is not on disk yet. If anything in a batch fails, every request in it fails and
//! the store rebuilds itself from the log on disk: the in-memory state can be ahead of the disk
//! only by the failed batch, and rebuilding throws exactly that away. Until the rebuild succeeds
//! (it is retried every [`REBUILD_EVERY`]), requests are answered "unavailable".

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hematite_engine::{Clock, StoreError};
use tokio::sync::oneshot;

use crate::disk::Disk;
use crate::error::{io_to_store_error, unavailable};
use crate::log::{Log, LogOpenError};
use crate::state::State;
use crate::Durability;

/// Most requests in one batch: bounds the latency a batch adds to its first request.
const MAX_BATCH: usize = 512;
/// How often background work (expiry, compaction, retiring segments) runs.
const HOUSEKEEPING_EVERY: Duration = Duration::from_millis(200);
/// Records compaction moves per pass, so a pass never holds requests up for long.
const COMPACTION_BUDGET: usize = 2_000;
/// How often to retry rebuilding after an I/O failure.
pub const REBUILD_EVERY: Duration = Duration::from_millis(500);

/// Work for the executor.
pub trait Job: Send {
    fn apply(&mut self, state: &mut State, log: &mut Log) -> std::io::Result<()>;
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
    F: FnOnce(&mut State, &mut Log) -> std::io::Result<T> + Send,
{
    fn apply(&mut self, state: &mut State, log: &mut Log) -> std::io::Result<()> {
        if let Some(f) = self.f.take() {
            self.out = Some(f(state, log)?);
        }
        Ok(())
    }

    fn finish(self: Box<Self>, failure: Option<StoreError>) {
        let result = match (failure, self.out) {
            (Some(e), _) => Err(e),
            (None, Some(v)) => Ok(v),
            (None, None) => Err(StoreError::new(
                hematite_engine::StoreErrorKind::Other,
                "job was not applied",
            )),
        };
        // The requester may have gone away (client disconnected); the work is done either way.
        let _ = self.reply.send(result);
    }
}

/// How to (re)open the log.
#[derive(Clone)]
pub struct LogConfig {
    pub dir: PathBuf,
    pub disk: Arc<dyn Disk>,
    pub segment_bytes: u64,
    pub durability: Durability,
}

impl LogConfig {
    /// Opens the log and replays it into a fresh state.
    pub fn load(&self) -> Result<(State, Log), LogOpenError> {
        let mut state = State::default();
        let log = Log::open(
            &self.dir,
            self.disk.clone(),
            self.segment_bytes,
            self.durability == Durability::Strict,
            |pos, payload| state.replay(pos, payload),
        )?;
        Ok((state, log))
    }
}

pub struct Executor {
    pub jobs: Receiver<Box<dyn Job>>,
    pub config: LogConfig,
    pub clock: Arc<dyn Clock>,
}

impl Executor {
    pub fn run(self, state: State, log: Log) {
        let mut current: Option<(State, Log)> = Some((state, log));
        let mut broken_since: Option<Instant> = None;
        // The log of a failed batch, until its unsynced tail is wiped.
        let mut failed: Option<Log> = None;
        let mut last_housekeeping = Instant::now() - HOUSEKEEPING_EVERY;
        let mut housekeeping_pending = true;
        let mut dirty_since: Option<Instant> = None;
        let flush_every = match self.config.durability {
            Durability::Strict => Duration::ZERO,
            Durability::Relaxed { flush_every } => flush_every,
        };
        loop {
            let wait = if housekeeping_pending {
                Duration::from_millis(5)
            } else if dirty_since.is_some() {
                flush_every.min(HOUSEKEEPING_EVERY)
            } else {
                HOUSEKEEPING_EVERY
            };
            let mut batch: Vec<Box<dyn Job>> = Vec::new();
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

            if let Some(since) = broken_since {
                if since.elapsed() >= REBUILD_EVERY {
                    broken_since = Some(Instant::now());
                    // First wipe what the failed batch may have left in the file (and in the page
                    // cache, which a failed fsync may have marked clean), so the rebuild replays
                    // only what was acknowledged.
                    let scrubbed = match failed.as_mut().map(Log::scrub_unsynced) {
                        Some(Err(e)) => {
                            tracing::warn!(error = %e, "cannot wipe the failed batch yet");
                            false
                        }
                        _ => true,
                    };
                    if scrubbed {
                        failed = None;
                        match self.config.load() {
                            Ok(loaded) => {
                                tracing::warn!(
                                    "store rebuilt from the log after an I/O failure; serving again"
                                );
                                current = Some(loaded);
                                broken_since = None;
                                housekeeping_pending = true;
                            }
                            Err(e) => tracing::warn!(error = %e, "store still unavailable"),
                        }
                    }
                }
            }
            let Some((state, log)) = current.as_mut().filter(|_| broken_since.is_none()) else {
                let err = unavailable();
                for job in batch {
                    job.finish(Some(err.clone()));
                }
                continue;
            };

            let mut result = Ok(());
            for job in batch.iter_mut() {
                result = job.apply(state, log);
                if result.is_err() {
                    break;
                }
            }
            if result.is_ok()
                && (housekeeping_pending || last_housekeeping.elapsed() >= HOUSEKEEPING_EVERY)
            {
                state.purge_all(self.clock.now());
                result = state.compact(log, COMPACTION_BUDGET).map(|more| {
                    housekeeping_pending = more;
                });
                last_housekeeping = Instant::now();
            }
            let result = result.and_then(|()| {
                log.flush()?;
                let due = match self.config.durability {
                    Durability::Strict => true,
                    Durability::Relaxed { flush_every } => {
                        dirty_since.is_some_and(|t| t.elapsed() >= flush_every)
                    }
                };
                if due {
                    log.sync()?;
                    dirty_since = None;
                } else if log.is_dirty() && dirty_since.is_none() {
                    dirty_since = Some(Instant::now());
                }
                if !log.is_dirty() {
                    state.retire_dead(log)?;
                }
                Ok(())
            });
            match result {
                Ok(()) => {
                    for job in batch {
                        job.finish(None);
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, jobs = batch.len(), "batch failed; nothing in it was applied; rebuilding from the log");
                    let err = io_to_store_error(&e);
                    for job in batch {
                        job.finish(Some(err.clone()));
                    }
                    failed = current.take().map(|(_, log)| log);
                    broken_since = Some(Instant::now() - REBUILD_EVERY / 2);
                    dirty_since = None;
                }
            }
        }
        if let Some((_, mut log)) = current.filter(|_| broken_since.is_none()) {
            if let Err(e) = log.flush().and_then(|()| log.sync()) {
                tracing::error!(error = %e, "final flush failed");
            }
        }
    }
}
