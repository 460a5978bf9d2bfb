//! `hematite queue|message|sas|sb`: a command line over `hematite-client` (and, for `sb`,
//! `hematite-servicebus-client`), for poking at any Queue or Service Bus endpoint (Hematite,
//! the emulators or real Azure) without writing code.
//!
//! Each family lives in its own module; this one holds what they share: where to connect,
//! `--json`, and how a failure becomes one line on stderr and an exit status.
//!
//! Exit statuses: 0 success, 1 any other failure (transport, 5xx, …), 2 usage (bad flags or
//! arguments), 3 not found (404), 4 conflict (409, e.g. `QueueAlreadyExists`), 5 refused
//! (401/403: bad key, SAS lacking a permission).

pub mod dev_cert;
pub mod message;
pub mod output;
pub mod queue;
pub mod sas;
pub mod sb;

use clap::Args;
use hematite_client::{Error, QueueServiceClient};

/// The connection string used when none is given: the local emulator account on
/// 127.0.0.1:10001, which `hematite serve` serves by default.
pub const LOCAL_DEFAULT: &str = "UseDevelopmentStorage=true";

/// Printed under every family's `--help`.
pub const EXIT_STATUS_HELP: &str =
    "Exit status: 0 ok, 1 failure, 2 usage, 3 not found, 4 conflict, 5 refused (401/403).";

/// Where to connect and how to print; `global`, so they go before or after the subcommand.
#[derive(Args, Debug, Clone)]
pub struct Connection {
    /// Storage connection string [default: UseDevelopmentStorage=true, i.e. 127.0.0.1:10001]
    #[arg(
        long,
        env = "AZURE_STORAGE_CONNECTION_STRING",
        hide_env_values = true,
        global = true
    )]
    pub connection_string: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

impl Connection {
    pub fn service(&self) -> Result<QueueServiceClient, Failure> {
        let cs = self.connection_string.as_deref().unwrap_or(LOCAL_DEFAULT);
        QueueServiceClient::from_connection_string(cs).map_err(Failure::Client)
    }
}

/// Why a command failed.
#[derive(Debug)]
pub enum Failure {
    Client(Error),
    /// Arguments that parse but make no sense together.
    Usage(String),
    Io(std::io::Error),
    /// A Service Bus call (`hematite sb`).
    ServiceBus(hematite_servicebus_client::Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Self::Client(e)
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Client(e) => write!(f, "{e}"),
            Self::Usage(m) => f.write_str(m),
            Self::Io(e) => write!(f, "{e}"),
            Self::ServiceBus(e) => write!(f, "{e}"),
        }
    }
}

impl Failure {
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Usage(_) => 2,
            Self::Io(_) => 1,
            Self::ServiceBus(e) => service_bus_exit_code(e),
            Self::Client(e) => match e {
                Error::Config(_) | Error::InvalidArgument(_) => 2,
                Error::Service(s) => match s.status {
                    404 => 3,
                    409 => 4,
                    401 | 403 => 5,
                    _ => 1,
                },
                Error::Transport(_) | Error::Response(_) => 1,
            },
        }
    }
}

/// The same statuses for Service Bus: by HTTP status from the administration API, by
/// condition over AMQP.
fn service_bus_exit_code(e: &hematite_servicebus_client::Error) -> i32 {
    use hematite_servicebus_client::Error as E;
    match e {
        E::Config(_) => 2,
        E::Admin { status, .. } => match status {
            404 => 3,
            409 => 4,
            401 | 403 => 5,
            _ => 1,
        },
        E::Amqp { condition, .. } => match condition.as_str() {
            "amqp:not-found" => 3,
            "com.microsoft:entity-already-exists" => 4,
            "amqp:unauthorized-access" => 5,
            _ => 1,
        },
        E::Transport(_) => 1,
    }
}

/// Ends a CLI command: nothing on success; otherwise `error: …` on stderr and the exit status.
pub fn finish(result: Result<(), Failure>) -> anyhow::Result<()> {
    match result {
        Ok(()) => Ok(()),
        Err(f) => {
            eprintln!("error: {f}");
            std::process::exit(f.exit_code());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hematite_client::ServiceError;

    fn service(status: u16) -> Failure {
        Failure::Client(Error::from(ServiceError {
            status,
            code: None,
            message: String::new(),
            request_id: None,
        }))
    }

    #[test]
    fn exit_codes() {
        assert_eq!(service(404).exit_code(), 3);
        assert_eq!(service(409).exit_code(), 4);
        assert_eq!(service(403).exit_code(), 5);
        assert_eq!(service(400).exit_code(), 1);
        assert_eq!(service(503).exit_code(), 1);
        assert_eq!(Failure::Usage("x".into()).exit_code(), 2);
        assert_eq!(Failure::Client(Error::Config("x".into())).exit_code(), 2);
    }
}
