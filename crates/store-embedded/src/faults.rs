//! Fault injection at the I/O seam: a [`Disk`] over real files whose failures and crashes tests
//! control.
//!
//! - `fail_sync`: fsyncs fail (EIO), as a dying disk's would.
//! - `space_left`: writes past this many more bytes fail with ENOSPC, as on a full disk.
//! - `crash()`: simulates power loss. Every write since its file's last successful fsync is
//!   kept, dropped, or torn (partly written, in 512-byte sectors), chosen at random per write,
//!   and the files on disk are rewritten to that state, as a disk that lost its volatile cache
//!   would leave them. File creation, rename and removal are durable when they return (the
//!   store syncs the directory), so they are not undone.

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use crate::disk::{Disk, DiskFile, FsDisk};

/// Switches shared between a test and the files it opened.
#[derive(Debug, Default)]
pub struct Faults {
    pub fail_sync: AtomicBool,
    /// Bytes that may still be written; negative means unlimited.
    pub space_left: AtomicI64,
    /// Per file, writes not yet covered by a successful fsync.
    unsynced: Mutex<HashMap<PathBuf, Vec<Unsynced>>>,
}

/// A write not yet covered by an fsync, with the bytes it replaced.
#[derive(Debug)]
struct Unsynced {
    offset: u64,
    old: Vec<u8>,
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

    /// Power loss: rewrites every file with unsynced writes as a crash at this instant could
    /// leave it. Call only after the store using them has been dropped.
    ///
    /// Each write since the file's last successful fsync independently reached the disk, was
    /// lost (its region reverts to what it held before), or was torn (a prefix of whole 512-byte
    /// sectors landed). Writes are undone newest first, and never over bytes a newer write that
    /// landed has covered, as a disk cache would behave. Deterministic per `seed`.
    pub fn crash(&self, seed: u64) -> io::Result<()> {
        let pending = std::mem::take(&mut *self.unsynced.lock().unwrap_or_else(|e| e.into_inner()));
        let mut rng = seed | 1;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut paths: Vec<_> = pending.into_iter().collect();
        paths.sort_by(|a, b| a.0.cmp(&b.0));
        for (path, writes) in paths {
            let file = match std::fs::OpenOptions::new().write(true).open(&path) {
                Ok(f) => f,
                // Removed or renamed since: what it held no longer matters.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let mut landed: Vec<(u64, u64)> = Vec::new();
            for w in writes.iter().rev() {
                let len = w.old.len() as u64;
                let keep_prefix = match next() % 3 {
                    0 => len,
                    1 => 0,
                    _ => ((next() % len.div_ceil(512).max(1)) * 512).min(len),
                };
                // Put the old bytes back past the kept prefix, except where a later write that
                // landed covers them: one pwrite per uncovered run.
                let mut i = keep_prefix;
                while i < len {
                    let at = w.offset + i;
                    if let Some(&(_, end)) = landed.iter().find(|&&(s, e)| s <= at && at < e) {
                        i = end - w.offset;
                        continue;
                    }
                    let next_landed = landed
                        .iter()
                        .map(|&(s, _)| s)
                        .filter(|&s| s > at)
                        .min()
                        .map_or(len, |s| s - w.offset);
                    let end = next_landed.min(len);
                    file.write_all_at(&w.old[i as usize..end as usize], at)?;
                    i = end;
                }
                if keep_prefix > 0 {
                    landed.push((w.offset, w.offset + keep_prefix));
                }
            }
            file.sync_all()?;
        }
        Ok(())
    }
}

/// A [`Disk`] with injectable faults.
#[derive(Debug, Clone)]
pub struct FaultyDisk {
    faults: Arc<Faults>,
}

impl FaultyDisk {
    pub fn new(faults: Arc<Faults>) -> Self {
        FaultyDisk { faults }
    }

    fn wrap(&self, path: &Path, inner: Box<dyn DiskFile>) -> Box<dyn DiskFile> {
        Box::new(FaultyFile {
            inner,
            path: path.to_owned(),
            faults: self.faults.clone(),
        })
    }
}

impl Disk for FaultyDisk {
    fn open(&self, path: &Path) -> io::Result<Box<dyn DiskFile>> {
        Ok(self.wrap(path, FsDisk.open(path)?))
    }

    fn create(&self, path: &Path, len: u64) -> io::Result<Box<dyn DiskFile>> {
        if self.faults.space_left.load(Ordering::SeqCst) == 0 {
            return Err(io::Error::from_raw_os_error(28)); // ENOSPC
        }
        self.forget(path);
        Ok(self.wrap(path, FsDisk.create(path, len)?))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        FsDisk.rename(from, to)?;
        let mut map = self
            .faults
            .unsynced
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        map.remove(to);
        if let Some(w) = map.remove(from) {
            map.insert(to.to_owned(), w);
        }
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        FsDisk.remove(path)?;
        self.forget(path);
        Ok(())
    }
}

impl FaultyDisk {
    fn forget(&self, path: &Path) {
        self.faults
            .unsynced
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(path);
    }
}

struct FaultyFile {
    inner: Box<dyn DiskFile>,
    path: PathBuf,
    faults: Arc<Faults>,
}

impl DiskFile for FaultyFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_exact_at(buf, offset)
    }

    fn write_all_at(&self, data: &[u8], offset: u64) -> io::Result<()> {
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
        let file_len = self.inner.size()?;
        if offset < file_len {
            let n = ((file_len - offset) as usize).min(data.len());
            self.inner.read_exact_at(&mut old[..n], offset)?;
        }
        self.inner.write_all_at(data, offset)?;
        self.faults
            .unsynced
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(self.path.clone())
            .or_default()
            .push(Unsynced { offset, old });
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        if self.faults.fail_sync.load(Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(5)); // EIO
        }
        self.inner.sync()?;
        self.faults
            .unsynced
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.path);
        Ok(())
    }

    fn size(&self) -> io::Result<u64> {
        self.inner.size()
    }
}
