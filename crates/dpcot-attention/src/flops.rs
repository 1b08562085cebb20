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
use crate::recurrent::RecurrentKernel;

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

/// `log σ(x) = −log(1 + e⁻ˣ)`: exponential, addition, logarithm (the sign flips are free).
const LOG_SIGMOID: u64 = 3;
/// `σ(x) = 1/(1 + e⁻ˣ)`: exponential, addition, division.
const SIGMOID: u64 = 3;
/// `SiLU(x) = x·σ(x)`.
const SILU: u64 = SIGMOID + 1;
/// `softplus(x) = log(1 + eˣ)`: exponential, addition, logarithm.
const SOFTPLUS: u64 = 3;

/// A linear layer `in → out` on one token, with or without bias.
fn linear(i: u64, o: u64, bias: bool) -> u64 {
    2 * i * o + if bias { o } else { 0 }
}

/// RMS (or L2) normalisation of one `d`-wide row: square, sum, (divide by `d`), add ε, square
/// root, divide.
fn row_norm(d: u64, mean: bool) -> u64 {
    3 * d + 2 + u64::from(mean)
}

/// FLOPs of [`RecurrentMixer::forward`](crate::RecurrentMixer::forward) for one sequence of
/// `seq_len` tokens: projections, gates and normalisations of every token, and the kernel as the
/// code computes it (chunks padded to a multiple of the chunk size).
pub fn recurrent_forward(
    kernel: &RecurrentKernel,
    d_model: usize,
    n_heads: usize,
    seq_len: usize,
) -> u64 {
    if seq_len == 0 {
        return 0;
    }
    let (d, h, l) = (d_model as u64, n_heads.max(1) as u64, seq_len as u64);
    let dh = d / h;
    match kernel {
        RecurrentKernel::Gla(p) => {
            let cs = p.chunk_size().min(seq_len) as u64;
            let lp = padded(seq_len, cs);
            let nc = lp / cs;
            let intra = lp * dh + 5 * lp * cs * dh + 2 * lp * cs * dh;
            let inter = (nc - 1)
                * ((2 * cs * dh + 2 * cs * dh * dh + cs * dh)
                    + (dh + dh * dh + 3 * cs * dh + 2 * cs * dh * dh + dh * dh));
            l * gla_token(d, h) + h * (intra + inter)
        }
        RecurrentKernel::DeltaNet(p) => {
            let cs = p.chunk_size().min(seq_len) as u64;
            let lp = padded(seq_len, cs);
            let nc = lp / cs;
            let squarings = squarings(cs);
            let prepare = lp * dh
                + 2 * lp * cs * dh
                + nc * cs * cs
                + squarings * nc * (4 * cs * cs * cs + cs * cs)
                + lp * dh
                + 2 * lp * cs * dh
                + lp * dh
                + 2 * lp * cs * dh
                + 2 * lp * cs * dh;
            let first = 2 * cs * cs * dh;
            let later = (nc - 1) * (4 * cs * dh * dh + 2 * cs * dh + 2 * cs * cs * dh);
            let writes = (nc - 1) * 2 * dh * cs * dh + nc.saturating_sub(2) * dh * dh;
            l * delta_net_token(d, h, p.negative_eigenvalues())
                + h * (prepare + first + later + writes)
        }
        RecurrentKernel::Mamba(p) => {
            let (di, n) = (p.d_inner(d_model) as u64, p.d_state() as u64);
            l * (mamba_token(p, d_model) + 4 * di * n) + 2 * di * n
        }
    }
}

/// FLOPs of one [`RecurrentMixer::forward_step`](crate::RecurrentMixer::forward_step), per
/// sequence; the same at every position.
pub fn recurrent_step(kernel: &RecurrentKernel, d_model: usize, n_heads: usize) -> u64 {
    let (d, h) = (d_model as u64, n_heads.max(1) as u64);
    let dh = d / h;
    match kernel {
        RecurrentKernel::Gla(_) => gla_token(d, h) + h * (dh + 6 * dh * dh),
        RecurrentKernel::DeltaNet(p) => {
            delta_net_token(d, h, p.negative_eigenvalues()) + h * (7 * dh * dh + 2 * dh)
        }
        RecurrentKernel::Mamba(p) => {
            let (di, n) = (p.d_inner(d_model) as u64, p.d_state() as u64);
            mamba_token(p, d_model) + 4 * di * n + 2 * di * n
        }
    }
}

/// Everything of a GLA token but the kernel: projections, gate (log σ, `/τ`), query scale, the
/// heads' RMS norms, the output gate and the product with it.
fn gla_token(d: u64, h: u64) -> u64 {
    let rank = crate::recurrent::gla::GATE_RANK as u64;
    let projections = linear(d, 3 * d, true)
        + linear(d, rank, false)
        + linear(rank, d, true)
        + linear(d, d, true)
        + linear(d, d, true);
    projections + (LOG_SIGMOID + 1) * d + d + h * row_norm(d / h, true) + SILU * d + d
}

/// Everything of a DeltaNet token but the kernel: projections, `β` (σ, doubled or not), SiLU and
/// L2 norms of queries and keys, the query scale and the heads' RMS norms.
fn delta_net_token(d: u64, h: u64, negative_eigenvalues: bool) -> u64 {
    let projections = linear(d, 3 * d, true) + linear(d, h, true) + linear(d, d, true);
    let beta = SIGMOID * h + if negative_eigenvalues { h } else { 0 };
    let qk = 2 * SILU * d + 2 * h * row_norm(d / h, false) + d;
    projections + beta + qk + h * row_norm(d / h, true)
}

/// Everything of a Mamba token but the scan: projections, convolution, SiLUs, `Δ`'s softplus,
/// the discretisation (`exp(Δ A)`, `Δ x B`), `D x` and the gate.
fn mamba_token(p: &crate::recurrent::MambaParams, d_model: usize) -> u64 {
    let d = d_model as u64;
    let (di, n, k) = (
        p.d_inner(d_model) as u64,
        p.d_state() as u64,
        p.conv_width() as u64,
    );
    let r = p.dt_rank(d_model) as u64;
    let projections = linear(d, 2 * di, false)
        + linear(di, r + 2 * n, false)
        + linear(r, di, true)
        + linear(di, d, false);
    let convolution = 2 * k * di + SILU * di;
    let discretise = 2 * di * n + di + di * n;
    projections + convolution + SOFTPLUS * di + discretise + 2 * di + SILU * di + di
}

/// Squarings in DeltaNet's inverse of a `size × size` unit lower-triangular matrix.
fn squarings(size: u64) -> u64 {
    let (mut covered, mut count) = (2, 0);
    while covered < size {
        covered *= 2;
        count += 1;
    }
    count
}

/// Floats of decoding state one head of `kernel` carries to the next token after `position`
/// tokens: what a later query can still read (keys and values), or the recurrent state.
///
/// Softmax and the strided sparse pattern keep every past key and value (`2·t·d`); the fixed
/// pattern the current block's and the summaries of the completed blocks; the sliding window
/// the last `w − 1`; linear attention its `d×d` state and `d`-wide normaliser.
pub fn kernel_state_floats(kernel: &AttentionKernel, position: usize, d_head: usize) -> u64 {
    let (t, d) = (position as u64, d_head as u64);
    let keys = match kernel {
        AttentionKernel::Softmax => t,
        AttentionKernel::Sparse(p) => {
            let b = p.block_size() as u64;
            match p.pattern() {
                SparsePattern::Fixed => t % b + (t / b) * p.summary_width() as u64,
                SparsePattern::Strided => t,
            }
        }
        AttentionKernel::SlidingWindow(p) => t.min(p.window() as u64 - 1),
        AttentionKernel::Linear(_) => return d * d + d,
    };
    2 * keys * d
}

/// Floats of state a recurrent mixer carries from one token to the next, per sequence, at any
/// position: `heads·d_head²` for GLA and DeltaNet; `d_inner·N` plus the convolution's `K − 1`
/// last inputs for Mamba.
pub fn recurrent_state_floats(kernel: &RecurrentKernel, d_model: usize, n_heads: usize) -> u64 {
    match kernel {
        RecurrentKernel::Gla(_) | RecurrentKernel::DeltaNet(_) => {
            let dh = (d_model / n_heads.max(1)) as u64;
            n_heads as u64 * dh * dh
        }
        RecurrentKernel::Mamba(p) => {
            let di = p.d_inner(d_model) as u64;
            di * p.d_state() as u64 + (p.conv_width() as u64 - 1) * di
        }
    }
}
