//! The namespace's entities: which queues, topics and subscriptions exist and with what
//! description, kept durable in the engine beside their messages, so that an entity created
//! over the administration API survives a restart exactly like one from `config.json`.
//!
//! Each entity is an engine queue whose metadata holds its description ([`stored`]), so
//! creating an entity and recording how it was created is one store operation, and deleting
//! it removes both. The catalog keeps a copy in memory for lookups on every attach;
//! administrative changes are serialised so the copy and the store agree. Nodes sharing a
//! store change descriptions by compare-and-set on the metadata last seen ([`Catalog::swap`]),
//! so a change made from a stale copy (another node's rule added a moment ago) is refused,
//! the copy read again and the change made on it: no node loses another's.

mod stored;
mod topics;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use hematite_engine::{
    Created, Engine, Error, LeaseRules, Metadata, QueueRef, QueueSettings, Timestamp,
};
use hematite_servicebus_protocol::QueueDescription;
use time::OffsetDateTime;

use crate::namespace::QueueProperties;
use crate::topics::{SubscriptionProperties, TopicProperties};
use stored::{queue_metadata, Stored};

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
    /// The topic (or subscription) the entity belongs to does not exist.
    #[error("the parent entity does not exist")]
    NoParent,
    /// A quota is reached; the text says which.
    #[error("{0}")]
    Quota(String),
    /// The entity kept changing under the request (other nodes writing it), so its
    /// change was not made.
    #[error("the entity kept changing; retry")]
    Busy,
    #[error(transparent)]
    Engine(#[from] Error),
}

/// Attempts at a compare-and-set change before [`CatalogError::Busy`].
const ATTEMPTS: usize = 8;

/// Every entity, by lowercase name (subscriptions by their topic's and their own).
#[derive(Default)]
struct Entities {
    queues: BTreeMap<String, Arc<QueueProperties>>,
    topics: BTreeMap<String, Arc<TopicProperties>>,
    subscriptions: BTreeMap<(String, String), Arc<SubscriptionProperties>>,
    /// Each entity's metadata as last read or written, by engine key: what a change
    /// expects to replace.
    seen: BTreeMap<String, Metadata>,
}

impl Entities {
    /// Queues and topics share one namespace of names, and one quota.
    fn name_taken(&self, key: &str) -> bool {
        self.queues.contains_key(key) || self.topics.contains_key(key)
    }

    fn quota_reached(&self) -> bool {
        self.queues.len() + self.topics.len() >= MAX_ENTITIES
    }
}

pub(crate) struct Catalog {
    engine: Engine,
    account: String,
    entities: RwLock<Entities>,
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
            entities: RwLock::new(Entities::default()),
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

    fn read(&self) -> RwLockReadGuard<'_, Entities> {
        self.entities.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Entities> {
        self.entities.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates an engine queue holding an entity's description; `Exists` if the key is
    /// taken in the store.
    async fn create_stored(
        &self,
        key: &str,
        metadata: Metadata,
        rules: LeaseRules,
    ) -> Result<(), CatalogError> {
        match self
            .engine
            .create_queue_with(self.q(key), metadata.clone(), QueueSettings { rules })
            .await
        {
            Ok(Created::New) => {
                self.write().seen.insert(key.to_owned(), metadata);
                Ok(())
            }
            Ok(Created::AlreadyIdentical) | Err(Error::QueueAlreadyExists) => {
                Err(CatalogError::Exists)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes an entity's engine queue; one already gone is fine.
    async fn delete_stored(&self, key: &str) -> Result<(), CatalogError> {
        match self.engine.delete_queue(self.q(key)).await {
            Ok(()) | Err(Error::QueueNotFound) => {
                self.write().seen.remove(key);
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn apply_configured(&self, key: &str, props: &QueueProperties) -> Result<(), Error> {
        let now = date(self.engine.now());
        let q = self.q(key);
        match self.engine.queue_info(q).await {
            Ok(info) => {
                let created_at = match stored::read(key, &info.metadata) {
                    Some(Stored::Queue(kept)) => kept.created_at,
                    _ => now,
                };
                let props = QueueProperties {
                    created_at,
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
            .create_queue_with(self.q(key), queue_metadata(props), settings)
            .await
    }

    /// Rewrites an existing queue's description, then its rules (loading brings rules up to
    /// a description if a crash fell between the two).
    async fn rewrite(&self, key: &str, props: &QueueProperties) -> Result<(), Error> {
        let q = self.q(key);
        let metadata = queue_metadata(props);
        self.engine.set_metadata(q, metadata.clone()).await?;
        self.write().seen.insert(key.to_owned(), metadata);
        self.engine.set_rules(q, props.rules()).await
    }

    /// Writes `metadata` over the entity stored under `key` if the store still holds what
    /// this catalog last saw there; `false` (and the entity read again) if another node
    /// changed it meanwhile.
    async fn swap(&self, key: &str, metadata: Metadata) -> Result<bool, CatalogError> {
        let Some(expected) = self.read().seen.get(key).cloned() else {
            self.read_key(key).await?;
            return Ok(false);
        };
        match self
            .engine
            .swap_metadata(self.q(key), expected, metadata.clone())
            .await
        {
            Ok(true) => {
                self.write().seen.insert(key.to_owned(), metadata);
                Ok(true)
            }
            Ok(false) | Err(Error::QueueNotFound) => {
                self.read_key(key).await?;
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Makes a change by compare-and-set: `change` turns the catalog's copy into the new
    /// metadata (and what to answer); refused, it runs again on the copy read afresh.
    async fn change<T>(
        &self,
        key: &str,
        mut change: impl FnMut(&Self) -> Result<(Metadata, T), CatalogError>,
    ) -> Result<T, CatalogError> {
        for _ in 0..ATTEMPTS {
            let (metadata, out) = change(self)?;
            if self.swap(key, metadata).await? {
                return Ok(out);
            }
        }
        Err(CatalogError::Busy)
    }

    /// Reads every entity the store holds, then brings each one's lease rules up to its
    /// description: an update writes the description, then the rules, and a crash between
    /// the two left the rules behind (a no-op when they agree).
    async fn read_all(&self) -> Result<(), Error> {
        let found = self.read_entities().await?;
        for (key, r) in described_rules(&found, |_| true) {
            self.engine.set_rules(self.q(&key), r).await?;
        }
        *self.write() = found;
        Ok(())
    }

    /// Every entity the store holds, read only.
    async fn read_entities(&self) -> Result<Entities, Error> {
        let mut start: Option<String> = None;
        let mut found = Entities::default();
        loop {
            let page = self
                .engine
                .list_queues(&self.account, "", start.as_deref(), 1000)
                .await?;
            for s in page.queues {
                found.seen.insert(s.name.clone(), s.metadata.clone());
                // A queue from before descriptions were stored takes the defaults.
                match stored::read(&s.name, &s.metadata)
                    .unwrap_or_else(|| Stored::Queue(QueueProperties::new(&s.name)))
                {
                    Stored::Queue(p) => {
                        found.queues.insert(s.name, Arc::new(p));
                    }
                    Stored::Topic(p) => {
                        found.topics.insert(s.name, Arc::new(p));
                    }
                    Stored::Subscription(p) => {
                        let key = (p.topic.to_ascii_lowercase(), p.name.to_ascii_lowercase());
                        found.subscriptions.insert(key, Arc::from(p));
                    }
                }
            }
            match page.next {
                Some(next) => start = Some(next),
                None => break,
            }
        }
        Ok(found)
    }

    /// Reads the catalog again from the store, for a store other nodes change too. Changes
    /// made here wait meanwhile, so none is lost from the copy.
    ///
    /// An update writes the description and then the rules, so two nodes updating one entity
    /// at once can leave the earlier description's rules written last. Every node that sees
    /// a description change here writes its rules again, so they settle on the latest
    /// description within a refresh.
    pub async fn refresh(&self) -> Result<(), Error> {
        let _change = self.changes.lock().await;
        let found = self.read_entities().await?;
        let changed: BTreeSet<String> = {
            let copy = self.read();
            found
                .seen
                .iter()
                .filter(|(key, metadata)| copy.seen.get(*key) != Some(*metadata))
                .map(|(key, _)| key.clone())
                .collect()
        };
        for (key, r) in described_rules(&found, |key| changed.contains(key)) {
            self.engine.set_rules(self.q(&key), r).await?;
        }
        *self.write() = found;
        Ok(())
    }

    /// Reads the queue or topic called `name` from the store (another node may have just
    /// created, changed or deleted it).
    pub async fn reload(&self, name: &str) -> Result<(), Error> {
        let _change = self.changes.lock().await;
        self.read_key(&name.to_ascii_lowercase()).await
    }

    /// Reads subscription `name` of `topic` from the store (another node may have just
    /// created, changed or deleted it).
    pub async fn reload_subscription(&self, topic: &str, name: &str) -> Result<(), Error> {
        let _change = self.changes.lock().await;
        self.read_key(&stored::subscription_key(topic, name)).await
    }

    /// Reads the entity stored under engine key `key` into the copy, or takes it out of the
    /// copy if the store no longer holds it.
    async fn read_key(&self, key: &str) -> Result<(), Error> {
        let info = match self.engine.queue_info(self.q(key)).await {
            Ok(info) => info,
            Err(Error::QueueNotFound) => {
                let mut entities = self.write();
                entities.queues.remove(key);
                entities.topics.remove(key);
                if let Some((topic, name)) = stored::subscription_of(key) {
                    let sub = (topic.to_owned(), name.to_owned());
                    entities.subscriptions.remove(&sub);
                }
                entities.seen.remove(key);
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let mut entities = self.write();
        entities.seen.insert(key.to_owned(), info.metadata.clone());
        match stored::read(key, &info.metadata) {
            Some(Stored::Queue(p)) => {
                entities.queues.insert(key.to_owned(), Arc::new(p));
            }
            Some(Stored::Topic(p)) => {
                entities.topics.insert(key.to_owned(), Arc::new(p));
            }
            Some(Stored::Subscription(p)) => {
                let sub = (p.topic.to_ascii_lowercase(), p.name.to_ascii_lowercase());
                entities.subscriptions.insert(sub, Arc::from(p));
            }
            None => {}
        }
        Ok(())
    }

    /// The queue called `name` (any case).
    pub fn get(&self, name: &str) -> Option<Arc<QueueProperties>> {
        self.read().queues.get(&name.to_ascii_lowercase()).cloned()
    }

    /// Up to `top` queues after the first `skip`, in name order, and whether more follow.
    pub fn list(&self, skip: usize, top: usize) -> (Vec<Arc<QueueProperties>>, bool) {
        page(self.read().queues.values(), skip, top)
    }

    pub async fn create(
        &self,
        name: &str,
        description: QueueDescription,
    ) -> Result<Arc<QueueProperties>, CatalogError> {
        let _change = self.changes.lock().await;
        let key = name.to_ascii_lowercase();
        self.check_new_entity(&key)?;
        let now = date(self.engine.now());
        let props = QueueProperties {
            name: name.to_owned(),
            description,
            created_at: now,
            updated_at: now,
        };
        self.create_stored(&key, queue_metadata(&props), props.rules())
            .await?;
        Ok(self.insert(key, props))
    }

    pub async fn update(
        &self,
        name: &str,
        description: QueueDescription,
    ) -> Result<Arc<QueueProperties>, CatalogError> {
        let _change = self.changes.lock().await;
        let key = name.to_ascii_lowercase();
        let props = self
            .change(&key, |c| {
                let old = c.get(&key).ok_or(CatalogError::NotFound)?;
                let props = QueueProperties {
                    description: description.clone(),
                    updated_at: date(c.engine.now()),
                    ..(*old).clone()
                };
                Ok((queue_metadata(&props), props))
            })
            .await?;
        // The copy follows the store at once: `seen` already holds the new description,
        // and a change built from an older copy would pass the compare-and-set.
        let props = self.insert(key.clone(), props);
        self.engine.set_rules(self.q(&key), props.rules()).await?;
        Ok(props)
    }

    pub async fn delete(&self, name: &str) -> Result<(), CatalogError> {
        let _change = self.changes.lock().await;
        let key = name.to_ascii_lowercase();
        if self.get(&key).is_none() {
            return Err(CatalogError::NotFound);
        }
        self.delete_stored(&key).await?;
        self.write().queues.remove(&key);
        Ok(())
    }

    /// A new queue or topic called `key`: the name must be free and the quota not reached.
    fn check_new_entity(&self, key: &str) -> Result<(), CatalogError> {
        let entities = self.read();
        if entities.name_taken(key) {
            return Err(CatalogError::Exists);
        }
        if entities.quota_reached() {
            return Err(CatalogError::Quota(format!(
                "SubCode=40300. The namespace already holds its maximum of {MAX_ENTITIES} entities."
            )));
        }
        Ok(())
    }

    fn insert(&self, key: String, props: QueueProperties) -> Arc<QueueProperties> {
        let props = Arc::new(props);
        self.write().queues.insert(key, props.clone());
        props
    }
}

/// The lease rules each entity's description gives, for the engine keys `pick` chooses.
fn described_rules(found: &Entities, pick: impl Fn(&str) -> bool) -> Vec<(String, LeaseRules)> {
    let queues = found.queues.iter().map(|(k, p)| (k.clone(), p.rules()));
    let topics = found
        .topics
        .keys()
        .map(|k| (k.clone(), LeaseRules::default()));
    let subscriptions = found
        .subscriptions
        .values()
        .map(|p| (stored::subscription_key(&p.topic, &p.name), p.lease_rules()));
    queues
        .chain(topics)
        .chain(subscriptions)
        .filter(|(key, _)| pick(key))
        .collect()
}

/// Up to `top` items after the first `skip`, and whether more follow.
fn page<'a, T: 'a>(
    items: impl ExactSizeIterator<Item = &'a Arc<T>>,
    skip: usize,
    top: usize,
) -> (Vec<Arc<T>>, bool) {
    let total = items.len();
    let page: Vec<_> = items.skip(skip).take(top).cloned().collect();
    let more = total > skip.saturating_add(page.len());
    (page, more)
}

/// An engine time as a calendar time, for the descriptions' dates.
pub(crate) fn date(t: Timestamp) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(t.as_millis()) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use hematite_engine::{MemoryStore, Outgoing, Settlement, SubQueue, SystemClock, Ttl};

    use super::*;

    /// How many failed deliveries the engine allows `q`'s one message before it is
    /// dead-lettered: the lease rules the store holds, read through their effect.
    async fn deliveries(engine: &Engine, q: QueueRef<'_>) -> u32 {
        let one = Outgoing {
            body: b"m".to_vec(),
            ttl: Ttl::Never,
            scheduled_at: None,
        };
        engine
            .enqueue(q, vec![one], u64::MAX)
            .await
            .expect("enqueue");
        let mut n = 0;
        while let Some(m) = engine
            .lock(q, SubQueue::Main, 1, Duration::from_secs(30))
            .await
            .expect("lock")
            .pop()
        {
            n += 1;
            let abandon = Settlement::Abandon;
            engine
                .settle(q, SubQueue::Main, m.receipt, abandon)
                .await
                .expect("abandon");
        }
        engine.clear_messages(q).await.expect("clear");
        n
    }

    #[test]
    fn a_subscription_key_reads_back_as_its_topic_and_name() {
        // An entity read again and found gone leaves the copy by this inverse; a topic name
        // with a path in it must not split early.
        let key = stored::subscription_key("Orders/EU", "Audit");
        assert_eq!(stored::subscription_of(&key), Some(("orders/eu", "audit")));
        assert_eq!(stored::subscription_of("orders/eu"), None);
    }

    #[tokio::test]
    async fn a_refresh_brings_lease_rules_up_to_a_description_another_node_changed() {
        // Two nodes update one queue at once; each writes the description, then the
        // rules, and the first node's rules land last: the store says MaxDeliveryCount 5
        // but enforces 2. The node that refreshes and finds the description changed writes
        // the rules again.
        let engine = Engine::new(Arc::new(MemoryStore::new()), Arc::new(SystemClock));
        let none = BTreeMap::new();
        let a = Catalog::load(engine.clone(), "acct".into(), &none)
            .await
            .expect("a");
        let b = Catalog::load(engine.clone(), "acct".into(), &none)
            .await
            .expect("b");
        let mut d = QueueDescription {
            max_delivery_count: 2,
            ..QueueDescription::default()
        };
        a.create("q", d.clone()).await.expect("create");
        b.refresh().await.expect("b reads it");
        d.max_delivery_count = 5;
        b.update("q", d).await.expect("update on b");
        let q = QueueRef::new("acct", "q");
        let stale = a.get("q").expect("a's copy").rules();
        engine.set_rules(q, stale).await.expect("a's rules last");
        assert_eq!(deliveries(&engine, q).await, 2, "the race's outcome");
        a.refresh().await.expect("refresh");
        assert_eq!(deliveries(&engine, q).await, 5);
    }
}
