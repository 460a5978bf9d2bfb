//! `hematite bench` against a live server: a short smoke run per scenario whose numbers must be
//! sane (operations happened, no errors). No timing assertions: speed belongs in
//! `docs/benchmarks.md`, not in tests.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

/// A live in-memory server, killed when dropped.
struct Server {
    child: Child,
    endpoint: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// `hematite bench --endpoint <this server> --json <args>`.
    fn bench(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_hematite"))
            .args(["bench", "--endpoint", &self.endpoint, "--json"])
            .args(args)
            .output()
            .expect("run bench")
    }
}

fn serve() -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hematite"))
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
        .expect("spawn server");
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("banner");
    let addr = first
        .split("http://")
        .nth(1)
        .expect("address")
        .trim()
        .to_owned();
    Server {
        child,
        endpoint: format!("http://{addr}/devstoreaccount1"),
    }
}

/// The number after `"key":` in a flat JSON object.
fn number(json: &str, key: &str) -> f64 {
    let pat = format!("\"{key}\":");
    let start = json
        .find(&pat)
        .unwrap_or_else(|| panic!("{key} missing in {json}"))
        + pat.len();
    let end = json[start..]
        .find([',', '}'])
        .map_or(json.len(), |i| start + i);
    json[start..end]
        .parse()
        .unwrap_or_else(|_| panic!("{key} not a number in {json}"))
}

#[test]
fn every_scenario_runs_without_errors() {
    let server = serve();
    for args in [
        vec!["--scenario", "put"],
        vec!["--scenario", "cycle", "--prefill", "200"],
        vec!["--scenario", "mixed", "--prefill", "100"],
        vec!["--scenario", "put", "--rate", "200"],
    ] {
        let out = server.bench(&[&["--clients", "4", "--duration", "1s"], &args[..]].concat());
        let json = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{args:?}: {json} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(number(&json, "ops") > 0.0, "{args:?}: {json}");
        assert_eq!(number(&json, "errors"), 0.0, "{args:?}: {json}");
        assert!(number(&json, "ops_per_s") > 0.0, "{args:?}: {json}");
        let p50 = number(&json, "p50");
        let max = number(&json, "max");
        assert!(p50 > 0.0 && p50 <= max, "{args:?}: {json}");
        if args.contains(&"--rate") {
            // Paced at 200/s for a second: roughly that many, never a flood.
            assert!(number(&json, "ops") <= 260.0, "{json}");
        }
    }
}

#[test]
fn warmup_ops_are_reported_apart_from_the_measured_window() {
    let out = serve().bench(&[
        "--clients",
        "4",
        "--rate",
        "200",
        "--warmup",
        "500ms",
        "--duration",
        "500ms",
    ]);
    let json = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{json}");
    let (measured, warmup) = json.split_once("\"warmup\":").expect("a warmup object");
    // Paced at 200/s: about 100 ops in each half second, and the measured window is only the
    // second half.
    let (ops, warm_ops) = (number(measured, "ops"), number(warmup, "ops"));
    assert!((60.0..=130.0).contains(&ops), "{json}");
    assert!((60.0..=130.0).contains(&warm_ops), "{json}");
    assert!(number(measured, "duration_s") < 0.9, "{json}");
    assert_eq!(number(warmup, "errors"), 0.0, "{json}");
}

#[cfg(target_os = "linux")]
#[test]
fn the_cpu_the_hypervisor_took_is_reported() {
    let out = serve().bench(&["--clients", "2", "--duration", "500ms"]);
    let json = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{json}");
    let (_, host) = json.split_once("\"host\":").expect("a host object");
    let (steal, worst) = (number(host, "steal_ms"), number(host, "worst_steal_ms"));
    assert!(0.0 <= worst && worst <= steal, "{json}");
    assert!((0.0..=100.0).contains(&number(host, "idle_pct")), "{json}");
}

#[test]
fn a_run_whose_ops_all_fall_in_the_warmup_fails_and_says_so() {
    // One client at one op per 2 s: its first op is in the 1 s warm-up and its next is due after
    // the run ends, so nothing is measured. That must fail, not report zero throughput.
    let out = serve().bench(&[
        "--clients",
        "1",
        "--rate",
        "0.5",
        "--warmup",
        "1s",
        "--duration",
        "500ms",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("warm-up"), "{stderr}");
    // The JSON still printed must stay JSON: no NaN rates for the empty window.
    let json = String::from_utf8_lossy(&out.stdout);
    assert_eq!(number(&json, "ops_per_s"), 0.0, "{json}");
}

#[test]
fn a_wrong_key_fails_loudly() {
    let out = serve().bench(&["--key", "AAAA", "--duration", "1s"]);
    assert!(
        !out.status.success(),
        "a bench that authenticates nothing must fail"
    );
}

#[test]
fn every_amqp_scenario_runs_without_errors() {
    let server = common::ServiceBusServer::start();
    let cs = &server.connection_string;
    for args in [
        vec!["--scenario", "put"],
        vec!["--scenario", "put", "--in-flight", "8"],
        vec!["--scenario", "cycle", "--prefill", "200"],
        vec!["--scenario", "receive-and-delete", "--prefill", "300"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_hematite"))
            .args([
                "bench",
                "--amqp",
                "--json",
                "--clients",
                "4",
                "--duration",
                "1s",
            ])
            .args(&args)
            .env("SERVICEBUS_CONNECTION_STRING", cs)
            .output()
            .expect("run bench");
        let json = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{args:?}: {json} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(number(&json, "ops") > 0.0, "{args:?}: {json}");
        assert_eq!(number(&json, "errors"), 0.0, "{args:?}: {json}");
        assert!(json.contains("\"endpoint\":\"amqp://"), "{json}");
    }
    // The queue the bench made is gone again.
    let out = Command::new(env!("CARGO_BIN_EXE_hematite"))
        .args(["sb", "queue", "list", "--json"])
        .env("SERVICEBUS_CONNECTION_STRING", cs)
        .output()
        .expect("list");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("bench-"));
}
