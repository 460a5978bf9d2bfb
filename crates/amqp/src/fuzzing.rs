//! Entry points for the fuzz targets (`fuzz/`) and for the stable replay of their corpus
//! (`tests/fuzz_corpus.rs`): a peer's bytes after the open, through framing, decoding and
//! the endpoint's sessions and links, with every attach accepted so transfers, flows and
//! dispositions reach link state. Nothing here may panic, whatever the bytes.

use fe2o3_amqp_types::definitions::Role;
use tokio::sync::mpsc;

use crate::endpoint::Endpoint;
use crate::frame::{decode_performative, decode_sasl, next_frame, FrameKind};
use crate::link::{AttachReply, Command};
use crate::Config;

/// Feeds `data` as the frames a peer sends after its open; returns how many frames the
/// endpoint took before the input ended or it closed the connection.
pub fn frames(data: &[u8]) -> usize {
    let config = Config::default();
    let (tx, mut rx) = mpsc::channel(1024);
    let mut endpoint = Endpoint::new(config.limits.clone(), config.max_frame_size, tx);
    let mut at = 0;
    let mut taken = 0;
    let mut events = Vec::new();
    while let Ok(Some((frame, used))) = next_frame(&data[at..], config.max_frame_size) {
        at += used;
        if frame.kind == FrameKind::Sasl {
            let _ = decode_sasl(frame.body);
            continue;
        }
        if frame.body.is_empty() {
            continue;
        }
        let Ok((performative, payload)) = decode_performative(frame.body) else {
            break;
        };
        if endpoint
            .on_frame(frame.channel, performative, payload)
            .is_err()
        {
            break;
        }
        taken += 1;
        for mut attaching in std::mem::take(&mut endpoint.attaches) {
            let credit = if attaching.role() == Role::Receiver {
                8
            } else {
                0
            };
            // Keep the link's events open for the rest of the input.
            events.push(attaching.events.take());
            endpoint.on_command(Command::Accept {
                link: attaching.id(),
                reply: Box::new(AttachReply {
                    credit,
                    max_message_size: Some(64 * 1024),
                    ..AttachReply::default()
                }),
            });
        }
        while let Ok(command) = rx.try_recv() {
            endpoint.on_command(command);
        }
        endpoint.flush();
        endpoint.out.clear();
    }
    endpoint.detach_all(None);
    taken
}
