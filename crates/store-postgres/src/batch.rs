//! Group commit per entity: calls on one entity that arrive while its transaction runs
//! wait, and the next transaction serves all of them.
//!
//! Every call on an entity locks the entity's row, so one transaction at a time runs per
//! entity however many nodes there are, and a transaction costs a commit flush. Taking every
//! waiting call into the next transaction (the rows all of them need loaded once, each call
//! applied in arrival order by the state machine, the changes written and committed once)
//! turns N flushes into one, as the embedded store's group commit does. A batch that fails
//! fails every call in it: none is answered as done unless its transaction committed.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use hematite_engine::{QueueRef, StoreError};
use tokio::sync::oneshot;

use crate::entity::{self, Load, Loaded};
use crate::{unavailable, Db};

/// The most calls one transaction serves.
const MAX_BATCH: usize = 256;

type Output = Box<dyn Any + Send>;
type Apply = Box<dyn FnOnce(&mut Loaded) -> Output + Send>;
type Reply = oneshot::Sender<Result<Option<Output>, StoreError>>;

struct Call {
    load: Load,
    apply: Apply,
    reply: Reply,
}

/// The calls waiting per entity; an entity is listed while a worker serves it.
#[derive(Default)]
pub struct Batches(Mutex<HashMap<(String, String), Vec<Call>>>);

impl Batches {
    fn lock(&self) -> MutexGuard<'_, HashMap<(String, String), Vec<Call>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Takes the entity off the list if its worker ends without doing so (a panic in a call),
/// so the next call starts a new worker instead of waiting for none; the calls it held are
/// dropped, which their callers see as an error.
struct Serving {
    db: Arc<Db>,
    key: (String, String),
    done: bool,
}

impl Drop for Serving {
    fn drop(&mut self) {
        if !self.done {
            self.db.batches.lock().remove(&self.key);
        }
    }
}

impl Db {
    /// One call on one entity, served in the entity's next transaction: its row locked,
    /// `load`'s messages run through `f` after the calls before it, the changes written.
    /// `None` if the entity does not exist.
    pub(crate) async fn on_entity<T: Send + 'static>(
        self: &Arc<Db>,
        q: QueueRef<'_>,
        load: Load,
        f: impl FnOnce(&mut Loaded) -> T + Send + 'static,
    ) -> Result<Option<T>, StoreError> {
        let (reply, answer) = oneshot::channel();
        let call = Call {
            load,
            apply: Box::new(move |l| Box::new(f(l)) as Output),
            reply,
        };
        let key = (q.account.to_owned(), q.queue.to_owned());
        let start = {
            let mut batches = self.batches.lock();
            match batches.get_mut(&key) {
                Some(waiting) => {
                    waiting.push(call);
                    false
                }
                None => {
                    batches.insert(key.clone(), vec![call]);
                    true
                }
            }
        };
        if start {
            tokio::spawn(serve(self.clone(), key));
        }
        let out = answer
            .await
            .map_err(|_| unavailable("the call's transaction was abandoned"))??;
        Ok(match out {
            None => None,
            Some(out) => Some(
                *out.downcast::<T>()
                    .map_err(|_| unavailable("a call's answer had the wrong type"))?,
            ),
        })
    }
}

/// Serves an entity's waiting calls, batch after batch, until none waits.
async fn serve(db: Arc<Db>, key: (String, String)) {
    let mut serving = Serving {
        db: db.clone(),
        key: key.clone(),
        done: false,
    };
    loop {
        let calls: Vec<Call> = {
            let mut batches = db.batches.lock();
            let Some(waiting) = batches.get_mut(&key) else {
                serving.done = true;
                return;
            };
            if waiting.is_empty() {
                batches.remove(&key);
                serving.done = true;
                return;
            }
            let n = waiting.len().min(MAX_BATCH);
            waiting.drain(..n).collect()
        };
        run(&db, QueueRef::new(&key.0, &key.1), calls).await;
    }
}

/// One transaction for `calls`; every call is answered with its own result or the batch's
/// error.
async fn run(db: &Db, q: QueueRef<'_>, calls: Vec<Call>) {
    let mut loads = Vec::with_capacity(calls.len());
    let mut applies = Vec::with_capacity(calls.len());
    let mut replies = Vec::with_capacity(calls.len());
    for c in calls {
        loads.push(c.load);
        applies.push(c.apply);
        replies.push(c.reply);
    }
    match transaction(db, q, &loads, applies).await {
        Ok(Some((outs, available))) => {
            for (reply, out) in replies.into_iter().zip(outs) {
                let _ = reply.send(Ok(Some(out)));
            }
            // After the answers: other nodes' receivers are told, this batch's callers
            // do not wait for it.
            if available {
                if let Ok(client) = db.pool.get().await {
                    crate::notify::announce(&client, db.node, q).await;
                }
            }
        }
        Ok(None) => {
            for reply in replies {
                let _ = reply.send(Ok(None));
            }
        }
        Err(e) => {
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}

async fn transaction(
    db: &Db,
    q: QueueRef<'_>,
    loads: &[Load],
    applies: Vec<Apply>,
) -> Result<Option<(Vec<Output>, bool)>, StoreError> {
    let mut client = db.pool.get().await.map_err(unavailable)?;
    let tx = client.transaction().await.map_err(unavailable)?;
    let Some((head, next_seq)) = entity::lock(&tx, q).await.map_err(unavailable)? else {
        return Ok(None);
    };
    let mut loaded = Loaded::new(&tx, head, next_seq, loads)
        .await
        .map_err(unavailable)?;
    let outs = applies
        .into_iter()
        .map(|apply| apply(&mut loaded))
        .collect();
    let available = loaded.save(&tx).await.map_err(unavailable)?;
    tx.commit().await.map_err(unavailable)?;
    Ok(Some((outs, available)))
}
