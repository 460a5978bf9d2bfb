//! The List Queues response (`EnumerationResults`).

use super::writer::{close, empty_element, open, push_attr, text_element, DECLARATION};
use crate::names::is_valid_metadata_name;

/// One queue in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedQueue<'a> {
    pub name: &'a str,
    /// `Some` only when the request had `include=metadata`. Names keep their stored case.
    pub metadata: Option<&'a [(String, String)]>,
}

/// One page of a listing, with what the request asked for echoed back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQueuesPage<'a> {
    pub service_endpoint: &'a str,
    pub prefix: Option<&'a str>,
    pub marker: Option<&'a str>,
    pub max_results: Option<u32>,
    pub queues: Vec<ListedQueue<'a>>,
    /// Empty on the last page, written as `<NextMarker />`; SDKs page while it is non-empty.
    pub next_marker: &'a str,
}

/// Writes the listing. With `legacy` (version < 2013-08-15) the endpoint goes in an
/// `AccountName` attribute and each queue also gets its `<Url>`.
///
/// A metadata name that is not a valid element name (stored before the naming rules, or
/// by a lenient path) is written as `<x-ms-invalid-name>name</x-ms-invalid-name>`, as the
/// service does, so the document stays well-formed.
pub fn write_list_queues(page: &ListQueuesPage<'_>, legacy: bool) -> String {
    let mut out = String::with_capacity(256 + page.queues.len() * 64);
    out.push_str(DECLARATION);
    out.push_str(if legacy {
        "<EnumerationResults AccountName=\""
    } else {
        "<EnumerationResults ServiceEndpoint=\""
    });
    push_attr(&mut out, page.service_endpoint);
    out.push_str("\">");
    if let Some(p) = page.prefix {
        text_element(&mut out, "Prefix", p);
    }
    if let Some(m) = page.marker {
        text_element(&mut out, "Marker", m);
    }
    if let Some(n) = page.max_results {
        text_element(&mut out, "MaxResults", &n.to_string());
    }
    if page.queues.is_empty() {
        empty_element(&mut out, "Queues");
    } else {
        open(&mut out, "Queues");
        let base = page.service_endpoint.trim_end_matches('/');
        for q in &page.queues {
            open(&mut out, "Queue");
            text_element(&mut out, "Name", q.name);
            if legacy {
                text_element(&mut out, "Url", &format!("{base}/{}", q.name));
            }
            if let Some(md) = q.metadata {
                write_metadata(&mut out, md);
            }
            close(&mut out, "Queue");
        }
        close(&mut out, "Queues");
    }
    text_element(&mut out, "NextMarker", page.next_marker);
    close(&mut out, "EnumerationResults");
    out
}

fn write_metadata(out: &mut String, md: &[(String, String)]) {
    if md.is_empty() {
        empty_element(out, "Metadata");
        return;
    }
    open(out, "Metadata");
    for (name, value) in md {
        if is_valid_metadata_name(name) {
            text_element(out, name, value);
        } else {
            text_element(out, "x-ms-invalid-name", name);
        }
    }
    close(out, "Metadata");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn golden_modern_with_metadata() {
        let m1 = md(&[("Color", "red"), ("k_2", "a<b")]);
        let m2 = md(&[]);
        let page = ListQueuesPage {
            service_endpoint: "https://acct.queue.core.windows.net/",
            prefix: Some("q"),
            marker: Some("q0"),
            max_results: Some(3),
            queues: vec![
                ListedQueue {
                    name: "q1",
                    metadata: Some(&m1),
                },
                ListedQueue {
                    name: "q2",
                    metadata: Some(&m2),
                },
            ],
            next_marker: "q3",
        };
        assert_eq!(
            write_list_queues(&page, false),
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><EnumerationResults \
             ServiceEndpoint=\"https://acct.queue.core.windows.net/\"><Prefix>q</Prefix>\
             <Marker>q0</Marker><MaxResults>3</MaxResults><Queues><Queue><Name>q1</Name>\
             <Metadata><Color>red</Color><k_2>a&lt;b</k_2></Metadata></Queue><Queue>\
             <Name>q2</Name><Metadata /></Queue></Queues><NextMarker>q3</NextMarker>\
             </EnumerationResults>"
        );
    }

    #[test]
    fn golden_last_page_minimal() {
        let page = ListQueuesPage {
            service_endpoint: "http://127.0.0.1:10001/devstoreaccount1",
            prefix: Some(""),
            marker: None,
            max_results: Some(5000),
            queues: vec![ListedQueue {
                name: "a1",
                metadata: None,
            }],
            next_marker: "",
        };
        assert_eq!(
            write_list_queues(&page, false),
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><EnumerationResults \
             ServiceEndpoint=\"http://127.0.0.1:10001/devstoreaccount1\"><Prefix />\
             <MaxResults>5000</MaxResults><Queues><Queue><Name>a1</Name></Queue></Queues>\
             <NextMarker /></EnumerationResults>"
        );
    }

    #[test]
    fn golden_empty() {
        let page = ListQueuesPage {
            service_endpoint: "https://a.queue.core.windows.net/",
            prefix: None,
            marker: None,
            max_results: None,
            queues: vec![],
            next_marker: "",
        };
        assert_eq!(
            write_list_queues(&page, false),
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><EnumerationResults \
             ServiceEndpoint=\"https://a.queue.core.windows.net/\"><Queues /><NextMarker />\
             </EnumerationResults>"
        );
    }

    #[test]
    fn golden_legacy() {
        let m = md(&[("Color", "red")]);
        for endpoint in [
            "https://acct.queue.core.windows.net/",
            "https://acct.queue.core.windows.net",
        ] {
            let page = ListQueuesPage {
                service_endpoint: endpoint,
                prefix: None,
                marker: None,
                max_results: Some(2),
                queues: vec![
                    ListedQueue {
                        name: "q1",
                        metadata: Some(&m),
                    },
                    ListedQueue {
                        name: "q2",
                        metadata: None,
                    },
                ],
                next_marker: "",
            };
            assert_eq!(
                write_list_queues(&page, true),
                format!(
                    "<?xml version=\"1.0\" encoding=\"utf-8\"?><EnumerationResults \
                     AccountName=\"{endpoint}\"><MaxResults>2</MaxResults><Queues><Queue>\
                     <Name>q1</Name><Url>https://acct.queue.core.windows.net/q1</Url>\
                     <Metadata><Color>red</Color></Metadata></Queue><Queue><Name>q2</Name>\
                     <Url>https://acct.queue.core.windows.net/q2</Url></Queue></Queues>\
                     <NextMarker /></EnumerationResults>"
                )
            );
        }
    }

    #[test]
    fn invalid_metadata_names_and_escaping() {
        let m = md(&[("bad-name", "v"), ("", "w"), ("ok", "x&y")]);
        let page = ListQueuesPage {
            service_endpoint: "http://h/\"x\"&",
            prefix: Some("<"),
            marker: None,
            max_results: None,
            queues: vec![ListedQueue {
                name: "q",
                metadata: Some(&m),
            }],
            next_marker: "n&m",
        };
        assert_eq!(
            write_list_queues(&page, false),
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><EnumerationResults \
             ServiceEndpoint=\"http://h/&quot;x&quot;&amp;\"><Prefix>&lt;</Prefix><Queues>\
             <Queue><Name>q</Name><Metadata><x-ms-invalid-name>bad-name</x-ms-invalid-name>\
             <x-ms-invalid-name /><ok>x&amp;y</ok></Metadata></Queue></Queues>\
             <NextMarker>n&amp;m</NextMarker></EnumerationResults>"
        );
    }
}
