//! `hematite sb queue create|list|show|update|delete`, over the administration API.
//!
//! `update` reads the queue, changes the properties given, and writes the whole description
//! back (`If-Match: *`), as the SDKs' `update_queue` does.

use std::time::Duration;

use clap::{Args, Subcommand};
use hematite_servicebus_client::QueueInfo;
use hematite_servicebus_protocol::{
    format_duration, parse_duration, EntityStatus, QueueDescription, TIMESPAN_MAX,
};
use serde_json::{json, Value};

use super::Context;
use crate::cli::output::{self, Table};
use crate::cli::Failure;

#[derive(Subcommand, Debug)]
pub(crate) enum QueueCommand {
    /// Create a queue; properties not given take Azure's defaults.
    Create {
        name: String,
        #[command(flatten)]
        props: Properties,
    },
    /// List queues with their message counts.
    List,
    /// A queue's properties and counts.
    Show { name: String },
    /// Change the properties given, keep the others.
    Update {
        name: String,
        #[command(flatten)]
        props: Properties,
    },
    /// Delete a queue and its messages.
    Delete { name: String },
}

/// Durations as ISO 8601 (`PT30S`), .NET TimeSpan (`00:00:30`) or seconds (`30`).
#[derive(Args, Debug, Default)]
pub(crate) struct Properties {
    /// How long a received message stays locked (5 s to 5 min).
    #[arg(long, value_parser = duration)]
    lock_duration: Option<Duration>,
    /// Deliveries before a message is dead-lettered.
    #[arg(long)]
    max_delivery_count: Option<u32>,
    /// The default time to live of messages; `forever` for none.
    #[arg(long, value_parser = ttl)]
    ttl: Option<Duration>,
    /// Move expired messages to the dead-letter queue.
    #[arg(long)]
    dead_letter_on_expiry: Option<bool>,
    /// The queue's size limit.
    #[arg(long)]
    max_size_mb: Option<u64>,
    /// The largest message the queue takes.
    #[arg(long)]
    max_message_kb: Option<u64>,
    /// Active, Disabled, SendDisabled or ReceiveDisabled.
    #[arg(long, value_parser = status)]
    status: Option<EntityStatus>,
    /// Free text kept with the queue.
    #[arg(long)]
    user_metadata: Option<String>,
}

fn duration(s: &str) -> Result<Duration, String> {
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    parse_duration(s).ok_or_else(|| format!("{s:?} is not a duration (PT30S, 00:00:30 or 30)"))
}

fn ttl(s: &str) -> Result<Duration, String> {
    if s.eq_ignore_ascii_case("forever") {
        return Ok(TIMESPAN_MAX);
    }
    duration(s)
}

fn status(s: &str) -> Result<EntityStatus, String> {
    EntityStatus::parse(s)
        .ok_or_else(|| format!("{s:?} is not Active, Disabled, SendDisabled or ReceiveDisabled"))
}

impl Properties {
    fn apply(self, d: &mut QueueDescription) {
        if let Some(v) = self.lock_duration {
            d.lock_duration = v;
        }
        if let Some(v) = self.max_delivery_count {
            d.max_delivery_count = v;
        }
        if let Some(v) = self.ttl {
            d.default_message_time_to_live = v;
        }
        if let Some(v) = self.dead_letter_on_expiry {
            d.dead_lettering_on_message_expiration = v;
        }
        if let Some(v) = self.max_size_mb {
            d.max_size_in_megabytes = v;
        }
        if let Some(v) = self.max_message_kb {
            d.max_message_size_in_kilobytes = v;
        }
        if let Some(v) = self.status {
            d.status = v;
        }
        if let Some(v) = self.user_metadata {
            d.user_metadata = (!v.is_empty()).then_some(v);
        }
    }
}

pub(crate) async fn run(ctx: &Context, command: QueueCommand) -> Result<(), Failure> {
    let admin = ctx.admin()?;
    let sb = Failure::ServiceBus;
    match command {
        QueueCommand::Create { name, props } => {
            let mut d = QueueDescription::default();
            props.apply(&mut d);
            let q = admin.create_queue(&name, &d).await.map_err(sb)?;
            show(ctx, &q);
        }
        QueueCommand::List => {
            let queues = admin.list_queues().await.map_err(sb)?;
            if ctx.json {
                output::json(&Value::Array(queues.iter().map(to_json).collect()));
            } else {
                let mut t = Table::new(&["NAME", "ACTIVE", "DEAD-LETTERED", "SCHEDULED", "STATUS"]);
                for q in &queues {
                    let c = q.runtime.as_ref().map(|r| r.counts).unwrap_or_default();
                    t.row(vec![
                        q.name.clone(),
                        c.active.to_string(),
                        c.dead_letter.to_string(),
                        c.scheduled.to_string(),
                        q.description.status.as_str().to_owned(),
                    ]);
                }
                t.print();
            }
        }
        QueueCommand::Show { name } => show(ctx, &admin.get_queue(&name).await.map_err(sb)?),
        QueueCommand::Update { name, props } => {
            let mut d = admin.get_queue(&name).await.map_err(sb)?.description;
            props.apply(&mut d);
            show(ctx, &admin.update_queue(&name, &d).await.map_err(sb)?);
        }
        QueueCommand::Delete { name } => {
            admin.delete_queue(&name).await.map_err(sb)?;
            if ctx.json {
                output::json(&json!({"deleted": name}));
            } else {
                output::print(&format!("deleted {name}"));
            }
        }
    }
    Ok(())
}

fn ttl_text(d: Duration) -> String {
    if d >= TIMESPAN_MAX {
        "forever".into()
    } else {
        format_duration(d)
    }
}

fn to_json(q: &QueueInfo) -> Value {
    let d = &q.description;
    let mut v = json!({
        "name": q.name,
        "lock_duration": format_duration(d.lock_duration),
        "max_delivery_count": d.max_delivery_count,
        "default_message_time_to_live": ttl_text(d.default_message_time_to_live),
        "dead_lettering_on_message_expiration": d.dead_lettering_on_message_expiration,
        "max_size_in_megabytes": d.max_size_in_megabytes,
        "max_message_size_in_kilobytes": d.max_message_size_in_kilobytes,
        "requires_session": d.requires_session,
        "status": d.status.as_str(),
        "user_metadata": d.user_metadata,
    });
    if let Some(r) = &q.runtime {
        v["active_message_count"] = json!(r.counts.active);
        v["dead_letter_message_count"] = json!(r.counts.dead_letter);
        v["scheduled_message_count"] = json!(r.counts.scheduled);
        v["size_in_bytes"] = json!(r.size_in_bytes);
        v["created_at"] = json!(output::time(r.created_at));
        v["updated_at"] = json!(output::time(r.updated_at));
    }
    v
}

fn show(ctx: &Context, q: &QueueInfo) {
    if ctx.json {
        output::json(&to_json(q));
        return;
    }
    let d = &q.description;
    let mut pairs = vec![
        ("NAME", q.name.clone()),
        ("STATUS", d.status.as_str().to_owned()),
        ("LOCK DURATION", format_duration(d.lock_duration)),
        ("MAX DELIVERIES", d.max_delivery_count.to_string()),
        ("TTL", ttl_text(d.default_message_time_to_live)),
        (
            "DEAD-LETTER ON EXPIRY",
            d.dead_lettering_on_message_expiration.to_string(),
        ),
        ("MAX SIZE", format!("{} MB", d.max_size_in_megabytes)),
        (
            "MAX MESSAGE",
            format!("{} KB", d.max_message_size_in_kilobytes),
        ),
    ];
    if let Some(m) = &d.user_metadata {
        pairs.push(("USER METADATA", m.clone()));
    }
    if let Some(r) = &q.runtime {
        pairs.push(("ACTIVE", r.counts.active.to_string()));
        pairs.push(("DEAD-LETTERED", r.counts.dead_letter.to_string()));
        pairs.push(("SCHEDULED", r.counts.scheduled.to_string()));
        pairs.push(("SIZE", format!("{} bytes", r.size_in_bytes)));
        pairs.push(("CREATED", output::time(r.created_at)));
    }
    output::print(&output::fields(&pairs));
}
