//! Causal sliding-window attention and its ring-buffer cache.

use burn::nn::Dropout;
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor};

use super::buffer::KvBuffer;
use super::common::{attend_all, drop_probabilities, mask_3d, pad_seq, padded_len, scale, MASKED};
use crate::config::SlidingWindowParams;

/// Causal sliding-window attention: query `i` attends to keys `j` with `i - w < j <= i`.
///
/// Computed block-locally: the sequence is cut into blocks of `w` (the last one zero-padded),
/// and each query block scores only its own and the previous key block (`w × 2w` scores, then
/// masked to the band). `O(L·w·d)` work. A window longer than the sequence is clamped to it,
/// which does not change the result.
///
/// - q, k, v: `[batch, heads, seq, d_head]`
/// - returns `[batch, heads, seq, d_head]`
pub fn sliding_window_attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    params: &SlidingWindowParams,
) -> Tensor<4> {
    sliding_window_attention_dropout(q, k, v, params, None)
}

/// [`sliding_window_attention`] with `dropout` on the attention probabilities, active only
/// while training on an autodiff device.
pub(crate) fn sliding_window_attention_dropout(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    params: &SlidingWindowParams,
    dropout: Option<&Dropout>,
) -> Tensor<4> {
    let [b, h, l, d] = q.dims();
    let w = params.window().min(l.max(1));
    let lp = padded_len(l, w);
    let nb = lp / w;
    let blocks = |x: Tensor<4>| pad_seq(x, lp).reshape([b, h, nb, w, d]);
    let (scores, values) = band(blocks(q.mul_scalar(scale(d))), blocks(k), blocks(v));
    drop_probabilities(softmax(scores, 4), dropout)
        .matmul(values)
        .reshape([b, h, lp, d])
        .slice_dim(2, 0..l)
}

/// Masked scores of a width-`w` causal band, computed block by block.
///
/// Query block `n` is scored against key blocks `n - 1` and `n` (a zero block stands in for
/// block `-1`); the mask keeps `0 <= i - j < w`.
///
/// - qb (already scaled), kb, vb: `[batch, heads, nblocks, w, d]`
/// - returns scores `[batch, heads, nblocks, w, 2w]` and their values
///   `[batch, heads, nblocks, 2w, d]`
pub(crate) fn band(qb: Tensor<5>, kb: Tensor<5>, vb: Tensor<5>) -> (Tensor<5>, Tensor<5>) {
    let [b, h, nb, w, d] = qb.dims();
    let device = qb.device();
    let with_previous = |x: Tensor<5>| {
        let zero = Tensor::zeros([b, h, 1, w, d], &device);
        let previous = if nb > 1 {
            Tensor::cat(vec![zero, x.clone().slice_dim(2, 0..nb - 1)], 2)
        } else {
            zero
        };
        Tensor::cat(vec![previous, x], 3)
    };
    let keys = with_previous(kb);
    let values = with_previous(vb);
    // Row r of block n is position n·w + r; column c is position (n - 1)·w + c, so
    // i - j = w + r - c, and block 0 has no previous block.
    let outside = mask_3d(nb, w, 2 * w, &device, |n, r, c| {
        !(r < c && c <= w + r) || (n == 0 && c < w)
    });
    let scores = qb.matmul(keys.swap_dims(3, 4)).mask_fill(outside, MASKED);
    (scores, values)
}

/// Decoding cache of sliding-window attention: a ring buffer of the last `w` keys and values.
///
/// Step `t` overwrites slot `t mod w` and attends over at most `w` rows: `O(w·d)` work and
/// memory, independent of `t`.
#[derive(Debug, Clone)]
pub struct WindowCache {
    ring: KvBuffer,
    params: SlidingWindowParams,
    window: usize,
    len: usize,
}

impl WindowCache {
    /// An empty cache for the given window.
    pub fn new(
        batch: usize,
        heads: usize,
        d_head: usize,
        params: &SlidingWindowParams,
        device: &Device,
    ) -> Self {
        let window = params.window();
        Self {
            ring: KvBuffer::new(batch, heads, window, d_head, device),
            params: *params,
            window,
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
        self.ring.row_shape()
    }

    /// The parameters this cache was built for.
    pub fn params(&self) -> SlidingWindowParams {
        self.params
    }

    /// - q, k, v: `[batch, heads, 1, d_head]`
    /// - returns `[batch, heads, 1, d_head]`
    pub(crate) fn step(&mut self, q: Tensor<4>, k: Tensor<4>, v: Tensor<4>) -> Tensor<4> {
        let t = self.len;
        let d = q.dims()[3];
        // Softmax does not care about key order, so the ring needs no rotation.
        self.ring.write(t % self.window, k, v);
        self.len += 1;
        let (keys, values) = self.ring.read(0, (t + 1).min(self.window), 1);
        attend_all(q.mul_scalar(scale(d)), keys, values)
    }
}
