//! Topics over the administration API, answered as queues are: 201 on create, 409 for a
//! name a queue or topic holds, an empty feed for a GET of a missing topic. A topic holds
//! no messages of its own, so its size and counts are zero; its subscription count is real.

use hematite_net::http1::Response;
use hematite_queue_protocol::xml::dom::Element;
use hematite_servicebus_protocol::{
    AdminError, CountDetails, Entry, TopicDescription, TopicRuntime,
};

use super::{catalog_error, empty, entry, feed, list_feed, not_found, paging, Call};
use crate::catalog::CatalogError;
use crate::topics::TopicProperties;
use crate::ServiceBus;

pub(super) async fn get(sb: &ServiceBus, call: &Call<'_>) -> Result<Response, AdminError> {
    match sb.catalog.topic(&call.path) {
        Some(props) => {
            let xml = describe(sb, &props);
            let id = call.url(&props.name);
            Ok(entry(200, entry_for(sb, &id, &props, &xml)))
        }
        None => Ok(feed(empty(call, "Publicly Listed Services"))),
    }
}

pub(super) async fn list(sb: &ServiceBus, call: &Call<'_>) -> Result<Response, AdminError> {
    let (skip, top) = paging(call)?;
    let (page, more) = sb.catalog.list_topics(skip, top);
    let xmls: Vec<String> = page.iter().map(|p| describe(sb, p)).collect();
    let ids: Vec<String> = page.iter().map(|p| call.url(&p.name)).collect();
    let entries = page
        .iter()
        .zip(&xmls)
        .zip(&ids)
        .map(|((props, xml), id)| entry_for(sb, id, props, xml))
        .collect();
    Ok(list_feed(call, sb, "Topics", entries, (skip, top, more)))
}

pub(super) async fn put(
    sb: &ServiceBus,
    call: &Call<'_>,
    element: &Element,
) -> Result<Response, AdminError> {
    let name = call.path.as_str();
    let description = TopicDescription::from_xml(element)?;
    let update = call.req.header("if-match").is_some();
    let result = if update {
        sb.catalog.update_topic(name, description).await
    } else {
        sb.catalog.create_topic(name, description).await
    };
    let what = format!("{}:Topic:{name}", sb.namespace.name);
    let props = result.map_err(|e| catalog_error(call, &what, e))?;
    let xml = describe(sb, &props);
    let id = call.url(&props.name);
    Ok(entry(
        if update { 200 } else { 201 },
        entry_for(sb, &id, &props, &xml),
    ))
}

pub(super) async fn delete(sb: &ServiceBus, call: &Call<'_>) -> Result<Response, AdminError> {
    match sb.catalog.delete_topic(&call.path).await {
        Ok(()) => Ok(Response::new(200)),
        Err(CatalogError::NotFound) => Err(not_found(call)),
        Err(e) => {
            let what = format!("{}:Topic:{}", sb.namespace.name, call.path);
            Err(catalog_error(call, &what, e))
        }
    }
}

fn entry_for<'a>(
    sb: &'a ServiceBus,
    id: &'a str,
    props: &'a TopicProperties,
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

fn describe(sb: &ServiceBus, props: &TopicProperties) -> String {
    let runtime = TopicRuntime {
        size_in_bytes: 0,
        subscription_count: sb.catalog.subscription_count(&props.name) as u64,
        created_at: props.created_at,
        updated_at: props.updated_at,
        accessed_at: props.updated_at,
        counts: CountDetails::default(),
    };
    props.description.to_xml(Some(&runtime))
}
