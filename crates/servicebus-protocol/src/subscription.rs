//! A subscription's description, read sparse over Azure's defaults and answered in the
//! order of .NET's `SubscriptionPropertiesExtensions`. A create may carry the first rule in
//! `DefaultRuleDescription`; answers do not repeat it (rules are read on their own).

use std::time::Duration;

use hematite_queue_protocol::datetime::{format_iso8601_7, parse_iso8601};
use hematite_queue_protocol::xml::dom::Element;
use hematite_queue_protocol::xml::writer::bool_str;
use time::OffsetDateTime;

use crate::atom::AdminError;
use crate::duration::{format_duration, parse_duration, TIMESPAN_MAX};
use crate::fields::{
    boolean, check_auto_delete, check_lock, check_nonzero, check_ttl, el, expect, open_description,
    push_counts, read, read_counts, read_string,
};
use crate::queue::{CountDetails, EntityStatus};
use crate::rule::RuleDescription;

/// The properties a client sets on a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionDescription {
    pub lock_duration: Duration,
    pub requires_session: bool,
    pub default_message_time_to_live: Duration,
    pub dead_lettering_on_message_expiration: bool,
    pub dead_lettering_on_filter_evaluation_exceptions: bool,
    /// The first rule, given at creation only.
    pub default_rule: Option<RuleDescription>,
    pub max_delivery_count: u32,
    pub enable_batched_operations: bool,
    pub status: EntityStatus,
    pub forward_to: Option<String>,
    pub user_metadata: Option<String>,
    pub forward_dead_lettered_messages_to: Option<String>,
    pub auto_delete_on_idle: Duration,
}

impl Default for SubscriptionDescription {
    /// Azure's defaults.
    fn default() -> Self {
        SubscriptionDescription {
            lock_duration: Duration::from_secs(60),
            requires_session: false,
            default_message_time_to_live: TIMESPAN_MAX,
            dead_lettering_on_message_expiration: false,
            dead_lettering_on_filter_evaluation_exceptions: true,
            default_rule: None,
            max_delivery_count: 10,
            enable_batched_operations: true,
            status: EntityStatus::Active,
            forward_to: None,
            user_metadata: None,
            forward_dead_lettered_messages_to: None,
            auto_delete_on_idle: TIMESPAN_MAX,
        }
    }
}

/// What the service adds to a subscription description it answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionRuntime {
    pub message_count: u64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub accessed_at: OffsetDateTime,
    pub counts: CountDetails,
}

impl SubscriptionDescription {
    /// A `<SubscriptionDescription>` as clients send it (JS sends an empty one when no
    /// option is set).
    pub fn from_xml(el: &Element) -> Result<SubscriptionDescription, AdminError> {
        expect(el, "SubscriptionDescription")?;
        let mut d = SubscriptionDescription::default();
        read(el, "LockDuration", &mut d.lock_duration, parse_duration)?;
        read(el, "RequiresSession", &mut d.requires_session, boolean)?;
        read(
            el,
            "DefaultMessageTimeToLive",
            &mut d.default_message_time_to_live,
            parse_duration,
        )?;
        read(
            el,
            "DeadLetteringOnMessageExpiration",
            &mut d.dead_lettering_on_message_expiration,
            boolean,
        )?;
        read(
            el,
            "DeadLetteringOnFilterEvaluationExceptions",
            &mut d.dead_lettering_on_filter_evaluation_exceptions,
            boolean,
        )?;
        if let Some(rule) = el.child("DefaultRuleDescription") {
            d.default_rule = Some(RuleDescription::from_element(rule)?);
        }
        read(el, "MaxDeliveryCount", &mut d.max_delivery_count, |s| {
            s.parse().ok()
        })?;
        read(
            el,
            "EnableBatchedOperations",
            &mut d.enable_batched_operations,
            boolean,
        )?;
        read(el, "Status", &mut d.status, EntityStatus::parse)?;
        read_string(el, "ForwardTo", &mut d.forward_to);
        read_string(el, "UserMetadata", &mut d.user_metadata);
        read_string(
            el,
            "ForwardDeadLetteredMessagesTo",
            &mut d.forward_dead_lettered_messages_to,
        );
        read(
            el,
            "AutoDeleteOnIdle",
            &mut d.auto_delete_on_idle,
            parse_duration,
        )?;
        d.check()?;
        Ok(d)
    }

    /// The ranges Azure enforces, with the queue's wording.
    pub fn check(&self) -> Result<(), AdminError> {
        check_lock(self.lock_duration)?;
        check_nonzero("MaxDeliveryCount", u64::from(self.max_delivery_count))?;
        check_ttl(self.default_message_time_to_live)?;
        check_auto_delete(self.auto_delete_on_idle)
    }

    /// The `<SubscriptionDescription>` element in the service's order. The default rule is
    /// written only in what a client sends.
    pub fn to_xml(&self, runtime: Option<&SubscriptionRuntime>) -> String {
        let mut out = String::with_capacity(1400);
        open_description(&mut out, "SubscriptionDescription");
        let o = &mut out;
        let dur = format_duration;
        el(o, "LockDuration", &dur(self.lock_duration));
        el(o, "RequiresSession", bool_str(self.requires_session));
        el(
            o,
            "DefaultMessageTimeToLive",
            &dur(self.default_message_time_to_live),
        );
        el(
            o,
            "DeadLetteringOnMessageExpiration",
            bool_str(self.dead_lettering_on_message_expiration),
        );
        el(
            o,
            "DeadLetteringOnFilterEvaluationExceptions",
            bool_str(self.dead_lettering_on_filter_evaluation_exceptions),
        );
        if let (None, Some(rule)) = (runtime, &self.default_rule) {
            o.push_str("<DefaultRuleDescription>");
            rule.push_children(o, None);
            o.push_str("</DefaultRuleDescription>");
        }
        if let Some(r) = runtime {
            el(o, "MessageCount", &r.message_count.to_string());
        }
        el(o, "MaxDeliveryCount", &self.max_delivery_count.to_string());
        el(
            o,
            "EnableBatchedOperations",
            bool_str(self.enable_batched_operations),
        );
        el(o, "Status", self.status.as_str());
        if let Some(f) = &self.forward_to {
            el(o, "ForwardTo", f);
        }
        if let Some(r) = runtime {
            el(o, "CreatedAt", &format_iso8601_7(r.created_at));
            el(o, "UpdatedAt", &format_iso8601_7(r.updated_at));
            el(o, "AccessedAt", &format_iso8601_7(r.accessed_at));
            push_counts(o, &r.counts);
        }
        if let Some(m) = &self.user_metadata {
            el(o, "UserMetadata", m);
        }
        if let Some(f) = &self.forward_dead_lettered_messages_to {
            el(o, "ForwardDeadLetteredMessagesTo", f);
        }
        el(o, "AutoDeleteOnIdle", &dur(self.auto_delete_on_idle));
        if runtime.is_some() {
            el(o, "EntityAvailabilityStatus", "Available");
        }
        out.push_str("</SubscriptionDescription>");
        out
    }
}

impl SubscriptionRuntime {
    /// The runtime properties of an answer (for clients); `None` when they are missing.
    pub fn from_xml(el: &Element) -> Option<SubscriptionRuntime> {
        let date = |name: &str| parse_iso8601(el.child_text(name)?);
        Some(SubscriptionRuntime {
            message_count: el.child_text("MessageCount")?.parse().ok()?,
            created_at: date("CreatedAt")?,
            updated_at: date("UpdatedAt")?,
            accessed_at: date("AccessedAt").unwrap_or(OffsetDateTime::UNIX_EPOCH),
            counts: read_counts(el),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rule::Filter;
    use hematite_queue_protocol::xml::dom;

    #[test]
    fn an_empty_description_is_the_default_and_a_default_rule_is_read() {
        let el = dom::parse(b"<SubscriptionDescription/>")
            .expect("xml")
            .expect("root");
        assert_eq!(
            SubscriptionDescription::from_xml(&el).expect("valid"),
            SubscriptionDescription::default()
        );
        let with_rule = r#"<SubscriptionDescription xmlns="http://schemas.microsoft.com/netservices/2010/10/servicebus/connect"><LockDuration>PT30S</LockDuration><DefaultRuleDescription><Filter p4:type="SqlFilter" xmlns:p4="http://www.w3.org/2001/XMLSchema-instance"><SqlExpression>a = 1</SqlExpression></Filter><Action p4:type="EmptyRuleAction" xmlns:p4="http://www.w3.org/2001/XMLSchema-instance"/><Name>first</Name></DefaultRuleDescription><MaxDeliveryCount>3</MaxDeliveryCount></SubscriptionDescription>"#;
        let el = dom::parse(with_rule.as_bytes())
            .expect("xml")
            .expect("root");
        let d = SubscriptionDescription::from_xml(&el).expect("valid");
        assert_eq!(
            (d.lock_duration, d.max_delivery_count),
            (Duration::from_secs(30), 3)
        );
        let rule = d.default_rule.as_ref().expect("rule");
        assert_eq!(rule.name, "first");
        assert!(matches!(&rule.filter, Filter::Sql { expression, .. } if expression == "a = 1"));
        // What a client sends carries the rule and reads back the same.
        let sent = dom::parse(d.to_xml(None).as_bytes())
            .expect("xml")
            .expect("root");
        assert_eq!(SubscriptionDescription::from_xml(&sent).expect("reads"), d);
    }

    #[test]
    fn an_answer_keeps_the_order_and_reads_back() {
        let d = SubscriptionDescription {
            forward_to: Some("q2".into()),
            ..SubscriptionDescription::default()
        };
        let t = OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
        let runtime = SubscriptionRuntime {
            message_count: 3,
            created_at: t,
            updated_at: t,
            accessed_at: t,
            counts: CountDetails {
                active: 3,
                ..CountDetails::default()
            },
        };
        let xml = d.to_xml(Some(&runtime));
        let order: Vec<usize> = [
            "<LockDuration>",
            "<RequiresSession>",
            "<DefaultMessageTimeToLive>",
            "<DeadLetteringOnMessageExpiration>",
            "<DeadLetteringOnFilterEvaluationExceptions>",
            "<MessageCount>",
            "<MaxDeliveryCount>",
            "<EnableBatchedOperations>",
            "<Status>",
            "<ForwardTo>",
            "<CreatedAt>",
            "<UpdatedAt>",
            "<AccessedAt>",
            "<CountDetails",
            "<AutoDeleteOnIdle>",
            "<EntityAvailabilityStatus>",
        ]
        .iter()
        .map(|tag| xml.find(tag).unwrap_or_else(|| panic!("{tag} missing")))
        .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{xml}");
        let el = dom::parse(xml.as_bytes()).expect("xml").expect("root");
        assert_eq!(SubscriptionDescription::from_xml(&el).expect("reads"), d);
        assert_eq!(SubscriptionRuntime::from_xml(&el), Some(runtime));
    }
}
