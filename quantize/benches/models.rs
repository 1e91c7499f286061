//! End-to-end latency of one inference, integer engine (each kernel path) vs the same trained
//! float model in candle f32, one thread, same run. Ids: `<task>/<contender>`.
//! Run: `taskset -c 0 cargo bench -p fixpoint-quantize --bench models` (see BENCHMARKS.md).
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use candle_core::{Device, Tensor as CTensor};
use criterion::Criterion;
use fixpoint_ml::kernels::Path;
use fixpoint_ml::{Engine, Limits};
use fixpoint_quantize::{FloatModel, Task};

fn bench_models(c: &mut Criterion) {
    for task in [Task::DigitsMlp, Task::DigitsCnn] {
        let (train, test) = task.split().unwrap();
        let float = task.train(&train, task.default_rounds(), 1, |_, _| {}).unwrap();
        let model = float.quantize(&train, |_| {}).unwrap();
        let FloatModel::Net(net) = &float else { unreachable!("digits tasks are networks") };
        let bytes = model.to_bytes();
        let row = test.row(0).to_vec();
        let x = task.encode(&row).unwrap();
        let mut shape = vec![1];
        shape.extend(&net.input);

        let mut g = c.benchmark_group(task.name());
        g.sample_size(50).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(2));
        for path in Path::available() {
            let e = Engine::load_with_path(&bytes, &Limits::default(), path).unwrap();
            g.bench_function(format!("int-{}", path.name()), |b| b.iter(|| black_box(e.run(vec![x.clone()]).unwrap())));
        }
        g.bench_function("candle-f32", |b| {
            b.iter(|| {
                let t = CTensor::from_slice(&row, shape.as_slice(), &Device::Cpu).unwrap();
                black_box(net.forward(&t).unwrap().argmax(1).unwrap())
            })
        });
        g.finish();
    }
}

fn main() {
    // SAFETY: set before any thread exists; candle reads it to size its thread pool, so the
    // comparison is one core against one core.
    unsafe { std::env::set_var("RAYON_NUM_THREADS", "1") };
    let mut c = Criterion::default().configure_from_args();
    bench_models(&mut c);
    c.final_summary();
}
