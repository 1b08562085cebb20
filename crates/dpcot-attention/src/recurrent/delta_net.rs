//! DeltaNet: linear attention whose state is written by the delta rule (Schlag, Irie and
//! Schmidhuber 2021), trained in the chunked form of Yang, Wang, Zhang, Shen and Kim (2024,
//! "Parallelizing Linear Transformers with the Delta Rule over Sequence Length").
//!
//! Per head, with unit-norm keys:
//!
//! `S_t = S_{t−1} + β_t k_t (v_t − S_{t−1}ᵀ k_t)ᵀ = (I − β_t k_t k_tᵀ) S_{t−1} + β_t k_t v_tᵀ`,
//! `o_t = S_tᵀ q_t`,
//!
//! so each token replaces what the state held under its key by a `β_t`-weighted blend with its
//! value. `β_t = σ(x_t W_β) ∈ (0, 1)` per head, or `2σ(·) ∈ (0, 2)` with negative eigenvalues
//! (the transition `I − β k kᵀ` then has eigenvalues in `(−1, 1]`, Grazzi et al. 2024). As in
//! the paper's layer, queries and keys are `L2norm(SiLU(x W))`, queries are scaled by `1/√d_k`,
//! and each head's output is RMS-normalised before the output projection; there is no short
//! convolution here.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::{sigmoid, silu};
use burn::tensor::{Bool, Device, Tensor, TensorData};

use super::{check_step_input, l2_norm, merge_heads, rms_norm, split_heads};
use crate::error::AttentionError;
use crate::kernels::common::{pad_seq, padded_len};
use crate::layer::linear_rows;

/// Validated parameters of DeltaNet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeltaNetParams {
    chunk_size: usize,
    negative_eigenvalues: bool,
}

impl DeltaNetParams {
    /// Checks `chunk_size >= 1`.
    pub fn new(chunk_size: usize, negative_eigenvalues: bool) -> Result<Self, AttentionError> {
        if chunk_size == 0 {
            return Err(AttentionError::invalid(
                "chunk_size",
                "must be at least 1, got 0",
            ));
        }
        Ok(Self {
            chunk_size,
            negative_eigenvalues,
        })
    }

    /// Chunk size `C` of the parallel form.
    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    /// Whether `β ∈ (0, 2)` (else `(0, 1)`).
    pub fn negative_eigenvalues(&self) -> bool {
        self.negative_eigenvalues
    }
}

/// The DeltaNet layer: projections, the chunked delta rule ([`delta_rule`]) and its state.
#[derive(Module, Debug)]
pub struct DeltaNet {
    /// Query, key and value projection, `d → 3d`.
    pub qkv: Linear,
    /// The writing strength's projection, `d → heads`.
    pub beta: Linear,
    /// Output projection, `d → d`.
    pub output: Linear,
    d_model: usize,
    n_heads: usize,
    #[module(skip)]
    params: DeltaNetParams,
}

impl DeltaNet {
    pub(crate) fn new(
        d_model: usize,
        n_heads: usize,
        params: DeltaNetParams,
        device: &Device,
    ) -> Self {
        Self {
            qkv: LinearConfig::new(d_model, 3 * d_model).init(device),
            beta: LinearConfig::new(d_model, n_heads).init(device),
            output: LinearConfig::new(d_model, d_model).init(device),
            d_model,
            n_heads,
            params,
        }
    }

    /// The layer's parameters.
    pub fn params(&self) -> DeltaNetParams {
        self.params
    }

    /// Model width.
    pub fn d_model(&self) -> usize {
        self.d_model
    }

    /// Heads.
    pub fn n_heads(&self) -> usize {
        self.n_heads
    }

    fn d_head(&self) -> usize {
        self.d_model / self.n_heads
    }

    /// Queries (normalised and scaled), keys (unit norm), values, each
    /// `[batch, heads, seq, d_head]`, and `β`, `[batch, heads, seq, 1]`.
    fn inputs(&self, x: Tensor<3>) -> [Tensor<4>; 4] {
        let d = self.d_model;
        let qkv = linear_rows(&self.qkv, x.clone());
        let part =
            |i: usize| split_heads(qkv.clone().slice_dim(2, i * d..(i + 1) * d), self.n_heads);
        let scale = 1.0 / (self.d_head() as f32).sqrt();
        let mut beta = sigmoid(linear_rows(&self.beta, x));
        if self.params.negative_eigenvalues {
            beta = beta.mul_scalar(2.0);
        }
        [
            l2_norm(silu(part(0))).mul_scalar(scale),
            l2_norm(silu(part(1))),
            part(2),
            beta.swap_dims(1, 2).unsqueeze_dim(3),
        ]
    }

    fn finish(&self, heads: Tensor<4>) -> Tensor<3> {
        linear_rows(&self.output, merge_heads(rms_norm(heads)))
    }

    /// Parallel (training) forward.
    ///
    /// - x: `[batch, seq, d_model]`
    /// - returns `[batch, seq, d_model]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [q, k, v, beta] = self.inputs(x);
        self.finish(delta_rule(q, k, v, beta, self.params.chunk_size))
    }

    /// An empty decoding state.
    pub fn new_state(&self, batch: usize, device: &Device) -> DeltaNetState {
        let dh = self.d_head();
        DeltaNetState {
            state: Tensor::zeros([batch, self.n_heads, dh, dh], device),
            len: 0,
        }
    }

    /// Incremental forward of the next token.
    ///
    /// - x: `[batch, 1, d_model]`
    /// - returns `[batch, 1, d_model]`
    pub fn forward_step(
        &self,
        x: Tensor<3>,
        state: &mut DeltaNetState,
    ) -> Result<Tensor<3>, AttentionError> {
        check_step_input(&x, state.state.dims()[0], self.d_model)?;
        let [q, k, v, beta] = self.inputs(x);
        Ok(self.finish(state.step(q, k, v, beta)))
    }
}

/// DeltaNet's decoding state: `S` per head.
#[derive(Debug, Clone)]
pub struct DeltaNetState {
    /// `[batch, heads, d_k, d_v]`
    state: Tensor<4>,
    len: usize,
}

impl DeltaNetState {
    /// Tokens consumed so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no token has been consumed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// One step of the delta rule.
    ///
    /// - q, k: `[batch, heads, 1, d_k]`, v: `[batch, heads, 1, d_v]`, beta: `[batch, heads, 1, 1]`
    /// - returns `[batch, heads, 1, d_v]`
    pub fn step(&mut self, q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, beta: Tensor<4>) -> Tensor<4> {
        let update = (v - k.clone().matmul(self.state.clone())).mul(beta);
        self.state
            .inplace(|s| s.add(k.swap_dims(2, 3).matmul(update)));
        self.len += 1;
        q.matmul(self.state.clone())
    }
}

/// The delta rule, chunked (the WY/UT form of Yang et al. 2024): exact, `O(L·C·d + L·d²)`.
///
/// Inside a chunk of `C` tokens with keys `K`, values `V` and strengths `β`, the values
/// actually written are `U = T (diag(β) V − diag(β) K S)` with
/// `T = (I + tril₋₁(diag(β) K Kᵀ))⁻¹`, `S` the state entering the chunk. `T` is the inverse
/// of a unit lower-triangular matrix, computed as the finite product
/// `(I − N)(I + N²)(I + N⁴)…` of `N = tril₋₁(diag(β) K Kᵀ)` (`N^C = 0`), so the whole form is
/// matrix products. Then `O = Q S + tril(Q Kᵀ) U` and `S ← S + Kᵀ U`, chunk by chunk.
///
/// - q, k: `[batch, heads, seq, d_k]` (k of unit norm for the recurrence to be a delta rule)
/// - v: `[batch, heads, seq, d_v]`; beta: `[batch, heads, seq, 1]`
/// - returns `[batch, heads, seq, d_v]`
pub fn delta_rule(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    beta: Tensor<4>,
    chunk_size: usize,
) -> Tensor<4> {
    let [b, h, l, dk] = q.dims();
    let dv = v.dims()[3];
    let cs = chunk_size.min(l.max(1));
    let lp = padded_len(l, cs);
    let nc = lp / cs;
    let device = q.device();
    // Padded tokens have β = 0: they write nothing.
    let chunked = |x: Tensor<4>, d: usize| pad_seq(x, lp).reshape([b, h, nc, cs, d]);
    let (qc, kc, vc, bc) = (
        chunked(q, dk),
        chunked(k, dk),
        chunked(v, dv),
        chunked(beta, 1),
    );

    let kt = kc.clone().swap_dims(3, 4);
    let n = (kc.clone() * bc.clone())
        .matmul(kt.clone())
        .mask_fill(triangle_mask(cs, true, &device), 0.0);
    let t = unit_lower_inverse(n, cs);
    let w = t.clone().matmul(kc.clone() * bc.clone());
    let u = t.matmul(vc * bc);
    let scores = qc
        .clone()
        .matmul(kt)
        .mask_fill(triangle_mask(cs, false, &device), 0.0);

    let chunk = |x: &Tensor<5>, c: usize, d1: usize, d2: usize| {
        x.clone().slice_dim(2, c..c + 1).reshape([b, h, d1, d2])
    };
    let mut state: Option<Tensor<4>> = None;
    let mut outputs = Vec::with_capacity(nc);
    for c in 0..nc {
        let (scores_c, u_c) = (chunk(&scores, c, cs, cs), chunk(&u, c, cs, dv));
        let (out, u_c) = match &state {
            None => (scores_c.matmul(u_c.clone()), u_c),
            Some(s) => {
                let u_c = u_c - chunk(&w, c, cs, dk).matmul(s.clone());
                let out = chunk(&qc, c, cs, dk).matmul(s.clone()) + scores_c.matmul(u_c.clone());
                (out, u_c)
            }
        };
        outputs.push(out);
        if c + 1 < nc {
            let written = chunk(&kc, c, cs, dk).swap_dims(2, 3).matmul(u_c);
            state = Some(match state {
                None => written,
                Some(s) => s + written,
            });
        }
    }
    Tensor::cat(outputs, 2).slice_dim(2, 0..l)
}

/// `(I + N)⁻¹` for strictly lower-triangular `N` (`[.., n, n]`): `Σ_j (−N)^j`, as the product
/// `(I − N)(I + N²)(I + N⁴)…` with `⌈log₂ n⌉ − 1` squarings.
fn unit_lower_inverse(n: Tensor<5>, size: usize) -> Tensor<5> {
    let eye = Tensor::<2>::eye(size, &n.device()).reshape([1, 1, 1, size, size]);
    let mut inverse = eye - n.clone();
    let (mut power, mut covered) = (n, 2);
    while covered < size {
        power = power.clone().matmul(power);
        inverse = inverse.clone() + inverse.matmul(power.clone());
        covered *= 2;
    }
    inverse
}

/// `[1, 1, 1, n, n]`, `true` above the diagonal, and on it too if `strict` (for a strictly
/// lower-triangular result).
fn triangle_mask(n: usize, strict: bool, device: &Device) -> Tensor<5, Bool> {
    let data: Vec<bool> = (0..n)
        .flat_map(|r| (0..n).map(move |c| c > r || (strict && c == r)))
        .collect();
    Tensor::from_data(TensorData::new(data, [1, 1, 1, n, n]), device)
}

/// The recurrence itself, one token at a time: the reference [`delta_rule`] is tested against
/// (and that `scripts/recurrent_reference.py` mirrors).
///
/// Same shapes as [`delta_rule`].
pub fn naive(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, beta: Tensor<4>) -> Tensor<4> {
    let [b, h, l, dk] = q.dims();
    let dv = v.dims()[3];
    let mut state = DeltaNetState {
        state: Tensor::zeros([b, h, dk, dv], &q.device()),
        len: 0,
    };
    let at = |x: &Tensor<4>, t: usize| x.clone().slice_dim(2, t..t + 1);
    let outputs = (0..l)
        .map(|t| state.step(at(&q, t), at(&k, t), at(&v, t), at(&beta, t)))
        .collect();
    Tensor::cat(outputs, 2)
}
