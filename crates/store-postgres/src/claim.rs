//! Get Messages and Delete Message on an Azure queue without the entity's row lock: a batch
//! of receives is one claim statement, a batch of deletes one delete statement, each in its
//! own transaction, and neither waits for another's commit.
//!
//! Under Azure's rules a receive and a delete touch only their messages' rows: no sequence
//! number, no counter the engine needs, no dead-lettering. So they need not queue behind
//! the entity's lock, where every commit waits its flush in turn; the server commits them
//! side by side. The ownership checks are the statements' predicates (visible and unexpired
//! to be claimed; same id, same receipt and unexpired to be deleted), and each takes only
//! rows no one else holds (`FOR UPDATE SKIP LOCKED`), so it never waits for a row lock and no
//! deadlock can form with a locking transaction (which locks the rows it reads, so it never
//! acts on a row one of these changed). What a statement cannot do (the entity is not the one
//! last seen, or a delete's row was held or not found) goes the general way, through the
//! state machine, which gives the exact answer.

use deadpool_postgres::Object;
use hematite_engine::store::{LeaseGrant, LeaseRules};
use hematite_engine::{Message, MessageId, PopReceipt, QueueRef, Timestamp};
use tokio_postgres::types::ToSql;

use crate::codec::{self, uuid, MESSAGE_COLUMNS};

/// Whether an entity's receives and deletes may go this way: Azure's rules only.
pub fn applies(rules: &LeaseRules) -> bool {
    *rules == LeaseRules::AZURE_QUEUE
}

/// The entity, if it is still the one seen (same id) with Azure's rules.
const ENTITY: &str = "e AS (SELECT sid FROM entities WHERE sid = $1 AND account = $2 \
     AND name = $3 AND counting = 0 AND lapsed_settles AND max_deliveries IS NULL \
     AND on_expiry = 0)";

/// `MESSAGE_COLUMNS` of table alias `t`.
fn columns(t: &str) -> String {
    MESSAGE_COLUMNS
        .split(", ")
        .map(|c| format!("{t}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One Get Messages call.
pub struct Receive {
    pub now: Timestamp,
    pub grant: LeaseGrant,
}

/// Leases messages for `calls` in one statement, in receive order, the earlier calls served
/// first: each call's messages, or `None` if the entity is not the one seen.
pub async fn receive(
    client: &Object,
    q: QueueRef<'_>,
    sid: i64,
    calls: &[Receive],
) -> Result<Option<Vec<Vec<Message>>>, tokio_postgres::Error> {
    let now = calls.iter().map(|c| c.now.as_millis()).max().unwrap_or(0);
    let slots: Vec<(i64, uuid::Uuid)> = calls
        .iter()
        .flat_map(|c| {
            let until = c.grant.visible_until.as_millis();
            c.grant.receipts.iter().map(move |r| (until, uuid(r.0)))
        })
        .collect();
    let until: Vec<i64> = slots.iter().map(|s| s.0).collect();
    let receipts: Vec<uuid::Uuid> = slots.iter().map(|s| s.1).collect();
    let n = slots.len() as i64;
    let sql = format!(
        "WITH {ENTITY}, \
         c AS (SELECT m.seq, row_number() OVER (ORDER BY m.visible_at, m.seq) AS j FROM \
           (SELECT seq, visible_at FROM messages WHERE sid = (SELECT sid FROM e) AND sub = 0 \
              AND state <> 1 AND visible_at <= $4 AND expires_at > $4 \
            ORDER BY visible_at, seq LIMIT $5 FOR UPDATE SKIP LOCKED) m), \
         s AS (SELECT * FROM unnest($6::int8[], $7::uuid[]) WITH ORDINALITY AS s(until, receipt, j)), \
         u AS (UPDATE messages m SET visible_at = s.until, receipt = s.receipt, \
                 dequeue_count = m.dequeue_count + 1 \
               FROM c JOIN s ON s.j = c.j \
               WHERE m.sid = (SELECT sid FROM e) AND m.seq = c.seq \
               RETURNING {}, s.j) \
         SELECT {}, u.j FROM e LEFT JOIN u ON true ORDER BY u.j",
        columns("m"),
        columns("u"),
    );
    let params: [&(dyn ToSql + Sync); 7] =
        [&sid, &q.account, &q.queue, &now, &n, &until, &receipts];
    let statement = client.prepare_cached(&sql).await?;
    let rows = client.query(&statement, &params).await?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut leased = rows
        .iter()
        .filter(|r| r.get::<_, Option<i64>>(0).is_some())
        .map(|r| codec::message(r).1);
    Ok(Some(
        calls
            .iter()
            .map(|c| leased.by_ref().take(c.grant.receipts.len()).collect())
            .collect(),
    ))
}

/// One Delete Message call.
pub struct Delete {
    pub id: MessageId,
    pub receipt: PopReceipt,
    pub now: Timestamp,
}

/// Deletes what it can of `calls` in one statement: each call's deleted message, `None` for
/// a call this way could not serve; `None` overall if the entity is not the one seen.
pub async fn delete(
    client: &Object,
    q: QueueRef<'_>,
    sid: i64,
    calls: &[Delete],
) -> Result<Option<Vec<Option<Message>>>, tokio_postgres::Error> {
    // The latest caller's time: a message that expired by then is left to the general way.
    let now = calls.iter().map(|c| c.now.as_millis()).max().unwrap_or(0);
    let ids: Vec<uuid::Uuid> = calls.iter().map(|c| uuid(c.id.0)).collect();
    let receipts: Vec<uuid::Uuid> = calls.iter().map(|c| uuid(c.receipt.0)).collect();
    let sql = format!(
        "WITH {ENTITY}, \
         t AS (SELECT m.seq FROM messages m \
                 JOIN unnest($4::uuid[], $5::uuid[]) AS u(id, receipt) \
                   ON m.id = u.id AND m.receipt = u.receipt \
               WHERE m.sid = (SELECT sid FROM e) AND m.expires_at > $6 \
               FOR UPDATE OF m SKIP LOCKED), \
         d AS (DELETE FROM messages m USING t \
               WHERE m.sid = (SELECT sid FROM e) AND m.seq = t.seq RETURNING {}) \
         SELECT {} FROM e LEFT JOIN d ON true",
        columns("m"),
        columns("d"),
    );
    let params: [&(dyn ToSql + Sync); 6] = [&sid, &q.account, &q.queue, &ids, &receipts, &now];
    let statement = client.prepare_cached(&sql).await?;
    let rows = client.query(&statement, &params).await?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut deleted: Vec<Message> = rows
        .iter()
        .filter(|r| r.get::<_, Option<i64>>(0).is_some())
        .map(|r| codec::message(r).1)
        .collect();
    // Each deleted row answers the first call that named it; a repeat goes the general way.
    Ok(Some(
        calls
            .iter()
            .map(|c| {
                let at = deleted
                    .iter()
                    .position(|m| m.id == c.id && m.receipt == c.receipt)?;
                Some(deleted.swap_remove(at))
            })
            .collect(),
    ))
}
