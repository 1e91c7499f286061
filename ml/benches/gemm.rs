//! GEMM throughput per kernel path, side by side with candle's f32 matmul, one thread.
//! Ids: `gemm/<path>/n=<size>` for an n×n×n product, `gemm-transformer/<path>/m=,k=,n=` for
//! a transformer's decode (M = 1) and prefill shapes; throughput in elements = MACs.
//! Run: `taskset -c 0 cargo bench -p fixpoint-ml --bench gemm` (see BENCHMARKS.md).
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use candle_core::{Device, Tensor as CTensor};
use criterion::{BenchmarkId, Criterion, Throughput};
use fixpoint_ml::Counter;
use fixpoint_ml::kernels::{PackedWeights, Path, gemm};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn bench_gemm(c: &mut Criterion) {
    let mut g = c.benchmark_group("gemm");
    g.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for n in [64usize, 256, 1024] {
        g.throughput(Throughput::Elements((n * n * n) as u64));
        let a: Vec<i8> = (0..n * n).map(|_| rng.random()).collect();
        let w: Vec<i8> = (0..n * n).map(|_| rng.random()).collect();
        let bias: Vec<i32> = (0..n).map(|_| rng.random_range(-1000..1000)).collect();
        let mut out = vec![0i32; n * n];
        let counter = Counter::new();
        for path in Path::available() {
            if path == Path::Reference && n > 256 {
                continue; // seconds per call; the reference is the definition, not a contender
            }
            let pw = PackedWeights::new(path, &w, n, n).unwrap();
            g.bench_with_input(BenchmarkId::new(path.name(), format!("n={n}")), &n, |b, &n| {
                b.iter(|| gemm(black_box(&a), n, 3, &pw, Some(&bias), black_box(&mut out), &counter).unwrap())
            });
        }
        let x = CTensor::randn(0f32, 1.0, (n, n), &Device::Cpu).unwrap();
        let y = CTensor::randn(0f32, 1.0, (n, n), &Device::Cpu).unwrap();
        g.bench_with_input(BenchmarkId::new("candle-f32", format!("n={n}")), &n, |b, _| {
            b.iter(|| black_box(x.matmul(&y).unwrap()))
        });
    }
    g.finish();
}

/// Transformer shapes: one token's decode step (M = 1) against the projections, the MLP and the
/// vocabulary head, and a window's prefill (M = 128), for widths 64 and 128.
fn bench_transformer_shapes(c: &mut Criterion) {
    let mut g = c.benchmark_group("gemm-transformer");
    g.sample_size(20).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1));
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let shapes = [
        (1usize, 64usize, 64usize),
        (1, 64, 256),
        (1, 256, 64),
        (1, 128, 128),
        (1, 128, 512),
        (1, 512, 128),
        (1, 128, 256),
        (128, 64, 64),
        (128, 128, 128),
        (128, 128, 512),
    ];
    for (m, k, n) in shapes {
        g.throughput(Throughput::Elements((m * k * n) as u64));
        let a: Vec<i8> = (0..m * k).map(|_| rng.random()).collect();
        let w: Vec<i8> = (0..n * k).map(|_| rng.random()).collect();
        let mut out = vec![0i32; m * n];
        let counter = Counter::new();
        let id = format!("m={m},k={k},n={n}");
        for path in Path::available() {
            let pw = PackedWeights::new(path, &w, n, k).unwrap();
            g.bench_with_input(BenchmarkId::new(path.name(), &id), &m, |b, &m| {
                b.iter(|| gemm(black_box(&a), m, 0, &pw, None, black_box(&mut out), &counter).unwrap())
            });
        }
        let x = CTensor::randn(0f32, 1.0, (m, k), &Device::Cpu).unwrap();
        let y = CTensor::randn(0f32, 1.0, (k, n), &Device::Cpu).unwrap();
        g.bench_with_input(BenchmarkId::new("candle-f32", &id), &m, |b, _| b.iter(|| black_box(x.matmul(&y).unwrap())));
    }
    g.finish();
}

fn main() {
    // SAFETY: set before any thread exists; candle reads it to size its thread pool, so the
    // comparison is one core against one core.
    unsafe { std::env::set_var("RAYON_NUM_THREADS", "1") };
    let mut c = Criterion::default().configure_from_args();
    bench_gemm(&mut c);
    bench_transformer_shapes(&mut c);
    c.final_summary();
}
