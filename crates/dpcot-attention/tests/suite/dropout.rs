//! Dropout on the attention probabilities: with one-hot values (v_j = e_j) the output row i
//! *is* the probability row i, so every output entry must be either dropped (0) or the
//! undropped probability scaled by 1 / (1 − p); and nothing is dropped without autodiff.

use crate::common::*;
use dpcot_attention::burn::nn::DropoutConfig;
use dpcot_attention::burn::tensor::{Device, Tensor, TensorData};
use dpcot_attention::{AttentionKernel, SparsePattern};

/// `[1, 1, l, l]` identity: value j is the unit vector e_j.
fn one_hot_values(l: usize, device: &Device) -> Tensor<4> {
    let data: Vec<f32> = (0..l * l)
        .map(|i| if i / l == i % l { 1.0 } else { 0.0 })
        .collect();
    Tensor::from_data(TensorData::new(data, [1, 1, l, l]), device)
}

fn probabilities_with_dropout(kernel: AttentionKernel, p: f64, device: &Device) -> [Vec<f32>; 2] {
    let _rng = burn_rng();
    let l = 12;
    let mut rng = DataRng::new(5);
    let q: Tensor<4> = rng.tensor([1, 1, l, l], 1.0, device);
    let k: Tensor<4> = rng.tensor([1, 1, l, l], 1.0, device);
    let v = one_hot_values(l, device);
    let dropout = DropoutConfig::new(p).init();
    device.seed(3);
    let dropped = kernel.forward_dropout(q.clone(), k.clone(), v.clone(), Some(&dropout));
    let kept = kernel.forward_dropout(q, k, v, None);
    [to_vec(dropped), to_vec(kept)]
}

/// The kernels with attention probabilities.
fn kernels() -> [(&'static str, AttentionKernel); 4] {
    [
        ("softmax", AttentionKernel::Softmax),
        ("sparse fixed", sparse(4, 1, SparsePattern::Fixed)),
        ("sparse strided", sparse(4, 1, SparsePattern::Strided)),
        ("sliding", sliding(5)),
    ]
}

#[test]
fn dropped_probabilities_are_zero_or_rescaled() {
    let device = device().autodiff();
    let p = 0.5;
    for (name, kernel) in kernels() {
        let [dropped, kept] = probabilities_with_dropout(kernel, p, &device);
        let (mut zeroed, mut scaled) = (0, 0);
        for (d, k) in dropped.iter().zip(&kept) {
            if *k == 0.0 {
                assert_eq!(
                    *d, 0.0,
                    "{name}: a probability outside the pattern appeared"
                );
            } else if *d == 0.0 {
                zeroed += 1;
            } else {
                assert!(
                    (d - k / (1.0 - p as f32)).abs() <= 1e-5,
                    "{name}: {d} is neither 0 nor {k} / (1 - p)"
                );
                scaled += 1;
            }
        }
        // About half of the attended positions each way; both must occur.
        assert!(
            zeroed > 5 && scaled > 5,
            "{name}: {zeroed} dropped, {scaled} kept"
        );
    }
}

#[test]
fn without_autodiff_nothing_is_dropped() {
    let device = device();
    for (name, kernel) in kernels() {
        let [dropped, kept] = probabilities_with_dropout(kernel, 0.5, &device);
        assert_eq!(dropped, kept, "{name}");
    }
}

#[test]
fn linear_attention_has_no_probabilities_to_drop() {
    let device = device().autodiff();
    let [dropped, kept] = probabilities_with_dropout(linear(4), 0.5, &device);
    assert_eq!(dropped, kept);
}
