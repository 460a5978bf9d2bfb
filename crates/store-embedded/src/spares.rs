//! Ready-to-use segment files, so that an `fdatasync` never has to allocate blocks.
//!
//! On ext4 and XFS, syncing a write into a sparse or merely preallocated region also commits the
//! file system journal (block allocation, unwritten-extent conversion), which measured 1.6–1.9×
//! slower here than syncing a write over blocks that were already written (≈190 µs against
//! ≈115 µs for 16 KiB). So segments are written in full before they are used: retired segments
//! are recycled as they are, and a background thread zero-fills a fresh file as soon as a segment
//! starts and no recycled one waits. Rotation then only renames a file.
//!
//! Near a full disk a spare is prepared only while one more segment's worth stays free beside
//! it ([`RESERVE_SEGMENTS`]): the spare is an optimisation, and the last free space belongs to
//! the log itself (which then allocates its next segment on demand) and to the machine's other
//! programs. A refused or failed preparation waits longer each time (from 1 s up to
//! [`MAX_BACKOFF`]) instead of filling the disk and deleting the file every second.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::disk::Disk;
use crate::log::{SPARE, SUFFIX};

/// Spares kept at most; more retired segments are removed.
const KEEP: usize = 1;
/// Zeroes written and synced at a time: a log fsync queued behind one chunk waits for at most
/// this much writeback.
const CHUNK: usize = 256 << 10;
/// Pause between chunks. A 32 MiB spare takes ≈0.9 s to prepare, less than a segment lasts at
/// the fastest measured put rate (≈25 MB/s of log, 1.3 s per segment).
const PACE: Duration = Duration::from_millis(6);
/// Segments' worth of space that must stay free beside a new spare.
pub const RESERVE_SEGMENTS: u64 = 1;
/// The longest wait between attempts when there is no room for a spare.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

struct Pool {
    ready: Vec<PathBuf>,
    /// A fresh spare is wanted (the current segment is filling up).
    wanted: bool,
    stop: bool,
    next_id: u64,
}

struct Shared {
    pool: Mutex<Pool>,
    wake: Condvar,
}

pub struct Spares {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

fn lock(m: &Mutex<Pool>) -> MutexGuard<'_, Pool> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Leftovers of a preparation cut short; removed at open.
pub const PREPARING_SUFFIX: &str = "preparing";

impl Spares {
    /// Starts the pool with the spares found on disk.
    pub fn start(dir: &Path, disk: Arc<dyn Disk>, size: u64, found: Vec<PathBuf>) -> Self {
        let shared = Arc::new(Shared {
            pool: Mutex::new(Pool {
                ready: found,
                wanted: false,
                stop: false,
                next_id: 0,
            }),
            wake: Condvar::new(),
        });
        let thread = {
            let shared = shared.clone();
            let dir = dir.to_owned();
            std::thread::Builder::new()
                .name("hematite-spares".into())
                .spawn(move || prepare_loop(&shared, &dir, &*disk, size))
                .map_err(|e| tracing::warn!(error = %e, "no spare-segment thread; segments will be created on demand"))
                .ok()
        };
        Spares { shared, thread }
    }

    /// A ready spare, if any.
    pub fn take(&self) -> Option<PathBuf> {
        lock(&self.shared.pool).ready.pop()
    }

    /// Asks for a fresh spare unless one is ready.
    pub fn want(&self) {
        let mut pool = lock(&self.shared.pool);
        if pool.ready.is_empty() && !pool.wanted {
            pool.wanted = true;
            self.shared.wake.notify_one();
        }
    }

    /// A handle for returning retired segments from outside the store lock.
    pub fn handle(&self) -> SparesHandle {
        SparesHandle(self.shared.clone())
    }
}

/// Takes retired segments into the pool.
pub struct SparesHandle(Arc<Shared>);

impl SparesHandle {
    /// Whether a retired segment should be kept as a spare (rather than removed).
    pub fn has_room(&self) -> bool {
        lock(&self.0.pool).ready.len() < KEEP
    }

    pub fn add(&self, path: PathBuf) {
        lock(&self.0.pool).ready.push(path);
    }
}

impl Drop for Spares {
    fn drop(&mut self) {
        lock(&self.shared.pool).stop = true;
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn prepare_loop(shared: &Shared, dir: &Path, disk: &dyn Disk, size: u64) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let id = {
            let mut pool = lock(&shared.pool);
            while !(pool.stop || pool.wanted && pool.ready.is_empty()) {
                pool = shared.wake.wait(pool).unwrap_or_else(|e| e.into_inner());
            }
            if pool.stop {
                return;
            }
            pool.next_id += 1;
            pool.next_id
        };
        let tmp = dir.join(format!(
            "{SPARE}-{}-{id}.{PREPARING_SUFFIX}",
            std::process::id()
        ));
        let done = dir.join(format!("{SPARE}-{}-{id}.{SUFFIX}", std::process::id()));
        let room = disk
            .available(dir)
            .map(|free| free >= size * (1 + RESERVE_SEGMENTS));
        let outcome = match room {
            Ok(true) => prepare(disk, &tmp, &done, size, shared),
            Ok(false) => Err(std::io::Error::from_raw_os_error(28)), // ENOSPC, foreseen
            Err(e) => Err(e),
        };
        match outcome {
            Ok(true) => {
                let mut pool = lock(&shared.pool);
                pool.ready.push(done);
                pool.wanted = false;
                backoff = Duration::from_secs(1);
            }
            Ok(false) => {
                let _ = disk.remove(&tmp);
                return;
            }
            Err(e) => {
                let _ = disk.remove(&tmp);
                if backoff == Duration::from_secs(1) {
                    tracing::warn!(error = %e, "no spare segment prepared; the log will allocate its next one on demand");
                }
                let pool = lock(&shared.pool);
                // Woken early only to stop.
                let _ = shared
                    .wake
                    .wait_timeout_while(pool, backoff, |p| !p.stop)
                    .map(|_| ());
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Writes a whole segment of zeros and syncs it. `Ok(false)` if asked to stop meanwhile.
fn prepare(
    disk: &dyn Disk,
    tmp: &Path,
    done: &Path,
    size: u64,
    shared: &Shared,
) -> io::Result<bool> {
    let file = disk.create(tmp, size)?;
    let zeros = vec![0u8; CHUNK];
    let mut at = 0u64;
    while at < size {
        if lock(&shared.pool).stop {
            return Ok(false);
        }
        let n = (size - at).min(CHUNK as u64) as usize;
        file.write_all_at(&zeros[..n], at)?;
        // Flush each chunk on its own and pause: the log's fdatasyncs share the device, and a
        // whole segment of dirty pages flushed at once stalled them for tens of milliseconds
        // (p99 of paced puts went from ~2 ms to ~20 ms).
        file.sync()?;
        std::thread::sleep(PACE);
        at += n as u64;
    }
    file.sync()?;
    drop(file);
    disk.rename(tmp, done)?;
    Ok(true)
}
