//! The namespace: its keys and its entities with their properties, read from the
//! emulator's `config.json` unchanged or from defaults.
//!
//! Properties a configuration leaves out take Azure's defaults, not the emulator's: a lock of
//! one minute, ten deliveries before dead-lettering, messages that live until removed. The
//! emulator's quotas (1 h TTL at most, 50 entities, 10 connections) are not applied.

use std::collections::BTreeMap;
use std::time::Duration;

use hematite_engine::LeaseRules;
use hematite_servicebus_protocol::{parse_duration, EntityStatus, QueueDescription};
use serde::Deserialize;
use time::OffsetDateTime;

use crate::sas::{Key, Right};

/// The namespace name the emulator's configuration fixes.
pub const EMULATOR_NAMESPACE: &str = "sbemulatorns";
/// The key every emulator connection string carries.
pub const EMULATOR_KEY_NAME: &str = "RootManageSharedAccessKey";
pub const EMULATOR_KEY_VALUE: &str = "SAS_KEY_VALUE";

/// The largest message a Premium namespace takes.
pub const LARGEST_MAX_MESSAGE_BYTES: u64 = 100 * 1024 * 1024;

/// A queue: its name as created, its description, and when it was created and last changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueProperties {
    /// The name as configured; lookups are by its lowercase form.
    pub name: String,
    pub description: QueueDescription,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// A TTL this long or longer means "for ever" (Azure's default is `TimeSpan.MaxValue`).
const FOREVER: Duration = Duration::from_secs(10_000 * 365 * 86_400);

impl QueueProperties {
    /// A queue with Azure's defaults.
    pub fn new(name: &str) -> Self {
        QueueProperties {
            name: name.to_owned(),
            description: QueueDescription::default(),
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    pub fn lock_duration(&self) -> Duration {
        self.description.lock_duration
    }

    /// `None`: messages live until removed.
    pub fn default_ttl(&self) -> Option<Duration> {
        let ttl = self.description.default_message_time_to_live;
        (ttl < FOREVER).then_some(ttl)
    }

    pub fn max_size_bytes(&self) -> u64 {
        self.description
            .max_size_in_megabytes
            .saturating_mul(1024 * 1024)
    }

    pub fn max_message_bytes(&self) -> u64 {
        (self.description.max_message_size_in_kilobytes * 1024)
            .clamp(1024, LARGEST_MAX_MESSAGE_BYTES)
    }

    pub fn requires_session(&self) -> bool {
        self.description.requires_session
    }

    /// Whether the queue's status lets a link attach to it for `right`: a disabled queue
    /// neither sends nor receives, and the half-disabled states stop one side.
    pub fn allows(&self, right: Right) -> bool {
        match (self.description.status, right) {
            (EntityStatus::Active, _) | (_, Right::Manage) => true,
            (EntityStatus::Disabled, _) => false,
            (EntityStatus::SendDisabled, r) => r != Right::Send,
            (EntityStatus::ReceiveDisabled, r) => r != Right::Listen,
        }
    }

    /// The engine's rules for the queue's messages.
    pub fn rules(&self) -> LeaseRules {
        LeaseRules::service_bus(
            self.description.max_delivery_count,
            self.description.dead_lettering_on_message_expiration,
        )
    }

    /// What the description asks for that this server does not do yet, each with what
    /// happens instead.
    pub fn unsupported(&self) -> Vec<String> {
        let d = &self.description;
        let mut out = Vec::new();
        if d.requires_session {
            out.push("sessions are not supported yet; its receivers are refused".to_owned());
        }
        if d.requires_duplicate_detection {
            out.push("duplicate detection is not supported yet; ignored".to_owned());
        }
        if d.forward_to.is_some() || d.forward_dead_lettered_messages_to.is_some() {
            out.push("auto-forwarding is not supported yet; ignored".to_owned());
        }
        out
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    pub name: String,
    pub keys: Vec<Key>,
    /// By lowercase name.
    pub queues: BTreeMap<String, QueueProperties>,
    /// What the configuration held that is not served, each with why.
    pub skipped: Vec<String>,
}

impl Default for Namespace {
    /// The emulator's out-of-the-box namespace: its key and its one queue, `queue.1`.
    fn default() -> Self {
        let mut ns = Namespace {
            name: EMULATOR_NAMESPACE.to_owned(),
            keys: vec![Key {
                name: EMULATOR_KEY_NAME.to_owned(),
                value: EMULATOR_KEY_VALUE.to_owned(),
                rights: crate::sas::Rights::ALL,
            }],
            queues: BTreeMap::new(),
            skipped: Vec::new(),
        };
        ns.queues
            .insert("queue.1".to_owned(), QueueProperties::new("queue.1"));
        ns
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config.json is not valid: {0}")]
    Json(#[from] serde_json::Error),
    #[error("config.json: {0}")]
    Invalid(String),
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct File {
    user_config: UserConfig,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UserConfig {
    namespaces: Vec<NamespaceConfig>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NamespaceConfig {
    name: String,
    #[serde(default)]
    queues: Vec<QueueConfig>,
    #[serde(default)]
    topics: Vec<NamedOnly>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NamedOnly {
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct QueueConfig {
    name: String,
    #[serde(default)]
    properties: QueueConfigProperties,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct QueueConfigProperties {
    dead_lettering_on_message_expiration: Option<bool>,
    default_message_time_to_live: Option<String>,
    lock_duration: Option<String>,
    max_delivery_count: Option<u32>,
    requires_session: Option<bool>,
    requires_duplicate_detection: Option<bool>,
    duplicate_detection_history_time_window: Option<String>,
    forward_to: Option<String>,
    forward_dead_lettered_messages_to: Option<String>,
    max_size_in_megabytes: Option<u64>,
    max_message_size_in_kilobytes: Option<u64>,
}

impl Namespace {
    /// Reads the emulator's `config.json`: `UserConfig.Namespaces[]` with their `Queues`.
    /// What cannot be served yet (topics, duplicate detection, forwarding) is listed in
    /// `skipped` rather than refused, so the emulator's own sample configuration starts.
    pub fn from_emulator_config(json: &str) -> Result<Namespace, ConfigError> {
        let file: File = serde_json::from_str(json)?;
        let mut namespaces = file.user_config.namespaces.into_iter();
        let Some(config) = namespaces.next() else {
            return Err(ConfigError::Invalid("no namespace".into()));
        };
        if namespaces.next().is_some() {
            return Err(ConfigError::Invalid("more than one namespace".into()));
        }
        let mut ns = Namespace {
            name: config.name,
            queues: BTreeMap::new(),
            ..Namespace::default()
        };
        for topic in config.topics {
            ns.skipped.push(format!(
                "topic {}: topics are not supported yet",
                topic.name
            ));
        }
        for q in config.queues {
            let props = queue(&q, &mut ns.skipped)?;
            if ns
                .queues
                .insert(q.name.to_ascii_lowercase(), props)
                .is_some()
            {
                return Err(ConfigError::Invalid(format!("queue {} twice", q.name)));
            }
        }
        Ok(ns)
    }

    pub fn queue(&self, name: &str) -> Option<&QueueProperties> {
        self.queues.get(name)
    }
}

fn queue(q: &QueueConfig, skipped: &mut Vec<String>) -> Result<QueueProperties, ConfigError> {
    if !valid_name(&q.name) {
        return Err(ConfigError::Invalid(format!(
            "queue name {:?} is not valid",
            q.name
        )));
    }
    let invalid = |what: String| ConfigError::Invalid(format!("queue {}: {what}", q.name));
    let duration = |field: &str, v: &Option<String>| -> Result<Option<Duration>, ConfigError> {
        v.as_deref()
            .map(|s| {
                parse_duration(s).ok_or_else(|| invalid(format!("{field} {s:?} is not a duration")))
            })
            .transpose()
    };
    let p = &q.properties;
    let mut d = QueueDescription::default();
    let text = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
    if let Some(v) = duration("LockDuration", &p.lock_duration)? {
        d.lock_duration = v;
    }
    if let Some(v) = duration("DefaultMessageTimeToLive", &p.default_message_time_to_live)? {
        d.default_message_time_to_live = v;
    }
    if let Some(v) = duration(
        "DuplicateDetectionHistoryTimeWindow",
        &p.duplicate_detection_history_time_window,
    )? {
        d.duplicate_detection_history_time_window = v;
    }
    d.max_delivery_count = p.max_delivery_count.unwrap_or(d.max_delivery_count);
    d.dead_lettering_on_message_expiration =
        p.dead_lettering_on_message_expiration.unwrap_or(false);
    d.max_size_in_megabytes = p.max_size_in_megabytes.unwrap_or(d.max_size_in_megabytes);
    d.max_message_size_in_kilobytes = p
        .max_message_size_in_kilobytes
        .unwrap_or(d.max_message_size_in_kilobytes);
    d.requires_session = p.requires_session.unwrap_or(false);
    d.requires_duplicate_detection = p.requires_duplicate_detection.unwrap_or(false);
    d.forward_to = text(&p.forward_to);
    d.forward_dead_lettered_messages_to = text(&p.forward_dead_lettered_messages_to);
    d.check().map_err(|e| invalid(e.detail))?;
    let props = QueueProperties {
        description: d,
        ..QueueProperties::new(&q.name)
    };
    for what in props.unsupported() {
        skipped.push(format!("queue {}: {what}", q.name));
    }
    Ok(props)
}

/// Service Bus entity names: letters, digits, `.`, `-`, `_` and `/`, up to 260 characters,
/// starting and ending with a letter or digit.
pub fn valid_name(name: &str) -> bool {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/');
    !name.is_empty()
        && name.len() <= 260
        && name.chars().all(ok_char)
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMULATOR_SAMPLE: &str = r#"{
      "UserConfig": {
        "Namespaces": [{
          "Name": "sbemulatorns",
          "Queues": [{
            "Name": "queue.1",
            "Properties": {
              "DeadLetteringOnMessageExpiration": false,
              "DefaultMessageTimeToLive": "PT1H",
              "DuplicateDetectionHistoryTimeWindow": "PT20S",
              "ForwardDeadLetteredMessagesTo": "",
              "ForwardTo": "",
              "LockDuration": "PT1M",
              "MaxDeliveryCount": 3,
              "RequiresDuplicateDetection": false,
              "RequiresSession": false
            }
          }],
          "Topics": [{
            "Name": "topic.1",
            "Properties": {"DefaultMessageTimeToLive": "PT1H"},
            "Subscriptions": [{"Name": "subscription.1", "Properties": {}, "Rules": []}]
          }]
        }],
        "Logging": {"Type": "File"}
      }
    }"#;

    #[test]
    fn the_emulators_sample_configuration_reads_with_topics_skipped() {
        let ns = Namespace::from_emulator_config(EMULATOR_SAMPLE).expect("reads");
        assert_eq!(ns.name, "sbemulatorns");
        let q = ns.queue("queue.1").expect("queue.1");
        assert_eq!(q.description.max_delivery_count, 3);
        assert_eq!(q.default_ttl(), Some(Duration::from_secs(3600)));
        assert_eq!(q.lock_duration(), Duration::from_secs(60));
        assert_eq!(
            ns.skipped,
            vec!["topic topic.1: topics are not supported yet".to_owned()]
        );
        assert_eq!(ns.keys[0].value, EMULATOR_KEY_VALUE);
    }

    #[test]
    fn omitted_properties_take_azures_defaults() {
        let json = r#"{"UserConfig":{"Namespaces":[{"Name":"n","Queues":[{"Name":"Orders"}]}]}}"#;
        let ns = Namespace::from_emulator_config(json).expect("reads");
        let q = ns.queue("orders").expect("by lowercase name");
        assert_eq!(q.name, "Orders");
        assert_eq!(
            (q.description.max_delivery_count, q.default_ttl()),
            (10, None)
        );
    }

    #[test]
    fn invalid_configurations_say_what_is_wrong() {
        for (json, says) in [
            (r#"{"UserConfig":{"Namespaces":[]}}"#, "no namespace"),
            (
                r#"{"UserConfig":{"Namespaces":[{"Name":"n","Queues":[{"Name":"q","Properties":{"LockDuration":"PT1S"}}]}]}}"#,
                "lock time",
            ),
            (
                r#"{"UserConfig":{"Namespaces":[{"Name":"n","Queues":[{"Name":"-q"}]}]}}"#,
                "not valid",
            ),
            (
                r#"{"UserConfig":{"Namespaces":[{"Name":"n","Queues":[{"Name":"q"},{"Name":"Q"}]}]}}"#,
                "twice",
            ),
            ("{", "not valid"),
        ] {
            let e = Namespace::from_emulator_config(json)
                .expect_err(json)
                .to_string();
            assert!(e.contains(says), "{e}");
        }
    }
}
