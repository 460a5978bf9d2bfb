//! The catalog's topics, subscriptions and rules. A topic's subscriptions go with it; a
//! subscription's rules live in its metadata and are rewritten with it.

use std::sync::Arc;

use hematite_engine::LeaseRules;
use hematite_servicebus_protocol::{RuleDescription, SubscriptionDescription, TopicDescription};

use super::stored::{subscription_key, subscription_metadata, topic_metadata};
use super::{date, page, Catalog, CatalogError};
use crate::topics::{
    StoredRule, SubscriptionProperties, TopicProperties, MAX_RULES, MAX_SUBSCRIPTIONS,
};

type SubKey = (String, String);

fn sub_key(topic: &str, name: &str) -> SubKey {
    (topic.to_ascii_lowercase(), name.to_ascii_lowercase())
}

impl Catalog {
    pub fn topic(&self, name: &str) -> Option<Arc<TopicProperties>> {
        self.read().topics.get(&name.to_ascii_lowercase()).cloned()
    }

    pub fn list_topics(&self, skip: usize, top: usize) -> (Vec<Arc<TopicProperties>>, bool) {
        page(self.read().topics.values(), skip, top)
    }

    pub async fn create_topic(
        &self,
        name: &str,
        description: TopicDescription,
    ) -> Result<Arc<TopicProperties>, CatalogError> {
        let _change = self.changes.lock().await;
        let key = name.to_ascii_lowercase();
        self.check_new_entity(&key)?;
        let now = date(self.engine.now());
        let props = TopicProperties {
            name: name.to_owned(),
            description,
            created_at: now,
            updated_at: now,
        };
        self.create_stored(&key, topic_metadata(&props), LeaseRules::default())
            .await?;
        let props = Arc::new(props);
        self.write().topics.insert(key, props.clone());
        Ok(props)
    }

    pub async fn update_topic(
        &self,
        name: &str,
        description: TopicDescription,
    ) -> Result<Arc<TopicProperties>, CatalogError> {
        let _change = self.changes.lock().await;
        let key = name.to_ascii_lowercase();
        let props = self
            .change(&key, |c| {
                let old = c.topic(&key).ok_or(CatalogError::NotFound)?;
                let props = TopicProperties {
                    description: description.clone(),
                    updated_at: date(c.engine.now()),
                    ..(*old).clone()
                };
                Ok((topic_metadata(&props), props))
            })
            .await?;
        let props = Arc::new(props);
        self.write().topics.insert(key, props.clone());
        Ok(props)
    }

    /// Deletes a topic with its subscriptions, the subscriptions first: a crash between
    /// leaves the topic, whose delete can be asked again.
    pub async fn delete_topic(&self, name: &str) -> Result<(), CatalogError> {
        let _change = self.changes.lock().await;
        let key = name.to_ascii_lowercase();
        if self.topic(&key).is_none() {
            return Err(CatalogError::NotFound);
        }
        for sub in self.subscriptions_of(&key) {
            self.delete_stored(&subscription_key(&key, &sub.name))
                .await?;
            self.write().subscriptions.remove(&sub_key(&key, &sub.name));
        }
        self.delete_stored(&key).await?;
        self.write().topics.remove(&key);
        Ok(())
    }

    fn subscriptions_of(&self, topic: &str) -> Vec<Arc<SubscriptionProperties>> {
        let topic = topic.to_ascii_lowercase();
        let entities = self.read();
        let from = (topic.clone(), String::new());
        entities
            .subscriptions
            .range(from..)
            .take_while(|((t, _), _)| *t == topic)
            .map(|(_, s)| s.clone())
            .collect()
    }

    pub fn subscription(&self, topic: &str, name: &str) -> Option<Arc<SubscriptionProperties>> {
        self.read()
            .subscriptions
            .get(&sub_key(topic, name))
            .cloned()
    }

    pub fn subscription_count(&self, topic: &str) -> usize {
        self.subscriptions_of(topic).len()
    }

    /// A topic's subscriptions, a page of them; `None` when the topic does not exist.
    pub fn list_subscriptions(
        &self,
        topic: &str,
        skip: usize,
        top: usize,
    ) -> Option<(Vec<Arc<SubscriptionProperties>>, bool)> {
        self.topic(topic)?;
        let all = self.subscriptions_of(topic);
        Some(page(all.iter(), skip, top))
    }

    /// Creates a subscription with its first rule: the one its description names, or
    /// `$Default`, which lets everything through.
    pub async fn create_subscription(
        &self,
        topic: &str,
        name: &str,
        mut description: SubscriptionDescription,
    ) -> Result<Arc<SubscriptionProperties>, CatalogError> {
        let _change = self.changes.lock().await;
        let parent = self.topic(topic).ok_or(CatalogError::NoParent)?;
        if self.subscription(topic, name).is_some() {
            return Err(CatalogError::Exists);
        }
        if self.subscription_count(topic) >= MAX_SUBSCRIPTIONS {
            return Err(CatalogError::Quota(format!(
                "SubCode=40300. The topic already holds its maximum of {MAX_SUBSCRIPTIONS} subscriptions."
            )));
        }
        let now = date(self.engine.now());
        let mut first = description
            .default_rule
            .take()
            .unwrap_or_else(RuleDescription::default_rule);
        if first.name.is_empty() {
            first.name = hematite_servicebus_protocol::DEFAULT_RULE.to_owned();
        }
        let props = SubscriptionProperties {
            topic: parent.name.clone(),
            name: name.to_owned(),
            description,
            rules: vec![StoredRule {
                rule: first,
                created_at: now,
            }],
            created_at: now,
            updated_at: now,
        };
        let key = subscription_key(topic, name);
        self.create_stored(&key, subscription_metadata(&props), props.lease_rules())
            .await?;
        Ok(self.insert_subscription(props))
    }

    pub async fn update_subscription(
        &self,
        topic: &str,
        name: &str,
        mut description: SubscriptionDescription,
    ) -> Result<Arc<SubscriptionProperties>, CatalogError> {
        let _change = self.changes.lock().await;
        // Rules change through their own requests.
        description.default_rule = None;
        self.change_subscription(topic, name, CatalogError::NotFound, |c, old| {
            Ok((
                SubscriptionProperties {
                    description: description.clone(),
                    updated_at: date(c.engine.now()),
                    ..old.clone()
                },
                (),
            ))
        })
        .await
        .map(|(props, ())| props)
    }

    pub async fn delete_subscription(&self, topic: &str, name: &str) -> Result<(), CatalogError> {
        let _change = self.changes.lock().await;
        if self.subscription(topic, name).is_none() {
            return Err(CatalogError::NotFound);
        }
        self.delete_stored(&subscription_key(topic, name)).await?;
        self.write().subscriptions.remove(&sub_key(topic, name));
        Ok(())
    }

    /// Creates (`update` false) or replaces a rule of a subscription.
    pub async fn put_rule(
        &self,
        topic: &str,
        subscription: &str,
        rule: RuleDescription,
        update: bool,
    ) -> Result<StoredRule, CatalogError> {
        let _change = self.changes.lock().await;
        self.change_subscription(topic, subscription, CatalogError::NoParent, |c, old| {
            let mut props = old.clone();
            let now = date(c.engine.now());
            let at = props
                .rules
                .iter()
                .position(|r| r.rule.name.eq_ignore_ascii_case(&rule.name));
            let stored = match (at, update) {
                (Some(_), false) => return Err(CatalogError::Exists),
                (None, true) => return Err(CatalogError::NotFound),
                (Some(i), true) => {
                    props.rules[i].rule = rule.clone();
                    props.rules[i].clone()
                }
                (None, false) if props.rules.len() >= MAX_RULES => {
                    return Err(CatalogError::Quota(format!(
                        "SubCode=40300. The subscription already holds its maximum of {MAX_RULES} rules."
                    )))
                }
                (None, false) => {
                    let stored = StoredRule {
                        rule: rule.clone(),
                        created_at: now,
                    };
                    props.rules.push(stored.clone());
                    stored
                }
            };
            Ok((props, stored))
        })
        .await
        .map(|(_, stored)| stored)
    }

    pub async fn delete_rule(
        &self,
        topic: &str,
        subscription: &str,
        name: &str,
    ) -> Result<(), CatalogError> {
        let _change = self.changes.lock().await;
        self.change_subscription(topic, subscription, CatalogError::NotFound, |_, old| {
            let mut props = old.clone();
            let before = props.rules.len();
            props
                .rules
                .retain(|r| !r.rule.name.eq_ignore_ascii_case(name));
            if props.rules.len() == before {
                return Err(CatalogError::NotFound);
            }
            Ok((props, ()))
        })
        .await
        .map(drop)
    }

    /// Changes a subscription by compare-and-set (see [`Catalog::change`]): `change` makes
    /// the new properties from the current ones; `missing` is the error when there is no
    /// such subscription. Then its lease rules follow (loading brings them up to the
    /// description if a crash fell between the two).
    async fn change_subscription<T>(
        &self,
        topic: &str,
        name: &str,
        missing: CatalogError,
        mut change: impl FnMut(
            &Self,
            &SubscriptionProperties,
        ) -> Result<(SubscriptionProperties, T), CatalogError>,
    ) -> Result<(Arc<SubscriptionProperties>, T), CatalogError> {
        let key = subscription_key(topic, name);
        let mut missing = Some(missing);
        let (props, out) = self
            .change(&key, |c| {
                let Some(old) = c.subscription(topic, name) else {
                    return Err(missing.take().unwrap_or(CatalogError::NotFound));
                };
                let (props, out) = change(c, &old)?;
                Ok((subscription_metadata(&props), (props, out)))
            })
            .await?;
        // The copy follows the store at once (see `update`).
        let props = self.insert_subscription(props);
        self.engine
            .set_rules(self.q(&key), props.lease_rules())
            .await?;
        Ok((props, out))
    }

    fn insert_subscription(&self, props: SubscriptionProperties) -> Arc<SubscriptionProperties> {
        let props = Arc::new(props);
        self.write()
            .subscriptions
            .insert(sub_key(&props.topic, &props.name), props.clone());
        props
    }

    /// Whether a link address names a topic or one of its subscriptions.
    pub fn is_topic_entity(&self, address: &str) -> bool {
        if self.topic(address).is_some() {
            return true;
        }
        let lower = address.to_ascii_lowercase();
        lower
            .rsplit_once("/subscriptions/")
            .is_some_and(|(topic, sub)| self.subscription(topic, sub).is_some())
    }

    /// The engine queue of a subscription, for its counts.
    pub fn subscription_queue(&self, topic: &str, name: &str) -> String {
        subscription_key(topic, name)
    }
}
