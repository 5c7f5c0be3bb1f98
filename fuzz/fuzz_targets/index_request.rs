#![no_main]
// Fuzzes peershare_fuzz::index_request, which says what it decodes and checks.
libfuzzer_sys::fuzz_target!(|data: &[u8]| peershare_fuzz::index_request(data));
