//! libFuzzer driver for [`fixpoint_fuzz::precompile_calldata`] (scripts/fuzz builds and runs it).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fixpoint_fuzz::precompile_calldata(data));
