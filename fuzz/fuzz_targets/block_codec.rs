//! libFuzzer driver for [`fixpoint_fuzz::block_codec`] (scripts/fuzz builds and runs it).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fixpoint_fuzz::block_codec(data));
