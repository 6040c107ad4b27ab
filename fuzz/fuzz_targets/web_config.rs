#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| picket::fuzzing::web_config(data));
