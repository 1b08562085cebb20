//! The linear layer `y = x·W + b` over contiguous `f32` slices, forward and backward, with the
//! `gemm` crate's single-threaded kernels split over rayon's threads by fixed row chunks.
//!
//! burn-flex runs a product through `gemm` itself, multi-threaded only above `192³`
//! multiply-adds, so at the experiments' shapes (`batch·L` of 400–4000 rows, `d` of 16–256) the
//! attention's output projection runs on one core forward and backward, and the weight's
//! gradient `Xᵀ·dY` (a long inner dimension and a small output) splits poorly. Here every product
//! is cut into tasks of [`ROWS`] rows, a number that does not depend on the machine, so that the
//! results do not depend on the number of threads:
//!
//! - forward, `y = x·W + b`: each task is one `gemm` call over its rows, the bias written first
//!   and accumulated into;
//! - `dx = dy·Wᵀ`: the same, with `W` read transposed through its strides;
//! - `dW = Σ_chunks x_cᵀ·dy_c` and `db = Σ_rows dy`: one partial per chunk of rows (longer
//!   chunks, sized by the shape alone), summed in chunk order.

use rayon::prelude::*;

/// Rows per task: enough for `gemm`'s packing to pay off, few enough for the tasks to fill two
/// to eight threads at `batch·L` ≈ 400–4000.
const ROWS: usize = 128;

/// Partials of the weight's gradient: its rows are cut into about this many chunks (of
/// [`ROWS`] to 4·[`ROWS`] rows: a long inner dimension for each `gemm` call, few partials to sum),
/// a number that depends on the shape alone.
const WEIGHT_PARTIALS: usize = 8;

/// `dst[m, n] = (accumulate ? dst : 0) + lhs[m, k]·rhs[k, n]`, the three given by their row and
/// column strides, on this thread.
#[allow(clippy::too_many_arguments)]
fn product(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    accumulate: bool,
    lhs: &[f32],
    [lhs_rs, lhs_cs]: [isize; 2],
    rhs: &[f32],
    [rhs_rs, rhs_cs]: [isize; 2],
) {
    let last = |rs: isize, cs: isize, rows: usize, cols: usize| {
        (rows.max(1) - 1) * rs as usize + (cols.max(1) - 1) * cs as usize
    };
    assert!(dst.len() >= m * n && (m * n == 0 || dst.len() > last(n as isize, 1, m, n)));
    assert!(m * k == 0 || lhs.len() > last(lhs_rs, lhs_cs, m, k));
    assert!(k * n == 0 || rhs.len() > last(rhs_rs, rhs_cs, k, n));
    // SAFETY: the asserts above keep every element `gemm` reads or writes inside the slices
    // (the strides are non-negative), and `dst` does not alias `lhs` or `rhs` (a `&mut`).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs,
            lhs_rs,
            rhs.as_ptr(),
            rhs_cs,
            rhs_rs,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// `y = x·w + b` for `x: [rows, d_in]`, `w: [d_in, d_out]`, `b: [d_out]`, `y: [rows, d_out]`.
pub(crate) fn forward(x: &[f32], w: &[f32], b: &[f32], d_in: usize, d_out: usize, y: &mut [f32]) {
    let rows = x.len() / d_in.max(1);
    assert!(x.len() == rows * d_in && w.len() == d_in * d_out && b.len() == d_out);
    assert!(y.len() == rows * d_out);
    if d_out == 0 {
        return;
    }
    y.par_chunks_mut(ROWS * d_out)
        .zip(x.par_chunks(ROWS * d_in.max(1)))
        .for_each(|(y, x)| {
            for row in y.chunks_exact_mut(d_out) {
                row.copy_from_slice(b);
            }
            let m = y.len() / d_out;
            let strides = |cols: usize| [cols as isize, 1];
            product(m, d_out, d_in, y, true, x, strides(d_in), w, strides(d_out));
        });
}

/// `dx = dy·wᵀ` for `dy: [rows, d_out]`, `w: [d_in, d_out]`, `dx: [rows, d_in]`.
pub(crate) fn backward_x(dy: &[f32], w: &[f32], d_in: usize, d_out: usize, dx: &mut [f32]) {
    let rows = dx.len() / d_in.max(1);
    assert!(dy.len() == rows * d_out && w.len() == d_in * d_out && dx.len() == rows * d_in);
    if d_in == 0 {
        return;
    }
    dx.par_chunks_mut(ROWS * d_in)
        .zip(dy.par_chunks(ROWS * d_out.max(1)))
        .for_each(|(dx, dy)| {
            let m = dx.len() / d_in;
            // wᵀ[o, i] = w[i·d_out + o]: row stride 1, column stride d_out.
            let transposed = [1, d_out as isize];
            product(
                m,
                d_in,
                d_out,
                dx,
                false,
                dy,
                [d_out as isize, 1],
                w,
                transposed,
            );
        });
}

/// `dw = xᵀ·dy` and `db = Σ_rows dy` for `x: [rows, d_in]`, `dy: [rows, d_out]`: a partial of
/// each per chunk of rows ([`WEIGHT_PARTIALS`]), summed in chunk order.
pub(crate) fn backward_weights(
    x: &[f32],
    dy: &[f32],
    d_in: usize,
    d_out: usize,
    dw: &mut [f32],
    db: &mut [f32],
) {
    let rows = x.len() / d_in.max(1);
    assert!(x.len() == rows * d_in && dy.len() == rows * d_out);
    assert!(dw.len() == d_in * d_out && db.len() == d_out);
    if d_in == 0 || d_out == 0 || rows == 0 {
        dw.fill(0.0);
        db.fill(0.0);
        return;
    }
    let chunk = rows.div_ceil(WEIGHT_PARTIALS).clamp(ROWS, 4 * ROWS);
    let partials: Vec<(Vec<f32>, Vec<f32>)> = x
        .par_chunks(chunk * d_in)
        .zip(dy.par_chunks(chunk * d_out))
        .map(|(x, dy)| {
            let m = x.len() / d_in;
            let mut dw = vec![0.0; d_in * d_out];
            // xᵀ[i, r] = x[r·d_in + i]: row stride 1, column stride d_in.
            let transposed = [1, d_in as isize];
            product(
                d_in,
                d_out,
                m,
                &mut dw,
                false,
                x,
                transposed,
                dy,
                [d_out as isize, 1],
            );
            let mut db = vec![0.0; d_out];
            for row in dy.chunks_exact(d_out) {
                for (s, &g) in db.iter_mut().zip(row) {
                    *s += g;
                }
            }
            (dw, db)
        })
        .collect();
    let (first, rest) = partials.split_first().expect("at least one chunk of rows");
    dw.copy_from_slice(&first.0);
    db.copy_from_slice(&first.1);
    for (pw, pb) in rest {
        for (s, &p) in dw.iter_mut().zip(pw) {
            *s += p;
        }
        for (s, &p) in db.iter_mut().zip(pb) {
            *s += p;
        }
    }
}
