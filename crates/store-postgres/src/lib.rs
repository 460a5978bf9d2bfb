//! The PostgreSQL store: several stateless Hematite nodes share one database.
//!
//! Every call is one transaction on a pooled connection, answered only after `COMMIT`
//! returned with `synchronous_commit = on`, so an acknowledged write is as durable as the
//! database makes it; a call whose transaction fails is answered with an error, never a
//! success. Calls on one entity are ordered by a lock on its row ([`entity`]), which keeps
//! sequence numbers gap-free in commit order and makes every ownership check (receipt, lock
//! token, state) hold against what other nodes committed. The messages a call touches are
//! loaded, run through the engine's own state machine and written back, so this store
//! shares its semantics with the others and the conformance suite pins them.
//!
//! Times are the caller's; nodes sharing a database take them from [`DbClock`], so that
//! their wall clocks need not agree. The schema and its migrations are in [`schema`]. Calls on one
//! entity that arrive together share one transaction ([`batch`]).

mod batch;
mod claim;
pub mod clock;
mod codec;
mod entity;
mod notify;
mod pipeline;
mod put;
mod reconnect;
pub mod schema;

pub use clock::DbClock;

use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod};
use hematite_engine::model::NewMessage;
use hematite_engine::store::{
    CreateOutcome, Enqueue, Enqueued, LeaseGrant, LeaseRules, MessageUpdate, QueueSettings,
    ReceiptOutcome, SettleError, Settled, Settlement, Store, StoreError, StoreErrorKind,
    StoreFuture, SubQueue,
};
use hematite_engine::{
    AccessPolicy, Message, MessageId, Metadata, PopReceipt, QueueInfo, QueueRef, QueueSummary,
    Timestamp,
};
use tokio_postgres::{NoTls, Transaction};

use crate::codec::{sub_code, MESSAGE_COLUMNS};
use crate::entity::Load;

/// Connections each node keeps to the database.
const POOL_SIZE: usize = 16;

/// The first and the longest wait before connecting again after a failed connect.
const RECONNECT_FLOOR: Duration = Duration::from_millis(50);
const RECONNECT_CEILING: Duration = Duration::from_secs(5);

/// The store: a pool of connections, used from tasks on the runtime it was opened on.
///
/// Each call runs as a task of its own on that runtime, so a caller may poll the call's
/// future from any thread or executor (the conformance suite races two plain threads), and a
/// caller that stops waiting does not cut a transaction short.
pub struct PostgresStore {
    db: Arc<Db>,
    runtime: tokio::runtime::Handle,
}

struct Db {
    pool: Pool,
    batches: batch::Batches,
    announcements: notify::Announcements,
    /// This store's id among the nodes, so that it ignores its own announcements.
    node: u64,
    /// Where to connect the listening session.
    config: tokio_postgres::Config,
    /// Connecting again after the database refused a connection ([`reconnect`]).
    backoff: reconnect::Backoff,
}

/// A queue's name, owned, for a call's task.
struct Q {
    account: String,
    queue: String,
}

impl Q {
    fn new(q: QueueRef<'_>) -> Q {
        Q {
            account: q.account.to_owned(),
            queue: q.queue.to_owned(),
        }
    }

    fn r(&self) -> QueueRef<'_> {
        QueueRef::new(&self.account, &self.queue)
    }
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::new(StoreErrorKind::Unavailable, format!("PostgreSQL: {e}"))
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host:port/database`) and brings the
    /// schema up to date.
    pub async fn open(url: &str) -> Result<PostgresStore, StoreError> {
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
            StoreError::new(StoreErrorKind::Other, format!("the PostgreSQL URL: {e}"))
        })?;
        // Acknowledged means durable, whatever the server's default; a stuck statement or
        // transaction is ended by the server rather than holding rows.
        config.options(
            "-c synchronous_commit=on -c statement_timeout=30000 \
             -c idle_in_transaction_session_timeout=60000",
        );
        config.application_name("hematite");
        // A database that vanished from the network is noticed in seconds, not at the TCP
        // timeouts' minutes: connects give up after 5 s, and idle pooled connections are
        // probed from 30 s on.
        config
            .connect_timeout(Duration::from_secs(5))
            .keepalives_idle(Duration::from_secs(30))
            .keepalives_interval(Duration::from_secs(10))
            .keepalives_retries(3);
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .build()
            .map_err(unavailable)?;
        let db = Db {
            pool,
            batches: batch::Batches::default(),
            announcements: notify::Announcements::default(),
            node: rand_node_id(),
            config,
            backoff: reconnect::Backoff::new(RECONNECT_FLOOR, RECONNECT_CEILING),
        };
        db.migrate().await?;
        Ok(PostgresStore {
            db: Arc::new(db),
            runtime: tokio::runtime::Handle::current(),
        })
    }

    /// Calls `changed(account, queue)` whenever another node makes a message available on a
    /// queue (to wake this node's waiting receivers), until the store is dropped.
    pub fn on_remote_change(&self, changed: impl Fn(&str, &str) + Send + Sync + 'static) {
        notify::listen(&self.db, &self.runtime, std::sync::Arc::new(changed));
    }

    /// Another handle on the same pool and runtime (for the clock's refresher).
    fn clone_handle(&self) -> PostgresStore {
        PostgresStore {
            db: self.db.clone(),
            runtime: self.runtime.clone(),
        }
    }

    fn runtime(&self) -> &tokio::runtime::Handle {
        &self.runtime
    }

    /// Runs a call as a task on the store's runtime.
    fn spawn<'a, T, Fut>(&'a self, f: impl FnOnce(Arc<Db>) -> Fut) -> StoreFuture<'a, T>
    where
        T: Send + 'static,
        Fut: std::future::Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let call = f(self.db.clone());
        let runtime = self.runtime.clone();
        Box::pin(async move {
            runtime.spawn(call).await.map_err(|e| {
                StoreError::new(StoreErrorKind::Other, format!("a store call failed: {e}"))
            })?
        })
    }
}

impl Db {
    /// A pooled connection, or an error straight away while the node waits to connect again
    /// after a failed connect ([`reconnect`]).
    async fn client(&self) -> Result<deadpool_postgres::Client, StoreError> {
        if let Some(left) = self.backoff.left(Instant::now()) {
            return Err(unavailable(format!(
                "the database refused a connection; trying again in {} ms",
                left.as_millis()
            )));
        }
        match self.pool.get().await {
            Ok(client) => {
                self.backoff.succeeded();
                Ok(client)
            }
            Err(e) => {
                if matches!(e, PoolError::Backend(_) | PoolError::Timeout(_)) {
                    self.backoff.failed(Instant::now());
                }
                Err(unavailable(e))
            }
        }
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(unavailable)?;
        // One node at a time; the lock ends with the transaction.
        tx.execute("SELECT pg_advisory_xact_lock(7254123301)", &[])
            .await
            .map_err(unavailable)?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)")
            .await
            .map_err(unavailable)?;
        let done: i64 = tx
            .query_one("SELECT count(*) FROM schema_version", &[])
            .await
            .map_err(unavailable)?
            .get(0);
        for (i, sql) in schema::MIGRATIONS.iter().enumerate().skip(done as usize) {
            tx.batch_execute(sql).await.map_err(unavailable)?;
            tx.execute("INSERT INTO schema_version VALUES ($1)", &[&(i as i32 + 1)])
                .await
                .map_err(unavailable)?;
        }
        tx.commit().await.map_err(unavailable)
    }

    async fn sid(
        tx: &Transaction<'_>,
        q: QueueRef<'_>,
    ) -> Result<Option<i64>, tokio_postgres::Error> {
        Ok(tx
            .query_opt(
                "SELECT sid FROM entities WHERE account = $1 AND name = $2",
                &[&q.account, &q.queue],
            )
            .await?
            .map(|r| r.get(0)))
    }

    /// Sets one column of an entity's row; `false` if there is no such entity.
    async fn set_column(
        &self,
        q: QueueRef<'_>,
        sql: &'static str,
        value: &(dyn tokio_postgres::types::ToSql + Sync),
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute(sql, &[&q.account, &q.queue, value])
            .await
            .map_err(unavailable)?;
        Ok(n > 0)
    }
}

mod store_impl;

/// A node id: random, so two nodes started together differ.
fn rand_node_id() -> u64 {
    uuid::Uuid::new_v4().as_u64_pair().0
}
