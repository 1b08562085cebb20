//! FLOP counts: closed forms, padding, and the asymptotics each variant promises.

use crate::common::*;
use dpcot_attention::flops::{backward, kernel_forward, kernel_step, layer_forward, layer_step};
use dpcot_attention::{AttentionKernel, AttentionKind, CausalSelfAttentionConfig, SparsePattern};

#[test]
fn softmax_closed_form() {
    let (l, d) = (100u64, 16u64);
    let want = l * d + 2 * l * l * d + 5 * l * l + 2 * l * l * d;
    assert_eq!(kernel_forward(&AttentionKernel::Softmax, 100, 16), want);
    // Step t attends t + 1 keys.
    assert_eq!(
        kernel_step(&AttentionKernel::Softmax, 9, 16),
        d + 2 * 10 * d + 5 * 10 + 2 * 10 * d
    );
}

#[test]
fn layer_adds_projections_and_heads() {
    let _rng = burn_rng();
    let (d_model, heads, l) = (64usize, 4usize, 50usize);
    let projections = (2 * 64 * 192 + 192) + (2 * 64 * 64 + 64);
    assert_eq!(
        layer_forward(&AttentionKernel::Softmax, d_model, heads, l),
        l as u64 * projections + 4 * kernel_forward(&AttentionKernel::Softmax, l, 16)
    );
    assert_eq!(
        layer_step(&linear(8), d_model, heads, 7),
        projections + 4 * kernel_step(&linear(8), 7, 16)
    );
    assert_eq!(backward(1000), 2000);

    let attn = CausalSelfAttentionConfig::new(64, 4, 128)
        .with_kind(AttentionKind::SlidingWindow { window: 8 })
        .init(&device())
        .expect("valid");
    assert_eq!(
        attn.forward_flops(50),
        layer_forward(&attn.kernel(), 64, 4, 50)
    );
    assert_eq!(attn.step_flops(9), layer_step(&attn.kernel(), 64, 4, 9));
}

#[test]
fn padding_is_counted() {
    // 33 tokens with B = 8 compute like 40 (five full blocks) in the block products.
    let kernel = sparse(8, 1, SparsePattern::Fixed);
    let d = 4;
    let scale_difference = (40 - 33) * d as u64;
    // Only the 1/sqrt(d) scaling (applied before padding) differs.
    assert_eq!(
        kernel_forward(&kernel, 40, d) - kernel_forward(&kernel, 33, d),
        scale_difference
    );
}

#[test]
fn efficient_variants_are_subquadratic() {
    let d = 32;
    let softmax = kernel_forward(&AttentionKernel::Softmax, 4096, d);
    let fixed = kernel_forward(&sparse(64, 1, SparsePattern::Fixed), 4096, d);
    let strided = kernel_forward(&sparse(64, 1, SparsePattern::Strided), 4096, d);
    let lin = kernel_forward(&linear(64), 4096, d);
    let window = kernel_forward(&sliding(64), 4096, d);
    for (name, flops) in [
        ("fixed", fixed),
        ("strided", strided),
        ("linear", lin),
        ("window", window),
    ] {
        assert!(flops * 10 < softmax, "{name}: {flops} vs softmax {softmax}");
    }
    // Doubling L: softmax ~4×, the others ~2× (sparse with fixed B: the summary part grows too).
    let ratio =
        |k: &AttentionKernel| kernel_forward(k, 8192, d) as f64 / kernel_forward(k, 4096, d) as f64;
    assert!((ratio(&AttentionKernel::Softmax) - 4.0).abs() < 0.1);
    assert!((ratio(&linear(64)) - 2.0).abs() < 0.05);
    assert!((ratio(&sliding(64)) - 2.0).abs() < 0.05);
}

#[test]
fn decode_step_costs() {
    let d = 32;
    // Linear: independent of position.
    assert_eq!(
        kernel_step(&linear(64), 0, d),
        kernel_step(&linear(64), 100_000, d)
    );
    // Sliding window: flat once the window is full.
    assert_eq!(
        kernel_step(&sliding(16), 15, d),
        kernel_step(&sliding(16), 5000, d)
    );
    // Fixed sparse: B + t/B keys at most; softmax: t + 1.
    let fixed = sparse(64, 1, SparsePattern::Fixed);
    assert!(kernel_step(&fixed, 4095, d) * 20 < kernel_step(&AttentionKernel::Softmax, 4095, d));
    assert_eq!(
        kernel_step(&fixed, 4095, d),
        kernel_step(&AttentionKernel::Softmax, 64 + 63 - 1, d)
    );
}
