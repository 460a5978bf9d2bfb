//! The administration API over a real socket, for what the SDK suites never send: requests
//! without a token or with a hostile body, and the first-byte choice between HTTP and AMQP.
//! The SDKs' own use of the API is tested against the binary in `compat/`.

use std::sync::Arc;
use std::time::Duration;

use hematite_engine::{Engine, MemoryStore, SystemClock};
use hematite_net::conns::Registry;
use hematite_net::listener::Setup;
use hematite_servicebus::namespace::Namespace;
use hematite_servicebus::sas::{self, Key, Rights};
use hematite_servicebus::{AmqpConfig, Ports, ServiceBus};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

struct Server {
    addr: std::net::SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn server() -> Server {
    let engine = Engine::new(Arc::new(MemoryStore::new()), Arc::new(SystemClock));
    let sb = ServiceBus::new(engine, Namespace::default())
        .await
        .expect("namespace");
    let ports = Ports::new(sb, AmqpConfig::default(), None, Duration::from_secs(5));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let setup = Setup {
        registry: Registry::new(64),
        tls: None,
        handshake_timeout: Duration::from_secs(5),
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(hematite_servicebus::serve(listener, ports, setup, async {
        let _ = rx.await;
    }));
    Server { addr, _stop: tx }
}

fn token(key: &str) -> String {
    let key = Key {
        name: "RootManageSharedAccessKey".into(),
        value: key.into(),
        rights: Rights::ALL,
    };
    let expiry = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
        + 3600;
    sas::token("http://localhost/", &key, expiry)
}

/// One request on a fresh connection; the status and the body.
async fn call(
    s: &Server,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: &[u8],
) -> (u16, String) {
    let mut conn = TcpStream::connect(s.addr).await.expect("connect");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(a) = auth {
        head.push_str(&format!("Authorization: {a}\r\n"));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes()).await.expect("write");
    // A server that answers early may close before taking the whole body.
    let _ = conn.write_all(body).await;
    let mut out = Vec::new();
    let _ = conn.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

fn entry(description: &str) -> Vec<u8> {
    format!(
        r#"<entry xmlns="http://www.w3.org/2005/Atom"><content type="application/xml">{description}</content></entry>"#
    )
    .into_bytes()
}

#[tokio::test]
async fn requests_without_a_valid_token_are_refused() {
    let s = server().await;
    let (status, body) = call(&s, "GET", "/queue.1", None, b"").await;
    assert_eq!(status, 401);
    assert!(
        body.starts_with("<Error><Code>401</Code><Detail>MissingToken"),
        "{body}"
    );
    let (status, body) = call(&s, "GET", "/queue.1", Some(&token("WRONG")), b"").await;
    assert_eq!(status, 401);
    assert!(body.contains("InvalidSignature"), "{body}");
    let (status, _) = call(&s, "GET", "/queue.1", Some("Bearer x"), b"").await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_queue_is_created_once_read_and_deleted() {
    let s = server().await;
    let auth = token("SAS_KEY_VALUE");
    let put = entry("<QueueDescription><MaxDeliveryCount>3</MaxDeliveryCount></QueueDescription>");
    let (status, body) = call(&s, "PUT", "/Orders", Some(&auth), &put).await;
    assert_eq!(status, 201, "{body}");
    assert!(
        body.contains("<title type=\"text\">Orders</title>"),
        "{body}"
    );
    let (status, body) = call(&s, "PUT", "/orders", Some(&auth), &put).await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = call(&s, "GET", "/ORDERS?api-version=2021-05", Some(&auth), b"").await;
    assert_eq!(status, 200);
    assert!(
        body.contains("<MaxDeliveryCount>3</MaxDeliveryCount>"),
        "{body}"
    );
    assert!(
        body.contains("<d2p1:ActiveMessageCount>0</d2p1:ActiveMessageCount>"),
        "{body}"
    );
    let (status, _) = call(&s, "DELETE", "/orders", Some(&auth), b"").await;
    assert_eq!(status, 200);
    // Azure answers a GET for a missing entity with an empty feed, other verbs with 404.
    let (status, body) = call(&s, "GET", "/orders", Some(&auth), b"").await;
    assert_eq!(status, 200);
    assert!(
        body.starts_with("<feed") && !body.contains("<entry"),
        "{body}"
    );
    let (status, _) = call(&s, "DELETE", "/orders", Some(&auth), b"").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn hostile_bodies_are_refused_without_harm() {
    let s = server().await;
    let auth = token("SAS_KEY_VALUE");
    let nested = format!("{}{}", "<a>".repeat(10_000), "</a>".repeat(10_000));
    for (body, want) in [
        (b"<entry".to_vec(), 400),
        (
            entry("<QueueDescription><LockDuration>forever</LockDuration></QueueDescription>"),
            400,
        ),
        // A subscription belongs under a topic's path, not at an entity's.
        (entry("<SubscriptionDescription/>"), 400),
        (nested.into_bytes(), 400),
        (
            entry(&format!(
                "<QueueDescription><UserMetadata>{}</UserMetadata></QueueDescription>",
                "x".repeat(2 << 20)
            )),
            413,
        ),
    ] {
        let (status, text) = call(&s, "PUT", "/q", Some(&auth), &body).await;
        assert_eq!(status, want, "{}", &text[..text.len().min(300)]);
        assert!(text.starts_with("<Error>"), "{text}");
    }
    let (status, body) = call(&s, "GET", "/q", Some(&auth), b"").await;
    assert_eq!(status, 200);
    assert!(!body.contains("<entry"), "nothing was created: {body}");
}

#[tokio::test]
async fn the_same_port_answers_amqp_and_http() {
    let s = server().await;
    let mut conn = TcpStream::connect(s.addr).await.expect("connect");
    // The SASL protocol header: the server answers with its own.
    conn.write_all(b"AMQP\x03\x01\x00\x00")
        .await
        .expect("write");
    let mut header = [0u8; 8];
    conn.read_exact(&mut header).await.expect("read");
    assert_eq!(&header, b"AMQP\x03\x01\x00\x00");
    let (status, body) = call(&s, "GET", "/health", None, b"").await;
    assert_eq!((status, body.as_str()), (200, r#"{"status":"healthy"}"#));
}

/// Azure's Standard namespace holds 10,000 queues and topics together; the quota also
/// bounds what a client with Manage rights can make the server hold. The 10,001st entity,
/// queue or topic, is refused with 403 until one is deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_namespace_holds_ten_thousand_queues_and_topics_at_most() {
    let s = Arc::new(server().await);
    let auth = Arc::new(token("SAS_KEY_VALUE"));
    // The default namespace comes with its configured queues.
    let (status, list) = call(&s, "GET", "/$Resources/Queues", Some(&auth), b"").await;
    assert_eq!(status, 200);
    let configured = list.matches("<entry").count();
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..8 {
        let (s, auth) = (s.clone(), auth.clone());
        workers.spawn(async move {
            for i in (configured + w..10_000).step_by(8) {
                let (path, body) = if i % 10 == 0 {
                    (format!("/t{i}"), entry("<TopicDescription/>"))
                } else {
                    (format!("/q{i}"), entry("<QueueDescription/>"))
                };
                let (status, text) = call(&s, "PUT", &path, Some(&auth), &body).await;
                assert_eq!(status, 201, "{path}: {text}");
            }
        });
    }
    while let Some(done) = workers.join_next().await {
        done.expect("worker");
    }
    for (path, body) in [
        ("/one-more", entry("<QueueDescription/>")),
        ("/one-more-topic", entry("<TopicDescription/>")),
    ] {
        let (status, text) = call(&s, "PUT", path, Some(&auth), &body).await;
        assert_eq!(status, 403, "{path}: {text}");
        assert!(text.contains("10000"), "{text}");
    }
    let (status, _) = call(&s, "DELETE", "/t9990", Some(&auth), b"").await;
    assert_eq!(status, 200, "a topic's delete frees its place");
    let body = entry("<QueueDescription/>");
    let (status, text) = call(&s, "PUT", "/one-more", Some(&auth), &body).await;
    assert_eq!(status, 201, "{text}");
}
