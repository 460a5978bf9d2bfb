//! `hematite serve` as a process: what it prints, what it accepts, and how it stops.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Starts `hematite serve` and reads its banner up to the `accounts`-th connection string.
fn spawn(args: &[&str], env: &[(&str, &str)], accounts: usize) -> (Child, Vec<String>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hematite"));
    // Service Bus on ports of its own, so parallel tests never meet on 5672.
    cmd.arg("serve")
        .args([
            "--amqp-listen",
            "127.0.0.1:0",
            "--sb-admin-listen",
            "127.0.0.1:0",
        ])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    cmd.env_remove("AZURITE_ACCOUNTS");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn hematite");
    let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
    let mut lines = Vec::new();
    let mut seen = 0;
    while seen < accounts {
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).expect("read banner") > 0,
            "banner ended early: {lines:?}"
        );
        if line.trim_start().starts_with("DefaultEndpointsProtocol=") {
            seen += 1;
        }
        lines.push(line.trim_end().to_owned());
    }
    (child, lines)
}

fn listen_addr(lines: &[String]) -> String {
    lines[0]
        .split("http://")
        .nth(1)
        .expect("listening line")
        .to_owned()
}

fn sigterm(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(ok.success());
}

#[test]
fn prints_where_it_listens_and_a_connection_string_then_stops_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("hematite-serve-test-{}", std::process::id()));
    let (mut child, lines) = spawn(
        &[
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            dir.to_str().expect("utf-8"),
        ],
        &[],
        1,
    );
    assert!(
        lines[0].starts_with("Hematite ") && lines[0].contains(" listening on http://127.0.0.1:"),
        "{lines:?}"
    );
    let addr = listen_addr(&lines);
    let cs = lines
        .iter()
        .find(|l| l.contains("AccountName=devstoreaccount1"))
        .expect("connection string");
    assert!(cs.contains("AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="));
    assert!(
        cs.contains(&format!("QueueEndpoint=http://{addr}/devstoreaccount1;")),
        "{cs}"
    );
    assert!(dir.is_dir(), "--data-dir is created");

    // An idle keep-alive connection must not hold the shutdown up.
    let mut conn = TcpStream::connect(&addr).expect("connect");
    conn.write_all(b"OPTIONS /devstoreaccount1/q HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    let mut buf = [0u8; 512];
    let n = conn.read(&mut buf).expect("read");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 400"));

    let t = Instant::now();
    sigterm(&child);
    let status = child.wait().expect("wait");
    let took = t.elapsed();
    assert!(status.success(), "clean exit: {status:?}");
    assert!(took < Duration::from_secs(1), "SIGTERM took {took:?}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn accounts_from_flags_and_azurite_format() {
    let (mut child, lines) = spawn(
        &["--listen", "127.0.0.1:0", "--in-memory"],
        &[("AZURITE_ACCOUNTS", "acct1:a2V5MQ==;acct2:a2V5Mg==:a2V5Mw==")],
        2,
    );
    let text = lines.join("\n");
    assert!(
        text.contains("AccountName=acct1;AccountKey=a2V5MQ==;"),
        "{text}"
    );
    assert!(
        text.contains("AccountName=acct2;AccountKey=a2V5Mg==;"),
        "{text}"
    );
    assert!(
        !text.contains("devstoreaccount1"),
        "given accounts replace the default: {text}"
    );
    sigterm(&child);
    assert!(child.wait().expect("wait").success());
}

#[test]
fn bad_account_specs_fail_fast_with_a_message() {
    let out = Command::new(env!("CARGO_BIN_EXE_hematite"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--in-memory",
            "--account",
            "nokey",
        ])
        .env_remove("AZURITE_ACCOUNTS")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("NAME:BASE64KEY"), "{err}");
}

#[test]
fn dev_cert_makes_a_certificate_to_serve_https_with_and_keeps_its_ca() {
    let dir = std::env::temp_dir().join(format!("hematite-dev-cert-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let dev_cert = |force: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hematite"));
        cmd.args(["dev-cert", "--out", dir.to_str().expect("utf-8")]);
        if force {
            cmd.arg("--force");
        }
        cmd.stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run")
    };
    assert!(dev_cert(false).success());
    let ca = std::fs::read(dir.join("ca.pem")).expect("ca.pem");
    // A second run would replace a CA someone may trust: refused unless forced.
    assert!(!dev_cert(false).success());
    assert_eq!(std::fs::read(dir.join("ca.pem")).expect("ca.pem"), ca);
    assert!(dev_cert(true).success());
    assert_ne!(std::fs::read(dir.join("ca.pem")).expect("ca.pem"), ca);

    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let (mut child, lines) = spawn(
        &[
            "--listen",
            "127.0.0.1:0",
            "--in-memory",
            "--tls-cert",
            cert.to_str().expect("utf-8"),
            "--tls-key",
            key.to_str().expect("utf-8"),
        ],
        &[],
        1,
    );
    assert!(
        lines[0].contains(" listening on https://127.0.0.1:"),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("DefaultEndpointsProtocol=https;")),
        "{lines:?}"
    );
    sigterm(&child);
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Service Bus starts beside Queue REST by default: its banner gives the AMQP address, the
/// health URL and the emulator's connection string, and `/health` answers as the emulator's.
#[test]
fn serves_service_bus_beside_queue_rest_with_its_connection_string_and_health() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hematite"))
        .args(["serve", "--in-memory", "--listen", "127.0.0.1:0"])
        .args([
            "--amqp-listen",
            "127.0.0.1:0",
            "--sb-admin-listen",
            "127.0.0.1:0",
        ])
        .env_remove("AZURITE_ACCOUNTS")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn hematite");
    let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
    let mut lines = Vec::new();
    while !lines.iter().any(|l: &String| l.contains("Endpoint=sb://")) {
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).expect("read banner") > 0,
            "banner ended early: {lines:?}"
        );
        lines.push(line.trim_end().to_owned());
    }
    let sb = lines
        .iter()
        .find(|l| l.starts_with("Service Bus listening on amqp://"))
        .expect("service bus line");
    let admin = lines
        .iter()
        .find(|l| l.starts_with("Service Bus administration on http://"))
        .expect("administration line");
    let health = admin
        .split("health: ")
        .nth(1)
        .and_then(|h| h.strip_suffix(')'))
        .expect("health url");
    let conn = lines.last().expect("connection string").trim();
    assert!(
        conn.ends_with(
            ";SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;"
        ),
        "{conn}"
    );
    let amqp_port = sb
        .trim_start_matches("Service Bus listening on amqp://127.0.0.1:")
        .split(' ')
        .next()
        .expect("port");
    assert!(
        conn.starts_with(&format!("Endpoint=sb://localhost:{amqp_port};")),
        "{conn}"
    );

    let addr = health
        .trim_start_matches("http://")
        .trim_end_matches("/health");
    let mut s = TcpStream::connect(addr).expect("connect health");
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("write");
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("read");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with(r#"{"status":"healthy"}"#), "{answer}");

    // The AMQP port answers an AMQP header with SASL's.
    let mut a = TcpStream::connect(format!("127.0.0.1:{amqp_port}")).expect("connect amqp");
    a.write_all(b"AMQP\x03\x01\x00\x00").expect("write");
    let mut proto = [0u8; 8];
    a.read_exact(&mut proto).expect("read");
    assert_eq!(&proto, b"AMQP\x03\x01\x00\x00");
    child.kill().expect("kill");
    child.wait().expect("wait");
}
