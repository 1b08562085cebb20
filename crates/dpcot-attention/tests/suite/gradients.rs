//! Gradients of the efficient kernels w.r.t. q, k, v equal those of the dense references.

use proptest::prelude::*;

use crate::common::*;
use dpcot_attention::burn::tensor::{Device, Tensor};
use dpcot_attention::reference::reference_attention;
use dpcot_attention::{AttentionKernel, AttentionKind, CausalSelfAttentionConfig, SparsePattern};

type Forward<'a> = dyn Fn(Tensor<4>, Tensor<4>, Tensor<4>) -> Tensor<4> + 'a;

/// Gradients of `Σ forward(q, k, v) ⊙ g` w.r.t. `q, k, v`.
fn grads(forward: &Forward<'_>, inputs: [&Tensor<4>; 4], device: &Device) -> [Tensor<4>; 3] {
    let leaf = |x: &Tensor<4>| Tensor::<4>::from_data(x.to_data(), device).require_grad();
    let (q, k, v, g) = (
        leaf(inputs[0]),
        leaf(inputs[1]),
        leaf(inputs[2]),
        Tensor::<4>::from_data(inputs[3].to_data(), device),
    );
    let loss = forward(q.clone(), k.clone(), v.clone()).mul(g).sum();
    let grads = loss.backward();
    [&q, &k, &v].map(|x| x.grad(&grads).expect("leaf gradient"))
}

fn check_gradients(kernel: AttentionKernel, b: usize, h: usize, l: usize, d: usize, seed: u64) {
    let device = device().autodiff();
    let mut rng = DataRng::new(seed);
    let (q, k, v) = qkv(&mut rng, b, h, l, d, &device);
    let g: Tensor<4> = rng.tensor([b, h, l, d], 1.0, &device);
    let fast = grads(
        &|q, k, v| kernel.forward(q, k, v),
        [&q, &k, &v, &g],
        &device,
    );
    let dense = grads(
        &|q, k, v| reference_attention(&kernel, q, k, v),
        [&q, &k, &v, &g],
        &device,
    );
    for (name, (a, r)) in ["dq", "dk", "dv"].iter().zip(fast.into_iter().zip(dense)) {
        assert_close(a, r, &format!("{name} of {kernel:?} L={l}"));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn efficient_gradients_match_dense(
        b in 1usize..=2,
        h in 1usize..=2,
        l in 1usize..=24,
        d in prop_oneof![Just(1usize), Just(4)],
        block in 1usize..=6,
        chunk in 1usize..=7,
        window in 1usize..=7,
        seed in any::<u64>(),
    ) {
        for kernel in [
            AttentionKernel::Softmax,
            sparse(block, 1.max(block / 2), SparsePattern::Fixed),
            sparse(block, 1, SparsePattern::Strided),
            linear(chunk),
            sliding(window),
        ] {
            check_gradients(kernel, b, h, l, d, seed);
        }
    }
}

/// A training step through the whole layer works on the autodiff flex device for every variant
/// and reaches every parameter.
#[test]
fn layer_backward_reaches_parameters() {
    let _rng = burn_rng();
    let device = device().autodiff();
    for kind in [
        AttentionKind::Softmax,
        AttentionKind::Sparse {
            block_size: Some(3),
            summary_width: 1,
            pattern: SparsePattern::Fixed,
        },
        AttentionKind::Sparse {
            block_size: Some(3),
            summary_width: 1,
            pattern: SparsePattern::Strided,
        },
        AttentionKind::Linear {
            chunk_size: 4,
            eps: 1e-6,
        },
        AttentionKind::SlidingWindow { window: 3 },
    ] {
        let attn = CausalSelfAttentionConfig::new(8, 2, 16)
            .with_kind(kind.clone())
            .init(&device)
            .expect("valid");
        let x: Tensor<3> = DataRng::new(1).tensor([2, 11, 8], 1.0, &device);
        let grads = attn.forward(x).sum().backward();
        for (name, param) in [("qkv", &attn.qkv.weight), ("output", &attn.output.weight)] {
            let grad = param
                .val()
                .grad(&grads)
                .unwrap_or_else(|| panic!("{kind:?}: no gradient for {name}"));
            assert!(max_abs(grad) > 0.0, "{kind:?}: zero gradient for {name}");
        }
    }
}
