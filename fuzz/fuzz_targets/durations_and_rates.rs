#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| salve::fuzzing::durations_and_rates(data));
