#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| salve::fuzzing::rule_and_plan(data));
