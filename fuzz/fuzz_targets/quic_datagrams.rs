#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| picket::fuzzing::quic_datagrams(data));
