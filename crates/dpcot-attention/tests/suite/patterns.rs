//! The attended set of every pattern, probed with one-hot values.
//!
//! With `q = k = 0` all scores are equal, so the output of query `i` is the uniform average of
//! `v_j` over its attended set; with `v_j = e_j` that average is `1/|A_i|` exactly on `A_i`.
//! The expected sets are written out here from the definitions, independently of the crate's
//! own `attends`.

use std::collections::BTreeSet;

use crate::common::*;
use dpcot_attention::burn::tensor::{Tensor, TensorData};
use dpcot_attention::{AttentionKernel, SparsePattern};

fn fixed_set(i: usize, b: usize, c: usize) -> BTreeSet<usize> {
    let own_block_start = (i / b) * b;
    let mut set: BTreeSet<usize> = (own_block_start..=i).collect();
    for block in 0..i / b {
        set.extend((block * b + b - c)..(block * b + b));
    }
    set
}

fn strided_set(i: usize, b: usize) -> BTreeSet<usize> {
    let mut set: BTreeSet<usize> = (i.saturating_sub(b - 1)..=i).collect();
    let mut j = i;
    while j >= b {
        j -= b;
        set.insert(j);
    }
    set
}

fn window_set(i: usize, w: usize) -> BTreeSet<usize> {
    (i.saturating_sub(w - 1)..=i).collect()
}

/// `[1, 1, l, l]` identity values and zero queries/keys.
fn probe_inputs(l: usize) -> (Tensor<4>, Tensor<4>, Tensor<4>) {
    let device = device();
    let zeros = Tensor::<4>::zeros([1, 1, l, l], &device);
    let eye: Vec<f32> = (0..l * l)
        .map(|n| if n / l == n % l { 1.0 } else { 0.0 })
        .collect();
    let v = Tensor::from_data(TensorData::new(eye, [1, 1, l, l]), &device);
    (zeros.clone(), zeros, v)
}

/// Attended sets read back from the output rows, asserting uniform weights on them.
fn attended_sets(out: Tensor<4>, l: usize) -> Vec<BTreeSet<usize>> {
    let values = to_vec(out);
    (0..l)
        .map(|i| {
            let row = &values[i * l..(i + 1) * l];
            let set: BTreeSet<usize> = (0..l).filter(|&j| row[j] > 1e-6).collect();
            let expected = 1.0 / set.len() as f32;
            for &j in &set {
                assert!(
                    (row[j] - expected).abs() < 1e-5,
                    "row {i}: weight {} at {j}, want {expected}",
                    row[j]
                );
            }
            set
        })
        .collect()
}

fn parallel_sets(kernel: &AttentionKernel, l: usize) -> Vec<BTreeSet<usize>> {
    let (q, k, v) = probe_inputs(l);
    attended_sets(kernel.forward(q, k, v), l)
}

fn decoding_sets(kernel: &AttentionKernel, l: usize) -> Vec<BTreeSet<usize>> {
    let device = device();
    let (q, k, v) = probe_inputs(l);
    let mut cache = kernel.new_cache(1, 1, l, 4, &device);
    let rows: Vec<Tensor<4>> = (0..l)
        .map(|t| {
            let at = |x: &Tensor<4>| x.clone().slice([0..1, 0..1, t..t + 1, 0..l]);
            kernel
                .step(at(&q), at(&k), at(&v), &mut cache)
                .expect("matching cache")
        })
        .collect();
    attended_sets(Tensor::cat(rows, 2), l)
}

fn check(kernel: AttentionKernel, l: usize, expected: impl Fn(usize) -> BTreeSet<usize>) {
    let want: Vec<_> = (0..l).map(expected).collect();
    assert_eq!(parallel_sets(&kernel, l), want, "parallel {kernel:?} L={l}");
    assert_eq!(decoding_sets(&kernel, l), want, "decoding {kernel:?} L={l}");
}

#[test]
fn sparse_fixed_pattern() {
    for (l, b, c) in [
        (23, 4, 1),
        (23, 4, 2),
        (20, 5, 5),
        (9, 3, 1),
        (7, 16, 1),
        (1, 3, 1),
        (17, 1, 1),
    ] {
        check(sparse(b, c, SparsePattern::Fixed), l, |i| {
            fixed_set(i, b, c)
        });
    }
}

#[test]
fn sparse_strided_pattern() {
    for (l, b) in [(23, 4), (20, 5), (9, 3), (7, 16), (1, 3), (12, 1)] {
        check(sparse(b, 1, SparsePattern::Strided), l, |i| {
            strided_set(i, b)
        });
    }
}

#[test]
fn sliding_window_pattern() {
    for (l, w) in [(23, 4), (20, 5), (9, 1), (7, 16), (1, 3)] {
        check(sliding(w), l, |i| window_set(i, w));
    }
}

#[test]
fn softmax_pattern_is_causal() {
    check(AttentionKernel::Softmax, 13, |i| (0..=i).collect());
}

/// The documented example of the fixed pattern: B = 4, c = 1, query 9 sees 3, 7, 8, 9.
#[test]
fn fixed_pattern_example() {
    let sets = parallel_sets(&sparse(4, 1, SparsePattern::Fixed), 10);
    assert_eq!(sets[9], BTreeSet::from([3, 7, 8, 9]));
}

/// The documented example of the strided pattern: B = 4, query 9 sees 1, 5, 6, 7, 8, 9.
#[test]
fn strided_pattern_example() {
    let sets = parallel_sets(&sparse(4, 1, SparsePattern::Strided), 10);
    assert_eq!(sets[9], BTreeSet::from([1, 5, 6, 7, 8, 9]));
}
