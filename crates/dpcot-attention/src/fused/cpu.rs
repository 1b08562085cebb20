//! Fused CPU kernels over contiguous `f32` slices: softmax, tanh-GELU, LayerNorm, masked
//! cross-entropy and linear attention's feature map, each with its backward pass.
//!
//! Nothing here knows about burn: every kernel reads and writes plain row-major slices whose last
//! dimension has length `cols`.
//!
//! # How the kernels are fast
//!
//! - **Vectorised by the compiler.** Each kernel's loop over a chunk of rows runs inside
//!   [`pulp::Arch::dispatch`], which compiles it a second time with the best instruction set
//!   the CPU has (AVX2 + FMA on current x86-64) and picks that copy at run time. The loops are
//!   plain Rust over branch-free scalar helpers marked `#[inline(always)]` (`exp_f32`, the
//!   sigmoid, the per-row passes), so LLVM turns them into SIMD code. No libm `expf`/`tanhf` is
//!   called in a loop: those are opaque scalar calls that would stop vectorisation; `exp_f32` is
//!   a polynomial instead (about 6× faster per element than `expf`, single-threaded).
//! - **Structs, not closures, for `dispatch`.** pulp accepts a closure, but LLVM declines to
//!   inline a large closure body into pulp's `#[target_feature]` function, which silently
//!   leaves the loop compiled for baseline x86-64 (SSE2). So each chunk job is a small struct
//!   implementing [`pulp::WithSimd`] with an `#[inline(always)]` `with_simd`.
//! - **Vectorised reductions.** Row maxima and sums accumulate into `LANES` = 16 independent lanes
//!   (an array of accumulators, which is one or two SIMD registers), combined at the end in a
//!   fixed pairwise order. For the exponentials, the ragged end of a row is redone as one
//!   overlapping SIMD group rather than element by element.
//! - **Multi-threaded.** Inputs of at least [`PAR_MIN_ELEMS`] elements are cut into chunks of
//!   whole rows (about [`CHUNK_ELEMS`] elements each) that rayon processes in parallel.
//!
//! # Determinism
//!
//! Every result is bit-identical for the same input, whatever the number of threads and whether
//! or not the parallel path is taken:
//!
//! - row-wise outputs are computed row by row with the same code, whichever chunk a row is in;
//! - the sums over rows (LayerNorm's `grad_gamma`/`grad_beta`, the cross-entropy total) are
//!   formed per chunk of [`rows_per_chunk`]`(cols)` rows — a function of the shape only — and
//!   the per-chunk partials are then added in chunk order;
//! - the arithmetic is plain IEEE `+`, `*`, `/`, `sqrt` and, in `exp_f32`, explicit
//!   [`f32::mul_add`] (a correctly rounded fused operation on every path; Rust never fuses
//!   implicitly), so the SIMD paths and the scalar fallback round identically too.

use pulp::{Arch, Simd, WithSimd};
use rayon::prelude::*;

/// Inputs with at least this many elements (`f32`s of the main input) are processed by rayon's
/// thread pool; smaller ones run on the calling thread.
pub const PAR_MIN_ELEMS: usize = 32 * 1024;

/// Approximate number of elements per chunk of rows: the unit of parallel work, and the unit
/// over which sums across rows are formed before the chunk partials are added in order.
pub const CHUNK_ELEMS: usize = 16 * 1024;

/// Number of independent accumulators used by the row reductions.
const LANES: usize = 16;

/// Rows per chunk for rows of `cols` elements: `ceil(CHUNK_ELEMS / cols)`, at least 1.
///
/// Depends on `cols` only (never on the number of threads), which is what makes the sums over
/// rows deterministic.
pub fn rows_per_chunk(cols: usize) -> usize {
    CHUNK_ELEMS.div_ceil(cols.max(1))
}

// ---------------------------------------------------------------------------------------------
// Branch-free scalar math, inlined into the vectorised loops.
// ---------------------------------------------------------------------------------------------

/// `e^x` in `f32`, branch-free so that loops calling it vectorise.
///
/// `x` is split as `n·ln 2 + r` with `n = round(x / ln 2)` and `|r| ≤ ln 2 / 2`. Then
/// `e^r ≈ 1 + r + r²·q(r)` with `q` of degree 4, a Chebyshev fit of `(e^r − 1 − r)/r²` on that
/// interval (fitted for this file with mpmath's `chebyfit`; truncation error below `1e-8`), and
/// `2^n` is built from exponent bits, in two factors so that every `n` the clamped input gives
/// is representable. Measured relative error: below `1e-7` wherever the result is a normal
/// number (the tests demand `5e-7`).
///
/// The reduction and the polynomial use [`f32::mul_add`]: one FMA instruction each on the AVX2
/// path, and the same correctly rounded fused operation (libm `fmaf`) anywhere else, so every
/// path gives identical bits.
///
/// Edge cases: results that would be subnormal (`x < -87.33`) are returned as exactly `0.0`, so
/// `exp_f32(-1e9) == 0.0` and `exp_f32(-inf) == 0.0` (and no slow subnormal arithmetic
/// happens); results too large for `f32` (`x > 88.72`) are `+inf`, as the exact value rounds
/// to; NaN gives NaN.
#[inline(always)]
pub(crate) fn exp_f32(x: f32) -> f32 {
    // Smallest input whose exponential is a normal f32 (e^-87.33 ≈ 1.18e-38).
    const MIN_ARG: f32 = -87.33;
    // Large enough that e^MAX_ARG overflows to +inf; small enough that n stays ≤ 128.
    const MAX_ARG: f32 = 89.0;
    // ln 2 split in two: LN2_HI has 9 significant bits, so n·LN2_HI is exact for |n| ≤ 2^15.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding 1.5·2^23 rounds a float of magnitude < 2^22 to an integer, found in the low bits.
    const ROUND: f32 = 12_582_912.0;
    const ROUND_BITS: i32 = 0x4B40_0000;
    // q(r) = Q4·r⁴ + Q3·r³ + Q2·r² + Q1·r + Q0 ≈ (e^r − 1 − r)/r² on [−ln2/2, ln2/2].
    const Q4: f32 = 0.001_392_617_6;
    const Q3: f32 = 0.008_363_173;
    const Q2: f32 = 0.041_666_555;
    const Q1: f32 = 0.166_665_77;
    const Q0: f32 = 0.5;

    let xc = x.clamp(MIN_ARG, MAX_ARG);
    let shifted = xc.mul_add(std::f32::consts::LOG2_E, ROUND);
    let n = shifted - ROUND;
    let r = (-n).mul_add(LN2_LO, (-n).mul_add(LN2_HI, xc));
    let q = Q4
        .mul_add(r, Q3)
        .mul_add(r, Q2)
        .mul_add(r, Q1)
        .mul_add(r, Q0);
    let poly = (r * r).mul_add(q, r) + 1.0;

    // 2^n = 2^n1 · 2^n2 with n1 = floor(n/2): both halves lie in [-63, 64] for n in [-126, 128].
    let n = (shifted.to_bits() as i32).wrapping_sub(ROUND_BITS);
    let n1 = n >> 1;
    let n2 = n - n1;
    let y = poly * pow2(n1) * pow2(n2);
    if x < MIN_ARG {
        0.0
    } else {
        y
    }
}

/// `2^k` for `k` in `-126..=127`, built from its exponent bits.
#[inline(always)]
fn pow2(k: i32) -> f32 {
    f32::from_bits(((k + 127) << 23) as u32)
}

/// `(σ(z), σ(z)·(1 − σ(z)))` for the logistic sigmoid `σ`, without overflow for any `z`:
/// both come from `t = e^{−|z|} ≤ 1`, so `z = ±inf` gives `(1, 0)` or `(0, 0)`.
#[inline(always)]
fn sigmoid_and_slope(z: f32) -> (f32, f32) {
    let t = exp_f32(-z.abs());
    let inv = 1.0 / (1.0 + t);
    let sigmoid = if z >= 0.0 { inv } else { t * inv };
    (sigmoid, t * inv * inv)
}

/// `2·sqrt(2/π)`: tanh-GELU is `x·σ(GELU_C·(x + GELU_K·x³))`.
const GELU_C: f32 = (std::f64::consts::SQRT_2 * std::f64::consts::FRAC_2_SQRT_PI) as f32;
/// The cubic coefficient of tanh-GELU.
const GELU_K: f32 = 0.044_715;

#[inline(always)]
fn gelu_tanh(x: f32) -> f32 {
    let (s, _) = sigmoid_and_slope(GELU_C * (x + GELU_K * x * x * x));
    x * s
}

#[inline(always)]
fn gelu_tanh_grad(x: f32) -> f32 {
    // Past |x| = 16 the sigmoid is exactly 0 or 1 in f32 (|z| > 300), so the slope term is 0;
    // clamping x in it keeps `x·z'(x)` finite, avoiding `inf · 0`.
    const X_MAX: f32 = 16.0;
    let (s, slope) = sigmoid_and_slope(GELU_C * (x + GELU_K * x * x * x));
    let xc = x.clamp(-X_MAX, X_MAX);
    let dz_dx = GELU_C * (1.0 + 3.0 * GELU_K * xc * xc);
    s + xc * dz_dx * slope
}

// ---------------------------------------------------------------------------------------------
// Vectorised reductions over one row.
// ---------------------------------------------------------------------------------------------

/// Sum of the lanes in a fixed pairwise order.
#[inline(always)]
fn sum_lanes(mut acc: [f32; LANES]) -> f32 {
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        let (low, high) = acc.split_at_mut(width);
        for (a, &b) in low.iter_mut().zip(high.iter()) {
            *a += b;
        }
    }
    acc[0]
}

#[inline(always)]
fn max_f32(a: f32, b: f32) -> f32 {
    if b > a {
        b
    } else {
        a
    }
}

// In the reductions below, each whole group of `LANES` elements is one SIMD step. The elements
// after the last whole group (the tail) are handled as one more SIMD step over the *last*
// `LANES` elements of the row, which overlap the previous group, with the lanes that were already
// counted masked out (`k + tail < LANES`). The accumulators are thus only ever indexed by
// constants, which lets LLVM keep them in registers. Rows shorter than one group use a plain
// loop, or for the exponentials one SIMD step over a padded copy.

/// Whether lane `k` of the last, overlapping group of a row holds one of the `tail` elements
/// that no whole group covered.
#[inline(always)]
fn is_tail_lane(k: usize, tail: usize) -> bool {
    k + tail >= LANES
}

/// `max_j scale·x[j]` over a non-empty row.
#[inline(always)]
pub(crate) fn max_scaled(x: &[f32], scale: f32) -> f32 {
    let Some(last) = x.last_chunk::<LANES>() else {
        return x
            .iter()
            .fold(f32::NEG_INFINITY, |m, &v| max_f32(m, scale * v));
    };
    let mut acc = [f32::NEG_INFINITY; LANES];
    for group in x.as_chunks::<LANES>().0 {
        for (a, &v) in acc.iter_mut().zip(group) {
            *a = max_f32(*a, scale * v);
        }
    }
    // A maximum does not mind counting the overlap twice: no mask.
    for (a, &v) in acc.iter_mut().zip(last) {
        *a = max_f32(*a, scale * v);
    }
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        let (low, high) = acc.split_at_mut(width);
        for (a, &b) in low.iter_mut().zip(high.iter()) {
            *a = max_f32(*a, b);
        }
    }
    acc[0]
}

/// Writes `y[j] = e^{scale·x[j] − shift}` and returns `Σ_j y[j]`.
#[inline(always)]
pub(crate) fn exp_shifted_sum(x: &[f32], y: &mut [f32], scale: f32, shift: f32) -> f32 {
    let exp = |v: f32| exp_f32(scale * v - shift);
    let tail = x.len() % LANES;
    let Some(x_last) = x.last_chunk::<LANES>() else {
        // A row shorter than one group: one SIMD step over a padded copy.
        let mut xs = [0.0f32; LANES];
        xs[..x.len()].copy_from_slice(x);
        let mut ys = [0.0f32; LANES];
        for (k, (out, &v)) in ys.iter_mut().zip(&xs).enumerate() {
            *out = if k < x.len() { exp(v) } else { 0.0 };
        }
        y.copy_from_slice(&ys[..x.len()]);
        return sum_lanes(ys);
    };
    let mut acc = [0.0f32; LANES];
    let (y_body, _) = y.as_chunks_mut::<LANES>();
    for (xs, ys) in x.as_chunks::<LANES>().0.iter().zip(y_body) {
        for ((a, &v), out) in acc.iter_mut().zip(xs).zip(ys.iter_mut()) {
            *out = exp(v);
            *a += *out;
        }
    }
    if tail > 0 {
        // Rewrites the overlap with the same values.
        let y_last = y.last_chunk_mut::<LANES>().expect("y is as long as x");
        for (k, ((a, &v), out)) in acc.iter_mut().zip(x_last).zip(y_last).enumerate() {
            *out = exp(v);
            *a += if is_tail_lane(k, tail) { *out } else { 0.0 };
        }
    }
    sum_lanes(acc)
}

/// `Σ_j a[j]·b[j]`.
#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let tail = a.len() % LANES;
    let (Some(a_last), Some(b_last)) = (a.last_chunk::<LANES>(), b.last_chunk::<LANES>()) else {
        return a.iter().zip(b).map(|(&u, &v)| u * v).sum();
    };
    let mut acc = [0.0f32; LANES];
    let groups = a
        .as_chunks::<LANES>()
        .0
        .iter()
        .zip(b.as_chunks::<LANES>().0);
    for (xs, ys) in groups {
        for ((s, &u), &v) in acc.iter_mut().zip(xs).zip(ys) {
            *s += u * v;
        }
    }
    if tail > 0 {
        for (k, ((s, &u), &v)) in acc.iter_mut().zip(a_last).zip(b_last).enumerate() {
            *s += if is_tail_lane(k, tail) { u * v } else { 0.0 };
        }
    }
    sum_lanes(acc)
}

/// `Σ_j x[j]`, accumulated in `f64` (exact for any realistic row of equal values).
#[inline(always)]
fn sum_f64(x: &[f32]) -> f64 {
    let tail = x.len() % LANES;
    let Some(last) = x.last_chunk::<LANES>() else {
        return x.iter().map(|&v| f64::from(v)).sum();
    };
    let mut acc = [0.0f64; LANES];
    for group in x.as_chunks::<LANES>().0 {
        for (a, &v) in acc.iter_mut().zip(group) {
            *a += f64::from(v);
        }
    }
    if tail > 0 {
        for (k, (a, &v)) in acc.iter_mut().zip(last).enumerate() {
            *a += if is_tail_lane(k, tail) {
                f64::from(v)
            } else {
                0.0
            };
        }
    }
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        let (low, high) = acc.split_at_mut(width);
        for (a, &b) in low.iter_mut().zip(high.iter()) {
            *a += b;
        }
    }
    acc[0]
}

/// `Σ_j (x[j] − mean)²`.
#[inline(always)]
fn sum_sq_dev(x: &[f32], mean: f32) -> f32 {
    let tail = x.len() % LANES;
    let Some(last) = x.last_chunk::<LANES>() else {
        return x.iter().map(|&v| (v - mean) * (v - mean)).sum();
    };
    let mut acc = [0.0f32; LANES];
    for group in x.as_chunks::<LANES>().0 {
        for (a, &v) in acc.iter_mut().zip(group) {
            *a += (v - mean) * (v - mean);
        }
    }
    if tail > 0 {
        for (k, (a, &v)) in acc.iter_mut().zip(last).enumerate() {
            *a += if is_tail_lane(k, tail) {
                (v - mean) * (v - mean)
            } else {
                0.0
            };
        }
    }
    sum_lanes(acc)
}

// ---------------------------------------------------------------------------------------------
// Per-row kernels.
// ---------------------------------------------------------------------------------------------

/// Softmax of `scale·x[..valid]` into `y[..valid]`, zeros in `y[valid..]`; returns the row's
/// maximum of `scale·x` and the sum of the shifted exponentials (for the log-sum-exp).
#[inline(always)]
fn softmax_row(x: &[f32], y: &mut [f32], valid: usize, scale: f32) -> (f32, f32) {
    let (x, (y, y_masked)) = (&x[..valid], y.split_at_mut(valid));
    let max = max_scaled(x, scale);
    let sum = exp_shifted_sum(x, y, scale, max);
    let inv = 1.0 / sum;
    for v in y.iter_mut() {
        *v *= inv;
    }
    y_masked.fill(0.0);
    (max, sum)
}

/// `grad_x[j] = scale·y[j]·(grad_y[j] − Σ_k grad_y[k]·y[k])` over `..valid`, zeros after.
#[inline(always)]
fn softmax_backward_row(y: &[f32], grad_y: &[f32], grad_x: &mut [f32], valid: usize, scale: f32) {
    let (y, grad_y) = (&y[..valid], &grad_y[..valid]);
    let (grad_x, grad_x_masked) = grad_x.split_at_mut(valid);
    let d = dot(grad_y, y);
    for ((g, &p), &gy) in grad_x.iter_mut().zip(y).zip(grad_y) {
        *g = scale * p * (gy - d);
    }
    grad_x_masked.fill(0.0);
}

/// LayerNorm of one row; returns `(mean, rstd)`.
#[inline(always)]
fn layer_norm_row(x: &[f32], gamma: &[f32], beta: &[f32], eps: f32, y: &mut [f32]) -> (f32, f32) {
    let n = x.len();
    let mean = (sum_f64(x) / n as f64) as f32;
    let var = sum_sq_dev(x, mean) / n as f32;
    let rstd = 1.0 / (var + eps).sqrt();
    for (((out, &v), &g), &b) in y.iter_mut().zip(x).zip(gamma).zip(beta) {
        *out = (v - mean) * rstd * g + b;
    }
    (mean, rstd)
}

/// `(mean(g), mean(g·x̂))` over a row, with `g = grad_y·gamma` and `x̂ = (x − mean)·rstd`.
#[inline(always)]
fn grad_means(x: &[f32], gamma: &[f32], grad_y: &[f32], mean: f32, rstd: f32) -> (f32, f32) {
    let n = x.len() as f32;
    let tail = x.len() % LANES;
    let lasts = (
        x.last_chunk::<LANES>(),
        gamma.last_chunk(),
        grad_y.last_chunk(),
    );
    let (Some(x_last), Some(gamma_last), Some(gy_last)) = lasts else {
        let (mut sum_g, mut sum_gx) = (0.0, 0.0);
        for ((&v, &gm), &gy) in x.iter().zip(gamma).zip(grad_y) {
            sum_g += gy * gm;
            sum_gx += gy * gm * ((v - mean) * rstd);
        }
        return (sum_g / n, sum_gx / n);
    };
    let (mut sum_g, mut sum_gx) = ([0.0f32; LANES], [0.0f32; LANES]);
    let mut add = |xs: &[f32; LANES], gs: &[f32; LANES], gys: &[f32; LANES], tail_only: bool| {
        let sums = sum_g.iter_mut().zip(sum_gx.iter_mut());
        let inputs = xs.iter().zip(gs).zip(gys);
        for (k, ((sg, sgx), ((&v, &gm), &gy))) in sums.zip(inputs).enumerate() {
            let live = !tail_only || is_tail_lane(k, tail);
            let g = if live { gy * gm } else { 0.0 };
            *sg += g;
            *sgx += g * ((v - mean) * rstd);
        }
    };
    let groups = x.as_chunks::<LANES>().0.iter().zip(gamma.as_chunks().0);
    for ((xs, gs), gys) in groups.zip(grad_y.as_chunks().0) {
        add(xs, gs, gys, false);
    }
    if tail > 0 {
        add(x_last, gamma_last, gy_last, true);
    }
    (sum_lanes(sum_g) / n, sum_lanes(sum_gx) / n)
}

/// Backward of [`layer_norm_row`]: writes `grad_x` and adds this row's contributions to the
/// running `grad_gamma` / `grad_beta` partials.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn layer_norm_backward_row(
    x: &[f32],
    gamma: &[f32],
    mean: f32,
    rstd: f32,
    grad_y: &[f32],
    grad_x: &mut [f32],
    grad_gamma: &mut [f32],
    grad_beta: &mut [f32],
) {
    // With x̂ = (x − mean)·rstd and g = grad_y·gamma:
    // grad_x = rstd·(g − mean(g) − x̂·mean(g·x̂)).
    let (mean_g, mean_gx) = grad_means(x, gamma, grad_y, mean, rstd);

    for ((((dx, &v), &g), &gy), (dg, db)) in grad_x
        .iter_mut()
        .zip(x)
        .zip(gamma)
        .zip(grad_y)
        .zip(grad_gamma.iter_mut().zip(grad_beta.iter_mut()))
    {
        let xhat = (v - mean) * rstd;
        *dx = rstd * (gy * g - mean_g - xhat * mean_gx);
        *dg += gy * xhat;
        *db += gy;
    }
}

// ---------------------------------------------------------------------------------------------
// Chunk jobs: the rows of one chunk, run through `Arch::dispatch`.
//
// They are structs implementing `WithSimd` rather than closures on purpose: `with_simd` is
// `#[inline(always)]`, so the loop and every helper it calls are inlined into pulp's
// `#[target_feature]` function and compiled for AVX2. A closure's body is a function of its own
// that LLVM declines to inline once it is large, which leaves it compiled for baseline x86-64.
// ---------------------------------------------------------------------------------------------

/// A chunk of rows of [`softmax_forward`].
struct SoftmaxRows<'a> {
    x: &'a [f32],
    y: &'a mut [f32],
    cols: usize,
    /// Index of the chunk's first row in the whole input, for the causal mask.
    first_row: usize,
    scale: f32,
    causal: bool,
}

impl WithSimd for SoftmaxRows<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _: S) {
        let rows = self
            .x
            .chunks_exact(self.cols)
            .zip(self.y.chunks_exact_mut(self.cols));
        for (i, (x, y)) in rows.enumerate() {
            let valid = valid_cols(self.first_row + i, self.cols, self.causal);
            softmax_row(x, y, valid, self.scale);
        }
    }
}

/// A chunk of rows of [`softmax_backward`].
struct SoftmaxBackwardRows<'a> {
    y: &'a [f32],
    grad_y: &'a [f32],
    grad_x: &'a mut [f32],
    cols: usize,
    first_row: usize,
    scale: f32,
    causal: bool,
}

impl WithSimd for SoftmaxBackwardRows<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _: S) {
        let cols = self.cols;
        let rows = self
            .y
            .chunks_exact(cols)
            .zip(self.grad_y.chunks_exact(cols));
        for (i, ((y, gy), gx)) in rows.zip(self.grad_x.chunks_exact_mut(cols)).enumerate() {
            let valid = valid_cols(self.first_row + i, cols, self.causal);
            softmax_backward_row(y, gy, gx, valid, self.scale);
        }
    }
}

/// A chunk of an element-wise map `y = f(x)` ([`gelu_tanh_forward`], [`elu_plus_one_forward`]).
/// `f` is a function item or a capture-free closure, so it is inlined into the dispatched loop.
struct MapChunk<'a, F> {
    x: &'a [f32],
    y: &'a mut [f32],
    f: F,
}

impl<F: Fn(f32) -> f32> WithSimd for MapChunk<'_, F> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _: S) {
        for (y, &x) in self.y.iter_mut().zip(self.x) {
            *y = (self.f)(x);
        }
    }
}

/// A chunk of an element-wise gradient `grad_x = grad_y · f(saved)`, where `saved` is what the
/// forward pass kept ([`gelu_tanh_backward`], [`elu_plus_one_backward`]).
struct ScaleChunk<'a, F> {
    saved: &'a [f32],
    grad_y: &'a [f32],
    grad_x: &'a mut [f32],
    f: F,
}

impl<F: Fn(f32) -> f32> WithSimd for ScaleChunk<'_, F> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _: S) {
        for ((gx, &s), &gy) in self.grad_x.iter_mut().zip(self.saved).zip(self.grad_y) {
            *gx = gy * (self.f)(s);
        }
    }
}

/// `y = f(x)` element-wise, vectorised and split over threads like every kernel here.
fn map_elementwise(x: &[f32], y: &mut [f32], f: impl Fn(f32) -> f32 + Copy + Sync, what: &str) {
    assert_eq!(
        y.len(),
        x.len(),
        "{what}: output and input differ in length"
    );
    map_chunks(y, CHUNK_ELEMS, |chunk, y| {
        let x = &x[chunk * CHUNK_ELEMS..][..y.len()];
        Arch::new().dispatch(MapChunk { x, y, f });
    });
}

/// `grad_x = grad_y · f(saved)` element-wise.
fn scale_elementwise(
    saved: &[f32],
    grad_y: &[f32],
    grad_x: &mut [f32],
    f: impl Fn(f32) -> f32 + Copy + Sync,
    what: &str,
) {
    assert_eq!(
        grad_y.len(),
        saved.len(),
        "{what}: grad_y differs in length"
    );
    assert_eq!(
        grad_x.len(),
        saved.len(),
        "{what}: grad_x differs in length"
    );
    map_chunks(grad_x, CHUNK_ELEMS, |chunk, grad_x| {
        let start = chunk * CHUNK_ELEMS;
        let saved = &saved[start..][..grad_x.len()];
        let grad_y = &grad_y[start..][..grad_x.len()];
        Arch::new().dispatch(ScaleChunk {
            saved,
            grad_y,
            grad_x,
            f,
        });
    });
}

/// A chunk of rows of [`layer_norm_forward`].
struct LayerNormRows<'a> {
    x: &'a [f32],
    gamma: &'a [f32],
    beta: &'a [f32],
    eps: f32,
    y: &'a mut [f32],
    mean: &'a mut [f32],
    rstd: &'a mut [f32],
}

impl WithSimd for LayerNormRows<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _: S) {
        let cols = self.gamma.len();
        let stats = self.mean.iter_mut().zip(self.rstd.iter_mut());
        let rows = self.x.chunks_exact(cols).zip(self.y.chunks_exact_mut(cols));
        for ((x, y), (mean, rstd)) in rows.zip(stats) {
            (*mean, *rstd) = layer_norm_row(x, self.gamma, self.beta, self.eps, y);
        }
    }
}

/// A chunk of rows of [`layer_norm_backward`]; returns the chunk's partial sums
/// `[grad_gamma | grad_beta]`.
struct LayerNormBackwardRows<'a> {
    x: &'a [f32],
    gamma: &'a [f32],
    mean: &'a [f32],
    rstd: &'a [f32],
    grad_y: &'a [f32],
    grad_x: &'a mut [f32],
}

impl WithSimd for LayerNormBackwardRows<'_> {
    type Output = Vec<f32>;

    #[inline(always)]
    fn with_simd<S: Simd>(self, _: S) -> Vec<f32> {
        let cols = self.gamma.len();
        let mut partial = vec![0.0f32; 2 * cols];
        let (grad_gamma, grad_beta) = partial.split_at_mut(cols);
        let rows = self
            .x
            .chunks_exact(cols)
            .zip(self.grad_y.chunks_exact(cols));
        let rows = rows.zip(self.grad_x.chunks_exact_mut(cols));
        for (((x, gy), gx), (&mean, &rstd)) in rows.zip(self.mean.iter().zip(self.rstd)) {
            layer_norm_backward_row(x, self.gamma, mean, rstd, gy, gx, grad_gamma, grad_beta);
        }
        partial
    }
}

/// A chunk of rows of [`cross_entropy_forward`]; returns the chunk's weighted loss.
struct CrossEntropyRows<'a> {
    logits: &'a [f32],
    targets: &'a [u32],
    weights: &'a [f32],
    cols: usize,
    probs: &'a mut [f32],
}

impl WithSimd for CrossEntropyRows<'_> {
    type Output = f64;

    #[inline(always)]
    fn with_simd<S: Simd>(self, _: S) -> f64 {
        let cols = self.cols;
        let mut total = 0.0f64;
        let rows = self
            .logits
            .chunks_exact(cols)
            .zip(self.probs.chunks_exact_mut(cols));
        for ((logits, probs), (&target, &weight)) in rows.zip(self.targets.iter().zip(self.weights))
        {
            let (max, sum) = softmax_row(logits, probs, cols, 1.0);
            if weight != 0.0 {
                let logit = f64::from(logits[target_index(target, cols)]);
                let log_prob = (logit - f64::from(max)) - f64::from(sum).ln();
                total += f64::from(weight) * -log_prob;
            }
        }
        total
    }
}

/// A chunk of rows of [`cross_entropy_backward`].
struct CrossEntropyBackwardRows<'a> {
    probs: &'a [f32],
    targets: &'a [u32],
    weights: &'a [f32],
    cols: usize,
    scale: f32,
    grad: &'a mut [f32],
}

impl WithSimd for CrossEntropyBackwardRows<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _: S) {
        let cols = self.cols;
        let rows = self
            .probs
            .chunks_exact(cols)
            .zip(self.grad.chunks_exact_mut(cols));
        for ((probs, grad), (&target, &weight)) in rows.zip(self.targets.iter().zip(self.weights)) {
            let factor = self.scale * weight;
            for (g, &p) in grad.iter_mut().zip(probs) {
                *g = factor * p;
            }
            if weight != 0.0 {
                let t = target_index(target, cols);
                grad[t] = factor * (probs[t] - 1.0);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Public kernels.
// ---------------------------------------------------------------------------------------------

/// Calls `job(i, chunk)` on the consecutive `chunk_len`-element chunks of `out` — on rayon's
/// pool when `out` has at least [`PAR_MIN_ELEMS`] elements — and returns the results in chunk
/// order.
fn map_chunks<R: Send>(
    out: &mut [f32],
    chunk_len: usize,
    job: impl Fn(usize, &mut [f32]) -> R + Sync,
) -> Vec<R> {
    if out.len() >= PAR_MIN_ELEMS {
        out.par_chunks_mut(chunk_len)
            .enumerate()
            .map(|(i, c)| job(i, c))
            .collect()
    } else {
        out.chunks_mut(chunk_len)
            .enumerate()
            .map(|(i, c)| job(i, c))
            .collect()
    }
}

/// Softmax over each row of `scale · x`, written to `y`.
///
/// `x` and `y` are `[rows, cols]` row-major with `rows = x.len() / cols`. When `causal`, the
/// rows form square `cols × cols` matrices (`x.len()` is a multiple of `cols²`): row `i` of each
/// matrix keeps columns `0..=i` and gets exactly `0.0` in the others, which are never read.
///
/// Each row subtracts its maximum of `scale · x` (over the kept columns) before exponentiating,
/// so large logits are fine and a row whose entries are all equal (e.g. all `-1e9`, a fully
/// masked row) gives the uniform distribution.
///
/// # Panics
/// If `cols == 0`, the lengths differ, or `x.len()` is not a multiple of `cols` (of `cols²` when
/// `causal`).
pub fn softmax_forward(x: &[f32], y: &mut [f32], cols: usize, scale: f32, causal: bool) {
    check_rows(x.len(), cols, causal);
    assert_eq!(
        y.len(),
        x.len(),
        "softmax_forward: y and x differ in length"
    );
    let rows_per = rows_per_chunk(cols);
    map_chunks(y, rows_per * cols, |chunk, y| {
        let first_row = chunk * rows_per;
        let x = &x[first_row * cols..][..y.len()];
        Arch::new().dispatch(SoftmaxRows {
            x,
            y,
            cols,
            first_row,
            scale,
            causal,
        });
    });
}

/// Gradient of [`softmax_forward`]: `grad_x = scale · y · (grad_y − Σ grad_y·y)` per row.
///
/// `y` (the forward output), `grad_y` and `grad_x` are `[rows, cols]`; `cols`, `scale` and
/// `causal` are those of the forward call. When `causal`, only the kept prefix of each row is
/// read and the masked columns of `grad_x` are set to `0.0`.
///
/// # Panics
/// On the same shape errors as [`softmax_forward`], or if the three lengths differ.
pub fn softmax_backward(
    y: &[f32],
    grad_y: &[f32],
    grad_x: &mut [f32],
    cols: usize,
    scale: f32,
    causal: bool,
) {
    check_rows(y.len(), cols, causal);
    assert_eq!(
        grad_y.len(),
        y.len(),
        "softmax_backward: grad_y and y differ in length"
    );
    assert_eq!(
        grad_x.len(),
        y.len(),
        "softmax_backward: grad_x and y differ in length"
    );
    let rows_per = rows_per_chunk(cols);
    map_chunks(grad_x, rows_per * cols, |chunk, grad_x| {
        let first_row = chunk * rows_per;
        let start = first_row * cols;
        let (y, grad_y) = (
            &y[start..][..grad_x.len()],
            &grad_y[start..][..grad_x.len()],
        );
        Arch::new().dispatch(SoftmaxBackwardRows {
            y,
            grad_y,
            grad_x,
            cols,
            first_row,
            scale,
            causal,
        });
    });
}

/// tanh-GELU, elementwise: `y = x · σ(c·(x + 0.044715·x³))` with `c = 2·sqrt(2/π)`, which equals
/// `x/2 · (1 + tanh(sqrt(2/π)·(x + 0.044715·x³)))`.
///
/// `x` and `y` have the same length (any shape). Large inputs saturate cleanly: `y = x` for
/// large positive `x`, `0` for large negative `x` (`±1e30` included).
///
/// # Panics
/// If the lengths differ.
pub fn gelu_tanh_forward(x: &[f32], y: &mut [f32]) {
    map_elementwise(x, y, gelu_tanh, "gelu_tanh_forward");
}

/// Gradient of [`gelu_tanh_forward`]: `grad_x = grad_y · gelu_tanh'(x)`, elementwise.
///
/// `x`, `grad_y` and `grad_x` have the same length. The derivative is exactly `1` for large
/// positive `x` and `0` for large negative `x`.
///
/// # Panics
/// If the lengths differ.
pub fn gelu_tanh_backward(x: &[f32], grad_y: &[f32], grad_x: &mut [f32]) {
    scale_elementwise(x, grad_y, grad_x, gelu_tanh_grad, "gelu_tanh_backward");
}

/// Linear attention's feature map `elu(x) + 1`, elementwise, as `max(x, 0) + exp(min(x, 0))`
/// (never `exp` of a large positive number).
///
/// # Panics
/// If the lengths differ.
pub fn elu_plus_one_forward(x: &[f32], y: &mut [f32]) {
    map_elementwise(
        x,
        y,
        |x| x.max(0.0) + exp_f32(x.min(0.0)),
        "elu_plus_one_forward",
    );
}

/// Gradient of [`elu_plus_one_forward`] from its output `y`: the derivative is `1` where
/// `x > 0` (there `y = x + 1 > 1`) and `exp(x) = y` where `x ≤ 0` (there `y ≤ 1`), that is
/// `min(y, 1)`, so `grad_x = grad_y · min(y, 1)`.
///
/// # Panics
/// If the lengths differ.
pub fn elu_plus_one_backward(y: &[f32], grad_y: &[f32], grad_x: &mut [f32]) {
    scale_elementwise(y, grad_y, grad_x, |y| y.min(1.0), "elu_plus_one_backward");
}

/// LayerNorm of each row, as PyTorch computes it: `y = (x − mean)·rstd·gamma + beta` with the
/// biased variance and `rstd = 1/sqrt(var + eps)`.
///
/// `x` and `y` are `[rows, cols]`; `gamma` and `beta` have length `cols`; `mean` and `rstd`
/// (length `rows`) receive each row's statistics for [`layer_norm_backward`]. The mean is
/// accumulated in `f64`, so a constant row gets exactly its value as mean, variance `0`, and
/// `y = beta`.
///
/// # Panics
/// If `cols == 0` or a length does not match.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_forward(
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    cols: usize,
    eps: f32,
    y: &mut [f32],
    mean: &mut [f32],
    rstd: &mut [f32],
) {
    let rows = check_rows(x.len(), cols, false);
    assert_eq!(
        gamma.len(),
        cols,
        "layer_norm_forward: gamma must have length cols"
    );
    assert_eq!(
        beta.len(),
        cols,
        "layer_norm_forward: beta must have length cols"
    );
    assert_eq!(
        y.len(),
        x.len(),
        "layer_norm_forward: y and x differ in length"
    );
    assert_eq!(
        mean.len(),
        rows,
        "layer_norm_forward: mean must have length rows"
    );
    assert_eq!(
        rstd.len(),
        rows,
        "layer_norm_forward: rstd must have length rows"
    );
    let rows_per = rows_per_chunk(cols);
    let job = |chunk: usize, ((y, mean), rstd): ((&mut [f32], &mut [f32]), &mut [f32])| {
        let x = &x[chunk * rows_per * cols..][..y.len()];
        Arch::new().dispatch(LayerNormRows {
            x,
            gamma,
            beta,
            eps,
            y,
            mean,
            rstd,
        });
    };
    if x.len() >= PAR_MIN_ELEMS {
        let chunks = y
            .par_chunks_mut(rows_per * cols)
            .zip(mean.par_chunks_mut(rows_per))
            .zip(rstd.par_chunks_mut(rows_per));
        chunks.enumerate().for_each(|(i, c)| job(i, c));
    } else {
        let chunks = y
            .chunks_mut(rows_per * cols)
            .zip(mean.chunks_mut(rows_per))
            .zip(rstd.chunks_mut(rows_per));
        chunks.enumerate().for_each(|(i, c)| job(i, c));
    }
}

/// Backward of [`layer_norm_forward`].
///
/// `x`, `grad_y` and `grad_x` are `[rows, cols]`; `gamma`, `grad_gamma` and `grad_beta` have
/// length `cols`; `mean` and `rstd` (length `rows`) are the forward pass's statistics.
/// `grad_gamma` and `grad_beta` are overwritten with the sums over rows of `grad_y·x̂` and
/// `grad_y` (`x̂ = (x − mean)·rstd`). Those sums are formed per chunk of
/// [`rows_per_chunk`]`(cols)` rows and the chunk partials added in order, so they do not depend
/// on the number of threads.
///
/// # Panics
/// If `cols == 0` or a length does not match.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_backward(
    x: &[f32],
    gamma: &[f32],
    mean: &[f32],
    rstd: &[f32],
    grad_y: &[f32],
    cols: usize,
    grad_x: &mut [f32],
    grad_gamma: &mut [f32],
    grad_beta: &mut [f32],
) {
    let rows = check_rows(x.len(), cols, false);
    assert_eq!(
        gamma.len(),
        cols,
        "layer_norm_backward: gamma must have length cols"
    );
    assert_eq!(
        mean.len(),
        rows,
        "layer_norm_backward: mean must have length rows"
    );
    assert_eq!(
        rstd.len(),
        rows,
        "layer_norm_backward: rstd must have length rows"
    );
    assert_eq!(
        grad_y.len(),
        x.len(),
        "layer_norm_backward: grad_y and x differ in length"
    );
    assert_eq!(
        grad_x.len(),
        x.len(),
        "layer_norm_backward: grad_x and x differ in length"
    );
    assert_eq!(
        grad_gamma.len(),
        cols,
        "layer_norm_backward: grad_gamma must have length cols"
    );
    assert_eq!(
        grad_beta.len(),
        cols,
        "layer_norm_backward: grad_beta must have length cols"
    );
    let rows_per = rows_per_chunk(cols);
    let partials = map_chunks(grad_x, rows_per * cols, |chunk, grad_x| {
        let (first_row, start) = (chunk * rows_per, chunk * rows_per * cols);
        let n = grad_x.len() / cols;
        Arch::new().dispatch(LayerNormBackwardRows {
            x: &x[start..][..grad_x.len()],
            gamma,
            mean: &mean[first_row..][..n],
            rstd: &rstd[first_row..][..n],
            grad_y: &grad_y[start..][..grad_x.len()],
            grad_x,
        })
    });
    grad_gamma.fill(0.0);
    grad_beta.fill(0.0);
    for partial in &partials {
        let (pg, pb) = partial.split_at(cols);
        for (g, &p) in grad_gamma.iter_mut().zip(pg) {
            *g += p;
        }
        for (b, &p) in grad_beta.iter_mut().zip(pb) {
            *b += p;
        }
    }
}

/// Masked next-token cross-entropy.
///
/// `logits` and `probs` are `[rows, cols]` with `cols` the vocabulary size; `targets` and
/// `weights` have length `rows`. Writes each row's softmax into `probs` (also for rows of weight
/// `0`) and returns `Σ_r weights[r] · (−log softmax(logits[r])[targets[r]])`, accumulated in
/// `f64` — per chunk of [`rows_per_chunk`]`(cols)` rows, chunk totals added in order, so the
/// result does not depend on the number of threads. The log-probability is computed as
/// `logits[t] − max − ln Σ e^{logits − max}`, finite even when the target's probability
/// underflows.
///
/// A row of weight exactly `0` contributes `0` and its target is not read (it may be out of
/// range, e.g. a padding id).
///
/// # Panics
/// If `cols == 0`, a length does not match, or a row of nonzero weight has `targets[r] >= cols`.
pub fn cross_entropy_forward(
    logits: &[f32],
    targets: &[u32],
    weights: &[f32],
    cols: usize,
    probs: &mut [f32],
) -> f64 {
    let rows = check_rows(logits.len(), cols, false);
    assert_eq!(
        targets.len(),
        rows,
        "cross_entropy_forward: targets must have length rows"
    );
    assert_eq!(
        weights.len(),
        rows,
        "cross_entropy_forward: weights must have length rows"
    );
    assert_eq!(
        probs.len(),
        logits.len(),
        "cross_entropy_forward: probs and logits differ"
    );
    let rows_per = rows_per_chunk(cols);
    let partials = map_chunks(probs, rows_per * cols, |chunk, probs| {
        let (first_row, n) = (chunk * rows_per, probs.len() / cols);
        Arch::new().dispatch(CrossEntropyRows {
            logits: &logits[first_row * cols..][..probs.len()],
            targets: &targets[first_row..][..n],
            weights: &weights[first_row..][..n],
            cols,
            probs,
        })
    });
    partials.iter().sum()
}

/// Gradient of [`cross_entropy_forward`] with respect to the logits, times `scale`:
/// `grad_logits[r, j] = scale · weights[r] · (probs[r, j] − [j == targets[r]])`.
///
/// `probs` (the forward output) and `grad_logits` are `[rows, cols]`; `targets` and `weights`
/// have length `rows`. Rows of weight `0` get zeros and their target is not read.
///
/// # Panics
/// As [`cross_entropy_forward`].
pub fn cross_entropy_backward(
    probs: &[f32],
    targets: &[u32],
    weights: &[f32],
    cols: usize,
    scale: f32,
    grad_logits: &mut [f32],
) {
    let rows = check_rows(probs.len(), cols, false);
    assert_eq!(
        targets.len(),
        rows,
        "cross_entropy_backward: targets must have length rows"
    );
    assert_eq!(
        weights.len(),
        rows,
        "cross_entropy_backward: weights must have length rows"
    );
    assert_eq!(
        grad_logits.len(),
        probs.len(),
        "cross_entropy_backward: grad and probs differ"
    );
    let rows_per = rows_per_chunk(cols);
    map_chunks(grad_logits, rows_per * cols, |chunk, grad| {
        let (first_row, n) = (chunk * rows_per, grad.len() / cols);
        Arch::new().dispatch(CrossEntropyBackwardRows {
            probs: &probs[first_row * cols..][..grad.len()],
            targets: &targets[first_row..][..n],
            weights: &weights[first_row..][..n],
            cols,
            scale,
            grad,
        });
    });
}

/// Checks that `len` elements form whole rows of `cols` (whole `cols × cols` matrices when
/// `causal`) and returns the number of rows.
fn check_rows(len: usize, cols: usize, causal: bool) -> usize {
    assert!(cols > 0, "cols must be positive");
    let unit = if causal { cols * cols } else { cols };
    assert!(
        len.is_multiple_of(unit),
        "length {len} is not a multiple of {unit} ({})",
        if causal { "cols², causal" } else { "cols" }
    );
    len / cols
}

/// Number of kept columns of global row `row`.
#[inline(always)]
fn valid_cols(row: usize, cols: usize, causal: bool) -> usize {
    if causal {
        row % cols + 1
    } else {
        cols
    }
}

#[inline(always)]
fn target_index(target: u32, cols: usize) -> usize {
    let t = target as usize;
    assert!(t < cols, "target {t} out of range for {cols} classes");
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    // -----------------------------------------------------------------------------------------
    // f64 references: straightforward, obviously correct.
    // -----------------------------------------------------------------------------------------

    /// Softmax of each row of `z` (already scaled), over the first `valid(row)` columns.
    fn ref_softmax(z: &[f64], cols: usize, causal: bool) -> Vec<f64> {
        let mut y = vec![0.0; z.len()];
        for (r, (z, y)) in z.chunks(cols).zip(y.chunks_mut(cols)).enumerate() {
            let n = if causal { r % cols + 1 } else { cols };
            let max = z[..n].iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = z[..n].iter().map(|v| (v - max).exp()).sum();
            for j in 0..n {
                y[j] = (z[j] - max).exp() / sum;
            }
        }
        y
    }

    fn ref_softmax_backward(y: &[f64], gy: &[f64], cols: usize, scale: f64) -> Vec<f64> {
        let mut gx = vec![0.0; y.len()];
        for ((y, gy), gx) in y.chunks(cols).zip(gy.chunks(cols)).zip(gx.chunks_mut(cols)) {
            let d: f64 = y.iter().zip(gy).map(|(a, b)| a * b).sum();
            for j in 0..cols {
                gx[j] = scale * y[j] * (gy[j] - d);
            }
        }
        gx
    }

    fn ref_gelu(x: f64) -> f64 {
        let u = (2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x);
        0.5 * x * (1.0 + u.tanh())
    }

    fn ref_gelu_grad(x: f64) -> f64 {
        let a = (2.0 / std::f64::consts::PI).sqrt();
        let th = (a * (x + 0.044715 * x * x * x)).tanh();
        let du = a * (1.0 + 3.0 * 0.044715 * x * x);
        0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * du
    }

    /// Returns `(y, mean, rstd)`.
    fn ref_layer_norm(
        x: &[f64],
        gamma: &[f64],
        beta: &[f64],
        eps: f64,
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let cols = gamma.len();
        let (mut y, mut means, mut rstds) = (vec![0.0; x.len()], vec![], vec![]);
        for (x, y) in x.chunks(cols).zip(y.chunks_mut(cols)) {
            let mean = x.iter().sum::<f64>() / cols as f64;
            let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / cols as f64;
            let rstd = 1.0 / (var + eps).sqrt();
            for j in 0..cols {
                y[j] = (x[j] - mean) * rstd * gamma[j] + beta[j];
            }
            means.push(mean);
            rstds.push(rstd);
        }
        (y, means, rstds)
    }

    /// Returns `(grad_x, grad_gamma, grad_beta)`.
    fn ref_layer_norm_backward(
        x: &[f64],
        gamma: &[f64],
        gy: &[f64],
        eps: f64,
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let cols = gamma.len();
        let (_, means, rstds) = ref_layer_norm(x, gamma, gamma, eps);
        let (mut gx, mut gg, mut gb) = (vec![0.0; x.len()], vec![0.0; cols], vec![0.0; cols]);
        for (r, ((x, gy), gx)) in x
            .chunks(cols)
            .zip(gy.chunks(cols))
            .zip(gx.chunks_mut(cols))
            .enumerate()
        {
            let xhat: Vec<f64> = x.iter().map(|v| (v - means[r]) * rstds[r]).collect();
            let g: Vec<f64> = gy.iter().zip(gamma).map(|(a, b)| a * b).collect();
            let mean_g = g.iter().sum::<f64>() / cols as f64;
            let mean_gx = g.iter().zip(&xhat).map(|(a, b)| a * b).sum::<f64>() / cols as f64;
            for j in 0..cols {
                gx[j] = rstds[r] * (g[j] - mean_g - xhat[j] * mean_gx);
                gg[j] += gy[j] * xhat[j];
                gb[j] += gy[j];
            }
        }
        (gx, gg, gb)
    }

    /// Returns `(loss, probs)`.
    fn ref_cross_entropy(
        logits: &[f64],
        targets: &[u32],
        weights: &[f64],
        cols: usize,
    ) -> (f64, Vec<f64>) {
        let probs = ref_softmax(logits, cols, false);
        let mut loss = 0.0;
        for (r, l) in logits.chunks(cols).enumerate() {
            if weights[r] != 0.0 {
                let max = l.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let lse = max + l.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
                loss += weights[r] * (lse - l[targets[r] as usize]);
            }
        }
        (loss, probs)
    }

    fn to_f64(v: &[f32]) -> Vec<f64> {
        v.iter().map(|&x| f64::from(x)).collect()
    }

    /// Asserts `|actual − expected| ≤ abs + rel·|expected|` elementwise.
    fn assert_close(what: &str, actual: &[f32], expected: &[f64], abs: f64, rel: f64) {
        assert_eq!(actual.len(), expected.len(), "{what}: lengths differ");
        for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
            let err = (f64::from(a) - e).abs();
            assert!(
                err <= abs + rel * e.abs(),
                "{what}[{i}]: got {a:e}, expected {e:e} (error {err:e})"
            );
        }
    }

    /// Central finite difference of `f` at `x` in direction `i`.
    fn finite_diff(f: &dyn Fn(&[f64]) -> f64, x: &[f64], i: usize, h: f64) -> f64 {
        let (mut plus, mut minus) = (x.to_vec(), x.to_vec());
        plus[i] += h;
        minus[i] -= h;
        (f(&plus) - f(&minus)) / (2.0 * h)
    }

    /// Small, deterministic pseudo-random values in `[-1, 1)`.
    fn pseudo_random(n: usize, seed: u64) -> Vec<f32> {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect()
    }

    fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(f)
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    // -----------------------------------------------------------------------------------------
    // exp_f32
    // -----------------------------------------------------------------------------------------

    /// `y = exp_f32(x)` through `Arch::dispatch`.
    struct ExpAll<'a> {
        x: &'a [f32],
        y: &'a mut [f32],
    }

    impl WithSimd for ExpAll<'_> {
        type Output = ();

        #[inline(always)]
        fn with_simd<S: Simd>(self, _: S) {
            for (y, &x) in self.y.iter_mut().zip(self.x) {
                *y = exp_f32(x);
            }
        }
    }

    #[test]
    fn exp_matches_f64_over_a_dense_grid() {
        let (lo, hi, n) = (-87.0f64, 88.0f64, 4_000_000);
        let x: Vec<f32> = (0..=n)
            .map(|i| (lo + (hi - lo) * i as f64 / n as f64) as f32)
            .collect();
        // Through the vectorised path, which must round exactly as the scalar one.
        let mut y = vec![0.0f32; x.len()];
        Arch::new().dispatch(ExpAll { x: &x, y: &mut y });
        let mut worst = (0.0f64, 0.0f32);
        for (&x, &y) in x.iter().zip(&y) {
            assert_eq!(y.to_bits(), exp_f32(x).to_bits(), "x = {x}");
            let exact = f64::from(x).exp();
            let err = (f64::from(y) - exact).abs() / exact;
            if err > worst.0 {
                worst = (err, x);
            }
        }
        assert!(
            worst.0 <= 5e-7,
            "relative error {:e} at x = {}",
            worst.0,
            worst.1
        );
    }

    #[test]
    fn exp_edge_cases() {
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(-1e9), 0.0);
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32(-87.5), 0.0);
        assert!(exp_f32(-87.3) > 0.0 && exp_f32(-87.3).is_normal());
        // The largest finite results, and overflow to +inf where exp overflows.
        let big = exp_f32(88.72);
        assert!(big.is_finite() && (f64::from(big) / f64::from(88.72f32).exp() - 1.0).abs() < 5e-7);
        assert_eq!(exp_f32(88.8), f32::INFINITY);
        assert_eq!(exp_f32(1e30), f32::INFINITY);
        assert_eq!(exp_f32(f32::INFINITY), f32::INFINITY);
        assert!(exp_f32(f32::NAN).is_nan());
    }

    // -----------------------------------------------------------------------------------------
    // Forward and backward against the references, over random shapes.
    // -----------------------------------------------------------------------------------------

    /// Mostly moderate values, some large ones, and the `-1e9` of masked logits.
    fn value() -> impl Strategy<Value = f32> {
        prop_oneof![6 => -8.0f32..8.0, 2 => -1e4f32..1e4, 1 => Just(-1e9f32)]
    }

    fn scale() -> impl Strategy<Value = f32> {
        prop_oneof![Just(1.0f32), Just(0.125), 0.01f32..2.0, -2.0f32..-0.01]
    }

    /// `(cols, causal, x)`: 1..40 rows, or 1..3 `cols × cols` matrices when causal.
    fn softmax_input() -> impl Strategy<Value = (usize, bool, Vec<f32>)> {
        (1usize..70, any::<bool>(), 1usize..40).prop_flat_map(|(cols, causal, rows)| {
            let rows = if causal { (rows % 3 + 1) * cols } else { rows };
            (Just(cols), Just(causal), vec(value(), rows * cols))
        })
    }

    proptest! {
        #[test]
        fn softmax_forward_matches_reference((cols, causal, x) in softmax_input(), scale in scale()) {
            let mut y = vec![f32::NAN; x.len()];
            softmax_forward(&x, &mut y, cols, scale, causal);
            // The kernel's logits are the f32 products `scale·x`; with |logits| up to 1e4 their
            // rounding is amplified 1e4-fold by any softmax, so the reference starts from them.
            let z: Vec<f64> = x.iter().map(|&v| f64::from(scale * v)).collect();
            let expected = ref_softmax(&z, cols, causal);
            assert_close("softmax", &y, &expected, 1e-6, 1e-5);
            if causal {
                for (r, row) in y.chunks(cols).enumerate() {
                    prop_assert!(row[r % cols + 1..].iter().all(|v| v.to_bits() == 0));
                }
            }
        }

        #[test]
        fn softmax_backward_matches_reference(
            (cols, causal, x) in softmax_input(),
            scale in scale(),
            seed in any::<u64>(),
        ) {
            let mut y = vec![0.0; x.len()];
            softmax_forward(&x, &mut y, cols, scale, causal);
            let gy: Vec<f32> = pseudo_random(x.len(), seed).iter().map(|v| 10.0 * v).collect();
            let mut gx = vec![f32::NAN; x.len()];
            softmax_backward(&y, &gy, &mut gx, cols, scale, causal);
            // The masked entries of y are exactly 0, so the reference needs no mask.
            let expected = ref_softmax_backward(&to_f64(&y), &to_f64(&gy), cols, f64::from(scale));
            assert_close("softmax grad", &gx, &expected, 2e-5 * f64::from(scale.abs()), 1e-5);
        }

        #[test]
        fn gelu_matches_reference(
            x in vec(prop_oneof![4 => -10.0f32..10.0, 1 => -1e4f32..1e4, 1 => -1e30f32..1e30], 1..3000),
            seed in any::<u64>(),
        ) {
            let mut y = vec![f32::NAN; x.len()];
            gelu_tanh_forward(&x, &mut y);
            let expected: Vec<f64> = x.iter().map(|&v| ref_gelu(f64::from(v))).collect();
            assert_close("gelu", &y, &expected, 1e-6, 1e-5);

            let gy: Vec<f32> = pseudo_random(x.len(), seed).iter().map(|v| 4.0 * v).collect();
            let mut gx = vec![f32::NAN; x.len()];
            gelu_tanh_backward(&x, &gy, &mut gx);
            let expected: Vec<f64> =
                x.iter().zip(&gy).map(|(&v, &g)| f64::from(g) * ref_gelu_grad(f64::from(v))).collect();
            assert_close("gelu grad", &gx, &expected, 4e-6, 1e-5);
        }

        #[test]
        fn layer_norm_matches_reference(
            (rows, cols) in (1usize..40, 1usize..70),
            spread in prop_oneof![Just(1e-3f32), Just(1.0), Just(30.0), Just(1e4)],
            offset in -10.0f32..10.0,
            eps in prop_oneof![Just(1e-5f32), Just(1e-6), Just(0.1)],
            seed in any::<u64>(),
        ) {
            // Rows `spread·(offset + u)`: from tiny to large magnitudes, some rows far from 0.
            let n = rows * cols;
            let noise = pseudo_random(3 * n + 2 * cols, seed);
            let x: Vec<f32> = noise[..n].iter().map(|u| spread * (offset + u)).collect();
            let gamma: Vec<f32> = noise[n..n + cols].iter().map(|u| 2.0 * u).collect();
            let beta: Vec<f32> = noise[n + cols..n + 2 * cols].iter().map(|u| 2.0 * u).collect();
            let gy: Vec<f32> = noise[n + 2 * cols..2 * n + 2 * cols].iter().map(|u| 3.0 * u).collect();

            let (mut y, mut mean, mut rstd) = (vec![f32::NAN; n], vec![f32::NAN; rows], vec![f32::NAN; rows]);
            layer_norm_forward(&x, &gamma, &beta, cols, eps, &mut y, &mut mean, &mut rstd);
            let (mut gx, mut gg, mut gb) = (vec![f32::NAN; n], vec![f32::NAN; cols], vec![f32::NAN; cols]);
            layer_norm_backward(&x, &gamma, &mean, &rstd, &gy, cols, &mut gx, &mut gg, &mut gb);

            let (xd, gd) = (to_f64(&x), to_f64(&gamma));
            let (ey, emean, erstd) = ref_layer_norm(&xd, &gd, &to_f64(&beta), f64::from(eps));
            let (egx, egg, egb) = ref_layer_norm_backward(&xd, &gd, &to_f64(&gy), f64::from(eps));
            let mut slack_sum = 0.0;
            for r in 0..rows {
                let row = r * cols..(r + 1) * cols;
                // The mean is an f32 output: rounding it moves every x − mean by up to
                // ulp(max |x|)/2, i.e. x̂ by up to `cond` — the conditioning of the problem,
                // large when a row's values are close together far from 0.
                let x_max = xd[row.clone()].iter().fold(0.0f64, |m, v| m.max(v.abs()));
                let cond = f64::from(f32::EPSILON) * x_max * erstd[r];
                let xhat_max = ey[row.clone()].iter().zip(&to_f64(&beta)).zip(&gd)
                    .fold(0.0f64, |m, ((y, b), g)| if *g == 0.0 { m } else { m.max(((y - b) / g).abs()) });
                let slack = cond * (1.0 + xhat_max);
                slack_sum += slack;
                // |gamma| ≤ 2, |grad_y·gamma| ≤ 6.
                assert_close("layer norm", &y[row.clone()], &ey[row.clone()], 2e-5 + 4.0 * slack, 1e-5);
                assert_close("mean", &mean[r..=r], &emean[r..=r], f64::from(f32::EPSILON) * x_max, 1e-6);
                assert_close("rstd", &rstd[r..=r], &erstd[r..=r], 0.0, 1e-5 + 2.0 * cond);
                let tol = (6e-5 + 12.0 * slack) * erstd[r];
                assert_close("layer norm grad_x", &gx[row.clone()], &egx[row], tol, 0.0);
            }
            // |grad_y| ≤ 3.
            assert_close("grad_gamma", &gg, &egg, 1e-5 * (rows as f64) + 6.0 * slack_sum, 1e-5);
            assert_close("grad_beta", &gb, &egb, 1e-5 * (rows as f64), 1e-5);
        }

        #[test]
        fn cross_entropy_matches_reference(
            (rows, cols) in (1usize..40, 1usize..70),
            logits_seed in any::<u64>(),
            magnitude in prop_oneof![Just(1.0f32), Just(20.0), Just(1e4)],
            labels in vec((any::<u32>(), prop_oneof![Just(0.0f32), Just(1.0), 0.0f32..3.0]), 40),
            scale in 0.01f32..2.0,
        ) {
            let logits: Vec<f32> =
                pseudo_random(rows * cols, logits_seed).iter().map(|u| magnitude * u).collect();
            let targets: Vec<u32> = labels[..rows].iter().map(|(t, _)| t % cols as u32).collect();
            let weights: Vec<f32> = labels[..rows].iter().map(|&(_, w)| w).collect();

            let mut probs = vec![f32::NAN; logits.len()];
            let loss = cross_entropy_forward(&logits, &targets, &weights, cols, &mut probs);
            let (eloss, eprobs) = ref_cross_entropy(&to_f64(&logits), &targets, &to_f64(&weights), cols);
            assert_close("probs", &probs, &eprobs, 1e-6, 1e-5);
            let bound = weights.iter().map(|&w| f64::from(w)).sum::<f64>() * 1e-6 + 1e-7 * eloss.abs();
            prop_assert!((loss - eloss).abs() <= bound, "loss {} vs {}", loss, eloss);

            let mut grad = vec![f32::NAN; logits.len()];
            cross_entropy_backward(&probs, &targets, &weights, cols, scale, &mut grad);
            let mut expected = vec![0.0; logits.len()];
            for r in 0..rows {
                let sw = f64::from(scale) * f64::from(weights[r]);
                for j in 0..cols {
                    let onehot = if j == targets[r] as usize { 1.0 } else { 0.0 };
                    expected[r * cols + j] = sw * (f64::from(probs[r * cols + j]) - onehot);
                }
            }
            assert_close("cross-entropy grad", &grad, &expected, 1e-7, 1e-6);
        }
    }

    // -----------------------------------------------------------------------------------------
    // Gradients against finite differences of the f64 references.
    // -----------------------------------------------------------------------------------------

    #[test]
    fn softmax_backward_matches_finite_differences() {
        for &(rows, cols, causal, scale) in &[
            (3, 5, false, 0.7f32),
            (6, 3, true, 1.3),
            (1, 17, false, -0.4),
        ] {
            let x: Vec<f32> = pseudo_random(rows * cols, 7)
                .iter()
                .map(|v| 3.0 * v)
                .collect();
            let c: Vec<f32> = pseudo_random(rows * cols, 8);
            let cd = to_f64(&c);
            let objective = |x: &[f64]| -> f64 {
                let z: Vec<f64> = x.iter().map(|v| f64::from(scale) * v).collect();
                ref_softmax(&z, cols, causal)
                    .iter()
                    .zip(&cd)
                    .map(|(y, c)| y * c)
                    .sum()
            };
            let mut y = vec![0.0; x.len()];
            softmax_forward(&x, &mut y, cols, scale, causal);
            let mut gx = vec![0.0; x.len()];
            softmax_backward(&y, &c, &mut gx, cols, scale, causal);
            let xd = to_f64(&x);
            let fd: Vec<f64> = (0..x.len())
                .map(|i| finite_diff(&objective, &xd, i, 1e-5))
                .collect();
            assert_close("softmax grad vs finite differences", &gx, &fd, 1e-6, 1e-5);
        }
    }

    #[test]
    fn gelu_backward_matches_finite_differences() {
        let x: Vec<f32> = (-60..=60).map(|i| i as f32 * 0.1 + 0.013).collect();
        let mut gx = vec![0.0; x.len()];
        gelu_tanh_backward(&x, &vec![1.0; x.len()], &mut gx);
        let f = |v: &[f64]| ref_gelu(v[0]);
        let fd: Vec<f64> = x
            .iter()
            .map(|&v| finite_diff(&f, &[f64::from(v)], 0, 1e-5))
            .collect();
        assert_close("gelu grad vs finite differences", &gx, &fd, 1e-6, 1e-5);
    }

    #[test]
    fn layer_norm_backward_matches_finite_differences() {
        let (rows, cols, eps) = (4, 6, 1e-5f32);
        let noise = pseudo_random(2 * rows * cols + 2 * cols, 3);
        let n = rows * cols;
        let x: Vec<f32> = noise[..n].iter().map(|v| 2.0 * v + 0.5).collect();
        let gamma: Vec<f32> = noise[n..n + cols].iter().map(|v| 1.0 + v).collect();
        let beta: Vec<f32> = noise[n + cols..n + 2 * cols].to_vec();
        let c = to_f64(&noise[n + 2 * cols..]);

        let (mut y, mut mean, mut rstd) = (vec![0.0; n], vec![0.0; rows], vec![0.0; rows]);
        layer_norm_forward(&x, &gamma, &beta, cols, eps, &mut y, &mut mean, &mut rstd);
        let gy: Vec<f32> = c.iter().map(|&v| v as f32).collect();
        let (mut gx, mut gg, mut gb) = (vec![0.0; n], vec![0.0; cols], vec![0.0; cols]);
        layer_norm_backward(
            &x, &gamma, &mean, &rstd, &gy, cols, &mut gx, &mut gg, &mut gb,
        );

        // One parameter vector [x | gamma | beta] for the objective Σ c·y.
        let params = to_f64(&[x.as_slice(), &gamma, &beta].concat());
        let objective = |p: &[f64]| -> f64 {
            let (y, _, _) =
                ref_layer_norm(&p[..n], &p[n..n + cols], &p[n + cols..], f64::from(eps));
            y.iter().zip(&c).map(|(y, c)| y * c).sum()
        };
        let fd: Vec<f64> = (0..params.len())
            .map(|i| finite_diff(&objective, &params, i, 1e-5))
            .collect();
        assert_close("grad_x vs finite differences", &gx, &fd[..n], 1e-5, 1e-4);
        assert_close(
            "grad_gamma vs finite differences",
            &gg,
            &fd[n..n + cols],
            1e-5,
            1e-4,
        );
        assert_close(
            "grad_beta vs finite differences",
            &gb,
            &fd[n + cols..],
            1e-5,
            1e-4,
        );
    }

    #[test]
    fn cross_entropy_backward_matches_finite_differences() {
        let (rows, cols) = (5, 7);
        let logits: Vec<f32> = pseudo_random(rows * cols, 11)
            .iter()
            .map(|v| 4.0 * v)
            .collect();
        let targets = [0u32, 6, 3, 3, 1];
        let weights = [1.0f32, 0.5, 0.0, 2.0, 1.0];
        let mut probs = vec![0.0; logits.len()];
        cross_entropy_forward(&logits, &targets, &weights, cols, &mut probs);
        let mut grad = vec![0.0; logits.len()];
        cross_entropy_backward(&probs, &targets, &weights, cols, 1.0, &mut grad);
        let wd = to_f64(&weights);
        let objective = |l: &[f64]| ref_cross_entropy(l, &targets, &wd, cols).0;
        let ld = to_f64(&logits);
        let fd: Vec<f64> = (0..ld.len())
            .map(|i| finite_diff(&objective, &ld, i, 1e-5))
            .collect();
        assert_close(
            "cross-entropy grad vs finite differences",
            &grad,
            &fd,
            1e-6,
            1e-5,
        );
    }

    // -----------------------------------------------------------------------------------------
    // Edge cases.
    // -----------------------------------------------------------------------------------------

    #[test]
    fn causal_softmax_never_reads_the_masked_entries() {
        let cols = 37;
        let mut x = pseudo_random(2 * cols * cols, 5);
        for (r, row) in x.chunks_mut(cols).enumerate() {
            row[r % cols + 1..].fill(f32::NAN);
        }
        let mut y = vec![f32::NAN; x.len()];
        softmax_forward(&x, &mut y, cols, 0.5, true);
        let mut gx = vec![f32::NAN; x.len()];
        softmax_backward(&y, &x, &mut gx, cols, 0.5, true);
        for (r, (y, gx)) in y.chunks(cols).zip(gx.chunks(cols)).enumerate() {
            let (kept, masked) = y.split_at(r % cols + 1);
            assert!(
                kept.iter().all(|v| v.is_finite() && *v > 0.0),
                "row {r}: {kept:?}"
            );
            assert!((kept.iter().sum::<f32>() - 1.0).abs() < 1e-6);
            assert!(masked
                .iter()
                .chain(&gx[r % cols + 1..])
                .all(|v| v.to_bits() == 0));
            assert!(gx[..=r % cols].iter().all(|v| v.is_finite()));
        }
    }

    #[test]
    fn softmax_of_a_fully_masked_row_is_uniform() {
        for cols in [1, 5, 16, 50] {
            let x = vec![-1e9f32; 3 * cols];
            let mut y = vec![f32::NAN; x.len()];
            softmax_forward(&x, &mut y, cols, 0.125, false);
            assert!(
                y.iter().all(|&v| (v - 1.0 / cols as f32).abs() < 1e-7),
                "{y:?}"
            );
        }
    }

    #[test]
    fn softmax_with_huge_logits() {
        let x = [1e4f32, -1e4, 1e4 - 1.0, 0.0, 1e4];
        let mut y = [0.0f32; 5];
        softmax_forward(&x, &mut y, 5, 1.0, false);
        let e = (-1.0f64).exp();
        let expected = [1.0 / (2.0 + e), 0.0, e / (2.0 + e), 0.0, 1.0 / (2.0 + e)];
        assert_close("softmax", &y, &expected, 1e-7, 1e-6);
    }

    #[test]
    fn gelu_saturates_for_large_inputs() {
        let x = [1e4f32, -1e4, 1e30, -1e30, 16.0, -16.0, 50.0, -50.0];
        let mut y = [f32::NAN; 8];
        gelu_tanh_forward(&x, &mut y);
        let mut g = [f32::NAN; 8];
        gelu_tanh_backward(&x, &[1.0; 8], &mut g);
        for i in 0..x.len() {
            let (ey, eg) = if x[i] > 0.0 { (x[i], 1.0) } else { (0.0, 0.0) };
            assert_eq!((y[i], g[i]), (ey, eg), "x = {}", x[i]);
        }
    }

    #[test]
    fn layer_norm_constant_row() {
        let cols = 70;
        let x: Vec<f32> = [0.1f32, -3.7e4, 1.0]
            .iter()
            .flat_map(|&v| vec![v; cols])
            .collect();
        let gamma: Vec<f32> = pseudo_random(cols, 1);
        let beta: Vec<f32> = pseudo_random(cols, 2);
        let (mut y, mut mean, mut rstd) = (vec![0.0; x.len()], vec![0.0; 3], vec![0.0; 3]);
        layer_norm_forward(&x, &gamma, &beta, cols, 1e-5, &mut y, &mut mean, &mut rstd);
        assert_eq!(mean, [0.1, -3.7e4, 1.0]);
        assert_eq!(rstd, [1.0 / 1e-5f32.sqrt(); 3]);
        for row in y.chunks(cols) {
            assert_eq!(row, beta.as_slice());
        }
    }

    #[test]
    fn cross_entropy_ignores_targets_of_zero_weight_rows() {
        let logits = [1.0f32, 2.0, 3.0, 0.5, 0.5, 0.5];
        let (targets, weights) = ([u32::MAX, 0], [0.0f32, 2.0]);
        let mut probs = [0.0f32; 6];
        let loss = cross_entropy_forward(&logits, &targets, &weights, 3, &mut probs);
        assert!((loss - 2.0 * 3f64.ln()).abs() < 1e-6);
        let e: f64 = [1.0f64, 2.0, 3.0].iter().map(|v| v.exp()).sum();
        assert_close(
            "probs",
            &probs[..3],
            &[1f64.exp() / e, 2f64.exp() / e, 3f64.exp() / e],
            1e-7,
            1e-6,
        );
        let mut grad = [f32::NAN; 6];
        cross_entropy_backward(&probs, &targets, &weights, 3, 1.0, &mut grad);
        assert_eq!(&grad[..3], &[0.0; 3]);
    }

    #[test]
    #[should_panic(expected = "out of range")]
    fn cross_entropy_rejects_an_out_of_range_target() {
        let mut probs = [0.0f32; 3];
        cross_entropy_forward(&[0.0, 1.0, 2.0], &[3], &[1.0], 3, &mut probs);
    }

    // -----------------------------------------------------------------------------------------
    // Determinism: the same bits whatever the number of threads.
    // -----------------------------------------------------------------------------------------

    /// Runs every kernel on inputs large enough for the parallel path (and, for the sums over
    /// rows, several chunks), returning all outputs as bits.
    fn run_all_large() -> Vec<Vec<u32>> {
        let mut out = vec![];
        // Softmax: 700 × 70 non-causal (3 chunks) and 10 causal 64 × 64 matrices.
        for &(cols, causal, n) in &[(70, false, 700 * 70), (64, true, 10 * 64 * 64)] {
            assert!(n >= PAR_MIN_ELEMS && n / cols > rows_per_chunk(cols));
            let x: Vec<f32> = pseudo_random(n, 21).iter().map(|v| 6.0 * v).collect();
            let mut y = vec![0.0; n];
            softmax_forward(&x, &mut y, cols, 0.3, causal);
            let mut gx = vec![0.0; n];
            softmax_backward(&y, &x, &mut gx, cols, 0.3, causal);
            out.extend([bits(&y), bits(&gx)]);
        }
        // GELU on 100 000 elements.
        let x: Vec<f32> = pseudo_random(100_000, 22).iter().map(|v| 5.0 * v).collect();
        let mut y = vec![0.0; x.len()];
        gelu_tanh_forward(&x, &mut y);
        let mut gx = vec![0.0; x.len()];
        gelu_tanh_backward(&x, &y, &mut gx);
        out.extend([bits(&y), bits(&gx)]);
        // LayerNorm on 700 × 70 (3 chunks of rows for grad_gamma / grad_beta).
        let (rows, cols) = (700, 70);
        let x = pseudo_random(rows * cols, 23);
        let gamma = pseudo_random(cols, 24);
        let beta = pseudo_random(cols, 25);
        let (mut y, mut mean, mut rstd) = (vec![0.0; x.len()], vec![0.0; rows], vec![0.0; rows]);
        layer_norm_forward(&x, &gamma, &beta, cols, 1e-5, &mut y, &mut mean, &mut rstd);
        let (mut gx, mut gg, mut gb) = (vec![0.0; x.len()], vec![0.0; cols], vec![0.0; cols]);
        layer_norm_backward(
            &x, &gamma, &mean, &rstd, &x, cols, &mut gx, &mut gg, &mut gb,
        );
        out.extend([
            bits(&y),
            bits(&mean),
            bits(&rstd),
            bits(&gx),
            bits(&gg),
            bits(&gb),
        ]);
        // Cross-entropy on 300 × 300 (6 chunks).
        let (rows, cols) = (300, 300);
        let logits: Vec<f32> = pseudo_random(rows * cols, 26)
            .iter()
            .map(|v| 8.0 * v)
            .collect();
        let targets: Vec<u32> = (0..rows as u32).map(|r| r * 7 % cols as u32).collect();
        let weights: Vec<f32> = pseudo_random(rows, 27).iter().map(|v| v.abs()).collect();
        let mut probs = vec![0.0; logits.len()];
        let loss = cross_entropy_forward(&logits, &targets, &weights, cols, &mut probs);
        let mut grad = vec![0.0; logits.len()];
        cross_entropy_backward(&probs, &targets, &weights, cols, 0.01, &mut grad);
        let loss_bits = loss.to_bits();
        out.extend([
            bits(&probs),
            bits(&grad),
            vec![loss_bits as u32, (loss_bits >> 32) as u32],
        ]);
        out
    }

    #[test]
    fn results_do_not_depend_on_the_number_of_threads() {
        let one = in_pool(1, run_all_large);
        for threads in [2, 3] {
            let many = in_pool(threads, run_all_large);
            for (i, (a, b)) in one.iter().zip(&many).enumerate() {
                assert!(a == b, "output {i} differs between 1 and {threads} threads");
            }
        }
    }

    #[test]
    fn parallel_rows_equal_sequential_rows() {
        // 700 rows of 70 take the parallel path; one row alone takes the sequential one.
        let (rows, cols) = (700, 70);
        let x: Vec<f32> = pseudo_random(rows * cols, 31)
            .iter()
            .map(|v| 6.0 * v)
            .collect();
        let mut y = vec![0.0; x.len()];
        in_pool(2, || softmax_forward(&x, &mut y, cols, 0.7, false));
        let gamma = pseudo_random(cols, 32);
        let mut ln = vec![0.0; x.len()];
        let (mut mean, mut rstd) = (vec![0.0; rows], vec![0.0; rows]);
        in_pool(2, || {
            layer_norm_forward(
                &x, &gamma, &gamma, cols, 1e-5, &mut ln, &mut mean, &mut rstd,
            )
        });
        for r in 0..rows {
            let row = &x[r * cols..(r + 1) * cols];
            let mut y_row = vec![0.0; cols];
            softmax_forward(row, &mut y_row, cols, 0.7, false);
            assert_eq!(
                bits(&y_row),
                bits(&y[r * cols..(r + 1) * cols]),
                "softmax row {r}"
            );
            let (mut ln_row, mut m, mut s) = (vec![0.0; cols], [0.0], [0.0]);
            layer_norm_forward(row, &gamma, &gamma, cols, 1e-5, &mut ln_row, &mut m, &mut s);
            assert_eq!(
                bits(&ln_row),
                bits(&ln[r * cols..(r + 1) * cols]),
                "layer norm row {r}"
            );
            assert_eq!((m[0], s[0]), (mean[r], rstd[r]));
        }
    }
}
