//! The fused attention kernel at the experiments' shapes, forward and forward + backward:
//! `cargo bench -p dpcot-attention --bench fused`.
//!
//! Batch 32 and 4 heads as in the quick profile; d_model 16/32/64 (head widths 4/8/16) over
//! sequences of 24 and 48, and the bench's d_model 128 / sequence 128. Without dropout (the
//! profiles' setting) and with 0.1 (the PyTorch comparison's). With the `dpcot` binary's
//! allocator, so that freed tensors are reused rather than faulted in again.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use dpcot_attention::burn::nn::DropoutConfig;
use dpcot_attention::burn::tensor::{Device, Distribution, Tensor};
use dpcot_attention::fused;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCH: usize = 32;
const HEADS: usize = 4;
const SHAPES: [(usize, usize); 7] = [
    (16, 24),
    (32, 24),
    (64, 24),
    (16, 48),
    (32, 48),
    (64, 48),
    (128, 128),
];

fn inputs(d_model: usize, len: usize, device: &Device) -> [Tensor<4>; 3] {
    let shape = [BATCH, HEADS, len, d_model / HEADS];
    std::array::from_fn(|_| Tensor::random(shape, Distribution::Normal(0.0, 1.0), device))
}

fn attention(c: &mut Criterion) {
    let mut group = c.benchmark_group("causal_attention");
    group.sample_size(20);
    for (d_model, len) in SHAPES {
        let scale = 1.0 / ((d_model / HEADS) as f32).sqrt();
        let id = format!("d{d_model}-L{len}");

        let device = Device::default();
        let [q, k, v] = inputs(d_model, len, &device);
        group.bench_function(BenchmarkId::new("forward", &id), |b| {
            b.iter(|| {
                fused::causal_attention(q.clone(), k.clone(), v.clone(), scale, None).into_data()
            })
        });

        let device = Device::default().autodiff();
        let [q, k, v] = inputs(d_model, len, &device).map(|x| x.require_grad());
        for prob in [0.0, 0.1] {
            let dropout = DropoutConfig::new(prob).init();
            group.bench_function(BenchmarkId::new(format!("fwd+bwd-p{prob}"), &id), |b| {
                b.iter(|| {
                    let out = fused::causal_attention(
                        q.clone(),
                        k.clone(),
                        v.clone(),
                        scale,
                        Some(&dropout),
                    );
                    let grads = out.sum().backward();
                    q.grad(&grads).map(|g| g.into_data())
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, attention);
criterion_main!(benches);
