//! The Service Bus HTTP port (5300 by default, as the emulator's): `GET /health`, and the
//! ATOM administration API the SDKs' administration clients speak (Microsoft, "Service Bus
//! REST API reference"): queues, topics, subscriptions and rules created, read, updated,
//! listed and deleted at run time.
//!
//! The emulator answers `/health` with `200 {"status":"healthy"}` once it serves, and tools
//! such as Testcontainers and Aspire wait for it; Hematite is ready when this port listens.
//! The same handler also answers HTTP that arrives on the AMQP ports ([`crate::listen`]), so
//! one `Endpoint=sb://host:5672` connection string serves the clients that speak http there.
//!
//! Every administrative request carries a `SharedAccessSignature` token of a key with the
//! Manage right, checked as the AMQP side checks tokens (the emulator checks nothing).
//! Paths are matched without regard to case and any `api-version` is taken: the Python
//! client sends 2024-05 and lowercase `subscriptions`, the JS client 2021-05 and capitals.

mod queues;
mod subscriptions;
mod topics;

use std::sync::Arc;

use hematite_net::http1::{Handler, Limits, Request, Response};
use hematite_servicebus_protocol::atom::parse_entry;
use hematite_servicebus_protocol::{AdminError, Feed};
use percent_encoding::percent_decode_str;

use crate::catalog::{date, CatalogError};
use crate::namespace::valid_name;
use crate::sas::{self, Right};
use crate::{now_secs, ServiceBus};

/// Azure's page size, and the most `$top` may ask for.
const PAGE: usize = 100;

/// The administration API and the health check, over one namespace.
pub struct Admin {
    sb: Arc<ServiceBus>,
}

impl Admin {
    pub fn new(sb: Arc<ServiceBus>) -> Self {
        Admin { sb }
    }
}

/// A request as the handlers see it: its path decoded, its query split, where it came from.
pub(crate) struct Call<'a> {
    pub req: &'a Request,
    /// The path without its slashes at either end, percent-decoded.
    pub path: String,
    pub query: Vec<(String, String)>,
    /// `scheme://host`, for the `<id>` and `<link>` URLs of answers.
    pub base: String,
}

impl Call<'_> {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The URL of `path` on this server, with the request's api-version.
    pub fn url(&self, path: &str) -> String {
        match self.param("api-version") {
            Some(v) => format!("{}/{path}?api-version={v}", self.base),
            None => format!("{}/{path}", self.base),
        }
    }
}

fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

impl Handler for Admin {
    async fn handle(&self, req: Request) -> Response {
        let path = decode(req.path()).trim_matches('/').to_owned();
        if path.eq_ignore_ascii_case("health") {
            return self.health(&req).await;
        }
        let query = req
            .query()
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (decode(k), decode(v))
            })
            .collect();
        let scheme = if req.tls { "https" } else { "http" };
        let base = format!("{scheme}://{}", req.host().unwrap_or("localhost"));
        let call = Call {
            req: &req,
            path,
            query,
            base,
        };
        match self.route(&call).await {
            Ok(r) => r,
            Err(e) => error(&e),
        }
    }
}

impl Admin {
    async fn route(&self, call: &Call<'_>) -> Result<Response, AdminError> {
        self.authorize(call)?;
        if call.req.body_too_large {
            return Err(AdminError::new(413, "The request body is too large."));
        }
        let lower = call.path.to_ascii_lowercase();
        let method = call.req.method();
        let sb = &self.sb;
        let sub_path = subscriptions::Path::parse(&call.path);
        if !lower.starts_with('$') {
            // Another node sharing the store may have made or changed it: read it again.
            let entity = sub_path.as_ref().map_or(call.path.as_str(), |p| p.topic());
            sb.read_again(entity, sub_path.as_ref().and_then(|p| p.subscription()))
                .await;
        }
        if let Some(path) = sub_path {
            return subscriptions::route(sb, call, &path).await;
        }
        match (method, lower.as_str()) {
            ("GET", "$namespaceinfo") => Ok(self.namespace_info(call)),
            ("GET", "$resources/queues") => queues::list(sb, call).await,
            ("GET", "$resources/topics") => topics::list(sb, call).await,
            (_, p) if p.starts_with('$') => Err(not_found(call)),
            ("GET", _) if sb.catalog.topic(&call.path).is_some() => topics::get(sb, call).await,
            ("GET", _) => queues::get(sb, call).await,
            ("PUT", _) => self.put(call).await,
            ("DELETE", _) if sb.catalog.topic(&call.path).is_some() => {
                topics::delete(sb, call).await
            }
            ("DELETE", _) => queues::delete(sb, call).await,
            _ => Err(AdminError::new(405, "The method is not allowed.")),
        }
    }

    /// A PUT of a queue or a topic: the description in the body says which.
    async fn put(&self, call: &Call<'_>) -> Result<Response, AdminError> {
        let name = call.path.as_str();
        if !valid_name(name) {
            return Err(AdminError::bad_request(format!(
                "The entity name '{name}' is not valid: use letters, digits, periods, hyphens, underscores and slashes, starting and ending with a letter or digit, up to 260 characters."
            )));
        }
        let element = parse_entry(&call.req.body)?;
        match element.name.as_str() {
            "QueueDescription" => queues::put(&self.sb, call, &element).await,
            "TopicDescription" => topics::put(&self.sb, call, &element).await,
            other => Err(AdminError::bad_request(format!(
                "A {other} cannot be created at '{name}'."
            ))),
        }
    }

    /// A token of a namespace key with the Manage right, covering the path.
    fn authorize(&self, call: &Call<'_>) -> Result<(), AdminError> {
        let Some(token) = call.req.header("authorization") else {
            return Err(AdminError::new(
                401,
                "MissingToken: The authorization header was not found.",
            ));
        };
        let grant = sas::validate(token, &self.sb.namespace.keys, now_secs()).map_err(|e| {
            let detail = match e {
                sas::Refused::Malformed => {
                    "MalformedToken: The token is not a SharedAccessSignature."
                }
                sas::Refused::UnknownKey(_) | sas::Refused::BadSignature => {
                    "InvalidSignature: The token has an invalid signature."
                }
                sas::Refused::Expired => "ExpiredToken: The token is expired.",
            };
            AdminError::new(401, detail)
        })?;
        if !grant.covers(&call.path.to_ascii_lowercase(), now_secs())
            || !grant.rights.allow(Right::Manage)
        {
            return Err(AdminError::new(
                401,
                format!(
                    "Unauthorized access. 'Manage' claim(s) are required to perform this operation. Resource: '{}/{}'.",
                    call.base, call.path
                ),
            ));
        }
        Ok(())
    }

    fn namespace_info(&self, call: &Call<'_>) -> Response {
        let ns = &self.sb.namespace.name;
        let now = date(self.sb.engine.now());
        let content = hematite_servicebus_protocol::atom::namespace_info(ns, now);
        let id = call.url("$namespaceinfo");
        entry(
            200,
            hematite_servicebus_protocol::Entry {
                id: &id,
                title: ns,
                published: now,
                updated: now,
                author: ns,
                content: &content,
            },
        )
    }
}

impl Admin {
    /// Healthy while the store answers a one-entry read (`hematite_net::health`).
    async fn health(&self, req: &Request) -> Response {
        let read = self.sb.engine.list_queues(&self.sb.account, "", None, 1);
        hematite_net::health::answer(req, async { read.await.map(drop) }).await
    }
}

/// Azure's answer to a request for an entity that does not exist, where the verb has no
/// empty-feed form.
pub(crate) fn not_found(call: &Call<'_>) -> AdminError {
    AdminError::new(
        404,
        format!(
            "The messaging entity '{}/{}' could not be found.",
            call.base, call.path
        ),
    )
}

/// `$skip` and `$top` of a list request: `$top` at least one (a page of none would link to
/// itself as the next page) and at most Azure's page size.
pub(crate) fn paging(call: &Call<'_>) -> Result<(usize, usize), AdminError> {
    let number = |name: &str, default: usize| -> Result<usize, AdminError> {
        call.param(name).map_or(Ok(default), |v| {
            v.parse()
                .map_err(|_| AdminError::bad_request(format!("The value of {name} is not valid.")))
        })
    };
    Ok((number("$skip", 0)?, number("$top", PAGE)?.clamp(1, PAGE)))
}

/// A list's feed: its entries, and a next link when more follow.
pub(crate) fn list_feed(
    call: &Call<'_>,
    sb: &ServiceBus,
    title: &str,
    entries: Vec<hematite_servicebus_protocol::Entry<'_>>,
    (skip, top, more): (usize, usize, bool),
) -> Response {
    let next = more.then(|| {
        let mut url = format!(
            "{}/{}?$skip={}&$top={top}",
            call.base,
            call.path,
            skip + entries.len()
        );
        if let Some(v) = call.param("api-version") {
            url.push_str(&format!("&api-version={v}"));
        }
        url
    });
    let id = call.url(&call.path);
    feed(
        Feed {
            title,
            id: &id,
            updated: date(sb.engine.now()),
            next,
            entries,
        }
        .write(),
    )
}

/// A catalog refusal on this wire; `what` names the entity as Azure does
/// (`ns:Queue:q1`, `ns:Topic:t1|s1`).
pub(crate) fn catalog_error(call: &Call<'_>, what: &str, e: CatalogError) -> AdminError {
    match e {
        CatalogError::Exists => AdminError::new(
            409,
            format!(
                "The messaging entity '{what}' already exists. To change it, PUT with If-Match: *."
            ),
        ),
        CatalogError::NotFound => not_found(call),
        CatalogError::NoParent => AdminError::new(
            404,
            format!("The messaging entity that '{what}' belongs to could not be found."),
        ),
        CatalogError::Quota(text) => AdminError::new(403, text),
        CatalogError::Busy => AdminError::new(
            503,
            format!(
                "The messaging entity '{what}' kept changing under this request. Please retry."
            ),
        ),
        CatalogError::Engine(e) => engine_error(e),
    }
}

/// The engine's errors on this wire. An entity deleted between lookup and call is not
/// found; a store failure is the service being busy (the SDKs retry 503).
pub(crate) fn engine_error(e: hematite_engine::Error) -> AdminError {
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

/// A feed with no entries: an empty list, or a GET's answer for a missing entity.
pub(crate) fn empty(call: &Call<'_>, title: &str) -> String {
    let id = call.url(&call.path);
    Feed {
        title,
        id: &id,
        updated: time::OffsetDateTime::now_utc(),
        next: None,
        entries: Vec::new(),
    }
    .write()
}

pub(crate) fn feed(body: String) -> Response {
    let mut r = Response::new(200).header(
        "Content-Type",
        "application/atom+xml;type=feed;charset=utf-8",
    );
    r.body = body.into_bytes();
    r
}

pub(crate) fn entry(status: u16, e: hematite_servicebus_protocol::Entry<'_>) -> Response {
    let mut r = Response::new(status).header(
        "Content-Type",
        "application/atom+xml;type=entry;charset=utf-8",
    );
    r.body = e.write().into_bytes();
    r
}

fn error(e: &AdminError) -> Response {
    let mut r = Response::new(e.status).header("Content-Type", "application/xml; charset=utf-8");
    r.body = e.body().into_bytes();
    r
}

/// The limits of the administration API: descriptions are small.
pub fn limits() -> Limits {
    Limits {
        max_body: 1 << 20,
        ..Limits::default()
    }
}
