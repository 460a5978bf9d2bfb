//! `hematite queue list|create|delete|show|metadata`.

use clap::{Args, Subcommand};
use futures_util::TryStreamExt;
use hematite_client::{CreateOutcome, ListQueuesOptions, Metadata};
use serde_json::json;

use super::output::{self, Table};
use super::{Connection, Failure, EXIT_STATUS_HELP};

#[derive(Args, Debug)]
#[command(after_help = EXIT_STATUS_HELP)]
pub struct QueueArgs {
    #[command(flatten)]
    conn: Connection,
    #[command(subcommand)]
    command: QueueCommand,
}

#[derive(Subcommand, Debug)]
enum QueueCommand {
    /// List queues (every page).
    List {
        /// Only queues whose name starts with this.
        #[arg(long)]
        prefix: Option<String>,
        /// Show each queue's metadata.
        #[arg(long)]
        metadata: bool,
    },
    /// Create a queue. An existing queue with the same metadata is not an error.
    Create {
        name: String,
        /// Metadata pair; repeatable.
        #[arg(long = "metadata", short = 'm', value_name = "KEY=VALUE", value_parser = parse_pair)]
        metadata: Vec<(String, String)>,
    },
    /// Delete a queue and its messages.
    Delete {
        name: String,
        /// Succeed if the queue does not exist.
        #[arg(long)]
        if_exists: bool,
    },
    /// Show a queue's approximate message count and metadata.
    Show { name: String },
    /// Show a queue's metadata, or replace it with the pairs given.
    Metadata {
        name: String,
        /// New metadata, replacing all of it.
        #[arg(value_name = "KEY=VALUE", value_parser = parse_pair)]
        pairs: Vec<(String, String)>,
        /// Remove all metadata.
        #[arg(long, conflicts_with = "pairs")]
        clear: bool,
    },
}

/// `key=value`; the value may contain `=`.
pub fn parse_pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

pub async fn run(args: QueueArgs) -> Result<(), Failure> {
    let service = args.conn.service()?;
    let json = args.conn.json;
    match args.command {
        QueueCommand::List { prefix, metadata } => {
            let queues: Vec<_> = service
                .list_queues(ListQueuesOptions {
                    prefix,
                    include_metadata: metadata,
                    ..Default::default()
                })
                .try_collect()
                .await?;
            if json {
                output::json(&json!(queues
                    .iter()
                    .map(|q| match &q.metadata {
                        Some(md) => json!({"name": q.name, "metadata": output::metadata_json(md)}),
                        None => json!({"name": q.name}),
                    })
                    .collect::<Vec<_>>()));
            } else if metadata {
                let mut t = Table::new(&["NAME", "METADATA"]);
                for q in &queues {
                    let md = q.metadata.as_ref().map(output::metadata_inline);
                    t.row(vec![q.name.clone(), md.unwrap_or_default()]);
                }
                t.print();
            } else {
                let mut t = Table::new(&["NAME"]);
                for q in &queues {
                    t.row(vec![q.name.clone()]);
                }
                t.print();
            }
        }
        QueueCommand::Create { name, metadata } => {
            let md: Metadata = metadata.into_iter().collect();
            let outcome = service.queue_client(&name).create(&md).await?;
            let created = outcome == CreateOutcome::Created;
            if json {
                output::json(&json!({"name": name, "created": created}));
            } else if created {
                output::print(&format!("created queue {name}"));
            } else {
                output::print(&format!(
                    "queue {name} already exists with the same metadata"
                ));
            }
        }
        QueueCommand::Delete { name, if_exists } => {
            let q = service.queue_client(&name);
            let deleted = if if_exists {
                q.delete_if_exists().await?
            } else {
                q.delete().await?;
                true
            };
            if json {
                output::json(&json!({"name": name, "deleted": deleted}));
            } else if deleted {
                output::print(&format!("deleted queue {name}"));
            } else {
                output::print(&format!("queue {name} does not exist"));
            }
        }
        QueueCommand::Show { name } => {
            let props = service.queue_client(&name).get_properties().await?;
            if json {
                output::json(&json!({
                    "name": name,
                    "approximate_message_count": props.approximate_message_count,
                    "metadata": output::metadata_json(&props.metadata),
                }));
            } else {
                output::print(&output::fields(&[
                    ("NAME", name),
                    ("MESSAGES", props.approximate_message_count.to_string()),
                    ("METADATA", output::metadata_inline(&props.metadata)),
                ]));
            }
        }
        QueueCommand::Metadata { name, pairs, clear } => {
            let q = service.queue_client(&name);
            if !pairs.is_empty() || clear {
                q.set_metadata(&pairs.into_iter().collect()).await?;
            }
            // Read back rather than echo: the server's view is the truth (names arrive
            // lowercase through this client, see hematite-client's docs).
            let md = q.get_properties().await?.metadata;
            if json {
                output::json(&output::metadata_json(&md));
            } else {
                let mut t = Table::new(&["KEY", "VALUE"]);
                for (k, v) in &md {
                    t.row(vec![k.clone(), v.clone()]);
                }
                t.print();
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs() {
        assert_eq!(parse_pair("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert_eq!(parse_pair("a="), Ok(("a".into(), "".into())));
        assert!(parse_pair("=b").is_err());
        assert!(parse_pair("ab").is_err());
    }
}
