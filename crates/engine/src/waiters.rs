//! Receivers waiting for a queue to have something for them.
//!
//! A Service Bus receiver holds credit and waits for messages, so a send, an abandon or a
//! release must reach it at once rather than at its next poll. Each queue someone waits on
//! has a [`Notify`]; the engine wakes it after every change that can make a message
//! available. Only changes made through this node's engine are seen: changes that come due
//! by time (a scheduled message, a lapsed lock) and other nodes' sends are found by the
//! receiver's own periodic look, which it still needs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::Notify;

use crate::model::QueueRef;

#[derive(Default)]
pub struct Waiters {
    queues: Mutex<HashMap<(String, String), Weak<Notify>>>,
}

impl Waiters {
    /// The signal for `q`, woken whenever a message may have become available there.
    pub fn watch(&self, q: QueueRef<'_>) -> Arc<Notify> {
        let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        let key = (q.account.to_owned(), q.queue.to_owned());
        if let Some(n) = queues.get(&key).and_then(Weak::upgrade) {
            return n;
        }
        // Forget queues nobody waits on any more, so the map tracks live receivers only.
        queues.retain(|_, w| w.strong_count() > 0);
        let n = Arc::new(Notify::new());
        queues.insert(key, Arc::downgrade(&n));
        n
    }

    pub fn wake(&self, q: QueueRef<'_>) {
        let queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        let key = (q.account.to_owned(), q.queue.to_owned());
        if let Some(n) = queues.get(&key).and_then(Weak::upgrade) {
            n.notify_waiters();
        }
    }

    pub fn wake_all(&self) {
        let queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        for n in queues.values().filter_map(Weak::upgrade) {
            n.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;

    fn q(name: &str) -> QueueRef<'_> {
        QueueRef {
            account: "a",
            queue: name,
        }
    }

    #[test]
    fn a_wake_reaches_the_waiters_of_that_queue_only() {
        let w = Waiters::default();
        let a = w.watch(q("a"));
        let b = w.watch(q("b"));
        let mut woken_a = std::pin::pin!(a.notified());
        let mut woken_b = std::pin::pin!(b.notified());
        woken_a.as_mut().enable();
        woken_b.as_mut().enable();
        w.wake(q("a"));
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        assert!(woken_a.as_mut().poll(&mut cx).is_ready());
        assert!(woken_b.as_mut().poll(&mut cx).is_pending());
    }

    #[test]
    fn queues_nobody_watches_are_forgotten() {
        let w = Waiters::default();
        drop(w.watch(q("gone")));
        let _kept = w.watch(q("kept"));
        assert_eq!(w.queues.lock().expect("lock").len(), 1);
    }
}
