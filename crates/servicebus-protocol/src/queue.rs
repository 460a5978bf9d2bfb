//! A queue's description: what a client sets (read sparse, Azure's defaults filled in) and
//! what the service answers (every property in DataContract order, with the runtime counts).
//!
//! The order and the defaults are Microsoft's ("Service Bus REST API reference: Queue
//! description"; .NET `QueuePropertiesExtensions`). The JS SDK refuses a description that
//! lacks any of the properties it maps, so the writer leaves out only the optional strings.

use std::time::Duration;

use hematite_queue_protocol::datetime::{format_iso8601_7, parse_iso8601};
use hematite_queue_protocol::xml::dom::Element;
use hematite_queue_protocol::xml::writer::bool_str;
use time::OffsetDateTime;

use crate::atom::AdminError;
use crate::duration::{format_duration, parse_duration, TIMESPAN_MAX};
use crate::fields::{
    boolean, check_auto_delete, check_duplicate_window, check_lock, check_max_message_kb,
    check_nonzero, check_ttl, el, expect, open_description, push_counts, read, read_counts,
    read_string,
};

/// Whether an entity sends and receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntityStatus {
    Active,
    Disabled,
    SendDisabled,
    ReceiveDisabled,
}

impl EntityStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EntityStatus::Active => "Active",
            EntityStatus::Disabled => "Disabled",
            EntityStatus::SendDisabled => "SendDisabled",
            EntityStatus::ReceiveDisabled => "ReceiveDisabled",
        }
    }

    pub fn parse(s: &str) -> Option<EntityStatus> {
        [
            EntityStatus::Active,
            EntityStatus::Disabled,
            EntityStatus::SendDisabled,
            EntityStatus::ReceiveDisabled,
        ]
        .into_iter()
        .find(|v| v.as_str().eq_ignore_ascii_case(s))
    }
}

/// The properties a client sets on a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueDescription {
    pub lock_duration: Duration,
    pub max_size_in_megabytes: u64,
    pub requires_duplicate_detection: bool,
    pub requires_session: bool,
    /// [`TIMESPAN_MAX`]: messages live until removed.
    pub default_message_time_to_live: Duration,
    pub dead_lettering_on_message_expiration: bool,
    pub duplicate_detection_history_time_window: Duration,
    pub max_delivery_count: u32,
    pub enable_batched_operations: bool,
    pub status: EntityStatus,
    pub forward_to: Option<String>,
    pub user_metadata: Option<String>,
    pub auto_delete_on_idle: Duration,
    pub enable_partitioning: bool,
    pub forward_dead_lettered_messages_to: Option<String>,
    pub enable_express: bool,
    pub max_message_size_in_kilobytes: u64,
}

impl Default for QueueDescription {
    /// Azure's defaults for a Standard namespace.
    fn default() -> Self {
        QueueDescription {
            lock_duration: Duration::from_secs(60),
            max_size_in_megabytes: 1024,
            requires_duplicate_detection: false,
            requires_session: false,
            default_message_time_to_live: TIMESPAN_MAX,
            dead_lettering_on_message_expiration: false,
            duplicate_detection_history_time_window: Duration::from_secs(600),
            max_delivery_count: 10,
            enable_batched_operations: true,
            status: EntityStatus::Active,
            forward_to: None,
            user_metadata: None,
            auto_delete_on_idle: TIMESPAN_MAX,
            enable_partitioning: false,
            forward_dead_lettered_messages_to: None,
            enable_express: false,
            max_message_size_in_kilobytes: 256,
        }
    }
}

/// Counts by state, as `CountDetails` carries them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CountDetails {
    pub active: u64,
    pub dead_letter: u64,
    pub scheduled: u64,
    pub transfer: u64,
    pub transfer_dead_letter: u64,
}

/// What the service adds to a description it answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueRuntime {
    pub size_in_bytes: u64,
    /// Every message, dead-lettered and scheduled ones included.
    pub message_count: u64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub accessed_at: OffsetDateTime,
    pub counts: CountDetails,
}

/// The longest lock Service Bus grants, and the shortest this server takes.
pub const MAX_LOCK: Duration = Duration::from_secs(300);
pub const MIN_LOCK: Duration = Duration::from_secs(5);

impl QueueDescription {
    /// A `<QueueDescription>` as clients send it: any subset of the properties, in any order;
    /// the others take Azure's defaults. Read-only properties are ignored.
    pub fn from_xml(el: &Element) -> Result<QueueDescription, AdminError> {
        expect(el, "QueueDescription")?;
        let mut d = QueueDescription::default();
        read(el, "LockDuration", &mut d.lock_duration, parse_duration)?;
        read(
            el,
            "MaxSizeInMegabytes",
            &mut d.max_size_in_megabytes,
            |s| s.parse().ok(),
        )?;
        read(
            el,
            "RequiresDuplicateDetection",
            &mut d.requires_duplicate_detection,
            boolean,
        )?;
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
            "DuplicateDetectionHistoryTimeWindow",
            &mut d.duplicate_detection_history_time_window,
            parse_duration,
        )?;
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
        read_string(
            el,
            "ForwardDeadLetteredMessagesTo",
            &mut d.forward_dead_lettered_messages_to,
        );
        read(el, "EnableExpress", &mut d.enable_express, boolean)?;
        read(
            el,
            "MaxMessageSizeInKilobytes",
            &mut d.max_message_size_in_kilobytes,
            |s| s.parse().ok(),
        )?;
        d.check()?;
        Ok(d)
    }

    /// The ranges Azure enforces, with its wording where it has one.
    pub fn check(&self) -> Result<(), AdminError> {
        check_lock(self.lock_duration)?;
        check_nonzero("MaxDeliveryCount", u64::from(self.max_delivery_count))?;
        check_nonzero("MaxSizeInMegabytes", self.max_size_in_megabytes)?;
        check_ttl(self.default_message_time_to_live)?;
        check_duplicate_window(self.duplicate_detection_history_time_window)?;
        check_auto_delete(self.auto_delete_on_idle)?;
        check_max_message_kb(self.max_message_size_in_kilobytes)
    }

    /// The `<QueueDescription>` element in the service's order; runtime properties appear
    /// when given (answers), not in what a client sends.
    pub fn to_xml(&self, runtime: Option<&QueueRuntime>) -> String {
        let mut out = String::with_capacity(1800);
        open_description(&mut out, "QueueDescription");
        let dur = |d: Duration| format_duration(d);
        el(&mut out, "LockDuration", &dur(self.lock_duration));
        el(
            &mut out,
            "MaxSizeInMegabytes",
            &self.max_size_in_megabytes.to_string(),
        );
        el(
            &mut out,
            "RequiresDuplicateDetection",
            bool_str(self.requires_duplicate_detection),
        );
        el(&mut out, "RequiresSession", bool_str(self.requires_session));
        el(
            &mut out,
            "DefaultMessageTimeToLive",
            &dur(self.default_message_time_to_live),
        );
        el(
            &mut out,
            "DeadLetteringOnMessageExpiration",
            bool_str(self.dead_lettering_on_message_expiration),
        );
        el(
            &mut out,
            "DuplicateDetectionHistoryTimeWindow",
            &dur(self.duplicate_detection_history_time_window),
        );
        el(
            &mut out,
            "MaxDeliveryCount",
            &self.max_delivery_count.to_string(),
        );
        el(
            &mut out,
            "EnableBatchedOperations",
            bool_str(self.enable_batched_operations),
        );
        if let Some(r) = runtime {
            el(&mut out, "SizeInBytes", &r.size_in_bytes.to_string());
            el(&mut out, "MessageCount", &r.message_count.to_string());
        }
        el(&mut out, "IsAnonymousAccessible", "false");
        out.push_str("<AuthorizationRules></AuthorizationRules>");
        el(&mut out, "Status", self.status.as_str());
        if let Some(f) = &self.forward_to {
            el(&mut out, "ForwardTo", f);
        }
        if let Some(m) = &self.user_metadata {
            el(&mut out, "UserMetadata", m);
        }
        if let Some(r) = runtime {
            el(&mut out, "CreatedAt", &format_iso8601_7(r.created_at));
            el(&mut out, "UpdatedAt", &format_iso8601_7(r.updated_at));
            el(&mut out, "AccessedAt", &format_iso8601_7(r.accessed_at));
        }
        el(&mut out, "SupportOrdering", "true");
        if let Some(r) = runtime {
            push_counts(&mut out, &r.counts);
        }
        el(&mut out, "AutoDeleteOnIdle", &dur(self.auto_delete_on_idle));
        el(
            &mut out,
            "EnablePartitioning",
            bool_str(self.enable_partitioning),
        );
        if runtime.is_some() {
            el(&mut out, "EntityAvailabilityStatus", "Available");
        }
        if let Some(f) = &self.forward_dead_lettered_messages_to {
            el(&mut out, "ForwardDeadLetteredMessagesTo", f);
        }
        el(&mut out, "EnableExpress", bool_str(self.enable_express));
        el(
            &mut out,
            "MaxMessageSizeInKilobytes",
            &self.max_message_size_in_kilobytes.to_string(),
        );
        out.push_str("</QueueDescription>");
        out
    }
}

impl QueueRuntime {
    /// The runtime properties of an answer (for clients); `None` when they are missing.
    pub fn from_xml(el: &Element) -> Option<QueueRuntime> {
        let num = |parent: &Element, name: &str| parent.child_text(name)?.parse::<u64>().ok();
        let date = |name: &str| parse_iso8601(el.child_text(name)?);
        Some(QueueRuntime {
            size_in_bytes: num(el, "SizeInBytes")?,
            message_count: num(el, "MessageCount")?,
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
    use crate::CONNECT_NS;
    use hematite_queue_protocol::xml::dom;

    fn description(inner: &str) -> Result<QueueDescription, AdminError> {
        let body = format!(
            r#"<entry xmlns="http://www.w3.org/2005/Atom"><content type="application/xml"><QueueDescription xmlns="{CONNECT_NS}">{inner}</QueueDescription></content></entry>"#
        );
        QueueDescription::from_xml(&parse_entry(body.as_bytes())?)
    }

    #[test]
    fn a_sparse_description_takes_azures_defaults() {
        let d =
            description("<MaxDeliveryCount>5</MaxDeliveryCount><LockDuration>PT30S</LockDuration>")
                .expect("valid");
        assert_eq!(d.max_delivery_count, 5);
        assert_eq!(d.lock_duration, Duration::from_secs(30));
        assert_eq!(d.default_message_time_to_live, TIMESPAN_MAX);
        assert_eq!(d.max_size_in_megabytes, 1024);
        assert_eq!(description("").expect("valid"), QueueDescription::default());
    }

    #[test]
    fn the_tutorials_queue_and_the_legacy_timespan_form() {
        // Microsoft's Python tutorial: 5 GB and a one-minute TTL; the 0.50 client writes
        // the TTL as a TimeSpan.
        for ttl in ["PT1M", "0:01:00"] {
            let d = description(&format!(
                "<MaxSizeInMegabytes>5120</MaxSizeInMegabytes><DefaultMessageTimeToLive>{ttl}</DefaultMessageTimeToLive>"
            ))
            .expect("valid");
            assert_eq!(d.max_size_in_megabytes, 5120);
            assert_eq!(d.default_message_time_to_live, Duration::from_secs(60));
        }
    }

    #[test]
    fn out_of_range_values_are_refused_with_the_property_named() {
        for (inner, says) in [
            ("<LockDuration>PT6M</LockDuration>", "maximum"),
            ("<LockDuration>PT1S</LockDuration>", "minimum"),
            ("<MaxDeliveryCount>0</MaxDeliveryCount>", "MaxDeliveryCount"),
            ("<MaxDeliveryCount>x</MaxDeliveryCount>", "MaxDeliveryCount"),
            (
                "<RequiresSession>maybe</RequiresSession>",
                "RequiresSession",
            ),
            ("<Status>Sleeping</Status>", "Status"),
            (
                "<DefaultMessageTimeToLive>PT0S</DefaultMessageTimeToLive>",
                "DefaultMessageTimeToLive",
            ),
            (
                "<MaxSizeInMegabytes>0</MaxSizeInMegabytes>",
                "MaxSizeInMegabytes",
            ),
        ] {
            let e = description(inner).expect_err(inner);
            assert_eq!(e.status, 400);
            assert!(e.detail.contains(says), "{inner}: {}", e.detail);
        }
    }

    #[test]
    fn an_answer_keeps_the_data_contract_order_and_reads_back() {
        let d = QueueDescription {
            user_metadata: Some("m<1>".into()),
            ..QueueDescription::default()
        };
        let t = OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
        let runtime = QueueRuntime {
            size_in_bytes: 10,
            message_count: 4,
            created_at: t,
            updated_at: t,
            accessed_at: t,
            counts: CountDetails {
                active: 1,
                dead_letter: 2,
                scheduled: 1,
                ..CountDetails::default()
            },
        };
        let xml = d.to_xml(Some(&runtime));
        let order: Vec<usize> = [
            "<LockDuration>",
            "<MaxSizeInMegabytes>",
            "<RequiresDuplicateDetection>",
            "<RequiresSession>",
            "<DefaultMessageTimeToLive>",
            "<DeadLetteringOnMessageExpiration>",
            "<DuplicateDetectionHistoryTimeWindow>",
            "<MaxDeliveryCount>",
            "<EnableBatchedOperations>",
            "<SizeInBytes>",
            "<MessageCount>",
            "<IsAnonymousAccessible>",
            "<AuthorizationRules>",
            "<Status>",
            "<UserMetadata>",
            "<CreatedAt>",
            "<UpdatedAt>",
            "<AccessedAt>",
            "<SupportOrdering>",
            "<CountDetails",
            "<AutoDeleteOnIdle>",
            "<EnablePartitioning>",
            "<EntityAvailabilityStatus>",
            "<EnableExpress>",
            "<MaxMessageSizeInKilobytes>",
        ]
        .iter()
        .map(|tag| xml.find(tag).unwrap_or_else(|| panic!("{tag} missing")))
        .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{xml}");
        assert_eq!(xml.matches("xmlns:d2p1").count(), 1);
        let el = dom::parse(xml.as_bytes())
            .expect("well-formed")
            .expect("root");
        assert_eq!(QueueDescription::from_xml(&el).expect("reads"), d);
        assert_eq!(QueueRuntime::from_xml(&el), Some(runtime));
    }
}
