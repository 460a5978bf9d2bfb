//! `hematite queue|message|sas` as a user runs them: the real binary against a live
//! `hematite serve --in-memory` on a free port, checking stdout (table and `--json`), stderr
//! and exit statuses.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command as StdCommand, Stdio};

use assert_cmd::Command;
use serde_json::Value;

/// A `hematite serve --in-memory` process, killed on drop.
struct Server {
    child: Child,
    connection_string: String,
    endpoint: String,
}

impl Server {
    fn start() -> Self {
        let mut child = StdCommand::new(env!("CARGO_BIN_EXE_hematite"))
            .args([
                "serve",
                "--in-memory",
                "--listen",
                "127.0.0.1:0",
                "--no-servicebus",
            ])
            .env_remove("AZURITE_ACCOUNTS")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let connection_string = loop {
            line.clear();
            assert!(
                reader.read_line(&mut line).unwrap() > 0,
                "banner ended early"
            );
            let l = line.trim();
            if l.starts_with("DefaultEndpointsProtocol=") {
                break l.to_owned();
            }
        };
        let endpoint = connection_string
            .split(';')
            .find_map(|kv| kv.strip_prefix("QueueEndpoint="))
            .unwrap()
            .to_owned();
        Self {
            child,
            connection_string,
            endpoint,
        }
    }

    /// `hematite ARGS…` aimed at this server through the environment variable.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_hematite"));
        c.args(args)
            .env("AZURE_STORAGE_CONNECTION_STRING", &self.connection_string)
            .env("RUST_LOG", "off");
        c
    }

    /// Runs, expects success, returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs with `--json`, expects success, parses stdout.
    fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        serde_json::from_str(&self.ok(&args)).unwrap()
    }

    /// Runs, expects failure with `code`; returns stderr.
    fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.cmd(args).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(code),
            "{args:?}: stdout {} stderr {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stderr).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn queue_commands() {
    let s = Server::start();
    assert_eq!(
        s.ok(&[
            "queue",
            "create",
            "orders",
            "-m",
            "color=red",
            "-m",
            "size=xl"
        ]),
        "created queue orders\n"
    );
    assert_eq!(
        s.ok(&[
            "queue",
            "create",
            "orders",
            "-m",
            "color=red",
            "-m",
            "size=xl"
        ]),
        "queue orders already exists with the same metadata\n"
    );
    let err = s.fails(&["queue", "create", "orders"], 4);
    assert!(
        err.starts_with("error: QueueAlreadyExists (409): "),
        "{err}"
    );
    assert_eq!(
        s.json(&["queue", "create", "billing"]),
        serde_json::json!({"name": "billing", "created": true})
    );

    assert_eq!(s.ok(&["queue", "list"]), "NAME\nbilling\norders\n");
    assert_eq!(
        s.ok(&["queue", "list", "--metadata", "--prefix", "ord"]),
        "NAME    METADATA\norders  color=red, size=xl\n"
    );
    assert_eq!(
        s.json(&["queue", "list", "--metadata"]),
        serde_json::json!([
            {"name": "billing", "metadata": {}},
            {"name": "orders", "metadata": {"color": "red", "size": "xl"}},
        ])
    );

    assert_eq!(
        s.ok(&["queue", "show", "orders"]),
        "NAME      orders\nMESSAGES  0\nMETADATA  color=red, size=xl\n"
    );
    assert_eq!(
        s.json(&["queue", "show", "orders"]),
        serde_json::json!({"name": "orders", "approximate_message_count": 0, "metadata": {"color": "red", "size": "xl"}})
    );

    assert_eq!(
        s.ok(&["queue", "metadata", "orders"]),
        "KEY    VALUE\ncolor  red\nsize   xl\n"
    );
    assert_eq!(
        s.json(&["queue", "metadata", "orders", "owner=ops", "tier=a=b"]),
        serde_json::json!({"owner": "ops", "tier": "a=b"})
    );
    assert_eq!(
        s.json(&["queue", "metadata", "orders", "--clear"]),
        serde_json::json!({})
    );

    assert_eq!(
        s.ok(&["queue", "delete", "orders"]),
        "deleted queue orders\n"
    );
    let err = s.fails(&["queue", "delete", "orders"], 3);
    assert!(err.starts_with("error: QueueNotFound (404)"), "{err}");
    assert_eq!(
        s.ok(&["queue", "delete", "orders", "--if-exists"]),
        "queue orders does not exist\n"
    );
    assert_eq!(s.ok(&["queue", "list", "--prefix", "ord"]), "NAME\n");
}

#[test]
fn message_commands() {
    let s = Server::start();
    s.ok(&["queue", "create", "jobs"]);

    // One message from the argument.
    let sent = s.json(&[
        "message",
        "send",
        "jobs",
        "first <&> message",
        "--ttl",
        "-1",
    ]);
    assert!(sent["message_id"].as_str().is_some_and(|id| !id.is_empty()));
    assert!(sent["expiration_time"]
        .as_str()
        .unwrap()
        .starts_with("9999-12-31"));
    let table = s.ok(&["message", "send", "jobs", "second", "--ttl", "3600"]);
    assert!(table.starts_with("ID  "), "{table}");
    assert!(table.contains("\nPOP RECEIPT  "), "{table}");

    // Bulk from stdin: one message per line.
    let lines: String = (0..50).map(|i| format!("bulk {i}\n")).collect();
    let out = s
        .cmd(&["message", "send", "jobs", "--concurrency", "8"])
        .write_stdin(lines)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "sent 50 message(s) to jobs\n"
    );
    // No terminal, no progress bar.
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bulk = s
        .cmd(&["message", "send", "jobs", "-", "--json"])
        .write_stdin("x\r\ny\n")
        .output()
        .unwrap();
    assert!(bulk.status.success());
    let v: Value = serde_json::from_slice(&bulk.stdout).unwrap();
    assert_eq!(v, serde_json::json!({"queue": "jobs", "sent": 2}));
    assert_eq!(
        s.json(&["queue", "show", "jobs"])["approximate_message_count"],
        54
    );

    // Peek: the oldest first, nothing leased.
    let peek = s.ok(&["message", "peek", "jobs"]);
    let rows: Vec<&str> = peek.lines().collect();
    assert_eq!(rows.len(), 2, "{peek}");
    assert!(
        rows[0].starts_with("ID  ") && rows[0].ends_with("TEXT"),
        "{peek}"
    );
    assert!(rows[1].ends_with("  first <&> message"), "{peek}");
    let peeked = s.json(&["message", "peek", "jobs", "-n", "32"]);
    assert_eq!(peeked.as_array().unwrap().len(), 32);
    assert_eq!(peeked[0]["text"], "first <&> message");
    assert_eq!(peeked[0]["dequeue_count"], 0);

    // A received table shows the receipt column.
    let table = s.ok(&["message", "receive", "jobs", "-n", "2"]);
    assert!(table.starts_with("ID "), "{table}");
    assert!(table.contains("POP RECEIPT"), "{table}");
    assert_eq!(table.lines().count(), 3, "{table}");

    assert_eq!(s.ok(&["message", "clear", "jobs"]), "cleared queue jobs\n");
    assert_eq!(
        s.json(&["queue", "show", "jobs"])["approximate_message_count"],
        0
    );
    assert_eq!(
        s.ok(&["message", "peek", "jobs"]),
        "ID  DEQUEUES  INSERTED  EXPIRES  TEXT\n"
    );

    // Receive, update, delete on a queue of one.
    s.ok(&["queue", "create", "edits"]);
    s.ok(&["message", "send", "edits", "draft"]);
    let got = s.json(&["message", "receive", "edits", "--visibility-timeout", "60"]);
    let m = &got.as_array().unwrap()[0];
    assert_eq!(
        (m["text"].as_str(), m["dequeue_count"].as_u64()),
        (Some("draft"), Some(1))
    );
    let id = m["message_id"].as_str().unwrap().to_owned();
    let receipt = m["pop_receipt"].as_str().unwrap().to_owned();
    assert_eq!(
        s.json(&["message", "peek", "edits"]),
        serde_json::json!([]),
        "leased"
    );

    // Update: new text, visible again at once, new receipt.
    let upd = s.json(&[
        "message",
        "update",
        "edits",
        &id,
        "--pop-receipt",
        &receipt,
        "--text",
        "final",
    ]);
    let new_receipt = upd["pop_receipt"].as_str().unwrap().to_owned();
    assert_ne!(new_receipt, receipt);
    let peeked = s.json(&["message", "peek", "edits"]);
    assert_eq!(
        (
            peeked[0]["message_id"].as_str(),
            peeked[0]["text"].as_str(),
            peeked[0]["dequeue_count"].as_u64()
        ),
        (Some(id.as_str()), Some("final"), Some(1))
    );
    // The table form of update, hiding it again for a minute.
    let table = s.ok(&[
        "message",
        "update",
        "edits",
        &id,
        "--pop-receipt",
        &new_receipt,
        "--visibility-timeout",
        "60",
    ]);
    assert!(
        table.starts_with(&format!("ID           {id}\nPOP RECEIPT  ")),
        "{table}"
    );
    let newest = table
        .lines()
        .find_map(|l| l.strip_prefix("POP RECEIPT  "))
        .unwrap()
        .to_owned();
    assert_eq!(s.json(&["message", "peek", "edits"]), serde_json::json!([]));

    // Older receipts are stale; the newest one deletes.
    let err = s.fails(
        &[
            "message",
            "delete",
            "edits",
            &id,
            "--pop-receipt",
            &new_receipt,
        ],
        3,
    );
    assert!(err.starts_with("error: MessageNotFound (404)"), "{err}");
    assert_eq!(
        s.ok(&["message", "delete", "edits", &id, "--pop-receipt", &newest]),
        format!("deleted message {id}\n")
    );
    assert_eq!(
        s.json(&["queue", "show", "edits"])["approximate_message_count"],
        0
    );
}

#[test]
fn sas_commands() {
    let s = Server::start();
    s.ok(&["queue", "create", "shared"]);

    let token = s.ok(&["sas", "queue", "shared", "--permissions", "raup"]);
    let token = token.trim();
    assert!(
        token.contains("sp=raup") && token.contains("sig="),
        "{token}"
    );
    let via_sas = format!("QueueEndpoint={};SharedAccessSignature={token}", s.endpoint);
    s.ok(&[
        "message",
        "send",
        "shared",
        "via sas",
        "--connection-string",
        &via_sas,
    ]);
    let peeked = s.json(&["message", "peek", "shared", "--connection-string", &via_sas]);
    assert_eq!(peeked[0]["text"], "via sas");

    // Read-only: sending is refused with the SAS code and exit status 5.
    let ro = s.ok(&["sas", "queue", "shared", "--permissions", "r"]);
    let ro = format!(
        "QueueEndpoint={};SharedAccessSignature={}",
        s.endpoint,
        ro.trim()
    );
    let err = s.fails(
        &["message", "send", "shared", "x", "--connection-string", &ro],
        5,
    );
    assert!(
        err.starts_with("error: AuthorizationPermissionMismatch (403)"),
        "{err}"
    );

    // Account SAS, JSON with the URL.
    let acct = s.json(&[
        "sas",
        "account",
        "--permissions",
        "rl",
        "--resource-types",
        "sco",
        "--expiry",
        "2099-01-01T00:00:00Z",
    ]);
    let token = acct["token"].as_str().unwrap();
    assert!(
        token.contains("srt=sco") && token.contains("sp=rl"),
        "{token}"
    );
    assert_eq!(acct["expiry"], "2099-01-01T00:00:00Z");
    assert!(acct["url"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{}/?", s.endpoint)));
    let list = format!("QueueEndpoint={};SharedAccessSignature={token}", s.endpoint);
    assert_eq!(
        s.ok(&["queue", "list", "--connection-string", &list]),
        "NAME\nshared\n"
    );

    // A stored policy supplies the permissions.
    let with_policy = s.json(&["sas", "queue", "shared", "--policy", "p1"]);
    assert!(with_policy["token"].as_str().unwrap().contains("si=p1"));
    assert_eq!(with_policy["expiry"], Value::Null);

    // Usage errors.
    s.fails(&["sas", "queue", "shared"], 2);
    s.fails(&["sas", "queue", "shared", "--permissions", "rwx"], 2);
    s.fails(
        &[
            "sas",
            "queue",
            "shared",
            "--permissions",
            "r",
            "--expiry",
            "tomorrow",
        ],
        2,
    );
    // A SAS connection string cannot sign tokens.
    s.fails(
        &[
            "sas",
            "queue",
            "shared",
            "--permissions",
            "r",
            "--connection-string",
            &list,
        ],
        2,
    );
}

#[test]
fn errors_are_one_line_with_the_code_and_a_status() {
    let s = Server::start();
    let err = s.fails(&["queue", "show", "missing"], 3);
    assert!(
        err.starts_with(
            "error: QueueNotFound (404): The specified queue does not exist. [request id "
        ),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    s.fails(&["message", "peek", "missing"], 3);
    s.fails(&["message", "send", "missing", "x"], 3);

    // The service's validation comes through with its code.
    let err = s.fails(&["message", "receive", "missing", "-n", "40"], 1);
    assert!(err.contains("OutOfRangeQueryParameterValue (400)"), "{err}");

    // Usage: unknown flag, bad TTL, bad metadata pair, bad connection string.
    s.fails(&["queue", "list", "--bogus"], 2);
    s.fails(&["message", "send", "q1x", "x", "--ttl", "0"], 2);
    s.fails(&["queue", "create", "abc", "-m", "novalue"], 2);
    let err = s.fails(
        &["queue", "list", "--connection-string", "AccountName=only"],
        2,
    );
    assert!(err.starts_with("error: invalid configuration"), "{err}");

    // A wrong key: refused.
    let wrong = format!(
        "AccountName=devstoreaccount1;AccountKey=d3Jvbmc=;QueueEndpoint={}",
        s.endpoint
    );
    let err = s.fails(&["queue", "list", "--connection-string", &wrong], 5);
    assert!(
        err.starts_with("error: AuthenticationFailed (403)"),
        "{err}"
    );

    // The flag wins over the environment variable.
    let out = s
        .cmd(&["queue", "list", "--connection-string", &s.connection_string])
        .env("AZURE_STORAGE_CONNECTION_STRING", "garbage")
        .output()
        .unwrap();
    assert!(out.status.success());
}

#[test]
fn a_pop_receipt_starting_with_a_hyphen_is_a_value_not_a_flag() {
    // Receipts are URL-safe base64, so one in 64 starts with '-': clap took it for a flag and
    // `message update` failed as a usage error (a flaky run of `message_commands` showed it).
    let s = Server::start();
    s.ok(&["queue", "create", "hyphens"]);
    let id = "00000000-0000-0000-0000-000000000000";
    for verb in ["delete", "update"] {
        let err = s.fails(
            &[
                "message",
                verb,
                "hyphens",
                id,
                "--pop-receipt",
                "-AAAAAAAAAAAAAAAAAAAAA",
            ],
            3,
        );
        assert!(err.contains("404"), "{verb}: {err}");
    }
}
