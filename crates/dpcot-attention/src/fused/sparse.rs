//! Block-sparse causal attention, the fixed pattern of Child et al. (2019), fused into one kernel
//! per head, forward and backward, over contiguous `f32` slices.
//!
//! Composed from tensor operations (`kernels::sparse`), the pattern is two batched products for
//! the scores (the local `B×B` blocks, and every query against the summary keys), two masks, a
//! shared row maximum, two `exp` passes, two sums, two dropouts, two batched products with the
//! values and a division: a dozen burn-flex operations over the scores, each with its own
//! allocation, and on the way back as many again. Here each (sequence, head) is one task and each
//! query block one step of it: the block's keys, the `c` summary keys of every earlier block and
//! then the block's own, are gathered once (transposed and scaled), and each query of the block
//! is the dense kernel's row ([`super::attention`]) over the first `n·c + r + 1` of them, for
//! query `r` of block `n`. A query reads `O(B + c·L/B)` keys, as in the composed form; nothing is
//! masked or padded.
//!
//! The probabilities are kept for the backward pass, one row of [`Shape::width`] per query in the
//! gathered order. Backward, the gradients of a block's gathered keys and values are accumulated
//! transposed, then added to the keys' positions: a summary key receives from every later block.
//!
//! Dropout is the composed form's exactly: that form drops its two probability tensors (local
//! `[b, h, nb, B, B]`, summary `[b, h, nb·B, nb·c]`), each with its own key, and the kernel indexes
//! its two [`Masks`] the same way, so that with the same keys both forms drop the same
//! probabilities.

use pulp::{Arch, Simd, WithSimd};
use rayon::prelude::*;

use super::attention::{add_outer_transposed, padded, times_transposed, weighted_rows, KEYS};
use super::cpu::{dot, exp_shifted_sum, max_scaled};
use super::dropout::Mask;

/// The shape of one call: `heads` independent (sequence, head) pairs, each with `len` queries and
/// keys of width `d` and values of width `dv`, in blocks of `block` positions (at most `len`, the
/// last block possibly shorter) with the last `summaries` keys of each block (at most `block`)
/// visible to every later block.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    pub heads: usize,
    pub len: usize,
    pub d: usize,
    pub dv: usize,
    pub block: usize,
    pub summaries: usize,
}

impl Shape {
    fn blocks(self) -> usize {
        self.len.div_ceil(self.block)
    }

    /// The keys of the widest query row: the summaries of every earlier block and a whole block.
    /// The length of each query's row of kept probabilities.
    pub(crate) fn width(self) -> usize {
        match self.blocks() {
            0 => 0,
            blocks => (blocks - 1) * self.summaries + self.block,
        }
    }

    /// The row length of the gathered, transposed keys and values: [`Self::width`] rounded up to
    /// whole steps of [`KEYS`].
    fn stride(self) -> usize {
        self.width().div_ceil(KEYS) * KEYS
    }

    /// The positions of block `n`'s keys, in the order its queries see them: the summary keys of
    /// blocks `0..n`, then the block's own.
    fn keys(self, n: usize, positions: &mut Vec<usize>) {
        let (b, c) = (self.block, self.summaries);
        positions.clear();
        for m in 0..n {
            positions.extend((m + 1) * b - c..(m + 1) * b);
        }
        positions.extend(n * b..((n + 1) * b).min(self.len));
    }

    /// The rows (queries) of block `n`.
    fn rows(self, n: usize) -> std::ops::Range<usize> {
        n * self.block..((n + 1) * self.block).min(self.len)
    }
}

/// The dropout masks of the composed form's local and summary probabilities.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Masks {
    pub local: Mask,
    pub summary: Mask,
}

/// The dropout factors of one query's row of gathered keys: the first `summary_keys` from the
/// summary mask, the rest from the local one, each at the index the composed form's tensor gives
/// that probability.
struct RowMask {
    masks: Masks,
    summary_keys: usize,
    summary_start: u64,
    local_start: u64,
}

impl RowMask {
    /// The row of query `i` of head `head`. In the composed form the sequence is padded to
    /// `nb·B`; the local tensor is `[heads, nb·B, B]` and the summary one `[heads, nb·B, nb·c]`.
    fn new(masks: Masks, shape: Shape, head: usize, i: usize) -> Self {
        let blocks = shape.blocks();
        let padded_row = (head * blocks * shape.block + i) as u64;
        Self {
            masks,
            summary_keys: i / shape.block * shape.summaries,
            summary_start: padded_row * (blocks * shape.summaries) as u64,
            local_start: padded_row * shape.block as u64,
        }
    }

    #[inline(always)]
    fn factor(&self, g: usize) -> f32 {
        match g.checked_sub(self.summary_keys) {
            None => self.masks.summary.factor(self.summary_start + g as u64),
            Some(local) => self.masks.local.factor(self.local_start + local as u64),
        }
    }
}

/// `mᵀ[c·stride + g] = scale·m[positions[g]·width + c]`: the rows of `m` at `positions`,
/// transposed and scaled.
#[inline(always)]
fn gather_transposed(
    m: &[f32],
    width: usize,
    positions: &[usize],
    stride: usize,
    scale: f32,
    mt: &mut [f32],
) {
    for (g, &j) in positions.iter().enumerate() {
        for (c, &x) in m[j * width..][..width].iter().enumerate() {
            mt[c * stride + g] = scale * x;
        }
    }
}

/// The rows of `m` at `positions`, one after the other in `rows`.
#[inline(always)]
fn gather_rows(m: &[f32], width: usize, positions: &[usize], rows: &mut [f32]) {
    for (row, &j) in rows.chunks_exact_mut(width).zip(positions) {
        row.copy_from_slice(&m[j * width..][..width]);
    }
}

/// `m[positions[g]·width + c] += mᵀ[c·stride + g]`: the inverse of [`gather_transposed`]
/// (scale 1), adding.
#[inline(always)]
fn scatter_add_transposed(
    mt: &[f32],
    width: usize,
    stride: usize,
    positions: &[usize],
    m: &mut [f32],
) {
    for (g, &j) in positions.iter().enumerate() {
        for (c, y) in m[j * width..][..width].iter_mut().enumerate() {
            *y += mt[c * stride + g];
        }
    }
}

/// Forward pass of one head: its probabilities `[len, width]` and output `[len, dv]`.
struct Forward<'a> {
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    shape: Shape,
    head: usize,
    scale: f32,
    masks: Option<Masks>,
    probs: &'a mut [f32],
    out: &'a mut [f32],
}

impl WithSimd for Forward<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _: S) {
        let Shape {
            d,
            dv,
            summaries: c,
            ..
        } = self.shape;
        let (width, stride) = (self.shape.width(), self.shape.stride());
        // The scale goes into the gathered kᵀ, so the scores come out scaled.
        let mut kt = vec![0.0f32; d * stride];
        let mut values = vec![0.0f32; width * dv];
        let mut scores = vec![0.0f32; stride];
        let mut dropped = vec![0.0f32; stride];
        let mut positions = Vec::with_capacity(width);
        for n in 0..self.shape.blocks() {
            self.shape.keys(n, &mut positions);
            gather_transposed(self.k, d, &positions, stride, self.scale, &mut kt);
            gather_rows(self.v, dv, &positions, &mut values);
            for (r, i) in self.shape.rows(n).enumerate() {
                let visible = n * c + r + 1;
                times_transposed(&self.q[i * d..][..d], &kt, stride, visible, &mut scores);
                let scores = &scores[..visible];
                let p = &mut self.probs[i * width..][..visible];
                let max = max_scaled(scores, 1.0);
                let inv = 1.0 / exp_shifted_sum(scores, p, 1.0, max);
                for p in p.iter_mut() {
                    *p *= inv;
                }
                let weights = match self.masks {
                    Some(masks) => {
                        let row = RowMask::new(masks, self.shape, self.head, i);
                        let w = &mut dropped[..visible];
                        for (g, (w, &p)) in w.iter_mut().zip(p.iter()).enumerate() {
                            *w = p * row.factor(g);
                        }
                        &*w
                    }
                    None => &*p,
                };
                weighted_rows(weights, &values, &mut self.out[i * dv..][..dv]);
            }
        }
    }
}

/// Backward pass of one head: the gradients of its queries, keys and values (the last two
/// added to, so they must start at zero).
struct Backward<'a> {
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    shape: Shape,
    head: usize,
    scale: f32,
    masks: Option<Masks>,
    probs: &'a [f32],
    grad_out: &'a [f32],
    grad_q: &'a mut [f32],
    grad_k: &'a mut [f32],
    grad_v: &'a mut [f32],
}

impl WithSimd for Backward<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _: S) {
        let Shape {
            d,
            dv,
            summaries: c,
            ..
        } = self.shape;
        let (width, stride) = (self.shape.width(), self.shape.stride());
        let mut keys = vec![0.0f32; width * d];
        let mut vt = vec![0.0f32; dv * stride];
        // dKᵀ and dVᵀ of the block's gathered keys, accumulated over its queries.
        let mut grad_kt = vec![0.0f32; d * stride];
        let mut grad_vt = vec![0.0f32; dv * stride];
        let mut grad_p = vec![0.0f32; stride];
        let mut dropped = vec![0.0f32; stride];
        let mut grad_s = vec![0.0f32; stride];
        let mut positions = Vec::with_capacity(width);
        for n in 0..self.shape.blocks() {
            self.shape.keys(n, &mut positions);
            gather_rows(self.k, d, &positions, &mut keys);
            gather_transposed(self.v, dv, &positions, stride, 1.0, &mut vt);
            grad_kt.fill(0.0);
            grad_vt.fill(0.0);
            for (r, i) in self.shape.rows(n).enumerate() {
                let visible = n * c + r + 1;
                let p = &self.probs[i * width..][..visible];
                let doi = &self.grad_out[i * dv..][..dv];
                // dP̃ = dO Vᵀ, then through the dropout: dP = dP̃ ∘ M/(1 − p).
                times_transposed(doi, &vt, stride, visible, &mut grad_p);
                let grad_p = &mut grad_p[..visible];
                let dropped = padded(&mut dropped, visible);
                dropped[..visible].copy_from_slice(p);
                if let Some(masks) = self.masks {
                    let row = RowMask::new(masks, self.shape, self.head, i);
                    for (g, (gp, p)) in grad_p.iter_mut().zip(&mut dropped[..visible]).enumerate() {
                        let factor = row.factor(g);
                        *gp *= factor;
                        *p *= factor;
                    }
                }
                add_outer_transposed(doi, dropped, &mut grad_vt, stride);

                let weighted = dot(p, grad_p);
                let grad_s = padded(&mut grad_s, visible);
                for ((g, &p), &gp) in grad_s.iter_mut().zip(p).zip(grad_p.iter()) {
                    *g = self.scale * p * (gp - weighted);
                }
                weighted_rows(&grad_s[..visible], &keys, &mut self.grad_q[i * d..][..d]);
                add_outer_transposed(&self.q[i * d..][..d], grad_s, &mut grad_kt, stride);
            }
            scatter_add_transposed(&grad_kt, d, stride, &positions, self.grad_k);
            scatter_add_transposed(&grad_vt, dv, stride, &positions, self.grad_v);
        }
    }
}

fn check(shape: Shape) {
    let Shape {
        len,
        block,
        summaries,
        ..
    } = shape;
    // With one block (the block clamped to the length) the summaries are never read.
    assert!(
        block >= 1 && block <= len.max(1) && (summaries <= block || len <= block),
        "sparse attention: block {block} and {summaries} summaries for length {len}"
    );
}

/// Sparse attention of every head: writes the probabilities (`[heads, len, width]`, each row in
/// the gathered order of its block's keys and zero past its visible ones, before dropout) and
/// the output (`[heads, len, dv]`). `q`, `k` are `[heads, len, d]`, `v` is `[heads, len, dv]`;
/// `masks`, if any, drop probabilities as the composed form's dropouts with the same keys would.
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    shape: Shape,
    scale: f32,
    masks: Option<Masks>,
    probs: &mut [f32],
    out: &mut [f32],
) {
    check(shape);
    let Shape {
        heads,
        len: l,
        d,
        dv,
        ..
    } = shape;
    let width = shape.width();
    assert!(q.len() == heads * l * d && k.len() == q.len() && v.len() == heads * l * dv);
    assert!(probs.len() == heads * l * width && out.len() == v.len());
    if heads == 0 || l == 0 {
        return;
    }
    probs
        .par_chunks_mut(l * width)
        .zip(out.par_chunks_mut(l * dv))
        .enumerate()
        .for_each(|(h, (probs, out))| {
            Arch::new().dispatch(Forward {
                q: &q[h * l * d..][..l * d],
                k: &k[h * l * d..][..l * d],
                v: &v[h * l * dv..][..l * dv],
                shape,
                head: h,
                scale,
                masks,
                probs,
                out,
            })
        });
}

/// Gradients of [`forward`] with respect to `q`, `k` and `v`, from its probabilities and the
/// gradient of its output (same shapes as there); `grad_k` and `grad_v` must be zero.
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    probs: &[f32],
    grad_out: &[f32],
    shape: Shape,
    scale: f32,
    masks: Option<Masks>,
    grad_q: &mut [f32],
    grad_k: &mut [f32],
    grad_v: &mut [f32],
) {
    check(shape);
    let Shape {
        heads,
        len: l,
        d,
        dv,
        ..
    } = shape;
    let width = shape.width();
    assert!(probs.len() == heads * l * width && grad_out.len() == heads * l * dv);
    assert!(grad_q.len() == q.len() && grad_k.len() == k.len() && grad_v.len() == v.len());
    if heads == 0 || l == 0 {
        return;
    }
    grad_q
        .par_chunks_mut(l * d)
        .zip(grad_k.par_chunks_mut(l * d))
        .zip(grad_v.par_chunks_mut(l * dv))
        .enumerate()
        .for_each(|(h, ((grad_q, grad_k), grad_v))| {
            Arch::new().dispatch(Backward {
                q: &q[h * l * d..][..l * d],
                k: &k[h * l * d..][..l * d],
                v: &v[h * l * dv..][..l * dv],
                shape,
                head: h,
                scale,
                masks,
                probs: &probs[h * l * width..][..l * width],
                grad_out: &grad_out[h * l * dv..][..l * dv],
                grad_q,
                grad_k,
                grad_v,
            })
        });
}
