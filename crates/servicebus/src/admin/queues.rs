//! Queues over the administration API: create (PUT), update (PUT with `If-Match`), get, list
//! and delete, with Azure's answers: 201 with the new description, 409 for a name taken,
//! 200 with an empty feed for a GET of a missing queue, 404 for other verbs on one.

use hematite_engine::QueueRef;
use hematite_net::http1::Response;
use hematite_queue_protocol::xml::dom::Element;
use hematite_servicebus_protocol::{
    AdminError, CountDetails, Entry, QueueDescription, QueueRuntime,
};

use super::{catalog_error, empty, engine_error, entry, feed, list_feed, not_found, paging, Call};
use crate::catalog::CatalogError;
use crate::namespace::QueueProperties;
use crate::ServiceBus;

pub(super) async fn get(sb: &ServiceBus, call: &Call<'_>) -> Result<Response, AdminError> {
    match sb.queue(&call.path) {
        Some(props) => {
            let xml = describe(sb, &props).await?;
            let id = call.url(&props.name);
            Ok(entry(200, entry_for(sb, &id, &props, &xml)))
        }
        None => Ok(feed(empty(call, "Publicly Listed Services"))),
    }
}

pub(super) async fn list(sb: &ServiceBus, call: &Call<'_>) -> Result<Response, AdminError> {
    let (skip, top) = paging(call)?;
    let (page, more) = sb.catalog.list(skip, top);
    let mut descriptions = Vec::with_capacity(page.len());
    for props in &page {
        descriptions.push(describe(sb, props).await?);
    }
    let ids: Vec<String> = page.iter().map(|p| call.url(&p.name)).collect();
    let entries = page
        .iter()
        .zip(&descriptions)
        .zip(&ids)
        .map(|((props, xml), id)| entry_for(sb, id, props, xml))
        .collect();
    Ok(list_feed(call, sb, "Queues", entries, (skip, top, more)))
}

pub(super) async fn put(
    sb: &ServiceBus,
    call: &Call<'_>,
    element: &Element,
) -> Result<Response, AdminError> {
    let name = call.path.as_str();
    let description = QueueDescription::from_xml(element)?;
    let update = call.req.header("if-match").is_some();
    let result = if update {
        sb.catalog.update(name, description).await
    } else {
        sb.catalog.create(name, description).await
    };
    let what = format!("{}:Queue:{name}", sb.namespace.name);
    let props = result.map_err(|e| catalog_error(call, &what, e))?;
    for what in props.unsupported() {
        tracing::warn!(queue = %props.name, "Service Bus queue: {what}");
    }
    let xml = describe(sb, &props).await?;
    let status = if update { 200 } else { 201 };
    let id = call.url(&props.name);
    Ok(entry(status, entry_for(sb, &id, &props, &xml)))
}

pub(super) async fn delete(sb: &ServiceBus, call: &Call<'_>) -> Result<Response, AdminError> {
    match sb.catalog.delete(&call.path).await {
        Ok(()) => Ok(Response::new(200)),
        Err(CatalogError::NotFound) => Err(not_found(call)),
        Err(e) => {
            let what = format!("{}:Queue:{}", sb.namespace.name, call.path);
            Err(catalog_error(call, &what, e))
        }
    }
}

fn entry_for<'a>(
    sb: &'a ServiceBus,
    id: &'a str,
    props: &'a QueueProperties,
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

/// The description with its runtime properties as they stand.
async fn describe(sb: &ServiceBus, props: &QueueProperties) -> Result<String, AdminError> {
    let q = QueueRef {
        account: &sb.account,
        queue: &props.name.to_ascii_lowercase(),
    };
    let info = sb.engine.queue_info(q).await.map_err(engine_error)?;
    let runtime = QueueRuntime {
        size_in_bytes: info.size_bytes,
        message_count: info.message_count + info.dead_letter_count,
        created_at: props.created_at,
        updated_at: props.updated_at,
        accessed_at: props.updated_at,
        counts: counts(&info),
    };
    Ok(props.description.to_xml(Some(&runtime)))
}

/// An engine queue's counts as `CountDetails` carries them.
pub(super) fn counts(info: &hematite_engine::QueueInfo) -> CountDetails {
    CountDetails {
        active: info.message_count.saturating_sub(info.scheduled_count),
        dead_letter: info.dead_letter_count,
        scheduled: info.scheduled_count,
        transfer: 0,
        transfer_dead_letter: 0,
    }
}
