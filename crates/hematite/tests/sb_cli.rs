//! `hematite sb …` as a user runs it: the real binary against a live `hematite serve` with
//! Service Bus on free ports, checking stdout (table and `--json`), stderr and exit statuses.
//! The connection string comes from the server's banner, through the environment variable.

#![allow(clippy::unwrap_used)]

mod common;

use assert_cmd::Command;
use serde_json::Value;

/// The server, and commands aimed at it.
struct Server(common::ServiceBusServer);

impl Server {
    fn start() -> Self {
        Server(common::ServiceBusServer::start())
    }

    fn connection_string(&self) -> &str {
        &self.0.connection_string
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_hematite"));
        c.arg("sb")
            .args(args)
            .env("SERVICEBUS_CONNECTION_STRING", self.connection_string())
            .env("RUST_LOG", "off");
        c
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        serde_json::from_str(&self.ok(&all)).unwrap()
    }

    /// Runs, expects exit status `code`, returns stderr.
    fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.cmd(args).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(code),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stderr).unwrap()
    }
}

fn texts(messages: &Value) -> Vec<String> {
    messages
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn queues_are_created_listed_shown_updated_and_deleted() {
    let s = Server::start();
    let out = s.ok(&[
        "queue",
        "create",
        "orders",
        "--max-delivery-count",
        "3",
        "--ttl",
        "PT1H",
    ]);
    assert!(out.contains("MAX DELIVERIES         3"), "{out}");
    let err = s.fails(&["queue", "create", "Orders"], 4);
    assert!(err.starts_with("error: 409: "), "{err}");
    let list = s.json(&["queue", "list"]);
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["orders", "queue.1"]);
    let shown = s.json(&["queue", "show", "orders"]);
    assert_eq!(shown["default_message_time_to_live"], "PT1H");
    assert_eq!(shown["active_message_count"], 0);
    let updated = s.json(&[
        "queue",
        "update",
        "orders",
        "--lock-duration",
        "30",
        "--status",
        "SendDisabled",
    ]);
    assert_eq!(updated["lock_duration"], "PT30S");
    assert_eq!(
        updated["max_delivery_count"], 3,
        "properties not given are kept"
    );
    assert_eq!(updated["status"], "SendDisabled");
    let err = s.fails(&["send", "orders", "x"], 1);
    assert!(err.contains("com.microsoft:entity-disabled"), "{err}");
    s.ok(&["queue", "delete", "orders"]);
    let err = s.fails(&["queue", "show", "orders"], 3);
    assert!(err.starts_with("error: 404: "), "{err}");
    s.fails(
        &["queue", "create", "orders", "--lock-duration", "PT10M"],
        1,
    );
    s.fails(&["queue", "create", "orders", "--ttl", "soon"], 2);
}

#[test]
fn messages_are_sent_peeked_received_and_settled() {
    let s = Server::start();
    s.ok(&["queue", "create", "q"]);
    let out = s
        .cmd(&["send", "q"])
        .write_stdin("one\ntwo\r\nthree\nfour\n")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "sent 4 message(s) to q\n"
    );
    let peeked = s.json(&["peek", "q", "-n", "10"]);
    assert_eq!(texts(&peeked), ["one", "two", "three", "four"]);
    assert_eq!(peeked[0]["sequence_number"], 1);
    // Abandoned: back first, delivered once more.
    let got = s.json(&["receive", "q", "--then", "abandon"]);
    assert_eq!(texts(&got), ["one"]);
    let got = s.json(&["receive", "q", "-n", "2"]);
    assert_eq!(texts(&got), ["one", "two"]);
    assert_eq!(got[0]["delivery_count"], 1);
    let table = s.ok(&[
        "receive",
        "q",
        "--mode",
        "receive-and-delete",
        "-n",
        "5",
        "--wait",
        "1",
    ]);
    assert!(table.starts_with("SEQ  ID"), "{table}");
    assert!(table.contains("three") && table.contains("four"), "{table}");
    assert_eq!(s.json(&["peek", "q"]), Value::Array(vec![]));
    assert_eq!(s.json(&["queue", "show", "q"])["active_message_count"], 0);
    let err = s.fails(&["receive", "missing"], 3);
    assert!(err.starts_with("error: amqp:not-found: "), "{err}");
}

#[test]
fn the_dead_letter_queue_is_listed_resubmitted_and_purged() {
    let s = Server::start();
    s.ok(&["queue", "create", "q"]);
    // More than a purge's 256 credits: its receive-and-delete link must renew them itself
    // (it stalled after 256 once, and purged no more).
    let lines: String = (0..300).map(|i| format!("m{i}\n")).collect();
    s.cmd(&["send", "q"]).write_stdin(lines).assert().success();
    let args = [
        "receive",
        "q",
        "-n",
        "300",
        "--then",
        "dead-letter",
        "--reason",
        "broken",
    ];
    assert_eq!(s.json(&args).as_array().unwrap().len(), 300);
    let dead = s.json(&["dlq", "list", "q", "-n", "3"]);
    assert_eq!(texts(&dead), ["m0", "m1", "m2"]);
    assert_eq!(dead[0]["dead_letter_reason"], "broken");
    let resubmitted = s.json(&["dlq", "resubmit", "q", "-n", "2"]);
    assert_eq!(resubmitted["resubmitted"], 2);
    assert_eq!(texts(&s.json(&["peek", "q", "-n", "10"])), ["m0", "m1"]);
    assert_eq!(s.json(&["dlq", "purge", "q"])["purged"], 298);
    assert_eq!(s.json(&["dlq", "list", "q"]), Value::Array(vec![]));
    let shown = s.json(&["queue", "show", "q"]);
    assert_eq!(shown["active_message_count"], 2);
    assert_eq!(shown["dead_letter_message_count"], 0);
}

#[test]
fn a_wrong_key_is_refused_on_both_protocols() {
    let s = Server::start();
    let wrong = s.connection_string().replace("SAS_KEY_VALUE", "WRONG");
    for args in [&["send", "queue.1", "x"][..], &["queue", "list"]] {
        let out = s
            .cmd(args)
            .env("SERVICEBUS_CONNECTION_STRING", &wrong)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(5), "{args:?}");
    }
    s.fails(
        &["--connection-string", "Endpoint=sb://h", "queue", "list"],
        2,
    );
}
