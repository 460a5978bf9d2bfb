//! Bytes a peer has sent that are held in memory: messages being assembled from their frames,
//! and whole messages handed to the service and not yet dropped by it.
//!
//! Link credit bounds a link (credit × max-message-size), but a connection may open a thousand
//! links and a process serves many connections, so credit alone does not bound memory: a peer
//! trickling a partial 256 KB message on each of 1,024 links holds 256 MiB. Every such byte is
//! therefore counted twice, against its connection and against the process, and a connection
//! stops reading while either is over its limit. Nothing waits for the peer to free bytes: the
//! service releases them as it stores and settles, and a peer holding partial messages without
//! finishing them stalls only its own connection, until the idle timeout closes it.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// What a connection may always hold, whatever the process holds: the process's bound is its
/// limit plus this much per connection (whose number the listener caps).
pub const FLOOR: usize = 1 << 20;

/// The process-wide count of held inbound bytes and its limit.
#[derive(Debug)]
pub struct InboundBudget {
    held: AtomicUsize,
    limit: usize,
}

impl InboundBudget {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(InboundBudget {
            held: AtomicUsize::new(0),
            limit,
        })
    }

    /// Bytes held now, across connections.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    fn over(&self) -> bool {
        self.held() >= self.limit
    }
}

/// One connection's count, beside the process's.
#[derive(Debug, Clone)]
pub(crate) struct Meter {
    connection: Arc<AtomicUsize>,
    process: Arc<InboundBudget>,
}

impl Meter {
    pub fn new(process: Arc<InboundBudget>) -> Self {
        Meter {
            connection: Arc::new(AtomicUsize::new(0)),
            process,
        }
    }

    /// A meter with a budget of its own and no limit (tests, fuzzing).
    pub fn unbounded() -> Self {
        Meter::new(InboundBudget::new(usize::MAX))
    }

    /// Bytes this connection holds.
    pub fn held(&self) -> usize {
        self.connection.load(Ordering::Relaxed)
    }

    /// Whether the connection may read more: under its own limit, and under the process's
    /// unless it holds less than [`FLOOR`]. The floor keeps one peer's unfinished messages
    /// from stopping every connection when the process is at its limit.
    pub fn may_read(&self, per_connection: usize) -> bool {
        let held = self.held();
        held < per_connection && (held < FLOOR || !self.process.over())
    }

    pub fn hold(&self, n: usize) -> Held {
        let mut held = Held {
            meter: self.clone(),
            n: 0,
        };
        held.set(n);
        held
    }
}

/// Bytes counted until this is dropped.
pub(crate) struct Held {
    meter: Meter,
    n: usize,
}

impl Held {
    /// Counts `n` bytes instead of what was counted before.
    pub fn set(&mut self, n: usize) {
        if n >= self.n {
            let more = n - self.n;
            self.meter.connection.fetch_add(more, Ordering::Relaxed);
            self.meter.process.held.fetch_add(more, Ordering::Relaxed);
        } else {
            let less = self.n - n;
            self.meter.connection.fetch_sub(less, Ordering::Relaxed);
            self.meter.process.held.fetch_sub(less, Ordering::Relaxed);
        }
        self.n = n;
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.set(0);
    }
}

impl fmt::Debug for Held {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Held({})", self.n)
    }
}

/// A delivery's share of the count, released when the service drops the delivery (and
/// every clone of it).
#[derive(Clone, Default)]
pub struct HeldBytes(pub(crate) Option<Arc<Held>>);

impl fmt::Debug for HeldBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(h) => h.fmt(f),
            None => f.write_str("Held(0)"),
        }
    }
}

/// Deliveries compare by what they carry, not by their accounting.
impl PartialEq for HeldBytes {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for HeldBytes {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_count_against_both_until_dropped() {
        let process = InboundBudget::new(100);
        let a = Meter::new(process.clone());
        let b = Meter::new(process.clone());
        let mut x = a.hold(30);
        let y = b.hold(50);
        assert_eq!((a.held(), b.held(), process.held()), (30, 50, 80));
        assert!(a.may_read(40) && !b.may_read(40));
        x.set(FLOOR + 60);
        assert!(!a.may_read(usize::MAX), "the process is over its limit");
        assert!(
            b.may_read(usize::MAX),
            "b holds less than the floor: it goes on"
        );
        drop(x);
        drop(y);
        assert_eq!((a.held(), b.held(), process.held()), (0, 0, 0));
    }
}
