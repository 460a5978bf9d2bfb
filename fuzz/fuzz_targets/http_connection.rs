#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    hematite_net::fuzzing::connection_answers_whole_responses(data)
});
