//! Gated linear attention (Yang, Wang, Shen, Panda and Kim 2023, "Gated Linear Attention
//! Transformers with Hardware-Efficient Training").
//!
//! Per head, a `d_k × d_v` state decayed per key dimension by a data-dependent gate:
//!
//! `S_t = diag(α_t) S_{t−1} + k_t v_tᵀ`, `o_t = S_tᵀ q_t`, `α_t = σ(x_t W_α)^{1/τ}`,
//!
//! with the gate's projection low-rank (`d → 16 → d`) and `τ = 16`, as in the paper. The layer
//! scales queries by `1/√d_k`, normalises each head's output (RMS, no weights), multiplies it by
//! an output gate `SiLU(x W_r)` and projects it. Unlike the paper, keys are as wide as values
//! (`d_k = d_v = d_model / heads`, like the other models here) and there is no short
//! convolution.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::{log_sigmoid, silu};
use burn::tensor::{Bool, Device, Tensor, TensorData};

use super::{check_step_input, merge_heads, rms_norm, split_heads};
use crate::error::AttentionError;
use crate::kernels::common::{pad_seq, padded_len, MASKED};
use crate::layer::linear_rows;

/// Rank of the gate's projection `d → rank → d`.
pub const GATE_RANK: usize = 16;

/// The gate's temperature `τ`: `log α = log σ(·) / τ`, which keeps the decay close to 1 at
/// initialisation.
pub const GATE_TEMPERATURE: f32 = 16.0;

/// Validated parameters of gated linear attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GlaParams {
    chunk_size: usize,
}

impl GlaParams {
    /// Checks `chunk_size >= 1`.
    pub fn new(chunk_size: usize) -> Result<Self, AttentionError> {
        if chunk_size == 0 {
            return Err(AttentionError::invalid(
                "chunk_size",
                "must be at least 1, got 0",
            ));
        }
        Ok(Self { chunk_size })
    }

    /// Chunk size `C` of the parallel form.
    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }
}

/// The GLA layer: projections, gates, the chunked kernel ([`gla_attention`]) and its state.
#[derive(Module, Debug)]
pub struct GatedLinearAttention {
    /// Query, key and value projection, `d → 3d`.
    pub qkv: Linear,
    /// The gate's down projection, `d → 16`, no bias.
    pub gate_down: Linear,
    /// The gate's up projection, `16 → d`.
    pub gate_up: Linear,
    /// The output gate's projection, `d → d`.
    pub output_gate: Linear,
    /// Output projection, `d → d`.
    pub output: Linear,
    d_model: usize,
    n_heads: usize,
    #[module(skip)]
    params: GlaParams,
}

impl GatedLinearAttention {
    pub(crate) fn new(d_model: usize, n_heads: usize, params: GlaParams, device: &Device) -> Self {
        let linear = |i, o| LinearConfig::new(i, o).init(device);
        Self {
            qkv: linear(d_model, 3 * d_model),
            gate_down: LinearConfig::new(d_model, GATE_RANK)
                .with_bias(false)
                .init(device),
            gate_up: linear(GATE_RANK, d_model),
            output_gate: linear(d_model, d_model),
            output: linear(d_model, d_model),
            d_model,
            n_heads,
            params,
        }
    }

    /// The layer's parameters.
    pub fn params(&self) -> GlaParams {
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

    /// Queries (scaled), keys, values and log-gates, each `[batch, heads, seq, d_head]`.
    fn inputs(&self, x: Tensor<3>) -> [Tensor<4>; 4] {
        let d = self.d_model;
        let qkv = linear_rows(&self.qkv, x.clone());
        let part =
            |i: usize| split_heads(qkv.clone().slice_dim(2, i * d..(i + 1) * d), self.n_heads);
        let gate = linear_rows(&self.gate_up, linear_rows(&self.gate_down, x));
        let log_gate = log_sigmoid(gate).div_scalar(GATE_TEMPERATURE);
        let scale = 1.0 / (self.d_head() as f32).sqrt();
        [
            part(0).mul_scalar(scale),
            part(1),
            part(2),
            split_heads(log_gate, self.n_heads),
        ]
    }

    /// Per-head normalisation, output gate and projection of the kernel's output.
    fn finish(&self, heads: Tensor<4>, x: Tensor<3>) -> Tensor<3> {
        let gated = merge_heads(rms_norm(heads)).mul(silu(linear_rows(&self.output_gate, x)));
        linear_rows(&self.output, gated)
    }

    /// Parallel (training) forward.
    ///
    /// - x: `[batch, seq, d_model]`
    /// - returns `[batch, seq, d_model]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [q, k, v, g] = self.inputs(x.clone());
        self.finish(gla_attention(q, k, v, g, self.params.chunk_size), x)
    }

    /// An empty decoding state.
    pub fn new_state(&self, batch: usize, device: &Device) -> GlaState {
        let dh = self.d_head();
        GlaState {
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
        state: &mut GlaState,
    ) -> Result<Tensor<3>, AttentionError> {
        check_step_input(&x, state.state.dims()[0], self.d_model)?;
        let [q, k, v, g] = self.inputs(x.clone());
        let heads = state.step(q, k, v, g);
        Ok(self.finish(heads, x))
    }
}

/// GLA's decoding state: `S` per head.
#[derive(Debug, Clone)]
pub struct GlaState {
    /// `[batch, heads, d_k, d_v]`
    state: Tensor<4>,
    len: usize,
}

impl GlaState {
    /// Tokens consumed so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no token has been consumed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// One step of the recurrence.
    ///
    /// - q, k, g: `[batch, heads, 1, d_k]` (q scaled, g the log-gate), v: `[batch, heads, 1, d_v]`
    /// - returns `[batch, heads, 1, d_v]`
    pub fn step(&mut self, q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, g: Tensor<4>) -> Tensor<4> {
        let decay = g.exp().swap_dims(2, 3);
        self.state
            .inplace(|s| s.mul(decay).add(k.swap_dims(2, 3).matmul(v)));
        self.len += 1;
        q.matmul(self.state.clone())
    }
}

/// The GLA kernel, chunked: exact, `O(L·C·d_k·d_v)`-ish work with no `L×L` matrix.
///
/// The sequence is cut into chunks of `C` (clamped to the length). With `b_t` the cumulative
/// log-gate inside a chunk, a query reads the keys of its own chunk through
/// `Σ_i q_t[i] k_s[i] exp(b_t[i] − b_s[i])` (`s ≤ t`; every exponent is `≤ 0`, so nothing
/// overflows whatever the gates), and the state left by earlier chunks through
/// `(q_t ⊙ exp(b_t))ᵀ S`; a chunk then updates `S ← diag(exp(b_C)) S + Σ_s (k_s ⊙
/// exp(b_C − b_s)) v_sᵀ`. Chunks are visited in order, `⌈L/C⌉` steps.
///
/// - q, k, g: `[batch, heads, seq, d_k]` (q already scaled, g the log-gate `≤ 0`)
/// - v: `[batch, heads, seq, d_v]`
/// - returns `[batch, heads, seq, d_v]`
pub fn gla_attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    g: Tensor<4>,
    chunk_size: usize,
) -> Tensor<4> {
    let [b, h, l, dk] = q.dims();
    let dv = v.dims()[3];
    let cs = chunk_size.min(l.max(1));
    let lp = padded_len(l, cs);
    let nc = lp / cs;
    let device = q.device();
    // Padded positions come after every real one: whatever they hold, no real output reads them.
    let chunked = |x: Tensor<4>, d: usize| pad_seq(x, lp).reshape([b, h, nc, cs, d]);
    let (qc, kc, vc) = (chunked(q, dk), chunked(k, dk), chunked(v, dv));
    let cum = chunked(g, dk).cumsum(3);

    // Inside each chunk: [b, h, nc, t, s, d_k] decays, future pairs masked before the exp.
    let future = future_mask_6d(cs, &device);
    let decay = (cum.clone().unsqueeze_dim::<6>(4) - cum.clone().unsqueeze_dim::<6>(3))
        .mask_fill(future, MASKED)
        .exp();
    let scores = (qc.clone().unsqueeze_dim::<6>(4) * kc.clone().unsqueeze_dim::<6>(3) * decay)
        .sum_dim(5)
        .reshape([b, h, nc, cs, cs]);
    let intra = scores.matmul(vc.clone());
    if nc == 1 {
        return intra.reshape([b, h, lp, dv]).slice_dim(2, 0..l);
    }

    // Across chunks: the state, chunk by chunk.
    let chunk =
        |x: &Tensor<5>, c: usize, d: usize| x.clone().slice_dim(2, c..c + 1).reshape([b, h, cs, d]);
    let mut state: Tensor<4> = Tensor::zeros([b, h, dk, dv], &device);
    let mut outputs = Vec::with_capacity(nc);
    for c in 0..nc {
        let (q_c, k_c, v_c, cum_c) = (
            chunk(&qc, c, dk),
            chunk(&kc, c, dk),
            chunk(&vc, c, dv),
            chunk(&cum, c, dk),
        );
        let mut out = chunk(&intra, c, dv);
        if c > 0 {
            out = out + (q_c * cum_c.clone().exp()).matmul(state.clone());
        }
        if c + 1 < nc {
            let last = cum_c.clone().slice_dim(2, cs - 1..cs);
            let carried = state * last.clone().exp().swap_dims(2, 3);
            let written = (k_c * (last - cum_c).exp()).swap_dims(2, 3).matmul(v_c);
            state = carried + written;
        }
        outputs.push(out);
    }
    Tensor::cat(outputs, 2).slice_dim(2, 0..l)
}

/// The recurrence itself, one token at a time: the reference [`gla_attention`] is tested
/// against (and that `scripts/recurrent_reference.py` mirrors).
///
/// Same shapes as [`gla_attention`].
pub fn naive(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, g: Tensor<4>) -> Tensor<4> {
    let [b, h, l, dk] = q.dims();
    let dv = v.dims()[3];
    let mut state = GlaState {
        state: Tensor::zeros([b, h, dk, dv], &q.device()),
        len: 0,
    };
    let at = |x: &Tensor<4>, t: usize| x.clone().slice_dim(2, t..t + 1);
    let outputs = (0..l)
        .map(|t| state.step(at(&q, t), at(&k, t), at(&v, t), at(&g, t)))
        .collect();
    Tensor::cat(outputs, 2)
}

/// `[1, 1, 1, n, n, 1]`, `true` where `s > t` (the key is in the query's future).
fn future_mask_6d(n: usize, device: &Device) -> Tensor<6, Bool> {
    let data: Vec<bool> = (0..n).flat_map(|t| (0..n).map(move |s| s > t)).collect();
    Tensor::from_data(TensorData::new(data, [1, 1, 1, n, n, 1]), device)
}
