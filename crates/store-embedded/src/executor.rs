//! Group commit: requests apply themselves under one lock, a sync thread makes them durable.
//!
//! A request takes the core lock, changes the in-memory state and appends its record to the
//! log's buffer (a few µs), notes the log's end, and releases the lock. It then waits until the
//! sync thread reports that end durable (strict) or written (relaxed). The sync thread loops:
//! under the lock it writes the buffer with one `pwrite`; outside the lock it `fdatasync`s,
//! while further requests keep applying; then it publishes the new durable end, waking every
//! request it covers. So N concurrent writers share one fsync, and no request waits for a
//! thread hop to apply. Reads wait for the end of the log as they saw it, so no answer depends
//! on state that is not durable yet.
//!
//! If a write or fsync fails, or a request's append fails, the state in memory may be ahead of
//! the disk. The core is then taken out of service: every request not yet durable fails, the
//! sync thread wipes the unsynced tail of the log (also from the page cache, which a failed
//! fsync may have marked clean) and rebuilds the state by replaying the log, retrying every
//! [`REBUILD_EVERY`]. Meanwhile requests are answered "unavailable". Progress is tagged with an
//! epoch that each rebuild advances, so a waiter can tell "durable" from "thrown away".

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hematite_engine::{Clock, StoreError};
use tokio::sync::watch;

use crate::disk::Disk;
use crate::error::{io_to_store_error, unavailable};
use crate::log::{Log, LogOpenError, Retired, SegmentReader, REQUEST_ROOM};
use crate::state::State;
use crate::Durability;

/// Records compaction moves per pass, so a pass never holds requests up for long.
const COMPACTION_BUDGET: usize = 500;
/// How often to retry rebuilding after an I/O failure.
pub const REBUILD_EVERY: Duration = Duration::from_millis(500);
/// How often a full disk's refusals are logged.
const NO_ROOM_LOG_EVERY: Duration = Duration::from_secs(10);

/// How to (re)open the log.
#[derive(Clone)]
pub struct LogConfig {
    pub dir: PathBuf,
    pub disk: Arc<dyn Disk>,
    pub segment_bytes: u64,
    pub durability: Durability,
    /// How often background work (expiry, compaction, retiring segments) runs.
    pub housekeeping_every: Duration,
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
        state.finish_replay();
        Ok((state, log))
    }
}

/// Why a request was not applied.
enum Refused {
    /// Turned away before it changed anything: the store stays in service.
    NoRoom(StoreError),
    /// Failed half-way: the state may be ahead of the log.
    Failed(std::io::Error),
}

/// The state and the log, in service.
pub struct Core {
    pub state: State,
    pub log: Log,
    epoch: u64,
}

/// What the sync thread has made of the log so far. Ends are positions as [`Log::end`].
#[derive(Clone, Debug)]
pub struct Progress {
    epoch: u64,
    written: u64,
    synced: u64,
    /// The last durable end of the previous epoch: its waiters at or below it made it.
    previous_synced: u64,
    failure: Option<StoreError>,
}

struct Signal {
    pending: bool,
    shutdown: bool,
    /// The janitor has handed a segment's records to compaction.
    compaction_ready: bool,
}

/// File work that can take tens of milliseconds: reading a whole segment to compact it (≈50 ms
/// for 32 MiB here), or renaming a retired segment and syncing the directory (up to ≈10 ms).
/// Every request waits on the sync thread's next fsync, so that work goes to a janitor thread;
/// done on the sync thread, it stalled paced receive+delete for 50–70 ms at every rotation.
enum Chore {
    Retire(Vec<Retired>),
    /// Read a segment to compact, for the core of this epoch.
    Read(SegmentReader, u64),
}

pub struct Committer {
    core: Mutex<Option<Core>>,
    /// The log of a core taken out of service, until its unsynced tail is wiped.
    failed: Mutex<Option<Log>>,
    signal: Mutex<Signal>,
    wake: Condvar,
    progress: watch::Sender<Progress>,
    strict: bool,
    /// A segment is being read for compaction; no other is picked meanwhile.
    reading: AtomicBool,
    /// When a refused write was last logged.
    no_room_logged: Mutex<Option<Instant>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Committer {
    pub fn new(state: State, log: Log, durability: Durability) -> Arc<Self> {
        let end = log.synced_end();
        let (progress, _) = watch::channel(Progress {
            epoch: 1,
            written: end,
            synced: end,
            previous_synced: 0,
            failure: None,
        });
        Arc::new(Committer {
            core: Mutex::new(Some(Core {
                state,
                log,
                epoch: 1,
            })),
            failed: Mutex::new(None),
            signal: Mutex::new(Signal {
                pending: false,
                shutdown: false,
                compaction_ready: false,
            }),
            wake: Condvar::new(),
            progress,
            strict: durability == Durability::Strict,
            reading: AtomicBool::new(false),
            no_room_logged: Mutex::new(None),
        })
    }

    /// Applies `f` now and returns a future that resolves once its effect is durable. A
    /// `write` first makes sure the log has room for it (a next segment in hand when the
    /// current one is nearly full); if the disk has none, the request is refused before it
    /// changes anything, and the store stays in service.
    pub fn run<T: Send + 'static>(
        self: &Arc<Self>,
        write: bool,
        f: impl FnOnce(&mut State, &mut Log) -> std::io::Result<T>,
    ) -> impl std::future::Future<Output = Result<T, StoreError>> + Send + 'static {
        let applied = {
            let mut guard = lock(&self.core);
            match guard.as_mut() {
                None => Err(unavailable()),
                Some(core) => match self
                    .make_room(core, write)
                    .and_then(|()| f(&mut core.state, &mut core.log).map_err(Refused::Failed))
                {
                    Ok(v) => Ok((v, core.epoch, core.log.end(), core.log.is_dirty())),
                    Err(Refused::NoRoom(e)) => Err(e),
                    Err(Refused::Failed(e)) => {
                        tracing::error!(error = %e, "a request failed to append; rebuilding from the log");
                        let err = io_to_store_error(&e);
                        self.take_out_of_service(&mut guard, err.clone());
                        Err(err)
                    }
                },
            }
        };
        let this = self.clone();
        async move {
            let (value, epoch, end, dirty) = applied?;
            if dirty {
                this.notify();
            }
            this.wait(epoch, end).await.map(|()| value)
        }
    }

    /// For a write, makes sure the log has room for it. The refusals of a full disk are
    /// logged once per [`NO_ROOM_LOG_EVERY`], not once each.
    fn make_room(&self, core: &mut Core, write: bool) -> Result<(), Refused> {
        if !write {
            return Ok(());
        }
        core.log.ensure_room(REQUEST_ROOM).map_err(|e| {
            let mut last = lock(&self.no_room_logged);
            if last.is_none_or(|t| t.elapsed() >= NO_ROOM_LOG_EVERY) {
                tracing::warn!(error = %e, "no room for the next log segment; refusing writes until there is");
                *last = Some(Instant::now());
            }
            Refused::NoRoom(io_to_store_error(&e))
        })
    }

    fn notify(&self) {
        let mut s = lock(&self.signal);
        if !s.pending {
            s.pending = true;
            self.wake.notify_one();
        }
    }

    async fn wait(&self, epoch: u64, end: u64) -> Result<(), StoreError> {
        let strict = self.strict;
        let decided = |p: &Progress| -> Option<Result<(), StoreError>> {
            if p.epoch == epoch {
                let reached = if strict { p.synced } else { p.written };
                (reached >= end).then_some(Ok(()))
            } else if p.epoch > epoch && (p.epoch > epoch + 1 || end > p.previous_synced) {
                Some(Err(p.failure.clone().unwrap_or_else(unavailable)))
            } else if p.epoch > epoch {
                Some(Ok(()))
            } else {
                None
            }
        };
        // `wait_for` looks at the current value first, so a request already durable returns at
        // once.
        let mut rx = self.progress.subscribe();
        // Bound to a name so the borrow of `rx` ends before `rx` does.
        let outcome = match rx.wait_for(|p| decided(p).is_some()).await {
            Ok(p) => decided(&p).unwrap_or_else(|| Err(unavailable())),
            Err(_) => Err(unavailable()),
        };
        outcome
    }

    /// Takes the core out of service after a failure: every request not yet durable fails, and
    /// the sync thread wipes and rebuilds. Called with the core lock held.
    fn take_out_of_service(&self, guard: &mut MutexGuard<'_, Option<Core>>, err: StoreError) {
        if let Some(mut core) = guard.take() {
            let synced = self.progress.borrow().synced;
            core.log.note_synced(synced);
            self.progress.send_replace(Progress {
                epoch: core.epoch + 1,
                written: 0,
                synced: 0,
                previous_synced: synced,
                failure: Some(err),
            });
            *lock(&self.failed) = Some(core.log);
            self.notify();
        }
    }

    pub fn shutdown(&self) {
        let mut s = lock(&self.signal);
        s.shutdown = true;
        self.wake.notify_one();
    }

    /// The sync thread's loop; returns at shutdown after a final flush and sync, and after the
    /// janitor it starts has finished its chores.
    pub fn sync_loop(&self, config: &LogConfig, clock: &dyn Clock) {
        std::thread::scope(|scope| {
            let (chores, rx) = channel();
            let janitor = std::thread::Builder::new()
                .name("hematite-janitor".into())
                .spawn_scoped(scope, move || self.janitor(rx));
            if let Err(e) = &janitor {
                tracing::warn!(error = %e, "no janitor thread; file chores run on the sync thread");
            }
            self.sync_until_shutdown(config, clock, janitor.is_ok().then_some(chores));
        });
    }

    /// Does the chores the sync thread hands over, until the sync thread ends.
    fn janitor(&self, chores: Receiver<Chore>) {
        while let Ok(chore) = chores.recv() {
            self.do_chore(chore);
        }
    }

    fn do_chore(&self, chore: Chore) {
        match chore {
            Chore::Retire(retired) => {
                for r in retired {
                    // A segment that could not be renamed stays on disk under its number;
                    // replaying it again is harmless, since everything in it was superseded
                    // later in the log.
                    if let Err(e) = r.finish() {
                        tracing::warn!(error = %e, "cannot recycle a retired segment");
                    }
                }
            }
            Chore::Read(reader, epoch) => {
                match reader.read() {
                    Ok(records) => {
                        if let Some(core) = lock(&self.core).as_mut() {
                            if core.epoch == epoch {
                                core.state.start_compaction(&core.log, reader.n, records);
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot read a segment to compact"),
                }
                self.reading.store(false, Ordering::Release);
                let mut s = lock(&self.signal);
                s.compaction_ready = true;
                s.pending = true;
                self.wake.notify_one();
            }
        }
    }

    fn sync_until_shutdown(
        &self,
        config: &LogConfig,
        clock: &dyn Clock,
        chores: Option<Sender<Chore>>,
    ) {
        // Hands a chore to the janitor, or does it here if there is none.
        let hand_off = |chore: Chore| match &chores {
            Some(tx) => {
                if let Err(e) = tx.send(chore) {
                    self.do_chore(e.0);
                }
            }
            None => self.do_chore(chore),
        };
        let housekeeping_every = config.housekeeping_every;
        let flush_every = match config.durability {
            Durability::Strict => Duration::ZERO,
            Durability::Relaxed { flush_every } => flush_every,
        };
        let mut last_housekeeping = Instant::now() - housekeeping_every;
        let mut housekeeping_pending = true;
        let mut last_sync = Instant::now();
        let mut last_rebuild: Option<Instant> = None;
        loop {
            let timeout = if housekeeping_pending {
                Duration::from_millis(5)
            } else if self.strict {
                housekeeping_every
            } else {
                flush_every.min(housekeeping_every)
            };
            let shutdown = {
                let mut s = lock(&self.signal);
                if !s.pending && !s.shutdown {
                    s = self
                        .wake
                        .wait_timeout(s, timeout)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                s.pending = false;
                if std::mem::take(&mut s.compaction_ready) {
                    housekeeping_pending = true;
                }
                s.shutdown
            };

            if lock(&self.core).is_none() {
                if shutdown {
                    return;
                }
                if last_rebuild.is_none_or(|t| t.elapsed() >= REBUILD_EVERY) {
                    last_rebuild = Some(Instant::now());
                    if self.rebuild(config) {
                        last_rebuild = None;
                        housekeeping_pending = true;
                    }
                }
                continue;
            }

            let housekeeping =
                housekeeping_pending || last_housekeeping.elapsed() >= housekeeping_every;
            // File work decided under the lock but done outside it: it can take milliseconds.
            let mut to_read = None;
            let mut retired = Vec::new();
            let written = {
                let mut guard = lock(&self.core);
                let Some(core) = guard.as_mut() else { continue };
                core.log.note_synced(self.progress.borrow().synced);
                let mut result = Ok(());
                if housekeeping {
                    core.state.purge_all(clock.now());
                    // Compaction carries records forward into the log; with a next segment in
                    // hand it never creates a file mid-pass, and on a full disk it moves what
                    // fits and stops (`State::compact`).
                    let _ = core.log.ensure_room(REQUEST_ROOM);
                    result = core
                        .state
                        .compact(&mut core.log, COMPACTION_BUDGET)
                        .map(|more| housekeeping_pending = more);
                    result =
                        result.and_then(|()| core.state.carry_forward_from_memory(&mut core.log));
                    if !self.reading.load(Ordering::Acquire) {
                        to_read = core
                            .state
                            .compaction_candidate(&core.log)
                            .and_then(|n| core.log.segment_reader(n))
                            .map(|r| (r, core.epoch));
                    }
                    last_housekeeping = Instant::now();
                }
                let result = result.and_then(|()| {
                    core.log.flush()?;
                    let synced = core.log.synced_end();
                    retired = core.state.retire_dead(&mut core.log, synced);
                    Ok(())
                });
                match result {
                    Ok(()) => Some((core.epoch, core.log.end(), core.log.sync_target())),
                    Err(e) => {
                        tracing::error!(error = %e, "writing the log failed; rebuilding from the log");
                        self.take_out_of_service(&mut guard, io_to_store_error(&e));
                        None
                    }
                }
            };
            if !retired.is_empty() {
                hand_off(Chore::Retire(retired));
            }
            if let Some((reader, epoch)) = to_read {
                self.reading.store(true, Ordering::Release);
                hand_off(Chore::Read(reader, epoch));
            }
            let Some((epoch, end, target)) = written else {
                continue;
            };
            self.progress.send_if_modified(|p| {
                let advance = p.epoch == epoch && p.written < end;
                if advance {
                    p.written = end;
                }
                advance
            });
            if !(self.strict || shutdown || last_sync.elapsed() >= flush_every) {
                continue;
            }
            last_sync = Instant::now();
            if let Some((file, target)) = target {
                let behind = {
                    let p = self.progress.borrow();
                    p.epoch == epoch && p.synced < target
                };
                if behind {
                    match file.sync() {
                        Ok(()) => {
                            self.progress.send_if_modified(|p| {
                                let advance = p.epoch == epoch && p.synced < target;
                                if advance {
                                    p.synced = target;
                                }
                                advance
                            });
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "fsync failed; rebuilding from the log");
                            let mut guard = lock(&self.core);
                            if guard.as_ref().is_some_and(|c| c.epoch == epoch) {
                                self.take_out_of_service(&mut guard, io_to_store_error(&e));
                            }
                        }
                    }
                }
            }
            if shutdown {
                return;
            }
        }
    }

    /// Wipes the failed log's unsynced tail, then replays the log into a new core. Returns
    /// whether the store is back in service.
    fn rebuild(&self, config: &LogConfig) -> bool {
        // Never hold `failed` while taking `core`: requests take them in the other order.
        let failed = lock(&self.failed).take();
        if let Some(mut log) = failed {
            if let Err(e) = log.scrub_unsynced() {
                tracing::warn!(error = %e, "cannot wipe the failed batch yet");
                *lock(&self.failed) = Some(log);
                return false;
            }
        }
        match config.load() {
            Ok((state, log)) => {
                let end = log.synced_end();
                let mut guard = lock(&self.core);
                let epoch = self.progress.borrow().epoch;
                self.progress.send_modify(|p| {
                    p.written = end;
                    p.synced = end;
                });
                *guard = Some(Core { state, log, epoch });
                tracing::warn!("store rebuilt from the log after an I/O failure; serving again");
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "store still unavailable");
                false
            }
        }
    }
}
