//! The multi-head causal self-attention layer shared by every variant.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{DropoutConfig, Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

use crate::cache::AttentionCache;
use crate::config::{AttentionKernel, AttentionKind};
use crate::error::AttentionError;
use crate::flops;
use crate::fused;

/// Configuration of a [`CausalSelfAttention`] layer.
#[derive(Config, Debug)]
pub struct CausalSelfAttentionConfig {
    /// Model width; the input and output feature size.
    pub d_model: usize,
    /// Number of heads; must divide `d_model`.
    pub n_heads: usize,
    /// Longest sequence the layer is meant for. Sets the default sparse block size
    /// (`⌈√max_len⌉`) and the initial capacity of decoding caches; longer inputs still work.
    pub max_len: usize,
    /// The attention variant.
    #[config(default = "AttentionKind::Softmax")]
    pub kind: AttentionKind,
    /// Dropout on the attention probabilities while training (the reference's `attn_drop`);
    /// linear attention has none to drop.
    #[config(default = 0.0)]
    pub dropout: f64,
}

impl CausalSelfAttentionConfig {
    /// Validates the configuration and resolves the attention kind.
    pub fn kernel(&self) -> Result<AttentionKernel, AttentionError> {
        if self.d_model == 0 {
            return Err(AttentionError::invalid(
                "d_model",
                "must be at least 1, got 0",
            ));
        }
        if self.n_heads == 0 {
            return Err(AttentionError::invalid(
                "n_heads",
                "must be at least 1, got 0",
            ));
        }
        if !self.d_model.is_multiple_of(self.n_heads) {
            return Err(AttentionError::invalid(
                "n_heads",
                format!(
                    "must divide d_model ({}), got {}",
                    self.d_model, self.n_heads
                ),
            ));
        }
        if self.max_len == 0 {
            return Err(AttentionError::invalid(
                "max_len",
                "must be at least 1, got 0",
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(AttentionError::invalid(
                "dropout",
                format!("must be in [0, 1), got {}", self.dropout),
            ));
        }
        self.kind.resolve(self.max_len)
    }

    /// Builds the layer, or reports the first invalid field.
    pub fn init(&self, device: &Device) -> Result<CausalSelfAttention, AttentionError> {
        let kernel = self.kernel()?;
        Ok(CausalSelfAttention {
            qkv: LinearConfig::new(self.d_model, 3 * self.d_model).init(device),
            output: LinearConfig::new(self.d_model, self.d_model).init(device),
            d_model: self.d_model,
            n_heads: self.n_heads,
            max_len: self.max_len,
            dropout: self.dropout,
            kernel,
        })
    }
}

/// Multi-head causal self-attention with a pluggable attention kernel.
///
/// `x → [q | k | v] = x·W_qkv + b_qkv` (one fused `d → 3d` projection), split into `n_heads`
/// heads of `d_head = d_model / n_heads`, attended by the kernel, merged, and projected by
/// `W_o` (`d → d`, with bias). Softmax-type kernels scale scores by `1/√d_head`.
#[derive(Module, Debug)]
pub struct CausalSelfAttention {
    /// Fused query/key/value projection, `d_model → 3·d_model`.
    pub qkv: Linear,
    /// Output projection, `d_model → d_model`.
    pub output: Linear,
    d_model: usize,
    n_heads: usize,
    max_len: usize,
    dropout: f64,
    #[module(skip)]
    kernel: AttentionKernel,
}

impl CausalSelfAttention {
    /// Parallel (training) forward over a whole sequence.
    ///
    /// - x: `[batch, seq, d_model]`
    /// - returns `[batch, seq, d_model]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [batch, seq, _] = x.dims();
        let (q, k, v) = self.project(x);
        let dropout = (self.dropout > 0.0).then(|| DropoutConfig::new(self.dropout).init());
        let heads = self.kernel.forward_dropout(q, k, v, dropout.as_ref());
        self.merge(heads, batch, seq)
    }

    /// Incremental forward of the next token; `cache` holds everything seen so far.
    ///
    /// Equal (up to float rounding) to row `cache.len()` of [`forward`](Self::forward) over the
    /// whole prefix. For speed, decode on a device without autodiff: an autodiff graph keeps
    /// every cache version alive.
    ///
    /// - x: `[batch, 1, d_model]`
    /// - returns `[batch, 1, d_model]`
    pub fn forward_step(
        &self,
        x: Tensor<3>,
        cache: &mut AttentionCache,
    ) -> Result<Tensor<3>, AttentionError> {
        let [batch, seq, d_model] = x.dims();
        if seq != 1 || d_model != self.d_model {
            return Err(AttentionError::ShapeMismatch {
                context: "forward_step input",
                expected: vec![batch, 1, self.d_model],
                found: vec![batch, seq, d_model],
            });
        }
        let (q, k, v) = self.project(x);
        let heads = self.kernel.step(q, k, v, cache)?;
        Ok(self.merge(heads, batch, 1))
    }

    /// An empty decoding cache for `batch` sequences, sized for `max_len` tokens.
    pub fn new_cache(&self, batch: usize, device: &Device) -> AttentionCache {
        self.kernel
            .new_cache(batch, self.n_heads, self.d_head(), self.max_len, device)
    }

    /// FLOPs of [`forward`](Self::forward) for one sequence of `seq_len` tokens
    /// (see [`flops`] for the convention).
    pub fn forward_flops(&self, seq_len: usize) -> u64 {
        flops::layer_forward(&self.kernel, self.d_model, self.n_heads, seq_len)
    }

    /// FLOPs of one [`forward_step`](Self::forward_step) at 0-based `position`, per sequence.
    pub fn step_flops(&self, position: usize) -> u64 {
        flops::layer_step(&self.kernel, self.d_model, self.n_heads, position)
    }

    /// The resolved attention kernel.
    pub fn kernel(&self) -> AttentionKernel {
        self.kernel
    }

    /// Model width.
    pub fn d_model(&self) -> usize {
        self.d_model
    }

    /// Number of heads.
    pub fn n_heads(&self) -> usize {
        self.n_heads
    }

    /// Width of one head.
    pub fn d_head(&self) -> usize {
        self.d_model / self.n_heads
    }

    /// `[batch, seq, d_model]` → three `[batch, heads, seq, d_head]`.
    fn project(&self, x: Tensor<3>) -> (Tensor<4>, Tensor<4>, Tensor<4>) {
        let [batch, seq, _] = x.dims();
        let (h, dh) = (self.n_heads, self.d_head());
        let qkv = linear_rows(&self.qkv, x)
            .reshape([batch, seq, 3, h, dh])
            .permute([2, 0, 3, 1, 4]);
        let part = |i: usize| {
            qkv.clone()
                .slice([i..i + 1, 0..batch, 0..h, 0..seq, 0..dh])
                .reshape([batch, h, seq, dh])
        };
        (part(0), part(1), part(2))
    }

    /// `[batch, heads, seq, d_head]` → `[batch, seq, d_model]`, through the output projection.
    fn merge(&self, heads: Tensor<4>, batch: usize, seq: usize) -> Tensor<3> {
        let merged = heads.swap_dims(1, 2).reshape([batch, seq, self.d_model]);
        linear_rows(&self.output, merged)
    }
}

/// `layer` applied to every position of `x` as one `[batch·seq, d_in] × [d_in, d_out]` product.
///
/// burn's `Linear` on a `[batch, seq, d_in]` input broadcasts its weight and, on burn-flex,
/// multiplies sequence by sequence, forward and backward (the weight's gradient is then a sum
/// of `batch` products); folding the batch into the rows makes each of these one product.
///
/// - x: `[batch, seq, d_in]`
/// - returns `[batch, seq, d_out]`
pub fn linear_rows(layer: &Linear, x: Tensor<3>) -> Tensor<3> {
    let [batch, seq, d_in] = x.dims();
    let out = fused::linear(
        x.reshape([batch * seq, d_in]),
        layer.weight.val(),
        layer.bias.as_ref().map(|bias| bias.val()),
    );
    let d_out = out.dims()[1];
    out.reshape([batch, seq, d_out])
}
