//! What training minimises and how: the masked next-token loss and the AdamW optimizer.
//!
//! The learning-rate schedule (warm-up, then linear decay) is
//! [`TrainConfig::learning_rate_within`]; the loop passes its value to every optimizer step.

use burn::grad_clipping::GradientClippingConfig;
use burn::module::ParamGroup;
use burn::optim::{AdamWConfig, ModuleOptimizer};
use burn::tensor::{Int, Tensor};
use dpcot_model::dpcot_attention::fused;

use crate::config::TrainConfig;
use crate::TrainError;

/// The parameters exempt from weight decay, by module path: every bias, and LayerNorm's scale
/// (`gamma`) and shift (`beta`) — the reference's optimizer groups. Linear weights and the
/// token embedding decay. In this model these are exactly its one-dimensional parameters (a
/// test checks that).
pub const NO_DECAY: &str = r"(^|\.)(bias|gamma|beta)$";

/// The optimizer of `config`: AdamW with its weight decay on every parameter but those of
/// [`NO_DECAY`], and its gradient clipping.
pub(crate) fn optimizer(config: &TrainConfig) -> Result<ModuleOptimizer, TrainError> {
    let no_decay = ParamGroup::from_regex(NO_DECAY)
        .map_err(|e| TrainError::invalid("weight_decay", format!("{e:?}")))?;
    let exempt = adamw(&TrainConfig {
        weight_decay: 0.0,
        ..config.clone()
    });
    let clipping = clipping(config).map(|c| c.init());
    Ok(adamw(config)
        .init()
        .with_group(no_decay, exempt.build(), clipping))
}

/// AdamW with `config`'s weight decay (on every parameter) and gradient clipping.
pub(crate) fn adamw(config: &TrainConfig) -> AdamWConfig {
    AdamWConfig::new()
        .with_weight_decay(config.weight_decay as f32)
        // PyTorch's AdamW epsilon, as the reference uses.
        .with_epsilon(1e-8)
        .with_grad_clipping(clipping(config))
}

fn clipping(config: &TrainConfig) -> Option<GradientClippingConfig> {
    config
        .grad_clip_norm
        .map(|c| GradientClippingConfig::Norm(c as f32))
}

/// Next-token cross-entropy averaged over the supervised targets only.
///
/// - logits: `[batch, seq, vocab]`; targets, mask: `[batch, seq]`
pub fn masked_cross_entropy(
    logits: Tensor<3>,
    targets: Tensor<2, Int>,
    mask: Tensor<2>,
) -> Tensor<1> {
    let [batch, seq, vocab] = logits.dims();
    let rows = batch * seq;
    let count = mask.clone().sum();
    let total = fused::cross_entropy_sum(
        logits.reshape([rows, vocab]),
        targets.reshape([rows]),
        mask.reshape([rows]),
    );
    total / count
}

#[cfg(test)]
mod tests {
    use burn::module::{Module, ModuleVisitor, Param};
    use burn::optim::GradientsParams;
    use burn::tensor::{Int, Tensor, TensorData};
    use dpcot_model::ModelConfig;

    use super::*;
    use crate::Backend;

    /// Every float parameter's rank and values, in visiting order.
    #[derive(Default)]
    struct Values(Vec<(usize, Vec<f32>)>);

    impl ModuleVisitor for Values {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0
                .push((D, param.val().into_data().iter::<f32>().collect()));
        }
    }

    fn values(model: &impl Module) -> Vec<(usize, Vec<f32>)> {
        let mut values = Values::default();
        model.visit(&mut values);
        values.0
    }

    #[test]
    fn weight_decay_spares_biases_and_layer_norms_and_decays_every_matrix() {
        // With zero gradients AdamW's update is the decay alone: θ ← θ (1 − lr · wd).
        let device = Backend::Flex.device().unwrap().autodiff();
        let model = ModelConfig::new(12, 8, 16, Default::default())
            .init(&device)
            .unwrap();
        let before = values(&model);
        let tokens = Tensor::<2, Int>::from_data(TensorData::new(vec![1i64; 8], [1, 8]), &device);
        let zero_loss = model.forward(tokens).sum() * 0.0;
        let grads = GradientsParams::from_grads(zero_loss.backward(), &model);
        let mut config = TrainConfig::new(1);
        config.weight_decay = 0.5;
        let model = optimizer(&config).unwrap().step(1.0, model, grads);

        let after = values(&model);
        assert_eq!(before.len(), after.len());
        let (mut exempt, mut decayed) = (0, 0);
        for ((rank, old), (_, new)) in before.iter().zip(&after) {
            let factor = if *rank == 1 { 1.0 } else { 0.5 };
            for (o, n) in old.iter().zip(new) {
                assert!(
                    (o * factor - n).abs() <= 1e-6 * o.abs().max(1.0),
                    "rank {rank}: {o} -> {n}"
                );
            }
            if *rank == 1 {
                exempt += 1;
            } else {
                decayed += 1;
            }
        }
        // 3 layers: per block 2 LayerNorms (γ, β), 4 linear biases; plus 2 LayerNorms and the
        // head's bias. Matrices: 4 per block, the embedding and the head.
        assert_eq!((exempt, decayed), (3 * 8 + 5, 3 * 4 + 2));
    }
}
