//! The registry of open connections: what each is doing and since when, so that at the cap the
//! idlest or slowest one can be shed to make room for a newcomer.
//!
//! Without a cap, a flood of connections that trickle one byte every few seconds takes every
//! file descriptor the process has and denies service to everyone else (1,074 such connections
//! did it with the default soft limit of 1,024). With the cap and shedding, a new client is
//! always admitted while anyone is only waiting: the connection that has waited longest in a
//! sheddable phase (idle between requests, reading a head or a body, writing a response) is
//! closed first. A connection whose request is inside the engine is never shed, so an
//! accepted write is never cut off half-way.
//!
//! Each connection updates its own slot with two atomic stores per phase change; the registry's
//! lock is taken only to admit and to drop a connection, and the scan for a victim runs only at
//! the cap.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// What a connection is doing, for the shedding decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Handshaking, or between requests on a kept-alive connection.
    Idle = 0,
    /// Reading a request head (or a TLS handshake).
    Head = 1,
    /// Reading a request body.
    Body = 2,
    /// The request is being served (in the engine); never shed.
    Handling = 3,
    /// Writing a response.
    Writing = 4,
}

impl Phase {
    fn from_u8(v: u8) -> Phase {
        match v {
            0 => Phase::Idle,
            1 => Phase::Head,
            2 => Phase::Body,
            3 => Phase::Handling,
            _ => Phase::Writing,
        }
    }
}

/// One connection's shared state.
#[derive(Debug)]
struct Slot {
    phase: AtomicU8,
    /// When the current phase began, in ms since the registry's epoch.
    since_ms: AtomicU64,
    /// Set once the registry chose this connection to close.
    shed: AtomicBool,
    wake: Notify,
}

#[derive(Debug)]
struct Inner {
    slots: HashMap<u64, Arc<Slot>>,
    next_id: u64,
    /// Slots told to close that have not closed yet: they no longer count against the cap.
    shedding: usize,
}

/// Every open connection of one listener (or of several sharing a cap).
#[derive(Debug)]
pub struct Registry {
    cap: usize,
    epoch: Instant,
    inner: Mutex<Inner>,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

impl Registry {
    pub fn new(cap: usize) -> Arc<Self> {
        Arc::new(Registry {
            cap: cap.max(1),
            epoch: Instant::now(),
            inner: Mutex::new(Inner {
                slots: HashMap::new(),
                next_id: 0,
                shedding: 0,
            }),
        })
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Connections open and not being shed.
    pub fn active(&self) -> usize {
        let inner = self.lock();
        inner.slots.len() - inner.shedding
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Admits a new connection, shedding the connection that has waited longest in a sheddable
    /// phase if the cap is reached. `Err(Full)` when every connection is busy in the engine.
    pub fn admit(self: &Arc<Self>) -> Result<Conn, Full> {
        let mut inner = self.lock();
        if inner.slots.len() - inner.shedding >= self.cap && !Self::shed_one(&mut inner) {
            return Err(Full);
        }
        let id = inner.next_id;
        inner.next_id += 1;
        let slot = Arc::new(Slot {
            phase: AtomicU8::new(Phase::Idle as u8),
            since_ms: AtomicU64::new(self.now_ms()),
            shed: AtomicBool::new(false),
            wake: Notify::new(),
        });
        inner.slots.insert(id, slot.clone());
        Ok(Conn {
            id,
            slot,
            registry: self.clone(),
        })
    }

    /// Sheds the connection that has waited longest in a sheddable phase, if any.
    pub fn shed_oldest(&self) -> bool {
        Self::shed_one(&mut self.lock())
    }

    fn shed_one(inner: &mut Inner) -> bool {
        match Self::oldest(inner, |p| p != Phase::Handling, u64::MAX) {
            Some(victim) => {
                Self::shed_slot(inner, &victim);
                true
            }
            None => false,
        }
    }

    /// Sheds the connection that has been writing one response the longest, if it has been at it
    /// for at least `min_age`: the slowest reader. Used when the response budget runs short.
    pub fn shed_slowest_writer(&self, min_age: Duration) -> bool {
        let mut inner = self.lock();
        let Some(before) = self.now_ms().checked_sub(min_age.as_millis() as u64) else {
            return false;
        };
        match Self::oldest(&inner, |p| p == Phase::Writing, before) {
            Some(victim) => {
                Self::shed_slot(&mut inner, &victim);
                true
            }
            None => false,
        }
    }

    /// The not-yet-shed slot in a matching phase that entered it earliest (and no later than
    /// `before_ms`).
    fn oldest(
        inner: &Inner,
        sheddable: impl Fn(Phase) -> bool,
        before_ms: u64,
    ) -> Option<Arc<Slot>> {
        inner
            .slots
            .values()
            .filter(|s| !s.shed.load(Ordering::Relaxed))
            .filter(|s| sheddable(Phase::from_u8(s.phase.load(Ordering::Relaxed))))
            .filter(|s| s.since_ms.load(Ordering::Relaxed) <= before_ms)
            .min_by_key(|s| s.since_ms.load(Ordering::Relaxed))
            .cloned()
    }

    fn shed_slot(inner: &mut Inner, slot: &Slot) {
        slot.shed.store(true, Ordering::Relaxed);
        inner.shedding += 1;
        // A stored permit: the connection sees it at its next wait even if it is not waiting now.
        slot.wake.notify_one();
    }
}

/// An admitted connection's handle: it reports its phase and learns when it is shed. Dropping
/// it takes the connection out of the registry.
#[derive(Debug)]
pub struct Conn {
    id: u64,
    slot: Arc<Slot>,
    registry: Arc<Registry>,
}

impl Conn {
    pub fn set_phase(&self, phase: Phase) {
        self.slot.phase.store(phase as u8, Ordering::Relaxed);
        self.slot
            .since_ms
            .store(self.registry.now_ms(), Ordering::Relaxed);
    }

    /// Resolves once the registry has chosen this connection to close.
    pub async fn shed(&self) {
        if self.slot.shed.load(Ordering::Relaxed) {
            return;
        }
        self.slot.wake.notified().await;
    }

    pub fn is_shed(&self) -> bool {
        self.slot.shed.load(Ordering::Relaxed)
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        let mut inner = self.registry.lock();
        if inner.slots.remove(&self.id).is_some() && self.slot.shed.load(Ordering::Relaxed) {
            inner.shedding -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn at_the_cap_the_longest_waiting_sheddable_connection_goes_first() {
        let r = Registry::new(3);
        let busy = r.admit().expect("room");
        busy.set_phase(Phase::Handling);
        let slowloris = r.admit().expect("room");
        slowloris.set_phase(Phase::Head);
        tokio::time::sleep(Duration::from_millis(5)).await;
        let idle = r.admit().expect("room");
        idle.set_phase(Phase::Idle);

        let newcomer = r.admit().expect("someone is sheddable");
        assert!(slowloris.is_shed(), "the oldest waiting connection is shed");
        assert!(!busy.is_shed() && !idle.is_shed());
        tokio::time::timeout(Duration::from_secs(1), slowloris.shed())
            .await
            .expect("a shed connection learns it");
        assert_eq!(r.active(), 3);
        drop(slowloris);
        assert_eq!(r.active(), 3);

        // Every remaining connection busy in the engine: nobody can be shed.
        idle.set_phase(Phase::Handling);
        newcomer.set_phase(Phase::Handling);
        assert_eq!(r.admit().err(), Some(Full));
    }

    #[tokio::test]
    async fn only_writers_older_than_the_threshold_are_shed_for_the_budget() {
        let r = Registry::new(10);
        let w = r.admit().expect("room");
        w.set_phase(Phase::Writing);
        assert!(!r.shed_slowest_writer(Duration::from_secs(60)));
        assert!(r.shed_slowest_writer(Duration::ZERO));
        assert!(w.is_shed());
    }
}
