//! The machine's limits that listener defaults are derived from: the file-descriptor limit
//! (raised from its soft to its hard value at start, as nginx's `worker_rlimit_nofile` would)
//! and physical memory.

use rustix::process::{getrlimit, setrlimit, Resource};

/// Descriptors kept for everything but client connections: listeners, store segments, the log
/// directory, spare files, DNS and the like.
pub const RESERVED_FDS: u64 = 256;
/// Memory allowed per connection when deriving the cap: the read side's worst case (a 64 KiB
/// head and a 128 KiB body) with room for the task, the socket and a TLS session.
pub const MEMORY_PER_CONNECTION: u64 = 512 * 1024;

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns the soft limit now in force.
pub fn raise_nofile_limit() -> u64 {
    let current = getrlimit(Resource::Nofile);
    let (soft, hard) = (current.current, current.maximum);
    if let (Some(s), h) = (soft, hard) {
        if h.is_none_or(|h| h > s) {
            let target = h.unwrap_or(1 << 20);
            let mut raised = current;
            raised.current = Some(target);
            match setrlimit(Resource::Nofile, raised) {
                Ok(()) => return target,
                Err(e) => tracing::warn!(error = %e, soft = s, "cannot raise the open-file limit"),
            }
        }
    }
    soft.unwrap_or(1 << 20)
}

/// Physical memory in bytes (Linux `/proc/meminfo`), if known.
pub fn total_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The default connection cap: what the descriptor limit leaves after [`RESERVED_FDS`], and
/// no more than memory allows at [`MEMORY_PER_CONNECTION`] each.
pub fn default_connection_cap(nofile: u64, memory: Option<u64>) -> usize {
    let by_fds = nofile.saturating_sub(RESERVED_FDS).max(16);
    let by_memory = memory.map_or(u64::MAX, |m| (m / MEMORY_PER_CONNECTION).max(16));
    usize::try_from(by_fds.min(by_memory)).unwrap_or(usize::MAX)
}

/// The default response budget: a sixteenth of memory, between 64 MiB and 1 GiB. A hundred
/// clients taking the largest answer at once (2.8 MB each) fit in 280 MB.
pub fn default_response_budget(memory: Option<u64>) -> usize {
    let m = memory.unwrap_or(4 << 30) / 16;
    usize::try_from(m.clamp(64 << 20, 1 << 30)).unwrap_or(64 << 20)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_follows_descriptors_and_memory() {
        assert_eq!(default_connection_cap(1024, None), 768);
        assert_eq!(default_connection_cap(1 << 20, Some(24 << 30)), 49_152);
        assert_eq!(default_connection_cap(10, Some(1 << 20)), 16);
        assert_eq!(default_response_budget(Some(24 << 30)), 1 << 30);
        assert_eq!(default_response_budget(Some(4 << 30)), 256 << 20);
        assert_eq!(default_response_budget(Some(256 << 20)), 64 << 20);
    }

    #[test]
    fn the_limit_is_raised_to_the_hard_one() {
        let now = raise_nofile_limit();
        let after = getrlimit(Resource::Nofile);
        assert_eq!(after.current, Some(now));
        assert!(after.maximum.is_none_or(|h| h == now));
    }
}
