//! Dense causal softmax attention and its KV cache.

use burn::nn::Dropout;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Device, Tensor};

use super::buffer::KvBuffer;
use super::common::{attend_all, scale};
use crate::fused;

/// Causal scaled dot-product attention, `softmax(QKᵀ/√d + causal mask) V`.
///
/// `O(L²·d)` work. On a device without autodiff this is burn's fused causal attention op (on
/// flex a tiled kernel that never holds more than a tile of scores; about 3× faster than the
/// composed form, docs/benchmarks.md); under autodiff, where burn would compose that op from
/// primitives, it is [`fused::causal_attention`]: on burn-flex one fused kernel per head,
/// forward and backward, that never reads a future key.
///
/// - q, k, v: `[batch, heads, seq, d_head]`
/// - returns `[batch, heads, seq, d_head]`
pub fn softmax_attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>) -> Tensor<4> {
    softmax_attention_dropout(q, k, v, None)
}

/// [`softmax_attention`] with `dropout` on the attention probabilities, which is active only
/// while training on an autodiff device (as burn's dropout is).
pub(crate) fn softmax_attention_dropout(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    dropout: Option<&Dropout>,
) -> Tensor<4> {
    if !q.device().is_autodiff() {
        let options = AttentionModuleOptions {
            scale: None,
            softcap: None,
            is_causal: true,
        };
        return attention(q, k, v, None, None, options);
    }
    let d = q.dims()[3];
    fused::causal_attention(q, k, v, scale(d), dropout)
}

/// Key/value cache of softmax attention: every past key and value.
///
/// Step `t` appends one row in place and attends over `t + 1` rows: `O(t·d)` work.
#[derive(Debug, Clone)]
pub struct KvCache {
    buffer: KvBuffer,
    len: usize,
}

impl KvCache {
    /// An empty cache with room for `capacity` tokens (it grows past that by doubling).
    pub fn new(
        batch: usize,
        heads: usize,
        d_head: usize,
        capacity: usize,
        device: &Device,
    ) -> Self {
        Self {
            buffer: KvBuffer::new(batch, heads, capacity, d_head, device),
            len: 0,
        }
    }

    /// Number of tokens consumed so far (the position of the next token).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no token has been consumed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn row_shape(&self) -> [usize; 3] {
        self.buffer.row_shape()
    }

    /// Attention output of the next token.
    ///
    /// - q, k, v: `[batch, heads, 1, d_head]`
    /// - returns `[batch, heads, 1, d_head]`
    pub(crate) fn step(&mut self, q: Tensor<4>, k: Tensor<4>, v: Tensor<4>) -> Tensor<4> {
        let t = self.len;
        let d = q.dims()[3];
        self.buffer.write(t, k, v);
        self.len += 1;
        let (keys, values) = self.buffer.read(0, t + 1, 1);
        attend_all(q.mul_scalar(scale(d)), keys, values)
    }
}
