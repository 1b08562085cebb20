//! Generation throughput: `cargo bench -p dpcot-tasks --bench generate`.
//!
//! The target is ≥ 100k examples/s for LIS n = 16 on one core (the generator is
//! single-threaded), including the test-set exclusion of `dataset::generate`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dpcot_tasks::{generate, DpTask, GenerateConfig, TaskOptions, TaskSpec};
use rand::SeedableRng;

fn examples(c: &mut Criterion) {
    let mut group = c.benchmark_group("generate_one");
    group.throughput(Throughput::Elements(1));
    for (name, size) in [("lis", 16), ("ed", 12), ("arithmetic", 10)] {
        let task = TaskSpec::from_name(name, size, &TaskOptions::default())
            .unwrap()
            .build()
            .unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        group.bench_function(task.name(), |b| b.iter(|| task.generate(&mut rng)));
    }
    group.finish();
}

fn datasets(c: &mut Criterion) {
    const TRAIN: usize = 20_000;
    const TEST: usize = 2_000;
    let mut group = c.benchmark_group("generate_dataset");
    group.throughput(Throughput::Elements((TRAIN + TEST) as u64));
    group.sample_size(10);
    let config = GenerateConfig {
        task: TaskSpec::from_name("lis", 16, &TaskOptions::default()).unwrap(),
        train: TRAIN,
        test: TEST,
        seed: 1,
        mix_smaller: false,
    };
    group.bench_function("lis-16", |b| b.iter(|| generate(&config, |_| {}).unwrap()));
    group.finish();
}

criterion_group!(benches, examples, datasets);
criterion_main!(benches);
