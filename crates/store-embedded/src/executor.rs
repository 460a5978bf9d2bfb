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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hematite_engine::{Clock, StoreError};
use tokio::sync::oneshot;

use crate::disk::{Disk, DiskFile};
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

/// A batch written to the log, waiting for the fsync that makes it durable.
struct Written {
    jobs: Vec<Box<dyn Job>>,
    file: Arc<dyn DiskFile>,
    /// The durable end (as [`Log::end`]) once `file` is synced.
    target: u64,
    epoch: u64,
}

enum SyncWork {
    Batch(Written),
    /// Answered once every batch handed over before it is finished.
    Barrier(std::sync::mpsc::Sender<()>),
}

/// What the sync thread tells the executor.
#[derive(Default)]
struct SyncShared {
    /// Durable end of the log, as [`Log::end`].
    synced: AtomicU64,
    /// Batches of this epoch or older fail: a sync of that epoch failed.
    failed_epoch: AtomicU64,
}

/// The sync thread: fsyncs written batches and answers them, so the executor can apply and
/// write the next batch while the disk syncs the previous one. One fsync covers every batch
/// that queued up behind it.
fn sync_loop(work: Receiver<SyncWork>, shared: Arc<SyncShared>) {
    while let Ok(first) = work.recv() {
        let mut items = vec![first];
        while let Ok(more) = work.try_recv() {
            items.push(more);
        }
        let last = items.iter().rev().find_map(|w| match w {
            SyncWork::Batch(b) => Some((b.file.clone(), b.target, b.epoch)),
            SyncWork::Barrier(_) => None,
        });
        let mut failure: Option<StoreError> = None;
        if let Some((file, target, epoch)) = last {
            if shared.failed_epoch.load(Ordering::SeqCst) < epoch
                && shared.synced.load(Ordering::SeqCst) < target
            {
                match file.sync() {
                    Ok(()) => shared.synced.fetch_max(target, Ordering::SeqCst),
                    Err(e) => {
                        tracing::error!(error = %e, "fsync failed; failing every batch since the last good one");
                        failure = Some(io_to_store_error(&e));
                        shared.failed_epoch.fetch_max(epoch, Ordering::SeqCst)
                    }
                };
            }
        }
        let failed_epoch = shared.failed_epoch.load(Ordering::SeqCst);
        for item in items {
            match item {
                SyncWork::Batch(b) => {
                    let err = (b.epoch <= failed_epoch)
                        .then(|| failure.clone().unwrap_or_else(unavailable));
                    for job in b.jobs {
                        job.finish(err.clone());
                    }
                }
                SyncWork::Barrier(done) => {
                    let _ = done.send(());
                }
            }
        }
    }
}

impl Executor {
    pub fn run(self, state: State, log: Log) {
        let strict = self.config.durability == Durability::Strict;
        let shared = Arc::new(SyncShared::default());
        let (sync_tx, sync_rx) = std::sync::mpsc::channel();
        let syncer = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("hematite-sync".into())
                .spawn(move || sync_loop(sync_rx, shared))
        };
        let syncer = match syncer {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "cannot start the sync thread");
                return;
            }
        };
        // Batches handed to the sync thread carry the epoch they were written in; a failed
        // sync fails its epoch, and the rebuild starts the next one.
        let mut epoch = 1u64;
        let barrier = |sync_tx: &std::sync::mpsc::Sender<SyncWork>| {
            let (tx, rx) = std::sync::mpsc::channel();
            if sync_tx.send(SyncWork::Barrier(tx)).is_ok() {
                let _ = rx.recv();
            }
        };

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

            // A sync of an earlier batch failed: everything since is suspect.
            if broken_since.is_none() && shared.failed_epoch.load(Ordering::SeqCst) >= epoch {
                barrier(&sync_tx);
                failed = current.take().map(|(_, mut log)| {
                    log.note_synced(shared.synced.load(Ordering::SeqCst));
                    log
                });
                broken_since = Some(Instant::now() - REBUILD_EVERY / 2);
                dirty_since = None;
            }
            if let Some(since) = broken_since {
                if since.elapsed() >= REBUILD_EVERY {
                    broken_since = Some(Instant::now());
                    // First wipe what the failed batches may have left in the file (and in the
                    // page cache, which a failed fsync may have marked clean), so the rebuild
                    // replays only what was acknowledged.
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
                                epoch += 1;
                                shared.synced.store(0, Ordering::SeqCst);
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

            log.note_synced(shared.synced.load(Ordering::SeqCst));
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
                if !strict {
                    let due = dirty_since.is_some_and(|t| t.elapsed() >= flush_every);
                    if due {
                        log.sync()?;
                        dirty_since = None;
                    } else if log.is_dirty() && dirty_since.is_none() {
                        dirty_since = Some(Instant::now());
                    }
                }
                state.retire_dead(log, log.synced_end())?;
                Ok(())
            });
            match result {
                Ok(()) if strict => {
                    // Even a batch of reads waits for the sync of what it may have seen.
                    match log.sync_target() {
                        Some((file, target)) if !batch.is_empty() => {
                            let work = SyncWork::Batch(Written {
                                jobs: batch,
                                file,
                                target,
                                epoch,
                            });
                            if let Err(std::sync::mpsc::SendError(SyncWork::Batch(w))) =
                                sync_tx.send(work)
                            {
                                for job in w.jobs {
                                    job.finish(Some(unavailable()));
                                }
                            }
                        }
                        _ => {
                            for job in batch {
                                job.finish(None);
                            }
                        }
                    }
                }
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
                    // Batches written before this one are still syncing; let them finish (or
                    // fail) before anything is wiped.
                    barrier(&sync_tx);
                    failed = current.take().map(|(_, mut log)| {
                        log.note_synced(shared.synced.load(Ordering::SeqCst));
                        log
                    });
                    broken_since = Some(Instant::now() - REBUILD_EVERY / 2);
                    dirty_since = None;
                }
            }
        }
        barrier(&sync_tx);
        drop(sync_tx);
        let _ = syncer.join();
        if let Some((_, mut log)) = current.filter(|_| broken_since.is_none()) {
            if let Err(e) = log.flush().and_then(|()| log.sync()) {
                tracing::error!(error = %e, "final flush failed");
            }
        }
    }
}
