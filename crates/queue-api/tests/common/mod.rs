//! Test harness: the REST front in-process on port 0, over the memory store and a manual clock,
//! and a raw HTTP/1.1 client that signs requests itself, so tests can send what no SDK would.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hematite_engine::clock::test_clock;
use hematite_engine::Store;
use hematite_engine::{Engine, ManualClock, MemoryStore};
use hematite_net::conns::Registry;
use hematite_net::http1::Limits;
use hematite_net::listener::Setup;
use hematite_net::tls::TlsAcceptor;
use hematite_queue_api::accounts::{Accounts, DEV_ACCOUNT, DEV_KEY};
use hematite_queue_api::auth::to_offset;
use hematite_queue_api::server::default_limits;
use hematite_queue_api::{serve_with, Options, QueueApi};
use hematite_queue_protocol::auth::shared_key::{self, AuthScheme, SignableRequest, Variant};
use hematite_queue_protocol::datetime::format_rfc1123;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

pub const ACCOUNT: &str = DEV_ACCOUNT;
pub const VERSION: &str = "2026-10-06";

pub fn key() -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(DEV_KEY)
        .expect("well-known key")
}

pub struct Server {
    pub addr: SocketAddr,
    pub clock: Arc<ManualClock>,
    /// Set when the server speaks TLS: how the test client connects.
    pub tls: Option<tokio_rustls::TlsConnector>,
    _stop: oneshot::Sender<()>,
}

pub async fn start() -> Server {
    start_with(Options::default()).await
}

pub async fn start_with(options: Options) -> Server {
    start_custom(Custom {
        options,
        ..Custom::default()
    })
    .await
}

/// Everything a test may set about the server it starts.
pub struct Custom {
    pub options: Options,
    pub limits: Limits,
    /// The listener's connections (and cap); tests keep a clone to watch them.
    pub registry: Arc<Registry>,
    pub tls: Option<TlsAcceptor>,
    /// With `tls`: how the test client trusts the server's certificate.
    pub tls_client: Option<tokio_rustls::TlsConnector>,
    pub store: Arc<dyn Store>,
}

impl Default for Custom {
    fn default() -> Self {
        Custom {
            options: Options::default(),
            limits: default_limits(),
            registry: Registry::new(1024),
            tls: None,
            tls_client: None,
            store: Arc::new(MemoryStore::new()),
        }
    }
}

pub async fn start_custom(c: Custom) -> Server {
    let clock = Arc::new(test_clock());
    let engine = Engine::new(c.store, clock.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let api = Arc::new(QueueApi::new(engine, Accounts::development(), c.options));
    let (tx, rx) = oneshot::channel::<()>();
    let setup = Setup {
        registry: c.registry,
        tls: c.tls,
        handshake_timeout: c.limits.head,
    };
    tokio::spawn(serve_with(listener, api, setup, c.limits, async {
        let _ = rx.await;
    }));
    Server {
        addr,
        clock,
        tls: c.tls_client,
        _stop: tx,
    }
}

/// A self-signed certificate for `localhost` and 127.0.0.1: the server's acceptor and a client
/// connector that trusts it.
pub fn test_tls() -> (TlsAcceptor, tokio_rustls::TlsConnector) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("certificate");
    let dir = std::env::temp_dir().join(format!(
        "hematite-tls-{}-{}",
        std::process::id(),
        rand::random::<u64>()
    ));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).expect("write cert");
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).expect("write key");
    let config = hematite_net::tls::load(&cert_path, &key_path, hematite_net::tls::ALPN_HTTP1)
        .expect("TLS config");
    let _ = std::fs::remove_dir_all(&dir);
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).expect("trust");
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    (
        hematite_net::tls::acceptor(config),
        tokio_rustls::TlsConnector::from(Arc::new(client)),
    )
}

#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    /// Header names exactly as the server wrote them.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn code(&self) -> Option<&str> {
        self.header("x-ms-error-code")
    }

    /// The text of the first `<tag>` element in the body.
    pub fn xml(&self, tag: &str) -> Option<String> {
        let open = format!("<{tag}>");
        let start = self.body.find(&open)? + open.len();
        let end = self.body[start..].find(&format!("</{tag}>"))? + start;
        Some(self.body[start..end].to_owned())
    }

    pub fn xml_all(&self, tag: &str) -> Vec<String> {
        let open = format!("<{tag}>");
        let close = format!("</{tag}>");
        let mut out = Vec::new();
        let mut rest = self.body.as_str();
        while let Some(i) = rest.find(&open) {
            let after = &rest[i + open.len()..];
            let Some(j) = after.find(&close) else { break };
            out.push(after[..j].to_owned());
            rest = &after[j + close.len()..];
        }
        out
    }

    #[track_caller]
    pub fn assert_status(&self, status: u16) {
        assert_eq!(self.status, status, "body: {}", self.body);
    }

    #[track_caller]
    pub fn assert_ok(&self) {
        assert!(
            (200..300).contains(&self.status),
            "{}: {}",
            self.status,
            self.body
        );
    }

    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(
            (self.status, self.code()),
            (status, Some(code)),
            "body: {}",
            self.body
        );
        if !self.body.is_empty() {
            assert_eq!(
                self.xml("Code").as_deref(),
                Some(code),
                "body: {}",
                self.body
            );
        }
    }
}

/// How a request authenticates.
#[derive(Clone, Debug)]
pub enum Auth {
    SharedKey,
    SharedKeyLite,
    /// Signed with this key instead of the account's.
    WrongKey,
    None,
}

#[derive(Clone, Debug)]
pub struct Req {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub auth: Auth,
    pub version: Option<String>,
    /// Seconds to shift the signed date from the server's clock.
    pub date_offset: i64,
    pub host: Option<String>,
}

pub fn req(method: &str, path_and_query: &str) -> Req {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    Req {
        method: method.into(),
        path: path.into(),
        query: query.into(),
        headers: Vec::new(),
        body: Vec::new(),
        auth: Auth::SharedKey,
        version: Some(VERSION.into()),
        date_offset: 0,
        host: None,
    }
}

impl Req {
    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }
    pub fn body(mut self, b: impl Into<Vec<u8>>) -> Self {
        self.body = b.into();
        self
    }
    pub fn auth(mut self, a: Auth) -> Self {
        self.auth = a;
        self
    }
    pub fn version(mut self, v: Option<&str>) -> Self {
        self.version = v.map(str::to_owned);
        self
    }
    pub fn date_offset(mut self, s: i64) -> Self {
        self.date_offset = s;
        self
    }
    pub fn host(mut self, h: &str) -> Self {
        self.host = Some(h.into());
        self
    }
    pub fn message(self, text: &str) -> Self {
        let body = format!("<QueueMessage><MessageText>{text}</MessageText></QueueMessage>");
        self.header("Content-Type", "application/xml").body(body)
    }
}

impl Server {
    pub fn now_header(&self, offset: i64) -> String {
        let t = to_offset(hematite_engine::Clock::now(&*self.clock));
        format_rfc1123(t + time::Duration::seconds(offset))
    }

    pub fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
    }

    /// The full header list a request will carry, signed as `r.auth` says.
    pub fn prepare(&self, r: &Req) -> Vec<(String, String)> {
        let mut headers = vec![(
            "Host".to_owned(),
            r.host.clone().unwrap_or_else(|| self.addr.to_string()),
        )];
        let has_date = r
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("x-ms-date") || k.eq_ignore_ascii_case("Date"));
        if !has_date {
            headers.push(("x-ms-date".into(), self.now_header(r.date_offset)));
        }
        if let Some(v) = &r.version {
            headers.push(("x-ms-version".into(), v.clone()));
        }
        headers.extend(r.headers.iter().cloned());
        let has_length = r
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("Content-Length"));
        if !has_length
            && (!r.body.is_empty() || matches!(r.method.as_str(), "PUT" | "POST" | "DELETE"))
        {
            headers.push(("Content-Length".into(), r.body.len().to_string()));
        }
        let scheme = match r.auth {
            Auth::None => return headers,
            Auth::SharedKeyLite => AuthScheme::SharedKeyLite,
            Auth::SharedKey | Auth::WrongKey => AuthScheme::SharedKey,
        };
        let refs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let signable = SignableRequest {
            method: &r.method,
            path: &r.path,
            raw_query: &r.query,
            headers: &refs,
        };
        let version = r.version.as_deref().and_then(|v| v.parse().ok());
        let sts =
            shared_key::string_to_sign(&signable, ACCOUNT, version, scheme, Variant::default());
        let k = if matches!(r.auth, Auth::WrongKey) {
            vec![7u8; 64]
        } else {
            key()
        };
        let sig = shared_key::sign(&k, &sts);
        let name = if matches!(scheme, AuthScheme::SharedKey) {
            "SharedKey"
        } else {
            "SharedKeyLite"
        };
        headers.push(("Authorization".into(), format!("{name} {ACCOUNT}:{sig}")));
        headers
    }

    pub async fn send(&self, r: Req) -> Resp {
        let raw = self.raw_request(&r);
        self.raw(&raw, r.method == "HEAD").await
    }

    /// The bytes of a signed request: head and body.
    pub fn raw_request(&self, r: &Req) -> Vec<u8> {
        let headers = self.prepare(r);
        let target = if r.query.is_empty() {
            r.path.clone()
        } else {
            format!("{}?{}", r.path, r.query)
        };
        let mut raw = format!("{} {} HTTP/1.1\r\n", r.method, target).into_bytes();
        for (k, v) in &headers {
            raw.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
        }
        raw.extend_from_slice(b"\r\n");
        raw.extend_from_slice(&r.body);
        raw
    }

    /// Sends raw bytes on a fresh connection and reads one response.
    pub async fn raw(&self, bytes: &[u8], head: bool) -> Resp {
        let mut s = TcpStream::connect(self.addr).await.expect("connect");
        if let Some(tls) = &self.tls {
            let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
            let mut s = tls.connect(name, s).await.expect("TLS handshake");
            s.write_all(bytes).await.expect("write");
            return read_response(&mut s, head).await;
        }
        s.write_all(bytes).await.expect("write");
        read_response(&mut s, head).await
    }
}

pub async fn read_response<S: AsyncRead + Unpin>(s: &mut S, head: bool) -> Resp {
    let mut buf = Vec::new();
    read_response_from(s, &mut buf, head).await
}

/// Reads one response, consuming it from `buf` and leaving any bytes of the next one there
/// (pipelined responses arrive together).
pub async fn read_response_from<S: AsyncRead + Unpin>(
    s: &mut S,
    buf: &mut Vec<u8>,
    head: bool,
) -> Resp {
    loop {
        let mut hdrs = [httparse::EMPTY_HEADER; 256];
        let mut resp = httparse::Response::new(&mut hdrs);
        if let Ok(httparse::Status::Complete(n)) = resp.parse(buf) {
            let status = resp.code.expect("status");
            let headers: Vec<(String, String)> = resp
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_owned(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect();
            let len: usize = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .map(|(_, v)| v.parse().expect("length"))
                .unwrap_or(0);
            let want = if head || status == 100 { 0 } else { len };
            while buf.len() < n + want {
                read_some(s, buf).await;
            }
            let body = buf[n..n + want].to_vec();
            buf.drain(..n + want);
            return Resp {
                status,
                headers,
                body: String::from_utf8(body).expect("utf-8 body"),
            };
        }
        read_some(s, buf).await;
    }
}

async fn read_some<S: AsyncRead + Unpin>(s: &mut S, buf: &mut Vec<u8>) {
    let mut chunk = [0u8; 8192];
    let k = tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk))
        .await
        .expect("response in time")
        .expect("read");
    assert!(k > 0, "connection closed before a full response");
    buf.extend_from_slice(&chunk[..k]);
}

pub fn q(path: &str) -> String {
    format!("/{ACCOUNT}/{path}")
}
