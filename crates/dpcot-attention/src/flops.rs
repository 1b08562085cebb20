//! Floating-point operation counts of the forward passes, mirroring the implementation.
//!
//! # Convention
//!
//! - A matrix product `[m×k]·[k×n]` costs `2·m·k·n` (a multiply-add is 2 FLOPs).
//! - Every elementwise arithmetic op (add, sub, mul, div, exp, max/min/clamp) costs 1 per output
//!   element; a reduction (sum, max) or scan (cumsum) over `n` elements costs `n`.
//! - A softmax over `n` scores costs `5n` (max, subtract, exp, sum, divide).
//! - Masking, padding, reshapes, slices, concatenations and copies cost 0.
//! - Counts are for one sequence (batch 1); multiply by the batch size.
//! - The counts follow what the code does, including the zero padding of the sequence to a
//!   multiple of the block or chunk size and the work on masked-out entries of computed blocks.
//! - A backward pass is counted as twice its forward ([`backward`]): each matrix product needs
//!   two products of the same size for the gradients of its two inputs, and the elementwise
//!   terms are of lower order.
//!
//! Kernel counts are per head with `d_head` = `d_value`; layer counts include all heads and the
//! projections.

use crate::config::{AttentionKernel, SparsePattern};
use crate::kernels::sparse::effective_block;

/// FLOPs of [`AttentionKernel::forward`] for one head over `seq_len` tokens.
pub fn kernel_forward(kernel: &AttentionKernel, seq_len: usize, d_head: usize) -> u64 {
    if seq_len == 0 {
        return 0;
    }
    let l = seq_len as u64;
    let d = d_head as u64;
    let scale_q = l * d;
    match kernel {
        AttentionKernel::Softmax => scale_q + 2 * l * l * d + 5 * l * l + 2 * l * l * d,
        AttentionKernel::SlidingWindow(p) => {
            let w = p.window().min(seq_len) as u64;
            let lp = padded(seq_len, w);
            scale_q + 4 * lp * w * d + 5 * lp * 2 * w + 4 * lp * w * d
        }
        AttentionKernel::Sparse(p) => {
            let bs = effective_block(p.block_size(), seq_len) as u64;
            let lp = padded(seq_len, bs);
            let nb = lp / bs;
            match p.pattern() {
                SparsePattern::Fixed => {
                    let local_scores = 2 * lp * bs * d;
                    if nb == 1 {
                        return scale_q + local_scores + 5 * lp * bs + 2 * lp * bs * d;
                    }
                    let s = nb * p.summary_width() as u64;
                    let summary_scores = 2 * lp * s * d;
                    let merge = merged_softmax(lp, bs, s);
                    let values = 2 * lp * bs * d + 2 * lp * s * d + 2 * lp * d;
                    scale_q + local_scores + summary_scores + merge + values
                }
                SparsePattern::Strided => {
                    let band_scores = 4 * lp * bs * d;
                    if nb == 1 {
                        return scale_q + band_scores + 5 * lp * 2 * bs + 4 * lp * bs * d;
                    }
                    let stride_scores = 2 * lp * nb * d;
                    let merge = merged_softmax(lp, 2 * bs, nb);
                    let values = 4 * lp * bs * d + 2 * lp * nb * d + 2 * lp * d;
                    scale_q + band_scores + stride_scores + merge + values
                }
            }
        }
        AttentionKernel::Linear(p) => {
            let cs = p.chunk_size().min(seq_len) as u64;
            let lp = padded(seq_len, cs);
            let nc = lp / cs;
            let features = 2 * FEATURE_MAP * l * d;
            let intra = 2 * lp * cs * d + 2 * lp * cs * d + lp * cs;
            let inter = if nc > 1 {
                let chunk_states = 2 * lp * d * d + lp * d;
                let prefix = nc * d * d + nc * d;
                let read = 2 * lp * d * d + lp * d + 2 * lp * d + lp;
                chunk_states + prefix + read
            } else {
                0
            };
            features + intra + inter + lp + lp * d
        }
    }
}

/// FLOPs of one incremental step ([`AttentionKernel::step`]) for one head, for the token at
/// 0-based `position` (i.e. with `position` tokens already in the cache).
pub fn kernel_step(kernel: &AttentionKernel, position: usize, d_head: usize) -> u64 {
    let d = d_head as u64;
    let t = position as u64;
    let attend = |keys: u64| d + 2 * keys * d + 5 * keys + 2 * keys * d;
    match kernel {
        AttentionKernel::Softmax => attend(t + 1),
        AttentionKernel::SlidingWindow(p) => attend((t + 1).min(p.window() as u64)),
        AttentionKernel::Sparse(p) => {
            let b = p.block_size() as u64;
            let keys = match p.pattern() {
                SparsePattern::Fixed => t % b + 1 + (t / b) * p.summary_width() as u64,
                SparsePattern::Strided => (t + 1).min(b) + t / b,
            };
            attend(keys)
        }
        AttentionKernel::Linear(_) => {
            let features = 2 * FEATURE_MAP * d;
            let update = 2 * d * d + d * d + d;
            let read = 2 * d * d + 2 * d + 1 + d;
            features + update + read
        }
    }
}

/// FLOPs of [`CausalSelfAttention::forward`](crate::CausalSelfAttention::forward) for one
/// sequence: projections plus the kernel on every head.
pub fn layer_forward(
    kernel: &AttentionKernel,
    d_model: usize,
    n_heads: usize,
    seq_len: usize,
) -> u64 {
    seq_len as u64 * projections_per_token(d_model)
        + n_heads as u64 * kernel_forward(kernel, seq_len, d_model / n_heads.max(1))
}

/// FLOPs of one [`CausalSelfAttention::forward_step`](crate::CausalSelfAttention::forward_step)
/// for one sequence at 0-based `position`.
pub fn layer_step(
    kernel: &AttentionKernel,
    d_model: usize,
    n_heads: usize,
    position: usize,
) -> u64 {
    projections_per_token(d_model)
        + n_heads as u64 * kernel_step(kernel, position, d_model / n_heads.max(1))
}

/// The backward-pass convention: twice the forward.
pub fn backward(forward: u64) -> u64 {
    2 * forward
}

/// `φ(x) = max(x, 0) + exp(min(x, 0))`: clamp, clamp, exp, add.
const FEATURE_MAP: u64 = 4;

/// Fused `d → 3d` projection and `d → d` output projection, with biases.
fn projections_per_token(d_model: usize) -> u64 {
    let d = d_model as u64;
    (2 * d * 3 * d + 3 * d) + (2 * d * d + d)
}

/// `len` rounded up to a multiple of `block` (at least one block).
fn padded(len: usize, block: u64) -> u64 {
    (len as u64).div_ceil(block).max(1) * block
}

/// Softmax over two score sets of widths `a` and `b` per row, merged by a shared maximum:
/// two row maxima and their max, subtract and exp on both, two sums and their sum, and the
/// final division of the `d`-wide numerator (counted with the values).
fn merged_softmax(rows: u64, a: u64, b: u64) -> u64 {
    let maxima = rows * a + rows * b + rows;
    let exps = 2 * rows * a + 2 * rows * b;
    let sums = rows * a + rows * b + rows;
    maxima + exps + sums
}
