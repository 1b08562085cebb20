//! Exact parameter counts and FLOP counts, consistent with `dpcot_attention::flops`.
//!
//! Convention (the attention crate's): a multiply-add is 2 FLOPs; additions, multiplications,
//! divisions, exponentials and square roots count 1 each. Per token and layer:
//!
//! - LayerNorm over d: mean (d), centring (d), variance (2d), eps and square root (2), scale (d),
//!   affine (2d): 7d + 2.
//! - Linear in → out with bias: 2·in·out + out.
//! - tanh-GELU: [`GELU_PER_ELEMENT`] on each of the 4d hidden units, as
//!   [`gelu_tanh`](crate::gelu_tanh) computes it.
//! - residual additions: d each; position encoding addition: d (the encodings are constants).
//! - attention (projections and kernel): `dpcot_attention::flops`, which counts the work the
//!   implementation really does (padding to blocks and chunks included).
//!
//! Embedding lookups, dropout (inactive at evaluation) and the final argmax are not counted.
//! A training step counts forward + backward, the backward being twice the forward (the
//! attention crate's convention); the loss and the optimizer update are not counted.

use dpcot_attention::flops::{
    backward, kernel_state_floats, layer_forward, layer_step, recurrent_forward, recurrent_step,
};
use dpcot_attention::{AttentionKernel, AttentionKind, RecurrentKernel};

use crate::{ModelConfig, ModelError};

/// Every trainable parameter of the model built from `config` (`u64::MAX` for a config too
/// large to count in 64 bits, which [`ModelConfig::validate`] refuses).
pub fn parameters(config: &ModelConfig) -> u64 {
    let (v, d, layers) = (
        config.vocab_size as u128,
        config.d_model as u128,
        config.n_layers as u128,
    );
    // Saturating: a width near usize::MAX squared passes even u128.
    let (mul, add) = (u128::saturating_mul, u128::saturating_add);
    let layer_norm = mul(2, d);
    let linear = |i: u128, o: u128| add(mul(i, o), o);
    let block = [
        layer_norm,
        mixer_parameters(config),
        layer_norm,
        linear(d, mul(4, d)),
        linear(mul(4, d), d),
    ]
    .into_iter()
    .fold(0, add);
    let count = [
        mul(v, d),
        layer_norm,
        mul(layers, block),
        layer_norm,
        linear(d, v),
    ]
    .into_iter()
    .fold(0, add);
    u64::try_from(count).unwrap_or(u64::MAX)
}

/// Parameters of one block's attention or recurrent mixer.
fn mixer_parameters(config: &ModelConfig) -> u128 {
    let (d, h) = (config.d_model as u128, config.n_heads as u128);
    let (mul, add) = (u128::saturating_mul, u128::saturating_add);
    let linear = |i: u128, o: u128| add(mul(i, o), o);
    let weights = |i: u128, o: u128| mul(i, o);
    let qkv_and_output = add(linear(d, mul(3, d)), linear(d, d));
    match &config.attention {
        AttentionKind::Gla { .. } => {
            let rank = dpcot_attention::recurrent::gla::GATE_RANK as u128;
            [
                qkv_and_output,
                weights(d, rank),
                linear(rank, d),
                linear(d, d),
            ]
            .into_iter()
            .fold(0, add)
        }
        AttentionKind::DeltaNet { .. } => add(qkv_and_output, linear(d, h)),
        AttentionKind::Mamba {
            d_state,
            expand,
            conv_width,
        } => {
            let (n, di) = (*d_state as u128, mul(*expand as u128, d));
            let rank = config.d_model.div_ceil(16) as u128;
            [
                weights(d, mul(2, di)),
                mul(di, *conv_width as u128),
                di,
                weights(di, add(rank, mul(2, n))),
                linear(rank, di),
                mul(di, n),
                di,
                weights(di, d),
            ]
            .into_iter()
            .fold(0, add)
        }
        _ => qkv_and_output,
    }
}

/// FLOPs of [`gelu_tanh`](crate::gelu_tanh) per element, counting the sigmoid form it runs,
/// `x · σ(x·(a·x·x + b))` with `b = 2√(2/π)`, `a = 0.044715·b`: `x·x`, `·a`, `+ b`, `·x` (4),
/// the sigmoid `1/(1 + e⁻ᶻ)` (exponential, addition, division: 3; the sign flip is free) and
/// the final `x ·` (1). The textbook tanh form would count 9.
pub const GELU_PER_ELEMENT: u64 = 8;

/// FLOPs of everything but attention, for one token.
fn dense_per_token(config: &ModelConfig) -> u64 {
    let (v, d, layers) = (
        config.vocab_size as u64,
        config.d_model as u64,
        config.n_layers as u64,
    );
    let layer_norm = 7 * d + 2;
    let linear = |i: u64, o: u64| 2 * i * o + o;
    let mlp = linear(d, 4 * d) + GELU_PER_ELEMENT * 4 * d + linear(4 * d, d);
    let block = layer_norm + d + layer_norm + mlp + d;
    d + layer_norm + layers * block + layer_norm + linear(d, v)
}

/// What mixes tokens in every block of `config`'s model, validated.
enum Mixer {
    Attention(AttentionKernel),
    Recurrent(RecurrentKernel),
}

fn mixer(config: &ModelConfig) -> Result<Mixer, ModelError> {
    Ok(if config.attention.is_recurrent() {
        Mixer::Recurrent(config.recurrent_config().kernel()?)
    } else {
        Mixer::Attention(config.attention_config().kernel()?)
    })
}

/// FLOPs of the parallel forward over one sequence of `seq_len` tokens.
pub fn forward(config: &ModelConfig, seq_len: usize) -> Result<u64, ModelError> {
    let (d, h) = (config.d_model, config.n_heads);
    let mixing = match mixer(config)? {
        Mixer::Attention(kernel) => layer_forward(&kernel, d, h, seq_len),
        Mixer::Recurrent(kernel) => recurrent_forward(&kernel, d, h, seq_len),
    };
    Ok(seq_len as u64 * dense_per_token(config) + config.n_layers as u64 * mixing)
}

/// FLOPs of one decoding step at 0-based `position` (the token's own attention included).
pub fn decode_step(config: &ModelConfig, position: usize) -> Result<u64, ModelError> {
    let (d, h) = (config.d_model, config.n_heads);
    let mixing = match mixer(config)? {
        Mixer::Attention(kernel) => layer_step(&kernel, d, h, position),
        Mixer::Recurrent(kernel) => recurrent_step(&kernel, d, h),
    };
    Ok(dense_per_token(config) + config.n_layers as u64 * mixing)
}

/// Bytes of decoding state (f32) that the model carries from one generated token to the next
/// once `position` tokens have been consumed, per sequence, over all layers: the keys and values
/// of softmax attention, what the sparse and sliding caches keep, linear attention's `d×d` state
/// and normaliser, the recurrent mixers' states. Activations of the token itself are not state.
pub fn decode_state_bytes(config: &ModelConfig, position: usize) -> Result<u64, ModelError> {
    let (d, h) = (config.d_model, config.n_heads);
    let per_layer = match mixer(config)? {
        Mixer::Attention(kernel) => h as u64 * kernel_state_floats(&kernel, position, d / h),
        Mixer::Recurrent(kernel) => dpcot_attention::flops::recurrent_state_floats(&kernel, d, h),
    };
    Ok(4 * config.n_layers as u64 * per_layer)
}

/// FLOPs of decoding a whole sequence of `seq_len` tokens one step at a time.
pub fn decode_sequence(config: &ModelConfig, seq_len: usize) -> Result<u64, ModelError> {
    (0..seq_len).map(|p| decode_step(config, p)).sum()
}

/// FLOPs of one training step on one sequence of `seq_len` tokens: forward and backward.
pub fn training_step(config: &ModelConfig, seq_len: usize) -> Result<u64, ModelError> {
    let f = forward(config, seq_len)?;
    Ok(f + backward(f))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Module;
    use burn::tensor::Device;
    use dpcot_attention::AttentionKind;

    fn configs() -> Vec<ModelConfig> {
        [
            AttentionKind::Softmax,
            AttentionKind::Sparse {
                block_size: Some(4),
                summary_width: 1,
                pattern: Default::default(),
            },
            AttentionKind::Linear {
                chunk_size: 8,
                eps: 1e-6,
            },
            AttentionKind::SlidingWindow { window: 4 },
        ]
        .into_iter()
        .map(|kind| ModelConfig::new(21, 40, 32, kind))
        .collect()
    }

    #[test]
    fn parameter_count_is_the_module_count() {
        let device = Device::default();
        for config in configs() {
            let model = config.init(&device).unwrap();
            assert_eq!(
                parameters(&config),
                model.num_params() as u64,
                "{:?}",
                config.attention
            );
        }
    }

    #[test]
    fn dense_work_per_token_is_the_closed_form() {
        let config = ModelConfig::new(21, 40, 32, AttentionKind::Softmax);
        let (v, d) = (21u64, 32u64);
        let layer_norm = 7 * d + 2;
        let attention_norm_and_residual = layer_norm + d;
        // d → 4d, GELU on the 4d hidden units (8 each: the sigmoid form that runs, not the
        // tanh form's 9), 4d → d; then the residual.
        let mlp = layer_norm + (2 * d * 4 * d + 4 * d) + 8 * 4 * d + (2 * 4 * d * d + d) + d;
        let head = layer_norm + 2 * d * v + v;
        let want = d + layer_norm + 3 * (attention_norm_and_residual + mlp) + head;
        assert_eq!(dense_per_token(&config), want);
        // Attention is the only other term.
        let kernel = config.attention_config().kernel().unwrap();
        assert_eq!(
            decode_step(&config, 7).unwrap(),
            want + 3 * layer_step(&kernel, 32, 4, 7)
        );
    }

    #[test]
    fn decoding_a_sequence_sums_its_steps_and_attention_is_what_differs() {
        for config in configs() {
            let steps: u64 = (0..30).map(|p| decode_step(&config, p).unwrap()).sum();
            assert_eq!(decode_sequence(&config, 30).unwrap(), steps);
            assert_eq!(
                training_step(&config, 30).unwrap(),
                3 * forward(&config, 30).unwrap()
            );
        }
        // Softmax decoding cost grows with the position; linear attention's does not.
        let [softmax, _, linear, _] = &configs()[..] else {
            unreachable!()
        };
        assert!(decode_step(softmax, 39).unwrap() > decode_step(softmax, 0).unwrap());
        assert_eq!(
            decode_step(linear, 39).unwrap(),
            decode_step(linear, 0).unwrap()
        );
    }
}
