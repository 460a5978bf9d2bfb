//! The REST front against a hostile client, in-process on port 0: framing that could smuggle
//! requests past a proxy, slowloris heads and bodies, readers that never read, a flood at the
//! connection cap, a spent response budget, and the Azure answers for inputs only a hostile or
//! broken client sends. Each test opens with the defect it guards against.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{q, req, start, start_custom, Auth, Custom};
use hematite_net::budget::Budget;
use hematite_net::conns::Registry;
use hematite_queue_api::server::default_limits;
use hematite_queue_api::Options;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the server closes the connection (or `limit` passes); returns what arrived.
async fn read_to_close(s: &mut TcpStream, limit: Duration) -> Option<Vec<u8>> {
    let mut all = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(all),
            Ok(Ok(n)) => all.extend_from_slice(&buf[..n]),
        }
    }
}

/// Sends `raw` on a fresh connection and reads until the server closes it (5 s at most); the
/// answer as text.
async fn answer_then_close(s: &common::Server, raw: &[u8]) -> String {
    let mut c = TcpStream::connect(s.addr).await.expect("connect");
    c.write_all(raw).await.expect("write");
    let got = read_to_close(&mut c, Duration::from_secs(5))
        .await
        .expect("the connection is closed");
    String::from_utf8_lossy(&got).into_owned()
}

fn responses_in(bytes: &[u8]) -> usize {
    String::from_utf8_lossy(bytes).matches("HTTP/1.1 ").count()
}

#[tokio::test]
async fn ambiguous_framing_is_refused_and_nothing_after_it_is_served() {
    // With Content-Length and chunked together, the chunked reading won and the connection
    // stayed open, so the bytes after the chunked body ran as a second request: a proxy that
    // framed by Content-Length would have let one client inject requests.
    let s = start().await;
    s.send(req("PUT", &q("victim"))).await;
    let smuggled = format!("DELETE {} HTTP/1.1\r\nHost: x\r\n\r\n", q("victim"));
    let raw = format!(
        "POST {} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}",
        q("victim/messages")
    );
    let text = answer_then_close(&s, raw.as_bytes()).await;
    assert!(text.starts_with("HTTP/1.1 400 "), "{text}");
    assert_eq!(
        responses_in(text.as_bytes()),
        1,
        "nothing after the refused request is served"
    );
    s.send(req("GET", &q("victim?comp=metadata")))
        .await
        .assert_ok();
}

#[tokio::test]
async fn transfer_encodings_other_than_chunked_get_501_and_a_close() {
    // `Transfer-Encoding` was matched by suffix: `gzip, chunked` bodies were stored still
    // compressed and `xchunked` was decoded as chunked.
    let s = start().await;
    for te in [
        "gzip, chunked",
        "xchunked",
        "notchunked",
        "chunked, chunked",
        "identity",
    ] {
        let raw = format!(
            "POST {} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: {te}\r\n\r\n0\r\n\r\n",
            q("q/messages")
        );
        let text = answer_then_close(&s, raw.as_bytes()).await;
        assert!(text.starts_with("HTTP/1.1 501 "), "{te}: {text}");
        assert!(text.contains("The request transfer encoding type is not supported."));
        assert!(text.contains("Connection: close"));
    }
}

#[tokio::test]
async fn malformed_lengths_and_two_hosts_are_refused() {
    let s = start().await;
    let cases = [
        format!("PUT {} HTTP/1.1\r\nHost: x\r\nContent-Length: +0\r\n\r\n", q("a")),
        format!("PUT {} HTTP/1.1\r\nHost: x\r\nContent-Length: 0, 0\r\n\r\n", q("a")),
        format!("PUT {} HTTP/1.1\r\nHost: x\r\nHost: devstoreaccount1.queue.example\r\nContent-Length: 0\r\n\r\n", q("a")),
    ];
    for raw in &cases {
        let r = s.raw(raw.as_bytes(), false).await;
        assert_eq!(r.status, 400, "{raw}");
        assert_eq!(r.header("Connection"), Some("close"));
    }
}

#[tokio::test]
async fn absolute_form_targets_are_served() {
    // RFC 9112 §3.2.2: a server must accept the absolute form; it was answered 400.
    let s = start().await;
    let mut raw = s.raw_request(&req("PUT", &q("absolute")));
    let target = format!("http://{}{}", s.addr, q("absolute"));
    let line_end = raw.iter().position(|b| *b == b'\r').expect("request line");
    raw.splice(..line_end, format!("PUT {target} HTTP/1.1").into_bytes());
    assert_eq!(s.raw(&raw, false).await.status, 201);
    s.send(req("GET", &q("absolute?comp=metadata")))
        .await
        .assert_ok();
}

#[tokio::test]
async fn a_hundred_and_fifty_metadata_pairs_are_accepted() {
    // 150 pairs (2.4 KB) were refused because the parser counted headers (about 125 fitted);
    // Azure's limit is 8 KiB of metadata.
    let s = start().await;
    s.send(req("PUT", &q("meta"))).await;
    let mut r = req("PUT", &q("meta?comp=metadata"));
    for i in 0..150 {
        r = r.header(&format!("x-ms-meta-k{i}"), "v");
    }
    s.send(r).await.assert_ok();
    let got = s.send(req("GET", &q("meta?comp=metadata"))).await;
    let pairs = got
        .headers
        .iter()
        .filter(|(k, _)| k.starts_with("x-ms-meta-"))
        .count();
    assert_eq!(pairs, 150);
}

#[tokio::test]
async fn conflicting_repeated_query_parameters_are_refused() {
    // `?comp=acl&comp=metadata` was served as whichever came first.
    let s = start().await;
    s.send(req("PUT", &q("twice"))).await;
    let r = s.send(req("GET", &q("twice?comp=acl&comp=metadata"))).await;
    assert_eq!(r.status, 400, "{}", r.body);
}

#[tokio::test]
async fn continue_is_sent_only_to_admitted_requests() {
    // `100 Continue` went out before authentication and the length check, inviting a client
    // with a bad signature to upload its whole body.
    let s = start().await;
    s.send(req("PUT", &q("upload"))).await;
    let mut bad = req("POST", &q("upload/messages"))
        .auth(Auth::WrongKey)
        .header("Expect", "100-continue")
        .message("x");
    bad.body.clear();
    let mut raw = s.raw_request(&bad);
    // Declare a gigabyte that will never be sent.
    let text = String::from_utf8(raw.clone()).expect("ascii");
    raw = text
        .replace("Content-Length: 0", "Content-Length: 1073741824")
        .into_bytes();
    let text = answer_then_close(&s, &raw).await;
    assert!(text.starts_with("HTTP/1.1 403 "), "{text}");
    assert!(!text.contains("100 Continue"));

    // Signed, but longer than any message may be: 413 before the body.
    let big = req("POST", &q("upload/messages"))
        .header("Expect", "100-continue")
        .header("Content-Length", "1073741824");
    let text = answer_then_close(&s, &s.raw_request(&big)).await;
    assert!(text.starts_with("HTTP/1.1 413 "), "{text}");
    assert!(!text.contains("100 Continue"));
}

fn short_deadlines() -> Custom {
    let mut c = Custom::default();
    c.limits.head = Duration::from_secs(1);
    c.limits.body = Duration::from_secs(1);
    c
}

#[tokio::test]
async fn a_trickled_head_is_closed_at_its_deadline_while_others_are_served() {
    // The timeout was per read, so one byte a second held a connection forever.
    let s = start_custom(short_deadlines()).await;
    let mut slow = TcpStream::connect(s.addr).await.expect("connect");
    let started = Instant::now();
    let trickle = async {
        for b in b"PUT /devstoreaccount1/slowloris HTTP/1.1\r\nHost: x\r\n" {
            if slow.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let served = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let t = Instant::now();
        s.send(req("PUT", &q("meanwhile"))).await;
        t.elapsed()
    };
    let ((), waited) = tokio::join!(trickle, served);
    assert!(
        waited < Duration::from_secs(1),
        "another client waited {waited:?}"
    );
    let got = read_to_close(&mut slow, Duration::from_secs(10)).await;
    assert!(got.is_some(), "the trickled head was never cut off");
    assert!(started.elapsed() < Duration::from_secs(8));
}

#[tokio::test]
async fn a_trickled_body_is_closed_at_its_deadline() {
    let s = start_custom(short_deadlines()).await;
    s.send(req("PUT", &q("slowbody"))).await;
    let mut r = req("POST", &q("slowbody/messages")).message("hello");
    let full = s.raw_request(&r);
    r.body.clear();
    let head_len =
        full.len() - "<QueueMessage><MessageText>hello</MessageText></QueueMessage>".len();
    let mut c = TcpStream::connect(s.addr).await.expect("connect");
    c.write_all(&full[..head_len + 3]).await.expect("write");
    let started = Instant::now();
    let got = read_to_close(&mut c, Duration::from_secs(10)).await;
    assert!(got.is_some(), "the stalled body was never cut off");
    assert!(started.elapsed() >= Duration::from_millis(900));
}

/// A queue with `n` messages of 48 KiB each.
async fn queue_of_large_messages(s: &common::Server, name: &str, n: usize) {
    s.send(req("PUT", &q(name))).await;
    let text = "m".repeat(48 * 1024);
    for _ in 0..n {
        s.send(req("POST", &q(&format!("{name}/messages"))).message(&text))
            .await;
    }
}

#[tokio::test]
async fn a_client_that_does_not_read_is_disconnected() {
    // Nothing ever timed out a write: a client that sent two large peeks and never read the
    // answers pinned 3.5 MB of server memory for as long as it liked.
    let registry = Registry::new(64);
    let mut c = Custom {
        registry: registry.clone(),
        ..Custom::default()
    };
    // A rate no loopback reader that stopped reading can keep: the window of 4 KiB must go
    // out within 4 ms.
    c.limits.min_send_rate = 1_000_000;
    let s = start_custom(c).await;
    queue_of_large_messages(&s, "big", 32).await;
    let peek = s.raw_request(&req(
        "GET",
        &q("big/messages?peekonly=true&numofmessages=32"),
    ));
    // Enough pipelined answers (2 MB each) to outgrow every socket buffer on the way.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let mut c = socket.connect(s.addr).await.expect("connect");
    let many: Vec<u8> = std::iter::repeat_n(peek, 8).flatten().collect();
    c.write_all(&many).await.expect("write");
    let deadline = Instant::now() + Duration::from_secs(10);
    while registry.active() > 0 {
        assert!(
            Instant::now() < deadline,
            "the non-reading client is still connected"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(c);
}

#[tokio::test]
async fn at_the_cap_the_oldest_slowloris_makes_room_for_a_new_client() {
    // With no cap, a flood of trickling connections took every descriptor and denied service
    // to everyone else.
    let registry = Registry::new(4);
    let s = start_custom(Custom {
        registry: registry.clone(),
        ..Custom::default()
    })
    .await;
    let mut flood = Vec::new();
    for _ in 0..4 {
        let mut c = TcpStream::connect(s.addr).await.expect("connect");
        c.write_all(b"PUT /devstoreaccount1/x HTTP/1.1\r\n")
            .await
            .expect("write");
        flood.push(c);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    while registry.active() < 4 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let t = Instant::now();
    s.send(req("PUT", &q("newcomer"))).await.assert_status(201);
    assert!(t.elapsed() < Duration::from_secs(1));
    let first = read_to_close(&mut flood[0], Duration::from_secs(5)).await;
    assert!(first.is_some(), "the oldest flooding connection was shed");
}

#[tokio::test]
async fn a_spent_response_budget_answers_server_busy() {
    // Many slow readers holding large answers could grow the server without bound; the
    // budget bounds the bytes they hold, and a request that finds no room is told to retry.
    let budget = Budget::new(256 << 10, None);
    let mut c = Custom {
        options: Options {
            budget: budget.clone(),
            ..Options::default()
        },
        ..Custom::default()
    };
    c.limits = default_limits();
    let s = start_custom(c).await;
    queue_of_large_messages(&s, "held", 8).await;
    let peek = s.raw_request(&req(
        "GET",
        &q("held/messages?peekonly=true&numofmessages=8"),
    ));
    // Two pipelined answers that are never read: the first fills the socket buffers, the
    // second waits in the server holding its reservation.
    let mut holder = TcpStream::connect(s.addr).await.expect("connect");
    let many: Vec<u8> = std::iter::repeat_n(peek, 64).flatten().collect();
    let _ = tokio::time::timeout(Duration::from_secs(2), holder.write_all(&many)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while budget.available() > 0 {
        assert!(Instant::now() < deadline, "the budget never filled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = s
        .send(req(
            "GET",
            &q("held/messages?peekonly=true&numofmessages=8"),
        ))
        .await;
    r.assert_error(503, "ServerBusy");
    drop(holder);
    let deadline = Instant::now() + Duration::from_secs(10);
    while budget.available() < budget.total() {
        assert!(
            Instant::now() < deadline,
            "a closed reader kept its reservation"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.send(req(
        "GET",
        &q("held/messages?peekonly=true&numofmessages=8"),
    ))
    .await
    .assert_ok();
    let _ = Arc::clone(&budget);
}

#[tokio::test]
async fn cors_answers_match_the_service() {
    let s = start().await;
    // Over 2 KiB of settings (excluding tags) in total.
    let origins = vec!["http://o".to_owned() + &"o".repeat(200); 5].join(",");
    let rule = format!("<CorsRule><AllowedOrigins>{origins}</AllowedOrigins><AllowedMethods>GET</AllowedMethods><MaxAgeInSeconds>1</MaxAgeInSeconds><ExposedHeaders></ExposedHeaders><AllowedHeaders></AllowedHeaders></CorsRule>");
    let body = format!(
        "<StorageServiceProperties><Cors>{}</Cors></StorageServiceProperties>",
        rule.repeat(2)
    );
    let r = s
        .send(req("PUT", &q("?restype=service&comp=properties")).body(body))
        .await;
    r.assert_error(400, "InvalidXmlDocument");
    assert!(
        r.body
            .contains("<LineNumber>0</LineNumber><LinePosition>0</LinePosition><Reason />"),
        "{}",
        r.body
    );

    // A preflight without the method it asks about.
    let r = s
        .send(
            req("OPTIONS", &q("any/messages"))
                .auth(Auth::None)
                .header("Origin", "http://a.com"),
        )
        .await;
    r.assert_error(400, "InvalidHeaderValue");
    assert_eq!(
        r.xml("Message")
            .map(|m| m.lines().next().unwrap_or_default().to_owned()),
        Some("A required CORS header is not present.".to_owned())
    );
}

#[tokio::test]
async fn a_queue_name_of_the_wrong_length_says_so() {
    let s = start().await;
    for name in ["ab", &"a".repeat(64)] {
        let r = s.send(req("PUT", &q(name))).await;
        r.assert_error(400, "OutOfRangeInput");
        assert!(r
            .body
            .contains("The specified resource name length is not within the permissible limits."));
    }
}

/// The REST front over the default store on a disk whose faults the test sets.
async fn on_faulty_disk(
    name: &str,
) -> (common::Server, Arc<hematite_store_embedded::faults::Faults>) {
    use hematite_store_embedded::faults::{Faults, FaultyDisk};
    use hematite_store_embedded::{EmbeddedStore, Options as StoreOptions};
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("hostile-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let faults = Faults::new();
    let store = EmbeddedStore::open_with_disk(
        &dir,
        StoreOptions {
            segment_bytes: 1 << 20,
            ..StoreOptions::default()
        },
        Arc::new(hematite_engine::SystemClock),
        Arc::new(FaultyDisk::new(faults.clone())),
    )
    .expect("open");
    let s = start_custom(Custom {
        store: Arc::new(store),
        ..Custom::default()
    })
    .await;
    (s, faults)
}

#[tokio::test]
async fn on_a_full_disk_reads_are_served_and_only_writes_get_503() {
    // After ENOSPC every request answered 503 ServerBusy, reads included, for as long as the
    // disk stayed full. Azure keeps serving reads.
    use std::sync::atomic::Ordering;
    let (s, faults) = on_faulty_disk("full").await;
    s.send(req("PUT", &q("full"))).await.assert_status(201);
    s.send(req("POST", &q("full/messages")).message("kept"))
        .await
        .assert_status(201);
    faults.space_left.store(0, Ordering::SeqCst);
    let text = "t".repeat(60 * 1024);
    let mut refused = None;
    for _ in 0..200 {
        let r = s
            .send(req("POST", &q("full/messages")).message(&text))
            .await;
        if r.status != 201 {
            refused = Some(r);
            break;
        }
    }
    refused
        .expect("the disk filled")
        .assert_error(503, "ServerBusy");
    s.send(req("GET", &q("full/messages?peekonly=true")))
        .await
        .assert_ok();
    s.send(req("GET", &q("full?comp=metadata")))
        .await
        .assert_ok();
    s.send(req("GET", &q("?comp=list"))).await.assert_ok();
    s.send(req("GET", &q("?restype=service&comp=properties")))
        .await
        .assert_ok();
    s.send(req("GET", &q("full?comp=acl"))).await.assert_ok();
}

#[tokio::test]
async fn a_store_outage_during_a_stored_policy_lookup_is_503() {
    // The lookup's error was swallowed into "signed identifier does not exist" (403
    // AuthenticationFailed), which SDKs do not retry.
    use hematite_queue_protocol::auth::sas::{ServicePermissions, ServiceSasBuilder};
    use std::sync::atomic::Ordering;
    let (s, faults) = on_faulty_disk("policy").await;
    s.send(req("PUT", &q("guarded"))).await.assert_status(201);
    let acl = "<SignedIdentifiers><SignedIdentifier><Id>p1</Id><AccessPolicy><Permission>r</Permission></AccessPolicy></SignedIdentifier></SignedIdentifiers>";
    s.send(req("PUT", &q("guarded?comp=acl")).body(acl))
        .await
        .assert_ok();
    let now = time::OffsetDateTime::now_utc();
    let token = ServiceSasBuilder {
        identifier: Some("p1".into()),
        expiry: Some(now + time::Duration::hours(1)),
        permissions: None::<ServicePermissions>,
        ..ServiceSasBuilder::default()
    }
    .to_query(common::ACCOUNT, "guarded", &common::key());
    let peek = || {
        req(
            "GET",
            &format!("{}&{token}", q("guarded/messages?peekonly=true")),
        )
        .auth(Auth::None)
        .version(None)
    };
    s.send(peek()).await.assert_ok();
    // A dying disk: the next write fails its fsync and the store stays out of service.
    faults.fail_sync.store(true, Ordering::SeqCst);
    s.send(req("POST", &q("guarded/messages")).message("x"))
        .await
        .assert_error(500, "InternalError");
    s.send(peek()).await.assert_error(503, "ServerBusy");
    faults.fail_sync.store(false, Ordering::SeqCst);
}
