//! The fused operations composed from burn's primitives: what runs on backends without the
//! fused kernels, and the reference the kernels are tested against.

use burn::nn::Dropout;
use burn::tensor::activation::{log_softmax, sigmoid};
use burn::tensor::{Bool, Int, Tensor};

use crate::kernels::common::{drop_probabilities, mask_2d, MASKED};

/// [`super::softmax`] as `softmax(mask_fill(scale·x))`.
pub fn softmax<const D: usize>(x: Tensor<D>, scale: f32, causal: bool) -> Tensor<D> {
    let scores = x.mul_scalar(scale);
    let scores = if causal {
        let future = future_mask::<D>(scores.dims()[D - 1], &scores.device());
        scores.mask_fill(future, MASKED)
    } else {
        scores
    };
    burn::tensor::activation::softmax(scores, D - 1)
}

/// [`super::causal_attention`] as a batched `QKᵀ`, the causal [`softmax`], dropout of the
/// probabilities and a batched `PV`.
pub fn causal_attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    scale: f32,
    dropout: Option<&Dropout>,
) -> Tensor<4> {
    let probabilities = softmax(q.matmul(k.swap_dims(2, 3)), scale, true);
    drop_probabilities(probabilities, dropout).matmul(v)
}

/// [`super::linear`] as burn's `linear`.
pub fn linear(x: Tensor<2>, weight: Tensor<2>, bias: Option<Tensor<1>>) -> Tensor<2> {
    burn::tensor::module::linear(x, weight, bias)
}

/// [`super::sparse_attention`] as the block-sparse tensor operations of
/// [`crate::kernels::sparse`]: batched products over the blocks and the summary keys, merged
/// under one softmax.
pub fn sparse_attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    scale: f32,
    block: usize,
    summaries: usize,
    dropout: Option<&Dropout>,
) -> Tensor<4> {
    crate::kernels::sparse::fixed(q, k, v, scale, block, summaries, dropout)
}

/// [`super::selective_scan`] as tensor operations: `exp(Δ A)` and `Δ B u` discretised into
/// `[batch, L, channels, N]` tensors, then a loop over time that slices each step out, updates
/// the state and reads it.
pub fn selective_scan(
    u: Tensor<3>,
    delta: Tensor<3>,
    a: Tensor<2>,
    b: Tensor<3>,
    c: Tensor<3>,
) -> Tensor<3> {
    let [batch, l, ch] = u.dims();
    let n = a.dims()[1];
    let decay =
        (delta.clone().unsqueeze_dim::<4>(3) * a.unsqueeze_dim::<3>(0).unsqueeze_dim(0)).exp();
    let input = (delta * u).unsqueeze_dim::<4>(3) * b.unsqueeze_dim::<4>(2);
    let mut h: Tensor<3> = Tensor::zeros([batch, ch, n], &decay.device());
    let outputs = (0..l)
        .map(|t| {
            let at = |x: &Tensor<4>| x.clone().slice_dim(1, t..t + 1).reshape([batch, ch, n]);
            h = h.clone() * at(&decay) + at(&input);
            let c_t = c.clone().slice_dim(1, t..t + 1).reshape([batch, 1, n]);
            (h.clone() * c_t).sum_dim(2).reshape([batch, 1, ch])
        })
        .collect();
    Tensor::cat(outputs, 1)
}

/// `[1, .., 1, l, l]` mask, `true` above the diagonal.
fn future_mask<const D: usize>(l: usize, device: &burn::tensor::Device) -> Tensor<D, Bool> {
    let mut shape = [1; D];
    shape[D - 2] = l;
    shape[D - 1] = l;
    mask_2d(l, l, device, |i, j| j > i).reshape(shape)
}

/// [`super::gelu_tanh`] as five element-wise operations and a sigmoid.
pub fn gelu_tanh<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    const TWO_SQRT_2_OVER_PI: f64 =
        2.0 * std::f64::consts::FRAC_2_SQRT_PI * std::f64::consts::FRAC_1_SQRT_2;
    let inner = x
        .clone()
        .mul(x.clone())
        .mul_scalar(0.044715 * TWO_SQRT_2_OVER_PI)
        .add_scalar(TWO_SQRT_2_OVER_PI)
        .mul(x.clone());
    x.mul(sigmoid(inner))
}

/// [`super::layer_norm`] as burn's `layer_norm`.
pub fn layer_norm<const D: usize>(
    x: Tensor<D>,
    gamma: Tensor<1>,
    beta: Option<Tensor<1>>,
    eps: f64,
) -> Tensor<D> {
    burn::tensor::module::layer_norm(x, gamma, beta, eps)
}

/// [`super::cross_entropy_sum`] as `log_softmax`, `gather` and a weighted sum.
pub fn cross_entropy_sum(
    logits: Tensor<2>,
    targets: Tensor<1, Int>,
    weights: Tensor<1>,
) -> Tensor<1> {
    let [rows, _] = logits.dims();
    let picked = log_softmax(logits, 1)
        .gather(1, targets.reshape([rows, 1]))
        .reshape([rows]);
    (picked * weights).sum().neg()
}

/// [`super::elu_plus_one`] as `max(x, 0) + exp(min(x, 0))`.
pub fn elu_plus_one<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    x.clone().clamp_min(0.0).add(x.clamp_max(0.0).exp())
}
