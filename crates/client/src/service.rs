//! [`QueueServiceClient`]: the account. Lists queues, reads and writes service properties,
//! reads replication statistics, makes account SAS tokens, and hands out [`QueueClient`]s that
//! share its connection pool.

use std::sync::Arc;

use futures_util::stream::{self, Stream, TryStreamExt};
use hematite_queue_protocol::auth::sas::AccountSasBuilder;
use hematite_queue_protocol::xml::{
    parse_service_properties, write_service_properties, ServiceProperties,
};
use reqwest::{Method, Url};

use crate::connection_string::{endpoint, ConnectionString};
use crate::credential::Credential;
use crate::error::Error;
use crate::models::{ListQueuesOptions, ListQueuesSegment, QueueItem, ServiceStatistics};
use crate::options::ClientOptions;
use crate::pipeline::{with_query, Pipeline, Request};
use crate::queue::QueueClient;
use crate::xml;

/// A client for one storage account's queue service. Cheap to clone.
#[derive(Debug, Clone)]
pub struct QueueServiceClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    pipeline: Arc<Pipeline>,
    /// The primary endpoint, no trailing slash: `https://acct.queue.core.windows.net` or
    /// `http://127.0.0.1:10001/devstoreaccount1`.
    endpoint: Url,
    secondary: Option<Url>,
}

impl QueueServiceClient {
    /// A client from a storage connection string (see [`ConnectionString`]).
    pub fn from_connection_string(connection_string: &str) -> Result<Self, Error> {
        Self::from_connection_string_with_options(connection_string, ClientOptions::default())
    }

    pub fn from_connection_string_with_options(
        connection_string: &str,
        options: ClientOptions,
    ) -> Result<Self, Error> {
        let cs: ConnectionString = connection_string.parse()?;
        Self::build(
            cs.queue_endpoint,
            cs.queue_secondary_endpoint,
            cs.credential,
            options,
        )
    }

    /// A client for the queue service at `endpoint`, e.g.
    /// `https://acct.queue.core.windows.net` or `http://127.0.0.1:10001/devstoreaccount1`.
    pub fn new(endpoint_url: &str, credential: Credential) -> Result<Self, Error> {
        Self::with_options(endpoint_url, credential, ClientOptions::default())
    }

    pub fn with_options(
        endpoint_url: &str,
        credential: Credential,
        options: ClientOptions,
    ) -> Result<Self, Error> {
        let primary = endpoint(endpoint_url, "the endpoint")?;
        let secondary = derive_secondary(&primary);
        Self::build(primary, secondary, credential, options)
    }

    fn build(
        endpoint: Url,
        secondary: Option<Url>,
        credential: Credential,
        options: ClientOptions,
    ) -> Result<Self, Error> {
        let secondary = secondary.or_else(|| derive_secondary(&endpoint));
        Ok(Self {
            inner: Arc::new(Inner {
                pipeline: Arc::new(Pipeline::new(credential, options)?),
                endpoint,
                secondary,
            }),
        })
    }

    /// The primary endpoint, without a trailing slash.
    pub fn url(&self) -> &Url {
        &self.inner.endpoint
    }

    /// The account name, when the credential names it (Shared Key).
    pub fn account_name(&self) -> Option<&str> {
        match self.inner.pipeline.credential() {
            Credential::SharedKey(k) => Some(k.account()),
            Credential::Sas(_) => None,
        }
    }

    /// A client for one queue; nothing is sent until it is used.
    pub fn queue_client(&self, queue_name: &str) -> QueueClient {
        QueueClient::new(
            self.inner.pipeline.clone(),
            &self.inner.endpoint,
            queue_name,
        )
    }

    /// The account URL with a trailing slash, as the SDKs address it.
    fn account_url(&self, base: &Url) -> Url {
        let mut url = base.clone();
        let path = format!("{}/", base.path().trim_end_matches('/'));
        url.set_path(&path);
        url
    }

    /// One page of List Queues.
    pub async fn list_queues_segment(
        &self,
        options: &ListQueuesOptions,
    ) -> Result<ListQueuesSegment, Error> {
        let url = with_query(
            self.account_url(&self.inner.endpoint),
            &[
                ("comp", Some("list".into())),
                ("prefix", options.prefix.clone()),
                ("marker", options.marker.clone()),
                ("maxresults", options.max_results.map(|n| n.to_string())),
                (
                    "include",
                    options.include_metadata.then(|| "metadata".to_owned()),
                ),
            ],
        );
        let resp = self.send(Method::GET, url, None, &[200]).await?;
        xml::parse_list_queues(&resp.body).map_err(Error::Response)
    }

    /// Every queue matching `options`, page by page as the stream is polled (starting at
    /// `options.marker`).
    pub fn list_queues(
        &self,
        options: ListQueuesOptions,
    ) -> impl Stream<Item = Result<QueueItem, Error>> + Send + 'static {
        let client = self.clone();
        // State: the marker of the next page; `None` once the last page was fetched.
        stream::try_unfold(Some(options), move |state| {
            let client = client.clone();
            async move {
                let Some(options) = state else {
                    return Ok::<_, Error>(None);
                };
                let page = client.list_queues_segment(&options).await?;
                let next = page.next_marker.map(|m| ListQueuesOptions {
                    marker: Some(m),
                    ..options
                });
                Ok(Some((stream::iter(page.queues.into_iter().map(Ok)), next)))
            }
        })
        .try_flatten()
    }

    /// Every queue matching `options`, collected.
    pub async fn list_all_queues(
        &self,
        options: ListQueuesOptions,
    ) -> Result<Vec<QueueItem>, Error> {
        self.list_queues(options).try_collect().await
    }

    /// Get Queue Service Properties: logging, metrics and CORS rules.
    pub async fn get_properties(&self) -> Result<ServiceProperties, Error> {
        let url = self.service_url(&self.inner.endpoint, "properties");
        let resp = self.send(Method::GET, url, None, &[200]).await?;
        let patch = parse_service_properties(&resp.body, false)
            .map_err(|e| Error::Response(format!("service properties: {e}")))?;
        let mut props = ServiceProperties::default();
        props.apply(patch);
        Ok(props)
    }

    /// Set Queue Service Properties. Every part is sent, so this replaces all of them.
    pub async fn set_properties(&self, properties: &ServiceProperties) -> Result<(), Error> {
        let url = self.service_url(&self.inner.endpoint, "properties");
        let body = write_service_properties(properties, false);
        self.send(Method::PUT, url, Some(body), &[202]).await?;
        Ok(())
    }

    /// Get Queue Service Stats, from the secondary endpoint (the only one that answers it).
    pub async fn get_statistics(&self) -> Result<ServiceStatistics, Error> {
        let secondary = self.inner.secondary.as_ref().ok_or_else(|| {
            Error::Config(
                "no secondary endpoint is known; give QueueSecondaryEndpoint in the connection string"
                    .into(),
            )
        })?;
        let url = self.service_url(secondary, "stats");
        let resp = self.send(Method::GET, url, None, &[200]).await?;
        xml::parse_service_stats(&resp.body).map_err(Error::Response)
    }

    /// An account SAS token (query string without `?`), signed with the account key.
    pub fn generate_account_sas(&self, builder: &AccountSasBuilder) -> Result<String, Error> {
        match self.inner.pipeline.credential() {
            Credential::SharedKey(k) => Ok(builder.to_query(k.account(), k.key())),
            Credential::Sas(_) => Err(Error::Config(
                "generating a SAS needs the account key, not a SAS credential".into(),
            )),
        }
    }

    fn service_url(&self, base: &Url, comp: &str) -> Url {
        with_query(
            self.account_url(base),
            &[
                ("restype", Some("service".into())),
                ("comp", Some(comp.into())),
            ],
        )
    }

    async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<String>,
        expected: &[u16],
    ) -> Result<crate::pipeline::Response, Error> {
        self.inner
            .pipeline
            .send(
                Request {
                    method,
                    url,
                    headers: Vec::new(),
                    body,
                },
                expected,
            )
            .await
    }
}

/// The secondary endpoint by the service's naming rule: the account with `-secondary`, in the
/// host for host-style URLs (`acct-secondary.queue.…`) or in the first path segment for
/// path-style ones (emulators on an IP or `localhost`).
fn derive_secondary(primary: &Url) -> Option<Url> {
    let host = primary.host_str()?;
    let mut url = primary.clone();
    let is_ip = host
        .trim_matches(['[', ']'])
        .parse::<std::net::IpAddr>()
        .is_ok();
    let path_style = is_ip || host.eq_ignore_ascii_case("localhost") || !host.contains('.');
    if path_style {
        let path = primary.path().trim_start_matches('/');
        let (account, rest) = path.split_once('/').unwrap_or((path, ""));
        if account.is_empty() {
            return None;
        }
        let new_path = if rest.is_empty() {
            format!("/{account}-secondary")
        } else {
            format!("/{account}-secondary/{rest}")
        };
        url.set_path(&new_path);
    } else {
        let (account, rest) = host.split_once('.')?;
        url.set_host(Some(&format!("{account}-secondary.{rest}")))
            .ok()?;
    }
    Some(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secondary_endpoints() {
        let s = |u: &str| derive_secondary(&Url::parse(u).unwrap()).map(|u| u.to_string());
        assert_eq!(
            s("http://127.0.0.1:10001/devstoreaccount1").as_deref(),
            Some("http://127.0.0.1:10001/devstoreaccount1-secondary")
        );
        assert_eq!(
            s("http://localhost:10001/devstoreaccount1").as_deref(),
            Some("http://localhost:10001/devstoreaccount1-secondary")
        );
        assert_eq!(
            s("https://acct.queue.core.windows.net").as_deref(),
            Some("https://acct-secondary.queue.core.windows.net/")
        );
        assert_eq!(s("http://127.0.0.1:10001"), None);
    }

    #[test]
    fn account_urls_have_a_trailing_slash() {
        let c = QueueServiceClient::from_connection_string("UseDevelopmentStorage=true").unwrap();
        assert_eq!(
            c.service_url(c.url(), "properties").as_str(),
            "http://127.0.0.1:10001/devstoreaccount1/?restype=service&comp=properties"
        );
        assert_eq!(c.account_name(), Some("devstoreaccount1"));
        let q = c.queue_client("jobs");
        assert_eq!(
            q.url().as_str(),
            "http://127.0.0.1:10001/devstoreaccount1/jobs"
        );
    }
}
