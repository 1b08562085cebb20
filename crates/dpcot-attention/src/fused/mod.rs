//! Fused operations of the training step: one pass forward, one pass backward.
//!
//! Under autodiff, burn composes attention, softmax, LayerNorm, GELU, the cross-entropy and
//! dropout from primitives, each of which stores its input and runs its own loop (on burn-flex
//! most of them scalar and single-threaded, docs/performance.md). On burn-flex, with or without
//! autodiff, these operations instead run our own kernels ([`cpu`], `attention`, `dropout`):
//! vectorised by pulp's runtime dispatch (the crate burn-flex's matrix products already dispatch
//! with), split over rayon's threads by rows or heads, and each with a hand-written backward pass
//! that reads only what the forward pass kept. They are a backend extension
//! (`#[backend_extension]`, the `extension` module), so they plug into burn's dispatch and
//! autodiff without forking burn. Results do not depend on the number of threads.
//!
//! Every other backend (ndarray, wgpu, cuda), and tensors that are not `f32`, run the composed
//! form ([`composed`]), which is also the reference the fused kernels are tested against;
//! [`set_enabled`] switches the fused kernels off for comparison.
//!
//! | operation | forward | kept for backward |
//! |---|---|---|
//! | [`causal_attention`] | `softmax(s·QKᵀ + mask)V` per head, dropout inside | q, k, v, probabilities |
//! | [`linear`] | `x·W + b`, `gemm` over fixed chunks of rows on rayon's threads | x, W |
//! | [`sparse_attention`] | the same over each query's block-sparse keys, per head | q, k, v, probabilities |
//! | [`softmax`] | `softmax(scale·x)` over the last dim, optionally causal | the probabilities |
//! | [`gelu_tanh`] | `x·σ(2√(2/π)(x + 0.044715x³))` | the input |
//! | [`layer_norm`] | `(x − μ)/√(σ² + ε)·γ + β` over the last dim | input, γ, μ and 1/σ per row |
//! | [`cross_entropy_sum`] | `Σᵣ wᵣ·(−log softmax(zᵣ)[tᵣ])` | the probabilities |
//! | [`elu_plus_one`] | `max(x, 0) + exp(min(x, 0))` | the output |
//! | [`dropout`] | `x·mask/(1 − p)`, the mask hashed from a key | the key |
//! | [`selective_scan`] | `h_t = exp(Δ_t A) ⊙ h_{t−1} + Δ_t B_t u_t`, `y_t = C_t h_t`, one pass per sequence | its inputs (states recomputed) |

// Without burn-flex nothing calls the kernels.
#[cfg_attr(not(feature = "flex"), allow(dead_code))]
mod attention;
pub mod composed;
#[cfg_attr(not(feature = "flex"), allow(dead_code))]
pub(crate) mod cpu;
#[cfg_attr(not(feature = "flex"), allow(dead_code))]
mod dropout;
#[cfg(feature = "flex")]
mod extension;
#[cfg_attr(not(feature = "flex"), allow(dead_code))]
mod linear;
#[cfg_attr(not(feature = "flex"), allow(dead_code))]
mod scan;
#[cfg_attr(not(feature = "flex"), allow(dead_code))]
mod sparse;

use std::sync::atomic::{AtomicBool, Ordering};

use burn::nn::Dropout;
use burn::tensor::{Device, Int, Tensor};

pub use dropout::seed_dropout;

/// Softmax over the last dimension of `scale · x`.
///
/// With `causal`, `x` is `[.., L, L]` (scores of L queries against L keys) and key `j > i` gets
/// probability exactly 0 in row `i`, as a causal mask filled with a large negative score would
/// give; the masked scores are never read.
///
/// - x: `[.., cols]`
/// - returns the same shape
pub fn softmax<const D: usize>(x: Tensor<D>, scale: f32, causal: bool) -> Tensor<D> {
    if causal {
        let dims = x.dims();
        assert_eq!(
            dims[D - 1],
            dims[D - 2],
            "causal softmax needs square [.., L, L] scores, got {dims:?}"
        );
    }
    #[cfg(feature = "flex")]
    if runs_fused(&x) {
        return extension::softmax(x, scale, causal);
    }
    composed::softmax(x, scale, causal)
}

/// Causal softmax attention, `softmax(scale·QKᵀ + causal mask) V`, with `dropout` (if any) on
/// the probabilities while training.
///
/// Where the fused kernels run, one task per (sequence, head) computes the scores, softmax,
/// dropout and output row by row, and its backward pass likewise ([`attention`]); the dropout
/// mask is the one [`dropout`] would draw for the `[batch, heads, L, L]` probabilities with the
/// same key. Elsewhere it is the composed form ([`composed::causal_attention`]).
///
/// - q, k: `[batch, heads, L, d]`; v: `[batch, heads, L, dv]`
/// - returns `[batch, heads, L, dv]`
pub fn causal_attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    scale: f32,
    dropout: Option<&Dropout>,
) -> Tensor<4> {
    #[cfg(feature = "flex")]
    if runs_fused(&q) {
        let training = q.device().is_autodiff();
        let prob = match dropout {
            Some(dropout) if training && dropout.training.is_enabled() => dropout.prob,
            _ => 0.0,
        };
        let key = if prob > 0.0 { dropout::next_key() } else { 0 };
        return extension::causal_attention(q, k, v, scale, prob, key);
    }
    composed::causal_attention(q, k, v, scale, dropout)
}

/// A linear layer on rows: `x·weight + bias`, as burn's [`burn::tensor::module::linear`].
///
/// Where the fused kernels run (and with a bias), the products are `gemm`'s single-threaded
/// kernels over fixed chunks of rows split over rayon's threads, forward and backward (`linear`):
/// burn-flex multi-threads a product only above `192³` multiply-adds, which leaves most of the
/// experiments' products on one core. Elsewhere it is burn's.
///
/// - x: `[rows, d_in]`; weight: `[d_in, d_out]`; bias: `[d_out]`
/// - returns `[rows, d_out]`
pub fn linear(x: Tensor<2>, weight: Tensor<2>, bias: Option<Tensor<1>>) -> Tensor<2> {
    #[cfg(feature = "flex")]
    if let (true, Some(bias)) = (runs_fused(&x), &bias) {
        return extension::linear(x, weight, bias.clone());
    }
    composed::linear(x, weight, bias)
}

/// Block-sparse causal attention with the fixed pattern of Child et al.: query `i` of block `n`
/// (blocks of `block` positions) sees the keys `j <= i` of its own block and the last `summaries`
/// keys of every earlier block, under one softmax scaled by `scale`, with `dropout` (if any) on
/// the probabilities while training.
///
/// Where the fused kernels run, one task per (sequence, head) gathers each block's keys once and
/// computes its queries' scores, softmax, dropout and output row by row, and its backward pass
/// likewise (`sparse`); the dropout masks are the ones the composed form's two dropout calls
/// would draw (the local probabilities', then the summaries'). Elsewhere it is the composed form
/// ([`composed::sparse_attention`]).
///
/// - q, k: `[batch, heads, L, d]`; v: `[batch, heads, L, dv]`
/// - returns `[batch, heads, L, dv]`
pub fn sparse_attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    scale: f32,
    block: usize,
    summaries: usize,
    dropout: Option<&Dropout>,
) -> Tensor<4> {
    #[cfg(feature = "flex")]
    if runs_fused(&q) {
        let l = q.dims()[2];
        let block = crate::kernels::sparse::effective_block(block, l);
        let training = q.device().is_autodiff();
        let prob = match dropout {
            Some(dropout) if training && dropout.training.is_enabled() => dropout.prob,
            _ => 0.0,
        };
        // The composed form's dropout calls in its order: the local probabilities', then, with
        // more than one block, the summaries'.
        let keys = if prob > 0.0 {
            let local = dropout::next_key();
            [local, if l > block { dropout::next_key() } else { 0 }]
        } else {
            [0, 0]
        };
        return extension::sparse_attention(q, k, v, scale, block, summaries, prob, keys);
    }
    composed::sparse_attention(q, k, v, scale, block, summaries, dropout)
}

/// Mamba's selective scan, discretisation included: with `a_t = exp(Δ_t A)`,
/// `h_t[ch, n] = a_t[ch, n] h_{t−1}[ch, n] + Δ_t[ch] B_t[n] u_t[ch]` from `h_{−1} = 0`, read out
/// as `y_t[ch] = Σ_n C_t[n] h_t[ch, n]` (no `D u` term).
///
/// Where the fused kernels run, one task per sequence runs the recurrence in one pass, computing
/// `exp(Δ_t A)` and `Δ_t B_t u_t` as it goes, and its backward pass recomputes the states and
/// runs backwards (`scan`): nothing of size `batch·L·channels·N` is built. Elsewhere it is the
/// composed form ([`composed::selective_scan`]), which discretises into such tensors and loops
/// over time.
///
/// - u, delta: `[batch, L, channels]`; a: `[channels, N]`; b, c: `[batch, L, N]`
/// - returns `[batch, L, channels]`
pub fn selective_scan(
    u: Tensor<3>,
    delta: Tensor<3>,
    a: Tensor<2>,
    b: Tensor<3>,
    c: Tensor<3>,
) -> Tensor<3> {
    let [batch, l, channels] = u.dims();
    let n = a.dims()[1];
    assert_eq!(
        delta.dims(),
        u.dims(),
        "selective_scan: Δ must be shaped as u"
    );
    assert_eq!(
        a.dims(),
        [channels, n],
        "selective_scan: A must be [channels, N]"
    );
    assert_eq!(
        b.dims(),
        [batch, l, n],
        "selective_scan: B must be [batch, L, N]"
    );
    assert_eq!(
        c.dims(),
        [batch, l, n],
        "selective_scan: C must be [batch, L, N]"
    );
    #[cfg(feature = "flex")]
    if runs_fused(&u) {
        return extension::selective_scan(u, delta, a, b, c);
    }
    composed::selective_scan(u, delta, a, b, c)
}

/// GELU in its tanh approximation, `x/2 · (1 + tanh(√(2/π)·(x + 0.044715·x³)))`, computed as
/// the equal `x · σ(2√(2/π)·(x + 0.044715·x³))`.
pub fn gelu_tanh<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "flex")]
    if runs_fused(&x) {
        return extension::gelu_tanh(x);
    }
    composed::gelu_tanh(x)
}

/// LayerNorm over the last dimension: `(x − mean)/√(var + eps) · gamma + beta`, with the biased
/// variance, as PyTorch's and burn's.
///
/// - x: `[.., d]`; gamma, beta: `[d]`
/// - returns the shape of `x`
pub fn layer_norm<const D: usize>(
    x: Tensor<D>,
    gamma: Tensor<1>,
    beta: Option<Tensor<1>>,
    eps: f64,
) -> Tensor<D> {
    let [d] = gamma.dims();
    assert_eq!(
        x.dims()[D - 1],
        d,
        "layer_norm: the last dimension of x must match gamma"
    );
    #[cfg(feature = "flex")]
    if runs_fused(&x) {
        let beta = beta.unwrap_or_else(|| Tensor::zeros([d], &x.device()));
        return extension::layer_norm(x, gamma, beta, eps as f32);
    }
    composed::layer_norm(x, gamma, beta, eps)
}

/// The weighted negative log-likelihood of `targets` under `softmax(logits)`, summed over rows:
/// `Σᵣ wᵣ·(−log softmax(logitsᵣ)[targetsᵣ])`. The gradient flows to `logits` only (the weights
/// are a mask or constants).
///
/// - logits: `[rows, vocab]`; targets, weights: `[rows]`
/// - returns `[1]`
pub fn cross_entropy_sum(
    logits: Tensor<2>,
    targets: Tensor<1, Int>,
    weights: Tensor<1>,
) -> Tensor<1> {
    let [rows, _] = logits.dims();
    assert_eq!(
        targets.dims(),
        [rows],
        "cross_entropy_sum: one target per row"
    );
    assert_eq!(
        weights.dims(),
        [rows],
        "cross_entropy_sum: one weight per row"
    );
    #[cfg(feature = "flex")]
    if runs_fused(&logits) {
        return extension::cross_entropy_sum(logits, targets, weights);
    }
    composed::cross_entropy_sum(logits, targets, weights)
}

/// Linear attention's feature map `φ(x) = elu(x) + 1`, computed as `max(x, 0) + exp(min(x, 0))`:
/// the two forms are equal, but this one never evaluates `exp` of a large positive number.
pub fn elu_plus_one<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "flex")]
    if runs_fused(&x) {
        return extension::elu_plus_one(x);
    }
    composed::elu_plus_one(x)
}

/// `dropout` applied to `x`: while training (an autodiff device, the module not frozen) each
/// element is zeroed with probability `dropout.prob` and the rest scaled by `1/(1 − prob)`;
/// otherwise `x` unchanged, as burn's [`Dropout::forward`].
///
/// Where the fused kernels run, the mask comes from this thread's dropout stream
/// ([`seed_dropout`]), not from burn's process-global generator, and the backward pass
/// regenerates it from its key. Elsewhere this is burn's dropout.
pub fn dropout<const D: usize>(x: Tensor<D>, dropout: &Dropout) -> Tensor<D> {
    #[cfg(feature = "flex")]
    if runs_fused(&x) {
        let training = dropout.training.is_enabled() && x.device().is_autodiff();
        if !training || dropout.prob == 0.0 {
            return x;
        }
        return extension::dropout(x, dropout.prob, dropout::next_key());
    }
    dropout.forward(x)
}

/// Whether `x` is an `f32` tensor on a device where the fused kernels run.
#[cfg(feature = "flex")]
fn runs_fused<const D: usize>(x: &Tensor<D>) -> bool {
    x.dtype() == burn::tensor::DType::F32 && fused_on(&x.device())
}

/// Whether the fused kernels may run at all (see [`set_enabled`]).
static ENABLED: AtomicBool = AtomicBool::new(true);

/// Turns the fused kernels off (or back on) for the whole process, so that the composed form runs
/// everywhere: for measuring what the kernels gain (`dpcot bench --composed`) and for checking
/// that a result does not depend on them. On by default.
pub fn set_enabled(enabled: bool) {
    ENABLED.store(enabled, Ordering::Relaxed);
}

/// Whether the fused kernels run for `f32` tensors on `device`: burn-flex, with or without
/// autodiff, unless [turned off](set_enabled). Elsewhere the operations of this module run
/// their composed form.
pub fn fused_on(device: &Device) -> bool {
    if !ENABLED.load(Ordering::Relaxed) {
        return false;
    }
    #[cfg(feature = "flex")]
    {
        use burn::backend::DispatchDevice;
        #[allow(unreachable_patterns)] // with flex the only compiled backend
        match device.as_dispatch() {
            DispatchDevice::Flex(_) => true,
            DispatchDevice::Autodiff(inner) => {
                matches!(inner.clone().inner(), DispatchDevice::Flex(_))
            }
            _ => false,
        }
    }
    #[cfg(not(feature = "flex"))]
    {
        let _ = device;
        false
    }
}
