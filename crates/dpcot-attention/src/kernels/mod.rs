//! Head-level attention kernels on already-projected `q, k, v: [batch, heads, seq, d_head]`.
//!
//! Each variant has a parallel form (a free function, used for training) and a decoding cache
//! (used one token at a time). [`AttentionKernel::forward`] dispatches the parallel forms.

mod buffer;
pub(crate) mod common;
pub mod linear;
pub mod sliding;
pub mod softmax;
pub mod sparse;

use burn::nn::Dropout;
use burn::tensor::Tensor;

use crate::config::AttentionKernel;

pub use linear::{feature_map, linear_attention, LinearState};
pub use sliding::{sliding_window_attention, WindowCache};
pub use softmax::{softmax_attention, KvCache};
pub use sparse::{sparse_attention, SparseCache};

impl AttentionKernel {
    /// Parallel (training) form of this kernel.
    ///
    /// - q, k, v: `[batch, heads, seq, d_head]`
    /// - returns `[batch, heads, seq, d_head]`
    pub fn forward(&self, q: Tensor<4>, k: Tensor<4>, v: Tensor<4>) -> Tensor<4> {
        self.forward_dropout(q, k, v, None)
    }

    /// Parallel form with `dropout` on the attention probabilities, as the reference applies
    /// it (active only while training on an autodiff device). Linear attention has no
    /// probabilities (its kernel feature map is not normalised per query into weights that
    /// could be dropped one by one), so it ignores `dropout`.
    ///
    /// - q, k, v: `[batch, heads, seq, d_head]`
    /// - returns `[batch, heads, seq, d_head]`
    pub fn forward_dropout(
        &self,
        q: Tensor<4>,
        k: Tensor<4>,
        v: Tensor<4>,
        dropout: Option<&Dropout>,
    ) -> Tensor<4> {
        match self {
            Self::Softmax => softmax::softmax_attention_dropout(q, k, v, dropout),
            Self::Sparse(p) => sparse::sparse_attention_dropout(q, k, v, p, dropout),
            Self::Linear(p) => linear_attention(q, k, v, p),
            Self::SlidingWindow(p) => {
                sliding::sliding_window_attention_dropout(q, k, v, p, dropout)
            }
        }
    }
}
