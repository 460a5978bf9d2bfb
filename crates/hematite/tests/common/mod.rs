//! What several test files start: a live `hematite serve --in-memory` with Service Bus on free
//! ports, killed when dropped.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

pub struct ServiceBusServer {
    child: Child,
    /// The connection string the banner printed.
    pub connection_string: String,
}

impl ServiceBusServer {
    pub fn start() -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hematite"))
            .args([
                "serve",
                "--in-memory",
                "--listen",
                "127.0.0.1:0",
                "--amqp-listen",
                "127.0.0.1:0",
                "--sb-admin-listen",
                "127.0.0.1:0",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn hematite");
        let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        let connection_string = loop {
            line.clear();
            let n = reader.read_line(&mut line).expect("read the banner");
            assert!(n > 0, "the banner ended without a connection string");
            if line.trim().starts_with("Endpoint=") {
                break line.trim().to_owned();
            }
        };
        ServiceBusServer {
            child,
            connection_string,
        }
    }
}

impl Drop for ServiceBusServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
