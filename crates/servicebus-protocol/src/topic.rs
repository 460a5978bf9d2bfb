//! A topic's description: what a client sets (read sparse, Azure's defaults filled in) and
//! what the service answers, in the order of .NET's `TopicPropertiesExtensions` (the JS
//! SDK's serializer names it as the authority). The JS SDK refuses an answer without
//! MaxSizeInMegabytes, EnablePartitioning, SupportOrdering, EnableBatchedOperations, the
//! TTL, duplicate detection's two properties and EnableExpress.

use std::time::Duration;

use hematite_queue_protocol::datetime::{format_iso8601_7, parse_iso8601};
use hematite_queue_protocol::xml::dom::Element;
use hematite_queue_protocol::xml::writer::bool_str;
use time::OffsetDateTime;

use crate::atom::AdminError;
use crate::duration::{format_duration, parse_duration, TIMESPAN_MAX};
use crate::fields::{
    boolean, check_auto_delete, check_duplicate_window, check_max_message_kb, check_nonzero,
    check_ttl, el, expect, open_description, push_counts, read, read_counts, read_string,
};
use crate::queue::{CountDetails, EntityStatus};

/// The properties a client sets on a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDescription {
    pub default_message_time_to_live: Duration,
    pub max_size_in_megabytes: u64,
    pub requires_duplicate_detection: bool,
    pub duplicate_detection_history_time_window: Duration,
    pub enable_batched_operations: bool,
    pub filtering_messages_before_publishing: bool,
    pub status: EntityStatus,
    pub support_ordering: bool,
    pub auto_delete_on_idle: Duration,
    pub enable_partitioning: bool,
    pub enable_subscription_partitioning: bool,
    pub enable_express: bool,
    pub user_metadata: Option<String>,
    pub max_message_size_in_kilobytes: u64,
}

impl Default for TopicDescription {
    /// Azure's defaults for a Standard namespace.
    fn default() -> Self {
        TopicDescription {
            default_message_time_to_live: TIMESPAN_MAX,
            max_size_in_megabytes: 1024,
            requires_duplicate_detection: false,
            duplicate_detection_history_time_window: Duration::from_secs(600),
            enable_batched_operations: true,
            filtering_messages_before_publishing: false,
            status: EntityStatus::Active,
            support_ordering: true,
            auto_delete_on_idle: TIMESPAN_MAX,
            enable_partitioning: false,
            enable_subscription_partitioning: false,
            enable_express: false,
            user_metadata: None,
            max_message_size_in_kilobytes: 256,
        }
    }
}

/// What the service adds to a topic description it answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRuntime {
    pub size_in_bytes: u64,
    pub subscription_count: u64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub accessed_at: OffsetDateTime,
    pub counts: CountDetails,
}

impl TopicDescription {
    /// A `<TopicDescription>` as clients send it: any subset, in any order.
    pub fn from_xml(el: &Element) -> Result<TopicDescription, AdminError> {
        expect(el, "TopicDescription")?;
        let mut d = TopicDescription::default();
        let number = |s: &str| s.parse().ok();
        read(
            el,
            "DefaultMessageTimeToLive",
            &mut d.default_message_time_to_live,
            parse_duration,
        )?;
        read(
            el,
            "MaxSizeInMegabytes",
            &mut d.max_size_in_megabytes,
            number,
        )?;
        read(
            el,
            "RequiresDuplicateDetection",
            &mut d.requires_duplicate_detection,
            boolean,
        )?;
        read(
            el,
            "DuplicateDetectionHistoryTimeWindow",
            &mut d.duplicate_detection_history_time_window,
            parse_duration,
        )?;
        read(
            el,
            "EnableBatchedOperations",
            &mut d.enable_batched_operations,
            boolean,
        )?;
        read(
            el,
            "FilteringMessagesBeforePublishing",
            &mut d.filtering_messages_before_publishing,
            boolean,
        )?;
        read(el, "Status", &mut d.status, EntityStatus::parse)?;
        read(el, "SupportOrdering", &mut d.support_ordering, boolean)?;
        read(
            el,
            "AutoDeleteOnIdle",
            &mut d.auto_delete_on_idle,
            parse_duration,
        )?;
        read(
            el,
            "EnablePartitioning",
            &mut d.enable_partitioning,
            boolean,
        )?;
        read(
            el,
            "EnableSubscriptionPartitioning",
            &mut d.enable_subscription_partitioning,
            boolean,
        )?;
        read(el, "EnableExpress", &mut d.enable_express, boolean)?;
        read_string(el, "UserMetadata", &mut d.user_metadata);
        read(
            el,
            "MaxMessageSizeInKilobytes",
            &mut d.max_message_size_in_kilobytes,
            number,
        )?;
        d.check()?;
        Ok(d)
    }

    /// The ranges Azure enforces.
    pub fn check(&self) -> Result<(), AdminError> {
        check_nonzero("MaxSizeInMegabytes", self.max_size_in_megabytes)?;
        check_ttl(self.default_message_time_to_live)?;
        check_duplicate_window(self.duplicate_detection_history_time_window)?;
        check_auto_delete(self.auto_delete_on_idle)?;
        check_max_message_kb(self.max_message_size_in_kilobytes)
    }

    /// The `<TopicDescription>` element in the service's order; runtime properties appear
    /// in answers only.
    pub fn to_xml(&self, runtime: Option<&TopicRuntime>) -> String {
        let mut out = String::with_capacity(1600);
        open_description(&mut out, "TopicDescription");
        let o = &mut out;
        let dur = format_duration;
        el(
            o,
            "DefaultMessageTimeToLive",
            &dur(self.default_message_time_to_live),
        );
        el(
            o,
            "MaxSizeInMegabytes",
            &self.max_size_in_megabytes.to_string(),
        );
        el(
            o,
            "RequiresDuplicateDetection",
            bool_str(self.requires_duplicate_detection),
        );
        el(
            o,
            "DuplicateDetectionHistoryTimeWindow",
            &dur(self.duplicate_detection_history_time_window),
        );
        el(
            o,
            "EnableBatchedOperations",
            bool_str(self.enable_batched_operations),
        );
        if let Some(r) = runtime {
            el(o, "SizeInBytes", &r.size_in_bytes.to_string());
        }
        el(
            o,
            "FilteringMessagesBeforePublishing",
            bool_str(self.filtering_messages_before_publishing),
        );
        el(o, "IsAnonymousAccessible", "false");
        o.push_str("<AuthorizationRules></AuthorizationRules>");
        el(o, "Status", self.status.as_str());
        if let Some(r) = runtime {
            el(o, "CreatedAt", &format_iso8601_7(r.created_at));
            el(o, "UpdatedAt", &format_iso8601_7(r.updated_at));
            el(o, "AccessedAt", &format_iso8601_7(r.accessed_at));
        }
        el(o, "SupportOrdering", bool_str(self.support_ordering));
        if let Some(r) = runtime {
            push_counts(o, &r.counts);
            el(o, "SubscriptionCount", &r.subscription_count.to_string());
        }
        el(o, "AutoDeleteOnIdle", &dur(self.auto_delete_on_idle));
        el(o, "EnablePartitioning", bool_str(self.enable_partitioning));
        if runtime.is_some() {
            el(o, "EntityAvailabilityStatus", "Available");
        }
        el(
            o,
            "EnableSubscriptionPartitioning",
            bool_str(self.enable_subscription_partitioning),
        );
        el(o, "EnableExpress", bool_str(self.enable_express));
        if let Some(m) = &self.user_metadata {
            el(o, "UserMetadata", m);
        }
        el(
            o,
            "MaxMessageSizeInKilobytes",
            &self.max_message_size_in_kilobytes.to_string(),
        );
        out.push_str("</TopicDescription>");
        out
    }
}

impl TopicRuntime {
    /// The runtime properties of an answer (for clients); `None` when they are missing.
    pub fn from_xml(el: &Element) -> Option<TopicRuntime> {
        let num = |name: &str| el.child_text(name)?.parse::<u64>().ok();
        let date = |name: &str| parse_iso8601(el.child_text(name)?);
        Some(TopicRuntime {
            size_in_bytes: num("SizeInBytes")?,
            subscription_count: num("SubscriptionCount")?,
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
    use crate::atom::parse_entry;
    use hematite_queue_protocol::xml::dom;

    #[test]
    fn a_sparse_topic_takes_the_defaults_and_an_answer_reads_back_in_order() {
        let body = r#"<entry xmlns="http://www.w3.org/2005/Atom"><content type="application/xml"><TopicDescription xmlns="http://schemas.microsoft.com/netservices/2010/10/servicebus/connect"><MaxSizeInMegabytes>2048</MaxSizeInMegabytes><DefaultMessageTimeToLive>PT1H</DefaultMessageTimeToLive></TopicDescription></content></entry>"#;
        let d = TopicDescription::from_xml(&parse_entry(body.as_bytes()).expect("entry"))
            .expect("valid");
        assert_eq!(d.max_size_in_megabytes, 2048);
        assert_eq!(d.default_message_time_to_live, Duration::from_secs(3600));
        assert!(d.support_ordering && d.enable_batched_operations);
        let t = OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
        let runtime = TopicRuntime {
            size_in_bytes: 0,
            subscription_count: 2,
            created_at: t,
            updated_at: t,
            accessed_at: t,
            counts: CountDetails::default(),
        };
        let xml = d.to_xml(Some(&runtime));
        let order: Vec<usize> = [
            "<DefaultMessageTimeToLive>",
            "<MaxSizeInMegabytes>",
            "<RequiresDuplicateDetection>",
            "<DuplicateDetectionHistoryTimeWindow>",
            "<EnableBatchedOperations>",
            "<SizeInBytes>",
            "<FilteringMessagesBeforePublishing>",
            "<Status>",
            "<CreatedAt>",
            "<SupportOrdering>",
            "<CountDetails",
            "<SubscriptionCount>",
            "<AutoDeleteOnIdle>",
            "<EnablePartitioning>",
            "<EntityAvailabilityStatus>",
            "<EnableSubscriptionPartitioning>",
            "<EnableExpress>",
            "<MaxMessageSizeInKilobytes>",
        ]
        .iter()
        .map(|tag| xml.find(tag).unwrap_or_else(|| panic!("{tag} missing")))
        .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{xml}");
        let el = dom::parse(xml.as_bytes()).expect("xml").expect("root");
        assert_eq!(TopicDescription::from_xml(&el).expect("reads"), d);
        assert_eq!(TopicRuntime::from_xml(&el), Some(runtime));
        let zero =
            r#"<TopicDescription><MaxSizeInMegabytes>0</MaxSizeInMegabytes></TopicDescription>"#;
        let el = dom::parse(zero.as_bytes()).expect("xml").expect("root");
        assert_eq!(
            TopicDescription::from_xml(&el).expect_err("zero").status,
            400
        );
    }
}
