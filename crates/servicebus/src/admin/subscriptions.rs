//! Subscriptions and their rules over the administration API: `{topic}/Subscriptions`,
//! `{topic}/Subscriptions/{name}`, `…/Rules` and `…/Rules/{rule}`. Python asks with
//! lowercase `subscriptions`, JS with capitals; answers always name them with capitals,
//! because the JS SDK reads the topic, subscription and rule names from the `<id>` URL.

use hematite_engine::QueueRef;
use hematite_net::http1::Response;
use hematite_servicebus_protocol::atom::parse_entry;
use hematite_servicebus_protocol::{
    AdminError, Entry, RuleDescription, SubscriptionDescription, SubscriptionRuntime, DEFAULT_RULE,
};

use super::queues::counts;
use super::{catalog_error, empty, engine_error, entry, feed, list_feed, not_found, paging, Call};
use crate::catalog::CatalogError;
use crate::topics::{valid_child_name, StoredRule, SubscriptionProperties};
use crate::ServiceBus;

/// A path under a topic's subscriptions.
pub(super) struct Path {
    topic: String,
    subscription: Option<String>,
    /// `…/Rules` or `…/Rules/{rule}`.
    rules: bool,
    rule: Option<String>,
}

impl Path {
    pub fn topic(&self) -> &str {
        &self.topic
    }

    pub fn subscription(&self) -> Option<&str> {
        self.subscription.as_deref()
    }

    /// `None` for a path that names no subscription or rule (a queue's or topic's).
    pub fn parse(path: &str) -> Option<Path> {
        let segs: Vec<&str> = path.split('/').collect();
        let is = |s: &str, word: &str| s.eq_ignore_ascii_case(word);
        (1..segs.len()).rev().find_map(|i| {
            if !is(segs[i], "subscriptions") {
                return None;
            }
            let rest = &segs[i + 1..];
            let rules = rest.len() >= 2 && is(rest[1], "rules");
            if rest.len() > 3 || (rest.len() >= 2 && !rules) {
                return None;
            }
            Some(Path {
                topic: segs[..i].join("/"),
                subscription: rest.first().map(|s| (*s).to_owned()),
                rules,
                rule: rest.get(2).map(|s| (*s).to_owned()),
            })
        })
    }
}

pub(super) async fn route(
    sb: &ServiceBus,
    call: &Call<'_>,
    path: &Path,
) -> Result<Response, AdminError> {
    let method = call.req.method();
    let topic = path.topic.as_str();
    match (&path.subscription, path.rules, &path.rule) {
        (None, _, _) if method == "GET" => list(sb, call, topic).await,
        (Some(sub), false, _) => match method {
            "GET" => get(sb, call, topic, sub).await,
            "PUT" => put(sb, call, topic, sub).await,
            "DELETE" => delete(sb, call, topic, sub).await,
            _ => Err(method_not_allowed()),
        },
        (Some(sub), true, None) if method == "GET" => list_rules(sb, call, topic, sub),
        (Some(sub), true, Some(rule)) => match method {
            "GET" => get_rule(sb, call, topic, sub, rule),
            "PUT" => put_rule(sb, call, topic, sub, rule).await,
            "DELETE" => delete_rule(sb, call, topic, sub, rule).await,
            _ => Err(method_not_allowed()),
        },
        _ => Err(method_not_allowed()),
    }
}

fn method_not_allowed() -> AdminError {
    AdminError::new(405, "The method is not allowed.")
}

/// How Azure names a subscription (`ns:Topic:t1|s1`) or a rule (`…|s1|r1`) in errors.
fn what(sb: &ServiceBus, parts: &[&str]) -> String {
    format!("{}:Topic:{}", sb.namespace.name, parts.join("|"))
}

fn sub_path(props: &SubscriptionProperties) -> String {
    format!("{}/Subscriptions/{}", props.topic, props.name)
}

async fn get(
    sb: &ServiceBus,
    call: &Call<'_>,
    topic: &str,
    name: &str,
) -> Result<Response, AdminError> {
    match sb.catalog.subscription(topic, name) {
        Some(props) => {
            let xml = describe(sb, &props).await?;
            let id = call.url(&sub_path(&props));
            Ok(entry(200, sub_entry(sb, &id, &props, &xml)))
        }
        None => Ok(feed(empty(call, "Publicly Listed Services"))),
    }
}

async fn list(sb: &ServiceBus, call: &Call<'_>, topic: &str) -> Result<Response, AdminError> {
    let (skip, top) = paging(call)?;
    let Some((page, more)) = sb.catalog.list_subscriptions(topic, skip, top) else {
        return Ok(feed(empty(call, "Subscriptions")));
    };
    let mut xmls = Vec::with_capacity(page.len());
    for props in &page {
        xmls.push(describe(sb, props).await?);
    }
    let ids: Vec<String> = page.iter().map(|p| call.url(&sub_path(p))).collect();
    let entries = page
        .iter()
        .zip(&xmls)
        .zip(&ids)
        .map(|((props, xml), id)| sub_entry(sb, id, props, xml))
        .collect();
    Ok(list_feed(
        call,
        sb,
        "Subscriptions",
        entries,
        (skip, top, more),
    ))
}

async fn put(
    sb: &ServiceBus,
    call: &Call<'_>,
    topic: &str,
    name: &str,
) -> Result<Response, AdminError> {
    if !valid_child_name(name) {
        return Err(invalid_name("subscription", name));
    }
    let description = SubscriptionDescription::from_xml(&parse_entry(&call.req.body)?)?;
    if let Some(rule) = &description.default_rule {
        check_rule_name(&rule.name, true)?;
    }
    let update = call.req.header("if-match").is_some();
    let result = if update {
        sb.catalog
            .update_subscription(topic, name, description)
            .await
    } else {
        sb.catalog
            .create_subscription(topic, name, description)
            .await
    };
    let props = result.map_err(|e| match e {
        CatalogError::NoParent => catalog_error(call, &what(sb, &[topic]), e),
        e => catalog_error(call, &what(sb, &[topic, name]), e),
    })?;
    let xml = describe(sb, &props).await?;
    let id = call.url(&sub_path(&props));
    Ok(entry(
        if update { 200 } else { 201 },
        sub_entry(sb, &id, &props, &xml),
    ))
}

async fn delete(
    sb: &ServiceBus,
    call: &Call<'_>,
    topic: &str,
    name: &str,
) -> Result<Response, AdminError> {
    match sb.catalog.delete_subscription(topic, name).await {
        Ok(()) => Ok(Response::new(200)),
        Err(CatalogError::NotFound) => Err(not_found(call)),
        Err(e) => Err(catalog_error(call, &what(sb, &[topic, name]), e)),
    }
}

fn sub_entry<'a>(
    sb: &'a ServiceBus,
    id: &'a str,
    props: &'a SubscriptionProperties,
    xml: &'a str,
) -> Entry<'a> {
    Entry {
        id,
        title: &props.name,
        published: props.created_at,
        updated: props.updated_at,
        author: &sb.namespace.name,
        content: xml,
    }
}

/// The description with the subscription's counts as they stand.
async fn describe(sb: &ServiceBus, props: &SubscriptionProperties) -> Result<String, AdminError> {
    let key = sb.catalog.subscription_queue(&props.topic, &props.name);
    let q = QueueRef {
        account: &sb.account,
        queue: &key,
    };
    let info = sb.engine.queue_info(q).await.map_err(engine_error)?;
    let runtime = SubscriptionRuntime {
        message_count: info.message_count + info.dead_letter_count,
        created_at: props.created_at,
        updated_at: props.updated_at,
        accessed_at: props.updated_at,
        counts: counts(&info),
    };
    Ok(props.description.to_xml(Some(&runtime)))
}

// ---- Rules ---------------------------------------------------------------------------

fn invalid_name(kind: &str, name: &str) -> AdminError {
    AdminError::bad_request(format!(
        "The {kind} name '{name}' is not valid: use up to 50 letters, digits, periods, hyphens and underscores, starting and ending with a letter or digit."
    ))
}

/// A rule's name, or `$Default`; a subscription's first rule may leave it out.
fn check_rule_name(name: &str, first: bool) -> Result<(), AdminError> {
    if valid_child_name(name) || name == DEFAULT_RULE || (first && name.is_empty()) {
        return Ok(());
    }
    Err(invalid_name("rule", name))
}

fn rule_path(props: &SubscriptionProperties, rule: &str) -> String {
    format!("{}/Rules/{rule}", sub_path(props))
}

fn rule_entry<'a>(
    sb: &'a ServiceBus,
    id: &'a str,
    rule: &'a StoredRule,
    xml: &'a str,
) -> Entry<'a> {
    Entry {
        id,
        title: &rule.rule.name,
        published: rule.created_at,
        updated: rule.created_at,
        author: &sb.namespace.name,
        content: xml,
    }
}

fn get_rule(
    sb: &ServiceBus,
    call: &Call<'_>,
    topic: &str,
    sub: &str,
    name: &str,
) -> Result<Response, AdminError> {
    let found = sb
        .catalog
        .subscription(topic, sub)
        .and_then(|p| Some((p.rule(name)?.clone(), p)));
    match found {
        Some((rule, props)) => {
            let xml = rule.rule.to_xml(Some(rule.created_at));
            let id = call.url(&rule_path(&props, &rule.rule.name));
            Ok(entry(200, rule_entry(sb, &id, &rule, &xml)))
        }
        None => Ok(feed(empty(call, "Publicly Listed Services"))),
    }
}

fn list_rules(
    sb: &ServiceBus,
    call: &Call<'_>,
    topic: &str,
    sub: &str,
) -> Result<Response, AdminError> {
    let (skip, top) = paging(call)?;
    let Some(props) = sb.catalog.subscription(topic, sub) else {
        return Ok(feed(empty(call, "Rules")));
    };
    let page: Vec<&StoredRule> = props.rules.iter().skip(skip).take(top).collect();
    let more = props.rules.len() > skip.saturating_add(page.len());
    let xmls: Vec<String> = page
        .iter()
        .map(|r| r.rule.to_xml(Some(r.created_at)))
        .collect();
    let ids: Vec<String> = page
        .iter()
        .map(|r| call.url(&rule_path(&props, &r.rule.name)))
        .collect();
    let entries = page
        .iter()
        .zip(&xmls)
        .zip(&ids)
        .map(|((rule, xml), id)| rule_entry(sb, id, rule, xml))
        .collect();
    Ok(list_feed(call, sb, "Rules", entries, (skip, top, more)))
}

async fn put_rule(
    sb: &ServiceBus,
    call: &Call<'_>,
    topic: &str,
    sub: &str,
    name: &str,
) -> Result<Response, AdminError> {
    check_rule_name(name, false)?;
    let mut rule = RuleDescription::from_xml(&parse_entry(&call.req.body)?)?;
    // The path names the rule, whatever the body says.
    rule.name = name.to_owned();
    let update = call.req.header("if-match").is_some();
    let stored = sb
        .catalog
        .put_rule(topic, sub, rule, update)
        .await
        .map_err(|e| match e {
            CatalogError::NoParent => catalog_error(call, &what(sb, &[topic, sub]), e),
            e => catalog_error(call, &what(sb, &[topic, sub, name]), e),
        })?;
    let props = sb
        .catalog
        .subscription(topic, sub)
        .ok_or_else(|| not_found(call))?;
    let xml = stored.rule.to_xml(Some(stored.created_at));
    let id = call.url(&rule_path(&props, &stored.rule.name));
    Ok(entry(
        if update { 200 } else { 201 },
        rule_entry(sb, &id, &stored, &xml),
    ))
}

async fn delete_rule(
    sb: &ServiceBus,
    call: &Call<'_>,
    topic: &str,
    sub: &str,
    name: &str,
) -> Result<Response, AdminError> {
    match sb.catalog.delete_rule(topic, sub, name).await {
        Ok(()) => Ok(Response::new(200)),
        Err(CatalogError::NotFound) => Err(not_found(call)),
        Err(e) => Err(catalog_error(call, &what(sb, &[topic, sub, name]), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::Path;

    #[test]
    fn paths_under_a_topic_are_told_apart_from_entity_names() {
        let p = Path::parse("a/b/Subscriptions/s1/Rules/r1").expect("rule");
        assert_eq!(
            (
                p.topic.as_str(),
                p.subscription.as_deref(),
                p.rules,
                p.rule.as_deref()
            ),
            ("a/b", Some("s1"), true, Some("r1"))
        );
        let p = Path::parse("t1/subscriptions").expect("list");
        assert_eq!((p.topic.as_str(), p.subscription.is_none()), ("t1", true));
        assert!(
            Path::parse("t1/subscriptions/s1/rules")
                .expect("rules")
                .rules
        );
        assert!(Path::parse("q1").is_none());
        assert!(Path::parse("subscriptions/s1").is_none(), "no topic");
        assert!(Path::parse("t1/subscriptions/s1/other/x").is_none());
    }
}
