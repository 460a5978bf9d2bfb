//! The Azure Service Bus front: queues over AMQP 1.0, as the official SDKs speak it.
//!
//! A connection arrives through [`ServiceBus::serve`]; the AMQP crate runs the protocol and
//! hands every link a client attaches to [`ServiceBus`], which routes it by address:
//! - `$cbs`: clients put their shared access tokens here ([`node`]);
//! - `<entity>/$management`: request/response operations on an entity ([`management`]);
//! - `<entity>` or `<entity>/$DeadLetterQueue`: a sender link enqueues ([`send`]), a
//!   receiver link delivers with peek-lock or receive-and-delete ([`receive`]).
//!
//! Each link runs in a task of its own and calls the engine; it never touches a store. What
//! the SDKs require of the broker, link by link, is in `docs/compatibility.md`.

pub mod address;
pub mod admin;
mod catalog;
mod listen;
mod management;
pub mod message;
pub mod namespace;
mod node;
mod receive;
pub mod sas;
mod send;
mod token;
pub mod topics;

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use hematite_amqp::types::definitions::{AmqpError, Error as AmqpErr, Role};
use hematite_amqp::types::sasl::SaslInit;
use hematite_amqp::{Attaching, LinkHandle, Peer, Service};
use hematite_engine::{Engine, QueueRef};

use crate::address::Node;
use crate::catalog::Catalog;
use crate::namespace::{Namespace, QueueProperties};
use crate::sas::{Grant, Right, Rights};

pub use hematite_amqp::{Config as AmqpConfig, InboundBudget};
pub use listen::{serve, Ports};

/// The Service Bus front over one namespace.
pub struct ServiceBus {
    engine: Engine,
    namespace: Namespace,
    /// The engine account that holds the namespace's queues.
    account: String,
    /// The queues that exist, configured or created since.
    catalog: Catalog,
    /// Other nodes change the store too ([`ServiceBus::follow_shared_store`]).
    shared: std::sync::atomic::AtomicBool,
}

/// What one connection has proved: a valid key over PLAIN, or tokens put on `$cbs`.
pub struct Connection {
    peer: Peer,
    /// The rights of the namespace key a PLAIN connection proved, for every entity.
    root: Option<Rights>,
    grants: Mutex<Vec<Grant>>,
    replies: node::Replies,
}

impl Connection {
    /// Whether the connection may use `path` for what `right` allows.
    pub(crate) fn authorized(&self, path: &str, right: Right) -> bool {
        if let Some(rights) = self.root {
            return rights.allow(right);
        }
        let now = now_secs();
        let mut grants = self.grants.lock().unwrap_or_else(|e| e.into_inner());
        grants.retain(|g| g.expires_at_secs > now);
        grants
            .iter()
            .any(|g| g.covers(path, now) && g.rights.allow(right))
    }
}

impl Connection {
    /// The latest expiry among the tokens that cover `path`: `None` for a connection that
    /// proved the namespace key, whose right does not lapse.
    fn authorized_until(&self, path: &str, right: Right) -> Option<i64> {
        if self.root.is_some() {
            return None;
        }
        let now = now_secs();
        let grants = self.grants.lock().unwrap_or_else(|e| e.into_inner());
        Some(
            grants
                .iter()
                .filter(|g| g.covers(path, now) && g.rights.allow(right))
                .map(|g| g.expires_at_secs)
                .max()
                .unwrap_or(now),
        )
    }
}

/// Stops its watcher when the link's task ends.
pub(crate) struct Watch(tokio::task::AbortHandle);

impl Drop for Watch {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Detaches the link with `amqp:unauthorized-access` when the tokens covering `path` have
/// all expired and none was put in their place, as Service Bus does; the SDKs renew theirs
/// before then. Nothing to watch on a connection that proved the namespace key.
pub(crate) fn detach_when_token_lapses(
    conn: &Arc<Connection>,
    path: &str,
    right: Right,
    handle: LinkHandle,
) -> Option<Watch> {
    conn.authorized_until(path, right)?;
    let conn = conn.clone();
    let path = path.to_owned();
    let task = tokio::spawn(async move {
        loop {
            let until = conn.authorized_until(&path, right).unwrap_or(i64::MAX);
            let now = now_secs();
            if until <= now {
                let e = amqp_error(
                    "amqp:unauthorized-access",
                    format!(
                        "The token for '{path}' has expired: put a new one on $cbs before it does."
                    ),
                );
                handle.detach(Some(e)).await;
                return;
            }
            tokio::time::sleep(std::time::Duration::from_secs((until - now) as u64)).await;
        }
    });
    Some(Watch(task.abort_handle()))
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

pub(crate) fn amqp_error(condition: &str, description: impl Into<String>) -> AmqpErr {
    AmqpErr::new(
        hematite_amqp::types::definitions::ErrorCondition::Custom(condition.into()),
        Some(description.into()),
        None,
    )
}

#[derive(Debug, thiserror::Error)]
#[error("cannot create Service Bus queue {queue}: {source}")]
pub struct SetupError {
    queue: String,
    source: hematite_engine::Error,
}

impl ServiceBus {
    /// The front over `namespace`: its configured queues are created in the engine or
    /// brought up to date (their messages kept), and those created over the administration
    /// API on earlier runs are served again.
    pub async fn new(engine: Engine, namespace: Namespace) -> Result<Arc<Self>, SetupError> {
        let account = format!("sb.{}", namespace.name.to_ascii_lowercase());
        let catalog = Catalog::load(engine.clone(), account.clone(), &namespace.queues)
            .await
            .map_err(|(queue, source)| SetupError { queue, source })?;
        Ok(Arc::new(ServiceBus {
            account,
            engine,
            namespace,
            catalog,
            shared: std::sync::atomic::AtomicBool::new(false),
        }))
    }

    /// The queue called `name` (any case), if it exists.
    pub fn queue(&self, name: &str) -> Option<Arc<QueueProperties>> {
        self.catalog.get(name)
    }

    /// For a store other nodes share: reads the catalog again every `every`, so entities
    /// other nodes create, change or delete are seen here too, and reads an entity missing
    /// here at once when a client asks for it ([`ServiceBus::ensure_known`]).
    pub fn follow_shared_store(self: &Arc<Self>, every: std::time::Duration) {
        self.shared
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(sb) = weak.upgrade() else { return };
                if let Err(e) = sb.catalog.refresh().await {
                    tracing::warn!(error = %e, "reading the Service Bus entities again failed");
                }
            }
        });
    }

    /// On a shared store, an entity this node does not know is read from the store before
    /// a client is told it does not exist.
    pub(crate) async fn ensure_known(&self, name: &str) {
        if !self.shared.load(std::sync::atomic::Ordering::Relaxed)
            || self.catalog.get(name).is_some()
            || self.catalog.topic(name).is_some()
        {
            return;
        }
        if let Err(e) = self.catalog.reload(name).await {
            tracing::warn!(entity = name, error = %e, "reading a Service Bus entity failed");
        }
    }

    /// Reads entity `name` (and its subscription `sub`) from a shared store again, so that an
    /// administrative request answers from what other nodes last wrote, not from a copy up
    /// to one refresh old. A store this node alone writes is never read again.
    pub(crate) async fn read_again(&self, name: &str, sub: Option<&str>) {
        if !self.shared.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let mut read = self.catalog.reload(name).await;
        if let (Ok(()), Some(sub)) = (&read, sub) {
            read = self.catalog.reload_subscription(name, sub).await;
        }
        if let Err(e) = read {
            tracing::warn!(entity = name, error = %e, "reading a Service Bus entity failed");
        }
    }

    pub fn namespace(&self) -> &Namespace {
        &self.namespace
    }

    fn queue_ref<'a>(&'a self, key: &'a str) -> QueueRef<'a> {
        QueueRef {
            account: &self.account,
            queue: key,
        }
    }

    /// The connection string a client uses against `host` (with `:port` when not 5672).
    pub fn connection_string(&self, host: &str) -> String {
        let key = &self.namespace.keys[0];
        format!(
            "Endpoint=sb://{host};SharedAccessKeyName={};SharedAccessKey={};UseDevelopmentEmulator=true;",
            key.name, key.value
        )
    }

    fn route(self: &Arc<Self>, conn: &Arc<Connection>, link: Attaching) {
        let ours = link.role();
        let address = match ours {
            Role::Receiver => link.attach.target.as_ref().and_then(|t| match t.as_ref() {
                hematite_amqp::types::messaging::TargetArchetype::Target(t) => t.address.clone(),
            }),
            Role::Sender => link.attach.source.as_ref().and_then(|s| s.address.clone()),
        };
        let address = address.unwrap_or_default();
        let node = address::parse(&address);
        let sb = Arc::clone(self);
        let conn = Arc::clone(conn);
        tokio::spawn(async move {
            match (node, ours) {
                (Some(Node::Cbs), Role::Receiver) => node::requests(sb, conn, link, None).await,
                (Some(Node::Management { name, sub }), Role::Receiver) => {
                    node::requests(sb, conn, link, Some((name, sub))).await
                }
                (Some(Node::Cbs | Node::Management { .. }), Role::Sender) => {
                    node::replies(conn, link, address::path(&address)).await
                }
                (Some(Node::Entity { name, sub }), Role::Receiver) => {
                    send::run(sb, conn, link, name, sub).await
                }
                (Some(Node::Entity { name, sub }), Role::Sender) => {
                    receive::run(sb, conn, link, name, sub).await
                }
                (None, _) => {
                    let e = amqp_error(
                        "amqp:not-found",
                        format!("The messaging entity '{address}' could not be found."),
                    );
                    link.refuse(e).await
                }
            }
        });
    }

    /// The entity behind a link, if the connection may use it; the error to refuse with if
    /// not.
    fn entity(
        &self,
        conn: &Connection,
        name: &str,
        path: &str,
        right: Right,
    ) -> Result<Arc<QueueProperties>, AmqpErr> {
        if !conn.authorized(path, right) {
            return Err(self.unauthorized(conn, path, right));
        }
        let host = conn.peer.hostname.as_deref().unwrap_or("localhost");
        let props = self.queue(name).ok_or_else(|| {
            if self.catalog.is_topic_entity(name) {
                return amqp_error(
                    "amqp:not-implemented",
                    format!("The messaging entity 'sb://{host}/{name}' is a topic or subscription: this server does not send to or receive from them yet."),
                );
            }
            amqp_error(
                "amqp:not-found",
                format!("The messaging entity 'sb://{host}/{name}' could not be found."),
            )
        })?;
        if !props.allows(right) {
            return Err(amqp_error(
                "com.microsoft:entity-disabled",
                format!(
                    "The messaging entity 'sb://{host}/{name}' is {}: its status forbids this operation.",
                    props.description.status.as_str()
                ),
            ));
        }
        Ok(props)
    }
}

impl ServiceBus {
    /// Azure's refusal for a claim the connection lacks.
    pub(crate) fn unauthorized(&self, conn: &Connection, path: &str, right: Right) -> AmqpErr {
        amqp_error(
            "amqp:unauthorized-access",
            format!(
                "Unauthorized access. '{}' claim(s) are required to perform this operation. Resource: 'sb://{}/{path}'.",
                right.name(),
                conn.peer.hostname.as_deref().unwrap_or("localhost")
            ),
        )
    }

    /// The rights of the namespace key PLAIN's user and password name, if they match one.
    fn plain_rights(&self, user: &str, pass: &str) -> Option<Rights> {
        self.namespace
            .keys
            .iter()
            .find(|k| k.name == user && k.value == pass)
            .map(|k| k.rights)
    }

    fn authenticate(&self, init: &SaslInit) -> bool {
        match init.mechanism.as_str() {
            // Tokens come later, over $cbs.
            "ANONYMOUS" | "MSSBCBS" => true,
            "PLAIN" => init
                .initial_response
                .as_deref()
                .and_then(|r| plain_key(r))
                .is_some_and(|(user, pass)| self.plain_rights(&user, &pass).is_some()),
            _ => false,
        }
    }
}

/// PLAIN's user and password (RFC 4616: authzid NUL authcid NUL passwd).
fn plain_key(response: &[u8]) -> Option<(String, String)> {
    let mut parts = response.split(|b| *b == 0);
    let _authzid = parts.next()?;
    let user = std::str::from_utf8(parts.next()?).ok()?.to_owned();
    let pass = std::str::from_utf8(parts.next()?).ok()?.to_owned();
    Some((user, pass))
}

/// The AMQP service: a handle on the front, so link tasks can hold it.
#[derive(Clone)]
pub struct Front(pub Arc<ServiceBus>);

impl Service for Front {
    type Connection = Connection;

    fn authenticate(&self, init: &SaslInit) -> bool {
        self.0.authenticate(init)
    }

    fn connect(&self, peer: &Peer) -> Result<Arc<Connection>, AmqpErr> {
        Ok(Arc::new(Connection {
            // Only PLAIN with a namespace key gets this far with credentials.
            root: peer
                .plain
                .as_ref()
                .and_then(|(user, pass)| self.0.plain_rights(user, pass)),
            peer: peer.clone(),
            grants: Mutex::new(Vec::new()),
            replies: node::Replies::default(),
        }))
    }

    fn attach(&self, conn: &Arc<Connection>, link: Attaching) {
        self.0.route(conn, link);
    }
}

/// A not-implemented refusal, for what this front does not serve yet.
pub(crate) fn not_implemented(what: &str) -> AmqpErr {
    AmqpErr::new(AmqpError::NotImplemented, Some(what.to_owned()), None)
}
