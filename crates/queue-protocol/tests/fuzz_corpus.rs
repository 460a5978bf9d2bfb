//! The fuzz inputs of this crate's targets, replayed on the stable toolchain so CI checks them
//! without nightly or cargo-fuzz: the named seeds (`fuzz/seeds/`) and what fuzzing kept for new
//! coverage (`fuzz/corpus/`).

use std::path::PathBuf;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("entry").path();
        run(&std::fs::read(&path).expect("read"));
        n += 1;
    }
    assert!(n >= 5, "the {target} corpus is nearly empty");
}

#[test]
fn authorization_corpus() {
    replay(
        "authorization",
        hematite_queue_protocol::fuzzing::authorization,
    );
}

#[test]
fn sas_corpus() {
    replay("sas", hematite_queue_protocol::fuzzing::sas);
}

#[test]
fn xml_corpus() {
    replay("xml", hematite_queue_protocol::fuzzing::xml);
}

#[test]
fn jwt_corpus() {
    replay("jwt", hematite_queue_protocol::fuzzing::jwt);
}
