#![no_main]
// Fuzzes peershare_fuzz::data_frame, which says what it decodes and checks.
libfuzzer_sys::fuzz_target!(|data: &[u8]| peershare_fuzz::data_frame(data));
