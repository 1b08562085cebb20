//! What training minimises and how: the masked next-token loss and the AdamW optimizer.
//!
//! The learning-rate schedule (warm-up, then linear decay) is
//! [`TrainConfig::learning_rate_at`]; the loop passes its value to every optimizer step.

use burn::grad_clipping::GradientClippingConfig;
use burn::optim::AdamWConfig;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor};

use crate::config::TrainConfig;

/// The optimizer of `config`: AdamW with its weight decay and gradient clipping.
pub(crate) fn adamw(config: &TrainConfig) -> AdamWConfig {
    AdamWConfig::new()
        .with_weight_decay(config.weight_decay as f32)
        // PyTorch's AdamW epsilon, as the reference uses.
        .with_epsilon(1e-8)
        .with_grad_clipping(
            config
                .grad_clip_norm
                .map(|c| GradientClippingConfig::Norm(c as f32)),
        )
}

/// Next-token cross-entropy averaged over the supervised targets only.
///
/// - logits: `[batch, seq, vocab]`; targets, mask: `[batch, seq]`
pub fn masked_cross_entropy(
    logits: Tensor<3>,
    targets: Tensor<2, Int>,
    mask: Tensor<2>,
) -> Tensor<1> {
    let [batch, seq, _] = logits.dims();
    let log_probs = log_softmax(logits, 2);
    let picked = log_probs
        .gather(2, targets.reshape([batch, seq, 1]))
        .reshape([batch, seq]);
    let count = mask.clone().sum();
    (picked * mask).sum().neg() / count
}
