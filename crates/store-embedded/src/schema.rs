//! The on-disk layout: redb tables, their keys, and the format version.
//!
//! Everything lives in one redb file, `queues.redb`, under the data directory:
//!
//! | table | key | value |
//! |---|---|---|
//! | `meta` | name | u64 (`format`, `next_queue_id`) |
//! | `queues` | (account, queue name) | queue record: id, metadata, access policies |
//! | `queue_state` | queue id | next sequence number, message count |
//! | `messages` | (queue id, sequence) | message state: id, times, dequeue count, receipt |
//! | `bodies` | (queue id, sequence) | message body |
//! | `visibility` | (queue id, visible_at ms, sequence) | () — receivable order |
//! | `expiry` | (queue id, expires_at ms, sequence) | () — TTL order |
//! | `ids` | (queue id, message id) | sequence |
//! | `documents` | (account, key) | bytes (e.g. service properties) |
//! | `doomed` | queue id | () — cleared or deleted queues whose rows are reclaimed in the background |
//!
//! A queue's rows are keyed by an internal queue id, not by its name, so Clear Messages and
//! Delete Queue are O(1): the name gets a fresh id and the old id's rows are reclaimed later.

use redb::TableDefinition;

/// Bumped on any incompatible change to the tables or records below.
pub const FORMAT_VERSION: u64 = 1;

pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub const QUEUES: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("queues");
pub const QUEUE_STATE: TableDefinition<u64, (u64, u64)> = TableDefinition::new("queue_state");
pub const MESSAGES: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("messages");
pub const BODIES: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("bodies");
pub const VISIBILITY: TableDefinition<(u64, i64, u64), ()> = TableDefinition::new("visibility");
pub const EXPIRY: TableDefinition<(u64, i64, u64), ()> = TableDefinition::new("expiry");
pub const IDS: TableDefinition<(u64, u128), u64> = TableDefinition::new("ids");
pub const DOCUMENTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("documents");
pub const DOOMED: TableDefinition<u64, ()> = TableDefinition::new("doomed");

pub const META_FORMAT: &str = "format";
pub const META_NEXT_QUEUE_ID: &str = "next_queue_id";
