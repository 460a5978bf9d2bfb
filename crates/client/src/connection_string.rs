//! Storage connection strings, as the portal, Azurite, Hematite's banner and the SDKs write
//! them (Microsoft's "Configure Azure Storage connection strings"):
//!
//! - `UseDevelopmentStorage=true[;DevelopmentStorageProxyUri=http://host]`: the local
//!   emulator account on port 10001;
//! - `DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=…[;EndpointSuffix=…]`: the
//!   endpoint `https://acct.queue.<suffix>` is derived;
//! - `…;QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1[;QueueSecondaryEndpoint=…]`:
//!   an explicit endpoint wins over the derived one;
//! - `QueueEndpoint=…;SharedAccessSignature=sv=…&sig=…`: a SAS instead of a key.
//!
//! Keys are matched case-insensitively, as the Python SDK does; segments are split at the
//! first `=` only, because keys and SAS tokens contain `=` themselves.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use reqwest::Url;

use crate::credential::{Credential, SasToken, SharedKeyCredential};
use crate::error::Error;

/// The development storage account every emulator and SDK knows.
pub const DEV_ACCOUNT: &str = "devstoreaccount1";
/// Its well-known key (public by design: it only ever guards local emulators).
pub const DEV_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
/// The queue port emulators listen on.
pub const DEV_QUEUE_PORT: u16 = 10001;

const DEFAULT_SUFFIX: &str = "core.windows.net";

/// A parsed connection string: where the queue service is and how to authenticate.
#[derive(Clone)]
pub struct ConnectionString {
    /// The account name, when the string gives one (it always does for an account key).
    pub account_name: Option<String>,
    /// The primary queue endpoint, without a trailing slash.
    pub queue_endpoint: Url,
    /// The read-only secondary endpoint, when given or derivable from the account name.
    pub queue_secondary_endpoint: Option<Url>,
    /// The credential: an account key or a SAS.
    pub credential: Credential,
}

impl fmt::Debug for ConnectionString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionString")
            .field("account_name", &self.account_name)
            .field("queue_endpoint", &self.queue_endpoint.as_str())
            .field(
                "queue_secondary_endpoint",
                &self.queue_secondary_endpoint.as_ref().map(Url::as_str),
            )
            .field("credential", &self.credential)
            .finish()
    }
}

impl FromStr for ConnectionString {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let fields = split(s)?;
        let get = |k: &str| fields.get(k).map(String::as_str).filter(|v| !v.is_empty());

        if let Some(v) = get("usedevelopmentstorage") {
            if !v.eq_ignore_ascii_case("true") {
                return Err(Error::Config(format!(
                    "UseDevelopmentStorage={v} is not supported; use true or an account"
                )));
            }
            return development(get("developmentstorageproxyuri"));
        }

        let account = get("accountname").map(str::to_owned);
        let protocol = get("defaultendpointsprotocol").unwrap_or("https");
        if !matches!(protocol, "http" | "https") {
            return Err(Error::Config(format!(
                "DefaultEndpointsProtocol={protocol} is neither http nor https"
            )));
        }
        let suffix = get("endpointsuffix").unwrap_or(DEFAULT_SUFFIX);

        let (queue_endpoint, queue_secondary_endpoint) = match get("queueendpoint") {
            Some(primary) => (
                endpoint(primary, "QueueEndpoint")?,
                get("queuesecondaryendpoint")
                    .map(|s| endpoint(s, "QueueSecondaryEndpoint"))
                    .transpose()?,
            ),
            None if get("queuesecondaryendpoint").is_some() => {
                return Err(Error::Config(
                    "QueueSecondaryEndpoint is given without QueueEndpoint".into(),
                ))
            }
            None => {
                let Some(account) = &account else {
                    return Err(Error::Config(
                        "the connection string has neither QueueEndpoint nor AccountName".into(),
                    ));
                };
                (
                    endpoint(
                        &format!("{protocol}://{account}.queue.{suffix}"),
                        "AccountName",
                    )?,
                    Some(endpoint(
                        &format!("{protocol}://{account}-secondary.queue.{suffix}"),
                        "AccountName",
                    )?),
                )
            }
        };

        let credential = match (get("accountkey"), get("sharedaccesssignature")) {
            (Some(key), _) => {
                let Some(account) = &account else {
                    return Err(Error::Config(
                        "AccountKey is given without AccountName".into(),
                    ));
                };
                Credential::SharedKey(SharedKeyCredential::new(account.clone(), key)?)
            }
            (None, Some(sas)) => Credential::Sas(SasToken::new(sas)?),
            (None, None) => {
                return Err(Error::Config(
                    "the connection string has neither AccountKey nor SharedAccessSignature".into(),
                ))
            }
        };

        Ok(Self {
            account_name: account,
            queue_endpoint,
            queue_secondary_endpoint,
            credential,
        })
    }
}

/// `key=value` segments separated by `;`, keys lowercased; the last of a repeated key wins.
fn split(s: &str) -> Result<HashMap<String, String>, Error> {
    let mut fields = HashMap::new();
    for segment in s.split(';').map(str::trim).filter(|seg| !seg.is_empty()) {
        // The segment itself is not echoed: it may be a mangled key or signature.
        let (k, v) = segment
            .split_once('=')
            .ok_or_else(|| Error::Config("a connection string segment is not key=value".into()))?;
        fields.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
    }
    if fields.is_empty() {
        return Err(Error::Config("the connection string is empty".into()));
    }
    Ok(fields)
}

fn development(proxy: Option<&str>) -> Result<ConnectionString, Error> {
    // With a proxy, the SDKs keep its scheme and host and use the emulator's port and path.
    let base = match proxy {
        Some(p) => {
            let url = endpoint(p, "DevelopmentStorageProxyUri")?;
            let host = url.host_str().unwrap_or("127.0.0.1");
            format!("{}://{host}", url.scheme())
        }
        None => "http://127.0.0.1".to_owned(),
    };
    Ok(ConnectionString {
        account_name: Some(DEV_ACCOUNT.to_owned()),
        queue_endpoint: endpoint(
            &format!("{base}:{DEV_QUEUE_PORT}/{DEV_ACCOUNT}"),
            "UseDevelopmentStorage",
        )?,
        queue_secondary_endpoint: Some(endpoint(
            &format!("{base}:{DEV_QUEUE_PORT}/{DEV_ACCOUNT}-secondary"),
            "UseDevelopmentStorage",
        )?),
        credential: Credential::SharedKey(SharedKeyCredential::new(DEV_ACCOUNT, DEV_KEY)?),
    })
}

/// Parses an endpoint URL: http or https, a host, no query; the trailing slash is dropped so
/// paths can be appended uniformly.
pub(crate) fn endpoint(s: &str, what: &str) -> Result<Url, Error> {
    let mut url = Url::parse(s.trim())
        .map_err(|e| Error::Config(format!("{what} {s:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(Error::Config(format!(
            "{what} {s:?} is not an http(s) URL with a host"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::Config(format!(
            "{what} {s:?} must not have a query or fragment (put a SAS in SharedAccessSignature)"
        )));
    }
    let path = url.path().trim_end_matches('/').to_owned();
    url.set_path(&path);
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> ConnectionString {
        s.parse().unwrap()
    }

    fn account_of(c: &ConnectionString) -> &str {
        match &c.credential {
            Credential::SharedKey(k) => k.account(),
            Credential::Sas(_) => "<sas>",
        }
    }

    #[test]
    fn development_storage() {
        let c = parse("UseDevelopmentStorage=true");
        assert_eq!(
            c.queue_endpoint.as_str(),
            "http://127.0.0.1:10001/devstoreaccount1"
        );
        assert_eq!(
            c.queue_secondary_endpoint.as_ref().unwrap().as_str(),
            "http://127.0.0.1:10001/devstoreaccount1-secondary"
        );
        assert_eq!(account_of(&c), "devstoreaccount1");
        assert_eq!(c.account_name.as_deref(), Some("devstoreaccount1"));

        // Keys and the value are case-insensitive; a trailing ';' is fine.
        let c = parse("usedevelopmentstorage=TRUE;");
        assert_eq!(account_of(&c), "devstoreaccount1");

        let c = parse("UseDevelopmentStorage=true;DevelopmentStorageProxyUri=http://myproxy:8080");
        assert_eq!(
            c.queue_endpoint.as_str(),
            "http://myproxy:10001/devstoreaccount1"
        );
        assert!("UseDevelopmentStorage=false"
            .parse::<ConnectionString>()
            .is_err());
    }

    #[test]
    fn account_key_with_explicit_endpoint() {
        let c = parse(&format!(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={DEV_KEY};QueueEndpoint=http://127.0.0.1:4567/devstoreaccount1/;"
        ));
        assert_eq!(
            c.queue_endpoint.as_str(),
            "http://127.0.0.1:4567/devstoreaccount1"
        );
        assert!(c.queue_secondary_endpoint.is_none());
        assert_eq!(account_of(&c), "devstoreaccount1");

        // Hematite's banner form, keys in any case.
        let c = parse(&format!(
            "defaultendpointsprotocol=http;ACCOUNTNAME=devstoreaccount1;accountKey={DEV_KEY};QueueEndpoint=http://127.0.0.1:1/devstoreaccount1;QueueSecondaryEndpoint=http://127.0.0.1:1/devstoreaccount1-secondary;"
        ));
        assert_eq!(
            c.queue_secondary_endpoint.unwrap().as_str(),
            "http://127.0.0.1:1/devstoreaccount1-secondary"
        );
    }

    #[test]
    fn account_key_with_derived_endpoint() {
        let c = parse(&format!(
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={DEV_KEY};EndpointSuffix=core.chinacloudapi.cn"
        ));
        assert_eq!(
            c.queue_endpoint.as_str(),
            "https://acct.queue.core.chinacloudapi.cn/"
        );
        assert_eq!(
            c.queue_secondary_endpoint.unwrap().as_str(),
            "https://acct-secondary.queue.core.chinacloudapi.cn/"
        );

        // Protocol defaults to https, suffix to core.windows.net.
        let c = parse(&format!("AccountName=acct;AccountKey={DEV_KEY}"));
        assert_eq!(
            c.queue_endpoint.as_str(),
            "https://acct.queue.core.windows.net/"
        );
    }

    #[test]
    fn sas_connection_string() {
        let c = parse(
            "QueueEndpoint=https://acct.queue.core.windows.net;SharedAccessSignature=sv=2026-10-06&ss=q&srt=sco&sp=rl&se=2030-01-01T00%3A00%3A00Z&sig=abc%3D",
        );
        match &c.credential {
            Credential::Sas(t) => assert_eq!(
                t.as_str(),
                "sv=2026-10-06&ss=q&srt=sco&sp=rl&se=2030-01-01T00%3A00%3A00Z&sig=abc%3D"
            ),
            Credential::SharedKey(_) => panic!("expected a SAS"),
        }
        assert!(c.account_name.is_none());
    }

    #[test]
    fn refusals() {
        for bad in [
            "",
            ";;",
            "garbage",
            "AccountName=acct",
            &format!("AccountKey={DEV_KEY};QueueEndpoint=http://127.0.0.1:1/a"),
            "AccountName=acct;AccountKey=not-base64!",
            "QueueSecondaryEndpoint=http://x/a-secondary;SharedAccessSignature=sig=a",
            "QueueEndpoint=ftp://x/a;SharedAccessSignature=sig=a",
            "QueueEndpoint=not a url;SharedAccessSignature=sig=a",
            "QueueEndpoint=http://x/a?sv=1;SharedAccessSignature=sig=a",
            "DefaultEndpointsProtocol=gopher;AccountName=a;AccountKey=YQ==",
            "QueueEndpoint=http://x/a",
        ] {
            assert!(bad.parse::<ConnectionString>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn errors_do_not_echo_keys() {
        let err = "AccountName=acct;AccountKey=c2VjcmV0c2VjcmV0c2VjcmV0!!"
            .parse::<ConnectionString>()
            .unwrap_err()
            .to_string();
        assert!(!err.contains("c2VjcmV0"), "{err}");
        let err = "sv=2026&sig=supersecretsignaturevalue;"
            .parse::<ConnectionString>()
            .unwrap_err()
            .to_string();
        assert!(!err.contains("supersecret"), "{err}");
    }
}
