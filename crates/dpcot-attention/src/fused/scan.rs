//! Mamba's selective scan over contiguous `f32` slices, discretisation included, forward and
//! backward: one task per sequence on rayon's threads, each a single pass over time (the
//! backward pass recomputes the states, then runs backwards); the gradient of `A`, shared by all
//! sequences, is summed from one partial per sequence in sequence order, so results do not
//! depend on the number of threads.
//!
//! With `u, Δ: [batch, L, channels]`, `A: [channels, N]` and `B, C: [batch, L, N]`:
//!
//! - forward: `h_t[ch, n] = exp(Δ_t[ch] A[ch, n]) h_{t−1}[ch, n] + Δ_t[ch] B_t[n] u_t[ch]` from
//!   `h_{−1} = 0`, and `y_t[ch] = Σ_n C_t[n] h_t[ch, n]`;
//! - backward, from `dy`: `dh_t = dy_t[ch] C_t[n] + exp(Δ_{t+1} A) ⊙ dh_{t+1}`; with
//!   `a_t = exp(Δ_t A)` and `g = dh_t ⊙ h_{t−1}` (the gradient of `a_t`):
//!   `dΔ_t = Σ_n (g a_t A + dh_t B_t u_t)`, `dA = Σ_t g a_t Δ_t`, `du_t = Σ_n dh_t Δ_t B_t`,
//!   `dB_t = Σ_ch dh_t Δ_t u_t`, `dC_t = Σ_ch dy_t h_t`.
//!
//! Nothing of size `batch·L·channels·N` is kept between the passes: the discretised `exp(ΔA)` and
//! `ΔBu`, which the composed form builds as tensors, exist here only one step at a time. Each
//! sequence's work runs inside [`pulp::Arch::dispatch`] with the polynomial [`exp_f32`], so the
//! loops over the state compile to SIMD code, as the kernels of [`super::cpu`] do.

use pulp::{Arch, Simd, WithSimd};
use rayon::prelude::*;

use super::cpu::exp_f32;

/// `[batch, L, channels]` inputs and an `N`-wide state per channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shape {
    pub batch: usize,
    pub len: usize,
    pub channels: usize,
    pub state: usize,
}

/// The inputs of the scan, each a contiguous slice of the shape in its doc.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Inputs<'a> {
    /// `[batch, L, channels]`
    pub u: &'a [f32],
    /// `[batch, L, channels]`
    pub delta: &'a [f32],
    /// `[channels, N]`
    pub a: &'a [f32],
    /// `[batch, L, N]`
    pub b: &'a [f32],
    /// `[batch, L, N]`
    pub c: &'a [f32],
}

/// One sequence's slices of the inputs.
struct Sequence<'a> {
    u: &'a [f32],
    delta: &'a [f32],
    b: &'a [f32],
    c: &'a [f32],
}

impl<'a> Inputs<'a> {
    fn sequence(&self, index: usize, shape: Shape) -> Sequence<'a> {
        let (lc, ln) = (shape.len * shape.channels, shape.len * shape.state);
        Sequence {
            u: &self.u[index * lc..][..lc],
            delta: &self.delta[index * lc..][..lc],
            b: &self.b[index * ln..][..ln],
            c: &self.c[index * ln..][..ln],
        }
    }
}

/// `h ← exp(Δ_t A) ⊙ h + Δ_t B_t u_t` at step `t` of `seq`.
#[inline(always)]
fn step(h: &mut [f32], seq: &Sequence<'_>, a: &[f32], t: usize, shape: Shape) {
    let (channels, n) = (shape.channels, shape.state);
    let b_t = &seq.b[t * n..][..n];
    for ch in 0..channels {
        let (delta, u) = (seq.delta[t * channels + ch], seq.u[t * channels + ch]);
        let (h, a) = (&mut h[ch * n..][..n], &a[ch * n..][..n]);
        for ((h, &a), &b) in h.iter_mut().zip(a).zip(b_t) {
            *h = exp_f32(delta * a) * *h + delta * b * u;
        }
    }
}

/// `y[batch, L, channels]` of the scan.
pub(crate) fn forward(inputs: Inputs<'_>, shape: Shape, y: &mut [f32]) {
    y.par_chunks_mut((shape.len * shape.channels).max(1))
        .enumerate()
        .for_each(|(index, y)| {
            let seq = inputs.sequence(index, shape);
            Arch::new().dispatch(ForwardSequence {
                seq,
                a: inputs.a,
                shape,
                y,
            });
        });
}

/// One sequence of [`forward`], as a job for [`Arch::dispatch`].
struct ForwardSequence<'a> {
    seq: Sequence<'a>,
    a: &'a [f32],
    shape: Shape,
    y: &'a mut [f32],
}

impl WithSimd for ForwardSequence<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _: S) {
        let Self { seq, a, shape, y } = self;
        let (channels, n) = (shape.channels, shape.state);
        let mut h = vec![0.0f32; channels * n];
        for t in 0..shape.len {
            step(&mut h, &seq, a, t, shape);
            let c_t = &seq.c[t * n..][..n];
            for (y, h) in y[t * channels..][..channels]
                .iter_mut()
                .zip(h.chunks_exact(n))
            {
                *y = h.iter().zip(c_t).map(|(h, c)| h * c).sum();
            }
        }
    }
}

/// The gradients of the scan's inputs, in the order of [`Inputs`].
pub(crate) struct Grads {
    pub u: Vec<f32>,
    pub delta: Vec<f32>,
    pub a: Vec<f32>,
    pub b: Vec<f32>,
    pub c: Vec<f32>,
}

/// The gradients of [`forward`]'s inputs from `dy: [batch, L, channels]`.
pub(crate) fn backward(inputs: Inputs<'_>, dy: &[f32], shape: Shape) -> Grads {
    let (len, channels, n) = (shape.len, shape.channels, shape.state);
    let (lc, ln) = (len * channels, len * n);
    let mut grads = Grads {
        u: vec![0.0; inputs.u.len()],
        delta: vec![0.0; inputs.delta.len()],
        a: vec![0.0; inputs.a.len()],
        b: vec![0.0; inputs.b.len()],
        c: vec![0.0; inputs.c.len()],
    };
    let partials_a: Vec<Vec<f32>> = grads
        .u
        .par_chunks_mut(lc.max(1))
        .zip(grads.delta.par_chunks_mut(lc.max(1)))
        .zip(grads.b.par_chunks_mut(ln.max(1)))
        .zip(grads.c.par_chunks_mut(ln.max(1)))
        .enumerate()
        .map(|(index, (((du, d_delta), db), dc))| {
            Arch::new().dispatch(BackwardSequence {
                seq: inputs.sequence(index, shape),
                a: inputs.a,
                dy: &dy[index * lc..][..lc],
                shape,
                du,
                d_delta,
                db,
                dc,
            })
        })
        .collect();
    for partial in partials_a {
        for (total, p) in grads.a.iter_mut().zip(partial) {
            *total += p;
        }
    }
    grads
}

/// One sequence of [`backward`], as a job for [`Arch::dispatch`]; returns its partial of `dA`.
struct BackwardSequence<'a> {
    seq: Sequence<'a>,
    a: &'a [f32],
    dy: &'a [f32],
    shape: Shape,
    du: &'a mut [f32],
    d_delta: &'a mut [f32],
    db: &'a mut [f32],
    dc: &'a mut [f32],
}

impl WithSimd for BackwardSequence<'_> {
    type Output = Vec<f32>;

    #[inline(always)]
    fn with_simd<S: Simd>(self, _: S) -> Vec<f32> {
        let Self {
            seq,
            a,
            dy,
            shape,
            du,
            d_delta,
            db,
            dc,
        } = self;
        let (len, channels, n) = (shape.len, shape.channels, shape.state);
        let width = channels * n;
        // The states h_0 … h_{L−1}, recomputed.
        let mut states = vec![0.0f32; len * width];
        for t in 0..len {
            let (before, now) = states.split_at_mut(t * width);
            let now = &mut now[..width];
            if t > 0 {
                now.copy_from_slice(&before[(t - 1) * width..]);
            }
            step(now, &seq, a, t, shape);
        }
        let mut da = vec![0.0f32; width];
        let mut dh = vec![0.0f32; width];
        // exp(Δ_t A) of this step, and of the step after (carried back).
        let mut decay = vec![0.0f32; width];
        let mut next_decay = vec![0.0f32; width];
        for t in (0..len).rev() {
            let (b_t, c_t) = (&seq.b[t * n..][..n], &seq.c[t * n..][..n]);
            let (db_t, dc_t) = (&mut db[t * n..][..n], &mut dc[t * n..][..n]);
            for ch in 0..channels {
                let delta = seq.delta[t * channels + ch];
                for (d, &a) in decay[ch * n..][..n].iter_mut().zip(&a[ch * n..][..n]) {
                    *d = exp_f32(delta * a);
                }
            }
            for ch in 0..channels {
                let i = t * channels + ch;
                let (g, delta, u) = (dy[i], seq.delta[i], seq.u[i]);
                let (mut d_delta_sum, mut du_sum) = (0.0f32, 0.0f32);
                for s in 0..n {
                    let k = ch * n + s;
                    let mut grad = g * c_t[s];
                    if t + 1 < len {
                        grad += dh[k] * next_decay[k];
                    }
                    let h_prev = if t > 0 {
                        states[(t - 1) * width + k]
                    } else {
                        0.0
                    };
                    let d_decay = grad * h_prev * decay[k];
                    d_delta_sum += d_decay * a[k] + grad * b_t[s] * u;
                    da[k] += d_decay * delta;
                    du_sum += grad * delta * b_t[s];
                    db_t[s] += grad * delta * u;
                    dc_t[s] += g * states[t * width + k];
                    dh[k] = grad;
                }
                d_delta[i] = d_delta_sum;
                du[i] = du_sum;
            }
            std::mem::swap(&mut decay, &mut next_decay);
        }
        da
    }
}
