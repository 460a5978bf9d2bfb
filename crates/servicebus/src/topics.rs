//! Topics, their subscriptions and the subscriptions' rules, as the administration API keeps
//! them: created, read, updated, listed and deleted, and durable like queues.
//!
//! Nothing sends to a topic yet: the data plane answers a link to one with
//! `amqp:not-implemented`. Each subscription is an engine queue with its Service Bus lease
//! rules already, so that publishing can fill it.

use hematite_engine::LeaseRules;
use hematite_servicebus_protocol::{RuleDescription, SubscriptionDescription, TopicDescription};
use time::OffsetDateTime;

/// Azure's quotas: subscriptions per topic, rules per subscription.
pub const MAX_SUBSCRIPTIONS: usize = 2_000;
pub const MAX_RULES: usize = 2_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicProperties {
    /// The name as created; lookups are by its lowercase form.
    pub name: String,
    pub description: TopicDescription,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionProperties {
    /// The topic's name as created.
    pub topic: String,
    pub name: String,
    /// Without its default rule, which lives in `rules` once created.
    pub description: SubscriptionDescription,
    pub rules: Vec<StoredRule>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRule {
    pub rule: RuleDescription,
    pub created_at: OffsetDateTime,
}

impl SubscriptionProperties {
    /// The engine's rules for the subscription's messages.
    pub fn lease_rules(&self) -> LeaseRules {
        LeaseRules::service_bus(
            self.description.max_delivery_count,
            self.description.dead_lettering_on_message_expiration,
        )
    }

    pub fn rule(&self, name: &str) -> Option<&StoredRule> {
        self.rules
            .iter()
            .find(|r| r.rule.name.eq_ignore_ascii_case(name))
    }
}

/// Subscription and rule names: up to 50 letters, digits, periods, hyphens and underscores,
/// starting and ending with a letter or digit (rules may also be `$Default`).
pub fn valid_child_name(name: &str) -> bool {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
    (1..=50).contains(&name.len())
        && name.chars().all(ok)
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}
