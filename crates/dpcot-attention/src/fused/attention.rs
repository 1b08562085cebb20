//! Causal softmax attention fused into one kernel per head, forward and backward, over
//! contiguous `f32` slices.
//!
//! Composed from tensor operations, a training step's attention is a batched `QKᵀ`, a softmax, a
//! dropout and a batched `PV`, each a full pass over the `L×L` probabilities; on burn-flex the
//! batched products are one `gemm` call per (sequence, head), each packing its operands, which
//! at the experiments' small heads (`d_head` 4–16, `L` ≤ 128) costs more than the arithmetic.
//! Here each (sequence, head) is one task: its scores, softmax, dropout and output row by row,
//! reading only the keys at or before the query (half the products of the dense form). Tasks
//! run in parallel over rayon's pool; each writes only its own head's outputs, so the results do
//! not depend on the number of threads.
//!
//! The probabilities are kept for the backward pass, as the composed form keeps them, so the
//! backward pass is one more pass per head:
//! `dV = P̃ᵀ dO`, `dP = (dO Vᵀ) ∘ M/(1 − p)`, `dS = P ∘ (dP − rowsum(P ∘ dP))`,
//! `dQ = s·dS K`, `dK = s·dSᵀ Q`, with `P̃ = P ∘ M/(1 − p)` the dropped probabilities and `M` the
//! dropout mask, regenerated from its key ([`super::dropout`]).

use pulp::{Arch, Simd, WithSimd};
use rayon::prelude::*;

use super::cpu::exp_f32;
use super::dropout::Mask;

/// The shape of one call: `heads` independent (sequence, head) pairs, each with `len` queries and
/// keys of width `d` and values of width `dv`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    pub heads: usize,
    pub len: usize,
    pub d: usize,
    pub dv: usize,
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

#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for lane in 0..8 {
            acc[lane] += x[lane] * y[lane];
        }
    }
    let mut tail = 0.0;
    for (x, y) in ra.iter().zip(rb) {
        tail += x * y;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// `y += a·x`.
#[inline(always)]
fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += a * x;
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
        let Head { q, k, v } = self.head;
        for i in 0..l {
            let row = &mut self.probs[i * l..][..l];
            let qi = &q[i * d..][..d];
            let mut max = f32::NEG_INFINITY;
            for j in 0..=i {
                let s = self.scale * dot(qi, &k[j * d..][..d]);
                row[j] = s;
                max = max.max(s);
            }
            let mut sum = 0.0;
            for p in &mut row[..=i] {
                *p = exp_f32(*p - max);
                sum += *p;
            }
            let inv = 1.0 / sum;
            for p in &mut row[..=i] {
                *p *= inv;
            }
            row[i + 1..].fill(0.0);

            let oi = &mut self.out[i * dv..][..dv];
            oi.fill(0.0);
            let first = self.offset + (i * l) as u64;
            for (j, &p) in row[..=i].iter().enumerate() {
                let w = match &self.mask {
                    Some(mask) => p * mask.factor(first + j as u64),
                    None => p,
                };
                axpy(w, &v[j * dv..][..dv], oi);
            }
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
        let Head { q, k, v } = self.head;
        self.grad_q.fill(0.0);
        self.grad_k.fill(0.0);
        self.grad_v.fill(0.0);
        let mut grad_p = vec![0.0f32; l];
        for i in 0..l {
            let row = &self.probs[i * l..][..=i];
            let doi = &self.grad_out[i * dv..][..dv];
            let first = self.offset + (i * l) as u64;
            let mut weighted = 0.0;
            for (j, &p) in row.iter().enumerate() {
                let factor = match &self.mask {
                    Some(mask) => mask.factor(first + j as u64),
                    None => 1.0,
                };
                let g = factor * dot(doi, &v[j * dv..][..dv]);
                grad_p[j] = g;
                weighted += p * g;
                axpy(p * factor, doi, &mut self.grad_v[j * dv..][..dv]);
            }
            let qi = &q[i * d..][..d];
            for (j, &p) in row.iter().enumerate() {
                let ds = self.scale * p * (grad_p[j] - weighted);
                axpy(ds, &k[j * d..][..d], &mut self.grad_q[i * d..][..d]);
                axpy(ds, qi, &mut self.grad_k[j * d..][..d]);
            }
        }
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
