//! How much CPU the hypervisor took from this machine while the run was measured.
//!
//! On a virtual machine the host can stop a vCPU for milliseconds at a time. Linux counts that
//! as "steal" in `/proc/stat`. On the shared 2-core VM the benchmarks run on, the worst
//! latency episodes of paced runs (p99 tails of 10–30 ms) coincided with steal, and with
//! fsyncs slowed down by the same host. Every process on the machine stalls together then:
//! the server, the load generator and nginx alike. So the bench samples steal every 100 ms of
//! the measured window, and reports the total and the worst sample, so a report can tell a tail
//! the machine made from one the server made.
//!
//! Linux only: elsewhere, or where `/proc/stat` has no steal column, the figures are absent.

use std::time::{Duration, Instant};

/// How often steal is sampled: short enough to see a burst, long enough for the kernel's
/// 10 ms ticks to add up to something.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// `/proc/stat` counts in USER_HZ ticks, 100 per second on every Linux architecture Rust
/// supports (the kernel fixes it for the ABI, whatever its internal HZ).
const MS_PER_TICK: f64 = 10.0;

/// The first (all-CPU) line of `/proc/stat`, in ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTimes {
    pub steal: u64,
    pub idle: u64,
    /// user + nice + system + idle + iowait + irq + softirq + steal.
    pub total: u64,
}

impl CpuTimes {
    /// Parses the `cpu` line of `/proc/stat`; `None` for anything else, or one too old to
    /// count steal (before Linux 2.6.11).
    pub fn parse(stat: &str) -> Option<CpuTimes> {
        let line = stat.lines().next()?;
        let mut fields = line.split_ascii_whitespace();
        if fields.next()? != "cpu" {
            return None;
        }
        let ticks: Vec<u64> = fields
            .take(8)
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?;
        if ticks.len() < 8 {
            return None;
        }
        Some(CpuTimes {
            steal: ticks[7],
            idle: ticks[3] + ticks[4],
            total: ticks.iter().sum(),
        })
    }

    fn read() -> Option<CpuTimes> {
        CpuTimes::parse(&std::fs::read_to_string("/proc/stat").ok()?)
    }
}

/// What the machine did over the measured window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HostReport {
    /// CPU time stolen, summed over all CPUs.
    pub steal_ms: f64,
    /// The most stolen in one sample ([`SAMPLE_EVERY`]), summed over all CPUs.
    pub worst_steal_ms: f64,
    /// Share of all CPU time that was idle (or waiting for I/O).
    pub idle_pct: f64,
}

/// Accumulates samples taken in order.
#[derive(Debug, Default)]
pub struct Steal {
    first: Option<CpuTimes>,
    last: Option<CpuTimes>,
    worst: u64,
}

impl Steal {
    pub fn add(&mut self, now: CpuTimes) {
        if let Some(last) = self.last {
            self.worst = self.worst.max(now.steal.saturating_sub(last.steal));
        }
        self.first.get_or_insert(now);
        self.last = Some(now);
    }

    /// `None` with fewer than two samples.
    pub fn report(&self) -> Option<HostReport> {
        let (first, last) = (self.first?, self.last?);
        let total = last.total.checked_sub(first.total).filter(|t| *t > 0)?;
        Some(HostReport {
            steal_ms: last.steal.saturating_sub(first.steal) as f64 * MS_PER_TICK,
            worst_steal_ms: self.worst as f64 * MS_PER_TICK,
            idle_pct: last.idle.saturating_sub(first.idle) as f64 * 100.0 / total as f64,
        })
    }
}

/// Samples from `from` until `done()` says the run is over.
pub async fn sample(from: Instant, done: impl Fn() -> bool) -> Option<HostReport> {
    tokio::time::sleep_until(from.into()).await;
    let mut steal = Steal::default();
    steal.add(CpuTimes::read()?);
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.tick().await;
    while !done() {
        tick.tick().await;
        steal.add(CpuTimes::read()?);
    }
    steal.report()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn times(steal: u64, idle: u64, total: u64) -> CpuTimes {
        CpuTimes { steal, idle, total }
    }

    #[test]
    fn parses_the_all_cpu_line() {
        let stat = "cpu  1792622 0 819575 4310963 170280 0 224676 47458 0 0\n\
                    cpu0 954814 0 360461 2235140 19552 0 110339 21129 0 0\n";
        assert_eq!(
            CpuTimes::parse(stat),
            Some(CpuTimes {
                steal: 47458,
                idle: 4310963 + 170280,
                total: 1792622 + 819575 + 4310963 + 170280 + 224676 + 47458,
            })
        );
        assert_eq!(CpuTimes::parse("cpu0 1 2 3 4 5 6 7 8\n"), None);
        assert_eq!(
            CpuTimes::parse("cpu  1 2 3 4 5 6 7\n"),
            None,
            "no steal column"
        );
    }

    #[test]
    fn reports_the_total_and_the_worst_sample() {
        let mut s = Steal::default();
        assert_eq!(s.report(), None);
        s.add(times(100, 50, 1000));
        assert_eq!(s.report(), None, "one sample spans no time");
        s.add(times(101, 60, 1020));
        s.add(times(105, 65, 1040));
        s.add(times(105, 75, 1060));
        let r = s.report().expect("three intervals");
        assert_eq!(r.steal_ms, 50.0);
        assert_eq!(r.worst_steal_ms, 40.0);
        assert_eq!(r.idle_pct, 25.0 * 100.0 / 60.0);
    }
}
