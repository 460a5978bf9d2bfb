//! `hematite serve` configuration: flags, their environment equivalents, and the typed result.
//!
//! Defaults serve with no flags: 127.0.0.1:10001 (the port the SDKs assume for
//! `UseDevelopmentStorage=true`), the well-known development account, data in ./hematite-data.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use hematite_net::budget::Budget;
use hematite_net::conns::Registry;
use hematite_net::http1::Limits;
use hematite_net::system;
use hematite_queue_api::accounts::Accounts;
use hematite_queue_api::oauth::{Mode, OAuth};
use hematite_queue_api::Options;
use hematite_servicebus::namespace::Namespace;
use hematite_servicebus::sas::{Key, Rights};
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
    #[arg(long, env = "HEMATITE_IN_MEMORY", conflicts_with = "store")]
    in_memory: bool,
    /// Keep everything in a PostgreSQL database (`postgres://user:password@host:port/db`)
    /// that several Hematite nodes can share, instead of the data directory.
    #[arg(long, env = "HEMATITE_STORE", value_name = "URL")]
    store: Option<String>,
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
    /// Serve HTTPS with this PEM certificate chain (leaf first); needs --tls-key.
    #[arg(
        long,
        env = "HEMATITE_TLS_CERT",
        value_name = "PEM",
        requires = "tls_key"
    )]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(
        long,
        env = "HEMATITE_TLS_KEY",
        value_name = "PEM",
        requires = "tls_cert"
    )]
    tls_key: Option<PathBuf>,
    /// Most client connections at once; at the cap the idlest or slowest is closed to admit a
    /// new one. Default: what the open-file limit (raised to its hard value) and memory allow.
    #[arg(long, env = "HEMATITE_MAX_CONNECTIONS", value_parser = clap::value_parser!(u64).range(1..))]
    max_connections: Option<u64>,
    /// Seconds a request head may take from its first byte.
    #[arg(long, env = "HEMATITE_HEADER_TIMEOUT", default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..))]
    header_timeout_secs: u64,
    /// Seconds a request body may take.
    #[arg(long, env = "HEMATITE_BODY_TIMEOUT", default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..))]
    body_timeout_secs: u64,
    /// Seconds a kept-alive connection may wait for its next request.
    #[arg(long, env = "HEMATITE_IDLE_TIMEOUT", default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..))]
    idle_timeout_secs: u64,
    /// Bytes per second below which a client taking a response is disconnected.
    #[arg(long, env = "HEMATITE_MIN_SEND_RATE", default_value_t = 150, value_parser = clap::value_parser!(u64).range(1..))]
    min_send_rate: u64,
    /// Accept OAuth bearer tokens signed by the keys in this JWKS or PEM file (needs TLS).
    #[arg(
        long,
        env = "HEMATITE_OAUTH_KEYS",
        value_name = "FILE",
        conflicts_with = "oauth"
    )]
    oauth_keys: Option<PathBuf>,
    /// `basic`: accept bearer tokens without checking their signature, still checking
    /// lifetime, issuer and audience (as Azurite's `--oauth basic`). For tests only.
    #[arg(long, env = "HEMATITE_OAUTH", value_enum)]
    oauth: Option<OAuthArg>,
    /// Also accept tokens whose issuer starts with this (repeatable).
    #[arg(long = "oauth-issuer", value_name = "PREFIX")]
    oauth_issuers: Vec<String>,
    /// Also accept tokens for this audience (repeatable).
    #[arg(long = "oauth-audience", value_name = "AUDIENCE")]
    oauth_audiences: Vec<String>,
    /// MiB that large responses waiting for their readers may hold in all. Default: a
    /// sixteenth of memory, between 64 MiB and 1 GiB.
    #[arg(long, env = "HEMATITE_RESPONSE_MEMORY_MB", value_parser = clap::value_parser!(u64).range(1..))]
    response_memory_mb: Option<u64>,
    /// Where Service Bus clients connect over AMQP. Default 127.0.0.1:5672; when that default
    /// is taken, Service Bus is not served and the banner says so.
    #[arg(long, env = "HEMATITE_AMQP_LISTEN", value_name = "ADDR")]
    amqp_listen: Option<SocketAddr>,
    /// The Service Bus HTTP port: the administration API and `GET /health`, over HTTPS too
    /// with --tls-cert. Default 127.0.0.1:5300, skipped like --amqp-listen's default when
    /// taken.
    #[arg(long, env = "HEMATITE_SB_ADMIN_LISTEN", value_name = "ADDR")]
    sb_admin_listen: Option<SocketAddr>,
    /// Where Service Bus clients connect over AMQPS, with the certificate of --tls-cert
    /// (served only then). Default 127.0.0.1:5671.
    #[arg(long, env = "HEMATITE_AMQPS_LISTEN", value_name = "ADDR")]
    amqps_listen: Option<SocketAddr>,
    /// The Service Bus emulator's config.json: the namespace's queues and their properties.
    /// Without it: the emulator's default, one queue named queue.1.
    #[arg(long, env = "HEMATITE_SB_CONFIG", value_name = "FILE")]
    sb_config: Option<PathBuf>,
    /// A Service Bus namespace key, NAME:KEY[:RIGHTS] with RIGHTS a comma list of Send,
    /// Listen and Manage (default Manage, which includes both). Repeatable; given, the keys
    /// replace the emulator's RootManageSharedAccessKey=SAS_KEY_VALUE.
    #[arg(long = "sb-key", value_name = "NAME:KEY[:RIGHTS]")]
    sb_keys: Vec<String>,
    /// Serve the Queue REST API only.
    #[arg(long, env = "HEMATITE_NO_SERVICEBUS")]
    no_servicebus: bool,
}

/// Default Service Bus ports, as the emulator's.
const DEFAULT_AMQP: &str = "127.0.0.1:5672";
const DEFAULT_SB_ADMIN: &str = "127.0.0.1:5300";
const DEFAULT_AMQPS: &str = "127.0.0.1:5671";

/// Where Service Bus is served, and over which namespace.
pub struct ServiceBusConfig {
    pub amqp: SocketAddr,
    /// The address was given: failing to bind it is an error, not a skip.
    pub amqp_explicit: bool,
    pub admin: SocketAddr,
    pub admin_explicit: bool,
    /// Served only with a certificate.
    pub amqps: SocketAddr,
    pub amqps_explicit: bool,
    /// The certificate chain and key: AMQPS, and TLS on every Service Bus port.
    pub tls: Option<(PathBuf, PathBuf)>,
    pub namespace: Namespace,
    /// The store is shared with other nodes: follow the entities they create.
    pub shared_store: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum OAuthArg {
    /// Check everything but the signature.
    Basic,
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
    /// A PostgreSQL database, by URL.
    Postgres(String),
}

pub struct Config {
    pub listen: SocketAddr,
    pub store: StoreChoice,
    pub accounts: Accounts,
    pub options: Options,
    pub net: NetConfig,
    /// The listener's connections, which the response budget may shed.
    pub registry: Arc<Registry>,
    pub servicebus: Option<ServiceBusConfig>,
}

/// How the listener faces clients.
pub struct NetConfig {
    /// The certificate chain and key to serve HTTPS with.
    pub tls: Option<(PathBuf, PathBuf)>,
    pub max_connections: usize,
    pub limits: Limits,
    pub response_memory: usize,
}

impl ServeArgs {
    pub fn resolve(self) -> anyhow::Result<Config> {
        let servicebus = if self.no_servicebus {
            None
        } else {
            Some(self.servicebus()?)
        };
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
        let nofile = system::raise_nofile_limit();
        let memory = system::total_memory();
        let net = NetConfig {
            tls: self.tls_cert.zip(self.tls_key),
            max_connections: self.max_connections.map_or_else(
                || system::default_connection_cap(nofile, memory),
                |n| usize::try_from(n).unwrap_or(usize::MAX),
            ),
            limits: Limits {
                idle: Duration::from_secs(self.idle_timeout_secs),
                head: Duration::from_secs(self.header_timeout_secs),
                body: Duration::from_secs(self.body_timeout_secs),
                min_send_rate: self.min_send_rate,
                ..hematite_queue_api::server::default_limits()
            },
            response_memory: self.response_memory_mb.map_or_else(
                || system::default_response_budget(memory),
                |mb| usize::try_from(mb << 20).unwrap_or(usize::MAX),
            ),
        };
        let registry = Registry::new(net.max_connections);
        let oauth = match (&self.oauth_keys, self.oauth) {
            (Some(path), _) => Some(OAuth::signed(path)?),
            (None, Some(OAuthArg::Basic)) => Some(OAuth::basic()),
            (None, None) => None,
        }
        .map(|mut o| {
            o.issuers = self.oauth_issuers.clone();
            o.audiences = self.oauth_audiences.clone();
            Arc::new(o)
        });
        if oauth.is_some() && net.tls.is_none() {
            anyhow::bail!(
                "OAuth needs HTTPS, as Azure Storage does: give --tls-cert and --tls-key too"
            );
        }
        Ok(Config {
            servicebus,
            listen: self.listen,
            store: if let Some(url) = self.store {
                if !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
                    anyhow::bail!(
                        "--store takes a PostgreSQL URL (postgres://user:password@host:port/database), not {url:?}"
                    );
                }
                StoreChoice::Postgres(url)
            } else if self.in_memory {
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
                budget: Budget::new(net.response_memory, Some(registry.clone())),
                oauth,
            },
            net,
            registry,
        })
    }
}

/// `NAME:KEY[:RIGHTS]`. The key is any text (Service Bus keys are base64, but the emulator's
/// is `SAS_KEY_VALUE`), so a key holding `:` needs RIGHTS given after it.
fn sb_key(spec: &str) -> anyhow::Result<Key> {
    let (name, rest) = spec
        .split_once(':')
        .with_context(|| format!("--sb-key {spec:?}: expected NAME:KEY[:RIGHTS]"))?;
    let (value, rights) = match rest.rsplit_once(':') {
        Some((value, rights)) if Rights::parse(rights).is_some() => (value, Rights::parse(rights)),
        _ => (rest, Some(Rights::ALL)),
    };
    anyhow::ensure!(
        !name.is_empty() && !value.is_empty(),
        "--sb-key {spec:?}: the name and the key must not be empty"
    );
    Ok(Key {
        name: name.to_owned(),
        value: value.to_owned(),
        rights: rights.unwrap_or(Rights::ALL),
    })
}

impl ServeArgs {
    fn servicebus(&self) -> anyhow::Result<ServiceBusConfig> {
        let namespace = match &self.sb_config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                Namespace::from_emulator_config(&text)
                    .with_context(|| format!("reading {}", path.display()))?
            }
            None => Namespace::default(),
        };
        let mut namespace = namespace;
        if !self.sb_keys.is_empty() {
            namespace.keys = self
                .sb_keys
                .iter()
                .map(|spec| sb_key(spec))
                .collect::<anyhow::Result<_>>()?;
        }
        let default = |s: &str| s.parse::<SocketAddr>().context("a default address");
        Ok(ServiceBusConfig {
            amqp: self.amqp_listen.map_or_else(|| default(DEFAULT_AMQP), Ok)?,
            amqp_explicit: self.amqp_listen.is_some(),
            admin: self
                .sb_admin_listen
                .map_or_else(|| default(DEFAULT_SB_ADMIN), Ok)?,
            admin_explicit: self.sb_admin_listen.is_some(),
            amqps: self
                .amqps_listen
                .map_or_else(|| default(DEFAULT_AMQPS), Ok)?,
            amqps_explicit: self.amqps_listen.is_some(),
            tls: self.tls_cert.clone().zip(self.tls_key.clone()),
            namespace,
            shared_store: self.store.is_some(),
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
            StoreChoice::Postgres(url) => format!(
                "PostgreSQL at {} (durable: answered after COMMIT)",
                redact_password(url)
            ),
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
        let scheme = if self.net.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let oauth = match self.options.oauth.as_deref().map(|o| &o.mode) {
            None => "off",
            Some(Mode::Signed(_)) => "bearer tokens signed by the --oauth-keys keys",
            Some(Mode::Basic) => "BASIC: token signatures are NOT checked (tests only)",
        };
        let mut out = format!(
            "Hematite {} listening on {scheme}://{addr}\nStore: {store}\nConnections: at most {}\nOAuth: {oauth}\n",
            env!("CARGO_PKG_VERSION"),
            self.net.max_connections
        );
        for a in self.accounts.iter() {
            out.push_str(&format!(
                "Connection string for {name}:\n  DefaultEndpointsProtocol={scheme};AccountName={name};AccountKey={key};QueueEndpoint={scheme}://{host}/{name};QueueSecondaryEndpoint={scheme}://{host}/{name}-secondary;\n",
                name = a.name,
                key = a.key_b64
            ));
        }
        out.trim_end().to_owned()
    }
}

/// A database URL with its password replaced, for the banner and logs.
fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_bus_keys_take_rights_or_default_to_manage() {
        let k = sb_key("listener:abc=:Listen").expect("parses");
        assert_eq!((k.name.as_str(), k.value.as_str()), ("listener", "abc="));
        assert_eq!(k.rights, Rights::parse("Listen").expect("rights"));
        let root = sb_key("RootManageSharedAccessKey:SAS_KEY_VALUE").expect("parses");
        assert_eq!(root.rights, Rights::ALL);
        // A key holding ':' keeps it when what follows the last ':' is not rights.
        assert_eq!(sb_key("k:a:b").expect("parses").value, "a:b");
        for bad in ["nokey", ":v", "k:"] {
            assert!(sb_key(bad).is_err(), "{bad}");
        }
    }
}
