//! Requests sent together: several statements on one connection cost one round trip when
//! each is sent before the first answer is awaited (tokio-postgres pipelines them), and the
//! server runs them in the order they were sent.
//!
//! The order matters here: a transaction sends `BEGIN`, the entity's row lock and the loads
//! that must only read once the lock is held, all at once; then its writes and `COMMIT`. A
//! plain `join!` of the requests does not promise an order, so [`together`] polls each in
//! turn: a tokio-postgres request is sent on its first poll. The statements must be prepared
//! beforehand, or a request's first poll would send its `Parse` instead.
//!
//! A connection left inside a transaction must not go back to the pool: [`Open`] holds it
//! while the transaction runs and takes it out of the pool (closing it, which rolls the
//! transaction back) unless the transaction ended.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use deadpool_postgres::Object;
use futures_util::future::{maybe_done, MaybeDone};

/// One request on the wire.
pub type Request<'a, T> =
    Pin<Box<dyn Future<Output = Result<T, tokio_postgres::Error>> + Send + 'a>>;

/// Sends `requests` in their order, then waits for every answer; answers in the same order.
pub async fn together<T>(requests: Vec<Request<'_, T>>) -> Vec<Result<T, tokio_postgres::Error>> {
    let mut slots: Vec<MaybeDone<Request<'_, T>>> = requests.into_iter().map(maybe_done).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for slot in &mut slots {
            done &= Pin::new(slot).poll(cx).is_ready();
        }
        if done {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    // Every slot is done here, so each gives its answer.
    slots
        .iter_mut()
        .filter_map(|slot| Pin::new(slot).take_output())
        .collect()
}

/// A pooled connection inside a transaction.
pub struct Open {
    client: Option<Object>,
}

impl Open {
    pub fn new(client: Object) -> Open {
        Open {
            client: Some(client),
        }
    }

    pub fn client(&self) -> &Object {
        self.client
            .as_ref()
            .expect("an open transaction has its connection")
    }

    /// The transaction ended (committed or rolled back): the connection may be reused.
    pub fn ended(mut self) {
        drop(self.client.take());
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            drop(Object::take(client));
        }
    }
}
