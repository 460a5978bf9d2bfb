//! One store call on one entity, as one transaction: lock the entity's row, load the
//! messages the call can touch, run the engine's own state machine ([`Entity`]) on them,
//! and write back what changed.
//!
//! The row lock orders every call on an entity across nodes, so sequence numbers are
//! gap-free in commit order and no two calls lease one message. The state machine is the
//! one the other stores run, so the semantics are written once; this module only decides
//! which rows a call needs and turns the difference into statements.

use std::collections::BTreeMap;

use deadpool_postgres::Transaction;
use hematite_engine::index::Entity;
use hematite_engine::store::{LeaseRules, SubQueue};
use hematite_engine::{Message, MessageId, PopReceipt, QueueRef, Timestamp};
use tokio_postgres::types::ToSql;

use crate::codec::{self, sub_code, uuid, MESSAGE_COLUMNS};

/// Expired messages a walking call takes along (deleting or dead-lettering them), at most.
const EXPIRED_PER_CALL: i64 = 256;

/// Which messages a call needs.
#[derive(Clone)]
pub enum Load {
    Nothing,
    /// The head of `sub` in receive order (enough for `n` picks past lapsed locks and
    /// dead-letter moves), and expired messages.
    Head {
        sub: SubQueue,
        n: usize,
        now: Timestamp,
    },
    ById(MessageId),
    ByReceipt {
        sub: SubQueue,
        receipt: PopReceipt,
    },
    BySequence {
        sub: SubQueue,
        seqs: Vec<u64>,
    },
    /// Lapsed locks and expired messages, up to `budget` of each per sub-queue.
    Housekeeping {
        now: Timestamp,
        budget: usize,
    },
}

/// The entity's row, as locked.
pub struct Head {
    pub sid: i64,
    pub bytes: i64,
    pub rules: LeaseRules,
}

/// Locks the entity's row; `None` if it does not exist.
pub async fn lock(
    tx: &Transaction<'_>,
    q: QueueRef<'_>,
) -> Result<Option<(Head, i64)>, tokio_postgres::Error> {
    let lock = tx
        .prepare_cached(
            "SELECT sid, next_seq, bytes, counting, lapsed_settles, max_deliveries, on_expiry \
             FROM entities WHERE account = $1 AND name = $2 FOR UPDATE",
        )
        .await?;
    let row = tx.query_opt(&lock, &[&q.account, &q.queue]).await?;
    Ok(row.map(|r| {
        (
            Head {
                sid: r.get(0),
                bytes: r.get(2),
                rules: codec::rules(r.get(3), r.get(4), r.get(5), r.get(6)),
            },
            r.get::<_, i64>(1),
        )
    }))
}

/// The rows the calls of a batch need, each once: heads of one sub-queue merged (their
/// counts added, the latest `now`), ids, tokens and sequence numbers each in one statement.
async fn rows(
    tx: &Transaction<'_>,
    sid: i64,
    loads: &[Load],
) -> Result<Vec<(SubQueue, Message)>, tokio_postgres::Error> {
    let select =
        |cond: &str| format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE sid = $1 AND {cond}");
    let mut out = Vec::new();
    for sub in [SubQueue::Main, SubQueue::DeadLetter] {
        let heads = loads.iter().filter_map(|l| match l {
            Load::Head { sub: s, n, now } if *s == sub => Some((*n, *now)),
            _ => None,
        });
        let (n, now) = heads.fold((0usize, None), |(n, at), (k, t)| {
            (
                n.saturating_add(k),
                Some(at.map_or(t, |a: Timestamp| a.max(t))),
            )
        });
        if let Some(now) = now {
            let limit = (n as i64).saturating_mul(2).saturating_add(16);
            let now = now.as_millis();
            let (head_sql, expired_sql) = (
                select(
                    "sub = $2 AND state <> 1 AND visible_at <= $3 AND expires_at > $3 \
                     ORDER BY visible_at, seq LIMIT $4",
                ),
                select("sub = $2 AND expires_at <= $3 LIMIT $4"),
            );
            let (head, expired) = tokio::try_join!(
                tx.prepare_cached(&head_sql),
                tx.prepare_cached(&expired_sql),
            )?;
            let code = sub_code(sub);
            let head_params: [&(dyn ToSql + Sync); 4] = [&sid, &code, &now, &limit];
            let expired_params: [&(dyn ToSql + Sync); 4] = [&sid, &code, &now, &EXPIRED_PER_CALL];
            // Sent together: one round trip.
            let (rows, gone) = tokio::try_join!(
                tx.query(&head, &head_params),
                tx.query(&expired, &expired_params),
            )?;
            out.extend(rows.iter().chain(&gone).map(codec::message));
        }
        let receipts: Vec<uuid::Uuid> = loads
            .iter()
            .filter_map(|l| match l {
                Load::ByReceipt { sub: s, receipt } if *s == sub => Some(uuid(receipt.0)),
                _ => None,
            })
            .collect();
        if !receipts.is_empty() {
            let sql = select("sub = $2 AND receipt = ANY($3)");
            let rows = tx
                .query(
                    &tx.prepare_cached(&sql).await?,
                    &[&sid, &sub_code(sub), &receipts],
                )
                .await?;
            out.extend(rows.iter().map(codec::message));
        }
        let seqs: Vec<i64> = loads
            .iter()
            .filter_map(|l| match l {
                Load::BySequence { sub: s, seqs } if *s == sub => Some(seqs),
                _ => None,
            })
            .flatten()
            .map(|s| *s as i64)
            .collect();
        if !seqs.is_empty() {
            let sql = select("sub = $2 AND seq = ANY($3)");
            let rows = tx
                .query(
                    &tx.prepare_cached(&sql).await?,
                    &[&sid, &sub_code(sub), &seqs],
                )
                .await?;
            out.extend(rows.iter().map(codec::message));
        }
    }
    let ids: Vec<uuid::Uuid> = loads
        .iter()
        .filter_map(|l| match l {
            Load::ById(id) => Some(uuid(id.0)),
            _ => None,
        })
        .collect();
    if !ids.is_empty() {
        let rows = tx
            .query(
                &tx.prepare_cached(&select("id = ANY($2)")).await?,
                &[&sid, &ids],
            )
            .await?;
        out.extend(rows.iter().map(codec::message));
    }
    for l in loads {
        if let Load::Housekeeping { now, budget } = l {
            let now = now.as_millis();
            let budget = *budget as i64;
            // Locks (states 3 and 5) that have lapsed, and expired messages.
            let sql = select("state IN (3, 5) AND visible_at <= $2 LIMIT $3");
            let rows = tx
                .query(&tx.prepare_cached(&sql).await?, &[&sid, &now, &budget])
                .await?;
            out.extend(rows.iter().map(codec::message));
            let sql =
                select("expires_at <= $2 AND NOT (state IN (3, 5) AND visible_at <= $2) LIMIT $3");
            let rows = tx
                .query(&tx.prepare_cached(&sql).await?, &[&sid, &now, &budget])
                .await?;
            out.extend(rows.iter().map(codec::message));
        }
    }
    Ok(out)
}

/// The loaded part of an entity, and what it held before the call.
pub struct Loaded {
    pub entity: Entity,
    pub head: Head,
    before: BTreeMap<u64, (SubQueue, Message)>,
}

impl Loaded {
    /// Loads what `loads` name into the entity's state machine.
    pub async fn new(
        tx: &Transaction<'_>,
        head: Head,
        next_seq: i64,
        loads: &[Load],
    ) -> Result<Loaded, tokio_postgres::Error> {
        let mut entity = Entity::new(head.rules);
        entity.main.raise_next_sequence(next_seq.max(1) as u64);
        let mut before = BTreeMap::new();
        for (sub, m) in rows(tx, head.sid, loads).await? {
            before.insert(m.sequence, (sub, m.clone()));
            entity.place(sub, m);
        }
        Ok(Loaded {
            entity,
            head,
            before,
        })
    }

    /// Writes what the call changed: rows gone, rows new or changed, the entity's counters.
    /// `true` when a message may have become available to receivers: one is new, or one
    /// is visible sooner than it was (an abandon, a release).
    pub async fn save(self, tx: &Transaction<'_>) -> Result<bool, tokio_postgres::Error> {
        let mut after: BTreeMap<u64, (SubQueue, &Message)> = BTreeMap::new();
        for sub in [SubQueue::Main, SubQueue::DeadLetter] {
            for m in self.entity.queue(sub).iter_ordered() {
                after.insert(m.sequence, (sub, m));
            }
        }
        let sid = self.head.sid;
        let gone: Vec<i64> = self
            .before
            .keys()
            .filter(|s| !after.contains_key(s))
            .map(|s| *s as i64)
            .collect();
        let changed: Vec<(SubQueue, &Message)> = after
            .iter()
            .filter(|(seq, (sub, m))| {
                self.before
                    .get(seq)
                    .is_none_or(|(was_sub, was)| was_sub != sub || was != *m)
            })
            .map(|(_, (sub, m))| (*sub, *m))
            .collect();
        let size = |m: &Message| i64::from(m.size);
        let delta: i64 = after.values().map(|(_, m)| size(m)).sum::<i64>()
            - self.before.values().map(|(_, m)| size(m)).sum::<i64>();
        let next_seq = self.entity.main.next_sequence() as i64;
        let (delete, counters) = tokio::try_join!(
            tx.prepare_cached("DELETE FROM messages WHERE sid = $1 AND seq = ANY($2)"),
            tx.prepare_cached(
                "UPDATE entities SET next_seq = greatest(next_seq, $2), \
                 bytes = greatest(bytes + $3, 0) WHERE sid = $1",
            ),
        )?;
        // The three writes touch different rows: sent together, they cost one round trip.
        let deleted = async {
            if !gone.is_empty() {
                tx.execute(&delete, &[&sid, &gone]).await?;
            }
            Ok(())
        };
        let written = async {
            if !changed.is_empty() {
                upsert(tx, sid, &changed).await?;
            }
            Ok(())
        };
        let counter_params: [&(dyn ToSql + Sync); 3] = [&sid, &next_seq, &delta];
        let counted = tx.execute(&counters, &counter_params);
        tokio::try_join!(deleted, written, counted)?;
        let available = changed.iter().any(|(_, m)| {
            self.before
                .get(&m.sequence)
                .is_none_or(|(_, was)| m.visible_at < was.visible_at)
        });
        Ok(available)
    }
}

/// Inserts or replaces `rows` in one statement.
async fn upsert(
    tx: &Transaction<'_>,
    sid: i64,
    rows: &[(SubQueue, &Message)],
) -> Result<(), tokio_postgres::Error> {
    let col = |f: &dyn Fn(&(SubQueue, &Message)) -> i64| rows.iter().map(f).collect::<Vec<i64>>();
    let seq = col(&|(_, m)| m.sequence as i64);
    let visible = col(&|(_, m)| m.visible_at.as_millis());
    let expires = col(&|(_, m)| m.expires_at.as_millis());
    let inserted = col(&|(_, m)| m.inserted_at.as_millis());
    let sub: Vec<i16> = rows.iter().map(|(s, _)| sub_code(*s)).collect();
    let state: Vec<i16> = rows
        .iter()
        .map(|(_, m)| codec::state_code(m.state))
        .collect();
    let id: Vec<uuid::Uuid> = rows.iter().map(|(_, m)| uuid(m.id.0)).collect();
    let receipt: Vec<uuid::Uuid> = rows.iter().map(|(_, m)| uuid(m.receipt.0)).collect();
    let count: Vec<i32> = rows
        .iter()
        .map(|(_, m)| m.dequeue_count.min(i32::MAX as u32) as i32)
        .collect();
    let reason: Vec<Option<&str>> = rows
        .iter()
        .map(|(_, m)| m.dead_letter.as_ref().and_then(|d| d.reason.as_deref()))
        .collect();
    let description: Vec<Option<&str>> = rows
        .iter()
        .map(|(_, m)| {
            m.dead_letter
                .as_ref()
                .and_then(|d| d.description.as_deref())
        })
        .collect();
    let size: Vec<i32> = rows
        .iter()
        .map(|(_, m)| m.size.min(i32::MAX as u32) as i32)
        .collect();
    let body: Vec<&[u8]> = rows.iter().map(|(_, m)| m.body.as_slice()).collect();
    let params: [&(dyn ToSql + Sync); 14] = [
        &sid,
        &seq,
        &sub,
        &id,
        &state,
        &visible,
        &expires,
        &inserted,
        &count,
        &receipt,
        &reason,
        &description,
        &size,
        &body,
    ];
    let insert = tx
        .prepare_cached(
            "INSERT INTO messages (sid, seq, sub, id, state, visible_at, expires_at, inserted_at, \
             dequeue_count, receipt, dl_reason, dl_description, size, body) \
         SELECT $1, * FROM unnest($2::int8[], $3::int2[], $4::uuid[], $5::int2[], $6::int8[], \
             $7::int8[], $8::int8[], $9::int4[], $10::uuid[], $11::text[], $12::text[], \
             $13::int4[], $14::bytea[]) \
         ON CONFLICT (sid, seq) DO UPDATE SET sub = excluded.sub, id = excluded.id, \
             state = excluded.state, visible_at = excluded.visible_at, \
             expires_at = excluded.expires_at, inserted_at = excluded.inserted_at, \
             dequeue_count = excluded.dequeue_count, receipt = excluded.receipt, \
             dl_reason = excluded.dl_reason, dl_description = excluded.dl_description, \
             size = excluded.size, body = excluded.body",
        )
        .await?;
    tx.execute(&insert, &params).await?;
    Ok(())
}
