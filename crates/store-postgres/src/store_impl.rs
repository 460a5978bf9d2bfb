//! The [`Store`] contract on PostgreSQL: calls that change messages go through
//! the entity batches (`batch.rs`); the others are single statements.

use super::*;

impl Store for PostgresStore {
    fn create_queue<'a>(
        &'a self,
        q: QueueRef<'a>,
        metadata: &'a Metadata,
        settings: QueueSettings,
    ) -> StoreFuture<'a, CreateOutcome> {
        let q = Q::new(q);
        let metadata = codec::metadata_array(metadata);
        self.spawn(move |db| async move {
            let r = codec::rule_columns(&settings.rules);
            let client = db.client().await?;
            let created = client
                .execute(
                    "INSERT INTO entities (account, name, counting, lapsed_settles, \
                         max_deliveries, on_expiry, metadata) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                    &[
                        &q.account,
                        &q.queue,
                        &r.counting,
                        &r.lapsed_settles,
                        &r.max_deliveries,
                        &r.on_expiry,
                        &metadata,
                    ],
                )
                .await
                .map_err(unavailable)?;
            if created == 1 {
                return Ok(CreateOutcome::Created);
            }
            let row = client
                .query_opt(
                    "SELECT metadata FROM entities WHERE account = $1 AND name = $2",
                    &[&q.account, &q.queue],
                )
                .await
                .map_err(unavailable)?;
            // Deleted between the two statements: as good as created by someone else.
            Ok(CreateOutcome::Existing(
                row.map(|r| codec::metadata(r.get(0))).unwrap_or_default(),
            ))
        })
    }

    fn delete_queue<'a>(&'a self, q: QueueRef<'a>) -> StoreFuture<'a, bool> {
        let q = Q::new(q);
        self.spawn(move |db| async move {
            let client = db.client().await?;
            let n = client
                .execute(
                    "DELETE FROM entities WHERE account = $1 AND name = $2",
                    &[&q.account, &q.queue],
                )
                .await
                .map_err(unavailable)?;
            Ok(n > 0)
        })
    }

    fn list_queues<'a>(
        &'a self,
        account: &'a str,
        prefix: &'a str,
        start_at: Option<&'a str>,
        limit: usize,
    ) -> StoreFuture<'a, Vec<QueueSummary>> {
        let from = match start_at {
            Some(s) if s > prefix => s,
            _ => prefix,
        }
        .to_owned();
        let (account, prefix) = (account.to_owned(), prefix.to_owned());
        self.spawn(move |db| async move {
            let client = db.client().await?;
            let rows = client
                .query(
                    "SELECT name, metadata FROM entities \
                     WHERE account = $1 AND name >= $2 AND starts_with(name, $3) \
                     ORDER BY name LIMIT $4",
                    &[
                        &account,
                        &from,
                        &prefix,
                        &(limit.min(i64::MAX as usize) as i64),
                    ],
                )
                .await
                .map_err(unavailable)?;
            Ok(rows
                .iter()
                .map(|r| QueueSummary {
                    name: r.get(0),
                    metadata: codec::metadata(r.get(1)),
                })
                .collect())
        })
    }

    fn queue_info<'a>(
        &'a self,
        q: QueueRef<'a>,
        now: Timestamp,
    ) -> StoreFuture<'a, Option<QueueInfo>> {
        let q = Q::new(q);
        self.spawn(move |db| async move {
            let client = db.client().await?;
            let Some(row) = client
                .query_opt(
                    "SELECT sid, metadata, on_expiry FROM entities \
                     WHERE account = $1 AND name = $2",
                    &[&q.account, &q.queue],
                )
                .await
                .map_err(unavailable)?
            else {
                return Ok(None);
            };
            let sid: i64 = row.get(0);
            // Expired messages that dead-letter wait for housekeeping and still count, as
            // in the other stores; those that are deleted are gone already.
            let counts_expired = row.get::<_, i16>(2) == 1;
            let counts = client
                .query_one(
                    "SELECT count(*) FILTER (WHERE sub = 0 AND ($3 OR expires_at > $2)), \
                            count(*) FILTER (WHERE sub = 0 AND state = 4 AND ($3 OR expires_at > $2)), \
                            count(*) FILTER (WHERE sub = 1), \
                            coalesce(sum(size), 0)::int8 \
                     FROM messages WHERE sid = $1",
                    &[&sid, &now.as_millis(), &counts_expired],
                )
                .await
                .map_err(unavailable)?;
            Ok(Some(QueueInfo {
                metadata: codec::metadata(row.get(1)),
                message_count: counts.get::<_, i64>(0) as u64,
                scheduled_count: counts.get::<_, i64>(1) as u64,
                dead_letter_count: counts.get::<_, i64>(2) as u64,
                // Summed, not the entity's counter: an Azure queue's deletes do not keep
                // that counter (they do not take the entity's lock, see claim.rs).
                size_bytes: counts.get::<_, i64>(3).max(0) as u64,
            }))
        })
    }

    fn set_metadata<'a>(&'a self, q: QueueRef<'a>, metadata: Metadata) -> StoreFuture<'a, bool> {
        let q = Q::new(q);
        self.spawn(move |db| async move {
            let flat = codec::metadata_array(&metadata);
            db.set_column(
                q.r(),
                "UPDATE entities SET metadata = $3 WHERE account = $1 AND name = $2",
                &flat,
            )
            .await
        })
    }

    fn swap_metadata<'a>(
        &'a self,
        q: QueueRef<'a>,
        expected: Metadata,
        metadata: Metadata,
    ) -> StoreFuture<'a, Option<bool>> {
        let q = Q::new(q);
        self.spawn(move |db| async move {
            let (old, new) = (
                codec::metadata_array(&expected),
                codec::metadata_array(&metadata),
            );
            let client = db.client().await?;
            let row = client
                .query_opt(
                    "WITH e AS (SELECT sid, metadata = $3 AS same FROM entities \
                         WHERE account = $1 AND name = $2 FOR UPDATE), \
                     u AS (UPDATE entities SET metadata = $4 FROM e \
                         WHERE entities.sid = e.sid AND e.same) \
                     SELECT same FROM e",
                    &[&q.account, &q.queue, &old, &new],
                )
                .await
                .map_err(unavailable)?;
            Ok(row.map(|r| r.get::<_, bool>(0)))
        })
    }

    fn set_rules<'a>(&'a self, q: QueueRef<'a>, rules: LeaseRules) -> StoreFuture<'a, bool> {
        let q = Q::new(q);
        self.spawn(move |db| async move {
            let r = codec::rule_columns(&rules);
            let client = db.client().await?;
            let n = client
                .execute(
                    "UPDATE entities SET counting = $3, lapsed_settles = $4, \
                         max_deliveries = $5, on_expiry = $6 \
                     WHERE account = $1 AND name = $2",
                    &[
                        &q.account,
                        &q.queue,
                        &r.counting,
                        &r.lapsed_settles,
                        &r.max_deliveries,
                        &r.on_expiry,
                    ],
                )
                .await
                .map_err(unavailable)?;
            Ok(n > 0)
        })
    }

    fn access_policies<'a>(
        &'a self,
        q: QueueRef<'a>,
    ) -> StoreFuture<'a, Option<Vec<AccessPolicy>>> {
        let q = Q::new(q);
        self.spawn(move |db| async move {
            let client = db.client().await?;
            let row = client
                .query_opt(
                    "SELECT policies FROM entities WHERE account = $1 AND name = $2",
                    &[&q.account, &q.queue],
                )
                .await
                .map_err(unavailable)?;
            Ok(row.map(|r| codec::policies(&r.get::<_, serde_json::Value>(0))))
        })
    }

    fn set_access_policies<'a>(
        &'a self,
        q: QueueRef<'a>,
        policies: Vec<AccessPolicy>,
    ) -> StoreFuture<'a, bool> {
        let q = Q::new(q);
        self.spawn(move |db| async move {
            let json = codec::policies_json(&policies);
            db.set_column(
                q.r(),
                "UPDATE entities SET policies = $3 WHERE account = $1 AND name = $2",
                &json,
            )
            .await
        })
    }

    fn put_message<'a>(
        &'a self,
        q: QueueRef<'a>,
        message: NewMessage,
    ) -> StoreFuture<'a, Option<Message>> {
        let q = Q::new(q);
        self.spawn(move |db| async move {
            let put = vec![Enqueue {
                message,
                scheduled: false,
            }];
            match db.put(q.r(), put, u64::MAX).await? {
                None => Ok(None),
                Some(Enqueued::Stored(stored)) => Ok(stored.into_iter().next()),
                Some(Enqueued::Full { .. }) => Err(unavailable("a queue without a bound was full")),
            }
        })
    }

    fn receive<'a>(
        &'a self,
        q: QueueRef<'a>,
        now: Timestamp,
        grant: LeaseGrant,
    ) -> StoreFuture<'a, Option<Vec<Message>>> {
        let q = Q::new(q);
        self.spawn(move |db| async move { db.receive(q.r(), now, grant).await })
    }

    fn peek<'a>(
        &'a self,
        q: QueueRef<'a>,
        now: Timestamp,
        max: usize,
    ) -> StoreFuture<'a, Option<Vec<Message>>> {
        let q = Q::new(q);
        self.spawn(move |db| async move {
            let mut client = db.client().await?;
            let tx = client.transaction().await.map_err(unavailable)?;
            let Some(sid) = Db::sid(&tx, q.r()).await.map_err(unavailable)? else {
                return Ok(None);
            };
            let rows = tx
                .query(
                    &format!(
                        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE sid = $1 AND sub = 0 \
                         AND state <> 1 AND visible_at <= $2 AND expires_at > $2 \
                         ORDER BY visible_at, seq LIMIT $3"
                    ),
                    &[&sid, &now.as_millis(), &(max as i64)],
                )
                .await
                .map_err(unavailable)?;
            tx.commit().await.map_err(unavailable)?;
            Ok(Some(rows.iter().map(|r| codec::message(r).1).collect()))
        })
    }

    fn delete_message<'a>(
        &'a self,
        q: QueueRef<'a>,
        id: MessageId,
        receipt: PopReceipt,
        now: Timestamp,
    ) -> StoreFuture<'a, ReceiptOutcome<()>> {
        let q = Q::new(q);
        self.spawn(move |db| async move {
            let done = db.delete(q.r(), id, receipt, now).await?;
            Ok(match done {
                None => ReceiptOutcome::QueueNotFound,
                Some(Ok(_)) => ReceiptOutcome::Done(()),
                Some(Err(e)) => ReceiptOutcome::Rejected(e),
            })
        })
    }

    fn update_message<'a>(
        &'a self,
        q: QueueRef<'a>,
        id: MessageId,
        receipt: PopReceipt,
        now: Timestamp,
        update: MessageUpdate,
    ) -> StoreFuture<'a, ReceiptOutcome<Message>> {
        let q = Q::new(q);
        self.spawn(move |db| async move {
            let done = db
                .on_entity(q.r(), Load::ById(id), move |l| {
                    l.entity.main.update(id, receipt, now, update)
                })
                .await?;
            Ok(match done {
                None => ReceiptOutcome::QueueNotFound,
                Some(Ok(m)) => ReceiptOutcome::Done(m),
                Some(Err(e)) => ReceiptOutcome::Rejected(e),
            })
        })
    }

    fn clear_messages<'a>(&'a self, q: QueueRef<'a>) -> StoreFuture<'a, bool> {
        let q = Q::new(q);
        self.spawn(move |db| async move {
            let mut client = db.client().await?;
            let tx = client.transaction().await.map_err(unavailable)?;
            let Some(_) = entity::lock(&tx, q.r()).await.map_err(unavailable)? else {
                return Ok(false);
            };
            tx.execute(
                "DELETE FROM messages WHERE sid = \
                 (SELECT sid FROM entities WHERE account = $1 AND name = $2)",
                &[&q.account, &q.queue],
            )
            .await
            .map_err(unavailable)?;
            tx.execute(
                "UPDATE entities SET bytes = 0 WHERE account = $1 AND name = $2",
                &[&q.account, &q.queue],
            )
            .await
            .map_err(unavailable)?;
            tx.commit().await.map_err(unavailable)?;
            Ok(true)
        })
    }

    fn account_document<'a>(
        &'a self,
        account: &'a str,
        key: &'a str,
    ) -> StoreFuture<'a, Option<Vec<u8>>> {
        let (account, key) = (account.to_owned(), key.to_owned());
        self.spawn(move |db| async move {
            let client = db.client().await?;
            let row = client
                .query_opt(
                    "SELECT value FROM account_documents WHERE account = $1 AND key = $2",
                    &[&account, &key],
                )
                .await
                .map_err(unavailable)?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    fn swap_account_document<'a>(
        &'a self,
        account: &'a str,
        key: &'a str,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
    ) -> StoreFuture<'a, bool> {
        let (account, key) = (account.to_owned(), key.to_owned());
        self.spawn(move |db| async move {
            let client = db.client().await?;
            // The row's own value is the version: the write lands only on what was read.
            let written = match &expected {
                None => {
                    client
                        .execute(
                            "INSERT INTO account_documents (account, key, value) \
                             VALUES ($1, $2, $3) ON CONFLICT (account, key) DO NOTHING",
                            &[&account, &key, &value],
                        )
                        .await
                }
                Some(old) => {
                    client
                        .execute(
                            "UPDATE account_documents SET value = $4 \
                             WHERE account = $1 AND key = $2 AND value = $3",
                            &[&account, &key, old, &value],
                        )
                        .await
                }
            };
            Ok(written.map_err(unavailable)? == 1)
        })
    }

    fn enqueue<'a>(
        &'a self,
        q: QueueRef<'a>,
        batch: Vec<Enqueue>,
        max_bytes: u64,
    ) -> StoreFuture<'a, Option<Enqueued>> {
        let q = Q::new(q);
        self.spawn(move |db| async move { db.put(q.r(), batch, max_bytes).await })
    }

    fn lock<'a>(
        &'a self,
        q: QueueRef<'a>,
        sub: SubQueue,
        now: Timestamp,
        grant: LeaseGrant,
    ) -> StoreFuture<'a, Option<Vec<Message>>> {
        let q = Q::new(q);
        self.spawn(move |db| async move {
            let load = Load::Head {
                sub,
                n: grant.receipts.len(),
                now,
            };
            db.on_entity(q.r(), load, move |l| l.entity.lock(sub, now, &grant).0)
                .await
        })
    }

    fn take<'a>(
        &'a self,
        q: QueueRef<'a>,
        sub: SubQueue,
        now: Timestamp,
        max: usize,
    ) -> StoreFuture<'a, Option<Vec<Message>>> {
        let q = Q::new(q);
        self.spawn(move |db| async move {
            let load = Load::Head { sub, n: max, now };
            db.on_entity(q.r(), load, move |l| l.entity.take(sub, now, max).0)
                .await
        })
    }

    fn settle<'a>(
        &'a self,
        q: QueueRef<'a>,
        sub: SubQueue,
        token: PopReceipt,
        now: Timestamp,
        how: Settlement,
    ) -> StoreFuture<'a, Option<Result<Settled, SettleError>>> {
        let q = Q::new(q);
        self.spawn(move |db| async move {
            let load = Load::ByReceipt {
                sub,
                receipt: token,
            };
            db.on_entity(q.r(), load, move |l| {
                l.entity.settle(sub, token, now, how).map(|(s, _)| s)
            })
            .await
        })
    }

    fn browse<'a>(
        &'a self,
        q: QueueRef<'a>,
        sub: SubQueue,
        from: u64,
        max: usize,
        now: Timestamp,
    ) -> StoreFuture<'a, Option<Vec<Message>>> {
        let q = Q::new(q);
        self.spawn(move |db| async move {
            let mut client = db.client().await?;
            let tx = client.transaction().await.map_err(unavailable)?;
            let Some(sid) = Db::sid(&tx, q.r()).await.map_err(unavailable)? else {
                return Ok(None);
            };
            let rows = tx
                .query(
                    &format!(
                        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE sid = $1 AND sub = $2 \
                         AND seq >= $3 AND expires_at > $4 ORDER BY seq LIMIT $5"
                    ),
                    &[
                        &sid,
                        &sub_code(sub),
                        &(from.min(i64::MAX as u64) as i64),
                        &now.as_millis(),
                        &(max as i64),
                    ],
                )
                .await
                .map_err(unavailable)?;
            tx.commit().await.map_err(unavailable)?;
            Ok(Some(rows.iter().map(|r| codec::message(r).1).collect()))
        })
    }

    fn lock_deferred<'a>(
        &'a self,
        q: QueueRef<'a>,
        sub: SubQueue,
        sequences: Vec<u64>,
        now: Timestamp,
        grant: LeaseGrant,
    ) -> StoreFuture<'a, Option<Vec<Message>>> {
        let q = Q::new(q);
        self.spawn(move |db| async move {
            let load = Load::BySequence {
                sub,
                seqs: sequences.clone(),
            };
            db.on_entity(q.r(), load, move |l| {
                l.entity
                    .queue_mut(sub)
                    .lock_deferred(&sequences, now, &grant)
            })
            .await
        })
    }

    fn cancel_scheduled<'a>(
        &'a self,
        q: QueueRef<'a>,
        sequences: Vec<u64>,
        now: Timestamp,
    ) -> StoreFuture<'a, Option<Vec<u64>>> {
        let q = Q::new(q);
        self.spawn(move |db| async move {
            let load = Load::BySequence {
                sub: SubQueue::Main,
                seqs: sequences.clone(),
            };
            db.on_entity(q.r(), load, move |l| {
                sequences
                    .iter()
                    .copied()
                    .filter(|s| l.entity.main.cancel_scheduled(*s, now).is_some())
                    .collect()
            })
            .await
        })
    }

    fn housekeep(&self, now: Timestamp, budget: usize) -> StoreFuture<'_, usize> {
        self.spawn(move |db| async move {
            // The entities with something due: lapsed locks, or expired messages.
            let due: Vec<(String, String)> = {
                let client = db.client().await?;
                client
                    .query(
                        "SELECT e.account, e.name FROM entities e WHERE EXISTS \
                         (SELECT 1 FROM messages m WHERE m.sid = e.sid AND m.expires_at <= $1) \
                         OR EXISTS (SELECT 1 FROM messages m WHERE m.sid = e.sid \
                          AND m.state IN (3, 5) AND m.visible_at <= $1)",
                        &[&now.as_millis()],
                    )
                    .await
                    .map_err(unavailable)?
                    .iter()
                    .map(|r| (r.get(0), r.get(1)))
                    .collect()
            };
            let mut changed = 0;
            for (account, name) in &due {
                let q = QueueRef::new(account, name);
                let load = Load::Housekeeping { now, budget };
                changed += db
                    .on_entity(q, load, move |l| {
                        let c = l.entity.housekeep(now, budget);
                        c.upserted.len() + c.removed.len()
                    })
                    .await?
                    .unwrap_or(0);
            }
            Ok(changed)
        })
    }
}
