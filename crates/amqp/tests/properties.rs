//! Properties of the framing layer over arbitrary values: performatives survive being written
//! (at full length where we pad them) and read back; a stream of frames reads the same
//! however the bytes are cut; and the checks that guard the codec never panic on any input and
//! agree with the extent reader on what they accept.

use hematite_amqp::codec::{check, value_len};
use hematite_amqp::frame::{decode_performative, next_frame, write_amqp};
use hematite_amqp::types::definitions::{AmqpError, Error, Role};
use hematite_amqp::types::messaging::{Accepted, DeliveryState, Modified, Rejected, Released};
use hematite_amqp::types::performatives::{
    Begin, Detach, Disposition, Flow, Performative, Transfer,
};
use proptest::prelude::*;
use serde_bytes::ByteBuf;

fn state() -> impl Strategy<Value = Option<DeliveryState>> {
    prop_oneof![
        Just(None),
        Just(Some(DeliveryState::Accepted(Accepted {}))),
        Just(Some(DeliveryState::Released(Released {}))),
        any::<(Option<bool>, Option<bool>)>().prop_map(|(failed, here)| Some(
            DeliveryState::Modified(Modified {
                delivery_failed: failed,
                undeliverable_here: here,
                message_annotations: None,
            })
        )),
        proptest::option::of("[a-z ]{0,40}").prop_map(|d| Some(DeliveryState::Rejected(
            Rejected {
                error: Some(Error::new(AmqpError::DecodeError, d, None)),
            }
        ))),
    ]
}

fn performative() -> impl Strategy<Value = Performative> {
    prop_oneof![
        (
            any::<Option<u16>>(),
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
            any::<u32>()
        )
            .prop_map(
                |(remote, next, inw, outw, hmax)| Performative::Begin(Begin {
                    remote_channel: remote,
                    next_outgoing_id: next,
                    incoming_window: inw,
                    outgoing_window: outw,
                    handle_max: hmax.into(),
                    offered_capabilities: None,
                    desired_capabilities: None,
                    properties: None,
                })
            ),
        (
            any::<(Option<u32>, u32, u32, u32)>(),
            any::<(
                Option<u32>,
                Option<u32>,
                Option<u32>,
                Option<u32>,
                bool,
                bool
            )>()
        )
            .prop_map(
                |((nin, inw, nout, outw), (h, dc, credit, avail, drain, echo))| {
                    Performative::Flow(Flow {
                        next_incoming_id: nin,
                        incoming_window: inw,
                        next_outgoing_id: nout,
                        outgoing_window: outw,
                        handle: h.map(Into::into),
                        delivery_count: dc,
                        link_credit: credit,
                        available: avail,
                        drain,
                        echo,
                        properties: None,
                    })
                }
            ),
        (
            any::<(u32, Option<u32>, bool, bool)>(),
            proptest::collection::vec(any::<u8>(), 0..20),
            any::<Option<u32>>()
        )
            .prop_map(|((h, id, more, settled), tag, format)| {
                Performative::Transfer(Transfer {
                    handle: h.into(),
                    delivery_id: id,
                    delivery_tag: Some(ByteBuf::from(tag)),
                    message_format: format,
                    settled: Some(settled),
                    more,
                    rcv_settle_mode: None,
                    state: None,
                    resume: false,
                    aborted: false,
                    batchable: false,
                })
            }),
        (any::<(bool, u32, Option<u32>, bool, bool)>(), state()).prop_map(
            |((sender, first, last, settled, batchable), state)| {
                Performative::Disposition(Disposition {
                    role: if sender { Role::Sender } else { Role::Receiver },
                    first,
                    last,
                    settled,
                    state,
                    batchable,
                })
            }
        ),
        (any::<(u32, bool)>(), proptest::option::of("[a-z]{0,30}")).prop_map(|((h, closed), d)| {
            Performative::Detach(Detach {
                handle: h.into(),
                closed,
                error: d.map(|d| Error::new(AmqpError::InternalError, Some(d), None)),
            })
        }),
    ]
}

proptest! {
    #[test]
    fn performatives_round_trip(p in performative(), channel in any::<u16>(),
                                payload in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut out = Vec::new();
        write_amqp(&mut out, channel, &p, &payload);
        let (frame, used) = next_frame(&out, u32::MAX).expect("valid").expect("whole");
        prop_assert_eq!(used, out.len());
        prop_assert_eq!(frame.channel, channel);
        let (decoded, rest) = decode_performative(frame.body).expect("decodes");
        prop_assert_eq!(decoded, p);
        prop_assert_eq!(rest, &payload[..]);
    }

    #[test]
    fn a_stream_of_frames_reads_the_same_however_it_is_cut(
        ps in proptest::collection::vec(performative(), 1..8),
        cuts in proptest::collection::vec(1usize..40, 1..20),
    ) {
        let mut stream = Vec::new();
        for p in &ps {
            write_amqp(&mut stream, 0, p, b"payload");
        }
        // Feed the bytes in chunks, reading whole frames as they complete.
        let mut buf = Vec::new();
        let mut got = Vec::new();
        let mut at = 0;
        let mut i = 0;
        while at < stream.len() {
            let n = cuts[i % cuts.len()].min(stream.len() - at);
            buf.extend_from_slice(&stream[at..at + n]);
            at += n;
            i += 1;
            while let Some((frame, used)) = next_frame(&buf, u32::MAX).expect("valid") {
                got.push(decode_performative(frame.body).expect("decodes").0);
                buf.drain(..used);
            }
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(got, ps);
    }

    #[test]
    fn the_checks_never_panic_and_agree_with_the_extent(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode_performative(&bytes);
        let _ = next_frame(&bytes, 1 << 20);
        if let Ok(n) = check(&bytes) {
            prop_assert_eq!(value_len(&bytes), Ok(n));
        }
    }
}
