//! The whole model with the fused operations against the same model composed from burn's
//! primitives: logits and every parameter's gradient agree, for each attention.
//!
//! Its own test binary: it switches the fused kernels off for the process (`set_enabled`), which
//! must not race with other tests.

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Int, Tensor, TensorData};
use dpcot_attention::{fused, AttentionKind, SparsePattern};
use dpcot_model::ModelConfig;

/// Every float parameter's gradient, in visiting order.
struct ParamGrads<'a> {
    grads: &'a burn::tensor::Gradients,
    found: Vec<Vec<f32>>,
}

impl ModuleVisitor for ParamGrads<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let grad = param
            .val()
            .grad(self.grads)
            .expect("every parameter gets a gradient");
        self.found.push(grad.into_data().iter::<f32>().collect());
    }
}

/// Logits and parameter gradients of a fixed read-out of the logits.
fn logits_and_grads(kind: &AttentionKind, device: &Device) -> (Vec<f32>, Vec<Vec<f32>>) {
    device.seed(11);
    let mut config = ModelConfig::new(20, 32, 32, kind.clone());
    config.n_layers = 2;
    config.dropout = 0.0;
    let model = config.init(device).unwrap();
    let ids: Vec<i64> = (0..4 * 23).map(|i| (i * 7 % 20) as i64).collect();
    let tokens = Tensor::<2, Int>::from_data(TensorData::new(ids, [4, 23]), device);
    let logits = model.forward(tokens);
    let readout: Vec<f32> = (0..4 * 23 * 20)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
        .collect();
    let readout = Tensor::<3>::from_data(TensorData::new(readout, [4, 23, 20]), device);
    let grads = (logits.clone() * readout).sum().backward();
    let mut visitor = ParamGrads {
        grads: &grads,
        found: Vec::new(),
    };
    model.visit(&mut visitor);
    (logits.into_data().iter::<f32>().collect(), visitor.found)
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn the_fused_model_matches_the_composed_one() {
    let device = Device::default().autodiff();
    let kinds = [
        AttentionKind::Softmax,
        AttentionKind::Sparse {
            block_size: Some(5),
            summary_width: 1,
            pattern: SparsePattern::Fixed,
        },
        AttentionKind::Linear {
            chunk_size: 8,
            eps: 1e-6,
        },
    ];
    for kind in kinds {
        fused::set_enabled(true);
        let (fused_logits, fused_grads) = logits_and_grads(&kind, &device);
        fused::set_enabled(false);
        let (composed_logits, composed_grads) = logits_and_grads(&kind, &device);
        fused::set_enabled(true);

        let diff = max_diff(&fused_logits, &composed_logits);
        assert!(diff < 1e-4, "{kind:?}: logits differ by {diff}");
        assert_eq!(fused_grads.len(), composed_grads.len());
        for (i, (f, c)) in fused_grads.iter().zip(&composed_grads).enumerate() {
            let scale = c.iter().fold(1.0f32, |m, v| m.max(v.abs()));
            let diff = max_diff(f, c);
            assert!(
                diff < 1e-4 * scale,
                "{kind:?}: gradient of parameter {i} differs by {diff} (scale {scale})"
            );
        }
    }
}
