//! Recurrent token mixers beyond the paper: gated linear attention, DeltaNet and a Mamba-style
//! selective state-space layer.
//!
//! Each replaces a block's attention (the MLP stays), and each has
//!
//! - a parallel training form: chunked for GLA and DeltaNet (exact, `O(L·C·d + L·d²)`), a scan
//!   for Mamba (one fused pass over the sequence on burn-flex, [`crate::fused::selective_scan`]);
//! - a recurrent decoding form over a fixed-size state ([`RecurrentState`]), whose size does not
//!   grow with the position: [`RecurrentMixer::state_floats`];
//! - a naive token-by-token reference of its kernel ([`gla::naive`], [`delta_net::naive`],
//!   [`mamba::naive_scan`]) that the parallel forms are tested against, and which
//!   `scripts/recurrent_reference.py` mirrors to produce reference values independently.
//!
//! See docs/attention.md for the recurrences, state sizes and FLOP counts.

pub mod delta_net;
pub mod gla;
pub mod mamba;

use burn::module::Module;
use burn::tensor::{Device, Tensor};

use crate::config::AttentionKind;
use crate::error::AttentionError;

pub use delta_net::{DeltaNet, DeltaNetParams, DeltaNetState};
pub use gla::{GatedLinearAttention, GlaParams, GlaState};
pub use mamba::{Mamba, MambaParams, MambaState};

/// A resolved recurrent mixer with validated parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecurrentKernel {
    /// Gated linear attention.
    Gla(GlaParams),
    /// DeltaNet.
    DeltaNet(DeltaNetParams),
    /// The Mamba-style selective SSM.
    Mamba(MambaParams),
}

impl RecurrentKernel {
    /// The recurrent mixer `kind` names, validated; `None` for attention kinds.
    pub fn from_kind(kind: &AttentionKind) -> Option<Result<Self, AttentionError>> {
        Some(match *kind {
            AttentionKind::Gla { chunk_size } => GlaParams::new(chunk_size).map(Self::Gla),
            AttentionKind::DeltaNet {
                chunk_size,
                negative_eigenvalues,
            } => DeltaNetParams::new(chunk_size, negative_eigenvalues).map(Self::DeltaNet),
            AttentionKind::Mamba {
                d_state,
                expand,
                conv_width,
            } => MambaParams::new(d_state, expand, conv_width).map(Self::Mamba),
            _ => return None,
        })
    }

    /// Short name: `gla`, `delta_net`, `mamba`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Gla(_) => "gla",
            Self::DeltaNet(_) => "delta_net",
            Self::Mamba(_) => "mamba",
        }
    }
}

/// Configuration of a [`RecurrentMixer`].
#[derive(Debug, Clone, PartialEq)]
pub struct RecurrentMixerConfig {
    /// Model width.
    pub d_model: usize,
    /// Heads of GLA and DeltaNet (must divide `d_model`); Mamba has none and ignores it.
    pub n_heads: usize,
    /// Which mixer, with what parameters.
    pub kind: AttentionKind,
}

impl RecurrentMixerConfig {
    /// A config for `kind`, which must be a recurrent kind ([`AttentionKind::is_recurrent`]).
    pub fn new(d_model: usize, n_heads: usize, kind: AttentionKind) -> Self {
        Self {
            d_model,
            n_heads,
            kind,
        }
    }

    /// Validates the configuration and resolves the kind.
    pub fn kernel(&self) -> Result<RecurrentKernel, AttentionError> {
        if self.d_model == 0 {
            return Err(AttentionError::invalid(
                "d_model",
                "must be at least 1, got 0",
            ));
        }
        let kernel = RecurrentKernel::from_kind(&self.kind).unwrap_or_else(|| {
            Err(AttentionError::invalid(
                "kind",
                format!(
                    "is `{}`, an attention kernel, not a recurrent mixer",
                    self.kind.name()
                ),
            ))
        })?;
        if !matches!(kernel, RecurrentKernel::Mamba(_)) {
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
        }
        Ok(kernel)
    }

    /// Builds the mixer with fresh weights, or reports the first invalid field.
    pub fn init(&self, device: &Device) -> Result<RecurrentMixer, AttentionError> {
        Ok(match self.kernel()? {
            RecurrentKernel::Gla(p) => RecurrentMixer::Gla(GatedLinearAttention::new(
                self.d_model,
                self.n_heads,
                p,
                device,
            )),
            RecurrentKernel::DeltaNet(p) => {
                RecurrentMixer::DeltaNet(DeltaNet::new(self.d_model, self.n_heads, p, device))
            }
            RecurrentKernel::Mamba(p) => RecurrentMixer::Mamba(Mamba::new(self.d_model, p, device)),
        })
    }
}

/// One of the recurrent mixers, as a module.
#[derive(Module, Debug)]
pub enum RecurrentMixer {
    /// Gated linear attention.
    Gla(GatedLinearAttention),
    /// DeltaNet.
    DeltaNet(DeltaNet),
    /// The Mamba-style selective SSM.
    Mamba(Mamba),
}

/// The decoding state of one [`RecurrentMixer`].
#[derive(Debug, Clone)]
pub enum RecurrentState {
    /// GLA's `d_k × d_v` state per head.
    Gla(GlaState),
    /// DeltaNet's `d_k × d_v` state per head.
    DeltaNet(DeltaNetState),
    /// Mamba's `d_inner × N` state and the convolution's last inputs (boxed: it holds two
    /// tensors where the others hold one).
    Mamba(Box<MambaState>),
}

impl RecurrentState {
    /// Number of tokens consumed so far.
    pub fn len(&self) -> usize {
        match self {
            Self::Gla(s) => s.len(),
            Self::DeltaNet(s) => s.len(),
            Self::Mamba(s) => s.len(),
        }
    }

    /// Whether no token has been consumed yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl RecurrentMixer {
    /// The resolved kind.
    pub fn kernel(&self) -> RecurrentKernel {
        match self {
            Self::Gla(m) => RecurrentKernel::Gla(m.params()),
            Self::DeltaNet(m) => RecurrentKernel::DeltaNet(m.params()),
            Self::Mamba(m) => RecurrentKernel::Mamba(m.params()),
        }
    }

    /// Parallel (training) forward over a whole sequence.
    ///
    /// - x: `[batch, seq, d_model]`
    /// - returns `[batch, seq, d_model]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        match self {
            Self::Gla(m) => m.forward(x),
            Self::DeltaNet(m) => m.forward(x),
            Self::Mamba(m) => m.forward(x),
        }
    }

    /// An empty decoding state for `batch` sequences.
    pub fn new_state(&self, batch: usize, device: &Device) -> RecurrentState {
        match self {
            Self::Gla(m) => RecurrentState::Gla(m.new_state(batch, device)),
            Self::DeltaNet(m) => RecurrentState::DeltaNet(m.new_state(batch, device)),
            Self::Mamba(m) => RecurrentState::Mamba(Box::new(m.new_state(batch, device))),
        }
    }

    /// Incremental forward of the next token; equal (up to float rounding) to row `state.len()`
    /// of [`forward`](Self::forward) over the whole prefix.
    ///
    /// - x: `[batch, 1, d_model]`
    /// - returns `[batch, 1, d_model]`
    pub fn forward_step(
        &self,
        x: Tensor<3>,
        state: &mut RecurrentState,
    ) -> Result<Tensor<3>, AttentionError> {
        match (self, state) {
            (Self::Gla(m), RecurrentState::Gla(s)) => m.forward_step(x, s),
            (Self::DeltaNet(m), RecurrentState::DeltaNet(s)) => m.forward_step(x, s),
            (Self::Mamba(m), RecurrentState::Mamba(s)) => m.forward_step(x, s),
            (mixer, state) => Err(AttentionError::CacheMismatch {
                expected: mixer.kernel().name().to_string(),
                found: match state {
                    RecurrentState::Gla(_) => "gla",
                    RecurrentState::DeltaNet(_) => "delta_net",
                    RecurrentState::Mamba(_) => "mamba",
                }
                .to_string(),
            }),
        }
    }

    /// Floats of state carried from one token to the next, per sequence (the recurrent state;
    /// Mamba's convolution window included). Independent of the position.
    pub fn state_floats(&self) -> u64 {
        crate::flops::recurrent_state_floats(&self.kernel(), self.d_model(), self.n_heads())
    }

    /// FLOPs of [`forward`](Self::forward) for one sequence of `seq_len` tokens.
    pub fn forward_flops(&self, seq_len: usize) -> u64 {
        crate::flops::recurrent_forward(&self.kernel(), self.d_model(), self.n_heads(), seq_len)
    }

    /// FLOPs of one [`forward_step`](Self::forward_step), per sequence (the same at every
    /// position).
    pub fn step_flops(&self) -> u64 {
        crate::flops::recurrent_step(&self.kernel(), self.d_model(), self.n_heads())
    }

    /// Model width.
    pub fn d_model(&self) -> usize {
        match self {
            Self::Gla(m) => m.d_model(),
            Self::DeltaNet(m) => m.d_model(),
            Self::Mamba(m) => m.d_model(),
        }
    }

    /// Heads (1 for Mamba, which has none).
    pub fn n_heads(&self) -> usize {
        match self {
            Self::Gla(m) => m.n_heads(),
            Self::DeltaNet(m) => m.n_heads(),
            Self::Mamba(_) => 1,
        }
    }
}

/// `[batch, seq, heads·d_head]` → `[batch, heads, seq, d_head]`.
pub(crate) fn split_heads(x: Tensor<3>, heads: usize) -> Tensor<4> {
    let [b, l, d] = x.dims();
    x.reshape([b, l, heads, d / heads]).swap_dims(1, 2)
}

/// `[batch, heads, seq, d_head]` → `[batch, seq, heads·d_head]`.
pub(crate) fn merge_heads(x: Tensor<4>) -> Tensor<3> {
    let [b, h, l, d] = x.dims();
    x.swap_dims(1, 2).reshape([b, l, h * d])
}

/// ε of the per-head normalisations.
pub(crate) const NORM_EPS: f64 = 1e-6;

/// RMS normalisation over the last dimension, without weights: `x / √(mean(x²) + ε)`.
pub(crate) fn rms_norm<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let ms = x.clone().square().mean_dim(D - 1);
    x.div(ms.add_scalar(NORM_EPS).sqrt())
}

/// L2 normalisation over the last dimension: `x / √(Σx² + ε)`.
pub(crate) fn l2_norm<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let ss = x.clone().square().sum_dim(D - 1);
    x.div(ss.add_scalar(NORM_EPS).sqrt())
}

/// Checks that a decoding input is `[batch, 1, d_model]` for the state's batch.
pub(crate) fn check_step_input(
    x: &Tensor<3>,
    batch: usize,
    d_model: usize,
) -> Result<(), AttentionError> {
    let dims = x.dims();
    if dims != [batch, 1, d_model] {
        return Err(AttentionError::ShapeMismatch {
            context: "recurrent step input",
            expected: vec![batch, 1, d_model],
            found: dims.to_vec(),
        });
    }
    Ok(())
}
