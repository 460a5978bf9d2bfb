//! Reconnecting with backoff.
//!
//! While the database refuses connections, a busy node would otherwise try to connect once
//! per call (thousands of attempts a second), and a database coming back would meet every
//! node's whole crowd at once. After a failed connect a node waits, the wait doubling from
//! a floor to a ceiling, and meanwhile answers calls that need a new connection with an
//! error straight away (503 on the wire, so clients retry). The first connect that works
//! ends the wait.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long to wait before connecting again.
pub(crate) struct Backoff {
    floor: Duration,
    ceiling: Duration,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Failed attempts in a row, each counted once per wait.
    failures: u32,
    /// No attempt before this.
    until: Option<Instant>,
}

impl Backoff {
    pub(crate) fn new(floor: Duration, ceiling: Duration) -> Backoff {
        Backoff {
            floor,
            ceiling,
            state: Mutex::new(State::default()),
        }
    }

    /// How long before the next attempt may be made, if it may not be made now.
    pub(crate) fn left(&self, now: Instant) -> Option<Duration> {
        let until = self.lock().until?;
        (until > now).then(|| until - now)
    }

    /// An attempt failed. Calls that were already trying when the database went away all
    /// fail together; only the first of them lengthens the wait.
    pub(crate) fn failed(&self, now: Instant) {
        let mut s = self.lock();
        if s.until.is_some_and(|until| until > now) {
            return;
        }
        s.failures = s.failures.saturating_add(1);
        let doublings = (s.failures - 1).min(16);
        let wait = self.floor.saturating_mul(1 << doublings).min(self.ceiling);
        s.until = Some(now + wait);
    }

    /// An attempt worked: the next failure starts again from the floor.
    pub(crate) fn succeeded(&self) {
        let mut s = self.lock();
        if s.failures != 0 || s.until.is_some() {
            *s = State::default();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is two plain fields, valid whatever a panicking holder did.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn waits_double_up_to_the_ceiling_and_a_success_resets_them() {
        let b = Backoff::new(50 * MS, 400 * MS);
        let t0 = Instant::now();
        assert_eq!(b.left(t0), None, "no wait before any failure");
        let mut now = t0;
        let mut waits = Vec::new();
        for _ in 0..6 {
            b.failed(now);
            let wait = b.left(now).expect("a failure starts a wait");
            waits.push(wait.as_millis());
            now += wait;
            assert_eq!(b.left(now), None, "the wait is over at its end");
        }
        assert_eq!(waits, [50, 100, 200, 400, 400, 400]);
        b.succeeded();
        b.failed(now);
        assert_eq!(b.left(now), Some(50 * MS));
    }

    #[test]
    fn failures_during_a_wait_do_not_lengthen_it() {
        // Sixteen pooled calls fail at once when the database goes away; counted one by one
        // they would push the first wait straight to the ceiling.
        let b = Backoff::new(50 * MS, 5000 * MS);
        let now = Instant::now();
        for _ in 0..16 {
            b.failed(now);
        }
        assert_eq!(b.left(now), Some(50 * MS));
        b.failed(now + 50 * MS);
        assert_eq!(b.left(now + 50 * MS), Some(100 * MS));
    }
}
