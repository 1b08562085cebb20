//! Slow, obviously-correct dense versions of every kernel, for tests and benchmarks.
//!
//! Each builds the full `L×L` matrix straight from the pattern definition
//! ([`AttentionKernel::attends`]), so comparing an efficient kernel against its reference checks
//! the blocking, padding and log-sum-exp merging, not the definition itself.

use burn::tensor::activation::softmax;
use burn::tensor::{Bool, Tensor, TensorData};

use crate::config::AttentionKernel;
use crate::kernels::feature_map;

/// Dense softmax attention restricted to the pairs `attends(i, j)` (a row with no allowed key
/// would be undefined; every causal pattern allows `j = i`).
///
/// - q, k, v: `[batch, heads, seq, d_head]`
/// - returns `[batch, heads, seq, d_head]`
pub fn masked_softmax_attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    attends: impl Fn(usize, usize) -> bool,
) -> Tensor<4> {
    let [_, _, l, d] = q.dims();
    let blocked = pair_mask(l, &q, |i, j| !attends(i, j));
    let scores = q
        .matmul(k.swap_dims(2, 3))
        .div_scalar((d as f32).sqrt())
        .mask_fill(blocked, f32::NEG_INFINITY);
    softmax(scores, 3).matmul(v)
}

/// Causal linear attention as the quadratic form `(A ⊙ M) V / ((A ⊙ M) 1 + ε)` with
/// `A = φ(Q) φ(K)ᵀ` and `M` the causal mask.
///
/// - q, k: `[batch, heads, seq, d_head]`, v: `[batch, heads, seq, d_value]`
/// - returns `[batch, heads, seq, d_value]`
pub fn quadratic_linear_attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, eps: f64) -> Tensor<4> {
    let l = q.dims()[2];
    let future = pair_mask(l, &q, |i, j| j > i);
    let weights = feature_map(q)
        .matmul(feature_map(k).swap_dims(2, 3))
        .mask_fill(future, 0.0);
    let denominator = weights.clone().sum_dim(3).add_scalar(eps);
    weights.matmul(v).div(denominator)
}

/// The dense reference of any kernel.
///
/// - q, k, v: `[batch, heads, seq, d_head]`
/// - returns `[batch, heads, seq, d_head]`
pub fn reference_attention(
    kernel: &AttentionKernel,
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
) -> Tensor<4> {
    match kernel {
        AttentionKernel::Linear(p) => quadratic_linear_attention(q, k, v, p.eps()),
        _ => masked_softmax_attention(q, k, v, |i, j| kernel.attends(i, j)),
    }
}

/// `[1, 1, l, l]` mask, `true` where `blocked(i, j)`, on `like`'s device.
fn pair_mask(
    l: usize,
    like: &Tensor<4>,
    blocked: impl Fn(usize, usize) -> bool,
) -> Tensor<4, Bool> {
    let data: Vec<bool> = (0..l)
        .flat_map(|i| (0..l).map(move |j| (i, j)))
        .map(|(i, j)| blocked(i, j))
        .collect();
    Tensor::from_data(TensorData::new(data, [1, 1, l, l]), &like.device())
}
