//! `hematite sas queue|account`: shared access signatures, signed locally with the account key
//! from the connection string (nothing is sent).
//!
//! The token is printed alone so it can be captured (`TOKEN=$(hematite sas …)`); `--json` adds
//! the full URL and the validity window.

use clap::{Args, Subcommand};
use hematite_client::protocol::{
    AccountPermissions, AccountSasBuilder, ResourceTypes, ServicePermissions, ServiceSasBuilder,
};
use hematite_queue_protocol::datetime::parse_iso8601;
use serde_json::json;
use time::OffsetDateTime;

use super::output;
use super::{Connection, Failure, EXIT_STATUS_HELP};

#[derive(Args, Debug)]
#[command(after_help = EXIT_STATUS_HELP)]
pub struct SasArgs {
    #[command(flatten)]
    conn: Connection,
    #[command(subcommand)]
    command: SasCommand,
}

#[derive(Subcommand, Debug)]
enum SasCommand {
    /// A service SAS for one queue.
    Queue {
        name: String,
        /// Letters from `raup`: read/peek, add, update, process (receive and delete).
        #[arg(long, required_unless_present = "policy")]
        permissions: Option<String>,
        /// A stored access policy of the queue that supplies what the token leaves out.
        #[arg(long)]
        policy: Option<String>,
        #[command(flatten)]
        window: Window,
    },
    /// An account SAS for the queue service.
    Account {
        /// Letters from `rwdlacup`: read, write, delete, list, add, create, update, process.
        #[arg(long)]
        permissions: String,
        /// Letters from `sco`: service, container (queue), object (message).
        #[arg(long, default_value = "sco")]
        resource_types: String,
        #[command(flatten)]
        window: Window,
    },
}

/// When and from where the token works.
#[derive(Args, Debug)]
struct Window {
    /// Expiry, ISO 8601 (e.g. 2030-01-01T00:00:00Z) [default: --expires-in from now].
    #[arg(long, conflicts_with = "expires_in")]
    expiry: Option<String>,
    /// Seconds from now until expiry, when --expiry is not given [default: 3600, or none with
    /// --policy].
    #[arg(long, value_name = "SECONDS")]
    expires_in: Option<u64>,
    /// Start, ISO 8601 [default: valid at once].
    #[arg(long)]
    start: Option<String>,
    /// Allowed client address or range (`a.b.c.d` or `a.b.c.d-e.f.g.h`).
    #[arg(long)]
    ip: Option<String>,
    /// Refuse plain HTTP (`spr=https`).
    #[arg(long)]
    https_only: bool,
}

impl Window {
    /// (start, expiry); the expiry defaults to an hour from now unless a policy supplies it.
    fn times(
        &self,
        has_policy: bool,
    ) -> Result<(Option<OffsetDateTime>, Option<OffsetDateTime>), Failure> {
        let start = self
            .start
            .as_deref()
            .map(|s| date(s, "--start"))
            .transpose()?;
        let expiry = match (&self.expiry, self.expires_in) {
            (Some(e), _) => Some(date(e, "--expiry")?),
            (None, Some(secs)) => Some(in_seconds(secs)?),
            (None, None) if has_policy => None,
            (None, None) => Some(in_seconds(3600)?),
        };
        Ok((start, expiry))
    }

    fn protocol(&self) -> Option<String> {
        self.https_only.then(|| "https".to_owned())
    }
}

fn date(s: &str, flag: &str) -> Result<OffsetDateTime, Failure> {
    parse_iso8601(s).ok_or_else(|| {
        Failure::Usage(format!(
            "{flag} {s:?} is not an ISO 8601 time such as 2030-01-01T00:00:00Z"
        ))
    })
}

fn in_seconds(secs: u64) -> Result<OffsetDateTime, Failure> {
    i64::try_from(secs)
        .ok()
        .and_then(|s| OffsetDateTime::now_utc().checked_add(time::Duration::seconds(s)))
        .ok_or_else(|| Failure::Usage(format!("--expires-in {secs} is too far away")))
}

fn letters<T: std::str::FromStr>(s: &str, flag: &str, allowed: &str) -> Result<T, Failure> {
    s.parse()
        .map_err(|_| Failure::Usage(format!("{flag} {s:?} may only use letters of {allowed:?}")))
}

pub async fn run(args: SasArgs) -> Result<(), Failure> {
    let service = args.conn.service()?;
    let (token, url, window) = match &args.command {
        SasCommand::Queue {
            name,
            permissions,
            policy,
            window,
        } => {
            let (start, expiry) = window.times(policy.is_some())?;
            let builder = ServiceSasBuilder {
                permissions: permissions
                    .as_deref()
                    .map(|p| letters::<ServicePermissions>(p, "--permissions", "raup"))
                    .transpose()?,
                start,
                expiry,
                identifier: policy.clone(),
                ip: window.ip.clone(),
                protocol: window.protocol(),
                ..Default::default()
            };
            let q = service.queue_client(name);
            let token = q.generate_sas(&builder)?;
            let url = format!("{}?{token}", q.url());
            (token, url, (start, expiry))
        }
        SasCommand::Account {
            permissions,
            resource_types,
            window,
        } => {
            let (start, expiry) = window.times(false)?;
            let builder = AccountSasBuilder {
                permissions: letters::<AccountPermissions>(
                    permissions,
                    "--permissions",
                    "rwdlacup",
                )?,
                resource_types: letters::<ResourceTypes>(
                    resource_types,
                    "--resource-types",
                    "sco",
                )?,
                start,
                expiry,
                ip: window.ip.clone(),
                protocol: window.protocol(),
                ..Default::default()
            };
            let token = service.generate_account_sas(&builder)?;
            let url = format!("{}/?{token}", service.url().as_str().trim_end_matches('/'));
            (token, url, (start, expiry))
        }
    };
    if args.conn.json {
        output::json(&json!({
            "token": token,
            "url": url,
            "start": window.0.map(output::time),
            "expiry": window.1.map(output::time),
        }));
    } else {
        output::print(&token);
    }
    Ok(())
}
