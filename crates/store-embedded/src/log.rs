//! The write-ahead log: the only place data lives on disk.
//!
//! The log is a run of fixed-size segment files (`<number>.hlog`). Each starts with a header and
//! holds framed records, each `[len u32][crc32 u32][lsn u64][payload]`, the checksum covering lsn
//! and payload. Log sequence numbers (LSNs) increase by one per record across segments, so a
//! record is only valid where it belongs: stale bytes of a recycled segment or a torn write never
//! pass for live data.
//!
//! Appends go to a memory buffer; [`Log::flush`] writes the buffer with one `pwrite` and
//! [`Log::sync`] makes it durable with one `fdatasync`. Segments are created at full size up
//! front, and dead segments are recycled rather than deleted, so a steady-state append rewrites
//! blocks the file system has already allocated and the `fdatasync` carries no metadata.
//!
//! Recovery rules, for a log whose writer acknowledges a record only after syncing everything
//! before it:
//! - A segment other than the last must be intact up to where the next one begins (its first
//!   LSN); anything else is corruption, and opening is refused.
//! - The last segment ends at its first invalid record. In strict mode a record with a higher
//!   LSN after that point can only be damage to acknowledged data (a torn write leaves a prefix,
//!   and only one write is ever unsynced), so opening is refused; in relaxed mode such leftovers
//!   of unsynced writes are zeroed so they can never be replayed later.
//! - Segments are fixed-size; a segment of another length has been truncated or extended.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::disk::{Disk, DiskFile};
use crate::spares::{Spares, PREPARING_SUFFIX};

const MAGIC: &[u8; 8] = b"HEMATLOG";
/// On-disk format written. Version 1 was the redb file `queues.redb`; version 2 segments (Azure
/// queues only) are still read: version 3 added record types and changed none
/// (`crate::record`).
pub const FORMAT_VERSION: u32 = 3;
/// The oldest segment format this build reads.
pub const OLDEST_READABLE: u32 = 2;
pub const HEADER_LEN: u64 = 64;
pub const FRAME_HEADER: usize = 16;
/// Frames start at multiples of this, so recovery's search for intact records after damage
/// looks at one position in eight.
const ALIGN: usize = 8;
const FLAG_STRICT: u32 = 1;
/// The largest record payload accepted when reading (64 KiB bodies plus headroom).
const MAX_PAYLOAD: usize = 1 << 20;
/// Extension of segment and spare files.
pub(crate) const SUFFIX: &str = "hlog";
/// Name prefix of spare files (ready to become segments).
pub(crate) const SPARE: &str = "spare";

/// Room one request may need in the log: a message record with its 64 KiB body, a queue
/// definition with 8 KiB of metadata and its policies, or 32 lease records, with room to spare.
pub const REQUEST_ROOM: u64 = 256 * 1024;

/// How long a failure to set the next segment aside is believed before the disk is asked
/// again.
const RETRY_NEXT_AFTER: Duration = Duration::from_millis(250);

/// The bytes a record with a payload of `len` takes in a segment.
pub fn frame_len(len: usize) -> u64 {
    (FRAME_HEADER + len).next_multiple_of(ALIGN) as u64
}

/// Where a record's payload is: segment number and byte offset in that segment's file.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub segment: u32,
    pub offset: u32,
}

/// Why the log could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum LogOpenError {
    #[error("{path}: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    #[error(
        "{path} has on-disk format version {found}; this build reads versions {OLDEST_READABLE} to {FORMAT_VERSION}"
    )]
    Format { path: PathBuf, found: u32 },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// The replay callback refused a record.
    #[error("{path}: {detail}")]
    Replay { path: PathBuf, detail: String },
}

struct Segment {
    file: Arc<dyn DiskFile>,
    first_lsn: u64,
}

pub struct Log {
    dir: PathBuf,
    disk: Arc<dyn Disk>,
    segment_size: u64,
    strict: bool,
    segments: BTreeMap<u32, Segment>,
    current: u32,
    /// Where the buffer goes in the current segment: the end of what has been written.
    written: u64,
    /// Appended records not yet written.
    buf: Vec<u8>,
    next_lsn: u64,
    /// In the current segment: the end of what is known durable, and of what a write was tried.
    synced: u64,
    attempted: u64,
    /// Fully written files, ready to become the next segment.
    spares: Spares,
    /// A file set aside to become the next segment, so that the next rotation cannot run out
    /// of space ([`Log::ensure_room`]).
    next: Option<PathBuf>,
    /// After failing to set one aside, when to try again: a full disk is not asked again for
    /// every refused request.
    retry_next_at: Option<Instant>,
    /// Whether a fresh spare has been asked for since the last rotation.
    asked_spare: bool,
}

fn segment_path(dir: &Path, n: u32) -> PathBuf {
    dir.join(format!("{n:010}.{SUFFIX}"))
}

fn encode_header(n: u32, first_lsn: u64, size: u64, strict: bool) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[0..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&(if strict { FLAG_STRICT } else { 0 }).to_le_bytes());
    h[16..20].copy_from_slice(&n.to_le_bytes());
    h[24..32].copy_from_slice(&first_lsn.to_le_bytes());
    h[32..40].copy_from_slice(&size.to_le_bytes());
    let crc = crc32fast::hash(&h[0..40]);
    h[40..44].copy_from_slice(&crc.to_le_bytes());
    h
}

struct Header {
    version: u32,
    number: u32,
    first_lsn: u64,
    size: u64,
    strict: bool,
}

enum HeaderCheck {
    Ok(Header),
    Format(u32),
    Invalid,
}

fn decode_header(h: &[u8]) -> HeaderCheck {
    if h.len() < HEADER_LEN as usize || &h[0..8] != MAGIC {
        return HeaderCheck::Invalid;
    }
    let u32_at = |i: usize| u32::from_le_bytes(h[i..i + 4].try_into().unwrap_or_default());
    let version = u32_at(8);
    if !(OLDEST_READABLE..=FORMAT_VERSION).contains(&version) {
        return HeaderCheck::Format(version);
    }
    let crc = u32_at(40);
    if crc != crc32fast::hash(&h[0..40]) {
        return HeaderCheck::Invalid;
    }
    let u64_at = |i: usize| u64::from_le_bytes(h[i..i + 8].try_into().unwrap_or_default());
    HeaderCheck::Ok(Header {
        version,
        number: u32_at(16),
        first_lsn: u64_at(24),
        size: u64_at(32),
        strict: u32_at(12) & FLAG_STRICT != 0,
    })
}

/// The frame at `at` in `bytes` if it is valid and carries `lsn`: returns its payload range.
fn frame_at(bytes: &[u8], at: usize, lsn: u64) -> Option<(usize, usize)> {
    let head = bytes.get(at..at + FRAME_HEADER)?;
    let len = u32::from_le_bytes(head[0..4].try_into().ok()?) as usize;
    if len == 0 || len > MAX_PAYLOAD {
        return None;
    }
    if u64::from_le_bytes(head[8..16].try_into().ok()?) != lsn {
        return None;
    }
    let end = at + FRAME_HEADER + len;
    let covered = bytes.get(at + 8..end)?;
    let crc = u32::from_le_bytes(head[4..8].try_into().ok()?);
    (crc32fast::hash(covered) == crc).then_some((at + FRAME_HEADER, end))
}

/// Hands the records of segment `n` (its bytes, first record `first_lsn`) to `f` in order,
/// each as its position and payload, up to the first invalid frame. Returns where that frame
/// is and the LSN it should have carried.
fn walk_records<E>(
    bytes: &[u8],
    n: u32,
    first_lsn: u64,
    mut f: impl FnMut(Pos, &[u8]) -> Result<(), E>,
) -> Result<(usize, u64), E> {
    let mut lsn = first_lsn;
    let mut at = HEADER_LEN as usize;
    while let Some((start, end)) = frame_at(bytes, at, lsn) {
        let pos = Pos {
            segment: n,
            offset: start as u32,
        };
        f(pos, &bytes[start..end])?;
        lsn += 1;
        at = end.next_multiple_of(ALIGN);
    }
    Ok((at, lsn))
}

/// Whether any valid frame with an LSN of at least `from` starts anywhere in `bytes[start..]`.
fn newer_frame_after(bytes: &[u8], start: usize, from: u64) -> bool {
    let mut at = start.next_multiple_of(ALIGN);
    // The common case: the rest of a prepared segment, never written.
    if bytes
        .get(at..)
        .is_none_or(|rest| rest.chunks(64).all(|c| c.iter().all(|&b| b == 0)))
    {
        return false;
    }
    while at + FRAME_HEADER <= bytes.len() {
        let lsn = u64::from_le_bytes(bytes[at + 8..at + 16].try_into().unwrap_or_default());
        // LSNs of a crashed writer's unsynced records are close above `from`.
        if lsn >= from && lsn < from.saturating_add(1 << 32) && frame_at(bytes, at, lsn).is_some() {
            return true;
        }
        at += ALIGN;
    }
    false
}

impl Log {
    /// Opens the log in `dir` (creating its first segment if there is none), handing every
    /// valid record to `replay` in LSN order with its position.
    pub fn open(
        dir: &Path,
        disk: Arc<dyn Disk>,
        segment_size: u64,
        strict: bool,
        mut replay: impl FnMut(Pos, &[u8]) -> Result<(), String>,
    ) -> Result<Log, LogOpenError> {
        let io_err = |path: &Path| {
            let path = path.to_owned();
            move |source| LogOpenError::Io {
                path: path.clone(),
                source,
            }
        };
        let mut numbers = Vec::new();
        let mut spares = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
            let entry = entry.map_err(io_err(dir))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.ends_with(&format!(".{PREPARING_SUFFIX}")) {
                // A spare whose preparation a crash cut short.
                let _ = std::fs::remove_file(entry.path());
                continue;
            }
            if let Some(stem) = name.strip_suffix(&format!(".{SUFFIX}")) {
                if let Ok(n) = stem.parse::<u32>() {
                    numbers.push(n);
                } else if stem.starts_with(SPARE) {
                    spares.push(entry.path());
                }
            }
        }
        numbers.sort_unstable();
        let mut log = Log {
            dir: dir.to_owned(),
            disk: disk.clone(),
            segment_size,
            strict,
            segments: BTreeMap::new(),
            current: 0,
            written: HEADER_LEN,
            buf: Vec::with_capacity(1 << 20),
            next_lsn: 1,
            synced: HEADER_LEN,
            attempted: HEADER_LEN,
            spares: Spares::start(dir, disk.clone(), segment_size, spares),
            next: None,
            retry_next_at: None,
            asked_spare: false,
        };
        let mut bytes = Vec::new();
        let mut last_strict = None;
        let count = numbers.len();
        for (i, &n) in numbers.iter().enumerate() {
            let last = i + 1 == count;
            let path = segment_path(dir, n);
            let corrupt = |detail: String| LogOpenError::Corrupt {
                path: path.clone(),
                detail,
            };
            let file = log.disk.open(&path).map_err(io_err(&path))?;
            let len = file.size().map_err(io_err(&path))?;
            bytes.clear();
            bytes.resize(len as usize, 0);
            file.read_exact_at(&mut bytes, 0).map_err(io_err(&path))?;
            let header = match decode_header(&bytes) {
                HeaderCheck::Format(found) => return Err(LogOpenError::Format { path, found }),
                HeaderCheck::Ok(h) if h.number == n => h,
                _ => {
                    if last && !newer_frame_after(&bytes, 0, log.next_lsn) {
                        // A rotation cut short by a crash (the header of a new or recycled
                        // file not yet written): nothing in it was acknowledged.
                        drop(file);
                        log.disk.remove(&path).map_err(io_err(&path))?;
                        continue;
                    }
                    return Err(corrupt("the segment header is damaged".into()));
                }
            };
            if header.size != len {
                return Err(corrupt(format!(
                    "the segment is {len} bytes long, its header says {}: it was truncated or extended",
                    header.size
                )));
            }
            if i > 0 && header.first_lsn != log.next_lsn {
                return Err(corrupt(format!(
                    "records {} to {} are missing before this segment",
                    log.next_lsn,
                    header.first_lsn.saturating_sub(1)
                )));
            }
            let (at, lsn) = walk_records(&bytes, n, header.first_lsn, |pos, payload| {
                replay(pos, payload).map_err(|detail| LogOpenError::Replay {
                    path: path.clone(),
                    detail,
                })
            })?;
            if last && newer_frame_after(&bytes, at, lsn) {
                if header.strict {
                    return Err(corrupt(format!(
                        "record {lsn} at byte {at} is damaged but later records are intact"
                    )));
                }
                // Leftovers of unsynced relaxed-mode writes: never let a later replay see them.
                let zeros = vec![0u8; len as usize - at];
                file.write_all_at(&zeros, at as u64)
                    .and_then(|()| file.sync())
                    .map_err(io_err(&path))?;
            }
            log.next_lsn = lsn;
            log.current = n;
            log.written = at as u64;
            log.synced = at as u64;
            log.attempted = at as u64;
            log.segments.insert(
                n,
                Segment {
                    file: file.into(),
                    first_lsn: header.first_lsn,
                },
            );
            last_strict = Some((header.strict, header.version));
        }
        // Keep writing into the last segment only if it was written in this mode and format,
        // so its header describes every record in it.
        if last_strict != Some((strict, FORMAT_VERSION)) {
            log.rotate().map_err(io_err(dir))?;
        }
        Ok(log)
    }

    /// Appends a record whose payload `encode` writes; returns where the payload is.
    pub fn append(&mut self, encode: impl FnOnce(&mut Vec<u8>)) -> io::Result<Pos> {
        let start = self.buf.len();
        debug_assert_eq!(start % ALIGN, 0);
        self.buf.extend_from_slice(&[0u8; FRAME_HEADER]);
        encode(&mut self.buf);
        let len = self.buf.len() - start - FRAME_HEADER;
        if len > MAX_PAYLOAD || (FRAME_HEADER + len) as u64 > self.segment_size - HEADER_LEN {
            self.buf.truncate(start);
            return Err(io::Error::other("record larger than a segment"));
        }
        if self.written + self.buf.len() as u64 > self.segment_size {
            let record = self.buf.split_off(start);
            self.flush()?;
            self.rotate()?;
            self.buf = record;
        }
        // Asked for as soon as a segment starts, so that the next one can be zeroed slowly
        // enough not to disturb the log's own fsyncs.
        if !self.asked_spare {
            self.spares.want();
            self.asked_spare = true;
        }
        let start = self.buf.len() - FRAME_HEADER - len;
        let lsn = self.next_lsn;
        self.next_lsn += 1;
        self.buf[start..start + 4].copy_from_slice(&(len as u32).to_le_bytes());
        self.buf[start + 8..start + 16].copy_from_slice(&lsn.to_le_bytes());
        let crc = crc32fast::hash(&self.buf[start + 8..]);
        self.buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
        let padded = self.buf.len().next_multiple_of(ALIGN);
        self.buf.resize(padded, 0);
        Ok(Pos {
            segment: self.current,
            offset: (self.written + (start + FRAME_HEADER) as u64) as u32,
        })
    }

    /// Reads `len` bytes at `pos` (+ `skip`), whether written yet or still in the buffer.
    pub fn read(&self, pos: Pos, skip: usize, len: usize, out: &mut [u8]) -> io::Result<()> {
        let at = pos.offset as u64 + skip as u64;
        debug_assert_eq!(out.len(), len);
        if pos.segment == self.current && at >= self.written {
            let from = (at - self.written) as usize;
            let src = self
                .buf
                .get(from..from + len)
                .ok_or_else(|| io::Error::other("read past the end of the log"))?;
            out.copy_from_slice(src);
            return Ok(());
        }
        let seg = self
            .segments
            .get(&pos.segment)
            .ok_or_else(|| io::Error::other("read from a reclaimed segment"))?;
        seg.file.read_exact_at(out, at)
    }

    /// Writes buffered records to the current segment (one `pwrite`).
    pub fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let seg = self
            .segments
            .get(&self.current)
            .ok_or_else(|| io::Error::other("no current segment"))?;
        self.attempted = self.attempted.max(self.written + self.buf.len() as u64);
        seg.file.write_all_at(&self.buf, self.written)?;
        self.written += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Makes everything written durable.
    pub fn sync(&mut self) -> io::Result<()> {
        if self.synced >= self.written {
            return Ok(());
        }
        if let Some(seg) = self.segments.get(&self.current) {
            seg.file.sync()?;
        }
        self.synced = self.written;
        Ok(())
    }

    /// The end of the log (everything appended), as an ordered position: segment in the high
    /// 32 bits, byte offset in the low.
    pub fn end(&self) -> u64 {
        (u64::from(self.current) << 32) | (self.written + self.buf.len() as u64)
    }

    /// What a sync of everything written so far must cover: the current segment's file and
    /// the position it brings the durable end to. (Older segments were synced when sealed.)
    pub fn sync_target(&self) -> Option<(Arc<dyn DiskFile>, u64)> {
        let seg = self.segments.get(&self.current)?;
        Some((
            seg.file.clone(),
            (u64::from(self.current) << 32) | self.written,
        ))
    }

    /// Another thread synced up to `end` (from [`Log::sync_target`]).
    pub fn note_synced(&mut self, end: u64) {
        if end >> 32 == u64::from(self.current) {
            self.synced = self.synced.max(end & 0xffff_ffff);
        }
    }

    /// The durable end, as an ordered position like [`Log::end`].
    pub fn synced_end(&self) -> u64 {
        (u64::from(self.current) << 32) | self.synced
    }

    /// After a failed batch: zeroes what may have reached the current segment since the last
    /// sync (in relaxed mode, since the last successful write, which was acknowledged), and
    /// syncs, so neither the disk nor the page cache holds records nobody was told about.
    pub fn scrub_unsynced(&mut self) -> io::Result<()> {
        self.buf.clear();
        let from = if self.strict {
            self.synced
        } else {
            self.written
        };
        if self.attempted > from {
            let seg = self
                .segments
                .get(&self.current)
                .ok_or_else(|| io::Error::other("no current segment"))?;
            let zeros = vec![0u8; (self.attempted - from) as usize];
            seg.file.write_all_at(&zeros, from)?;
            seg.file.sync()?;
        }
        self.written = from;
        self.synced = from;
        self.attempted = from;
        Ok(())
    }

    /// Whether records have been written but not synced.
    pub fn is_dirty(&self) -> bool {
        self.synced < self.written || !self.buf.is_empty()
    }

    /// Whether `bytes` more can be appended without creating a file: they fit in the current
    /// segment, or a next segment is in hand.
    pub fn has_room(&self, bytes: u64) -> bool {
        let used = self.written + self.buf.len() as u64;
        used + bytes <= self.segment_size || self.next.is_some()
    }

    /// Makes sure `bytes` more can be appended, setting a next segment aside if the current
    /// one has less room left. Fails, changing nothing, when the disk has no room for one:
    /// a write request calls this before it touches the state, so a full disk refuses writes
    /// one by one and the store stays in service for reads.
    pub fn ensure_room(&mut self, bytes: u64) -> io::Result<()> {
        // With segments as small as tests use, half a segment stands for "one request".
        if self.has_room(bytes.min(self.segment_size / 2)) {
            return Ok(());
        }
        if self.retry_next_at.is_some_and(|t| Instant::now() < t) {
            return Err(io::Error::from_raw_os_error(28)); // ENOSPC, as last time
        }
        match self.next_file() {
            Ok(p) => {
                self.next = Some(p);
                self.retry_next_at = None;
                Ok(())
            }
            Err(e) => {
                self.retry_next_at = Some(Instant::now() + RETRY_NEXT_AFTER);
                Err(e)
            }
        }
    }

    /// A file ready to become a segment: a prepared spare, else a new one allocated in full.
    fn next_file(&mut self) -> io::Result<PathBuf> {
        while let Some(spare) = self.spares.take() {
            match self.disk.open(&spare).and_then(|f| f.size()) {
                Ok(size) if size == self.segment_size => return Ok(spare),
                // A spare from a run with another segment size, or unreadable.
                _ => {
                    let _ = self.disk.remove(&spare);
                }
            }
        }
        let path = self
            .dir
            .join(format!("{SPARE}-{}-next.{SUFFIX}", std::process::id()));
        self.disk.create(&path, self.segment_size)?;
        Ok(path)
    }

    /// Seals the current segment (durably) and starts the next one.
    fn rotate(&mut self) -> io::Result<()> {
        debug_assert!(self.buf.is_empty());
        if !self.segments.is_empty() {
            self.sync()?;
        }
        let n = if self.segments.is_empty() {
            self.current.wrapping_add(1).max(1)
        } else {
            self.current + 1
        };
        let spare = match self.next.take() {
            Some(p) => p,
            None => self.next_file()?,
        };
        let path = segment_path(&self.dir, n);
        if let Err(e) = self.disk.rename(&spare, &path) {
            self.next = Some(spare);
            return Err(e);
        }
        let file = self.disk.open(&path)?;
        let header = encode_header(n, self.next_lsn, self.segment_size, self.strict);
        file.write_all_at(&header, 0)?;
        // The header is durable before any record goes in, so a damaged header later is damage,
        // not a rotation cut short.
        file.sync()?;
        self.segments.insert(
            n,
            Segment {
                file: file.into(),
                first_lsn: self.next_lsn,
            },
        );
        self.current = n;
        self.written = HEADER_LEN;
        self.synced = HEADER_LEN;
        self.attempted = HEADER_LEN;
        self.asked_spare = false;
        Ok(())
    }

    /// Segment numbers, oldest first.
    pub fn segment_numbers(&self) -> impl Iterator<Item = u32> + '_ {
        self.segments.keys().copied()
    }

    pub fn current_segment(&self) -> u32 {
        self.current
    }

    pub fn segment_size(&self) -> u64 {
        self.segment_size
    }

    /// Bytes of log on disk (whole segments).
    pub fn bytes_on_disk(&self) -> u64 {
        self.segments.len() as u64 * self.segment_size
    }

    /// Takes the oldest segment (which must not be the current one) out of the log. The file
    /// itself is dealt with by [`Retired::finish`], outside the store lock: renaming it and
    /// syncing the directory can take milliseconds.
    pub fn retire_oldest(&mut self) -> Option<Retired> {
        let (&n, _) = self.segments.iter().next()?;
        if n == self.current {
            return None;
        }
        self.segments.remove(&n);
        Some(Retired {
            path: segment_path(&self.dir, n),
            spare: self.dir.join(format!("{SPARE}-{n:010}.{SUFFIX}")),
            disk: self.disk.clone(),
            spares: self.spares.handle(),
        })
    }

    /// What [`SegmentReader::read`] needs to read a sealed segment outside the store lock.
    pub fn segment_reader(&self, n: u32) -> Option<SegmentReader> {
        let seg = self.segments.get(&n)?;
        (n != self.current).then(|| SegmentReader {
            n,
            file: seg.file.clone(),
            first_lsn: seg.first_lsn,
            size: self.segment_size,
        })
    }
}

/// A retired segment file, to recycle as a spare or remove.
pub struct Retired {
    path: PathBuf,
    spare: PathBuf,
    disk: Arc<dyn Disk>,
    spares: crate::spares::SparesHandle,
}

impl Retired {
    pub fn finish(self) -> io::Result<()> {
        if self.spares.has_room() {
            self.disk.rename(&self.path, &self.spare)?;
            self.spares.add(self.spare);
            Ok(())
        } else {
            self.disk.remove(&self.path)
        }
    }
}

pub struct SegmentReader {
    pub n: u32,
    file: Arc<dyn DiskFile>,
    first_lsn: u64,
    size: u64,
}

impl SegmentReader {
    /// Every valid record of the segment, with its position.
    pub fn read(&self) -> io::Result<Vec<(Pos, Vec<u8>)>> {
        let mut bytes = vec![0u8; self.size as usize];
        self.file.read_exact_at(&mut bytes, 0)?;
        let mut out = Vec::new();
        walk_records(&bytes, self.n, self.first_lsn, |pos, payload| {
            out.push((pos, payload.to_vec()));
            Ok::<_, io::Error>(())
        })?;
        Ok(out)
    }
}
