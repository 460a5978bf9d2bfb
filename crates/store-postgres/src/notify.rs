//! Waking other nodes' waiting receivers: after a transaction that made a message available
//! commits, one `NOTIFY` on the `hematite` channel names the queue; every node listens on a
//! session of its own and wakes its receivers for that queue.
//!
//! The announcement is its own transaction, after the data's commit, with
//! `synchronous_commit` off: a `NOTIFY` inside the data's transaction takes a global lock at
//! commit, which serialises every node's commits, and a lost announcement only leaves a
//! receiver to its periodic look. A node ignores its own announcements (it woke its
//! receivers itself) and, after its listening session breaks, connects again after half a
//! second, waiting up to 30 s while connects keep failing ([`crate::reconnect`]); receivers
//! look again on their own meanwhile.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use hematite_engine::store::LeaseRules;
use hematite_engine::QueueRef;
use tokio_postgres::{AsyncMessage, NoTls};

use crate::reconnect::Backoff;
use crate::Db;

const CHANNEL: &str = "hematite";

/// A queue name as a SQL string literal.
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Whether receivers wait for `rules`' entities to have a message: Service Bus receivers
/// do (a link's credit waits for messages); Azure Queue Storage has no waiting receive, so
/// nothing listens for its puts and they are not announced.
pub(crate) fn waited_on(rules: &LeaseRules) -> bool {
    rules.locks()
}

/// The entities whose announcement is being sent, each with whether another was asked for
/// meanwhile.
#[derive(Default)]
pub(crate) struct Announcements(Mutex<HashMap<(String, String), bool>>);

impl Announcements {
    fn lock(&self) -> MutexGuard<'_, HashMap<(String, String), bool>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Announces, in a task of its own, that `q` has a message available. One announcement per
/// entity is on the way at a time: one asked for meanwhile is sent after it, once however
/// many were asked for, since a receiver woken by it reads everything committed by then.
pub(crate) fn announce(db: &Arc<Db>, q: QueueRef<'_>) {
    let key = (q.account.to_owned(), q.queue.to_owned());
    {
        let mut on_the_way = db.announcements.lock();
        if let Some(again) = on_the_way.get_mut(&key) {
            *again = true;
            return;
        }
        on_the_way.insert(key.clone(), false);
    }
    let db = db.clone();
    tokio::spawn(async move {
        loop {
            if let Ok(client) = db.client().await {
                send(&client, db.node, QueueRef::new(&key.0, &key.1)).await;
            }
            let mut on_the_way = db.announcements.lock();
            match on_the_way.get_mut(&key) {
                Some(again) if *again => *again = false,
                _ => {
                    on_the_way.remove(&key);
                    return;
                }
            }
        }
    });
}

/// Sends one announcement; failures are logged, not raised: the data is committed, and
/// receivers elsewhere look again on their own.
async fn send(client: &deadpool_postgres::Client, node: u64, q: QueueRef<'_>) {
    let payload = format!("{node}\t{}\t{}", q.account, q.queue);
    let sql = format!(
        "BEGIN; SET LOCAL synchronous_commit = off; SELECT pg_notify('{CHANNEL}', {}); COMMIT",
        literal(&payload)
    );
    if let Err(e) = client.batch_execute(&sql).await {
        tracing::debug!(error = %e, "announcing a message to other nodes failed");
    }
}

type OnChange = Arc<dyn Fn(&str, &str) + Send + Sync>;

/// Listens for other nodes' announcements while the store lives.
pub(crate) fn listen(db: &Arc<Db>, runtime: &tokio::runtime::Handle, changed: OnChange) {
    let weak = Arc::downgrade(db);
    runtime.spawn(async move {
        // Receivers poll meanwhile, so the wait may grow longer than the calls' own.
        let backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        loop {
            let Some((config, node)) = weak.upgrade().map(|db| (db.config.clone(), db.node)) else {
                return;
            };
            if let Err(e) = session(&config, node, &changed, &weak, &backoff).await {
                tracing::warn!(error = %e, "listening for other nodes' messages failed; connecting again");
            }
            backoff.failed(Instant::now());
            if let Some(wait) = backoff.left(Instant::now()) {
                tokio::time::sleep(wait).await;
            }
        }
    });
}

/// One listening session, until it breaks or the store is gone.
async fn session(
    config: &tokio_postgres::Config,
    node: u64,
    changed: &OnChange,
    alive: &Weak<Db>,
    backoff: &Backoff,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    // The connection carries both the LISTEN's answer and the notifications, so it is
    // polled while the LISTEN runs.
    let mut messages = stream::poll_fn(move |cx| connection.poll_message(cx));
    let listen_sql = format!("LISTEN {CHANNEL}");
    let listen = client.batch_execute(&listen_sql);
    tokio::pin!(listen);
    let mut listening = false;
    loop {
        tokio::select! {
            done = &mut listen, if !listening => {
                done?;
                listening = true;
                backoff.succeeded();
            }
            message = messages.next() => match message {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    let mut parts = n.payload().splitn(3, '\t');
                    if let (Some(from), Some(account), Some(queue)) = (parts.next(), parts.next(), parts.next()) {
                        if from != node.to_string() {
                            changed(account, queue);
                        }
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            },
            _ = tokio::time::sleep(Duration::from_secs(5)) => {
                if alive.strong_count() == 0 {
                    return Ok(());
                }
            }
        }
    }
}
