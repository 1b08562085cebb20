//! Causal softmax attention fused into one kernel per head, forward and backward, over
//! contiguous `f32` slices.
//!
//! Composed from tensor operations, a training step's attention is a batched `QKᵀ`, a softmax, a
//! dropout and a batched `PV`, each a full pass over the `L×L` probabilities; on burn-flex the
//! batched products are one `gemm` call per (sequence, head), each packing its operands, which
//! at the experiments' small heads (`d_head` 4–16, `L` ≤ 128) costs more than the arithmetic.
//! Here each (sequence, head) is one task: its scores, softmax, dropout and output row by row,
//! with the probabilities of keys after the query never computed from their scores (half the
//! work of the dense form). Tasks run in parallel over rayon's pool; each writes only its own
//! head's outputs, so the results do not depend on the number of threads.
//!
//! Heads are too narrow for a vector register, so the loops run over keys instead: a head's
//! keys (and, backward, its values) are transposed once, and a query's scores are `d` rows of
//! `Kᵀ` scaled and summed, 16 keys at a time. Weighted sums of rows (the output `PV`, the
//! gradient `dQ`) keep the head's width in registers, with a copy of the loop for each usual
//! width.
//!
//! The probabilities are kept for the backward pass, as the composed form keeps them, so the
//! backward pass is one more pass per head:
//! `dV = P̃ᵀ dO`, `dP = (dO Vᵀ) ∘ M/(1 − p)`, `dS = P ∘ (dP − rowsum(P ∘ dP))`,
//! `dQ = s·dS K`, `dK = s·dSᵀ Q`, with `P̃ = P ∘ M/(1 − p)` the dropped probabilities and `M` the
//! dropout mask, regenerated from its key ([`super::dropout`]). `dK` and `dV` are accumulated
//! transposed, a row of keys at a time.

use pulp::{Arch, Simd, WithSimd};
use rayon::prelude::*;

use super::cpu::{dot, exp_shifted_sum, max_scaled};
use super::dropout::Mask;

/// Keys per step of the loops that run over keys: two AVX registers of `f32`, so that each step
/// has two independent chains of multiply-adds.
pub(super) const KEYS: usize = 16;

/// The shape of one call: `heads` independent (sequence, head) pairs, each with `len` queries and
/// keys of width `d` and values of width `dv`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    pub heads: usize,
    pub len: usize,
    pub d: usize,
    pub dv: usize,
}

impl Shape {
    /// The row length of the transposed (`[width, keys]`) copies of a head's keys and values:
    /// `len` rounded up to whole steps of [`KEYS`], the padding zero.
    fn stride(self) -> usize {
        self.len.div_ceil(KEYS) * KEYS
    }
}

/// Inputs of one head.
struct Head<'a> {
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
}

impl<'a> Head<'a> {
    fn of(q: &'a [f32], k: &'a [f32], v: &'a [f32], shape: Shape, head: usize) -> Self {
        let (l, d, dv) = (shape.len, shape.d, shape.dv);
        Self {
            q: &q[head * l * d..][..l * d],
            k: &k[head * l * d..][..l * d],
            v: &v[head * l * dv..][..l * dv],
        }
    }
}

/// `mᵀ[c·stride + j] = m[j·width + c]`: a `[rows, width]` matrix into `[width, stride]`, times
/// `scale`.
#[inline(always)]
fn transpose(m: &[f32], width: usize, stride: usize, scale: f32, mt: &mut [f32]) {
    for (j, row) in m.chunks_exact(width).enumerate() {
        for (c, &x) in row.iter().enumerate() {
            mt[c * stride + j] = scale * x;
        }
    }
}

/// The inverse of [`transpose`] (scale 1): `m[j·width + c] = mᵀ[c·stride + j]`.
#[inline(always)]
fn transpose_back(mt: &[f32], width: usize, stride: usize, m: &mut [f32]) {
    for (j, row) in m.chunks_exact_mut(width).enumerate() {
        for (c, y) in row.iter_mut().enumerate() {
            *y = mt[c * stride + j];
        }
    }
}

/// `out[j] = Σ_c x[c]·mᵀ[c·stride + j]` for the first `n` keys, rounded up to a whole step of
/// [`KEYS`] (`out` and the rows of `mᵀ` must be that long): the row vector `x` times `m`
/// transposed, i.e. `x`'s dot product with each of the first `n` rows of `m`.
#[inline(always)]
pub(super) fn times_transposed(x: &[f32], mt: &[f32], stride: usize, n: usize, out: &mut [f32]) {
    let steps = n.div_ceil(KEYS);
    for (step, out) in out.as_chunks_mut::<KEYS>().0[..steps]
        .iter_mut()
        .enumerate()
    {
        let mut acc = [0.0f32; KEYS];
        for (c, &xc) in x.iter().enumerate() {
            let keys: &[f32; KEYS] = mt[c * stride + step * KEYS..][..KEYS]
                .try_into()
                .expect("KEYS values");
            for (a, &m) in acc.iter_mut().zip(keys) {
                *a += xc * m;
            }
        }
        *out = acc;
    }
}

/// `mᵀ[c·stride + j] += x[c]·y[j]` for every `j < y.len()`: the outer product `yxᵀ` added to
/// `m` through its transpose. `y` is whole steps of [`KEYS`] (zero past the keys it is for), so
/// the loop has no scalar tail.
#[inline(always)]
pub(super) fn add_outer_transposed(x: &[f32], y: &[f32], mt: &mut [f32], stride: usize) {
    let (y, tail) = y.as_chunks::<KEYS>();
    debug_assert!(tail.is_empty());
    for (c, &xc) in x.iter().enumerate() {
        let row = mt[c * stride..].as_chunks_mut::<KEYS>().0;
        for (m, ys) in row.iter_mut().zip(y) {
            // Through a copy: LLVM does not vectorise the update in place, unsure whether `m`
            // and `ys` overlap.
            let mut sum = *m;
            for (s, &yj) in sum.iter_mut().zip(ys) {
                *s += xc * yj;
            }
            *m = sum;
        }
    }
}

/// `buffer[..n]` and zeros up to the next whole step of [`KEYS`].
#[inline(always)]
pub(super) fn padded(buffer: &mut [f32], n: usize) -> &mut [f32] {
    let padded = &mut buffer[..n.div_ceil(KEYS) * KEYS];
    padded[n..].fill(0.0);
    padded
}

/// `out = Σ_j w[j]·m[j·width..][..width]` with `width = out.len()`: a weighted sum of the first
/// `w.len()` rows of `m`. The heads' usual widths get a copy of the loop with the width known,
/// so that the sum stays in registers.
#[inline(always)]
pub(super) fn weighted_rows(w: &[f32], m: &[f32], out: &mut [f32]) {
    match out.len() {
        4 => weighted_rows_of::<4>(w, m, out),
        8 => weighted_rows_of::<8>(w, m, out),
        16 => weighted_rows_of::<16>(w, m, out),
        32 => weighted_rows_of::<32>(w, m, out),
        64 => weighted_rows_of::<64>(w, m, out),
        width => {
            out.fill(0.0);
            for (&wj, row) in w.iter().zip(m.chunks_exact(width)) {
                for (o, &x) in out.iter_mut().zip(row) {
                    *o += wj * x;
                }
            }
        }
    }
}

/// [`weighted_rows`] for rows of `W` values, with even and odd rows summed apart (two
/// independent chains of multiply-adds).
#[inline(always)]
fn weighted_rows_of<const W: usize>(w: &[f32], m: &[f32], out: &mut [f32]) {
    let rows = &m.as_chunks::<W>().0[..w.len()];
    let (mut even, mut odd) = ([0.0f32; W], [0.0f32; W]);
    let (pairs, last) = w.as_chunks::<2>();
    for (wp, rp) in pairs.iter().zip(rows.chunks_exact(2)) {
        for ((e, o), (&x, &y)) in even
            .iter_mut()
            .zip(odd.iter_mut())
            .zip(rp[0].iter().zip(&rp[1]))
        {
            *e += wp[0] * x;
            *o += wp[1] * y;
        }
    }
    if let [wl] = last {
        for (e, &x) in even.iter_mut().zip(&rows[w.len() - 1]) {
            *e += wl * x;
        }
    }
    for ((y, e), o) in out.iter_mut().zip(even).zip(odd) {
        *y = e + o;
    }
}

/// Multiplies each of `p`'s values by its dropout factor, `p[0]` being the head's probability
/// with flat index `first`.
#[inline(always)]
fn drop_row(mask: &Mask, first: u64, p: &mut [f32]) {
    for (j, p) in p.iter_mut().enumerate() {
        *p *= mask.factor(first + j as u64);
    }
}

/// Forward pass of one head: its probabilities `[len, len]` and output `[len, dv]`.
struct Forward<'a> {
    head: Head<'a>,
    shape: Shape,
    scale: f32,
    mask: Option<Mask>,
    /// Flat index of this head's first probability, for the dropout mask.
    offset: u64,
    probs: &'a mut [f32],
    out: &'a mut [f32],
}

impl WithSimd for Forward<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _: S) {
        let Shape { len: l, d, dv, .. } = self.shape;
        let stride = self.shape.stride();
        let Head { q, k, v } = self.head;
        // The scale goes into kᵀ, so the scores come out scaled.
        let mut kt = vec![0.0f32; d * stride];
        transpose(k, d, stride, self.scale, &mut kt);
        let mut scores = vec![0.0f32; stride];
        let mut dropped = vec![0.0f32; stride];
        for i in 0..l {
            let n = i + 1;
            times_transposed(&q[i * d..][..d], &kt, stride, n, &mut scores);
            let scores = &scores[..n];
            let row = &mut self.probs[i * l..][..l];
            let (p, future) = row.split_at_mut(n);
            let max = max_scaled(scores, 1.0);
            let inv = 1.0 / exp_shifted_sum(scores, p, 1.0, max);
            for p in p.iter_mut() {
                *p *= inv;
            }
            future.fill(0.0);

            let weights = match &self.mask {
                Some(mask) => {
                    let w = &mut dropped[..n];
                    w.copy_from_slice(p);
                    drop_row(mask, self.offset + (i * l) as u64, w);
                    &*w
                }
                None => &*p,
            };
            weighted_rows(weights, v, &mut self.out[i * dv..][..dv]);
        }
    }
}

/// Backward pass of one head: the gradients of its queries, keys and values.
struct Backward<'a> {
    head: Head<'a>,
    shape: Shape,
    scale: f32,
    mask: Option<Mask>,
    offset: u64,
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
        let Shape { len: l, d, dv, .. } = self.shape;
        let stride = self.shape.stride();
        let Head { q, k, v } = self.head;
        let mut vt = vec![0.0f32; dv * stride];
        transpose(v, dv, stride, 1.0, &mut vt);
        // dKᵀ and dVᵀ, accumulated over the queries, one row of keys at a time.
        let mut grad_kt = vec![0.0f32; d * stride];
        let mut grad_vt = vec![0.0f32; dv * stride];
        let mut grad_p = vec![0.0f32; stride];
        let mut dropped = vec![0.0f32; stride];
        let mut grad_s = vec![0.0f32; stride];
        for i in 0..l {
            let n = i + 1;
            let p = &self.probs[i * l..][..n];
            let doi = &self.grad_out[i * dv..][..dv];
            // dP̃ = dO Vᵀ, then through the dropout: dP = dP̃ ∘ M/(1 − p).
            times_transposed(doi, &vt, stride, n, &mut grad_p);
            let grad_p = &mut grad_p[..n];
            let dropped = padded(&mut dropped, n);
            dropped[..n].copy_from_slice(p);
            if let Some(mask) = &self.mask {
                let first = self.offset + (i * l) as u64;
                // One hash per key for both rows.
                for (j, (g, p)) in grad_p.iter_mut().zip(&mut dropped[..n]).enumerate() {
                    let factor = mask.factor(first + j as u64);
                    *g *= factor;
                    *p *= factor;
                }
            }
            add_outer_transposed(doi, dropped, &mut grad_vt, stride);

            let weighted = dot(p, grad_p);
            let grad_s = padded(&mut grad_s, n);
            for ((g, &p), &gp) in grad_s.iter_mut().zip(p).zip(grad_p.iter()) {
                *g = self.scale * p * (gp - weighted);
            }
            weighted_rows(&grad_s[..n], k, &mut self.grad_q[i * d..][..d]);
            add_outer_transposed(&q[i * d..][..d], grad_s, &mut grad_kt, stride);
        }
        transpose_back(&grad_kt, d, stride, self.grad_k);
        transpose_back(&grad_vt, dv, stride, self.grad_v);
    }
}

/// Causal attention of every head: writes the probabilities (`[heads, len, len]`, zero above
/// the diagonal, before dropout) and the output (`[heads, len, dv]`). `q`, `k` are
/// `[heads, len, d]`, `v` is `[heads, len, dv]`; `mask`, if any, drops probabilities as
/// [`super::dropout`] would drop the `[heads, len, len]` probability tensor with the same key.
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    shape: Shape,
    scale: f32,
    mask: Option<Mask>,
    probs: &mut [f32],
    out: &mut [f32],
) {
    let Shape {
        heads,
        len: l,
        d,
        dv,
    } = shape;
    assert!(q.len() == heads * l * d && k.len() == q.len() && v.len() == heads * l * dv);
    assert!(probs.len() == heads * l * l && out.len() == v.len());
    if heads == 0 || l == 0 {
        return;
    }
    probs
        .par_chunks_mut(l * l)
        .zip(out.par_chunks_mut(l * dv))
        .enumerate()
        .for_each(|(h, (probs, out))| {
            Arch::new().dispatch(Forward {
                head: Head::of(q, k, v, shape, h),
                shape,
                scale,
                mask,
                offset: (h * l * l) as u64,
                probs,
                out,
            })
        });
}

/// Gradients of [`forward`] with respect to `q`, `k` and `v`, from its probabilities and the
/// gradient of its output (same shapes as there).
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    probs: &[f32],
    grad_out: &[f32],
    shape: Shape,
    scale: f32,
    mask: Option<Mask>,
    grad_q: &mut [f32],
    grad_k: &mut [f32],
    grad_v: &mut [f32],
) {
    let Shape {
        heads,
        len: l,
        d,
        dv,
    } = shape;
    assert!(probs.len() == heads * l * l && grad_out.len() == heads * l * dv);
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
                head: Head::of(q, k, v, shape, h),
                shape,
                scale,
                mask,
                offset: (h * l * l) as u64,
                probs: &probs[h * l * l..][..l * l],
                grad_out: &grad_out[h * l * dv..][..l * dv],
                grad_q,
                grad_k,
                grad_v,
            })
        });
}
