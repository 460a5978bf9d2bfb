#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    hematite_amqp::fuzzing::frames(data);
});
