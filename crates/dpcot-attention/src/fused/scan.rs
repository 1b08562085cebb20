//! The selective scan over contiguous `f32` slices, forward and backward: one task per sequence
//! on rayon's threads, each a single pass over time (the backward pass recomputes the states
//! and then runs backwards), so results do not depend on the number of threads.
//!
//! With `decay, input: [batch, L, channels, N]` and `c: [batch, L, N]`:
//!
//! - forward: `h_t = decay_t ⊙ h_{t−1} + input_t` (`h_{−1} = 0`), `y_t[ch] = Σ_n h_t[ch, n] c_t[n]`;
//! - backward, from `dy`: `dh_t = dy_t[ch] c_t[n] + decay_{t+1} ⊙ dh_{t+1}`, then
//!   `d input_t = dh_t`, `d decay_t = dh_t ⊙ h_{t−1}`, `d c_t[n] = Σ_ch dy_t[ch] h_t[ch, n]`.

use rayon::prelude::*;

/// `[batch, L, channels, N]` of the scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shape {
    pub batch: usize,
    pub len: usize,
    pub channels: usize,
    pub state: usize,
}

impl Shape {
    /// Elements of one sequence's `decay` (or `input`).
    fn per_sequence(&self) -> usize {
        self.len * self.channels * self.state
    }
}

/// `y[batch, L, channels]` of the scan.
pub(crate) fn forward(decay: &[f32], input: &[f32], c: &[f32], shape: Shape, y: &mut [f32]) {
    let Shape {
        len,
        channels,
        state,
        ..
    } = shape;
    let per = shape.per_sequence();
    y.par_chunks_mut(len * channels)
        .enumerate()
        .for_each(|(b, y)| {
            let (decay, input) = (&decay[b * per..][..per], &input[b * per..][..per]);
            let c = &c[b * len * state..][..len * state];
            let mut h = vec![0.0f32; channels * state];
            for t in 0..len {
                let row = t * channels * state;
                step(
                    &mut h,
                    &decay[row..][..channels * state],
                    &input[row..][..channels * state],
                );
                read(
                    &h,
                    &c[t * state..][..state],
                    &mut y[t * channels..][..channels],
                );
            }
        });
}

/// The gradients of [`forward`]'s three inputs from `dy`, written into zeroed buffers.
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward(
    decay: &[f32],
    input: &[f32],
    c: &[f32],
    dy: &[f32],
    shape: Shape,
    d_decay: &mut [f32],
    d_input: &mut [f32],
    d_c: &mut [f32],
) {
    let Shape {
        len,
        channels,
        state,
        ..
    } = shape;
    let per = shape.per_sequence();
    let width = channels * state;
    d_decay
        .par_chunks_mut(per.max(1))
        .zip(d_input.par_chunks_mut(per.max(1)))
        .zip(d_c.par_chunks_mut((len * state).max(1)))
        .enumerate()
        .for_each(|(b, ((d_decay, d_input), d_c))| {
            let (decay, input) = (&decay[b * per..][..per], &input[b * per..][..per]);
            let c = &c[b * len * state..][..len * state];
            let dy = &dy[b * len * channels..][..len * channels];
            // The states h_t, recomputed.
            let mut states = vec![0.0f32; per];
            for t in 0..len {
                let (before, now) = states.split_at_mut(t * width);
                let now = &mut now[..width];
                if t > 0 {
                    now.copy_from_slice(&before[(t - 1) * width..]);
                }
                step(
                    now,
                    &decay[t * width..][..width],
                    &input[t * width..][..width],
                );
            }
            let mut dh = vec![0.0f32; width];
            for t in (0..len).rev() {
                let row = t * width;
                let c_t = &c[t * state..][..state];
                let d_c_t = &mut d_c[t * state..][..state];
                for ch in 0..channels {
                    let g = dy[t * channels + ch];
                    for n in 0..state {
                        let i = ch * state + n;
                        let mut grad = g * c_t[n];
                        if t + 1 < len {
                            grad += dh[i] * decay[row + width + i];
                        }
                        dh[i] = grad;
                        d_input[row + i] = grad;
                        if t > 0 {
                            d_decay[row + i] = grad * states[row - width + i];
                        }
                        d_c_t[n] += g * states[row + i];
                    }
                }
            }
        });
}

/// `h ← decay ⊙ h + input`.
fn step(h: &mut [f32], decay: &[f32], input: &[f32]) {
    for ((h, &a), &x) in h.iter_mut().zip(decay).zip(input) {
        *h = a * *h + x;
    }
}

/// `y[ch] = Σ_n h[ch, n] c[n]`.
fn read(h: &[f32], c: &[f32], y: &mut [f32]) {
    for (y, h) in y.iter_mut().zip(h.chunks_exact(c.len())) {
        *y = h.iter().zip(c).map(|(h, c)| h * c).sum();
    }
}
