//! New messages without reading first: a batch of puts on one entity is one statement in
//! its own transaction, which bumps the entity's counters and inserts every row.
//!
//! A put needs nothing the entity holds: its sequence numbers come from the row's
//! `next_seq`, which the `UPDATE` locks and bumps in the same statement as the insert, so
//! they stay gap-free in commit order; the entity's size bound is the statement's predicate.
//! One statement is one round trip, where a locking transaction ([`crate::entity`]) needs
//! two, and the row lock is held only while the server runs it and commits. When the row
//! does not come back (no such entity, or one at its size bound) the puts go the general way,
//! which answers each of them as the state machine says.

use deadpool_postgres::Object;
use hematite_engine::model::MessageState;
use hematite_engine::store::{Enqueue, Enqueued, LeaseRules};
use hematite_engine::{Message, QueueRef};
use tokio_postgres::types::ToSql;

use crate::codec::{self, uuid};
use crate::entity::Loaded;

/// One call's new messages, and the entity size at which it is refused.
pub struct Put {
    pub batch: Vec<Enqueue>,
    pub max_bytes: u64,
}

/// What a batch of puts came to.
pub enum Outcome {
    /// Each call's messages, as stored, and the entity's id and lease rules.
    Stored(Vec<Vec<Message>>, i64, LeaseRules),
    /// Not done: the entity is missing or at its size bound. The puts, untouched.
    Refused(Vec<Put>),
}

const PUT_SQL: &str = "WITH e AS ( \
       UPDATE entities SET next_seq = next_seq + $3, bytes = bytes + $4 \
       WHERE account = $1 AND name = $2 AND bytes < $5 \
       RETURNING sid, next_seq - $3 AS first, counting, lapsed_settles, max_deliveries, on_expiry), \
     ins AS ( \
       INSERT INTO messages (sid, seq, sub, id, state, visible_at, expires_at, inserted_at, \
           dequeue_count, receipt, size, body) \
       SELECT e.sid, e.first + u.ord - 1, 0, u.id, u.state, u.visible_at, u.expires_at, \
           u.inserted_at, 0, u.receipt, u.size, u.body \
       FROM e, unnest($6::uuid[], $7::int2[], $8::int8[], $9::int8[], $10::int8[], \
           $11::uuid[], $12::int4[], $13::bytea[]) \
         WITH ORDINALITY AS u(id, state, visible_at, expires_at, inserted_at, receipt, size, \
           body, ord)) \
     SELECT first, counting, lapsed_settles, max_deliveries, on_expiry, sid FROM e";

/// Stores `puts` on `q` in one statement, or hands them back.
pub async fn put(
    client: &Object,
    q: QueueRef<'_>,
    puts: Vec<Put>,
) -> Result<Outcome, tokio_postgres::Error> {
    let all = || puts.iter().flat_map(|p| &p.batch);
    let count = all().count() as i64;
    let size = |e: &Enqueue| e.message.body.len().min(i32::MAX as usize) as i32;
    let bytes: i64 = all().map(|e| i64::from(size(e))).sum();
    let bound = puts.iter().map(|p| p.max_bytes).min().unwrap_or(u64::MAX);
    let bound = bound.min(i64::MAX as u64) as i64;
    let ids: Vec<uuid::Uuid> = all().map(|e| uuid(e.message.id.0)).collect();
    let states: Vec<i16> = all().map(|e| codec::state_code(state(e))).collect();
    let millis = |f: fn(&Enqueue) -> i64| all().map(f).collect::<Vec<i64>>();
    let visible = millis(|e| e.message.visible_at.as_millis());
    let expires = millis(|e| e.message.expires_at.as_millis());
    let inserted = millis(|e| e.message.inserted_at.as_millis());
    let receipts: Vec<uuid::Uuid> = all().map(|e| uuid(e.message.receipt.0)).collect();
    let sizes: Vec<i32> = all().map(size).collect();
    let bodies: Vec<&[u8]> = all().map(|e| e.message.body.as_slice()).collect();
    let params: [&(dyn ToSql + Sync); 13] = [
        &q.account, &q.queue, &count, &bytes, &bound, &ids, &states, &visible, &expires, &inserted,
        &receipts, &sizes, &bodies,
    ];
    let statement = client.prepare_cached(PUT_SQL).await?;
    let Some(row) = client.query_opt(&statement, &params).await? else {
        return Ok(Outcome::Refused(puts));
    };
    let first: i64 = row.get(0);
    let rules = codec::rules(row.get(1), row.get(2), row.get(3), row.get(4));
    let mut seq = first as u64;
    let stored = puts
        .into_iter()
        .map(|p| {
            p.batch
                .into_iter()
                .map(|e| {
                    let state = state(&e);
                    let mut m = e.message.into_message(seq);
                    m.state = state;
                    seq += 1;
                    m
                })
                .collect()
        })
        .collect();
    Ok(Outcome::Stored(stored, row.get(5), rules))
}

/// A new message's state: held back if scheduled.
fn state(e: &Enqueue) -> MessageState {
    if e.scheduled {
        MessageState::Scheduled
    } else {
        MessageState::Active
    }
}

/// One call's puts through the state machine (the general way): refused whole when the
/// entity is at its bound, otherwise each message inserted, scheduled or not.
pub fn apply(l: &mut Loaded, put: Put) -> Enqueued {
    let size_bytes = l.head.bytes.max(0) as u64;
    if size_bytes >= put.max_bytes {
        return Enqueued::Full { size_bytes };
    }
    let main = &mut l.entity.main;
    Enqueued::Stored(
        put.batch
            .into_iter()
            .map(|b| match b.scheduled {
                true => {
                    let at = b.message.visible_at;
                    main.insert_scheduled(b.message, at)
                }
                false => main.insert(b.message),
            })
            .collect(),
    )
}
