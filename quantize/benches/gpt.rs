//! Generation speed of the tiny GPT: 32 new bytes after a 32-byte prompt (63 positions, a
//! key/value cache in both), the integer engine on each kernel path vs the same float model in
//! candle f32, one thread, same run. Ids: `tiny-gpt/<contender>`; throughput in new tokens.
//! Run: `taskset -c 0 cargo bench -p fixpoint-quantize --bench gpt` (see BENCHMARKS.md).
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use fixpoint_ml::kernels::Path as KernelPath;
use fixpoint_ml::{Counter, Engine, Limits};
use fixpoint_quantize::gpt::Gpt;

const PROMPT: &[u8] = b"And God said, Let there be light";
const TOKENS: usize = 32;

fn bench_generation(c: &mut Criterion) {
    let root = std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    );
    let bytes = std::fs::read(root.join("../node/assets/tiny-gpt.fxp")).unwrap();
    let float = Gpt::load(&root.join("data/tiny-gpt.safetensors")).unwrap();
    let prompt: Vec<u32> = PROMPT.iter().map(|&b| u32::from(b)).collect();
    let mut g = c.benchmark_group("tiny-gpt");
    g.sample_size(20).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Elements(TOKENS as u64));
    for path in KernelPath::available() {
        let e = Engine::load_with_path(&bytes, &Limits::default(), path).unwrap();
        g.bench_function(BenchmarkId::new("generate", path.name()), |b| {
            b.iter(|| black_box(e.generate(black_box(&prompt), TOKENS, &Counter::new()).unwrap()))
        });
    }
    g.bench_function(BenchmarkId::new("generate", "candle-f32"), |b| {
        b.iter(|| black_box(float.generate(black_box(PROMPT), TOKENS).unwrap()))
    });
    g.finish();
}

fn main() {
    // SAFETY: set before any thread exists; candle reads it to size its thread pool, so the
    // comparison is one core against one core.
    unsafe { std::env::set_var("RAYON_NUM_THREADS", "1") };
    let mut c = Criterion::default().configure_from_args();
    bench_generation(&mut c);
    c.final_summary();
}
