//! Hematite's default store: durable on local disk, single node.
//!
//! Everything (service documents, queues, metadata, access policies, messages and each
//! message's lease state) is recorded in one append-only log of fixed-size segment files in the
//! data directory ([`log`]). Every queue's index lives in memory (`state`); message bodies stay
//! in the log and are read back on demand. A request applies itself under one lock and appends
//! its record; a sync thread writes and `fdatasync`s what accumulated, so a request is answered
//! only after its record is on disk and concurrent requests share one sync (group commit;
//! `executor`). Opening replays the log. Segments whose records are all dead are recycled; the
//! oldest segment is compacted when stragglers pin it or the log holds much more than what is
//! live, by a janitor thread so the sync thread never waits on that file work.
//!
//! Why a log and not a B-tree: see `docs/decisions/0003-log-structured-store.md` (redb spent
//! ~60 µs of CPU per put rewriting six B-trees; an append costs a few µs).
//!
//! All file I/O goes through a [`disk::Disk`], which is how the tests inject fsync failures,
//! full disks and power cuts ([`faults`]).

#![forbid(unsafe_code)]

pub mod disk;
mod error;
mod executor;
pub mod faults;
pub mod log;
mod record;
mod spares;
mod state;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use hematite_engine::model::NewMessage;
use hematite_engine::store::{CreateOutcome, ReceiptOutcome, StoreFuture};
use hematite_engine::store::{
    Enqueue, Enqueued, LeaseGrant, LeaseRules, MessageUpdate, QueueSettings, SettleError, Settled,
    Settlement, SubQueue,
};
use hematite_engine::{
    AccessPolicy, Clock, Message, MessageId, Metadata, PopReceipt, QueueInfo, QueueRef,
    QueueSummary, Store, Timestamp,
};

use crate::disk::{Disk, FsDisk};
use crate::executor::{Committer, LogConfig};
pub use crate::log::FORMAT_VERSION;
use crate::log::{Log, LogOpenError};
use crate::state::State;
pub use crate::state::Stats;

/// When an acknowledged write is on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Every acknowledged write is fsynced before the answer (the default).
    Strict,
    /// Writes are acknowledged before they are fsynced; the disk is synced at most `flush_every`
    /// later, so a crash may lose up to that much acknowledged work. An opt-in for development.
    Relaxed { flush_every: Duration },
}

#[derive(Debug, Clone)]
pub struct Options {
    pub durability: Durability,
    /// Size of each log segment file.
    pub segment_bytes: u64,
    /// How often background work runs: expiry, compaction, retiring dead segments.
    pub housekeeping_every: Duration,
}

/// The default segment size: big enough that rotation is rare, small enough that one dead
/// segment is little wasted space.
pub const DEFAULT_SEGMENT_BYTES: u64 = 32 * 1024 * 1024;

impl Default for Options {
    fn default() -> Self {
        Options {
            durability: Durability::Strict,
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            housekeeping_every: Duration::from_millis(200),
        }
    }
}

/// Why the store could not open, worded for the operator.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot create data directory {path}: {source}")]
    Directory {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is in use by another process (is another hematite running on this data directory?)"
    )]
    InUse { path: PathBuf },
    #[error("{path} is corrupt: {detail}. Hematite refuses to start rather than drop data; move the data directory aside to start empty, and keep it for inspection")]
    Corrupt { path: PathBuf, detail: String },
    #[error(
        "{path} has on-disk format version {found}; this build reads versions 2 to {FORMAT_VERSION}"
    )]
    Format { path: PathBuf, found: u64 },
    #[error("cannot open {path}: {detail}")]
    Other { path: PathBuf, detail: String },
}

/// The lock file that keeps a second process out of the data directory.
pub const LOCK_FILE: &str = "LOCK";
/// The single file of format version 1 (redb), refused rather than ignored.
const FORMAT_1_FILE: &str = "queues.redb";

/// The embedded store. Cloning shares it.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

struct Inner {
    committer: Arc<Committer>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Held for the store's lifetime: the directory lock.
    _lock: std::fs::File,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The sync thread flushes and syncs what it holds before it ends.
        self.committer.shutdown();
        if let Some(t) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = t.join();
        }
    }
}

impl EmbeddedStore {
    /// Opens (creating if needed) the store in `dir`.
    pub fn open(dir: &Path, options: Options, clock: Arc<dyn Clock>) -> Result<Self, OpenError> {
        Self::open_with_disk(dir, options, clock, Arc::new(FsDisk))
    }

    /// Opens the store doing all file I/O through `disk` (the I/O seam).
    pub fn open_with_disk(
        dir: &Path,
        options: Options,
        clock: Arc<dyn Clock>,
        disk: Arc<dyn Disk>,
    ) -> Result<Self, OpenError> {
        std::fs::create_dir_all(dir).map_err(|source| OpenError::Directory {
            path: dir.to_owned(),
            source,
        })?;
        let old = dir.join(FORMAT_1_FILE);
        if old.exists() {
            return Err(OpenError::Format {
                path: old,
                found: 1,
            });
        }
        let lock = lock_dir(dir)?;
        let config = LogConfig {
            dir: dir.to_owned(),
            disk,
            segment_bytes: options.segment_bytes,
            durability: options.durability,
            housekeeping_every: options.housekeeping_every,
        };
        let (state, log) = config.load().map_err(|e| open_error(dir, e))?;
        let committer = Committer::new(state, log, options.durability);
        let thread = {
            let committer = committer.clone();
            std::thread::Builder::new()
                .name("hematite-sync".into())
                .spawn(move || committer.sync_loop(&config, &*clock))
                .map_err(|e| OpenError::Other {
                    path: dir.to_owned(),
                    detail: e.to_string(),
                })?
        };
        Ok(EmbeddedStore {
            inner: Arc::new(Inner {
                committer,
                thread: Mutex::new(Some(thread)),
                _lock: lock,
            }),
        })
    }

    /// Applies a reading `f` now; the future resolves once what it saw is durable.
    fn read<T, F>(&self, f: F) -> StoreFuture<'static, T>
    where
        T: Send + 'static,
        F: FnOnce(&mut State, &mut Log) -> std::io::Result<T>,
    {
        Box::pin(self.inner.committer.run(false, f))
    }

    /// Applies a writing `f` now, if the log has room for it; the future resolves once its
    /// effect is durable.
    fn run<T, F>(&self, f: F) -> StoreFuture<'static, T>
    where
        T: Send + 'static,
        F: FnOnce(&mut State, &mut Log) -> std::io::Result<T>,
    {
        Box::pin(self.inner.committer.run(true, f))
    }

    /// Counts of what the store holds (queues, messages, segment files, live bytes).
    pub async fn stats(&self) -> Result<Stats, hematite_engine::StoreError> {
        self.read(|state, log| Ok(state.stats(log))).await
    }
}

fn lock_dir(dir: &Path) -> Result<std::fs::File, OpenError> {
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| OpenError::Other {
            path: path.clone(),
            detail: e.to_string(),
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(OpenError::InUse {
            path: dir.to_owned(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(OpenError::Other {
            path,
            detail: e.to_string(),
        }),
    }
}

fn open_error(dir: &Path, e: LogOpenError) -> OpenError {
    match e {
        LogOpenError::Corrupt { path, detail } | LogOpenError::Replay { path, detail } => {
            OpenError::Corrupt { path, detail }
        }
        LogOpenError::Format { path, found } => OpenError::Format {
            path,
            found: found.into(),
        },
        LogOpenError::Io { path, source } => OpenError::Other {
            path: if path.as_os_str().is_empty() {
                dir.to_owned()
            } else {
                path
            },
            detail: source.to_string(),
        },
    }
}

impl Store for EmbeddedStore {
    fn create_queue<'a>(
        &'a self,
        q: QueueRef<'a>,
        metadata: &'a Metadata,
        settings: QueueSettings,
    ) -> StoreFuture<'a, CreateOutcome> {
        self.run(move |s, log| s.create_queue(log, q.account, q.queue, metadata, settings.rules))
    }

    fn delete_queue<'a>(&'a self, q: QueueRef<'a>) -> StoreFuture<'a, bool> {
        self.run(move |s, log| s.delete_queue(log, q.account, q.queue))
    }

    fn list_queues<'a>(
        &'a self,
        account: &'a str,
        prefix: &'a str,
        start_at: Option<&'a str>,
        limit: usize,
    ) -> StoreFuture<'a, Vec<QueueSummary>> {
        self.read(move |s, _| Ok(s.list_queues(account, prefix, start_at, limit)))
    }

    fn queue_info<'a>(
        &'a self,
        q: QueueRef<'a>,
        now: Timestamp,
    ) -> StoreFuture<'a, Option<QueueInfo>> {
        self.read(move |s, _| Ok(s.queue_info(q.account, q.queue, now)))
    }

    fn set_metadata<'a>(&'a self, q: QueueRef<'a>, metadata: Metadata) -> StoreFuture<'a, bool> {
        self.run(move |s, log| s.set_metadata(log, q.account, q.queue, metadata))
    }

    fn swap_metadata<'a>(
        &'a self,
        q: QueueRef<'a>,
        expected: Metadata,
        metadata: Metadata,
    ) -> StoreFuture<'a, Option<bool>> {
        self.run(move |s, log| s.swap_metadata(log, q.account, q.queue, &expected, metadata))
    }

    fn set_rules<'a>(&'a self, q: QueueRef<'a>, rules: LeaseRules) -> StoreFuture<'a, bool> {
        self.run(move |s, log| s.set_rules(log, q.account, q.queue, rules))
    }

    fn access_policies<'a>(
        &'a self,
        q: QueueRef<'a>,
    ) -> StoreFuture<'a, Option<Vec<AccessPolicy>>> {
        self.read(move |s, _| Ok(s.access_policies(q.account, q.queue)))
    }

    fn set_access_policies<'a>(
        &'a self,
        q: QueueRef<'a>,
        policies: Vec<AccessPolicy>,
    ) -> StoreFuture<'a, bool> {
        self.run(move |s, log| s.set_access_policies(log, q.account, q.queue, policies))
    }

    fn put_message<'a>(
        &'a self,
        q: QueueRef<'a>,
        message: NewMessage,
    ) -> StoreFuture<'a, Option<Message>> {
        self.run(move |s, log| s.put(log, q.account, q.queue, message))
    }

    fn receive<'a>(
        &'a self,
        q: QueueRef<'a>,
        now: Timestamp,
        grant: LeaseGrant,
    ) -> StoreFuture<'a, Option<Vec<Message>>> {
        self.run(move |s, log| s.receive(log, q.account, q.queue, now, &grant))
    }

    fn peek<'a>(
        &'a self,
        q: QueueRef<'a>,
        now: Timestamp,
        max: usize,
    ) -> StoreFuture<'a, Option<Vec<Message>>> {
        self.read(move |s, log| s.peek(log, q.account, q.queue, now, max))
    }

    fn delete_message<'a>(
        &'a self,
        q: QueueRef<'a>,
        id: MessageId,
        receipt: PopReceipt,
        now: Timestamp,
    ) -> StoreFuture<'a, ReceiptOutcome<()>> {
        self.run(move |s, log| s.delete_message(log, q.account, q.queue, id, receipt, now))
    }

    fn update_message<'a>(
        &'a self,
        q: QueueRef<'a>,
        id: MessageId,
        receipt: PopReceipt,
        now: Timestamp,
        update: MessageUpdate,
    ) -> StoreFuture<'a, ReceiptOutcome<Message>> {
        self.run(move |s, log| s.update_message(log, q.account, q.queue, id, receipt, now, update))
    }

    fn clear_messages<'a>(&'a self, q: QueueRef<'a>) -> StoreFuture<'a, bool> {
        self.run(move |s, log| s.clear(log, q.account, q.queue))
    }

    fn account_document<'a>(
        &'a self,
        account: &'a str,
        key: &'a str,
    ) -> StoreFuture<'a, Option<Vec<u8>>> {
        self.read(move |s, _| Ok(s.document(account, key)))
    }

    fn swap_account_document<'a>(
        &'a self,
        account: &'a str,
        key: &'a str,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
    ) -> StoreFuture<'a, bool> {
        self.run(move |s, log| {
            if s.document(account, key) != expected {
                return Ok(false);
            }
            s.set_document(log, account, key, value).map(|()| true)
        })
    }

    fn enqueue<'a>(
        &'a self,
        q: QueueRef<'a>,
        batch: Vec<Enqueue>,
        max_bytes: u64,
    ) -> StoreFuture<'a, Option<Enqueued>> {
        self.run(move |s, log| s.enqueue(log, q, batch, max_bytes))
    }

    fn lock<'a>(
        &'a self,
        q: QueueRef<'a>,
        sub: SubQueue,
        now: Timestamp,
        grant: LeaseGrant,
    ) -> StoreFuture<'a, Option<Vec<Message>>> {
        self.run(move |s, log| s.lock(log, q, sub, now, &grant))
    }

    fn take<'a>(
        &'a self,
        q: QueueRef<'a>,
        sub: SubQueue,
        now: Timestamp,
        max: usize,
    ) -> StoreFuture<'a, Option<Vec<Message>>> {
        self.run(move |s, log| s.take(log, q, sub, now, max))
    }

    fn settle<'a>(
        &'a self,
        q: QueueRef<'a>,
        sub: SubQueue,
        token: PopReceipt,
        now: Timestamp,
        how: Settlement,
    ) -> StoreFuture<'a, Option<Result<Settled, SettleError>>> {
        self.run(move |s, log| s.settle(log, q, sub, token, now, how))
    }

    fn browse<'a>(
        &'a self,
        q: QueueRef<'a>,
        sub: SubQueue,
        from: u64,
        max: usize,
        now: Timestamp,
    ) -> StoreFuture<'a, Option<Vec<Message>>> {
        self.read(move |s, log| s.browse(log, q, sub, from, max, now))
    }

    fn lock_deferred<'a>(
        &'a self,
        q: QueueRef<'a>,
        sub: SubQueue,
        sequences: Vec<u64>,
        now: Timestamp,
        grant: LeaseGrant,
    ) -> StoreFuture<'a, Option<Vec<Message>>> {
        self.run(move |s, log| s.lock_deferred(log, q, sub, &sequences, now, &grant))
    }

    fn cancel_scheduled<'a>(
        &'a self,
        q: QueueRef<'a>,
        sequences: Vec<u64>,
        now: Timestamp,
    ) -> StoreFuture<'a, Option<Vec<u64>>> {
        self.run(move |s, log| s.cancel_scheduled(log, q, &sequences, now))
    }

    fn housekeep(&self, now: Timestamp, budget: usize) -> StoreFuture<'_, usize> {
        self.run(move |s, log| s.housekeep(log, now, budget))
    }
}
