//! The namespace: its keys and its entities with their properties, read from the
//! emulator's `config.json` unchanged or from defaults.
//!
//! Properties a configuration leaves out take Azure's defaults, not the emulator's: a lock of
//! one minute, ten deliveries before dead-lettering, messages that live until removed. The
//! emulator's quotas (1 h TTL at most, 50 entities, 10 connections) are not applied.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::sas::Key;

/// The namespace name the emulator's configuration fixes.
pub const EMULATOR_NAMESPACE: &str = "sbemulatorns";
/// The key every emulator connection string carries.
pub const EMULATOR_KEY_NAME: &str = "RootManageSharedAccessKey";
pub const EMULATOR_KEY_VALUE: &str = "SAS_KEY_VALUE";

/// 256 KB, the Standard tier's message size.
pub const DEFAULT_MAX_MESSAGE_BYTES: u64 = 256 * 1024;
/// The largest message a Premium namespace takes.
pub const LARGEST_MAX_MESSAGE_BYTES: u64 = 100 * 1024 * 1024;

/// A queue's properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueProperties {
    /// The name as configured; lookups are by its lowercase form.
    pub name: String,
    pub lock_duration: Duration,
    pub max_delivery_count: u32,
    /// `None`: messages live until removed.
    pub default_ttl: Option<Duration>,
    pub dead_letter_on_expiry: bool,
    pub max_size_mb: u64,
    pub max_message_bytes: u64,
    pub requires_session: bool,
}

impl QueueProperties {
    pub fn new(name: &str) -> Self {
        QueueProperties {
            name: name.to_owned(),
            lock_duration: Duration::from_secs(60),
            max_delivery_count: 10,
            default_ttl: None,
            dead_letter_on_expiry: false,
            max_size_mb: 1024,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            requires_session: false,
        }
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
    let p = &q.properties;
    let mut props = QueueProperties::new(&q.name);
    let duration = |field: &str, v: &Option<String>| -> Result<Option<Duration>, ConfigError> {
        v.as_deref()
            .map(|s| {
                iso8601_duration(s).ok_or_else(|| {
                    ConfigError::Invalid(format!(
                        "queue {}: {field} {s:?} is not a duration",
                        q.name
                    ))
                })
            })
            .transpose()
    };
    if let Some(d) = duration("LockDuration", &p.lock_duration)? {
        if d < Duration::from_secs(5) || d > Duration::from_secs(300) {
            return Err(ConfigError::Invalid(format!(
                "queue {}: LockDuration must be between 5 seconds and 5 minutes",
                q.name
            )));
        }
        props.lock_duration = d;
    }
    if let Some(ttl) = duration("DefaultMessageTimeToLive", &p.default_message_time_to_live)? {
        // TimeSpan.MaxValue and anything near it mean "for ever".
        props.default_ttl = (ttl < Duration::from_secs(10_000 * 365 * 86_400)).then_some(ttl);
    }
    if let Some(n) = p.max_delivery_count {
        if n == 0 {
            return Err(ConfigError::Invalid(format!(
                "queue {}: MaxDeliveryCount must be at least 1",
                q.name
            )));
        }
        props.max_delivery_count = n;
    }
    props.dead_letter_on_expiry = p.dead_lettering_on_message_expiration.unwrap_or(false);
    if let Some(mb) = p.max_size_in_megabytes {
        if mb == 0 {
            return Err(ConfigError::Invalid(format!(
                "queue {}: MaxSizeInMegabytes must be at least 1",
                q.name
            )));
        }
        props.max_size_mb = mb;
    }
    if let Some(kb) = p.max_message_size_in_kilobytes {
        props.max_message_bytes = (kb * 1024).clamp(1024, LARGEST_MAX_MESSAGE_BYTES);
    }
    props.requires_session = p.requires_session.unwrap_or(false);
    if props.requires_session {
        skipped.push(format!(
            "queue {}: sessions are not supported yet; its receivers are refused",
            q.name
        ));
    }
    if p.requires_duplicate_detection == Some(true) {
        skipped.push(format!(
            "queue {}: duplicate detection is not supported yet; ignored",
            q.name
        ));
    }
    if p.forward_to.as_deref().is_some_and(|s| !s.is_empty())
        || p.forward_dead_lettered_messages_to
            .as_deref()
            .is_some_and(|s| !s.is_empty())
    {
        skipped.push(format!(
            "queue {}: auto-forwarding is not supported yet; ignored",
            q.name
        ));
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

/// An ISO 8601 duration as .NET writes TimeSpans: `P[nD][T[nH][nM][n[.f]S]]`.
pub fn iso8601_duration(s: &str) -> Option<Duration> {
    let rest = s.strip_prefix('P').filter(|r| !r.is_empty())?;
    let (days, time) = match rest.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    let mut total = 0f64;
    if !days.is_empty() {
        total += days.strip_suffix('D')?.parse::<u64>().ok()? as f64 * 86_400.0;
    }
    if let Some(mut t) = time {
        if t.is_empty() {
            return None;
        }
        for (unit, secs) in [('H', 3600.0), ('M', 60.0), ('S', 1.0)] {
            if let Some(i) = t.find(unit) {
                let n: f64 = t[..i].parse().ok()?;
                if n < 0.0 || (unit != 'S' && n.fract() != 0.0) {
                    return None;
                }
                total += n * secs;
                t = &t[i + 1..];
            }
        }
        if !t.is_empty() {
            return None;
        }
    }
    (total.is_finite() && total < u64::MAX as f64).then(|| Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_dotnet_writes_them() {
        assert_eq!(iso8601_duration("PT1M"), Some(Duration::from_secs(60)));
        assert_eq!(
            iso8601_duration("PT1H30M5S"),
            Some(Duration::from_secs(5405))
        );
        assert_eq!(
            iso8601_duration("P1DT2H"),
            Some(Duration::from_secs(93_600))
        );
        assert_eq!(iso8601_duration("PT0.5S"), Some(Duration::from_millis(500)));
        assert!(iso8601_duration("P10675199DT2H48M5.4775807S").is_some());
        for bad in ["", "P", "PT", "1M", "PT1X", "PT-1S", "P1.5D"] {
            assert_eq!(iso8601_duration(bad), None, "{bad}");
        }
    }

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
        assert_eq!(q.max_delivery_count, 3);
        assert_eq!(q.default_ttl, Some(Duration::from_secs(3600)));
        assert_eq!(q.lock_duration, Duration::from_secs(60));
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
        assert_eq!((q.max_delivery_count, q.default_ttl), (10, None));
    }

    #[test]
    fn invalid_configurations_say_what_is_wrong() {
        for (json, says) in [
            (r#"{"UserConfig":{"Namespaces":[]}}"#, "no namespace"),
            (
                r#"{"UserConfig":{"Namespaces":[{"Name":"n","Queues":[{"Name":"q","Properties":{"LockDuration":"PT1S"}}]}]}}"#,
                "LockDuration",
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
