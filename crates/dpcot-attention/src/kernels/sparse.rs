//! Block-sparse attention (Child et al. 2019), fixed and strided patterns, and its cache.

use burn::nn::Dropout;
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor};

use super::buffer::KvBuffer;
use super::common::{
    attend_all, drop_probabilities, mask_2d, mask_3d, pad_seq, padded_len, scale, MASKED,
};
use super::sliding::band;
use crate::config::{SparseParams, SparsePattern};
use crate::fused;

/// Sparse Transformer attention, computed block-sparse (never as a masked `L×L` matrix).
///
/// With block size `B` (clamped to the sequence length, which does not change the pattern) and
/// the sequence zero-padded to `nb·B`:
///
/// - **fixed**: the local part is `nb` batched `B×B` causal blocks; the summary part is one
///   product of all queries with the `nb·c` summary keys (the last `c` keys of every block),
///   masked so block `n` sees only summaries of blocks `< n`. `O(L·(B + c·L/B)·d)`.
/// - **strided**: the local part is the width-`B` band (each query block against its own and
///   the previous key block); the strided part views the sequence as an `nb × B` grid and,
///   for every column (residue `i mod B`), does a causal `nb × nb` product over earlier rows.
///   `O(L·(2B + L/B)·d)`.
///
/// Both parts are merged under a single softmax: the row maximum is taken over both score
/// sets, and numerators and denominators of the two parts are added before dividing.
///
/// On burn-flex the fixed pattern runs as one fused kernel per head that gathers each block's
/// keys once ([`fused::sparse_attention`]); the tensor operations described here are what the
/// other backends run, and the fused kernel's tested reference.
///
/// - q, k, v: `[batch, heads, seq, d_head]`
/// - returns `[batch, heads, seq, d_head]`
pub fn sparse_attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    params: &SparseParams,
) -> Tensor<4> {
    sparse_attention_dropout(q, k, v, params, None)
}

/// [`sparse_attention`] with `dropout` on the attention probabilities (applied to both parts'
/// numerators, divided by the undropped denominator), active only while training on an
/// autodiff device.
pub(crate) fn sparse_attention_dropout(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    params: &SparseParams,
    dropout: Option<&Dropout>,
) -> Tensor<4> {
    match params.pattern() {
        SparsePattern::Fixed => {
            let d = q.dims()[3];
            fused::sparse_attention(
                q,
                k,
                v,
                scale(d),
                params.block_size(),
                params.summary_width(),
                dropout,
            )
        }
        SparsePattern::Strided => strided(q, k, v, params.block_size(), dropout),
    }
}

/// Block size actually used for a sequence of length `l`.
pub(crate) fn effective_block(block: usize, l: usize) -> usize {
    block.min(l.max(1))
}

/// The fixed pattern composed from tensor operations, `q` scaled by `scale`: what
/// [`fused::sparse_attention`] runs where the fused kernels do not, and their reference.
pub(crate) fn fixed(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    scale: f32,
    block: usize,
    c: usize,
    dropout: Option<&Dropout>,
) -> Tensor<4> {
    let [b, h, l, d] = q.dims();
    let bs = effective_block(block, l);
    let lp = padded_len(l, bs);
    let nb = lp / bs;
    let device = q.device();
    let q = pad_seq(q.mul_scalar(scale), lp);
    let kb = pad_seq(k, lp).reshape([b, h, nb, bs, d]);
    let vb = pad_seq(v, lp).reshape([b, h, nb, bs, d]);

    let future = mask_3d(1, bs, bs, &device, |_, r, col| col > r);
    let local = q
        .clone()
        .reshape([b, h, nb, bs, d])
        .matmul(kb.clone().swap_dims(3, 4))
        .mask_fill(future, MASKED);
    if nb == 1 {
        return finish(drop_probabilities(softmax(local, 4), dropout).matmul(vb), l);
    }

    // With nb > 1 the block was not clamped, so c <= bs.
    let summaries = |x: Tensor<5>| x.slice_dim(3, bs - c..bs).reshape([b, h, nb * c, d]);
    let (ks, vs) = (summaries(kb), summaries(vb.clone()));
    let not_earlier = mask_2d(lp, nb * c, &device, |i, s| s / c >= i / bs);
    let summary = q.matmul(ks.swap_dims(2, 3)).mask_fill(not_earlier, MASKED);

    // One softmax over both parts: shared (detached, it cancels) row maximum.
    let m_local = row_max(local.clone()).reshape([b, h, lp, 1]);
    let m = m_local.max_pair(summary.clone().detach().max_dim(3));
    let p_local = local.sub(m.clone().reshape([b, h, nb, bs, 1])).exp();
    let p_summary = summary.sub(m).exp();
    let denominator = p_local
        .clone()
        .sum_dim(4)
        .reshape([b, h, lp, 1])
        .add(p_summary.clone().sum_dim(3));
    let numerator = drop_probabilities(p_local, dropout)
        .matmul(vb)
        .reshape([b, h, lp, d])
        .add(drop_probabilities(p_summary, dropout).matmul(vs));
    numerator.div(denominator).slice_dim(2, 0..l)
}

fn strided(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    block: usize,
    dropout: Option<&Dropout>,
) -> Tensor<4> {
    let [b, h, l, d] = q.dims();
    let bs = effective_block(block, l);
    let lp = padded_len(l, bs);
    let nb = lp / bs;
    let device = q.device();
    let blocks = |x: Tensor<4>| pad_seq(x, lp).reshape([b, h, nb, bs, d]);
    let (qb, kb, vb) = (blocks(q.mul_scalar(scale(d))), blocks(k), blocks(v));

    let (band_scores, band_values) = band(qb.clone(), kb.clone(), vb.clone());
    if nb == 1 {
        return finish(
            drop_probabilities(softmax(band_scores, 4), dropout).matmul(band_values),
            l,
        );
    }

    // Column r of the nb × B grid holds the positions ≡ r (mod B); query (n, r) sees rows m < n.
    let columns = |x: Tensor<5>| x.swap_dims(2, 3);
    let not_earlier = mask_3d(1, nb, nb, &device, |_, n, m| m >= n);
    let stride_scores = columns(qb)
        .matmul(columns(kb).swap_dims(3, 4))
        .mask_fill(not_earlier, MASKED);

    let m = row_max(band_scores.clone()).max_pair(row_max(stride_scores.clone()).swap_dims(2, 3));
    let p_band = band_scores.sub(m.clone()).exp();
    let p_stride = stride_scores.sub(m.swap_dims(2, 3)).exp();
    let denominator = p_band
        .clone()
        .sum_dim(4)
        .add(p_stride.clone().sum_dim(4).swap_dims(2, 3));
    let numerator = drop_probabilities(p_band, dropout).matmul(band_values).add(
        drop_probabilities(p_stride, dropout)
            .matmul(columns(vb))
            .swap_dims(2, 3),
    );
    finish(numerator.div(denominator), l)
}

/// Detached maximum over the last axis (keeps the axis).
fn row_max(scores: Tensor<5>) -> Tensor<5> {
    scores.detach().max_dim(4)
}

/// `[batch, heads, nblocks, B, d]` back to `[batch, heads, l, d]`, dropping the padding.
fn finish(blocks: Tensor<5>, l: usize) -> Tensor<4> {
    let [b, h, nb, bs, d] = blocks.dims();
    blocks.reshape([b, h, nb * bs, d]).slice_dim(2, 0..l)
}

/// Decoding cache of sparse attention.
///
/// - **fixed**: the keys/values of the current block (at most `B` rows, overwritten block after
///   block) and the summaries of all completed blocks (`c` rows per block). Step `t` attends over
///   `t mod B + 1 + c·⌊t/B⌋` rows: `O(B + c·t/B)` work, `O(B + c·t/B)` memory.
/// - **strided**: a ring of the last `B` rows plus, for every residue class `r`, the history of
///   rows `r, r + B, r + 2B, …` in its own buffer, so the strided keys of step `t` are one
///   contiguous slice. `O(B + t/B)` work; `O(t)` memory, as the strided part eventually needs
///   every past row.
#[derive(Debug, Clone)]
pub struct SparseCache {
    params: SparseParams,
    /// Fixed: the current block. Strided: ring of the last `B` rows. Slot `t mod B` either way.
    local: KvBuffer,
    /// Fixed: one buffer of summaries, `c` per block. Strided: one buffer per residue class,
    /// row `n` holding position `n·B + r`.
    history: Vec<KvBuffer>,
    len: usize,
}

impl SparseCache {
    /// An empty cache; `capacity` is the expected sequence length (buffers grow past it).
    pub fn new(
        batch: usize,
        heads: usize,
        d_head: usize,
        capacity: usize,
        params: &SparseParams,
        device: &Device,
    ) -> Self {
        let (bs, c) = (params.block_size(), params.summary_width());
        let blocks = capacity.div_ceil(bs);
        let history = match params.pattern() {
            SparsePattern::Fixed => vec![KvBuffer::new(batch, heads, blocks * c, d_head, device)],
            SparsePattern::Strided => (0..bs)
                .map(|_| KvBuffer::new(batch, heads, blocks, d_head, device))
                .collect(),
        };
        Self {
            params: *params,
            local: KvBuffer::new(batch, heads, bs, d_head, device),
            history,
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
        self.local.row_shape()
    }

    /// The parameters this cache was built for.
    pub fn params(&self) -> SparseParams {
        self.params
    }

    /// - q, k, v: `[batch, heads, 1, d_head]`
    /// - returns `[batch, heads, 1, d_head]`
    pub(crate) fn step(&mut self, q: Tensor<4>, k: Tensor<4>, v: Tensor<4>) -> Tensor<4> {
        let t = self.len;
        self.len += 1;
        let bs = self.params.block_size();
        let (n, r) = (t / bs, t % bs);
        let d = q.dims()[3];
        // The earlier-block keys of this step: summaries of blocks < n (fixed) or rows
        // r, r + B, …, t - B (strided); written for later steps before anything is read so
        // that the in-place writes find the buffers uniquely owned.
        // Local rows: the current block up to t (fixed) or the last B positions (strided).
        let (earlier, earlier_rows, local_rows) = match self.params.pattern() {
            SparsePattern::Fixed => {
                let c = self.params.summary_width();
                if r >= bs - c {
                    self.history[0].write(n * c + r - (bs - c), k.clone(), v.clone());
                }
                (&self.history[0], n * c, r + 1)
            }
            SparsePattern::Strided => {
                self.history[r].write(n, k.clone(), v.clone());
                (&self.history[r], n, (t + 1).min(bs))
            }
        };
        self.local.write(r, k, v);
        let (k_local, v_local) = self.local.read(0, local_rows, 1);
        let (keys, values) = if earlier_rows == 0 {
            (k_local, v_local)
        } else {
            let (k_earlier, v_earlier) = earlier.read(0, earlier_rows, 1);
            (
                Tensor::cat(vec![k_earlier, k_local], 3),
                Tensor::cat(vec![v_earlier, v_local], 3),
            )
        };
        attend_all(q.mul_scalar(scale(d)), keys, values)
    }
}
