//! A data directory written by on-disk format 2, committed, and opened by every later build.
//!
//! The store's format will change (the engine is becoming protocol-neutral for Service Bus);
//! whatever the change, a directory of today's users must open with every queue, definition,
//! policy, document, message, lease and receipt intact. `tests/fixtures/format-2/` was written
//! by `write_the_format_2_fixture` (ignored; run by hand only to make the fixture anew) with
//! 64 KiB segments, so it spans several files while staying small; `expected.json` says what
//! it holds.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hematite_engine::clock::test_clock;
use hematite_engine::{
    AccessPolicy, Engine, ManualClock, MessageId, Metadata, PopReceipt, QueueRef, SendOptions,
    Store, Timestamp, Ttl,
};
use hematite_store_embedded::{EmbeddedStore, Options};
use serde_json::{json, Value};

const ACCOUNT: &str = "fixtureacct";

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format-2")
}

fn q(name: &str) -> QueueRef<'_> {
    QueueRef::new(ACCOUNT, name)
}

fn open(dir: &Path, clock: &Arc<ManualClock>) -> (EmbeddedStore, Engine) {
    let options = Options {
        segment_bytes: 64 * 1024,
        ..Options::default()
    };
    let store = EmbeddedStore::open(dir, options, clock.clone()).expect("open");
    let engine = Engine::new(Arc::new(store.clone()) as Arc<dyn Store>, clock.clone());
    (store, engine)
}

fn opts(delay_s: u64, ttl: Ttl) -> SendOptions {
    SendOptions {
        visibility_delay: Duration::from_secs(delay_s),
        ttl,
    }
}

fn message_json(m: &hematite_engine::Message, leased: bool) -> Value {
    json!({
        "id": m.id.to_string(),
        "body": String::from_utf8_lossy(&m.body),
        "dequeue_count": m.dequeue_count,
        "visible_at": m.visible_at.as_millis(),
        "expires_at": m.expires_at.as_millis(),
        "receipt": leased.then(|| m.receipt.0.to_string()),
    })
}

#[tokio::test]
#[ignore = "writes the committed fixture; run by hand only to make it anew"]
async fn write_the_format_2_fixture() {
    let root = fixture_dir();
    let dir = root.join("data");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let clock = Arc::new(test_clock());
    let (store, e) = open(&dir, &clock);

    e.create_queue(
        q("alpha"),
        Metadata(vec![
            ("Owner".into(), "fixture".into()),
            ("k".into(), "v".into()),
        ]),
    )
    .await
    .expect("alpha");
    e.set_access_policies(
        q("alpha"),
        vec![AccessPolicy {
            id: "p1".into(),
            start: Some(Timestamp::from_millis(1_704_067_200_000)),
            expiry: Some(Timestamp::from_millis(1_893_456_000_000)),
            permissions: Some("raup".into()),
        }],
    )
    .await
    .expect("acl");
    e.create_queue(q("beta"), Metadata::default())
        .await
        .expect("beta");
    e.create_queue(q("gone"), Metadata::default())
        .await
        .expect("gone");
    e.send(
        q("gone"),
        b"lost with its queue".to_vec(),
        opts(0, Ttl::Never),
    )
    .await
    .expect("send");
    e.delete_queue(q("gone")).await.expect("delete queue");
    e.create_queue(q("cleared"), Metadata::default())
        .await
        .expect("cleared");
    for i in 0..3 {
        e.send(
            q("cleared"),
            format!("c{i}").into_bytes(),
            opts(0, Ttl::Never),
        )
        .await
        .expect("send");
    }
    e.clear_messages(q("cleared")).await.expect("clear");
    e.swap_account_document(ACCOUNT, "service-properties", None, b"<Props/>".to_vec())
        .await
        .expect("document");

    // alpha: five messages, two leased (one of them updated with a new body), one deleted,
    // one invisible for a while after its put, one with a week's TTL.
    let week = Ttl::After(Duration::from_secs(7 * 86_400));
    let mut sent = Vec::new();
    for i in 0..5 {
        let ttl = if i == 4 { week } else { Ttl::Never };
        sent.push(
            e.send(q("alpha"), format!("m{i}").into_bytes(), opts(0, ttl))
                .await
                .expect("send"),
        );
    }
    clock.advance(Duration::from_secs(10));
    let got = e
        .receive(q("alpha"), 3, Duration::from_secs(600))
        .await
        .expect("receive");
    e.delete_message(q("alpha"), got[0].id, got[0].receipt)
        .await
        .expect("delete m0");
    let updated = e
        .update_message(
            q("alpha"),
            got[1].id,
            got[1].receipt,
            Duration::from_secs(900),
            Some(b"m1 updated".to_vec()),
        )
        .await
        .expect("update m1");
    let leased = got[2].clone();
    let delayed = e
        .send(q("alpha"), b"later".to_vec(), opts(3600, Ttl::Never))
        .await
        .expect("delayed");

    // beta: enough bodies to cross several 64 KiB segments.
    let mut beta = Vec::new();
    for i in 0..12 {
        let body = format!("{i:02}{}", "b".repeat(20 * 1024)).into_bytes();
        beta.push(
            e.send(q("beta"), body, opts(0, Ttl::Never))
                .await
                .expect("send"),
        );
    }
    let now = hematite_engine::Clock::now(&*clock).as_millis();
    drop(e);
    drop(store);

    let expected = json!({
        "format": 2,
        "now": now,
        "account": ACCOUNT,
        "document": {"key": "service-properties", "value": "<Props/>"},
        "queues": ["alpha", "beta", "cleared"],
        "alpha": {
            "metadata": [["Owner", "fixture"], ["k", "v"]],
            "policy": {"id": "p1", "start": 1_704_067_200_000i64, "expiry": 1_893_456_000_000i64, "permissions": "raup"},
            "visible": [message_json(&sent[3], false), message_json(&sent[4], false)],
            "leased": [message_json(&updated, true), message_json(&leased, true)],
            "delayed": message_json(&delayed, false),
        },
        "beta": beta.iter().map(|m| message_json(m, false)).collect::<Vec<_>>(),
    });
    std::fs::write(
        root.join("expected.json"),
        serde_json::to_string_pretty(&expected).expect("json"),
    )
    .expect("write expected");
}

/// Copies the committed fixture where the test may write (opening writes to the log).
fn scratch_copy() -> PathBuf {
    let to = common::scratch("format2");
    std::fs::create_dir_all(&to).expect("mkdir");
    for entry in std::fs::read_dir(fixture_dir().join("data")).expect("fixture data") {
        let path = entry.expect("entry").path();
        if path.file_name().is_some_and(|n| n != "LOCK") {
            std::fs::copy(&path, to.join(path.file_name().expect("name"))).expect("copy");
        }
    }
    to
}

fn id(v: &Value) -> MessageId {
    v["id"].as_str().expect("id").parse().expect("message id")
}

fn receipt(v: &Value) -> PopReceipt {
    PopReceipt(
        v["receipt"]
            .as_str()
            .expect("receipt")
            .parse()
            .expect("u128"),
    )
}

#[tokio::test]
async fn the_format_2_fixture_opens_with_everything_intact() {
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture_dir().join("expected.json")).expect("expected.json"),
    )
    .expect("json");
    let dir = scratch_copy();
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(
        expected["now"].as_i64().expect("now"),
    )));
    let (_store, e) = open(&dir, &clock);

    let names: Vec<String> = e
        .list_queues(ACCOUNT, "", None, 10)
        .await
        .expect("list")
        .queues
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["alpha", "beta", "cleared"]);
    assert_eq!(
        e.account_document(ACCOUNT, "service-properties")
            .await
            .expect("document"),
        Some(b"<Props/>".to_vec())
    );
    assert_eq!(
        e.queue_info(q("cleared"))
            .await
            .expect("info")
            .message_count,
        0
    );

    let alpha = &expected["alpha"];
    let info = e.queue_info(q("alpha")).await.expect("info");
    assert_eq!(
        info.metadata,
        Metadata(vec![
            ("Owner".into(), "fixture".into()),
            ("k".into(), "v".into())
        ])
    );
    assert_eq!(
        info.message_count, 5,
        "two visible, two leased, one delayed"
    );
    let policies = e.access_policies(q("alpha")).await.expect("policies");
    assert_eq!(policies.len(), 1);
    assert_eq!(policies[0].id, "p1");
    assert_eq!(policies[0].permissions.as_deref(), Some("raup"));
    assert_eq!(
        policies[0].expiry.map(|t| t.as_millis()),
        alpha["policy"]["expiry"].as_i64()
    );

    // The visible messages, in order, as they were.
    let peeked = e.peek(q("alpha"), 32).await.expect("peek");
    let want = alpha["visible"].as_array().expect("visible");
    assert_eq!(peeked.len(), want.len());
    for (m, w) in peeked.iter().zip(want) {
        assert_eq!(m.id, id(w));
        assert_eq!(
            String::from_utf8_lossy(&m.body),
            w["body"].as_str().expect("body")
        );
        assert_eq!(
            m.expires_at.as_millis(),
            w["expires_at"].as_i64().expect("exp")
        );
        assert_eq!(
            i64::from(m.dequeue_count),
            w["dequeue_count"].as_i64().expect("n")
        );
    }
    // The leases hold, and their receipts still work (the updated body too).
    for w in alpha["leased"].as_array().expect("leased") {
        let m = e
            .update_message(q("alpha"), id(w), receipt(w), Duration::ZERO, None)
            .await
            .expect("the lease's receipt still works");
        assert_eq!(
            String::from_utf8_lossy(&m.body),
            w["body"].as_str().expect("body")
        );
        assert_eq!(
            i64::from(m.dequeue_count),
            w["dequeue_count"].as_i64().expect("n")
        );
    }
    // The delayed message appears at its time, not before.
    let delayed = &alpha["delayed"];
    let visible_at = delayed["visible_at"].as_i64().expect("visible_at");
    let before: Vec<_> = e
        .peek(q("alpha"), 32)
        .await
        .expect("peek")
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert!(!before.contains(&id(delayed)));
    clock.set(Timestamp::from_millis(visible_at));
    let after: Vec<_> = e
        .peek(q("alpha"), 32)
        .await
        .expect("peek")
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert!(after.contains(&id(delayed)));

    // beta, across several segments, byte for byte.
    let beta = expected["beta"].as_array().expect("beta");
    let got = e.peek(q("beta"), 32).await.expect("peek beta");
    assert_eq!(got.len(), beta.len());
    for (m, w) in got.iter().zip(beta) {
        assert_eq!(m.id, id(w));
        assert_eq!(
            String::from_utf8_lossy(&m.body),
            w["body"].as_str().expect("body")
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
