//! Account-level documents: service properties (logging, metrics, CORS) and service stats.
//!
//! Set Service Properties is a partial update since 2013-08-15: an absent element keeps the
//! stored value. The parser therefore yields a patch, and validation happens here so every
//! stored value is one the service would have accepted.

use time::OffsetDateTime;

use super::dom::Element;
use super::writer::{bool_str, close, empty_element, open, text_element, DECLARATION};
use super::{dom, XmlError};
use crate::datetime::format_rfc1123;

pub const MAX_CORS_RULES: usize = 5;
const MAX_CORS_ORIGINS: usize = 64;
const MAX_CORS_LITERAL_HEADERS: usize = 64;
const MAX_CORS_PREFIXED_HEADERS: usize = 2;
const MAX_CORS_ITEM_LEN: usize = 256;
/// Sum of all CORS values, tags excluded.
const MAX_CORS_TOTAL_LEN: usize = 2048;
const MIN_RETENTION_DAYS: u32 = 1;
const MAX_RETENTION_DAYS: u32 = 365;
pub const CORS_METHODS: &[&str] = &["DELETE", "GET", "HEAD", "MERGE", "POST", "OPTIONS", "PUT"];

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RetentionPolicy {
    pub enabled: bool,
    /// 1..=365 when enabled; `None` when disabled.
    pub days: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logging {
    pub version: String,
    pub delete: bool,
    pub read: bool,
    pub write: bool,
    pub retention: RetentionPolicy,
}

impl Default for Logging {
    fn default() -> Self {
        Self {
            version: "1.0".into(),
            delete: false,
            read: false,
            write: false,
            retention: RetentionPolicy::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metrics {
    pub version: String,
    pub enabled: bool,
    /// Only meaningful (and only written) when `enabled`.
    pub include_apis: Option<bool>,
    pub retention: RetentionPolicy,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            version: "1.0".into(),
            enabled: false,
            include_apis: None,
            retention: RetentionPolicy::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CorsRule {
    pub allowed_origins: Vec<String>,
    /// Upper-cased on input, so matching a request method is a plain comparison.
    pub allowed_methods: Vec<String>,
    pub allowed_headers: Vec<String>,
    pub exposed_headers: Vec<String>,
    pub max_age_seconds: u32,
}

/// What a Set Service Properties body changes. `None` means the element was absent and the
/// stored value stays; `cors: Some(vec![])` (from `<Cors/>`) deletes every rule.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServicePropertiesPatch {
    pub logging: Option<Logging>,
    pub hour_metrics: Option<Metrics>,
    pub minute_metrics: Option<Metrics>,
    pub cors: Option<Vec<CorsRule>>,
}

/// Stored service properties; the default is what an account that never set anything reads.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceProperties {
    pub logging: Logging,
    pub hour_metrics: Metrics,
    pub minute_metrics: Metrics,
    pub cors: Vec<CorsRule>,
}

impl ServiceProperties {
    pub fn apply(&mut self, patch: ServicePropertiesPatch) {
        if let Some(l) = patch.logging {
            self.logging = l;
        }
        if let Some(m) = patch.hour_metrics {
            self.hour_metrics = m;
        }
        if let Some(m) = patch.minute_metrics {
            self.minute_metrics = m;
        }
        if let Some(c) = patch.cors {
            self.cors = c;
        }
    }
}

/// Parses a Set Queue Service Properties body.
///
/// With `legacy` (version < 2013-08-15) the body has `Logging` and `Metrics` (hourly), both
/// required; `MinuteMetrics` and `Cors` do not exist there and are ignored. Otherwise all
/// four children are optional, but a present one must be complete.
pub fn parse_service_properties(
    body: &[u8],
    legacy: bool,
) -> Result<ServicePropertiesPatch, XmlError> {
    let root = dom::parse(body)?.ok_or(XmlError::Malformed)?;
    if root.name != "StorageServiceProperties" {
        return Err(XmlError::Malformed);
    }
    let mut patch = ServicePropertiesPatch {
        logging: root.child("Logging").map(parse_logging).transpose()?,
        ..Default::default()
    };
    if legacy {
        if patch.logging.is_none() {
            return Err(XmlError::MissingNode("Logging"));
        }
        let metrics = root
            .child("Metrics")
            .ok_or(XmlError::MissingNode("Metrics"))?;
        patch.hour_metrics = Some(parse_metrics(metrics)?);
    } else {
        patch.hour_metrics = root.child("HourMetrics").map(parse_metrics).transpose()?;
        patch.minute_metrics = root.child("MinuteMetrics").map(parse_metrics).transpose()?;
        patch.cors = root.child("Cors").map(parse_cors).transpose()?;
    }
    Ok(patch)
}

fn parse_bool(el: &Element, name: &'static str) -> Result<bool, XmlError> {
    let v = el.required_text(name)?;
    if v.eq_ignore_ascii_case("true") || v == "1" {
        Ok(true)
    } else if v.eq_ignore_ascii_case("false") || v == "0" {
        Ok(false)
    } else {
        Err(XmlError::InvalidValue(name.into()))
    }
}

fn parse_version(el: &Element) -> Result<String, XmlError> {
    let v = el.required_text("Version")?;
    if v.is_empty() {
        return Err(XmlError::InvalidValue("Version".into()));
    }
    Ok(v.to_owned())
}

fn parse_retention(el: &Element) -> Result<RetentionPolicy, XmlError> {
    let enabled = parse_bool(el, "Enabled")?;
    if !enabled {
        // Days is meaningless when disabled; the service ignores it, so do we.
        return Ok(RetentionPolicy::default());
    }
    let days = el
        .required_text("Days")?
        .parse::<u32>()
        .ok()
        .filter(|d| (MIN_RETENTION_DAYS..=MAX_RETENTION_DAYS).contains(d))
        .ok_or_else(|| XmlError::InvalidValue("Days".into()))?;
    Ok(RetentionPolicy {
        enabled,
        days: Some(days),
    })
}

fn parse_logging(el: &Element) -> Result<Logging, XmlError> {
    Ok(Logging {
        version: parse_version(el)?,
        delete: parse_bool(el, "Delete")?,
        read: parse_bool(el, "Read")?,
        write: parse_bool(el, "Write")?,
        retention: parse_retention(
            el.child("RetentionPolicy")
                .ok_or(XmlError::MissingNode("RetentionPolicy"))?,
        )?,
    })
}

fn parse_metrics(el: &Element) -> Result<Metrics, XmlError> {
    let version = parse_version(el)?;
    let enabled = parse_bool(el, "Enabled")?;
    let include_apis = if enabled {
        Some(parse_bool(el, "IncludeAPIs")?)
    } else {
        None
    };
    let retention = el
        .child("RetentionPolicy")
        .map(parse_retention)
        .transpose()?
        .unwrap_or_default();
    Ok(Metrics {
        version,
        enabled,
        include_apis,
        retention,
    })
}

fn parse_cors(el: &Element) -> Result<Vec<CorsRule>, XmlError> {
    let count = el.children_named("CorsRule").count();
    if count > MAX_CORS_RULES {
        return Err(XmlError::Invalid(format!(
            "{count} CORS rules given, at most {MAX_CORS_RULES} are allowed"
        )));
    }
    let mut total = 0;
    let mut rules = Vec::with_capacity(count);
    for r in el.children_named("CorsRule") {
        let origins = r.required_text("AllowedOrigins")?;
        let methods = r.required_text("AllowedMethods")?;
        let max_age = r.required_text("MaxAgeInSeconds")?;
        let exposed = r.required_text("ExposedHeaders")?;
        let allowed = r.required_text("AllowedHeaders")?;
        // Counted as the service counts it: the trimmed items and the age's digits, no commas.
        total += [origins, methods, exposed, allowed]
            .iter()
            .flat_map(|list| list.split(','))
            .map(|item| item.trim().len())
            .sum::<usize>()
            + max_age.len();

        let allowed_origins = split_list(origins);
        if allowed_origins.is_empty()
            || allowed_origins.len() > MAX_CORS_ORIGINS
            || allowed_origins.iter().any(|o| o.len() > MAX_CORS_ITEM_LEN)
        {
            return Err(XmlError::InvalidValue("AllowedOrigins".into()));
        }
        let allowed_methods: Vec<String> = split_list(methods)
            .into_iter()
            .map(|m| m.to_ascii_uppercase())
            .collect();
        if allowed_methods.is_empty()
            || !allowed_methods
                .iter()
                .all(|m| CORS_METHODS.contains(&m.as_str()))
        {
            return Err(XmlError::InvalidValue("AllowedMethods".into()));
        }
        let max_age_seconds = max_age
            .parse()
            .map_err(|_| XmlError::InvalidValue("MaxAgeInSeconds".into()))?;
        rules.push(CorsRule {
            allowed_origins,
            allowed_methods,
            allowed_headers: header_list(allowed, "AllowedHeaders")?,
            exposed_headers: header_list(exposed, "ExposedHeaders")?,
            max_age_seconds,
        });
    }
    if total > MAX_CORS_TOTAL_LEN {
        return Err(XmlError::Invalid(format!(
            "CORS settings total {total} characters, at most {MAX_CORS_TOTAL_LEN} are allowed"
        )));
    }
    Ok(rules)
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Header lists may be empty, but hold at most 64 literal names and 2 prefixes (`x-ms-meta-*`).
fn header_list(s: &str, node: &str) -> Result<Vec<String>, XmlError> {
    let list = split_list(s);
    let prefixed = list.iter().filter(|h| h.ends_with('*')).count();
    if list.len() - prefixed > MAX_CORS_LITERAL_HEADERS
        || prefixed > MAX_CORS_PREFIXED_HEADERS
        || list.iter().any(|h| h.len() > MAX_CORS_ITEM_LEN)
    {
        return Err(XmlError::InvalidValue(node.into()));
    }
    Ok(list)
}

/// The Get Queue Service Properties body. With `legacy` the hour metrics are written as
/// `Metrics` and there is no `MinuteMetrics` or `Cors`.
pub fn write_service_properties(p: &ServiceProperties, legacy: bool) -> String {
    let mut out = String::with_capacity(1024);
    out.push_str(DECLARATION);
    open(&mut out, "StorageServiceProperties");
    write_logging(&mut out, &p.logging);
    if legacy {
        write_metrics(&mut out, "Metrics", &p.hour_metrics);
    } else {
        write_metrics(&mut out, "HourMetrics", &p.hour_metrics);
        write_metrics(&mut out, "MinuteMetrics", &p.minute_metrics);
        write_cors(&mut out, &p.cors);
    }
    close(&mut out, "StorageServiceProperties");
    out
}

fn write_retention(out: &mut String, r: &RetentionPolicy) {
    open(out, "RetentionPolicy");
    text_element(out, "Enabled", bool_str(r.enabled));
    if let (true, Some(days)) = (r.enabled, r.days) {
        text_element(out, "Days", &days.to_string());
    }
    close(out, "RetentionPolicy");
}

fn write_logging(out: &mut String, l: &Logging) {
    open(out, "Logging");
    text_element(out, "Version", &l.version);
    text_element(out, "Delete", bool_str(l.delete));
    text_element(out, "Read", bool_str(l.read));
    text_element(out, "Write", bool_str(l.write));
    write_retention(out, &l.retention);
    close(out, "Logging");
}

fn write_metrics(out: &mut String, name: &str, m: &Metrics) {
    open(out, name);
    text_element(out, "Version", &m.version);
    text_element(out, "Enabled", bool_str(m.enabled));
    if let (true, Some(apis)) = (m.enabled, m.include_apis) {
        text_element(out, "IncludeAPIs", bool_str(apis));
    }
    write_retention(out, &m.retention);
    close(out, name);
}

fn write_cors(out: &mut String, rules: &[CorsRule]) {
    if rules.is_empty() {
        empty_element(out, "Cors");
        return;
    }
    open(out, "Cors");
    for r in rules {
        open(out, "CorsRule");
        text_element(out, "AllowedOrigins", &r.allowed_origins.join(","));
        text_element(out, "AllowedMethods", &r.allowed_methods.join(","));
        text_element(out, "MaxAgeInSeconds", &r.max_age_seconds.to_string());
        text_element(out, "ExposedHeaders", &r.exposed_headers.join(","));
        text_element(out, "AllowedHeaders", &r.allowed_headers.join(","));
        close(out, "CorsRule");
    }
    close(out, "Cors");
}

/// The Get Queue Service Stats body. `status` is `live`, `bootstrap` or `unavailable`; an
/// unknown last sync time is written empty.
pub fn write_service_stats(status: &str, last_sync: Option<OffsetDateTime>) -> String {
    let mut out = String::with_capacity(200);
    out.push_str(DECLARATION);
    open(&mut out, "StorageServiceStats");
    open(&mut out, "GeoReplication");
    text_element(&mut out, "Status", status);
    let sync = last_sync.map(format_rfc1123).unwrap_or_default();
    text_element(&mut out, "LastSyncTime", &sync);
    close(&mut out, "GeoReplication");
    close(&mut out, "StorageServiceStats");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const DOC_SAMPLE: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<StorageServiceProperties>
  <Logging><Version>1.0</Version><Delete>true</Delete><Read>false</Read><Write>true</Write>
    <RetentionPolicy><Enabled>true</Enabled><Days>7</Days></RetentionPolicy></Logging>
  <HourMetrics><Version>1.0</Version><Enabled>true</Enabled><IncludeAPIs>false</IncludeAPIs>
    <RetentionPolicy><Enabled>true</Enabled><Days>7</Days></RetentionPolicy></HourMetrics>
  <MinuteMetrics><Version>1.0</Version><Enabled>false</Enabled>
    <RetentionPolicy><Enabled>false</Enabled></RetentionPolicy></MinuteMetrics>
  <Cors>
    <CorsRule>
      <AllowedOrigins>http://a.com,http://b.com</AllowedOrigins>
      <AllowedMethods>GET,PUT</AllowedMethods>
      <MaxAgeInSeconds>500</MaxAgeInSeconds>
      <ExposedHeaders>x-ms-meta-data*,x-ms-meta-customheader</ExposedHeaders>
      <AllowedHeaders>x-ms-meta-target*,x-ms-meta-customheader</AllowedHeaders>
    </CorsRule>
  </Cors>
</StorageServiceProperties>"#;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn sample_props() -> ServiceProperties {
        ServiceProperties {
            logging: Logging {
                version: "1.0".into(),
                delete: true,
                read: false,
                write: true,
                retention: RetentionPolicy {
                    enabled: true,
                    days: Some(7),
                },
            },
            hour_metrics: Metrics {
                version: "1.0".into(),
                enabled: true,
                include_apis: Some(false),
                retention: RetentionPolicy {
                    enabled: true,
                    days: Some(7),
                },
            },
            minute_metrics: Metrics::default(),
            cors: vec![CorsRule {
                allowed_origins: v(&["http://a.com", "http://b.com"]),
                allowed_methods: v(&["GET", "PUT"]),
                allowed_headers: v(&["x-ms-meta-target*", "x-ms-meta-customheader"]),
                exposed_headers: v(&["x-ms-meta-data*", "x-ms-meta-customheader"]),
                max_age_seconds: 500,
            }],
        }
    }

    #[test]
    fn parses_docs_sample() {
        let patch = parse_service_properties(DOC_SAMPLE.as_bytes(), false).unwrap();
        let want = sample_props();
        assert_eq!(
            patch,
            ServicePropertiesPatch {
                logging: Some(want.logging),
                hour_metrics: Some(want.hour_metrics),
                minute_metrics: Some(want.minute_metrics),
                cors: Some(want.cors),
            }
        );
    }

    #[test]
    fn partial_patch_keeps_stored_values() {
        let mut props = sample_props();
        let patch = parse_service_properties(
            b"<StorageServiceProperties><Cors/></StorageServiceProperties>",
            false,
        )
        .unwrap();
        assert_eq!(
            patch,
            ServicePropertiesPatch {
                cors: Some(vec![]),
                ..Default::default()
            }
        );
        props.apply(patch);
        assert!(props.cors.is_empty());
        assert_eq!(props.logging, sample_props().logging);

        let empty = parse_service_properties(b"<StorageServiceProperties/>", false).unwrap();
        assert_eq!(empty, ServicePropertiesPatch::default());
        let mut p2 = sample_props();
        p2.apply(empty);
        assert_eq!(p2, sample_props());
    }

    #[test]
    fn legacy_body_uses_metrics() {
        let body =
            b"<StorageServiceProperties><Logging><Version>1.0</Version><Delete>false</Delete>\
            <Read>true</Read><Write>false</Write><RetentionPolicy><Enabled>false</Enabled>\
            </RetentionPolicy></Logging><Metrics><Version>1.0</Version><Enabled>true</Enabled>\
            <IncludeAPIs>true</IncludeAPIs><RetentionPolicy><Enabled>false</Enabled>\
            </RetentionPolicy></Metrics><Cors/></StorageServiceProperties>";
        let patch = parse_service_properties(body, true).unwrap();
        assert_eq!(patch.logging.as_ref().map(|l| l.read), Some(true));
        assert_eq!(
            patch.hour_metrics,
            Some(Metrics {
                version: "1.0".into(),
                enabled: true,
                include_apis: Some(true),
                retention: RetentionPolicy::default(),
            })
        );
        assert_eq!(patch.minute_metrics, None);
        assert_eq!(patch.cors, None, "Cors does not exist before 2013-08-15");
        // The same body in the modern form ignores Metrics.
        let modern = parse_service_properties(body, false).unwrap();
        assert_eq!(modern.hour_metrics, None);
        assert_eq!(modern.cors, Some(vec![]));

        let no_metrics =
            b"<StorageServiceProperties><Logging><Version>1.0</Version><Delete>false</Delete>\
            <Read>true</Read><Write>false</Write><RetentionPolicy><Enabled>false</Enabled>\
            </RetentionPolicy></Logging></StorageServiceProperties>";
        assert_eq!(
            parse_service_properties(no_metrics, true),
            Err(XmlError::MissingNode("Metrics"))
        );
        assert_eq!(
            parse_service_properties(b"<StorageServiceProperties/>", true),
            Err(XmlError::MissingNode("Logging"))
        );
    }

    #[test]
    fn leniency() {
        let body = "\u{FEFF}<?xml version='1.0' encoding='utf-8'?>\n\
            <s:StorageServiceProperties xmlns:s=\"urn:x\">\
            <s:HourMetrics><s:RetentionPolicy><s:Days>3</s:Days><s:Enabled> True </s:Enabled>\
            </s:RetentionPolicy><s:IncludeAPIs>1</s:IncludeAPIs><s:Enabled>true</s:Enabled>\
            <s:Version>1.0</s:Version></s:HourMetrics></s:StorageServiceProperties>";
        let patch = parse_service_properties(body.as_bytes(), false).unwrap();
        assert_eq!(
            patch.hour_metrics,
            Some(Metrics {
                version: "1.0".into(),
                enabled: true,
                include_apis: Some(true),
                retention: RetentionPolicy {
                    enabled: true,
                    days: Some(3)
                },
            })
        );
    }

    fn metrics_err(inner: &str) -> Result<ServicePropertiesPatch, XmlError> {
        parse_service_properties(
            format!("<StorageServiceProperties><HourMetrics>{inner}</HourMetrics></StorageServiceProperties>")
                .as_bytes(),
            false,
        )
    }

    fn logging_err(inner: &str) -> Result<ServicePropertiesPatch, XmlError> {
        parse_service_properties(
            format!(
                "<StorageServiceProperties><Logging>{inner}</Logging></StorageServiceProperties>"
            )
            .as_bytes(),
            false,
        )
    }

    #[test]
    fn metrics_and_logging_errors() {
        const RP_OFF: &str = "<RetentionPolicy><Enabled>false</Enabled></RetentionPolicy>";
        assert_eq!(
            metrics_err("<Enabled>false</Enabled>"),
            Err(XmlError::MissingNode("Version"))
        );
        assert_eq!(
            metrics_err("<Version>1.0</Version>"),
            Err(XmlError::MissingNode("Enabled"))
        );
        assert_eq!(
            metrics_err("<Version></Version><Enabled>false</Enabled>"),
            Err(XmlError::InvalidValue("Version".into()))
        );
        assert_eq!(
            metrics_err("<Version>1.0</Version><Enabled>yes</Enabled>"),
            Err(XmlError::InvalidValue("Enabled".into()))
        );
        assert_eq!(
            metrics_err("<Version>1.0</Version><Enabled>true</Enabled>"),
            Err(XmlError::MissingNode("IncludeAPIs"))
        );
        // Disabled metrics need neither IncludeAPIs nor a retention policy.
        assert_eq!(
            metrics_err(
                "<Version>1.0</Version><Enabled>false</Enabled><IncludeAPIs>true</IncludeAPIs>"
            )
            .map(|p| p.hour_metrics),
            Ok(Some(Metrics::default()))
        );
        assert_eq!(
            metrics_err("<Version>1.0</Version><Enabled>false</Enabled><RetentionPolicy/>"),
            Err(XmlError::MissingNode("Enabled"))
        );
        assert_eq!(
            metrics_err("<Version>1.0</Version><Enabled>false</Enabled><RetentionPolicy><Enabled>true</Enabled></RetentionPolicy>"),
            Err(XmlError::MissingNode("Days"))
        );
        for days in ["0", "366", "-1", "x", ""] {
            assert_eq!(
                metrics_err(&format!("<Version>1.0</Version><Enabled>false</Enabled><RetentionPolicy><Enabled>true</Enabled><Days>{days}</Days></RetentionPolicy>")),
                Err(XmlError::InvalidValue("Days".into())),
                "{days}"
            );
        }
        assert_eq!(
            metrics_err("<Version>1.0</Version><Enabled>false</Enabled><RetentionPolicy><Enabled>true</Enabled><Days>365</Days></RetentionPolicy>")
                .map(|p| p.hour_metrics.map(|m| m.retention)),
            Ok(Some(RetentionPolicy { enabled: true, days: Some(365) }))
        );
        // Days is ignored when retention is off, even if out of range.
        assert_eq!(
            metrics_err("<Version>1.0</Version><Enabled>false</Enabled><RetentionPolicy><Enabled>false</Enabled><Days>999</Days></RetentionPolicy>")
                .map(|p| p.hour_metrics.map(|m| m.retention)),
            Ok(Some(RetentionPolicy::default()))
        );

        let full = format!("<Version>1.0</Version><Delete>true</Delete><Read>true</Read><Write>true</Write>{RP_OFF}");
        assert!(logging_err(&full).is_ok());
        for (missing, name) in [
            ("<Version>1.0</Version>", "Version"),
            ("<Delete>true</Delete>", "Delete"),
            ("<Read>true</Read>", "Read"),
            ("<Write>true</Write>", "Write"),
            (RP_OFF, "RetentionPolicy"),
        ] {
            assert_eq!(
                logging_err(&full.replace(missing, "")),
                Err(XmlError::MissingNode(name)),
                "{name}"
            );
        }
        assert_eq!(
            logging_err(&full.replace("<Read>true</Read>", "<Read>2</Read>")),
            Err(XmlError::InvalidValue("Read".into()))
        );
    }

    fn rule(origins: &str, methods: &str, age: &str, exposed: &str, allowed: &str) -> String {
        format!(
            "<CorsRule><AllowedOrigins>{origins}</AllowedOrigins><AllowedMethods>{methods}</AllowedMethods>\
             <MaxAgeInSeconds>{age}</MaxAgeInSeconds><ExposedHeaders>{exposed}</ExposedHeaders>\
             <AllowedHeaders>{allowed}</AllowedHeaders></CorsRule>"
        )
    }

    fn cors(rules: &str) -> Result<Vec<CorsRule>, XmlError> {
        parse_service_properties(
            format!("<StorageServiceProperties><Cors>{rules}</Cors></StorageServiceProperties>")
                .as_bytes(),
            false,
        )
        .map(|p| p.cors.unwrap_or_default())
    }

    #[test]
    fn cors_rules() {
        let got = cors(&rule("*", "get, Options", "0", "", "")).unwrap();
        assert_eq!(
            got,
            vec![CorsRule {
                allowed_origins: v(&["*"]),
                allowed_methods: v(&["GET", "OPTIONS"]),
                allowed_headers: vec![],
                exposed_headers: vec![],
                max_age_seconds: 0,
            }]
        );
        let five = rule("*", "GET", "1", "", "").repeat(5);
        assert_eq!(cors(&five).map(|r| r.len()), Ok(5));
        let six = rule("*", "GET", "1", "", "").repeat(6);
        assert!(matches!(cors(&six), Err(XmlError::Invalid(_))));
    }

    #[test]
    fn cors_errors() {
        let ok = rule("*", "GET", "1", "a", "b");
        for (tag, name) in [
            ("AllowedOrigins", "AllowedOrigins"),
            ("AllowedMethods", "AllowedMethods"),
            ("MaxAgeInSeconds", "MaxAgeInSeconds"),
            ("ExposedHeaders", "ExposedHeaders"),
            ("AllowedHeaders", "AllowedHeaders"),
        ] {
            let start = ok.find(&format!("<{tag}>")).unwrap();
            let end = ok.find(&format!("</{tag}>")).unwrap() + tag.len() + 3;
            let without = format!("{}{}", &ok[..start], &ok[end..]);
            assert_eq!(cors(&without), Err(XmlError::MissingNode(name)), "{tag}");
        }
        let bad = |r: String, node: &str| {
            assert_eq!(cors(&r), Err(XmlError::InvalidValue(node.into())), "{r}");
        };
        bad(rule("", "GET", "1", "", ""), "AllowedOrigins");
        bad(
            rule(&vec!["http://a"; 65].join(","), "GET", "1", "", ""),
            "AllowedOrigins",
        );
        bad(rule(&"o".repeat(257), "GET", "1", "", ""), "AllowedOrigins");
        bad(rule("*", "", "1", "", ""), "AllowedMethods");
        bad(rule("*", "GET,PATCH", "1", "", ""), "AllowedMethods");
        bad(rule("*", "GET", "-1", "", ""), "MaxAgeInSeconds");
        bad(rule("*", "GET", "soon", "", ""), "MaxAgeInSeconds");
        bad(rule("*", "GET", "1", "a*,b*,c*", ""), "ExposedHeaders");
        bad(
            rule("*", "GET", "1", "", &"h".repeat(257)),
            "AllowedHeaders",
        );
        let many: Vec<String> = (0..65).map(|i| format!("h{i}")).collect();
        bad(rule("*", "GET", "1", "", &many.join(",")), "AllowedHeaders");
        // 64 literal headers plus 2 prefixes is the documented maximum.
        let max: Vec<String> = (0..64).map(|i| format!("h{i}")).collect();
        let max = format!("{},p*,q*", max.join(","));
        assert_eq!(
            cors(&rule("*", "GET", "1", "", &max)).map(|r| r[0].allowed_headers.len()),
            Ok(66)
        );
        // Over 2 KiB of settings in total.
        let big = rule(&vec!["o".repeat(250); 5].join(","), "GET", "1", "", "");
        assert!(matches!(cors(&big.repeat(2)), Err(XmlError::Invalid(_))));
        // The boundary, counted without the commas between items: 8 x 255 + 3 + 5 = 2048
        // characters is allowed, one more is not.
        let origins = vec!["o".repeat(255); 8].join(",");
        assert!(cors(&rule(&origins, "GET", "12345", "", "")).is_ok());
        assert!(matches!(
            cors(&rule(&origins, "GET", "123456", "", "")),
            Err(XmlError::Invalid(_))
        ));
    }

    #[test]
    fn root_errors() {
        assert_eq!(
            parse_service_properties(b"", false),
            Err(XmlError::Malformed)
        );
        assert_eq!(
            parse_service_properties(b"<Other/>", false),
            Err(XmlError::Malformed)
        );
        assert_eq!(
            parse_service_properties(b"<StorageServiceProperties>", false),
            Err(XmlError::Malformed)
        );
    }

    #[test]
    fn golden_defaults() {
        assert_eq!(
            write_service_properties(&ServiceProperties::default(), false),
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><StorageServiceProperties>\
             <Logging><Version>1.0</Version><Delete>false</Delete><Read>false</Read>\
             <Write>false</Write><RetentionPolicy><Enabled>false</Enabled></RetentionPolicy>\
             </Logging><HourMetrics><Version>1.0</Version><Enabled>false</Enabled>\
             <RetentionPolicy><Enabled>false</Enabled></RetentionPolicy></HourMetrics>\
             <MinuteMetrics><Version>1.0</Version><Enabled>false</Enabled><RetentionPolicy>\
             <Enabled>false</Enabled></RetentionPolicy></MinuteMetrics><Cors />\
             </StorageServiceProperties>"
        );
    }

    #[test]
    fn golden_full_and_legacy() {
        let p = sample_props();
        assert_eq!(
            write_service_properties(&p, false),
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><StorageServiceProperties>\
             <Logging><Version>1.0</Version><Delete>true</Delete><Read>false</Read>\
             <Write>true</Write><RetentionPolicy><Enabled>true</Enabled><Days>7</Days>\
             </RetentionPolicy></Logging><HourMetrics><Version>1.0</Version>\
             <Enabled>true</Enabled><IncludeAPIs>false</IncludeAPIs><RetentionPolicy>\
             <Enabled>true</Enabled><Days>7</Days></RetentionPolicy></HourMetrics>\
             <MinuteMetrics><Version>1.0</Version><Enabled>false</Enabled><RetentionPolicy>\
             <Enabled>false</Enabled></RetentionPolicy></MinuteMetrics><Cors><CorsRule>\
             <AllowedOrigins>http://a.com,http://b.com</AllowedOrigins>\
             <AllowedMethods>GET,PUT</AllowedMethods><MaxAgeInSeconds>500</MaxAgeInSeconds>\
             <ExposedHeaders>x-ms-meta-data*,x-ms-meta-customheader</ExposedHeaders>\
             <AllowedHeaders>x-ms-meta-target*,x-ms-meta-customheader</AllowedHeaders>\
             </CorsRule></Cors></StorageServiceProperties>"
        );
        assert_eq!(
            write_service_properties(&p, true),
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><StorageServiceProperties>\
             <Logging><Version>1.0</Version><Delete>true</Delete><Read>false</Read>\
             <Write>true</Write><RetentionPolicy><Enabled>true</Enabled><Days>7</Days>\
             </RetentionPolicy></Logging><Metrics><Version>1.0</Version>\
             <Enabled>true</Enabled><IncludeAPIs>false</IncludeAPIs><RetentionPolicy>\
             <Enabled>true</Enabled><Days>7</Days></RetentionPolicy></Metrics>\
             </StorageServiceProperties>"
        );
    }

    #[test]
    fn golden_empty_cors_lists() {
        let mut p = ServiceProperties::default();
        p.cors.push(CorsRule {
            allowed_origins: v(&["*"]),
            allowed_methods: v(&["GET"]),
            ..Default::default()
        });
        let xml = write_service_properties(&p, false);
        assert!(xml.ends_with(
            "<Cors><CorsRule><AllowedOrigins>*</AllowedOrigins><AllowedMethods>GET</AllowedMethods>\
             <MaxAgeInSeconds>0</MaxAgeInSeconds><ExposedHeaders /><AllowedHeaders />\
             </CorsRule></Cors></StorageServiceProperties>"
        ));
    }

    #[test]
    fn round_trips() {
        let p = sample_props();
        let mut back = ServiceProperties::default();
        back.apply(
            parse_service_properties(write_service_properties(&p, false).as_bytes(), false)
                .unwrap(),
        );
        assert_eq!(back, p);
        let mut legacy = ServiceProperties::default();
        legacy.apply(
            parse_service_properties(write_service_properties(&p, true).as_bytes(), true).unwrap(),
        );
        assert_eq!(legacy.logging, p.logging);
        assert_eq!(legacy.hour_metrics, p.hour_metrics);
    }

    #[test]
    fn golden_stats() {
        assert_eq!(
            write_service_stats("live", Some(datetime!(2013-10-23 22:05:54 UTC))),
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><StorageServiceStats><GeoReplication>\
             <Status>live</Status><LastSyncTime>Wed, 23 Oct 2013 22:05:54 GMT</LastSyncTime>\
             </GeoReplication></StorageServiceStats>"
        );
        assert_eq!(
            write_service_stats("bootstrap", None),
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><StorageServiceStats><GeoReplication>\
             <Status>bootstrap</Status><LastSyncTime /></GeoReplication></StorageServiceStats>"
        );
    }
}
