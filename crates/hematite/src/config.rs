//! `hematite serve` configuration: flags, their environment equivalents, and the typed result.
//!
//! Defaults serve with no flags: 127.0.0.1:10001 (the port the SDKs assume for
//! `UseDevelopmentStorage=true`), the well-known development account, data in ./hematite-data.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use hematite_queue_api::accounts::Accounts;
use hematite_queue_api::Options;
use hematite_store_embedded::Durability;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "HEMATITE_LISTEN", default_value = "127.0.0.1:10001")]
    listen: SocketAddr,
    /// Directory for durable data.
    #[arg(long, env = "HEMATITE_DATA_DIR", default_value = "./hematite-data")]
    data_dir: PathBuf,
    /// Keep everything in memory; nothing survives a restart.
    #[arg(long, env = "HEMATITE_IN_MEMORY")]
    in_memory: bool,
    /// An account as NAME:BASE64KEY[:BASE64KEY2]; repeatable. Replaces the default account.
    #[arg(long = "account", value_name = "NAME:KEY")]
    accounts: Vec<String>,
    /// Accounts in Azurite's format: name1:key1[:key2];name2:key1. Replaces the default account.
    #[arg(long, env = "AZURITE_ACCOUNTS", value_name = "LIST")]
    azurite_accounts: Option<String>,
    /// When an acknowledged write is on disk: `strict` (fsync before every answer) or
    /// `relaxed` (fsync at most every --flush-interval-ms; a crash may lose that much).
    #[arg(
        long,
        env = "HEMATITE_DURABILITY",
        value_enum,
        default_value = "strict"
    )]
    durability: DurabilityArg,
    /// With --durability relaxed: the longest an acknowledged write waits for its fsync.
    #[arg(long, env = "HEMATITE_FLUSH_INTERVAL_MS", default_value_t = 100)]
    flush_interval_ms: u64,
    /// Size of each log segment file of the embedded store, in MiB.
    #[arg(long, env = "HEMATITE_SEGMENT_MB", default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=1024))]
    segment_mb: u64,
    /// Reject x-ms-version values newer than this build knows (by default they get the newest
    /// behaviour).
    #[arg(long, env = "HEMATITE_STRICT_API_VERSION")]
    strict_api_version: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum DurabilityArg {
    Strict,
    Relaxed,
}

#[derive(Debug)]
pub enum StoreChoice {
    Memory,
    Embedded {
        dir: PathBuf,
        options: hematite_store_embedded::Options,
    },
}

pub struct Config {
    pub listen: SocketAddr,
    pub store: StoreChoice,
    pub accounts: Accounts,
    pub options: Options,
}

impl ServeArgs {
    pub fn resolve(self) -> anyhow::Result<Config> {
        let mut accounts = Accounts::default();
        if let Some(list) = &self.azurite_accounts {
            accounts
                .add_azurite_list(list)
                .context("reading AZURITE_ACCOUNTS")?;
        }
        for spec in &self.accounts {
            accounts.add_spec(spec).context("reading --account")?;
        }
        if accounts.is_empty() {
            accounts = Accounts::development();
        }
        Ok(Config {
            listen: self.listen,
            store: if self.in_memory {
                StoreChoice::Memory
            } else {
                StoreChoice::Embedded {
                    dir: self.data_dir,
                    options: hematite_store_embedded::Options {
                        durability: match self.durability {
                            DurabilityArg::Strict => Durability::Strict,
                            DurabilityArg::Relaxed => Durability::Relaxed {
                                flush_every: Duration::from_millis(self.flush_interval_ms.max(1)),
                            },
                        },
                        segment_bytes: self.segment_mb * 1024 * 1024,
                        ..Default::default()
                    },
                }
            },
            accounts,
            options: Options {
                strict_api_version: self.strict_api_version,
            },
        })
    }
}

impl Config {
    /// What is printed at start: where it listens and a connection string per account.
    pub fn banner(&self, addr: SocketAddr) -> String {
        let host = if addr.ip().is_unspecified() {
            format!("127.0.0.1:{}", addr.port())
        } else {
            addr.to_string()
        };
        let store = match &self.store {
            StoreChoice::Memory => "in memory (nothing is kept)".to_owned(),
            StoreChoice::Embedded { dir, options } => match options.durability {
                Durability::Strict => {
                    format!("{} (durable: fsync before every answer)", dir.display())
                }
                Durability::Relaxed { flush_every } => format!(
                    "{} (RELAXED durability: a crash may lose up to {} ms of acknowledged writes)",
                    dir.display(),
                    flush_every.as_millis()
                ),
            },
        };
        let mut out = format!(
            "Hematite {} listening on http://{addr}\nStore: {store}\n",
            env!("CARGO_PKG_VERSION")
        );
        for a in self.accounts.iter() {
            out.push_str(&format!(
                "Connection string for {name}:\n  DefaultEndpointsProtocol=http;AccountName={name};AccountKey={key};QueueEndpoint=http://{host}/{name};QueueSecondaryEndpoint=http://{host}/{name}-secondary;\n",
                name = a.name,
                key = a.key_b64
            ));
        }
        out.trim_end().to_owned()
    }
}
