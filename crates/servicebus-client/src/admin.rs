//! The administration API over HTTP(S): queues created, read, updated, listed and deleted,
//! with a SharedAccessSignature token for the namespace made from the connection string.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hematite_servicebus_protocol::atom::{parse_response, Entry};
use hematite_servicebus_protocol::sas::token;
use hematite_servicebus_protocol::{AdminError, QueueDescription, QueueRuntime};
use reqwest::{Method, StatusCode};
use time::OffsetDateTime;

use crate::{ConnectionString, Error};

const API_VERSION: &str = "2021-05";
/// Azure's page size for lists.
const PAGE: usize = 100;

/// A queue as the service describes it.
#[derive(Debug, Clone)]
pub struct QueueInfo {
    pub name: String,
    pub description: QueueDescription,
    /// Counts and dates; `None` if the service sent none.
    pub runtime: Option<QueueRuntime>,
}

pub struct AdminClient {
    http: reqwest::Client,
    base: String,
    cs: ConnectionString,
}

impl AdminClient {
    pub fn new(cs: &ConnectionString) -> Result<AdminClient, Error> {
        let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(60));
        if let Some(path) = crate::tls::extra_ca_file() {
            let pem =
                std::fs::read(&path).map_err(|e| Error::Config(format!("reading {path}: {e}")))?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| Error::Config(format!("reading {path}: {e}")))?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        Ok(AdminClient {
            http: builder.build().map_err(Error::transport)?,
            base: cs.admin_base(),
            cs: cs.clone(),
        })
    }

    fn token(&self) -> String {
        let expiry = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
            + 3600;
        token(&self.base, &self.cs.key_name, &self.cs.key, expiry)
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &str,
        body: Option<String>,
        if_match: bool,
    ) -> Result<(StatusCode, Vec<u8>), Error> {
        let url = format!("{}/{path}?api-version={API_VERSION}{query}", self.base);
        let mut req = self
            .http
            .request(method, url)
            .header("Authorization", self.token());
        if let Some(body) = body {
            req = req
                .header(
                    "Content-Type",
                    "application/atom+xml;type=entry;charset=utf-8",
                )
                .body(body);
        }
        if if_match {
            req = req.header("If-Match", "*");
        }
        let resp = req.send().await.map_err(Error::transport)?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(Error::transport)?.to_vec();
        if !status.is_success() {
            let e = AdminError::parse(status.as_u16(), &bytes);
            return Err(Error::Admin {
                status: e.status,
                detail: e.detail,
            });
        }
        Ok((status, bytes))
    }

    fn read(body: &[u8]) -> Result<Vec<QueueInfo>, Error> {
        let entries = parse_response(body).map_err(|e| Error::Transport(e.detail))?;
        entries
            .into_iter()
            .filter(|(_, el)| el.name == "QueueDescription")
            .map(|(name, el)| {
                let description = QueueDescription::from_xml(&el).map_err(|e| {
                    Error::Transport(format!(
                        "the service's description of {name} does not read: {}",
                        e.detail
                    ))
                })?;
                Ok(QueueInfo {
                    runtime: QueueRuntime::from_xml(&el),
                    name,
                    description,
                })
            })
            .collect()
    }

    fn one(body: &[u8], name: &str) -> Result<QueueInfo, Error> {
        Self::read(body)?
            .into_iter()
            .next()
            .ok_or_else(|| Error::Admin {
                status: 404,
                detail: format!("The queue '{name}' does not exist."),
            })
    }

    fn entry(description: &QueueDescription) -> String {
        let content = description.to_xml(None);
        let now = OffsetDateTime::now_utc();
        Entry {
            id: "",
            title: "",
            published: now,
            updated: now,
            author: "",
            content: &content,
        }
        .write()
    }

    pub async fn create_queue(&self, name: &str, d: &QueueDescription) -> Result<QueueInfo, Error> {
        let (_, body) = self
            .call(Method::PUT, name, "", Some(Self::entry(d)), false)
            .await?;
        Self::one(&body, name)
    }

    pub async fn update_queue(&self, name: &str, d: &QueueDescription) -> Result<QueueInfo, Error> {
        let (_, body) = self
            .call(Method::PUT, name, "", Some(Self::entry(d)), true)
            .await?;
        Self::one(&body, name)
    }

    /// The queue, with its counts; a 404 error when there is none.
    pub async fn get_queue(&self, name: &str) -> Result<QueueInfo, Error> {
        let (_, body) = self
            .call(Method::GET, name, "&enrich=false", None, false)
            .await?;
        Self::one(&body, name)
    }

    pub async fn delete_queue(&self, name: &str) -> Result<(), Error> {
        self.call(Method::DELETE, name, "", None, false)
            .await
            .map(drop)
    }

    /// Every queue, page by page.
    pub async fn list_queues(&self) -> Result<Vec<QueueInfo>, Error> {
        let mut all = Vec::new();
        loop {
            let query = format!("&$skip={}&$top={PAGE}", all.len());
            let (_, body) = self
                .call(Method::GET, "$Resources/Queues", &query, None, false)
                .await?;
            let page = Self::read(&body)?;
            let done = page.len() < PAGE;
            all.extend(page);
            if done {
                return Ok(all);
            }
        }
    }
}
