//! End-to-end model latency benchmarks.
fn main() {}
