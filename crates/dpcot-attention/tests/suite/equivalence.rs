//! Efficient parallel kernels == dense references built from the pattern definitions.

use proptest::prelude::*;

use crate::common::*;
use dpcot_attention::burn::tensor::Tensor;
use dpcot_attention::kernels::linear::LinearState;
use dpcot_attention::reference::{masked_softmax_attention, quadratic_linear_attention};
use dpcot_attention::{AttentionCache, AttentionKernel, LinearParams, SparsePattern};

/// Shapes: batch 1–2, heads 1–3, head width 1–8, lengths 1–40 (mostly not multiples of the
/// block), blocks 1–9.
fn shape() -> impl Strategy<Value = (usize, usize, usize, usize, u64)> {
    (
        1usize..=2,
        1usize..=3,
        prop_oneof![Just(1usize), Just(4), Just(8)],
        1usize..=40,
        any::<u64>(),
    )
}

fn check_against_dense(
    kernel: AttentionKernel,
    (b, h, d, l, seed): (usize, usize, usize, usize, u64),
) {
    let device = device();
    let mut rng = DataRng::new(seed);
    let (q, k, v) = qkv(&mut rng, b, h, l, d, &device);
    let fast = kernel.forward(q.clone(), k.clone(), v.clone());
    let dense = masked_softmax_attention(q, k, v, |i, j| kernel.attends(i, j));
    assert_close(fast, dense, &format!("{kernel:?} L={l}"));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn sparse_fixed_matches_dense(s in shape(), block in 1usize..=9, c_frac in 0.0f64..1.0) {
        let c = 1 + (c_frac * block as f64) as usize % block;
        check_against_dense(sparse(block, c, SparsePattern::Fixed), s);
    }

    #[test]
    fn sparse_strided_matches_dense(s in shape(), block in 1usize..=9) {
        check_against_dense(sparse(block, 1, SparsePattern::Strided), s);
    }

    #[test]
    fn sliding_window_matches_dense(s in shape(), window in 1usize..=12) {
        check_against_dense(sliding(window), s);
    }

    #[test]
    fn softmax_matches_dense(s in shape()) {
        check_against_dense(AttentionKernel::Softmax, s);
    }

    #[test]
    fn linear_chunked_matches_quadratic_and_recurrent(
        (b, h, d, l, seed) in shape(),
        chunk in 1usize..=12,
    ) {
        let device = device();
        let mut rng = DataRng::new(seed);
        let (q, k, v) = qkv(&mut rng, b, h, l, d, &device);
        let params = LinearParams::new(chunk, 1e-6).expect("valid");
        let chunked = AttentionKernel::Linear(params).forward(q.clone(), k.clone(), v.clone());
        let quadratic = quadratic_linear_attention(q.clone(), k.clone(), v.clone(), 1e-6);
        assert_close(chunked.clone(), quadratic, &format!("chunked vs quadratic, C={chunk} L={l}"));

        let kernel = AttentionKernel::Linear(params);
        let mut cache = AttentionCache::Linear(LinearState::new(b, h, d, d, &params, &device));
        let rows: Vec<Tensor<4>> = (0..l)
            .map(|t| {
                let at = |x: &Tensor<4>| x.clone().slice([0..b, 0..h, t..t + 1, 0..d]);
                kernel.step(at(&q), at(&k), at(&v), &mut cache).expect("matching cache")
            })
            .collect();
        let recurrent = Tensor::cat(rows, 2);
        assert_close(recurrent, chunked, &format!("recurrent vs chunked, L={l}"));
        prop_assert_eq!(cache.len(), l);
    }
}

/// Longer sequences than the property tests, with several blocks of summaries and strides.
#[test]
fn long_sequences_match_dense() {
    let device = device();
    let mut rng = DataRng::new(7);
    let (q, k, v) = qkv(&mut rng, 1, 2, 150, 8, &device);
    for kernel in [
        sparse(12, 3, SparsePattern::Fixed),
        sparse(11, 1, SparsePattern::Strided),
        sliding(17),
    ] {
        let fast = kernel.forward(q.clone(), k.clone(), v.clone());
        let dense =
            masked_softmax_attention(q.clone(), k.clone(), v.clone(), |i, j| kernel.attends(i, j));
        assert_close(fast, dense, &format!("{kernel:?}"));
    }
    let fast = linear(16).forward(q.clone(), k.clone(), v.clone());
    assert_close(
        fast,
        quadratic_linear_attention(q, k, v, 1e-6),
        "linear C=16",
    );
}
