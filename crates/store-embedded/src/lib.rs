//! Hematite's default store: durable on local disk, single node.
//!
//! Everything — service documents, queues, metadata, access policies, messages and each
//! message's lease state — lives in one redb file under the data directory (layout in
//! [`schema`]). Writes go through one executor thread that applies them in batches, one
//! transaction and one fsync per batch: a request is answered only after its change is on disk,
//! and concurrent requests share fsyncs (group commit; [`executor`]). Reads run in read
//! transactions on the caller's thread and see exactly what has been acknowledged.
//!
//! Memory is bounded by redb's page cache (`cache_bytes`), not by the backlog: bodies and
//! indexes are on disk, and every operation walks B-tree key ranges of its own queue only.
//! Restart needs no index rebuild. All file I/O can go through a [`redb::StorageBackend`] the
//! caller provides, which is how the tests inject fsync failures, short writes, full disks and
//! crashes ([`faults`]).

#![forbid(unsafe_code)]

mod codec;
mod error;
mod executor;
pub mod faults;
pub mod schema;
mod tables;

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use hematite_engine::index::{LeaseGrant, MessageUpdate};
use hematite_engine::model::NewMessage;
use hematite_engine::store::{CreateOutcome, ReceiptOutcome, StoreFuture};
use hematite_engine::{
    AccessPolicy, Clock, Message, MessageId, Metadata, PopReceipt, QueueInfo, QueueRef,
    QueueSummary, Store, StoreError, Timestamp,
};
use redb::{
    Database, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    StorageBackend,
};
use tokio::sync::oneshot;

pub use crate::error::DbError;
use crate::executor::{Call, Executor, Job, SharedDb};
use crate::schema::*;
use crate::tables::Tables;

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
    /// redb's page cache: the store's memory bound.
    pub cache_bytes: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            durability: Durability::Strict,
            cache_bytes: 64 * 1024 * 1024,
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
    #[error("{path} is corrupt: {detail}. Hematite refuses to start rather than drop data; move the file aside to start empty, and keep it for inspection")]
    Corrupt { path: PathBuf, detail: String },
    #[error(
        "{path} has on-disk format version {found}; this build reads version {FORMAT_VERSION}"
    )]
    Format { path: PathBuf, found: u64 },
    #[error("cannot open {path}: {detail}")]
    Other { path: PathBuf, detail: String },
}

/// The file inside the data directory.
pub const FILE_NAME: &str = "queues.redb";

/// The embedded store. Cloning shares it.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

struct Inner {
    jobs: Mutex<Option<Sender<Box<dyn Job>>>>,
    db: SharedDb,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel ends the executor, which flushes and closes the file.
        drop(self.jobs.lock().unwrap_or_else(|e| e.into_inner()).take());
        if let Some(t) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = t.join();
        }
    }
}

fn builder(options: &Options) -> redb::Builder {
    let mut b = Database::builder();
    b.set_cache_size(options.cache_bytes);
    // Verify every page checksum when opening, so a file damaged outside redb is refused with
    // a clear error at startup instead of being trusted (or panicking on first read).
    b.set_check_integrity_on_open(true);
    b.set_repair_callback(|session| {
        tracing::warn!(
            progress = session.progress(),
            "repairing the data file after an unclean shutdown"
        );
    });
    b
}

impl EmbeddedStore {
    /// Opens (creating if needed) the store in `dir`.
    pub fn open(dir: &Path, options: Options, clock: Arc<dyn Clock>) -> Result<Self, OpenError> {
        std::fs::create_dir_all(dir).map_err(|source| OpenError::Directory {
            path: dir.to_owned(),
            source,
        })?;
        let path = dir.join(FILE_NAME);
        let opts = options.clone();
        let p = path.clone();
        let opener = move || builder(&opts).create(&p).map_err(DbError::from);
        Self::open_with(path, options, clock, opener)
    }

    /// Opens the store on a caller-provided backend (the I/O seam). `make_backend` is called
    /// again to reopen after an I/O failure.
    pub fn open_with_backend<B: StorageBackend>(
        label: PathBuf,
        options: Options,
        clock: Arc<dyn Clock>,
        make_backend: impl Fn() -> std::io::Result<B> + Send + 'static,
    ) -> Result<Self, OpenError> {
        let opts = options.clone();
        let opener = move || {
            let backend =
                make_backend().map_err(|e| DbError::Storage(redb::StorageError::Io(e)))?;
            builder(&opts)
                .create_with_backend(backend)
                .map_err(DbError::from)
        };
        Self::open_with(label, options, clock, opener)
    }

    fn open_with(
        path: PathBuf,
        options: Options,
        clock: Arc<dyn Clock>,
        opener: impl Fn() -> Result<Database, DbError> + Send + 'static,
    ) -> Result<Self, OpenError> {
        let db = opener().map_err(|e| open_error(&path, e))?;
        init(&db, &path)?;
        let shared: SharedDb = Arc::new(RwLock::new(Some(Arc::new(db))));
        let (tx, rx) = mpsc::channel();
        let executor = Executor {
            jobs: rx,
            db: shared.clone(),
            opener: Box::new(opener),
            durability: options.durability,
            clock,
        };
        let thread = std::thread::Builder::new()
            .name("hematite-store".into())
            .spawn(move || executor.run())
            .map_err(|e| OpenError::Other {
                path: path.clone(),
                detail: e.to_string(),
            })?;
        Ok(EmbeddedStore {
            inner: Arc::new(Inner {
                jobs: Mutex::new(Some(tx)),
                db: shared,
                thread: Mutex::new(Some(thread)),
            }),
        })
    }

    /// Runs `f` in the next batch and resolves once the batch is durable.
    fn write<T, F>(&self, f: F) -> StoreFuture<'static, T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Tables<'_>) -> Result<T, DbError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(Call::new(f, tx));
        let sent = match &*self.inner.jobs.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(jobs) => jobs.send(job).is_ok(),
            None => false,
        };
        Box::pin(async move {
            if !sent {
                return Err(DbError::Other("the store is closed".into()).to_store_error());
            }
            rx.await.unwrap_or_else(|_| {
                Err(DbError::Other("the store executor stopped".into()).to_store_error())
            })
        })
    }

    /// Runs `f` in a read transaction: it sees every acknowledged write.
    fn read<T>(
        &self,
        f: impl FnOnce(&ReadTransaction) -> Result<T, DbError>,
    ) -> Result<T, StoreError> {
        let db = self
            .inner
            .db
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| DbError::Unavailable.to_store_error())?;
        let txn = db
            .begin_read()
            .map_err(|e| DbError::from(e).to_store_error())?;
        f(&txn).map_err(|e| e.to_store_error())
    }
}

macro_rules! read_tables {
    ($txn:expr, $($name:ident = $def:expr),*) => {
        $( let $name = $txn.open_table($def).map_err(DbError::from)?; )*
    };
}

/// How many rows each table holds: what the tests and the storage report look at to see
/// reclaim happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RowCounts {
    pub queues: u64,
    pub messages: u64,
    pub bodies: u64,
    pub visibility: u64,
    pub expiry: u64,
    pub ids: u64,
    pub doomed: u64,
}

impl EmbeddedStore {
    pub fn row_counts(&self) -> Result<RowCounts, StoreError> {
        self.read(|txn| {
            read_tables!(
                txn,
                queues = QUEUES,
                messages = MESSAGES,
                bodies = BODIES,
                visibility = VISIBILITY,
                expiry = EXPIRY,
                ids = IDS,
                doomed = DOOMED
            );
            Ok(RowCounts {
                queues: queues.len()?,
                messages: messages.len()?,
                bodies: bodies.len()?,
                visibility: visibility.len()?,
                expiry: expiry.len()?,
                ids: ids.len()?,
                doomed: doomed.len()?,
            })
        })
    }
}

fn open_error(path: &Path, e: DbError) -> OpenError {
    let detail = e.to_string();
    match e {
        DbError::Corrupt(d) => OpenError::Corrupt {
            path: path.to_owned(),
            detail: d,
        },
        _ if detail.contains("already open") => OpenError::InUse {
            path: path.to_owned(),
        },
        _ => OpenError::Other {
            path: path.to_owned(),
            detail,
        },
    }
}

/// Creates the tables on first open and checks the format version on every open.
fn init(db: &Database, path: &Path) -> Result<(), OpenError> {
    let fail = |e: DbError| open_error(path, e);
    let txn = db.begin_write().map_err(|e| fail(e.into()))?;
    {
        let mut tables = Tables::open(&txn).map_err(fail)?;
        let found = tables
            .meta
            .get(META_FORMAT)
            .map_err(|e| fail(e.into()))?
            .map(|v| v.value());
        match found {
            Some(v) if v == FORMAT_VERSION => {}
            Some(v) => {
                return Err(OpenError::Format {
                    path: path.to_owned(),
                    found: v,
                })
            }
            None => {
                tables
                    .meta
                    .insert(META_FORMAT, FORMAT_VERSION)
                    .map_err(|e| fail(e.into()))?;
            }
        }
    }
    txn.commit().map_err(|e| fail(e.into()))?;
    Ok(())
}

impl Store for EmbeddedStore {
    fn create_queue<'a>(
        &'a self,
        q: QueueRef<'a>,
        metadata: &'a Metadata,
    ) -> StoreFuture<'a, CreateOutcome> {
        let (account, queue, metadata) =
            (q.account.to_owned(), q.queue.to_owned(), metadata.clone());
        self.write(move |t| t.create_queue(&account, &queue, &metadata))
    }

    fn delete_queue<'a>(&'a self, q: QueueRef<'a>) -> StoreFuture<'a, bool> {
        let (account, queue) = (q.account.to_owned(), q.queue.to_owned());
        self.write(move |t| t.delete_queue(&account, &queue))
    }

    fn list_queues<'a>(
        &'a self,
        account: &'a str,
        prefix: &'a str,
        start_at: Option<&'a str>,
        limit: usize,
    ) -> StoreFuture<'a, Vec<QueueSummary>> {
        let r = self.read(|txn| {
            read_tables!(txn, queues = QUEUES);
            tables::list_queues(&queues, account, prefix, start_at, limit)
        });
        Box::pin(async move { r })
    }

    fn queue_info<'a>(
        &'a self,
        q: QueueRef<'a>,
        now: Timestamp,
    ) -> StoreFuture<'a, Option<QueueInfo>> {
        let r = self.read(|txn| {
            read_tables!(txn, queues = QUEUES, state = QUEUE_STATE, expiry = EXPIRY);
            match tables::queue_record(&queues, q.account, q.queue)? {
                Some(rec) => Ok(Some(tables::queue_info(&rec, &state, &expiry, now)?)),
                None => Ok(None),
            }
        });
        Box::pin(async move { r })
    }

    fn set_metadata<'a>(&'a self, q: QueueRef<'a>, metadata: Metadata) -> StoreFuture<'a, bool> {
        let (account, queue) = (q.account.to_owned(), q.queue.to_owned());
        self.write(move |t| t.set_metadata(&account, &queue, metadata))
    }

    fn access_policies<'a>(
        &'a self,
        q: QueueRef<'a>,
    ) -> StoreFuture<'a, Option<Vec<AccessPolicy>>> {
        let r = self.read(|txn| {
            read_tables!(txn, queues = QUEUES);
            Ok(tables::queue_record(&queues, q.account, q.queue)?.map(|r| r.policies))
        });
        Box::pin(async move { r })
    }

    fn set_access_policies<'a>(
        &'a self,
        q: QueueRef<'a>,
        policies: Vec<AccessPolicy>,
    ) -> StoreFuture<'a, bool> {
        let (account, queue) = (q.account.to_owned(), q.queue.to_owned());
        self.write(move |t| t.set_policies(&account, &queue, policies))
    }

    fn put_message<'a>(
        &'a self,
        q: QueueRef<'a>,
        message: NewMessage,
    ) -> StoreFuture<'a, Option<Message>> {
        let (account, queue) = (q.account.to_owned(), q.queue.to_owned());
        self.write(move |t| t.put(&account, &queue, message))
    }

    fn receive<'a>(
        &'a self,
        q: QueueRef<'a>,
        now: Timestamp,
        grant: LeaseGrant,
    ) -> StoreFuture<'a, Option<Vec<Message>>> {
        let (account, queue) = (q.account.to_owned(), q.queue.to_owned());
        self.write(move |t| t.receive(&account, &queue, now, &grant))
    }

    fn peek<'a>(
        &'a self,
        q: QueueRef<'a>,
        now: Timestamp,
        max: usize,
    ) -> StoreFuture<'a, Option<Vec<Message>>> {
        let r = self.read(|txn| {
            read_tables!(
                txn,
                queues = QUEUES,
                visibility = VISIBILITY,
                messages = MESSAGES,
                bodies = BODIES
            );
            match tables::queue_record(&queues, q.account, q.queue)? {
                Some(rec) => Ok(Some(tables::peek(
                    &visibility,
                    &messages,
                    &bodies,
                    rec.id,
                    now,
                    max,
                )?)),
                None => Ok(None),
            }
        });
        Box::pin(async move { r })
    }

    fn delete_message<'a>(
        &'a self,
        q: QueueRef<'a>,
        id: MessageId,
        receipt: PopReceipt,
        now: Timestamp,
    ) -> StoreFuture<'a, ReceiptOutcome<()>> {
        let (account, queue) = (q.account.to_owned(), q.queue.to_owned());
        self.write(move |t| t.delete_message(&account, &queue, id, receipt, now))
    }

    fn update_message<'a>(
        &'a self,
        q: QueueRef<'a>,
        id: MessageId,
        receipt: PopReceipt,
        now: Timestamp,
        update: MessageUpdate,
    ) -> StoreFuture<'a, ReceiptOutcome<Message>> {
        let (account, queue) = (q.account.to_owned(), q.queue.to_owned());
        self.write(move |t| t.update_message(&account, &queue, id, receipt, now, update))
    }

    fn clear_messages<'a>(&'a self, q: QueueRef<'a>) -> StoreFuture<'a, bool> {
        let (account, queue) = (q.account.to_owned(), q.queue.to_owned());
        self.write(move |t| t.clear(&account, &queue))
    }

    fn account_document<'a>(
        &'a self,
        account: &'a str,
        key: &'a str,
    ) -> StoreFuture<'a, Option<Vec<u8>>> {
        let r = self.read(|txn| {
            read_tables!(txn, documents = DOCUMENTS);
            Ok(documents.get((account, key))?.map(|v| v.value().to_vec()))
        });
        Box::pin(async move { r })
    }

    fn set_account_document<'a>(
        &'a self,
        account: &'a str,
        key: &'a str,
        value: Vec<u8>,
    ) -> StoreFuture<'a, ()> {
        let (account, key) = (account.to_owned(), key.to_owned());
        self.write(move |t| t.set_document(&account, &key, &value))
    }
}
