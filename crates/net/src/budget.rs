//! The process-wide budget of response bytes held in memory.
//!
//! A Peek or Get of 32 messages of 64 KiB answers about 2.8 MB, a List Queues with metadata up
//! to 40 MB. Such a response lives in memory until the client has read it, and a client can
//! read slowly on purpose: 300 connections holding two large answers each took a server from
//! 0.16 GB to 1.21 GB. Per-connection limits cannot bound that (the connection cap times any
//! useful per-response size is still too much), so the bytes are bounded here, across all
//! connections: a handler reserves the most its response can take before producing it, keeps
//! what it actually took until the response is written, and waits when the budget is spent.
//! While it waits, connections that have been writing one response for a long time (the
//! slowest readers) are shed, so a handful of them cannot starve everyone else; if the budget
//! still has no room after [`WAIT`], the caller answers "server busy", which clients retry.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::conns::Registry;

/// How long a response waits for room before the request is refused.
pub const WAIT: Duration = Duration::from_secs(5);
/// A connection writing one response for this long is a slow reader, shed under pressure.
pub const SLOW_WRITER: Duration = Duration::from_secs(10);
/// Responses this small are not counted: they are written at once in the common case, and
/// their count is bounded by the connection cap.
pub const SMALL: usize = 64 * 1024;
const UNIT: usize = 1024;

#[derive(Debug)]
pub struct Budget {
    sem: Arc<Semaphore>,
    units: usize,
    registry: Option<Arc<Registry>>,
}

/// Bytes held for one response; given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    permit: Option<OwnedSemaphorePermit>,
}

fn units(bytes: usize) -> usize {
    bytes.div_ceil(UNIT)
}

impl Budget {
    /// A budget of `bytes`; `registry` names the connections that may be shed under pressure.
    pub fn new(bytes: usize, registry: Option<Arc<Registry>>) -> Arc<Self> {
        let units = units(bytes).clamp(1, Semaphore::MAX_PERMITS);
        Arc::new(Budget {
            sem: Arc::new(Semaphore::new(units)),
            units,
            registry,
        })
    }

    /// Bytes not reserved right now.
    pub fn available(&self) -> usize {
        self.sem.available_permits() * UNIT
    }

    pub fn total(&self) -> usize {
        self.units * UNIT
    }

    /// Reserves up to `bytes` (at most the whole budget) for a response about to be produced.
    /// `None` when no room was found within [`WAIT`].
    pub async fn reserve(&self, bytes: usize) -> Option<Reservation> {
        if bytes <= SMALL {
            return Some(Reservation { permit: None });
        }
        let want = u32::try_from(units(bytes).min(self.units)).unwrap_or(u32::MAX);
        if let Ok(p) = self.sem.clone().try_acquire_many_owned(want) {
            return Some(Reservation { permit: Some(p) });
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        let acquire = self.sem.clone().acquire_many_owned(want);
        tokio::pin!(acquire);
        loop {
            if let Some(r) = &self.registry {
                r.shed_slowest_writer(SLOW_WRITER);
            }
            let tick = tokio::time::Instant::now() + Duration::from_millis(250);
            tokio::select! {
                p = &mut acquire => return p.ok().map(|p| Reservation { permit: Some(p) }),
                _ = tokio::time::sleep_until(tick.min(deadline)) => {
                    if tokio::time::Instant::now() >= deadline {
                        return None;
                    }
                }
            }
        }
    }
}

impl Reservation {
    /// Grows the reservation to `bytes` if the budget has room right now, without waiting.
    pub fn try_grow(&mut self, bytes: usize, budget: &Budget) -> bool {
        if bytes <= SMALL {
            return true;
        }
        let have = self.permit.as_ref().map_or(0, |p| p.num_permits());
        let want = units(bytes).min(budget.units);
        if want <= have {
            return true;
        }
        let Ok(extra) = budget
            .sem
            .clone()
            .try_acquire_many_owned(u32::try_from(want - have).unwrap_or(u32::MAX))
        else {
            return false;
        };
        match &mut self.permit {
            Some(p) => p.merge(extra),
            None => self.permit = Some(extra),
        }
        true
    }

    /// Keeps only what the produced response takes.
    pub fn shrink_to(&mut self, bytes: usize) {
        if bytes <= SMALL {
            self.permit = None;
            return;
        }
        if let Some(p) = &mut self.permit {
            let keep = units(bytes);
            if p.num_permits() > keep {
                drop(p.split(p.num_permits() - keep));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reservations_wait_for_room_and_give_back_what_they_do_not_use() {
        let b = Budget::new(1 << 20, None);
        let mut big = b.reserve(900 << 10).await.expect("room");
        assert_eq!(b.available(), 124 << 10);
        big.shrink_to(100 << 10);
        assert_eq!(b.available(), 924 << 10);
        let small = b.reserve(10).await.expect("small responses are free");
        drop(small);
        let mut grown = b.reserve(100 << 10).await.expect("room");
        assert!(grown.try_grow(200 << 10, &b));
        assert_eq!(b.available(), 724 << 10);
        assert!(!grown.try_grow(2 << 20, &b), "no room: nothing taken");
        assert_eq!(b.available(), 724 << 10);
        drop(grown);
        assert_eq!(b.available(), 924 << 10);
        // More than the whole budget is clamped to it: it proceeds once everything is back.
        let waiter = {
            let b = b.clone();
            tokio::spawn(async move { b.reserve(4 << 20).await.is_some() })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished());
        drop(big);
        assert!(waiter.await.expect("join"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_spent_budget_refuses_after_the_wait() {
        let b = Budget::new(256 << 10, None);
        let _all = b.reserve(256 << 10).await.expect("room");
        assert!(b.reserve(128 << 10).await.is_none());
    }
}
