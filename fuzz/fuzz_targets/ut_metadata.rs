#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| seedbox::fuzz::ut_metadata(data));
