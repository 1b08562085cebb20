//! The decoder: token embedding + fixed sinusoidal positions, LayerNorm, pre-LN blocks
//! (attention, then MLP d → 4d → d with tanh-GELU), final LayerNorm, untied LM head with bias —
//! the minGPT-style model of the reference CoT benchmark, with a pluggable attention (or, for the
//! models beyond the paper, a recurrent mixer in its place).

use burn::module::Module;
use burn::nn::{
    Dropout, DropoutConfig, Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear,
    LinearConfig,
};
use burn::tensor::{Device, Int, Tensor, TensorData};
use dpcot_attention::{
    fused, linear_rows, AttentionCache, CausalSelfAttention, RecurrentMixer, RecurrentState,
};

use crate::{ModelConfig, ModelError};

/// One pre-LN block: `x + mix(ln(x))`, then `x + mlp(ln(x))`, where `mix` is the configured
/// attention or recurrent mixer (exactly one of the two fields is set).
#[derive(Module, Debug)]
pub struct Block {
    /// LayerNorm before attention.
    pub attention_norm: LayerNorm,
    /// Causal self-attention of the configured variant (the attention models).
    pub attention: Option<CausalSelfAttention>,
    /// The recurrent mixer in attention's place (`gla`, `deltanet`, `mamba`).
    pub mixer: Option<RecurrentMixer>,
    /// LayerNorm before the MLP.
    pub mlp_norm: LayerNorm,
    /// `d → 4d`.
    pub mlp_in: Linear,
    /// `4d → d`.
    pub mlp_out: Linear,
    dropout: Dropout,
}

/// LayerNorm's ε, PyTorch's default as the reference uses it.
pub const LAYER_NORM_EPSILON: f64 = 1e-5;

/// A LayerNorm over `d` features with [`LAYER_NORM_EPSILON`].
fn layer_norm_module(d: usize, device: &Device) -> LayerNorm {
    LayerNormConfig::new(d)
        .with_epsilon(LAYER_NORM_EPSILON)
        .init(device)
}

/// `norm` applied to `x` through the fused LayerNorm ([`fused::layer_norm`]; burn's module
/// composes its backward pass from primitives). The module is kept for its parameters and
/// record format; every norm of the model is built by [`layer_norm_module`], so its ε is
/// [`LAYER_NORM_EPSILON`].
fn normalize<const D: usize>(norm: &LayerNorm, x: Tensor<D>) -> Tensor<D> {
    let beta = norm.beta.as_ref().map(|beta| beta.val());
    fused::layer_norm(x, norm.gamma.val(), beta, LAYER_NORM_EPSILON)
}

impl Block {
    fn new(config: &ModelConfig, device: &Device) -> Result<Self, ModelError> {
        let d = config.d_model;
        let (attention, mixer) = if config.attention.is_recurrent() {
            (None, Some(config.recurrent_config().init(device)?))
        } else {
            (Some(config.attention_config().init(device)?), None)
        };
        Ok(Self {
            attention_norm: layer_norm_module(d, device),
            attention,
            mixer,
            mlp_norm: layer_norm_module(d, device),
            mlp_in: LinearConfig::new(d, 4 * d).init(device),
            mlp_out: LinearConfig::new(4 * d, d).init(device),
            dropout: DropoutConfig::new(config.dropout).init(),
        })
    }

    fn mlp(&self, x: Tensor<3>) -> Tensor<3> {
        let hidden = gelu_tanh(linear_rows(&self.mlp_in, normalize(&self.mlp_norm, x)));
        fused::dropout(linear_rows(&self.mlp_out, hidden), &self.dropout)
    }

    /// Parallel (training) forward.
    ///
    /// - x: `[batch, seq, d_model]`
    /// - returns `[batch, seq, d_model]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let normed = normalize(&self.attention_norm, x.clone());
        let mixed = match (&self.attention, &self.mixer) {
            (Some(attention), _) => attention.forward(normed),
            (None, Some(mixer)) => mixer.forward(normed),
            (None, None) => unreachable!("Block::new sets an attention or a mixer"),
        };
        let x = x + fused::dropout(mixed, &self.dropout);
        x.clone() + self.mlp(x)
    }

    /// Incremental forward of the next token through the layer's decoding state.
    ///
    /// - x: `[batch, 1, d_model]`
    /// - returns `[batch, 1, d_model]`
    pub fn forward_step(
        &self,
        x: Tensor<3>,
        cache: &mut LayerCache,
    ) -> Result<Tensor<3>, ModelError> {
        let normed = normalize(&self.attention_norm, x.clone());
        let mixed = match (&self.attention, &self.mixer, cache) {
            (Some(attention), _, LayerCache::Attention(cache)) => {
                attention.forward_step(normed, cache)?
            }
            (None, Some(mixer), LayerCache::Recurrent(state)) => {
                mixer.forward_step(normed, state)?
            }
            _ => {
                return Err(ModelError::invalid(
                    "decode state",
                    "was built for another model",
                ))
            }
        };
        let x = x + fused::dropout(mixed, &self.dropout);
        Ok(x.clone() + self.mlp(x))
    }

    /// An empty decoding state of this layer.
    fn new_cache(&self, batch: usize, device: &Device) -> LayerCache {
        match (&self.attention, &self.mixer) {
            (Some(attention), _) => {
                LayerCache::Attention(Box::new(attention.new_cache(batch, device)))
            }
            (None, Some(mixer)) => LayerCache::Recurrent(Box::new(mixer.new_state(batch, device))),
            (None, None) => unreachable!("Block::new sets an attention or a mixer"),
        }
    }
}

/// The decoding state of one block: an attention cache or a recurrent state.
#[derive(Debug, Clone)]
pub enum LayerCache {
    /// The attention's cache (keys and values, or what its variant keeps).
    Attention(Box<AttentionCache>),
    /// The recurrent mixer's fixed-size state.
    Recurrent(Box<RecurrentState>),
}

/// GELU in its tanh approximation, `x/2 · (1 + tanh(√(2/π)·(x + 0.044715·x³)))`, as the
/// reference uses it.
///
/// Computed as the equal `x · σ(2√(2/π)·(x + 0.044715·x³))` (since `(1 + tanh u)/2 = σ(2u)`),
/// fused forward and backward on burn-flex ([`fused::gelu_tanh`]), where the textbook form costs
/// a `powf` and a `tanh` per element (docs/performance.md). [`flops`](crate::flops) counts this
/// form: [`GELU_PER_ELEMENT`](crate::flops::GELU_PER_ELEMENT) = 8 FLOPs per element.
pub fn gelu_tanh<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    fused::gelu_tanh(x)
}

/// The whole decoder.
#[derive(Module, Debug)]
pub struct Transformer {
    /// Token embedding `[vocab, d_model]` (positions are fixed sinusoids, not parameters).
    pub token_embedding: Embedding,
    /// LayerNorm of token plus position embedding.
    pub embedding_norm: LayerNorm,
    /// The `n_layers` pre-LN blocks.
    pub blocks: Vec<Block>,
    /// LayerNorm before the head.
    pub final_norm: LayerNorm,
    /// Untied from the embedding, with bias.
    pub head: Linear,
    dropout: Dropout,
    #[module(skip)]
    config: ModelConfig,
}

/// The decoding state of a whole model: one cache per layer and the next position.
#[derive(Debug, Clone)]
pub struct DecodeState {
    caches: Vec<LayerCache>,
    position: usize,
}

impl DecodeState {
    /// Position of the next token (tokens consumed so far).
    pub fn position(&self) -> usize {
        self.position
    }
}

impl ModelConfig {
    /// Validates the config and builds the model with freshly initialised weights (PyTorch's
    /// default initialisation, as burn's defaults are: N(0, 1) embeddings, Kaiming-uniform linears).
    pub fn init(&self, device: &Device) -> Result<Transformer, ModelError> {
        self.validate()?;
        let d = self.d_model;
        Ok(Transformer {
            token_embedding: EmbeddingConfig::new(self.vocab_size, d).init(device),
            embedding_norm: layer_norm_module(d, device),
            blocks: (0..self.n_layers)
                .map(|_| Block::new(self, device))
                .collect::<Result<_, _>>()?,
            final_norm: layer_norm_module(d, device),
            head: LinearConfig::new(d, self.vocab_size).init(device),
            dropout: DropoutConfig::new(self.dropout).init(),
            config: self.clone(),
        })
    }
}

impl Transformer {
    /// The configuration the model was built from.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Parallel (training) forward.
    ///
    /// - tokens: `[batch, seq]`
    /// - returns logits `[batch, seq, vocab]`
    pub fn forward(&self, tokens: Tensor<2, Int>) -> Tensor<3> {
        let [_, seq] = tokens.dims();
        let mut x = self.embed(tokens, 0, seq);
        for block in &self.blocks {
            x = block.forward(x);
        }
        linear_rows(&self.head, normalize(&self.final_norm, x))
    }

    /// An empty decoding state for `batch` sequences.
    pub fn new_decode_state(&self, batch: usize, device: &Device) -> DecodeState {
        DecodeState {
            caches: self
                .blocks
                .iter()
                .map(|b| b.new_cache(batch, device))
                .collect(),
            position: 0,
        }
    }

    /// Incremental forward of the next token of every sequence, through the attention caches.
    ///
    /// - tokens: `[batch, 1]`
    /// - returns logits `[batch, vocab]`
    pub fn forward_step(
        &self,
        tokens: Tensor<2, Int>,
        state: &mut DecodeState,
    ) -> Result<Tensor<2>, ModelError> {
        let [batch, _] = tokens.dims();
        let mut x = self.embed(tokens, state.position, 1);
        for (block, cache) in self.blocks.iter().zip(&mut state.caches) {
            x = block.forward_step(x, cache)?;
        }
        state.position += 1;
        Ok(self
            .head
            .forward(normalize(&self.final_norm, x))
            .reshape([batch, self.config.vocab_size]))
    }

    /// Token embeddings plus the sinusoidal encodings of positions `start..start + len`, then
    /// LayerNorm and dropout.
    fn embed(&self, tokens: Tensor<2, Int>, start: usize, len: usize) -> Tensor<3> {
        let device = tokens.device();
        let positions = sinusoidal_positions(start, len, self.config.d_model, &device);
        let x = self.token_embedding.forward(tokens) + positions.unsqueeze::<3>();
        fused::dropout(normalize(&self.embedding_norm, x), &self.dropout)
    }
}

/// The fixed encodings of Vaswani et al.: `PE[p, 2i] = sin(p / 10000^(2i/d))`,
/// `PE[p, 2i+1] = cos(p / 10000^(2i/d))`, for positions `start..start + len`.
///
/// - returns `[len, d]`
pub fn sinusoidal_positions(start: usize, len: usize, d: usize, device: &Device) -> Tensor<2> {
    Tensor::from_data(
        TensorData::new(sinusoidal_values(start, len, d), [len, d]),
        device,
    )
}

/// The values of [`sinusoidal_positions`], row-major `[len, d]`, computed in f64 and rounded.
pub fn sinusoidal_values(start: usize, len: usize, d: usize) -> Vec<f32> {
    let mut values = Vec::with_capacity(len * d);
    for p in start..start + len {
        for i in 0..d {
            let frequency = 10_000f64.powf(-((i - i % 2) as f64) / d as f64);
            let angle = p as f64 * frequency;
            values.push(if i % 2 == 0 { angle.sin() } else { angle.cos() } as f32);
        }
    }
    values
}

/// Token ids as an `[rows, cols]` int tensor.
pub fn token_tensor(ids: &[u32], rows: usize, cols: usize, device: &Device) -> Tensor<2, Int> {
    let values: Vec<i64> = ids.iter().map(|&t| t as i64).collect();
    Tensor::from_data(TensorData::new(values, [rows, cols]), device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::activation::gelu_approximate;

    #[test]
    fn gelu_tanh_equals_the_textbook_tanh_form() {
        let device = Device::default();
        let values: Vec<f32> = (-400..=400).map(|i| i as f32 * 0.025).collect();
        let n = values.len();
        let x = Tensor::<1>::from_data(TensorData::new(values, [n]), &device);
        let ours = gelu_tanh(x.clone()).into_data();
        let textbook = gelu_approximate(x).into_data();
        ours.assert_approx_eq::<f32>(&textbook, burn::tensor::Tolerance::absolute(2e-6));
        // The tolerance separates the tanh form from GELU's exact (erf) form.
        let one = |v: f32| Tensor::<1>::from_data(TensorData::new(vec![v], [1]), &device);
        let exact: f32 = burn::tensor::activation::gelu(one(-1.5)).into_scalar();
        let approximate: f32 = gelu_tanh(one(-1.5)).into_scalar();
        assert!((exact - approximate).abs() > 1e-4);
    }
}
