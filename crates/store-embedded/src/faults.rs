//! The I/O seam for fault injection: a [`StorageBackend`] over a real file whose failures and
//! crashes tests control.
//!
//! - `fail_sync`: the next fsyncs fail (EIO), as a dying disk's would.
//! - `space_left`: writes past this many more bytes fail with ENOSPC, as on a full disk.
//! - `crash()`: simulates power loss. Every write since the last successful fsync is kept,
//!   dropped, or torn (partly written, in 512-byte sectors), chosen at random per write, and the
//!   file on disk is rewritten to that state, as a disk that lost its volatile cache would leave it.

use std::fs::File;
use std::io;
use std::ops::Bound;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use redb::backends::FileBackend;
use redb::{BackendError, StorageBackend};

/// Switches shared between a test and the backends it opened.
#[derive(Debug, Default)]
pub struct Faults {
    pub fail_sync: AtomicBool,
    /// Bytes that may still be written; negative means unlimited.
    pub space_left: AtomicI64,
    /// Writes not yet covered by a successful fsync.
    unsynced: Mutex<Vec<Unsynced>>,
    /// Length at the last successful fsync.
    synced_len: Mutex<Option<u64>>,
}

impl Faults {
    pub fn new() -> Arc<Self> {
        let f = Faults::default();
        f.space_left.store(-1, Ordering::SeqCst);
        Arc::new(f)
    }

    pub fn unlimited_space(&self) {
        self.space_left.store(-1, Ordering::SeqCst);
    }

    /// Power loss: rewrites the file at `path` as a crash at this instant could leave it. Call
    /// only after the store using it has been dropped.
    ///
    /// Each write since the last successful fsync independently reached the disk, was lost
    /// (its region reverts to what it held before), or was torn (a prefix of whole 512-byte
    /// sectors landed). Writes are undone newest first, and never over bytes a newer write that
    /// landed has covered, as a disk cache would behave. Deterministic per `seed`.
    pub fn crash(&self, path: &Path, seed: u64) -> io::Result<()> {
        let pending = std::mem::take(&mut *self.unsynced.lock().unwrap_or_else(|e| e.into_inner()));
        let mut rng = seed | 1;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let file = std::fs::OpenOptions::new().write(true).open(path)?;
        let mut landed: Vec<(u64, u64)> = Vec::new();
        for w in pending.iter().rev() {
            let len = w.old.len() as u64;
            let keep_prefix = match next() % 3 {
                0 => len,
                1 => 0,
                _ => ((next() % len.div_ceil(512).max(1)) * 512).min(len),
            };
            // Restore old bytes in [offset+keep_prefix, offset+len), except where a newer
            // landed write covers them.
            for i in keep_prefix..len {
                let at = w.offset + i;
                if !landed.iter().any(|&(s, e)| s <= at && at < e) {
                    file.write_all_at(&w.old[i as usize..=i as usize], at)?;
                }
            }
            if keep_prefix > 0 {
                landed.push((w.offset, w.offset + keep_prefix));
            }
        }
        if let Some(len) = *self.synced_len.lock().unwrap_or_else(|e| e.into_inner()) {
            if next() % 2 == 0 && file.metadata()?.len() > len {
                file.set_len(len)?;
            }
        }
        file.sync_all()
    }
}

/// A write not yet covered by an fsync, with the bytes it replaced.
#[derive(Debug)]
struct Unsynced {
    offset: u64,
    old: Vec<u8>,
}

/// A file backend with injectable faults.
#[derive(Debug)]
pub struct FaultyBackend {
    inner: FileBackend,
    file: File,
    faults: Arc<Faults>,
}

impl FaultyBackend {
    pub fn open(path: &Path, faults: Arc<Faults>) -> io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let inner = FileBackend::new(file.try_clone()?).map_err(io::Error::other)?;
        Ok(FaultyBackend {
            inner,
            file,
            faults,
        })
    }

    pub fn path_for(dir: &Path) -> PathBuf {
        dir.join(crate::FILE_NAME)
    }
}

impl StorageBackend for FaultyBackend {
    fn len(&self) -> Result<u64, io::Error> {
        self.inner.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        self.inner.read(offset, out)
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        self.inner.set_len(len)
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        if self.faults.fail_sync.load(Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(5)); // EIO
        }
        self.inner.sync_data()?;
        self.faults
            .unsynced
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        *self
            .faults
            .synced_len
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(self.file.metadata()?.len());
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        let left = self.faults.space_left.load(Ordering::SeqCst);
        if left >= 0 {
            let n = data.len() as i64;
            if n > left {
                return Err(io::Error::from_raw_os_error(28)); // ENOSPC
            }
            self.faults.space_left.fetch_sub(n, Ordering::SeqCst);
        }
        // Remember what the write replaces, so a simulated crash can undo it.
        let mut old = vec![0u8; data.len()];
        let file_len = self.file.metadata()?.len();
        if offset < file_len {
            let n = ((file_len - offset) as usize).min(data.len());
            self.file.read_exact_at(&mut old[..n], offset)?;
        }
        self.inner.write(offset, data)?;
        self.faults
            .unsynced
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Unsynced { offset, old });
        Ok(())
    }

    fn close(&self) -> Result<(), io::Error> {
        self.inner.close()
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.inner.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.query_lock_range(start, end)
    }
}
