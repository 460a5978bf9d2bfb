//! Engine values to and from columns: messages, states, lease rules, metadata and stored
//! access policies. Times are the engine's milliseconds; ids and receipts are UUIDs.

use hematite_engine::model::{DeadLetterInfo, MessageState};
use hematite_engine::store::{DeliveryCounting, LeaseRules, OnExpiry, SubQueue};
use hematite_engine::{AccessPolicy, Message, MessageId, Metadata, PopReceipt, Timestamp};
use tokio_postgres::Row;
use uuid::Uuid;

/// The columns a message row is read with, in [`message`]'s order.
pub const MESSAGE_COLUMNS: &str = "seq, sub, id, state, visible_at, expires_at, inserted_at, \
     dequeue_count, receipt, dl_reason, dl_description, size, body";

pub fn sub_code(s: SubQueue) -> i16 {
    match s {
        SubQueue::Main => 0,
        SubQueue::DeadLetter => 1,
    }
}

fn sub_from(code: i16) -> SubQueue {
    if code == 1 {
        SubQueue::DeadLetter
    } else {
        SubQueue::Main
    }
}

/// `Deferred` is 1: the ready index leaves those rows out.
pub fn state_code(s: MessageState) -> i16 {
    match s {
        MessageState::Active => 0,
        MessageState::Deferred => 1,
        MessageState::DeadLettered => 2,
        MessageState::Locked => 3,
        MessageState::Scheduled => 4,
        MessageState::DeferredLocked => 5,
    }
}

fn state_from(code: i16) -> MessageState {
    match code {
        1 => MessageState::Deferred,
        2 => MessageState::DeadLettered,
        3 => MessageState::Locked,
        4 => MessageState::Scheduled,
        5 => MessageState::DeferredLocked,
        _ => MessageState::Active,
    }
}

pub fn uuid(v: u128) -> Uuid {
    Uuid::from_u128(v)
}

/// A message row (selected with [`MESSAGE_COLUMNS`]) and the sub-queue holding it.
pub fn message(row: &Row) -> (SubQueue, Message) {
    let sub = sub_from(row.get(1));
    // Everything in a dead-letter sub-queue carries why it is there, even nothing at all.
    let dead_letter = (sub == SubQueue::DeadLetter).then(|| DeadLetterInfo {
        reason: row.get(9),
        description: row.get(10),
    });
    let m = Message {
        sequence: row.get::<_, i64>(0) as u64,
        id: MessageId(row.get::<_, Uuid>(2).as_u128()),
        state: state_from(row.get(3)),
        visible_at: Timestamp::from_millis(row.get(4)),
        expires_at: Timestamp::from_millis(row.get(5)),
        inserted_at: Timestamp::from_millis(row.get(6)),
        dequeue_count: row.get::<_, i32>(7) as u32,
        receipt: PopReceipt(row.get::<_, Uuid>(8).as_u128()),
        dead_letter,
        size: row.get::<_, i32>(11) as u32,
        body: row.get(12),
    };
    (sub, m)
}

/// A queue's lease rules as its four columns.
pub struct RuleColumns {
    pub counting: i16,
    pub lapsed_settles: bool,
    pub max_deliveries: Option<i32>,
    pub on_expiry: i16,
}

pub fn rule_columns(r: &LeaseRules) -> RuleColumns {
    RuleColumns {
        counting: match r.counting {
            DeliveryCounting::EveryLease => 0,
            DeliveryCounting::FailedDeliveries => 1,
        },
        lapsed_settles: r.lapsed_lease_settles,
        max_deliveries: r.max_deliveries.map(|m| m.min(i32::MAX as u32) as i32),
        on_expiry: match r.on_expiry {
            OnExpiry::Delete => 0,
            OnExpiry::DeadLetter => 1,
        },
    }
}

pub fn rules(counting: i16, lapsed_settles: bool, max: Option<i32>, on_expiry: i16) -> LeaseRules {
    LeaseRules {
        counting: if counting == 1 {
            DeliveryCounting::FailedDeliveries
        } else {
            DeliveryCounting::EveryLease
        },
        lapsed_lease_settles: lapsed_settles,
        max_deliveries: max.map(|m| m.max(0) as u32),
        on_expiry: if on_expiry == 1 {
            OnExpiry::DeadLetter
        } else {
            OnExpiry::Delete
        },
    }
}

/// Metadata as a flat `[name, value, name, value, …]` array: order and case kept.
pub fn metadata_array(m: &Metadata) -> Vec<String> {
    m.0.iter()
        .flat_map(|(k, v)| [k.clone(), v.clone()])
        .collect()
}

pub fn metadata(flat: Vec<String>) -> Metadata {
    let mut it = flat.into_iter();
    let mut pairs = Vec::new();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        pairs.push((k, v));
    }
    Metadata(pairs)
}

pub fn policies_json(p: &[AccessPolicy]) -> serde_json::Value {
    serde_json::Value::Array(
        p.iter()
            .map(|p| {
                serde_json::json!({
                    "id": p.id,
                    "start": p.start.map(|t| t.as_millis()),
                    "expiry": p.expiry.map(|t| t.as_millis()),
                    "permissions": p.permissions,
                })
            })
            .collect(),
    )
}

pub fn policies(v: &serde_json::Value) -> Vec<AccessPolicy> {
    let time = |p: &serde_json::Value, k: &str| p.get(k)?.as_i64().map(Timestamp::from_millis);
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|p| AccessPolicy {
                    id: p
                        .get("id")
                        .and_then(|v| v.as_str())
                        .unwrap_or_default()
                        .to_owned(),
                    start: time(p, "start"),
                    expiry: time(p, "expiry"),
                    permissions: p
                        .get("permissions")
                        .and_then(|v| v.as_str())
                        .map(str::to_owned),
                })
                .collect()
        })
        .unwrap_or_default()
}
