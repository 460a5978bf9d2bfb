//! Fault injection at the I/O seam: a [`Disk`] over real files whose failures and crashes tests
//! control.
//!
//! - `fail_sync`: fsyncs fail (EIO), as a dying disk's would.
//! - `space_left`: the bytes the file system can still allocate. Creating a file allocates its
//!   whole length (as [`crate::disk::FsDisk::create`] does) or fails with ENOSPC and creates
//!   nothing; writing past a file's end allocates the difference; writing inside it costs
//!   nothing (its blocks are allocated); removing a file created here gives its bytes back.
//! - `fail_writes`: every write fails with ENOSPC, as on a full copy-on-write file system,
//!   where even overwrites allocate.
//! - `crash()`: simulates power loss. Every write since its file's last successful fsync is
//!   kept, dropped, or torn (partly written, in 512-byte sectors), chosen at random per write,
//!   and the files on disk are rewritten to that state, as a disk that lost its volatile cache
//!   would leave them. File creation, rename and removal are durable when they return (the
//!   store syncs the directory), so they are not undone.

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::disk::{Disk, DiskFile, FsDisk};

/// Switches shared between a test and the files it opened.
#[derive(Debug, Default)]
pub struct Faults {
    pub fail_sync: AtomicBool,
    /// Bytes that may still be allocated; negative means unlimited.
    pub space_left: AtomicI64,
    pub fail_writes: AtomicBool,
    /// Files created so far (spares, segments).
    pub creates: AtomicUsize,
    /// Bytes allocated to each file created here, given back when it is removed.
    allocated: Mutex<HashMap<PathBuf, u64>>,
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

    /// Takes `n` bytes of space, or fails with ENOSPC taking nothing.
    fn allocate(&self, n: u64) -> io::Result<()> {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        self.space_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                if left < 0 {
                    Some(left)
                } else if n > left {
                    None
                } else {
                    Some(left - n)
                }
            })
            .map(|_| ())
            .map_err(|_| io::Error::from_raw_os_error(28)) // ENOSPC
    }

    fn release(&self, n: u64) {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        let _ = self
            .space_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                (left >= 0).then(|| left.saturating_add(n))
            });
    }

    fn allocated(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, u64>> {
        self.allocated.lock().unwrap_or_else(|e| e.into_inner())
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
        self.faults.creates.fetch_add(1, Ordering::SeqCst);
        if let Some(old) = self.faults.allocated().remove(path) {
            self.faults.release(old);
        }
        self.faults.allocate(len)?;
        self.forget(path);
        match FsDisk.create(path, len) {
            Ok(f) => {
                self.faults.allocated().insert(path.to_owned(), len);
                Ok(self.wrap(path, f))
            }
            Err(e) => {
                self.faults.release(len);
                Err(e)
            }
        }
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        FsDisk.rename(from, to)?;
        {
            let mut allocated = self.faults.allocated();
            if let Some(old) = allocated.remove(to) {
                self.faults.release(old);
            }
            if let Some(n) = allocated.remove(from) {
                allocated.insert(to.to_owned(), n);
            }
        }
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
        if let Some(n) = self.faults.allocated().remove(path) {
            self.faults.release(n);
        }
        Ok(())
    }

    fn available(&self, dir: &Path) -> io::Result<u64> {
        let left = self.faults.space_left.load(Ordering::SeqCst);
        if left < 0 {
            FsDisk.available(dir)
        } else {
            Ok(left as u64)
        }
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
        if self.faults.fail_writes.load(Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(28)); // ENOSPC
        }
        let file_len = self.inner.size()?;
        let end = offset + data.len() as u64;
        if end > file_len {
            self.faults.allocate(end - file_len)?;
            if let Some(n) = self.faults.allocated().get_mut(&self.path) {
                *n = end;
            }
        }
        // Remember what the write replaces, so a simulated crash can undo it.
        let mut old = vec![0u8; data.len()];
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
