//! `hematite sb send|receive|peek` and `hematite sb dlq list|resubmit|purge`, over AMQP.
//!
//! `send` without a text argument (or with `-`) reads stdin and sends one message per line,
//! in batches sent back to back (`--batch`), with a progress spinner on a terminal. Receiving
//! waits up to `--wait` seconds for the messages asked for and returns what came.

use std::io::IsTerminal;
use std::time::Duration;

use clap::{Subcommand, ValueEnum};
use hematite_servicebus_client::amqp::Received;
use hematite_servicebus_client::{Client, OutgoingMessage, ReceiveMode, ReceivedMessage, Settle};
use serde_json::{json, Value};
use tokio::io::AsyncBufReadExt;

use super::Context;
use crate::cli::message::progress_bar;
use crate::cli::output::{self, Table};
use crate::cli::Failure;

#[derive(Subcommand, Debug)]
pub(crate) enum MessageCommand {
    /// Send a message, or one per stdin line when TEXT is absent or `-`, in order.
    Send {
        queue: String,
        text: Option<String>,
        /// Messages sent back to back before waiting for their outcomes (stdin).
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..))]
        batch: u16,
    },
    /// Receive messages and settle them.
    Receive {
        queue: String,
        /// How many at most.
        #[arg(short = 'n', long, default_value_t = 1)]
        count: u32,
        /// Seconds to wait for them.
        #[arg(long, default_value_t = 5)]
        wait: u64,
        #[arg(long, value_enum, default_value_t = Mode::PeekLock)]
        mode: Mode,
        /// What to do with each message received in peek-lock mode.
        #[arg(long, value_enum, default_value_t = Then::Complete)]
        then: Then,
        /// The dead-letter reason, with `--then dead-letter`.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Look at messages without locking them, from a sequence number on.
    Peek {
        queue: String,
        #[arg(short = 'n', long, default_value_t = 1)]
        count: u32,
        /// The first sequence number to look at.
        #[arg(long, default_value_t = 1)]
        from: i64,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum DlqCommand {
    /// The dead-lettered messages, with their reasons (not locked).
    List {
        queue: String,
        #[arg(short = 'n', long, default_value_t = 32)]
        count: u32,
    },
    /// Send dead-lettered messages back to their queue and remove them from the DLQ.
    Resubmit {
        queue: String,
        /// At most this many [default: all].
        #[arg(short = 'n', long)]
        count: Option<u64>,
    },
    /// Delete every dead-lettered message.
    Purge { queue: String },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub(crate) enum Mode {
    PeekLock,
    ReceiveAndDelete,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub(crate) enum Then {
    Complete,
    Abandon,
    DeadLetter,
    /// Leave the lock to lapse.
    Nothing,
}

fn dlq(queue: &str) -> String {
    format!("{queue}/$DeadLetterQueue")
}

pub(crate) async fn run(ctx: &Context, command: MessageCommand) -> Result<(), Failure> {
    let mut client = ctx.client().await?;
    let result = match command {
        MessageCommand::Send { queue, text, batch } => match text.as_deref() {
            Some(t) if t != "-" => {
                send(ctx, &mut client, &queue, vec![OutgoingMessage::new(t)]).await
            }
            _ => send_lines(ctx, &mut client, &queue, usize::from(batch)).await,
        },
        MessageCommand::Receive {
            queue,
            count,
            wait,
            mode,
            then,
            reason,
        } => {
            let settle = match then {
                Then::Complete => Some(Settle::Complete),
                Then::Abandon => Some(Settle::Abandon),
                Then::DeadLetter => Some(Settle::DeadLetter {
                    reason,
                    description: None,
                }),
                Then::Nothing => None,
            };
            let mode = match mode {
                Mode::PeekLock => ReceiveMode::PeekLock,
                Mode::ReceiveAndDelete => ReceiveMode::ReceiveAndDelete,
            };
            receive(
                ctx,
                &mut client,
                &queue,
                count,
                Duration::from_secs(wait),
                mode,
                settle,
            )
            .await
        }
        MessageCommand::Peek { queue, count, from } => {
            let got = client
                .peek(&queue, from, i32::try_from(count).unwrap_or(i32::MAX))
                .await
                .map_err(Failure::ServiceBus);
            got.map(|m| print_messages(ctx, &m))
        }
    };
    client.close().await;
    result
}

pub(crate) async fn run_dlq(ctx: &Context, command: DlqCommand) -> Result<(), Failure> {
    let mut client = ctx.client().await?;
    let result = match command {
        DlqCommand::List { queue, count } => client
            .peek(&dlq(&queue), 1, i32::try_from(count).unwrap_or(i32::MAX))
            .await
            .map_err(Failure::ServiceBus)
            .map(|m| print_messages(ctx, &m)),
        DlqCommand::Resubmit { queue, count } => {
            resubmit(ctx, &mut client, &queue, count.unwrap_or(u64::MAX)).await
        }
        DlqCommand::Purge { queue } => purge(ctx, &mut client, &queue).await,
    };
    client.close().await;
    result
}

async fn send(
    ctx: &Context,
    client: &mut Client,
    queue: &str,
    messages: Vec<OutgoingMessage>,
) -> Result<(), Failure> {
    let mut sender = client.sender(queue).await.map_err(Failure::ServiceBus)?;
    let sent = sender
        .send_all(&messages)
        .await
        .map_err(Failure::ServiceBus);
    sender.close().await;
    sent?;
    report_sent(ctx, queue, messages.len() as u64);
    Ok(())
}

fn report_sent(ctx: &Context, queue: &str, sent: u64) {
    if ctx.json {
        output::json(&json!({"queue": queue, "sent": sent}));
    } else {
        output::print(&format!("sent {sent} message(s) to {queue}"));
    }
}

async fn send_lines(
    ctx: &Context,
    client: &mut Client,
    queue: &str,
    batch: usize,
) -> Result<(), Failure> {
    if std::io::stdin().is_terminal() {
        return Err(Failure::Usage(
            "no message text: give it as an argument, or pipe lines on stdin".into(),
        ));
    }
    let mut sender = client.sender(queue).await.map_err(Failure::ServiceBus)?;
    let progress = progress_bar();
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut sent: u64 = 0;
    let mut pending = Vec::with_capacity(batch);
    let result = loop {
        let line = match lines.next_line().await {
            Ok(line) => line,
            Err(e) => break Err(Failure::Io(e)),
        };
        let end = line.is_none();
        if let Some(line) = line {
            pending.push(OutgoingMessage::new(
                line.strip_suffix('\r').unwrap_or(&line),
            ));
        }
        if pending.len() >= batch || (end && !pending.is_empty()) {
            if let Err(e) = sender.send_all(&pending).await {
                break Err(Failure::ServiceBus(e));
            }
            sent += pending.len() as u64;
            progress.inc(pending.len() as u64);
            pending.clear();
        }
        if end {
            break Ok(());
        }
    };
    progress.finish_and_clear();
    sender.close().await;
    if let Err(f) = result {
        eprintln!("sent {sent} message(s) to {queue} before the failure");
        return Err(f);
    }
    report_sent(ctx, queue, sent);
    Ok(())
}

async fn receive(
    ctx: &Context,
    client: &mut Client,
    queue: &str,
    count: u32,
    wait: Duration,
    mode: ReceiveMode,
    settle: Option<Settle>,
) -> Result<(), Failure> {
    let sb = Failure::ServiceBus;
    let mut receiver = client.receiver(queue, mode, None).await.map_err(sb)?;
    let got = receiver.receive(count as usize, wait).await.map_err(sb);
    let result = async {
        let got = got?;
        if let (ReceiveMode::PeekLock, Some(how)) = (mode, &settle) {
            for r in &got {
                receiver.settle(r, how).await.map_err(sb)?;
            }
        }
        Ok::<_, Failure>(got)
    }
    .await;
    receiver.close().await;
    let got = result?;
    let messages: Vec<ReceivedMessage> = got.into_iter().map(|r: Received| r.message).collect();
    print_messages(ctx, &messages);
    Ok(())
}

/// Takes dead-lettered messages one batch at a time, sends copies to the queue, and only
/// then completes them: a failure leaves a message in the DLQ (perhaps also sent), never lost.
async fn resubmit(
    ctx: &Context,
    client: &mut Client,
    queue: &str,
    max: u64,
) -> Result<(), Failure> {
    let sb = Failure::ServiceBus;
    let mut receiver = client
        .receiver(&dlq(queue), ReceiveMode::PeekLock, None)
        .await
        .map_err(sb)?;
    let mut sender = client.sender(queue).await.map_err(sb)?;
    let mut moved: u64 = 0;
    let result = async {
        while moved < max {
            let want = (max - moved).min(64) as usize;
            let got = receiver
                .receive(want, Duration::from_secs(1))
                .await
                .map_err(sb)?;
            if got.is_empty() {
                break;
            }
            let copies: Vec<OutgoingMessage> = got
                .iter()
                .map(|r| OutgoingMessage {
                    message_id: r.message.message_id.clone(),
                    ..OutgoingMessage::new(r.message.body.clone())
                })
                .collect();
            sender.send_all(&copies).await.map_err(sb)?;
            for r in &got {
                receiver.settle(r, &Settle::Complete).await.map_err(sb)?;
            }
            moved += got.len() as u64;
        }
        Ok::<_, Failure>(())
    }
    .await;
    receiver.close().await;
    sender.close().await;
    result?;
    if ctx.json {
        output::json(&json!({"queue": queue, "resubmitted": moved}));
    } else {
        output::print(&format!("resubmitted {moved} message(s) to {queue}"));
    }
    Ok(())
}

async fn purge(ctx: &Context, client: &mut Client, queue: &str) -> Result<(), Failure> {
    let sb = Failure::ServiceBus;
    let mut receiver = client
        .receiver(&dlq(queue), ReceiveMode::ReceiveAndDelete, Some(256))
        .await
        .map_err(sb)?;
    let mut purged: u64 = 0;
    let result = loop {
        match receiver.receive(256, Duration::from_secs(1)).await {
            Ok(got) if got.is_empty() => break Ok(()),
            Ok(got) => purged += got.len() as u64,
            Err(e) => break Err(sb(e)),
        }
    };
    receiver.close().await;
    result?;
    if ctx.json {
        output::json(&json!({"queue": queue, "purged": purged}));
    } else {
        output::print(&format!(
            "purged {purged} dead-lettered message(s) of {queue}"
        ));
    }
    Ok(())
}

fn message_json(m: &ReceivedMessage) -> Value {
    json!({
        "sequence_number": m.sequence_number,
        "message_id": m.message_id,
        "delivery_count": m.delivery_count,
        "enqueued_at": m.enqueued_at.map(output::time),
        "dead_letter_reason": m.dead_letter_reason,
        "dead_letter_description": m.dead_letter_description,
        "text": m.text(),
    })
}

fn print_messages(ctx: &Context, messages: &[ReceivedMessage]) {
    if ctx.json {
        output::json(&Value::Array(messages.iter().map(message_json).collect()));
        return;
    }
    let dead = messages.iter().any(|m| m.dead_letter_reason.is_some());
    let mut headers = vec!["SEQ", "ID", "DELIVERIES", "ENQUEUED"];
    if dead {
        headers.push("REASON");
    }
    headers.push("TEXT");
    let mut t = Table::new(&headers);
    for m in messages {
        let mut row = vec![
            m.sequence_number.map(|n| n.to_string()).unwrap_or_default(),
            m.message_id.clone().unwrap_or_default(),
            m.delivery_count.to_string(),
            m.enqueued_at.map(output::time).unwrap_or_default(),
        ];
        if dead {
            row.push(m.dead_letter_reason.clone().unwrap_or_default());
        }
        row.push(m.text());
        t.row(row);
    }
    t.print();
}
