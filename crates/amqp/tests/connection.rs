//! A connection served over an in-memory pipe, driven byte by byte as a client would: the
//! handshake when a client pipelines it, and how malformed input ends a connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hematite_amqp::frame::{decode_performative, next_frame, write_amqp, FrameKind};
use hematite_amqp::types::definitions::{AmqpError, ConnectionError, ErrorCondition};
use hematite_amqp::types::performatives::{Begin, Open, Performative};
use hematite_amqp::types::sasl::SaslInit;
use hematite_amqp::{serve, Attaching, Config, Peer, Service};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

struct Accepting;

impl Service for Accepting {
    type Connection = ();

    fn authenticate(&self, _: &SaslInit) -> bool {
        true
    }

    fn connect(&self, _: &Peer) -> Result<Arc<()>, hematite_amqp::types::definitions::Error> {
        Ok(Arc::new(()))
    }

    fn attach(&self, _: &Arc<()>, link: Attaching) {
        drop(link);
    }
}

const SASL_HEADER: &[u8] = b"AMQP\x03\x01\x00\x00";
const AMQP_HEADER: &[u8] = b"AMQP\x00\x01\x00\x00";

fn sasl_init() -> Vec<u8> {
    let init = SaslInit {
        mechanism: "ANONYMOUS".into(),
        initial_response: None,
        hostname: None,
    };
    let body = hematite_amqp::serde_amqp::to_vec(&init).expect("encodes");
    let mut out = ((body.len() + 8) as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&[2, 1, 0, 0]);
    out.extend_from_slice(&body);
    out
}

fn open() -> Vec<u8> {
    open_with_idle(None)
}

fn open_with_idle(idle_time_out: Option<u32>) -> Vec<u8> {
    let mut out = Vec::new();
    let open = Open {
        container_id: "test".into(),
        hostname: None,
        max_frame_size: 65536.into(),
        channel_max: 255.into(),
        idle_time_out,
        outgoing_locales: None,
        incoming_locales: None,
        offered_capabilities: None,
        desired_capabilities: None,
        properties: None,
    };
    write_amqp(&mut out, 0, &Performative::Open(open), &[]);
    out
}

fn begin() -> Vec<u8> {
    let mut out = Vec::new();
    let begin = Begin {
        remote_channel: None,
        next_outgoing_id: 0,
        incoming_window: 100,
        outgoing_window: 100,
        handle_max: 255.into(),
        offered_capabilities: None,
        desired_capabilities: None,
        properties: None,
    };
    write_amqp(&mut out, 0, &Performative::Begin(begin), &[]);
    out
}

fn start() -> DuplexStream {
    start_with(Arc::new(Accepting), Config::default())
}

fn start_with<S: Service>(service: Arc<S>, config: Config) -> DuplexStream {
    let (client, server) = tokio::io::duplex(1 << 20);
    let addr: SocketAddr = "127.0.0.1:1".parse().expect("addr");
    tokio::spawn(serve(
        server,
        addr,
        service,
        Arc::new(config),
        std::future::pending(),
    ));
    client
}

/// Reads until `want` AMQP frames (after the two headers and the SASL frames) have come, or
/// the server closes the pipe; returns the performatives.
async fn read_performatives(client: &mut DuplexStream, want: usize) -> Vec<Performative> {
    let mut buf = Vec::new();
    let mut got = Vec::new();
    let mut at = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while got.len() < want {
        loop {
            if buf[at..].starts_with(b"AMQP") && buf.len() >= at + 8 {
                at += 8;
                continue;
            }
            match next_frame(&buf[at..], 1 << 20).expect("valid frame") {
                Some((frame, used)) => {
                    if frame.kind == FrameKind::Amqp && !frame.body.is_empty() {
                        got.push(decode_performative(frame.body).expect("decodes").0);
                    }
                    at += used;
                }
                None => break,
            }
        }
        if got.len() >= want {
            break;
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline, client.read(&mut chunk))
            .await
            .unwrap_or_else(|_| panic!("timed out with {got:?}"))
            .expect("read");
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    got
}

/// The async Python SDK writes header, open, begin and attach before the server's open has
/// come back; the begin arrived in the same read as the open and sat in the buffer unanswered
/// until the client wrote again, which it never did.
#[tokio::test]
async fn frames_pipelined_behind_the_open_are_answered() {
    let mut client = start();
    let mut hello = SASL_HEADER.to_vec();
    hello.extend(sasl_init());
    hello.extend_from_slice(AMQP_HEADER);
    hello.extend(open());
    hello.extend(begin());
    client.write_all(&hello).await.expect("write");
    let got = read_performatives(&mut client, 2).await;
    assert!(matches!(got[0], Performative::Open(_)), "{got:?}");
    match &got[1] {
        Performative::Begin(b) => assert_eq!(b.remote_channel, Some(0)),
        other => panic!("expected begin, got {other:?}"),
    }
}

async fn opened() -> DuplexStream {
    opened_on(start()).await
}

async fn opened_on(mut client: DuplexStream) -> DuplexStream {
    let mut hello = SASL_HEADER.to_vec();
    hello.extend(sasl_init());
    hello.extend_from_slice(AMQP_HEADER);
    hello.extend(open());
    client.write_all(&hello).await.expect("write");
    let got = read_performatives(&mut client, 1).await;
    assert!(matches!(got[0], Performative::Open(_)));
    client
}

fn close_condition(got: &[Performative]) -> Option<ErrorCondition> {
    match got.last() {
        Some(Performative::Close(c)) => c.error.as_ref().map(|e| e.condition.clone()),
        _ => None,
    }
}

#[tokio::test]
async fn a_frame_that_is_no_performative_closes_with_decode_error() {
    for body in [
        &[0x00, 0x53, 0x10][..],               // an open's descriptor with no list
        &[0x00, 0x53, 0x99, 0x45],             // an unknown descriptor
        &[0xa1, 0x03, b'a', b'b', b'c'],       // not described at all
        &[0x00, 0x53, 0x13, 0xc0, 0xff, 0x01], // a flow whose list runs past the frame
    ] {
        let mut client = opened().await;
        let mut frame = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&[2, 0, 0, 0]);
        frame.extend_from_slice(body);
        client.write_all(&frame).await.expect("write");
        let got = read_performatives(&mut client, 1).await;
        assert_eq!(
            close_condition(&got),
            Some(ErrorCondition::AmqpError(AmqpError::DecodeError)),
            "{body:02x?}: {got:?}"
        );
    }
}

#[tokio::test]
async fn a_bad_frame_header_closes_with_framing_error() {
    for header in [
        [0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0], // larger than the max frame size
        [0, 0, 0, 8, 1, 0, 0, 0],             // data offset below the header
        [0, 0, 0, 8, 2, 7, 0, 0],             // an unknown frame type
    ] {
        let mut client = opened().await;
        client.write_all(&header).await.expect("write");
        let got = read_performatives(&mut client, 1).await;
        assert_eq!(
            close_condition(&got),
            Some(ErrorCondition::ConnectionError(
                ConnectionError::FramingError
            )),
            "{header:02x?}: {got:?}"
        );
    }
}

/// Keeps every delivery it is given until told to let them go.
#[derive(Default)]
struct Hoarding {
    kept: Arc<std::sync::Mutex<Vec<hematite_amqp::Delivery>>>,
    max_message_size: u64,
}

impl Service for Hoarding {
    type Connection = ();

    fn authenticate(&self, _: &SaslInit) -> bool {
        true
    }

    fn connect(&self, _: &Peer) -> Result<Arc<()>, hematite_amqp::types::definitions::Error> {
        Ok(Arc::new(()))
    }

    fn attach(&self, _: &Arc<()>, link: Attaching) {
        let kept = self.kept.clone();
        let max = self.max_message_size;
        tokio::spawn(async move {
            let reply = hematite_amqp::AttachReply {
                credit: 100,
                max_message_size: Some(max),
                ..Default::default()
            };
            let Some(mut link) = link.accept(reply).await else {
                return;
            };
            while let Some(event) = link.events.recv().await {
                if let hematite_amqp::LinkEvent::Transfer(d) = event {
                    kept.lock().expect("lock").push(d);
                }
            }
        });
    }
}

/// Link credit bounds one link, not a connection of many links nor a process of many
/// connections: the bytes of messages the service still holds are counted, and past the
/// connection's limit nothing more is read until the service lets some go.
#[tokio::test]
async fn reading_stops_while_the_peers_messages_hold_too_much() {
    let service = Arc::new(Hoarding {
        max_message_size: 32 * 1024,
        ..Hoarding::default()
    });
    let config = Config {
        max_inbound_per_connection: 64 * 1024,
        ..Config::default()
    };
    let mut client = opened_on(start_with(service.clone(), config)).await;
    attach_sender(&mut client).await;
    let body = vec![0x42u8; 30 * 1024];
    let sent = tokio::spawn(async move {
        for id in 0..10u32 {
            client
                .write_all(&transfer_frame(id, false, &body))
                .await
                .expect("write");
        }
        client
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let held = service.kept.lock().expect("lock").len();
    assert!(
        (2..10).contains(&held),
        "reading should stop at the limit (64 KiB = 2-3 messages): {held} taken"
    );
    service.kept.lock().expect("lock").clear();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let more = service.kept.lock().expect("lock").len();
    assert!(more >= 1, "released bytes let reading go on: {more}");
    drop(sent);
}

/// The inbound limit must not stall a message the link allows: with links taking 1 MiB, a
/// 300 KiB message arrives whole on a connection whose configured limit is 64 KiB.
#[tokio::test]
async fn a_message_larger_than_the_configured_limit_still_arrives_when_its_link_allows_it() {
    let service = Arc::new(Hoarding {
        max_message_size: 1 << 20,
        ..Hoarding::default()
    });
    let config = Config {
        max_inbound_per_connection: 64 * 1024,
        ..Config::default()
    };
    let mut client = opened_on(start_with(service.clone(), config)).await;
    attach_sender(&mut client).await;
    let body = vec![7u8; 300 * 1024];
    let chunks: Vec<&[u8]> = body.chunks(60 * 1024).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let more = i + 1 < chunks.len();
        client
            .write_all(&transfer_frame(0, more, chunk))
            .await
            .expect("write");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let kept = service.kept.lock().expect("lock");
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].payload.len(), 300 * 1024);
}

/// Begin and attach a link on which the client sends; waits for the answers and the credit.
async fn attach_sender(client: &mut DuplexStream) {
    use hematite_amqp::types::definitions::{ReceiverSettleMode, Role, SenderSettleMode};
    use hematite_amqp::types::messaging::Target;
    use hematite_amqp::types::performatives::Attach;
    let mut out = begin();
    let attach = Attach {
        name: "s".into(),
        handle: 0.into(),
        role: Role::Sender,
        snd_settle_mode: SenderSettleMode::Unsettled,
        rcv_settle_mode: ReceiverSettleMode::First,
        source: None,
        target: Some(Box::new(Target::builder().address("q").build().into())),
        unsettled: None,
        incomplete_unsettled: false,
        initial_delivery_count: Some(0),
        max_message_size: None,
        offered_capabilities: None,
        desired_capabilities: None,
        properties: None,
    };
    write_amqp(&mut out, 0, &Performative::Attach(attach), &[]);
    client.write_all(&out).await.expect("write");
    // Begin, attach and the flow granting credit.
    read_performatives(client, 3).await;
}

/// One transfer frame of delivery `id` on handle 0.
fn transfer_frame(id: u32, more: bool, payload: &[u8]) -> Vec<u8> {
    use hematite_amqp::types::performatives::Transfer;
    let t = Transfer {
        handle: 0.into(),
        delivery_id: Some(id),
        delivery_tag: Some(serde_bytes::ByteBuf::from(id.to_be_bytes().to_vec())),
        message_format: Some(0),
        settled: Some(false),
        more,
        rcv_settle_mode: None,
        state: None,
        resume: false,
        aborted: false,
        batchable: false,
    };
    let mut frame = Vec::new();
    write_amqp(&mut frame, 0, &Performative::Transfer(t), payload);
    frame
}

/// A peer announcing an idle timeout of 1 ms once made the connection loop write empty
/// frames without pause (the heartbeat was always due): heartbeats go at most once a second.
#[tokio::test]
async fn a_tiny_idle_timeout_does_not_make_the_server_spin() {
    let mut client = start();
    let mut hello = SASL_HEADER.to_vec();
    hello.extend(sasl_init());
    hello.extend_from_slice(AMQP_HEADER);
    hello.extend(open_with_idle(Some(1)));
    client.write_all(&hello).await.expect("write");
    let mut total = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(1500);
    let mut buf = [0u8; 65536];
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, client.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        total += n;
    }
    // Headers, SASL frames and the open are a few hundred bytes; then one or two 8-byte
    // heartbeats in 1.5 s, not thousands.
    assert!(total < 1024, "{total} bytes in 1.5 s");
}
