//! `hematite sb …`: Service Bus from the command line, over the public protocols only (AMQP
//! for messages, the administration API for queues), so it works against Azure Service Bus
//! as well as Hematite.
//!
//! It connects with `--connection-string` or `SERVICEBUS_CONNECTION_STRING`, else the local
//! default (`sb://localhost`, the emulator's key). Failures are one line with the Service Bus
//! condition (`amqp:not-found: …`, `409: …`) and the exit status of the other families.

mod messages;
mod queue;

use clap::{Args, Subcommand};
use hematite_servicebus_client::connection_string::LOCAL_DEFAULT;
use hematite_servicebus_client::{AdminClient, Client, ConnectionString};

use super::{Failure, EXIT_STATUS_HELP};

#[derive(Args, Debug)]
#[command(after_help = EXIT_STATUS_HELP)]
pub struct SbArgs {
    /// Service Bus connection string [default: the local emulator namespace on
    /// sb://localhost]. TLS unless it sets UseDevelopmentEmulator=true; a development CA is
    /// trusted through HEMATITE_CA_FILE or SSL_CERT_FILE.
    #[arg(
        long,
        env = "SERVICEBUS_CONNECTION_STRING",
        hide_env_values = true,
        global = true
    )]
    connection_string: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: SbCommand,
}

#[derive(Subcommand, Debug)]
enum SbCommand {
    /// Create, list, show, update and delete queues.
    #[command(subcommand)]
    Queue(queue::QueueCommand),
    #[command(flatten)]
    Messages(messages::MessageCommand),
    /// The dead-letter queue: list, resubmit to the queue, purge.
    #[command(subcommand)]
    Dlq(messages::DlqCommand),
}

/// What every command needs: where to connect and how to print.
pub(crate) struct Context {
    cs: ConnectionString,
    json: bool,
}

impl Context {
    fn admin(&self) -> Result<AdminClient, Failure> {
        AdminClient::new(&self.cs).map_err(Failure::ServiceBus)
    }

    async fn client(&self) -> Result<Client, Failure> {
        Client::connect(&self.cs).await.map_err(Failure::ServiceBus)
    }
}

pub async fn run(args: SbArgs) -> Result<(), Failure> {
    let cs = args.connection_string.as_deref().unwrap_or(LOCAL_DEFAULT);
    let ctx = Context {
        cs: ConnectionString::parse(cs).map_err(Failure::ServiceBus)?,
        json: args.json,
    };
    match args.command {
        SbCommand::Queue(c) => queue::run(&ctx, c).await,
        SbCommand::Messages(c) => messages::run(&ctx, c).await,
        SbCommand::Dlq(c) => messages::run_dlq(&ctx, c).await,
    }
}
