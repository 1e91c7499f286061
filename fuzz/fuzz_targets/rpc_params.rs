//! libFuzzer driver for [`fixpoint_fuzz::rpc_params`] (scripts/fuzz builds and runs it).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fixpoint_fuzz::rpc_params(data));
