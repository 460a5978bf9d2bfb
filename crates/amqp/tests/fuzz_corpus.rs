//! The frame decoder's fuzz inputs replayed on stable, so CI checks them without nightly or
//! cargo-fuzz: the named seeds (`fuzz/seeds/amqp_frames`, written by `write_seeds` below from
//! real performatives) and what fuzzing kept for new coverage (`fuzz/corpus/amqp_frames`).

use std::path::PathBuf;

use hematite_amqp::frame::write_amqp;
use hematite_amqp::types::definitions::{ReceiverSettleMode, Role, SenderSettleMode};
use hematite_amqp::types::messaging::{Accepted, DeliveryState, Source, Target};
use hematite_amqp::types::performatives::{
    Attach, Begin, Close, Detach, Disposition, End, Flow, Performative, Transfer,
};
use serde_bytes::ByteBuf;

fn dir(kind: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz")
        .join(kind)
        .join("amqp_frames")
}

fn inputs(kind: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir(kind)) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries.map(|e| e.expect("entry").path()).collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let data = std::fs::read(&p).expect("read");
            (p, data)
        })
        .collect()
}

#[test]
fn amqp_frames_corpus() {
    let seeds = inputs("seeds");
    assert!(seeds.len() >= 10, "the seeds are missing");
    for (path, data) in seeds.iter().chain(&inputs("corpus")) {
        let taken = hematite_amqp::fuzzing::frames(data);
        // Every seed is a valid conversation: the endpoint takes at least its first frame.
        if path.starts_with(dir("seeds")) && !path.ends_with("garbage") {
            assert!(taken > 0, "{}", path.display());
        }
    }
}

fn frame(p: Performative, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    write_amqp(&mut out, 0, &p, payload);
    out
}

fn begin() -> Vec<u8> {
    frame(
        Performative::Begin(Begin {
            remote_channel: None,
            next_outgoing_id: 0,
            incoming_window: 5000,
            outgoing_window: 5000,
            handle_max: 255.into(),
            offered_capabilities: None,
            desired_capabilities: None,
            properties: None,
        }),
        &[],
    )
}

fn attach(handle: u32, role: Role) -> Vec<u8> {
    frame(
        Performative::Attach(Attach {
            name: format!("link-{handle}"),
            handle: handle.into(),
            role,
            snd_settle_mode: SenderSettleMode::Unsettled,
            rcv_settle_mode: ReceiverSettleMode::First,
            source: Some(Box::new(Source::builder().address("q").build())),
            target: Some(Box::new(Target::builder().address("q").build().into())),
            unsettled: None,
            incomplete_unsettled: false,
            initial_delivery_count: Some(0),
            max_message_size: None,
            offered_capabilities: None,
            desired_capabilities: None,
            properties: None,
        }),
        &[],
    )
}

fn transfer(handle: u32, id: u32, more: bool, payload: &[u8]) -> Vec<u8> {
    frame(
        Performative::Transfer(Transfer {
            handle: handle.into(),
            delivery_id: Some(id),
            delivery_tag: Some(ByteBuf::from(id.to_be_bytes().to_vec())),
            message_format: Some(0),
            settled: Some(false),
            more,
            rcv_settle_mode: None,
            state: None,
            resume: false,
            aborted: false,
            batchable: false,
        }),
        payload,
    )
}

fn flow(handle: u32, credit: u32, drain: bool) -> Vec<u8> {
    frame(
        Performative::Flow(Flow {
            next_incoming_id: Some(0),
            incoming_window: 5000,
            next_outgoing_id: 0,
            outgoing_window: 5000,
            handle: Some(handle.into()),
            delivery_count: Some(0),
            link_credit: Some(credit),
            available: None,
            drain,
            echo: false,
            properties: None,
        }),
        &[],
    )
}

fn disposition(first: u32, last: u32) -> Vec<u8> {
    frame(
        Performative::Disposition(Disposition {
            role: Role::Receiver,
            first,
            last: Some(last),
            settled: true,
            state: Some(DeliveryState::Accepted(Accepted {})),
            batchable: false,
        }),
        &[],
    )
}

/// Writes the named seeds. Run on purpose: `cargo test -p hematite-amqp --test fuzz_corpus
/// write_seeds -- --ignored`.
#[test]
#[ignore]
fn write_seeds() {
    // A data section holding "hello".
    let message = [0x00, 0x53, 0x75, 0xa0, 0x05, b'h', b'e', b'l', b'l', b'o'];
    let seeds: Vec<(&str, Vec<Vec<u8>>)> = vec![
        ("begin", vec![begin()]),
        (
            "begin_end",
            vec![begin(), frame(Performative::End(End { error: None }), &[])],
        ),
        (
            "send_one",
            vec![
                begin(),
                attach(0, Role::Sender),
                transfer(0, 0, false, &message),
            ],
        ),
        (
            "send_multi_frame",
            vec![
                begin(),
                attach(0, Role::Sender),
                transfer(0, 0, true, &message[..4]),
                transfer(0, 0, false, &message[4..]),
            ],
        ),
        (
            "receive_flow_disposition",
            vec![
                begin(),
                attach(1, Role::Receiver),
                flow(1, 10, false),
                disposition(0, 3),
            ],
        ),
        (
            "drain",
            vec![begin(), attach(1, Role::Receiver), flow(1, 5, true)],
        ),
        (
            "detach",
            vec![
                begin(),
                attach(0, Role::Sender),
                frame(
                    Performative::Detach(Detach {
                        handle: 0.into(),
                        closed: true,
                        error: None,
                    }),
                    &[],
                ),
            ],
        ),
        (
            "transfer_unknown_handle",
            vec![begin(), transfer(9, 0, false, &message)],
        ),
        (
            "attach_twice",
            vec![begin(), attach(0, Role::Sender), attach(0, Role::Sender)],
        ),
        (
            "close",
            vec![
                begin(),
                frame(Performative::Close(Close { error: None }), &[]),
            ],
        ),
        (
            "heartbeat_then_begin",
            vec![vec![0, 0, 0, 8, 2, 0, 0, 0], begin()],
        ),
        (
            "garbage",
            vec![vec![0, 0, 0, 12, 2, 0, 0, 0, 0x00, 0x53, 0x99, 0x45]],
        ),
    ];
    let out = dir("seeds");
    std::fs::create_dir_all(&out).expect("mkdir");
    for (name, frames) in seeds {
        std::fs::write(out.join(name), frames.concat()).expect("write");
    }
}
