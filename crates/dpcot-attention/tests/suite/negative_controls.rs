//! The tolerance is tight enough to catch a mask that is off by one.
//!
//! Each test compares an efficient kernel with a dense reference whose pattern is deliberately
//! wrong by one position and asserts the difference is far above `TOL`.

use crate::common::*;
use dpcot_attention::burn::tensor::Tensor;
use dpcot_attention::reference::masked_softmax_attention;
use dpcot_attention::{AttentionKernel, SparsePattern};

const CAUGHT: f32 = 100.0 * TOL;

fn inputs() -> (Tensor<4>, Tensor<4>, Tensor<4>) {
    qkv(&mut DataRng::new(11), 1, 2, 37, 8, &device())
}

fn diff_to(kernel: &AttentionKernel, wrong: impl Fn(usize, usize) -> bool) -> f32 {
    let (q, k, v) = inputs();
    let fast = kernel.forward(q.clone(), k.clone(), v.clone());
    let dense =
        masked_softmax_attention(q.clone(), k.clone(), v.clone(), |i, j| kernel.attends(i, j));
    let shifted = masked_softmax_attention(q, k, v, wrong);
    assert!(
        max_abs_diff(fast.clone(), dense) <= TOL,
        "the correct mask must pass"
    );
    max_abs_diff(fast, shifted)
}

#[test]
fn shifted_summary_positions_are_caught() {
    let (b, c) = (5, 1);
    let kernel = sparse(b, c, SparsePattern::Fixed);
    // Summaries taken one position too early: j % b == b - c - 1 instead of b - c.
    let diff = diff_to(&kernel, |i, j| {
        j <= i && (i / b == j / b || (j / b < i / b && j % b == b - c - 1))
    });
    assert!(
        diff > CAUGHT,
        "off-by-one summary mask not caught: {diff:e}"
    );
}

#[test]
fn shifted_strided_pattern_is_caught() {
    let b = 5;
    let kernel = sparse(b, 1, SparsePattern::Strided);
    // Local window one too narrow: i - j < b - 1 instead of < b. (One too wide would be a
    // no-op: j = i - b is already a strided key.)
    let narrow = diff_to(&kernel, |i, j| {
        j <= i && (i - j < b - 1 || (i - j) % b == 0)
    });
    assert!(
        narrow > CAUGHT,
        "off-by-one strided window not caught: {narrow:e}"
    );
    // Strided keys one position late: (i - j) mod b == 1.
    let diff = diff_to(&kernel, |i, j| j <= i && (i - j < b || (i - j) % b == 1));
    assert!(
        diff > CAUGHT,
        "off-by-one strided window not caught: {diff:e}"
    );
}

#[test]
fn narrowed_sliding_window_is_caught() {
    let w = 6;
    let kernel = sliding(w);
    let diff = diff_to(&kernel, |i, j| j <= i && i - j < w - 1);
    assert!(
        diff > CAUGHT,
        "off-by-one sliding window not caught: {diff:e}"
    );
}

#[test]
fn non_causal_diagonal_is_caught() {
    // Allowing one future key (j = i + 1) must be visible too.
    let diff = diff_to(&AttentionKernel::Softmax, |i, j| j <= i + 1);
    assert!(diff > CAUGHT, "future key not caught: {diff:e}");
}
