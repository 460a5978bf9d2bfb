//! From method, host and path to an [`Operation`] on a resource (Microsoft's Queue service REST API reference).
//!
//! Two URL styles reach the same resources: host-style, where the account is the first DNS label
//! of a non-IP host (`acct.queue.core.windows.net`, `devstoreaccount1.queue.localhost`), and
//! path-style, where it is the first path segment (`127.0.0.1:10001/devstoreaccount1/...`). A
//! `-secondary` suffix on the account addresses the read-only secondary endpoint.

use percent_encoding::percent_decode_str;

/// Where a request points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The account name without any `-secondary` suffix.
    pub account: String,
    pub secondary: bool,
    /// Whether the account came from the path (then it appears twice in SharedKey's resource).
    pub path_style: bool,
    pub resource: Resource,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    Account,
    Queue(String),
    Messages(String),
    Message(String, String),
}

impl Resource {
    pub fn queue(&self) -> Option<&str> {
        match self {
            Resource::Account => None,
            Resource::Queue(q) | Resource::Messages(q) | Resource::Message(q, _) => Some(q),
        }
    }
}

/// Every operation of the Queue REST API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    ListQueues,
    SetServiceProperties,
    GetServiceProperties,
    GetServiceStats,
    GetUserDelegationKey,
    Preflight,
    CreateQueue,
    DeleteQueue,
    GetQueueMetadata,
    SetQueueMetadata,
    GetQueueAcl,
    SetQueueAcl,
    PutMessage,
    GetMessages,
    PeekMessages,
    ClearMessages,
    UpdateMessage,
    DeleteMessage,
}

impl Operation {
    /// Whether the operation only reads, so the read-only secondary may serve it.
    pub fn is_read_only(self) -> bool {
        matches!(
            self,
            Operation::ListQueues
                | Operation::GetServiceProperties
                | Operation::GetServiceStats
                | Operation::GetQueueMetadata
                | Operation::GetQueueAcl
                | Operation::PeekMessages
                | Operation::Preflight
        )
    }
}

/// Why no operation matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// The path has no account, or more segments than any resource.
    InvalidUri,
    /// The resource exists but not with this method.
    UnsupportedVerb,
    /// A `comp` (or `restype`) value this resource does not know.
    InvalidComp { name: &'static str, value: String },
}

/// Splits a host header value into its host part (no port).
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        // IPv6 literal
        return rest.split(']').next().unwrap_or(rest);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

fn is_host_style(host: &str) -> bool {
    let h = host_name(host);
    h.contains('.')
        && h.parse::<std::net::IpAddr>().is_err()
        && !h.eq_ignore_ascii_case("localhost")
        && !h
            .as_bytes()
            .get(..10)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"localhost."))
        && h.split('.').next().is_some_and(|l| !l.is_empty())
}

fn decode(seg: &str) -> String {
    if !seg.contains('%') {
        return seg.to_owned();
    }
    percent_decode_str(seg).decode_utf8_lossy().into_owned()
}

/// Resolves account and resource from the Host header and the raw path.
pub fn target(host: Option<&str>, path: &str) -> Result<Target, RouteError> {
    let mut segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    // One trailing slash is tolerated: `/acct/` is the account, `/acct/q/` the queue.
    if segs.len() > 1 && segs.last() == Some(&"") {
        segs.pop();
    }
    let (account_raw, path_style) = match host {
        Some(h) if is_host_style(h) => {
            let label = host_name(h).split('.').next().unwrap_or_default();
            (label.to_owned(), false)
        }
        _ => {
            if segs.is_empty() || segs[0].is_empty() {
                return Err(RouteError::InvalidUri);
            }
            (decode(segs.remove(0)), true)
        }
    };
    if segs.len() == 1 && segs[0].is_empty() {
        segs.clear();
    }
    let (account, secondary) = match account_raw.strip_suffix("-secondary") {
        Some(a) => (a.to_owned(), true),
        None => (account_raw, false),
    };
    let resource = match segs.as_slice() {
        [] => Resource::Account,
        [q] => Resource::Queue(decode(q)),
        [q, m] if m.eq_ignore_ascii_case("messages") => Resource::Messages(decode(q)),
        [q, m, id] if m.eq_ignore_ascii_case("messages") => {
            Resource::Message(decode(q), decode(id))
        }
        _ => return Err(RouteError::InvalidUri),
    };
    Ok(Target {
        account,
        secondary,
        path_style,
        resource,
    })
}

/// Picks the operation from method, resource and the discriminating query values.
/// `comp`, `restype` and `peekonly` are looked up case-insensitively by the caller.
pub fn operation(
    method: &str,
    resource: &Resource,
    comp: Option<&str>,
    restype: Option<&str>,
    peekonly: Option<&str>,
) -> Result<Operation, RouteError> {
    use Operation::*;
    if method == "OPTIONS" {
        return Ok(Preflight);
    }
    let comp_l = comp.map(str::to_ascii_lowercase);
    let bad_comp = |v: &str| RouteError::InvalidComp {
        name: "comp",
        value: v.to_owned(),
    };
    match resource {
        Resource::Account => {
            let service = match restype.map(str::to_ascii_lowercase).as_deref() {
                None => false,
                Some("service") => true,
                Some(other) => {
                    return Err(RouteError::InvalidComp {
                        name: "restype",
                        value: other.to_owned(),
                    })
                }
            };
            match (comp_l.as_deref(), service) {
                (Some("list"), _) => verb(method, &[("GET", ListQueues)]),
                (Some("properties"), true) => verb(
                    method,
                    &[("GET", GetServiceProperties), ("PUT", SetServiceProperties)],
                ),
                (Some("stats"), true) => verb(method, &[("GET", GetServiceStats)]),
                (Some("userdelegationkey"), true) => {
                    verb(method, &[("POST", GetUserDelegationKey)])
                }
                (Some(_), _) => Err(bad_comp(comp.unwrap_or_default())),
                (None, _) => Err(RouteError::InvalidComp {
                    name: "comp",
                    value: String::new(),
                }),
            }
        }
        Resource::Queue(_) => match comp_l.as_deref() {
            None => verb(method, &[("PUT", CreateQueue), ("DELETE", DeleteQueue)]),
            Some("metadata") => verb(
                method,
                &[
                    ("GET", GetQueueMetadata),
                    ("HEAD", GetQueueMetadata),
                    ("PUT", SetQueueMetadata),
                ],
            ),
            Some("acl") => verb(
                method,
                &[
                    ("GET", GetQueueAcl),
                    ("HEAD", GetQueueAcl),
                    ("PUT", SetQueueAcl),
                ],
            ),
            Some(_) => Err(bad_comp(comp.unwrap_or_default())),
        },
        Resource::Messages(_) => {
            let peek = peekonly.is_some_and(|v| v.eq_ignore_ascii_case("true"));
            verb(
                method,
                &[
                    ("POST", PutMessage),
                    ("GET", if peek { PeekMessages } else { GetMessages }),
                    ("DELETE", ClearMessages),
                ],
            )
        }
        Resource::Message(..) => verb(method, &[("PUT", UpdateMessage), ("DELETE", DeleteMessage)]),
    }
}

fn verb(method: &str, table: &[(&str, Operation)]) -> Result<Operation, RouteError> {
    table
        .iter()
        .find(|(m, _)| *m == method)
        .map(|(_, op)| *op)
        .ok_or(RouteError::UnsupportedVerb)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(host: &str, path: &str) -> Target {
        target(Some(host), path).expect("routes")
    }

    #[test]
    fn path_style_with_and_without_trailing_slash() {
        for p in ["/devstoreaccount1", "/devstoreaccount1/"] {
            let r = t("127.0.0.1:10001", p);
            assert_eq!(r.account, "devstoreaccount1");
            assert_eq!(r.resource, Resource::Account);
            assert!(r.path_style && !r.secondary);
        }
        assert_eq!(
            t("localhost:10001", "/devstoreaccount1/myqueue/").resource,
            Resource::Queue("myqueue".into())
        );
        assert_eq!(
            t("127.0.0.1", "/a/q/messages/abc").resource,
            Resource::Message("q".into(), "abc".into())
        );
        assert_eq!(
            target(Some("127.0.0.1"), "/a/q/messages/abc/x"),
            Err(RouteError::InvalidUri)
        );
        assert_eq!(target(Some("127.0.0.1"), "/"), Err(RouteError::InvalidUri));
        assert_eq!(target(None, "/a/q").expect("ok").account, "a");
    }

    #[test]
    fn host_style_and_secondary() {
        let r = t(
            "devstoreaccount1.queue.localhost:10001",
            "/myqueue/messages",
        );
        assert_eq!(r.account, "devstoreaccount1");
        assert!(!r.path_style);
        assert_eq!(r.resource, Resource::Messages("myqueue".into()));
        let r = t("acct-secondary.queue.core.windows.net", "/");
        assert_eq!((r.account.as_str(), r.secondary), ("acct", true));
        assert_eq!(r.resource, Resource::Account);
        let r = t("127.0.0.1:10001", "/devstoreaccount1-secondary/");
        assert_eq!(
            (r.account.as_str(), r.secondary),
            ("devstoreaccount1", true)
        );
        // IP hosts, including IPv6, are path-style.
        assert!(t("[::1]:10001", "/a/q").path_style);
        assert!(t("10.0.0.1", "/a/q").path_style);
    }

    #[test]
    fn operations_from_the_routing_table() {
        use Operation::*;
        let acct = Resource::Account;
        let q = Resource::Queue("q".into());
        let ms = Resource::Messages("q".into());
        let m = Resource::Message("q".into(), "id".into());
        assert_eq!(
            operation("GET", &acct, Some("list"), None, None),
            Ok(ListQueues)
        );
        assert_eq!(
            operation("PUT", &acct, Some("properties"), Some("service"), None),
            Ok(SetServiceProperties)
        );
        assert_eq!(
            operation("GET", &acct, Some("stats"), Some("service"), None),
            Ok(GetServiceStats)
        );
        assert_eq!(
            operation("DELETE", &acct, Some("list"), None, None),
            Err(RouteError::UnsupportedVerb)
        );
        assert!(matches!(
            operation("GET", &acct, Some("bogus"), None, None),
            Err(RouteError::InvalidComp { name: "comp", .. })
        ));
        assert_eq!(operation("PUT", &q, None, None, None), Ok(CreateQueue));
        assert_eq!(
            operation("HEAD", &q, Some("metadata"), None, None),
            Ok(GetQueueMetadata)
        );
        assert_eq!(
            operation("PUT", &q, Some("ACL"), None, None),
            Ok(SetQueueAcl)
        );
        assert_eq!(
            operation("GET", &q, None, None, None),
            Err(RouteError::UnsupportedVerb)
        );
        assert_eq!(
            operation("GET", &ms, None, None, Some("true")),
            Ok(PeekMessages)
        );
        assert_eq!(
            operation("GET", &ms, None, None, Some("false")),
            Ok(GetMessages)
        );
        assert_eq!(operation("POST", &ms, None, None, None), Ok(PutMessage));
        assert_eq!(
            operation("DELETE", &ms, None, None, None),
            Ok(ClearMessages)
        );
        assert_eq!(operation("PUT", &m, None, None, None), Ok(UpdateMessage));
        assert_eq!(
            operation("POST", &m, None, None, None),
            Err(RouteError::UnsupportedVerb)
        );
        assert_eq!(operation("OPTIONS", &m, None, None, None), Ok(Preflight));
    }
}
