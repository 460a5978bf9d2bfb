//! The fuzz inputs of this crate's targets, replayed on the stable toolchain so CI checks them
//! without nightly or cargo-fuzz: the named seeds (`fuzz/seeds/`, which include every framing
//! case of the hostile-client review) and what fuzzing kept for new coverage (`fuzz/corpus/`).

use std::path::PathBuf;

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// Every input of `target`: its seeds, then its corpus.
fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for kind in ["seeds", "corpus"] {
        let dir = fuzz_dir().join(kind).join(target);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("entry").path())
            .collect();
        files.sort();
        assert!(files.len() >= 10, "{} is nearly empty", dir.display());
        out.extend(files.into_iter().map(|p| {
            let data = std::fs::read(&p).expect("read");
            (p, data)
        }));
    }
    out
}

#[test]
fn http_head_corpus() {
    for (_, data) in corpus("http_head") {
        hematite_net::fuzzing::head(&data);
    }
}

#[test]
fn http_connection_corpus() {
    // Any bytes: only whole responses come back (an input that ends mid-head gets none).
    for (_, data) in corpus("http_connection") {
        hematite_net::fuzzing::connection_answers_whole_responses(&data);
    }
}

#[test]
fn the_smuggling_seed_gets_one_answer() {
    // The request after an ambiguous body must never be served.
    let data = std::fs::read(fuzz_dir().join("seeds/http_connection/smuggle_cl_te")).expect("seed");
    let out = String::from_utf8_lossy(&hematite_net::fuzzing::connection(&data)).into_owned();
    assert_eq!(out.matches("HTTP/1.1 ").count(), 1, "{out}");
    assert!(out.starts_with("HTTP/1.1 400 "));
}
