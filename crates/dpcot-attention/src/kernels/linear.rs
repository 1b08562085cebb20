//! Causal linear attention (Katharopoulos et al. 2020): chunked parallel form and recurrent state.

use burn::tensor::{Device, Tensor};

use super::common::{mask_3d, pad_seq, padded_len};
use crate::config::LinearParams;
use crate::fused;

/// Feature map `φ(x) = elu(x) + 1`, written as `max(x, 0) + exp(min(x, 0))`.
///
/// The two forms are equal, but this one never evaluates `exp` of a large positive number, so
/// the backward pass cannot meet `0 · inf`. Fused on burn-flex ([`fused::elu_plus_one`]).
pub fn feature_map<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    fused::elu_plus_one(x)
}

/// Causal linear attention, chunked.
///
/// `out_i = φ(q_i)ᵀ S_i / (φ(q_i)ᵀ z_i + ε)` with `S_i = Σ_{j≤i} φ(k_j) v_jᵀ` and
/// `z_i = Σ_{j≤i} φ(k_j)`. There is no `1/√d` temperature: it would only rescale `φ`'s input,
/// and the original formulation has none.
///
/// The sequence is cut into chunks of `C` (clamped to the sequence length). Inside a chunk the
/// causal part is a masked `C×C` product; across chunks, each chunk's state `φ(K_c)ᵀ V_c`
/// (`d×d`) and `Σ φ(K_c)` are summed over earlier chunks with an exclusive prefix sum (a
/// one-chunk shift then `cumsum`). `O(L·C·d + L·d²)` work.
///
/// - q, k: `[batch, heads, seq, d_head]`, v: `[batch, heads, seq, d_value]`
/// - returns `[batch, heads, seq, d_value]`
pub fn linear_attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    params: &LinearParams,
) -> Tensor<4> {
    let [b, h, l, d] = q.dims();
    let dv = v.dims()[3];
    let cs = params.chunk_size().min(l.max(1));
    let lp = padded_len(l, cs);
    let nc = lp / cs;
    let device = q.device();
    // Pad after φ so padded keys contribute exactly nothing to any state.
    let qc = pad_seq(feature_map(q), lp).reshape([b, h, nc, cs, d]);
    let kc = pad_seq(feature_map(k), lp).reshape([b, h, nc, cs, d]);
    let vc = pad_seq(v, lp).reshape([b, h, nc, cs, dv]);

    let future = mask_3d(1, cs, cs, &device, |_, r, c| c > r);
    let weights = qc
        .clone()
        .matmul(kc.clone().swap_dims(3, 4))
        .mask_fill(future, 0.0);
    let mut numerator = weights.clone().matmul(vc.clone());
    let mut denominator = weights.sum_dim(4);

    if nc > 1 {
        let exclusive_prefix = |per_chunk: Tensor<5>| {
            let [_, _, _, rows, cols] = per_chunk.dims();
            let shifted = Tensor::cat(
                vec![
                    Tensor::zeros([b, h, 1, rows, cols], &device),
                    per_chunk.slice_dim(2, 0..nc - 1),
                ],
                2,
            );
            shifted.cumsum(2)
        };
        let states = exclusive_prefix(kc.clone().swap_dims(3, 4).matmul(vc));
        let key_sums = exclusive_prefix(kc.sum_dim(3));
        numerator = numerator.add(qc.clone().matmul(states));
        denominator = denominator.add(qc.matmul(key_sums.swap_dims(3, 4)));
    }

    numerator
        .div(denominator.add_scalar(params.eps()))
        .reshape([b, h, lp, dv])
        .slice_dim(2, 0..l)
}

/// Recurrent state of linear attention: `S = Σ φ(k_j) v_jᵀ` and `z = Σ φ(k_j)`.
///
/// Each step adds one outer product and reads it back: `O(d²)` work and memory, independent of
/// the position.
#[derive(Debug, Clone)]
pub struct LinearState {
    /// `[batch, heads, d_head, d_value]`
    state: Tensor<4>,
    /// `[batch, heads, 1, d_head]`
    key_sum: Tensor<4>,
    params: LinearParams,
    len: usize,
}

impl LinearState {
    /// The zero state.
    pub fn new(
        batch: usize,
        heads: usize,
        d_head: usize,
        d_value: usize,
        params: &LinearParams,
        device: &Device,
    ) -> Self {
        Self {
            state: Tensor::zeros([batch, heads, d_head, d_value], device),
            key_sum: Tensor::zeros([batch, heads, 1, d_head], device),
            params: *params,
            len: 0,
        }
    }

    /// Number of tokens consumed so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no token has been consumed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn row_shape(&self) -> [usize; 3] {
        let [b, h, _, d] = self.key_sum.dims();
        [b, h, d]
    }

    /// The parameters this state was built for.
    pub fn params(&self) -> LinearParams {
        self.params
    }

    /// - q, k: `[batch, heads, 1, d_head]`, v: `[batch, heads, 1, d_value]`
    /// - returns `[batch, heads, 1, d_value]`
    pub(crate) fn step(&mut self, q: Tensor<4>, k: Tensor<4>, v: Tensor<4>) -> Tensor<4> {
        let fq = feature_map(q);
        let fk = feature_map(k);
        self.state
            .inplace(|s| s.add(fk.clone().swap_dims(2, 3).matmul(v)));
        self.key_sum.inplace(|z| z.add(fk));
        self.len += 1;
        let numerator = fq.clone().matmul(self.state.clone());
        let denominator = fq.matmul(self.key_sum.clone().swap_dims(2, 3));
        numerator.div(denominator.add_scalar(self.params.eps()))
    }
}
