//! `hematite message send|receive|peek|update|delete|clear`.
//!
//! `send` without a text argument (or with `-`) reads stdin and sends one message per line,
//! several at once (`--concurrency`), with a progress spinner on a terminal. It stops at the
//! first failure, waits for the sends in flight, and reports how many went out.

use std::io::IsTerminal;
use std::time::Duration;

use clap::{Args, Subcommand};
use hematite_client::{QueueClient, SendMessageOptions, TimeToLive};
use serde_json::json;
use tokio::io::AsyncBufReadExt;
use tokio::task::JoinSet;

use super::output::{self, Table};
use super::{Connection, Failure, EXIT_STATUS_HELP};

#[derive(Args, Debug)]
#[command(after_help = EXIT_STATUS_HELP)]
pub struct MessageArgs {
    #[command(flatten)]
    conn: Connection,
    #[command(subcommand)]
    command: MessageCommand,
}

#[derive(Subcommand, Debug)]
enum MessageCommand {
    /// Send a message, or one per stdin line when TEXT is absent or `-`. Lines are sent
    /// concurrently, so the queue may hold them in another order; `--concurrency 1` keeps it.
    Send {
        queue: String,
        text: Option<String>,
        /// Seconds the message stays hidden after sending.
        #[arg(long, value_name = "SECONDS")]
        visibility_timeout: Option<u64>,
        /// Seconds until the message expires; -1 for never.
        #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
        ttl: Option<i64>,
        /// Sends in flight at once when reading stdin.
        #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
        concurrency: u16,
    },
    /// Receive (lease) messages; they are hidden from others until deleted or timed out.
    Receive {
        queue: String,
        /// How many, 1 to 32.
        #[arg(short = 'n', long, default_value_t = 1)]
        count: u32,
        /// Seconds the messages stay hidden [service default: 30].
        #[arg(long, value_name = "SECONDS")]
        visibility_timeout: Option<u64>,
    },
    /// Look at visible messages without leasing them.
    Peek {
        queue: String,
        /// How many, 1 to 32.
        #[arg(short = 'n', long, default_value_t = 1)]
        count: u32,
    },
    /// Change a leased message's visibility and, optionally, its text.
    Update {
        queue: String,
        id: String,
        /// The message's latest pop receipt.
        // URL-safe base64 may start with '-', which clap would take for a flag (the CLI test
        // failed so on one receipt in 64).
        #[arg(long, allow_hyphen_values = true)]
        pop_receipt: String,
        /// New text; the old text stays if omitted.
        #[arg(long)]
        text: Option<String>,
        /// Seconds from now until the message is visible again (0: at once).
        #[arg(long, value_name = "SECONDS", default_value_t = 0)]
        visibility_timeout: u64,
    },
    /// Delete a message with its latest pop receipt.
    Delete {
        queue: String,
        id: String,
        #[arg(long, allow_hyphen_values = true)]
        pop_receipt: String,
    },
    /// Delete every message in a queue.
    Clear { queue: String },
}

pub async fn run(args: MessageArgs) -> Result<(), Failure> {
    let service = args.conn.service()?;
    let json = args.conn.json;
    match args.command {
        MessageCommand::Send {
            queue,
            text,
            visibility_timeout,
            ttl,
            concurrency,
        } => {
            let options = SendMessageOptions {
                visibility_timeout: visibility_timeout.map(Duration::from_secs),
                time_to_live: ttl.map(time_to_live).transpose()?,
            };
            let q = service.queue_client(&queue);
            match text.as_deref() {
                Some(text) if text != "-" => send_one(&q, text, &options, json).await?,
                _ => send_lines(q, options, usize::from(concurrency), json).await?,
            }
        }
        MessageCommand::Receive {
            queue,
            count,
            visibility_timeout,
        } => {
            let msgs = service
                .queue_client(&queue)
                .receive_messages(count, visibility_timeout.map(Duration::from_secs))
                .await?;
            if json {
                output::json(&json!(msgs
                    .iter()
                    .map(|m| json!({
                        "message_id": m.message_id,
                        "pop_receipt": m.pop_receipt,
                        "dequeue_count": m.dequeue_count,
                        "insertion_time": output::time(m.insertion_time),
                        "expiration_time": output::time(m.expiration_time),
                        "time_next_visible": output::time(m.time_next_visible),
                        "text": m.text,
                    }))
                    .collect::<Vec<_>>()));
            } else {
                let mut t = Table::new(&["ID", "DEQUEUES", "POP RECEIPT", "VISIBLE AT", "TEXT"]);
                for m in &msgs {
                    t.row(vec![
                        m.message_id.clone(),
                        m.dequeue_count.to_string(),
                        m.pop_receipt.clone(),
                        output::time(m.time_next_visible),
                        m.text.clone(),
                    ]);
                }
                t.print();
            }
        }
        MessageCommand::Peek { queue, count } => {
            let msgs = service.queue_client(&queue).peek_messages(count).await?;
            if json {
                output::json(&json!(msgs
                    .iter()
                    .map(|m| json!({
                        "message_id": m.message_id,
                        "dequeue_count": m.dequeue_count,
                        "insertion_time": output::time(m.insertion_time),
                        "expiration_time": output::time(m.expiration_time),
                        "text": m.text,
                    }))
                    .collect::<Vec<_>>()));
            } else {
                let mut t = Table::new(&["ID", "DEQUEUES", "INSERTED", "EXPIRES", "TEXT"]);
                for m in &msgs {
                    t.row(vec![
                        m.message_id.clone(),
                        m.dequeue_count.to_string(),
                        output::time(m.insertion_time),
                        output::time(m.expiration_time),
                        m.text.clone(),
                    ]);
                }
                t.print();
            }
        }
        MessageCommand::Update {
            queue,
            id,
            pop_receipt,
            text,
            visibility_timeout,
        } => {
            let r = service
                .queue_client(&queue)
                .update_message(
                    &id,
                    &pop_receipt,
                    text.as_deref(),
                    Duration::from_secs(visibility_timeout),
                )
                .await?;
            if json {
                output::json(&json!({
                    "message_id": id,
                    "pop_receipt": r.pop_receipt,
                    "time_next_visible": output::time(r.time_next_visible),
                }));
            } else {
                output::print(&output::fields(&[
                    ("ID", id),
                    ("POP RECEIPT", r.pop_receipt),
                    ("VISIBLE AT", output::time(r.time_next_visible)),
                ]));
            }
        }
        MessageCommand::Delete {
            queue,
            id,
            pop_receipt,
        } => {
            service
                .queue_client(&queue)
                .delete_message(&id, &pop_receipt)
                .await?;
            if json {
                output::json(&json!({"message_id": id, "deleted": true}));
            } else {
                output::print(&format!("deleted message {id}"));
            }
        }
        MessageCommand::Clear { queue } => {
            service.queue_client(&queue).clear_messages().await?;
            if json {
                output::json(&json!({"queue": queue, "cleared": true}));
            } else {
                output::print(&format!("cleared queue {queue}"));
            }
        }
    }
    Ok(())
}

fn time_to_live(secs: i64) -> Result<TimeToLive, Failure> {
    match secs {
        -1 => Ok(TimeToLive::Infinite),
        s if s >= 1 => Ok(TimeToLive::After(Duration::from_secs(s.unsigned_abs()))),
        _ => Err(Failure::Usage(
            "--ttl must be -1 (never expires) or at least 1 second".into(),
        )),
    }
}

async fn send_one(
    q: &QueueClient,
    text: &str,
    options: &SendMessageOptions,
    json: bool,
) -> Result<(), Failure> {
    let r = q.send_message(text, options).await?;
    if json {
        output::json(&json!({
            "message_id": r.message_id,
            "pop_receipt": r.pop_receipt,
            "insertion_time": output::time(r.insertion_time),
            "expiration_time": output::time(r.expiration_time),
            "time_next_visible": output::time(r.time_next_visible),
        }));
    } else {
        output::print(&output::fields(&[
            ("ID", r.message_id),
            ("POP RECEIPT", r.pop_receipt),
            ("VISIBLE AT", output::time(r.time_next_visible)),
            ("EXPIRES", output::time(r.expiration_time)),
        ]));
    }
    Ok(())
}

/// One message per stdin line (a trailing `\r` is dropped), at most `concurrency` in flight.
async fn send_lines(
    q: QueueClient,
    options: SendMessageOptions,
    concurrency: usize,
    json: bool,
) -> Result<(), Failure> {
    if std::io::stdin().is_terminal() {
        return Err(Failure::Usage(
            "no message text: give it as an argument, or pipe lines on stdin".into(),
        ));
    }
    let progress = progress_bar();
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut in_flight = JoinSet::new();
    let mut sent: u64 = 0;
    let mut failure: Option<Failure> = None;

    loop {
        // Free a slot first, so a failure stops the reading early.
        while in_flight.len() >= concurrency {
            settle(&mut in_flight, &mut sent, &mut failure, &progress).await;
        }
        if failure.is_some() {
            break;
        }
        let line = match lines.next_line().await {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(e) => {
                failure = Some(Failure::Io(e));
                break;
            }
        };
        let text = line.strip_suffix('\r').unwrap_or(&line).to_owned();
        let (q, options) = (q.clone(), options.clone());
        in_flight.spawn(async move { q.send_message(&text, &options).await });
    }
    while !in_flight.is_empty() {
        settle(&mut in_flight, &mut sent, &mut failure, &progress).await;
    }
    progress.finish_and_clear();

    if let Some(f) = failure {
        eprintln!("sent {sent} message(s) to {} before the failure", q.name());
        return Err(f);
    }
    if json {
        output::json(&json!({"queue": q.name(), "sent": sent}));
    } else {
        output::print(&format!("sent {sent} message(s) to {}", q.name()));
    }
    Ok(())
}

type SendResult = Result<hematite_client::SendReceipt, hematite_client::Error>;

/// Waits for one send to finish and counts it; keeps the first failure.
async fn settle(
    in_flight: &mut JoinSet<SendResult>,
    sent: &mut u64,
    failure: &mut Option<Failure>,
    progress: &indicatif::ProgressBar,
) {
    let Some(joined) = in_flight.join_next().await else {
        return;
    };
    match joined {
        Ok(Ok(_)) => {
            *sent += 1;
            progress.inc(1);
        }
        Ok(Err(e)) => {
            failure.get_or_insert(Failure::Client(e));
        }
        Err(e) => {
            failure.get_or_insert(Failure::Io(std::io::Error::other(e)));
        }
    }
}

/// A spinner with the count and rate, on stderr, only when stderr is a terminal.
pub(super) fn progress_bar() -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new_spinner();
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{spinner} {human_pos} sent ({rate}) {elapsed}")
    {
        pb.set_style(style.with_key(
            "rate",
            |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:.0}/s", state.per_sec());
            },
        ));
    }
    pb.enable_steady_tick(Duration::from_millis(100));
    pb
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_values() {
        assert_eq!(time_to_live(-1).ok(), Some(TimeToLive::Infinite));
        assert_eq!(
            time_to_live(60).ok(),
            Some(TimeToLive::After(Duration::from_secs(60)))
        );
        assert!(time_to_live(0).is_err());
        assert!(time_to_live(-2).is_err());
    }
}
