//! How an entity's description is kept in its engine queue's metadata: its name as created,
//! the description's XML (whose root element says which kind of entity it is), its dates,
//! and for a subscription its topic and its rules.

use hematite_engine::Metadata;
use hematite_queue_protocol::datetime::{format_iso8601_7, parse_iso8601};
use hematite_queue_protocol::xml::dom::{self, Element};
use hematite_servicebus_protocol::{
    QueueDescription, RuleDescription, SubscriptionDescription, TopicDescription,
};
use time::OffsetDateTime;

use crate::namespace::QueueProperties;
use crate::topics::{StoredRule, SubscriptionProperties, TopicProperties};

const NAME: &str = "sb-name";
const DESCRIPTION: &str = "sb-description";
const CREATED: &str = "sb-created";
const UPDATED: &str = "sb-updated";
const TOPIC: &str = "sb-topic";
const RULES: &str = "sb-rules";

/// An entity as read back from the store.
pub(super) enum Stored {
    Queue(QueueProperties),
    Topic(TopicProperties),
    Subscription(Box<SubscriptionProperties>),
}

/// The engine key of a subscription: `$` is in no entity name, so no queue or topic can
/// take it.
pub(super) fn subscription_key(topic: &str, name: &str) -> String {
    format!(
        "{}{SUBSCRIPTIONS}{}",
        topic.to_ascii_lowercase(),
        name.to_ascii_lowercase()
    )
}

const SUBSCRIPTIONS: &str = "/$subscriptions/";

/// The topic and subscription an engine key names, if it is a subscription's
/// ([`subscription_key`]'s inverse; no name holds `$`, so the first separator is the one).
pub(super) fn subscription_of(key: &str) -> Option<(&str, &str)> {
    key.split_once(SUBSCRIPTIONS)
}

fn common(name: &str, xml: String, created: OffsetDateTime, updated: OffsetDateTime) -> Metadata {
    Metadata(vec![
        (NAME.to_owned(), name.to_owned()),
        (DESCRIPTION.to_owned(), xml),
        (CREATED.to_owned(), format_iso8601_7(created)),
        (UPDATED.to_owned(), format_iso8601_7(updated)),
    ])
}

pub(super) fn queue_metadata(p: &QueueProperties) -> Metadata {
    common(
        &p.name,
        p.description.to_xml(None),
        p.created_at,
        p.updated_at,
    )
}

pub(super) fn topic_metadata(p: &TopicProperties) -> Metadata {
    common(
        &p.name,
        p.description.to_xml(None),
        p.created_at,
        p.updated_at,
    )
}

pub(super) fn subscription_metadata(p: &SubscriptionProperties) -> Metadata {
    let mut m = common(
        &p.name,
        p.description.to_xml(None),
        p.created_at,
        p.updated_at,
    );
    let mut rules = String::from("<Rules>");
    for r in &p.rules {
        rules.push_str(&r.rule.to_xml(Some(r.created_at)));
    }
    rules.push_str("</Rules>");
    m.0.push((TOPIC.to_owned(), p.topic.clone()));
    m.0.push((RULES.to_owned(), rules));
    m
}

/// The entity a queue's metadata describes; `None` when it holds no description (a queue
/// from before descriptions were stored) or one that does not read (a bug: it was written
/// by this module).
pub(super) fn read(key: &str, m: &Metadata) -> Option<Stored> {
    let get = |k: &str| m.0.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let xml = dom::parse(get(DESCRIPTION)?.as_bytes()).ok()??;
    let name = get(NAME).unwrap_or(key).to_owned();
    let created_at = get(CREATED).and_then(parse_iso8601)?;
    let updated_at = get(UPDATED).and_then(parse_iso8601)?;
    let stored = match xml.name.as_str() {
        "TopicDescription" => TopicDescription::from_xml(&xml).map(|description| {
            Stored::Topic(TopicProperties {
                name,
                description,
                created_at,
                updated_at,
            })
        }),
        "SubscriptionDescription" => SubscriptionDescription::from_xml(&xml).map(|description| {
            Stored::Subscription(Box::new(SubscriptionProperties {
                topic: get(TOPIC).unwrap_or_default().to_owned(),
                name,
                description,
                rules: get(RULES).map(read_rules).unwrap_or_default(),
                created_at,
                updated_at,
            }))
        }),
        _ => QueueDescription::from_xml(&xml).map(|description| {
            Stored::Queue(QueueProperties {
                name,
                description,
                created_at,
                updated_at,
            })
        }),
    };
    match stored {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(entity = key, error = %e, "a stored Service Bus description does not read; using the defaults");
            None
        }
    }
}

fn read_rules(xml: &str) -> Vec<StoredRule> {
    let Ok(Some(root)) = dom::parse(xml.as_bytes()) else {
        return Vec::new();
    };
    root.children
        .iter()
        .filter_map(|el: &Element| {
            Some(StoredRule {
                rule: RuleDescription::from_xml(el).ok()?,
                created_at: RuleDescription::created_at(el)?,
            })
        })
        .collect()
}
