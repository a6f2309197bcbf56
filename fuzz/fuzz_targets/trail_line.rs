#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| salve::fuzzing::trail_line(data));
