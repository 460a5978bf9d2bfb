//! One store call on one entity, as one transaction: lock the entity's row, load the
//! messages the call can touch, run the engine's own state machine ([`Entity`]) on them,
//! and write back what changed.
//!
//! The row lock orders every call on an entity across nodes, so sequence numbers are
//! gap-free in commit order and no two calls lease one message. The state machine is the
//! one the other stores run, so the semantics are written once; this module only decides
//! which rows a call needs and turns the difference into statements.

use std::collections::BTreeMap;

use deadpool_postgres::{Object, Transaction};
use hematite_engine::index::Entity;
use hematite_engine::store::{LeaseRules, SubQueue};
use hematite_engine::{Message, MessageId, PopReceipt, QueueRef, Timestamp};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use crate::codec::{self, sub_code, uuid, MESSAGE_COLUMNS};
use crate::pipeline::{together, Request};

/// Expired messages a walking call takes along (deleting or dead-lettering them), at most.
const EXPIRED_PER_CALL: i64 = 256;

/// Locks an entity's row and reads what a call needs of it; see [`head`].
pub const LOCK_SQL: &str = "SELECT sid, next_seq, bytes, counting, lapsed_settles, \
     max_deliveries, on_expiry FROM entities WHERE account = $1 AND name = $2 FOR UPDATE";

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

/// The entity's row as [`LOCK_SQL`] reads it, and its next sequence number.
pub fn head(r: &Row) -> (Head, i64) {
    (
        Head {
            sid: r.get(0),
            bytes: r.get(2),
            rules: codec::rules(r.get(3), r.get(4), r.get(5), r.get(6)),
        },
        r.get::<_, i64>(1),
    )
}

/// Locks the entity's row; `None` if it does not exist.
pub async fn lock(
    tx: &Transaction<'_>,
    q: QueueRef<'_>,
) -> Result<Option<(Head, i64)>, tokio_postgres::Error> {
    let lock = tx.prepare_cached(LOCK_SQL).await?;
    Ok(tx
        .query_opt(&lock, &[&q.account, &q.queue])
        .await?
        .as_ref()
        .map(head))
}

/// A statement's parameter, owned, so that a [`Read`] can be built before it is sent.
type Param = Box<dyn ToSql + Sync + Send>;

/// One statement that reads message rows.
pub struct Read {
    sql: String,
    params: Vec<Param>,
}

impl Read {
    fn new(sql: String, params: Vec<Param>) -> Read {
        Read { sql, params }
    }
}

/// How many of a sub-queue's head rows `n` picks need. Under Azure's rules every available
/// message can be leased; under Service Bus's a lapsed lock in the head may be a failed
/// delivery that dead-letters instead, so more are read.
fn head_limit(n: usize, rules: &LeaseRules) -> i64 {
    let n = n as i64;
    if rules.max_deliveries.is_none() {
        n
    } else {
        n.saturating_mul(2).saturating_add(16)
    }
}

/// The statements that read the rows the calls of a batch need, each once: heads of one
/// sub-queue merged (their counts added, the latest `now`), ids, tokens and sequence
/// numbers each in one statement. Every read locks its rows: an Azure queue's receives and
/// deletes change rows without the entity's lock ([`crate::claim`]), and a row read here
/// must not change before this transaction writes it back. The head and housekeeping
/// reads pass over rows held by others (a receiver holds them, so they are not available).
pub fn reads(sid: i64, rules: &LeaseRules, loads: &[Load]) -> Vec<Read> {
    let select =
        |cond: &str| format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE sid = $1 AND {cond}");
    let mut out = Vec::new();
    for sub in [SubQueue::Main, SubQueue::DeadLetter] {
        let code = sub_code(sub);
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
            let now = now.as_millis();
            out.push(Read::new(
                select(
                    "sub = $2 AND state <> 1 AND visible_at <= $3 AND expires_at > $3 \
                     ORDER BY visible_at, seq LIMIT $4 FOR UPDATE SKIP LOCKED",
                ),
                vec![
                    Box::new(sid),
                    Box::new(code),
                    Box::new(now),
                    Box::new(head_limit(n, rules)),
                ],
            ));
            out.push(Read::new(
                select("sub = $2 AND expires_at <= $3 LIMIT $4 FOR UPDATE SKIP LOCKED"),
                vec![
                    Box::new(sid),
                    Box::new(code),
                    Box::new(now),
                    Box::new(EXPIRED_PER_CALL),
                ],
            ));
        }
        let receipts: Vec<uuid::Uuid> = loads
            .iter()
            .filter_map(|l| match l {
                Load::ByReceipt { sub: s, receipt } if *s == sub => Some(uuid(receipt.0)),
                _ => None,
            })
            .collect();
        if !receipts.is_empty() {
            // Only a locked message settles by its token (the receipt index holds those).
            out.push(Read::new(
                select("sub = $2 AND receipt = ANY($3) AND state IN (3, 5) FOR UPDATE"),
                vec![Box::new(sid), Box::new(code), Box::new(receipts)],
            ));
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
            out.push(Read::new(
                select("sub = $2 AND seq = ANY($3) FOR UPDATE"),
                vec![Box::new(sid), Box::new(code), Box::new(seqs)],
            ));
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
        out.push(Read::new(
            select("id = ANY($2) FOR UPDATE"),
            vec![Box::new(sid), Box::new(ids)],
        ));
    }
    for l in loads {
        if let Load::Housekeeping { now, budget } = l {
            let (now, budget) = (now.as_millis(), *budget as i64);
            // Locks (states 3 and 5) that have lapsed, and expired messages.
            out.push(Read::new(
                select("state IN (3, 5) AND visible_at <= $2 LIMIT $3 FOR UPDATE SKIP LOCKED"),
                vec![Box::new(sid), Box::new(now), Box::new(budget)],
            ));
            out.push(Read::new(
                select(
                    "expires_at <= $2 AND NOT (state IN (3, 5) AND visible_at <= $2) LIMIT $3 \
                     FOR UPDATE SKIP LOCKED",
                ),
                vec![Box::new(sid), Box::new(now), Box::new(budget)],
            ));
        }
    }
    out
}

/// `reads` as requests for [`together`], their statements prepared first (from the
/// connection's cache after the first time).
pub async fn requests<'a>(
    client: &'a Object,
    reads: &'a [Read],
) -> Result<Vec<Request<'a, Vec<Row>>>, tokio_postgres::Error> {
    let mut out: Vec<Request<'a, Vec<Row>>> = Vec::with_capacity(reads.len());
    for read in reads {
        let statement = client.prepare_cached(&read.sql).await?;
        out.push(Box::pin(async move {
            let params: Vec<&(dyn ToSql + Sync)> = read
                .params
                .iter()
                .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                .collect();
            client.query(&statement, &params).await
        }));
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
    /// The entity's state machine holding `rows`.
    pub fn new(head: Head, next_seq: i64, rows: &[Row]) -> Loaded {
        let mut entity = Entity::new(head.rules);
        entity.main.raise_next_sequence(next_seq.max(1) as u64);
        let mut before = BTreeMap::new();
        for (sub, m) in rows.iter().map(codec::message) {
            before.insert(m.sequence, (sub, m.clone()));
            entity.place(sub, m);
        }
        Loaded {
            entity,
            head,
            before,
        }
    }

    /// Writes what the calls changed (rows gone, rows new or changed, the entity's
    /// counters) and commits, all sent together: one round trip. `true` when a message may
    /// have become available to receivers: one is new, or one is visible sooner than it was
    /// (an abandon, a release).
    pub async fn commit(self, client: &Object) -> Result<bool, tokio_postgres::Error> {
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
        let (delete, counters, insert) = tokio::try_join!(
            client.prepare_cached("DELETE FROM messages WHERE sid = $1 AND seq = ANY($2)"),
            client.prepare_cached(
                "UPDATE entities SET next_seq = greatest(next_seq, $2), \
                 bytes = greatest(bytes + $3, 0) WHERE sid = $1",
            ),
            client.prepare_cached(UPSERT_SQL),
        )?;
        let columns = Columns::of(&changed);
        let delete_params: [&(dyn ToSql + Sync); 2] = [&sid, &gone];
        let insert_params = columns.params(&sid);
        let counter_params: [&(dyn ToSql + Sync); 3] = [&sid, &next_seq, &delta];
        let mut writes: Vec<Request<'_, u64>> = Vec::with_capacity(4);
        if !gone.is_empty() {
            writes.push(Box::pin(client.execute(&delete, &delete_params)));
        }
        if !changed.is_empty() {
            writes.push(Box::pin(client.execute(&insert, &insert_params)));
        }
        writes.push(Box::pin(client.execute(&counters, &counter_params)));
        writes.push(Box::pin(async {
            client.batch_execute("COMMIT").await.map(|_| 0)
        }));
        // A failed write aborts the transaction, and the server answers its COMMIT with a
        // rollback: the batch is done only if every request succeeded.
        for answer in together(writes).await {
            answer?;
        }
        let available = changed.iter().any(|(_, m)| {
            self.before
                .get(&m.sequence)
                .is_none_or(|(_, was)| m.visible_at < was.visible_at)
        });
        Ok(available)
    }
}

/// Inserts or replaces message rows, given as one array per column.
const UPSERT_SQL: &str = "INSERT INTO messages (sid, seq, sub, id, state, visible_at, \
     expires_at, inserted_at, dequeue_count, receipt, dl_reason, dl_description, size, body) \
     SELECT $1, * FROM unnest($2::int8[], $3::int2[], $4::uuid[], $5::int2[], $6::int8[], \
         $7::int8[], $8::int8[], $9::int4[], $10::uuid[], $11::text[], $12::text[], \
         $13::int4[], $14::bytea[]) \
     ON CONFLICT (sid, seq) DO UPDATE SET sub = excluded.sub, id = excluded.id, \
         state = excluded.state, visible_at = excluded.visible_at, \
         expires_at = excluded.expires_at, inserted_at = excluded.inserted_at, \
         dequeue_count = excluded.dequeue_count, receipt = excluded.receipt, \
         dl_reason = excluded.dl_reason, dl_description = excluded.dl_description, \
         size = excluded.size, body = excluded.body";

/// Message rows as [`UPSERT_SQL`]'s column arrays.
struct Columns<'a> {
    seq: Vec<i64>,
    sub: Vec<i16>,
    id: Vec<uuid::Uuid>,
    state: Vec<i16>,
    visible: Vec<i64>,
    expires: Vec<i64>,
    inserted: Vec<i64>,
    count: Vec<i32>,
    receipt: Vec<uuid::Uuid>,
    reason: Vec<Option<&'a str>>,
    description: Vec<Option<&'a str>>,
    size: Vec<i32>,
    body: Vec<&'a [u8]>,
}

impl<'a> Columns<'a> {
    fn of(rows: &[(SubQueue, &'a Message)]) -> Columns<'a> {
        let col = |f: &dyn Fn(&Message) -> i64| rows.iter().map(|(_, m)| f(m)).collect();
        Columns {
            seq: col(&|m| m.sequence as i64),
            sub: rows.iter().map(|(s, _)| sub_code(*s)).collect(),
            id: rows.iter().map(|(_, m)| uuid(m.id.0)).collect(),
            state: rows
                .iter()
                .map(|(_, m)| codec::state_code(m.state))
                .collect(),
            visible: col(&|m| m.visible_at.as_millis()),
            expires: col(&|m| m.expires_at.as_millis()),
            inserted: col(&|m| m.inserted_at.as_millis()),
            count: rows
                .iter()
                .map(|(_, m)| m.dequeue_count.min(i32::MAX as u32) as i32)
                .collect(),
            receipt: rows.iter().map(|(_, m)| uuid(m.receipt.0)).collect(),
            reason: rows
                .iter()
                .map(|(_, m)| m.dead_letter.as_ref().and_then(|d| d.reason.as_deref()))
                .collect(),
            description: rows
                .iter()
                .map(|(_, m)| {
                    m.dead_letter
                        .as_ref()
                        .and_then(|d| d.description.as_deref())
                })
                .collect(),
            size: rows
                .iter()
                .map(|(_, m)| m.size.min(i32::MAX as u32) as i32)
                .collect(),
            body: rows.iter().map(|(_, m)| m.body.as_slice()).collect(),
        }
    }

    fn params<'p>(&'p self, sid: &'p i64) -> [&'p (dyn ToSql + Sync); 14] {
        [
            sid,
            &self.seq,
            &self.sub,
            &self.id,
            &self.state,
            &self.visible,
            &self.expires,
            &self.inserted,
            &self.count,
            &self.receipt,
            &self.reason,
            &self.description,
            &self.size,
            &self.body,
        ]
    }
}
