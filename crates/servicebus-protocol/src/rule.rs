//! A subscription rule's description: its filter (SQL, correlation, true, false) and its
//! action, as clients send them and the service answers.
//!
//! The filter and action kinds travel in an `i:type` attribute whose prefix differs by
//! client (`p4:`, `xsi:`, `i:`), so only its local part is read. Typed values
//! (`KeyValueOfstringanyType`) keep the XML Schema type they came with, and go back out as
//! `i:type="d6p1:<type>"`: the JS SDK cuts five characters off that attribute to find the
//! type, and Python splits it at the colon. What the service writes follows Microsoft's
//! "Service Bus REST API reference" and the .NET `RuleDescription` DataContract: Filter,
//! Action, CreatedAt, Name.
//!
//! SQL expressions are kept as written, not parsed: nothing evaluates them yet.

use hematite_queue_protocol::datetime::{format_iso8601_7, parse_iso8601};
use hematite_queue_protocol::xml::dom::Element;
use hematite_queue_protocol::xml::writer::push_attr;
use time::OffsetDateTime;

use crate::atom::AdminError;
use crate::fields::{el, expect, open_description};

/// The name Service Bus gives the rule every new subscription starts with.
pub const DEFAULT_RULE: &str = "$Default";

/// The SQL compatibility level every answer states.
const COMPATIBILITY_LEVEL: &str = "20";

const XSD_NS: &str = "http://www.w3.org/2001/XMLSchema";

/// A named value with its XML Schema type (`int`, `long`, `double`, `string`, `boolean`,
/// `dateTime`, `duration`), its text as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypedValue {
    pub key: String,
    pub xsd_type: String,
    pub value: String,
}

/// Matches on a message's system properties (every one given must match) and application
/// properties.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CorrelationFilter {
    pub correlation_id: Option<String>,
    pub message_id: Option<String>,
    pub to: Option<String>,
    pub reply_to: Option<String>,
    /// The message's subject.
    pub label: Option<String>,
    pub session_id: Option<String>,
    pub reply_to_session_id: Option<String>,
    pub content_type: Option<String>,
    pub properties: Vec<TypedValue>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    Sql {
        expression: String,
        parameters: Vec<TypedValue>,
    },
    Correlation(CorrelationFilter),
    True,
    False,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Empty,
    Sql {
        expression: String,
        parameters: Vec<TypedValue>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleDescription {
    pub filter: Filter,
    pub action: Action,
    pub name: String,
}

impl RuleDescription {
    /// The rule a subscription gets when its creator names none: everything matches.
    pub fn default_rule() -> RuleDescription {
        RuleDescription {
            filter: Filter::True,
            action: Action::Empty,
            name: DEFAULT_RULE.to_owned(),
        }
    }

    /// A `<RuleDescription>` as clients send it.
    pub fn from_xml(el: &Element) -> Result<RuleDescription, AdminError> {
        expect(el, "RuleDescription")?;
        RuleDescription::from_element(el)
    }

    /// The children of a rule description under any element name (a subscription's
    /// `DefaultRuleDescription`). A missing filter matches everything; a missing action does
    /// nothing.
    pub fn from_element(el: &Element) -> Result<RuleDescription, AdminError> {
        let filter = match el.child("Filter") {
            Some(f) => read_filter(f)?,
            None => Filter::True,
        };
        let action = match el.child("Action") {
            Some(a) => read_action(a)?,
            None => Action::Empty,
        };
        let name = el.child_text("Name").unwrap_or_default().to_owned();
        Ok(RuleDescription {
            filter,
            action,
            name,
        })
    }

    /// The `<RuleDescription>` element in the service's order, with its creation time in
    /// answers.
    pub fn to_xml(&self, created_at: Option<OffsetDateTime>) -> String {
        let mut out = String::with_capacity(512);
        open_description(&mut out, "RuleDescription");
        self.push_children(&mut out, created_at);
        out.push_str("</RuleDescription>");
        out
    }

    /// The rule's children, for a `RuleDescription` or a `DefaultRuleDescription`.
    pub fn push_children(&self, out: &mut String, created_at: Option<OffsetDateTime>) {
        push_filter(out, &self.filter);
        push_action(out, &self.action);
        if let Some(t) = created_at {
            el(out, "CreatedAt", &format_iso8601_7(t));
        }
        el(out, "Name", &self.name);
    }

    /// The creation time an answer carries (for clients).
    pub fn created_at(el: &Element) -> Option<OffsetDateTime> {
        parse_iso8601(el.child_text("CreatedAt")?)
    }
}

/// The local part of an `i:type` value: `SqlFilter` of `p4:SqlFilter`.
fn kind(el: &Element) -> Option<&str> {
    el.attribute("type")
        .map(|t| t.rsplit(':').next().unwrap_or(t))
}

fn bad(what: impl Into<String>) -> AdminError {
    AdminError::bad_request(what.into())
}

fn read_filter(f: &Element) -> Result<Filter, AdminError> {
    let sql = || -> Result<(String, Vec<TypedValue>), AdminError> {
        let expression = f.child_text("SqlExpression").unwrap_or_default();
        if expression.is_empty() {
            return Err(bad("A SqlFilter needs a SqlExpression."));
        }
        Ok((expression.to_owned(), read_values(f.child("Parameters"))?))
    };
    match kind(f) {
        Some("TrueFilter") => Ok(Filter::True),
        Some("FalseFilter") => Ok(Filter::False),
        Some("CorrelationFilter") => read_correlation(f).map(Filter::Correlation),
        Some("SqlFilter") => sql().map(|(expression, parameters)| Filter::Sql {
            expression,
            parameters,
        }),
        Some(other) => Err(bad(format!("The filter type '{other}' is not supported."))),
        // No type: what the children say.
        None if f.child("SqlExpression").is_some() => {
            sql().map(|(expression, parameters)| Filter::Sql {
                expression,
                parameters,
            })
        }
        None => read_correlation(f).map(Filter::Correlation),
    }
}

fn read_correlation(f: &Element) -> Result<CorrelationFilter, AdminError> {
    let text = |name: &str| {
        f.child_text(name)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
    };
    let c = CorrelationFilter {
        correlation_id: text("CorrelationId"),
        message_id: text("MessageId"),
        to: text("To"),
        reply_to: text("ReplyTo"),
        label: text("Label"),
        session_id: text("SessionId"),
        reply_to_session_id: text("ReplyToSessionId"),
        content_type: text("ContentType"),
        properties: read_values(f.child("Properties"))?,
    };
    if c == CorrelationFilter::default() {
        return Err(bad(
            "A CorrelationFilter needs at least one property or application property to match.",
        ));
    }
    Ok(c)
}

fn read_action(a: &Element) -> Result<Action, AdminError> {
    match kind(a) {
        Some("EmptyRuleAction") => Ok(Action::Empty),
        Some("SqlRuleAction") | None => match a.child_text("SqlExpression") {
            Some(e) if !e.is_empty() => Ok(Action::Sql {
                expression: e.to_owned(),
                parameters: read_values(a.child("Parameters"))?,
            }),
            _ if kind(a).is_none() => Ok(Action::Empty),
            _ => Err(bad("A SqlRuleAction needs a SqlExpression.")),
        },
        Some(other) => Err(bad(format!("The action type '{other}' is not supported."))),
    }
}

/// The value types a rule's parameters and properties may have, as Service Bus takes them.
const TYPES: [&str; 7] = [
    "string", "int", "long", "double", "boolean", "dateTime", "duration",
];

fn read_values(list: Option<&Element>) -> Result<Vec<TypedValue>, AdminError> {
    let Some(list) = list else {
        return Ok(Vec::new());
    };
    list.children_named("KeyValueOfstringanyType")
        .map(|kv| {
            let key = kv.child_text("Key").unwrap_or_default();
            let value = kv.child("Value");
            let xsd_type = value.and_then(kind).unwrap_or("string");
            let text = value.map(|v| v.text.as_str()).unwrap_or_default();
            if key.is_empty() {
                return Err(bad("A property needs a Key."));
            }
            if !TYPES.contains(&xsd_type) || !value_reads(xsd_type, text.trim()) {
                return Err(bad(format!(
                    "The value '{text}' of type '{xsd_type}' supplied for property '{key}' is not valid."
                )));
            }
            Ok(TypedValue {
                key: key.to_owned(),
                xsd_type: xsd_type.to_owned(),
                value: text.to_owned(),
            })
        })
        .collect()
}

fn value_reads(xsd_type: &str, text: &str) -> bool {
    match xsd_type {
        "int" => text.parse::<i32>().is_ok(),
        "long" => text.parse::<i64>().is_ok(),
        "double" => text.parse::<f64>().is_ok(),
        "boolean" => matches!(text, "true" | "false" | "1" | "0"),
        _ => true,
    }
}

fn push_typed(out: &mut String, kind: &str) {
    out.push_str(" i:type=\"");
    push_attr(out, kind);
    out.push('"');
}

fn push_sql(out: &mut String, expression: &str, parameters: &[TypedValue]) {
    el(out, "SqlExpression", expression);
    el(out, "CompatibilityLevel", COMPATIBILITY_LEVEL);
    push_values(out, "Parameters", parameters);
}

fn push_filter(out: &mut String, f: &Filter) {
    out.push_str("<Filter");
    match f {
        Filter::Sql {
            expression,
            parameters,
        } => {
            push_typed(out, "SqlFilter");
            out.push('>');
            push_sql(out, expression, parameters);
        }
        Filter::True | Filter::False => {
            let (kind, expression) = match f {
                Filter::True => ("TrueFilter", "1=1"),
                _ => ("FalseFilter", "1=0"),
            };
            push_typed(out, kind);
            out.push('>');
            push_sql(out, expression, &[]);
        }
        Filter::Correlation(c) => {
            push_typed(out, "CorrelationFilter");
            out.push('>');
            for (name, value) in [
                ("CorrelationId", &c.correlation_id),
                ("MessageId", &c.message_id),
                ("To", &c.to),
                ("ReplyTo", &c.reply_to),
                ("Label", &c.label),
                ("SessionId", &c.session_id),
                ("ReplyToSessionId", &c.reply_to_session_id),
                ("ContentType", &c.content_type),
            ] {
                if let Some(v) = value {
                    el(out, name, v);
                }
            }
            push_values(out, "Properties", &c.properties);
        }
    }
    out.push_str("</Filter>");
}

fn push_action(out: &mut String, a: &Action) {
    out.push_str("<Action");
    match a {
        Action::Empty => {
            push_typed(out, "EmptyRuleAction");
            out.push_str("/>");
        }
        Action::Sql {
            expression,
            parameters,
        } => {
            push_typed(out, "SqlRuleAction");
            out.push('>');
            push_sql(out, expression, parameters);
            out.push_str("</Action>");
        }
    }
}

/// A list of typed values; nothing when there are none (the SDKs read an absent list and
/// an empty one alike).
fn push_values(out: &mut String, name: &str, values: &[TypedValue]) {
    if values.is_empty() {
        return;
    }
    out.push('<');
    out.push_str(name);
    out.push('>');
    for v in values {
        out.push_str("<KeyValueOfstringanyType>");
        el(out, "Key", &v.key);
        out.push_str("<Value");
        push_typed(out, &format!("d6p1:{}", v.xsd_type));
        out.push_str(" xmlns:d6p1=\"");
        out.push_str(XSD_NS);
        out.push_str("\">");
        hematite_queue_protocol::xml::writer::push_text(out, &v.value);
        out.push_str("</Value></KeyValueOfstringanyType>");
    }
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::atom::parse_entry;
    use hematite_queue_protocol::xml::dom;

    /// Python 7.15's create_rule body, as captured (`xsi:` prefix, `d6p1:int`).
    const PYTHON: &str = r#"<ns0:entry xmlns:ns0="http://www.w3.org/2005/Atom" xmlns="http://schemas.microsoft.com/netservices/2010/10/servicebus/connect" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><ns0:content type="application/xml"><RuleDescription><Filter xsi:type="CorrelationFilter"><CorrelationId>c</CorrelationId><Label>s</Label><Properties><KeyValueOfstringanyType><Key>k</Key><Value xsi:type="d6p1:int" xmlns:d6p1="http://www.w3.org/2001/XMLSchema">1</Value></KeyValueOfstringanyType></Properties></Filter><Action xsi:type="EmptyRuleAction" /><Name>r1</Name></RuleDescription></ns0:content></ns0:entry>"#;

    fn rule(body: &str) -> Result<RuleDescription, AdminError> {
        RuleDescription::from_xml(&parse_entry(body.as_bytes())?)
    }

    #[test]
    fn the_python_clients_correlation_rule_reads_and_goes_back_typed() {
        let r = rule(PYTHON).expect("valid");
        assert_eq!(r.name, "r1");
        assert_eq!(r.action, Action::Empty);
        let Filter::Correlation(c) = &r.filter else {
            panic!("{:?}", r.filter)
        };
        assert_eq!(c.correlation_id.as_deref(), Some("c"));
        assert_eq!(c.label.as_deref(), Some("s"));
        assert_eq!(
            c.properties,
            [TypedValue {
                key: "k".into(),
                xsd_type: "int".into(),
                value: "1".into()
            }]
        );
        let xml = r.to_xml(Some(OffsetDateTime::UNIX_EPOCH));
        // JS takes the type from the sixth character of `i:type` on.
        assert!(
            xml.contains(r#"<Value i:type="d6p1:int" xmlns:d6p1="#),
            "{xml}"
        );
        let order: Vec<usize> = [
            "<Filter",
            "<CorrelationId>",
            "<Label>",
            "<Properties>",
            "<Action",
            "<CreatedAt>",
            "<Name>",
        ]
        .iter()
        .map(|t| {
            xml.find(t)
                .unwrap_or_else(|| panic!("{t} missing in {xml}"))
        })
        .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{xml}");
        let back = dom::parse(xml.as_bytes()).expect("xml").expect("root");
        assert_eq!(RuleDescription::from_xml(&back).expect("reads"), r);
    }

    #[test]
    fn the_js_clients_sql_rule_with_p4_prefixes_and_the_true_filter() {
        let body = r#"<entry xmlns="http://www.w3.org/2005/Atom"><content type="application/xml"><RuleDescription xmlns="http://schemas.microsoft.com/netservices/2010/10/servicebus/connect"><Filter p4:type="SqlFilter" xmlns:p4="http://www.w3.org/2001/XMLSchema-instance"><SqlExpression>color = @c</SqlExpression><Parameters><KeyValueOfstringanyType><Key>@c</Key><Value p4:type="l28:string" xmlns:l28="http://www.w3.org/2001/XMLSchema">red</Value></KeyValueOfstringanyType></Parameters></Filter><Action p4:type="SqlRuleAction" xmlns:p4="http://www.w3.org/2001/XMLSchema-instance"><SqlExpression>SET x = 1</SqlExpression></Action><Name>r2</Name></RuleDescription></content></entry>"#;
        let r = rule(body).expect("valid");
        assert!(
            matches!(&r.filter, Filter::Sql { expression, parameters } if expression == "color = @c" && parameters[0].xsd_type == "string")
        );
        assert!(matches!(&r.action, Action::Sql { expression, .. } if expression == "SET x = 1"));
        let t = RuleDescription::default_rule().to_xml(None);
        assert!(
            t.contains(r#"<Filter i:type="TrueFilter"><SqlExpression>1=1</SqlExpression>"#),
            "{t}"
        );
        assert!(t.contains(r#"<Action i:type="EmptyRuleAction"/>"#), "{t}");
    }

    #[test]
    fn bad_rules_are_refused() {
        for (filter, says) in [
            (r#"<Filter xsi:type="SqlFilter"></Filter>"#, "SqlExpression"),
            (
                r#"<Filter xsi:type="CorrelationFilter"></Filter>"#,
                "at least one",
            ),
            (r#"<Filter xsi:type="Lambda"></Filter>"#, "Lambda"),
            (
                r#"<Filter xsi:type="CorrelationFilter"><Properties><KeyValueOfstringanyType><Key>k</Key><Value xsi:type="d6p1:int">x</Value></KeyValueOfstringanyType></Properties></Filter>"#,
                "'x'",
            ),
        ] {
            let body = PYTHON.replace(
                &PYTHON[PYTHON.find("<Filter").expect("filter")
                    ..PYTHON.find("<Action").expect("action")],
                filter,
            );
            let e = rule(&body).expect_err(filter);
            assert_eq!(e.status, 400);
            assert!(e.detail.contains(says), "{filter}: {}", e.detail);
        }
    }
}
