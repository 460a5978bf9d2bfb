//! The namespace's entities: which queues exist and with what description, kept durable in
//! the engine beside their messages, so that a queue created over the administration API
//! survives a restart exactly like one from `config.json`.
//!
//! Each queue's description is stored in its engine queue's metadata (its name as created,
//! the description's XML and its dates), so creating a queue and recording how it was
//! created is one store operation, and deleting it removes both. The catalog keeps a copy in
//! memory for lookups on every attach; administrative changes are serialised so the copy and
//! the store agree.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use hematite_engine::{Created, Engine, Error, Metadata, QueueRef, QueueSettings, Timestamp};
use hematite_queue_protocol::datetime::{format_iso8601_7, parse_iso8601};
use hematite_queue_protocol::xml::dom;
use hematite_servicebus_protocol::QueueDescription;
use time::OffsetDateTime;

use crate::namespace::QueueProperties;

const NAME: &str = "sb-name";
const DESCRIPTION: &str = "sb-description";
const CREATED: &str = "sb-created";
const UPDATED: &str = "sb-updated";

/// The most entities a namespace holds: Azure's quota for the Basic and Standard tiers. It
/// also bounds what a client with Manage rights can make the server keep in memory.
pub const MAX_ENTITIES: usize = 10_000;

/// Why an administrative change did not happen.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("the entity already exists")]
    Exists,
    #[error("the entity does not exist")]
    NotFound,
    #[error("the namespace holds its maximum of {MAX_ENTITIES} entities")]
    Quota,
    #[error(transparent)]
    Engine(#[from] Error),
}

pub(crate) struct Catalog {
    engine: Engine,
    account: String,
    queues: RwLock<BTreeMap<String, Arc<QueueProperties>>>,
    /// Serialises changes, so two creates of one name cannot both succeed in memory.
    changes: tokio::sync::Mutex<()>,
}

impl Catalog {
    /// The catalog of `account`: every queue the engine holds there, with the configured
    /// ones (re)applied first, so `config.json` wins for the queues it declares.
    pub async fn load(
        engine: Engine,
        account: String,
        configured: &BTreeMap<String, QueueProperties>,
    ) -> Result<Catalog, (String, Error)> {
        let catalog = Catalog {
            engine,
            account,
            queues: RwLock::new(BTreeMap::new()),
            changes: tokio::sync::Mutex::new(()),
        };
        for (key, props) in configured {
            catalog
                .apply_configured(key, props)
                .await
                .map_err(|e| (props.name.clone(), e))?;
        }
        catalog.read_all().await.map_err(|e| (String::new(), e))?;
        Ok(catalog)
    }

    fn q<'a>(&'a self, key: &'a str) -> QueueRef<'a> {
        QueueRef {
            account: &self.account,
            queue: key,
        }
    }

    async fn apply_configured(&self, key: &str, props: &QueueProperties) -> Result<(), Error> {
        let now = date(self.engine.now());
        let q = self.q(key);
        match self.engine.queue_info(q).await {
            Ok(info) => {
                let kept = from_metadata(key, &info.metadata);
                let props = QueueProperties {
                    created_at: kept.map_or(now, |k| k.created_at),
                    updated_at: now,
                    ..props.clone()
                };
                self.rewrite(key, &props).await
            }
            Err(Error::QueueNotFound) => {
                let props = QueueProperties {
                    created_at: now,
                    updated_at: now,
                    ..props.clone()
                };
                self.store_new(key, &props).await.map(drop)
            }
            Err(e) => Err(e),
        }
    }

    /// Creates the engine queue of `props` with its rules and its description in one write.
    async fn store_new(&self, key: &str, props: &QueueProperties) -> Result<Created, Error> {
        let settings = QueueSettings {
            rules: props.rules(),
        };
        self.engine
            .create_queue_with(self.q(key), to_metadata(props), settings)
            .await
    }

    /// Rewrites an existing queue's description, then its rules (loading brings rules up to
    /// a description if a crash fell between the two).
    async fn rewrite(&self, key: &str, props: &QueueProperties) -> Result<(), Error> {
        let q = self.q(key);
        self.engine.set_metadata(q, to_metadata(props)).await?;
        self.engine.set_rules(q, props.rules()).await
    }

    async fn read_all(&self) -> Result<(), Error> {
        let mut start: Option<String> = None;
        let mut found = BTreeMap::new();
        loop {
            let page = self
                .engine
                .list_queues(&self.account, "", start.as_deref(), 1000)
                .await?;
            for s in page.queues {
                // A queue from before descriptions were stored takes the defaults.
                let props = from_metadata(&s.name, &s.metadata)
                    .unwrap_or_else(|| QueueProperties::new(&s.name));
                // An update writes the description, then the rules: a crash between the two
                // left the rules behind, and this brings them up (a no-op when they agree).
                self.engine
                    .set_rules(self.q(&s.name), props.rules())
                    .await?;
                found.insert(s.name, Arc::new(props));
            }
            match page.next {
                Some(next) => start = Some(next),
                None => break,
            }
        }
        *self.queues.write().unwrap_or_else(|e| e.into_inner()) = found;
        Ok(())
    }

    /// The queue called `name` (any case).
    pub fn get(&self, name: &str) -> Option<Arc<QueueProperties>> {
        let queues = self.queues.read().unwrap_or_else(|e| e.into_inner());
        queues.get(&name.to_ascii_lowercase()).cloned()
    }

    /// Up to `top` queues after the first `skip`, in name order, and whether more follow.
    pub fn list(&self, skip: usize, top: usize) -> (Vec<Arc<QueueProperties>>, bool) {
        let queues = self.queues.read().unwrap_or_else(|e| e.into_inner());
        let page: Vec<_> = queues.values().skip(skip).take(top).cloned().collect();
        let more = queues.len() > skip.saturating_add(page.len());
        (page, more)
    }

    pub async fn create(
        &self,
        name: &str,
        description: QueueDescription,
    ) -> Result<Arc<QueueProperties>, CatalogError> {
        let _change = self.changes.lock().await;
        let key = name.to_ascii_lowercase();
        if self.get(&key).is_some() {
            return Err(CatalogError::Exists);
        }
        if self.len() >= MAX_ENTITIES {
            return Err(CatalogError::Quota);
        }
        let now = date(self.engine.now());
        let props = QueueProperties {
            name: name.to_owned(),
            description,
            created_at: now,
            updated_at: now,
        };
        match self.store_new(&key, &props).await {
            Ok(Created::New) => {}
            Ok(Created::AlreadyIdentical) | Err(Error::QueueAlreadyExists) => {
                return Err(CatalogError::Exists)
            }
            Err(e) => return Err(e.into()),
        }
        Ok(self.insert(key, props))
    }

    pub async fn update(
        &self,
        name: &str,
        description: QueueDescription,
    ) -> Result<Arc<QueueProperties>, CatalogError> {
        let _change = self.changes.lock().await;
        let key = name.to_ascii_lowercase();
        let old = self.get(&key).ok_or(CatalogError::NotFound)?;
        let props = QueueProperties {
            description,
            updated_at: date(self.engine.now()),
            ..(*old).clone()
        };
        self.rewrite(&key, &props).await?;
        Ok(self.insert(key, props))
    }

    pub async fn delete(&self, name: &str) -> Result<(), CatalogError> {
        let _change = self.changes.lock().await;
        let key = name.to_ascii_lowercase();
        if self.get(&key).is_none() {
            return Err(CatalogError::NotFound);
        }
        match self.engine.delete_queue(self.q(&key)).await {
            Ok(()) | Err(Error::QueueNotFound) => {}
            Err(e) => return Err(e.into()),
        }
        let mut queues = self.queues.write().unwrap_or_else(|e| e.into_inner());
        queues.remove(&key);
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.queues.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    fn insert(&self, key: String, props: QueueProperties) -> Arc<QueueProperties> {
        let props = Arc::new(props);
        let mut queues = self.queues.write().unwrap_or_else(|e| e.into_inner());
        queues.insert(key, props.clone());
        props
    }
}

/// An engine time as a calendar time, for the descriptions' dates.
pub(crate) fn date(t: Timestamp) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(t.as_millis()) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn to_metadata(p: &QueueProperties) -> Metadata {
    Metadata(vec![
        (NAME.to_owned(), p.name.clone()),
        (DESCRIPTION.to_owned(), p.description.to_xml(None)),
        (CREATED.to_owned(), format_iso8601_7(p.created_at)),
        (UPDATED.to_owned(), format_iso8601_7(p.updated_at)),
    ])
}

/// The queue a stored description describes; `None` when there is none (or it no longer
/// reads, which would be a bug: it was written by [`to_metadata`]).
fn from_metadata(key: &str, m: &Metadata) -> Option<QueueProperties> {
    let get = |k: &str| m.0.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let xml = dom::parse(get(DESCRIPTION)?.as_bytes()).ok()??;
    let description = match QueueDescription::from_xml(&xml) {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(queue = key, error = %e, "a stored Service Bus description does not read; using the defaults");
            return None;
        }
    };
    Some(QueueProperties {
        name: get(NAME).unwrap_or(key).to_owned(),
        description,
        created_at: get(CREATED).and_then(parse_iso8601)?,
        updated_at: get(UPDATED).and_then(parse_iso8601)?,
    })
}
