//! The client against scripted fake servers: retries with injected failures, and what reqwest
//! really puts on the wire.
//!
//! Each fake is a few lines of tokio that read one request head (and body) at a time, record
//! it, and answer with whatever the test's script says for that request number.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hematite_client::connection_string::DEV_KEY;
use hematite_client::{ClientOptions, Error, Metadata, QueueServiceClient};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the fake does with request number `n` (0-based).
enum Answer {
    /// A raw response head (the fake adds `Content-Length: 0`).
    Status(&'static str),
    /// Read the request and never answer.
    Hang,
}

struct Fake {
    addr: SocketAddr,
    /// Every request head received, in order, as raw text.
    requests: Arc<Mutex<Vec<String>>>,
}

impl Fake {
    async fn start(script: impl Fn(usize) -> Answer + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        let script = Arc::new(script);
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let log = log.clone();
                let script = script.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    loop {
                        let Some(head) = read_request(&mut sock, &mut buf).await else {
                            return;
                        };
                        let n = {
                            let mut log = log.lock().unwrap();
                            log.push(head);
                            log.len() - 1
                        };
                        match script(n) {
                            Answer::Status(line) => {
                                let resp = format!("{line}\r\nContent-Length: 0\r\n\r\n");
                                if sock.write_all(resp.as_bytes()).await.is_err() {
                                    return;
                                }
                            }
                            Answer::Hang => {
                                tokio::time::sleep(Duration::from_secs(30)).await;
                                return;
                            }
                        }
                    }
                });
            }
        });
        Self { addr, requests }
    }

    fn client(&self, options: ClientOptions) -> QueueServiceClient {
        QueueServiceClient::from_connection_string_with_options(
            &format!(
                "AccountName=devstoreaccount1;AccountKey={DEV_KEY};QueueEndpoint=http://{}/devstoreaccount1",
                self.addr
            ),
            options,
        )
        .unwrap()
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// Reads one request (head and `Content-Length` body) from `sock`, keeping leftovers in
/// `buf`; returns the head, or `None` at end of stream.
async fn read_request(sock: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())
                        .flatten()
                })
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let mut chunk = [0u8; 4096];
                let n = sock.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            buf.drain(..end + 4 + len);
            return Some(head);
        }
        let mut chunk = [0u8; 4096];
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn options(max_retries: u32) -> ClientOptions {
    ClientOptions {
        max_retries,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(50),
        timeout: Duration::from_millis(500),
    }
}

const QUEUE_NOT_FOUND: &str = "HTTP/1.1 404 The specified queue does not exist.\r\nx-ms-error-code: QueueNotFound\r\nx-ms-request-id: req-404";

#[tokio::test]
async fn retries_5xx_then_succeeds() {
    let fake = Fake::start(|n| match n {
        0 => Answer::Status("HTTP/1.1 503 Server Busy\r\nx-ms-error-code: ServerBusy"),
        1 => Answer::Status("HTTP/1.1 500 Internal Server Error"),
        _ => Answer::Status("HTTP/1.1 201 Created"),
    })
    .await;
    let q = fake.client(options(3)).queue_client("q1");
    assert_eq!(
        q.create(&Metadata::new()).await.unwrap(),
        hematite_client::CreateOutcome::Created
    );
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 3);
    // Every attempt is re-signed with a fresh date but keeps its client request id.
    let id = |r: &str| {
        r.lines()
            .find(|l| l.starts_with("x-ms-client-request-id:"))
            .map(str::to_owned)
    };
    assert!(id(&reqs[0]).is_some());
    assert!(reqs.iter().all(|r| id(r) == id(&reqs[0])));
    assert!(reqs
        .iter()
        .all(|r| r.contains("authorization: SharedKey devstoreaccount1:")));
}

#[tokio::test]
async fn retries_408_but_not_404() {
    let fake = Fake::start(|n| match n {
        0 => Answer::Status("HTTP/1.1 408 Request Timeout"),
        _ => Answer::Status(QUEUE_NOT_FOUND),
    })
    .await;
    let e = fake
        .client(options(5))
        .queue_client("q1")
        .delete()
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(404));
    assert_eq!(e.code(), Some("QueueNotFound"));
    assert_eq!(e.request_id(), Some("req-404"));
    // One 408 retried, then the 404 is final: two requests, not six.
    assert_eq!(fake.requests().len(), 2);
}

#[tokio::test]
async fn gives_up_after_max_retries() {
    let fake =
        Fake::start(|_| Answer::Status("HTTP/1.1 503 Server Busy\r\nx-ms-error-code: ServerBusy"))
            .await;
    let e = fake
        .client(options(2))
        .queue_client("q1")
        .clear_messages()
        .await
        .unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(503), Some("ServerBusy")));
    assert_eq!(fake.requests().len(), 3, "first try + 2 retries");

    let fake = Fake::start(|_| Answer::Status("HTTP/1.1 500 Oops")).await;
    let e = fake
        .client(options(0))
        .queue_client("q1")
        .clear_messages()
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(500));
    assert_eq!(fake.requests().len(), 1, "retries disabled");
}

#[tokio::test]
async fn retries_a_timeout() {
    let fake = Fake::start(|n| match n {
        0 => Answer::Hang,
        _ => Answer::Status("HTTP/1.1 204 No Content"),
    })
    .await;
    let started = Instant::now();
    fake.client(options(2))
        .queue_client("q1")
        .clear_messages()
        .await
        .unwrap();
    assert_eq!(fake.requests().len(), 2);
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "waited for the timeout"
    );

    // Always hanging: a transport error after the retries.
    let fake = Fake::start(|_| Answer::Hang).await;
    let e = fake
        .client(options(1))
        .queue_client("q1")
        .clear_messages()
        .await
        .unwrap_err();
    assert!(matches!(&e, Error::Transport(t) if t.is_timeout()), "{e}");
    assert_eq!(fake.requests().len(), 2);
}

#[tokio::test]
async fn what_reqwest_puts_on_the_wire() {
    let fake = Fake::start(|_| Answer::Status("HTTP/1.1 201 Created")).await;
    let q = fake.client(options(0)).queue_client("q1");
    let md: Metadata = [("Color".to_owned(), "Red".to_owned())].into();
    q.create(&md).await.unwrap();
    let head = &fake.requests()[0];
    assert!(
        head.starts_with("PUT /devstoreaccount1/q1 HTTP/1.1\r\n"),
        "{head}"
    );
    // reqwest (through the http crate) lowercases every header name: the documented
    // limitation. The value keeps its case.
    assert!(head.contains("\r\nx-ms-meta-color: Red"), "{head}");
    assert!(!head.contains("x-ms-meta-Color"), "{head}");
    assert!(head.contains("\r\nx-ms-version: 2026-10-06"), "{head}");
    assert!(head.contains("\r\nx-ms-date: "), "{head}");
}
