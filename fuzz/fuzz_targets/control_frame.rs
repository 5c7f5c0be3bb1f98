#![no_main]
// Fuzzes peershare_fuzz::control_frame, which says what it decodes and checks.
libfuzzer_sys::fuzz_target!(|data: &[u8]| peershare_fuzz::control_frame(data));
