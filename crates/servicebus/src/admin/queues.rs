//! Queues over the administration API: create (PUT), update (PUT with `If-Match`), get, list
//! and delete, with Azure's answers: 201 with the new description, 409 for a name taken,
//! 200 with an empty feed for a GET of a missing queue, 404 for other verbs on one.

use hematite_engine::QueueRef;
use hematite_net::http1::Response;
use hematite_servicebus_protocol::atom::parse_entry;
use hematite_servicebus_protocol::{
    AdminError, CountDetails, Entry, Feed, QueueDescription, QueueRuntime,
};

use super::{empty, entry, feed, not_found, Call};
use crate::catalog::{date, CatalogError, MAX_ENTITIES};
use crate::namespace::{valid_name, QueueProperties};
use crate::ServiceBus;

/// Azure's page size, and the most `$top` may ask for.
const PAGE: usize = 100;

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
    let number = |name: &str, default: usize| -> Result<usize, AdminError> {
        call.param(name).map_or(Ok(default), |v| {
            v.parse()
                .map_err(|_| AdminError::bad_request(format!("The value of {name} is not valid.")))
        })
    };
    let skip = number("$skip", 0)?;
    // At least one: a page of none would link to itself as the next page.
    let top = number("$top", PAGE)?.clamp(1, PAGE);
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
    let next = more.then(|| {
        let mut url = format!(
            "{}/$Resources/Queues?$skip={}&$top={top}",
            call.base,
            skip + page.len()
        );
        if let Some(v) = call.param("api-version") {
            url.push_str(&format!("&api-version={v}"));
        }
        url
    });
    let id = call.url(&call.path);
    Ok(feed(
        Feed {
            title: "Queues",
            id: &id,
            updated: date(sb.engine.now()),
            next,
            entries,
        }
        .write(),
    ))
}

pub(super) async fn put(sb: &ServiceBus, call: &Call<'_>) -> Result<Response, AdminError> {
    let name = call.path.as_str();
    if !valid_name(name) {
        return Err(AdminError::bad_request(format!(
            "The entity name '{name}' is not valid: use letters, digits, periods, hyphens, underscores and slashes, starting and ending with a letter or digit, up to 260 characters."
        )));
    }
    let element = parse_entry(&call.req.body)?;
    if element.name != "QueueDescription" {
        return Err(AdminError::bad_request(format!(
            "{} is not supported by this server yet: only queues are.",
            element.name
        )));
    }
    let description = QueueDescription::from_xml(&element)?;
    let update = call.req.header("if-match").is_some();
    let result = if update {
        sb.catalog.update(name, description).await
    } else {
        sb.catalog.create(name, description).await
    };
    let props = result.map_err(|e| match e {
        CatalogError::Exists => AdminError::new(
            409,
            format!(
                "The messaging entity '{}:Queue:{name}' already exists. To change it, PUT with If-Match: *.",
                sb.namespace.name
            ),
        ),
        CatalogError::NotFound => not_found(call),
        CatalogError::Quota => AdminError::new(
            403,
            format!("SubCode=40300. The namespace already holds its maximum of {MAX_ENTITIES} entities."),
        ),
        CatalogError::Engine(e) => engine_error(e),
    })?;
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
        Err(CatalogError::Exists | CatalogError::Quota) => {
            Err(AdminError::new(500, "The entity could not be deleted."))
        }
        Err(CatalogError::Engine(e)) => Err(engine_error(e)),
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
        counts: CountDetails {
            active: info.message_count.saturating_sub(info.scheduled_count),
            dead_letter: info.dead_letter_count,
            scheduled: info.scheduled_count,
            transfer: 0,
            transfer_dead_letter: 0,
        },
    };
    Ok(props.description.to_xml(Some(&runtime)))
}

/// The engine's errors on this wire. A queue deleted between lookup and call is not found;
/// a store failure is the service being busy (the SDKs retry 503).
fn engine_error(e: hematite_engine::Error) -> AdminError {
    use hematite_engine::Error as E;
    match e {
        E::QueueNotFound => AdminError::new(404, "The messaging entity could not be found."),
        E::Storage(s) => {
            tracing::error!(error = %s, "Service Bus administration: storage failure");
            AdminError::new(503, "The server is busy: the store failed. Please retry.")
        }
        E::QueueAlreadyExists
        | E::EntityFull { .. }
        | E::MessageNotFound
        | E::PopReceiptMismatch
        | E::LockLost
        | E::InvalidArgument(_) => {
            tracing::error!(error = %e, "Service Bus administration: unexpected engine answer");
            AdminError::new(500, format!("Internal error: {e}"))
        }
    }
}
