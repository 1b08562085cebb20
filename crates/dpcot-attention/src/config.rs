//! Serializable attention configuration and its validated, resolved form.
//!
//! [`AttentionKind`] is what a config file says (`{"kind":"sparse","block_size":16}`);
//! [`AttentionKernel`] is what the layers run, with every default filled in and every value
//! checked. The only way to obtain a kernel is through a constructor that returns
//! `Result<_, AttentionError>`, so the kernels themselves never have to validate.

use serde::{Deserialize, Serialize};

use crate::error::AttentionError;

/// Which attention variant a layer uses, as written in a config file.
///
/// Internally tagged by `kind`:
///
/// ```
/// use dpcot_attention::{AttentionKind, SparsePattern};
///
/// let kind: AttentionKind =
///     serde_json::from_str(r#"{"kind":"sparse","block_size":16,"summary_width":1,"pattern":"fixed"}"#)
///         .unwrap();
/// assert_eq!(
///     kind,
///     AttentionKind::Sparse { block_size: Some(16), summary_width: 1, pattern: SparsePattern::Fixed }
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum AttentionKind {
    /// Standard causal softmax attention (Vaswani et al. 2017).
    #[default]
    Softmax,
    /// Sparse Transformer attention (Child et al. 2019).
    Sparse {
        /// Block (stride) size `B`. `None` means `⌈√max_len⌉`, see [`default_block_size`].
        #[serde(default)]
        block_size: Option<usize>,
        /// Summary width `c` of the fixed pattern: the last `c` positions of every block are
        /// visible to all later blocks. Must be `1` for the strided pattern, which has none.
        #[serde(default = "default_summary_width")]
        summary_width: usize,
        /// Which of the two factorised patterns to use.
        #[serde(default)]
        pattern: SparsePattern,
    },
    /// Linear attention with feature map `elu(x) + 1` (Katharopoulos et al. 2020).
    Linear {
        /// Chunk size `C` of the parallel (training) form.
        #[serde(default = "default_chunk_size")]
        chunk_size: usize,
        /// Stabiliser added to the normaliser: `φ(q)ᵀS / (φ(q)ᵀz + eps)`.
        #[serde(default = "default_eps")]
        eps: f64,
    },
    /// Causal sliding-window (local) softmax attention.
    SlidingWindow {
        /// Window `w`: query `i` sees keys `j` with `i - w < j <= i`.
        window: usize,
    },
    /// Gated linear attention (Yang et al. 2023): a linear-attention state decayed per key
    /// dimension by a data-dependent gate. A recurrent mixer ([`crate::recurrent`]), not a
    /// kernel of [`CausalSelfAttention`](crate::CausalSelfAttention).
    Gla {
        /// Chunk size `C` of the parallel (training) form.
        #[serde(default = "default_recurrent_chunk_size")]
        chunk_size: usize,
    },
    /// DeltaNet (Schlag et al. 2021; Yang et al. 2024): a linear-attention state written by the
    /// delta rule. A recurrent mixer ([`crate::recurrent`]).
    DeltaNet {
        /// Chunk size `C` of the parallel (training) form.
        #[serde(default = "default_recurrent_chunk_size")]
        chunk_size: usize,
        /// Writing strength `β ∈ (0, 2)` instead of `(0, 1)`, so that the state transition
        /// `I − β k kᵀ` has eigenvalues in `(−1, 1]` (Grazzi et al. 2024).
        #[serde(default)]
        negative_eigenvalues: bool,
    },
    /// A selective state-space layer in the style of Mamba (Gu & Dao 2023): input-dependent
    /// `Δ, B, C`, a short causal convolution and a SiLU gate. A recurrent mixer
    /// ([`crate::recurrent`]).
    Mamba {
        /// State size `N` per channel.
        #[serde(default = "default_mamba_state")]
        d_state: usize,
        /// Inner width as a multiple of `d_model`.
        #[serde(default = "default_mamba_expand")]
        expand: usize,
        /// Width of the causal depthwise convolution.
        #[serde(default = "default_mamba_conv")]
        conv_width: usize,
    },
}

/// The two factorised patterns of Child et al. (2019).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SparsePattern {
    /// Query `i` sees every `j <= i` in its own block and the last `summary_width` positions of
    /// every earlier block.
    #[default]
    Fixed,
    /// Query `i` sees the previous `B` positions (`i - B < j <= i`) and every `j <= i` with
    /// `(i - j) mod B = 0`.
    Strided,
}

fn default_summary_width() -> usize {
    AttentionKind::DEFAULT_SUMMARY_WIDTH
}

fn default_chunk_size() -> usize {
    64
}

fn default_eps() -> f64 {
    1e-6
}

fn default_recurrent_chunk_size() -> usize {
    8
}

fn default_mamba_state() -> usize {
    16
}

fn default_mamba_expand() -> usize {
    2
}

fn default_mamba_conv() -> usize {
    4
}

impl AttentionKind {
    /// Summary positions per block of the fixed sparse pattern when not given: one, the most
    /// restrictive choice of Child et al. (2019), which keeps a query's cost at `B + L/B`
    /// positions, `O(√L)` at the default block size — the efficient model at its cheapest.
    pub const DEFAULT_SUMMARY_WIDTH: usize = 1;

    /// Sparse attention with the fixed pattern and its defaults: one summary position per
    /// block, the block size `block_size` or `⌈√max_len⌉`.
    pub fn sparse(block_size: Option<usize>) -> Self {
        Self::Sparse {
            block_size,
            summary_width: default_summary_width(),
            pattern: SparsePattern::default(),
        }
    }

    /// Linear attention with its default chunk size and stabiliser.
    pub fn linear() -> Self {
        Self::Linear {
            chunk_size: default_chunk_size(),
            eps: default_eps(),
        }
    }

    /// Gated linear attention with its default chunk size.
    pub fn gla() -> Self {
        Self::Gla {
            chunk_size: default_recurrent_chunk_size(),
        }
    }

    /// DeltaNet with its default chunk size and `β ∈ (0, 1)`.
    pub fn delta_net() -> Self {
        Self::DeltaNet {
            chunk_size: default_recurrent_chunk_size(),
            negative_eigenvalues: false,
        }
    }

    /// The Mamba-style layer with Mamba's defaults: `N = 16`, expansion 2, convolution width 4.
    pub fn mamba() -> Self {
        Self::Mamba {
            d_state: default_mamba_state(),
            expand: default_mamba_expand(),
            conv_width: default_mamba_conv(),
        }
    }

    /// Whether this is a recurrent mixer ([`crate::recurrent`]) rather than an attention kernel.
    pub fn is_recurrent(&self) -> bool {
        matches!(
            self,
            Self::Gla { .. } | Self::DeltaNet { .. } | Self::Mamba { .. }
        )
    }
}

/// `⌈√max_len⌉` (at least 1): the block size that balances the local (`B`) and the summary
/// (`L/B`) part of sparse attention.
pub fn default_block_size(max_len: usize) -> usize {
    let mut b = (max_len as f64).sqrt().ceil() as usize;
    // Correct for floating-point error in either direction so the result is exact.
    while b > 1 && (b - 1) * (b - 1) >= max_len {
        b -= 1;
    }
    while b * b < max_len {
        b += 1;
    }
    b.max(1)
}

impl AttentionKind {
    /// Fills in defaults and validates.
    ///
    /// `max_len` is the longest sequence the layer is meant for; it only matters for sparse
    /// attention without an explicit block size.
    pub fn resolve(&self, max_len: usize) -> Result<AttentionKernel, AttentionError> {
        match self {
            Self::Softmax => Ok(AttentionKernel::Softmax),
            Self::Sparse {
                block_size,
                summary_width,
                pattern,
            } => {
                let block_size = match block_size {
                    Some(b) => *b,
                    None if max_len == 0 => {
                        return Err(AttentionError::invalid(
                            "max_len",
                            "is 0, so the default sparse block size ⌈√max_len⌉ is undefined",
                        ))
                    }
                    None => default_block_size(max_len),
                };
                SparseParams::new(block_size, *summary_width, *pattern).map(AttentionKernel::Sparse)
            }
            Self::Linear { chunk_size, eps } => {
                LinearParams::new(*chunk_size, *eps).map(AttentionKernel::Linear)
            }
            Self::SlidingWindow { window } => {
                SlidingWindowParams::new(*window).map(AttentionKernel::SlidingWindow)
            }
            Self::Gla { .. } | Self::DeltaNet { .. } | Self::Mamba { .. } => {
                Err(AttentionError::invalid(
                    "kind",
                    format!(
                        "is `{}`, a recurrent mixer, not an attention kernel: build it with \
                         `RecurrentMixerConfig`",
                        self.name()
                    ),
                ))
            }
        }
    }

    /// Short name used in messages and benchmark tables.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Softmax => "softmax",
            Self::Sparse { .. } => "sparse",
            Self::Linear { .. } => "linear",
            Self::SlidingWindow { .. } => "sliding_window",
            Self::Gla { .. } => "gla",
            Self::DeltaNet { .. } => "delta_net",
            Self::Mamba { .. } => "mamba",
        }
    }
}

/// Validated parameters of sparse attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SparseParams {
    block_size: usize,
    summary_width: usize,
    pattern: SparsePattern,
}

impl SparseParams {
    /// Checks `block_size >= 1` and, for the fixed pattern, `1 <= summary_width <= block_size`;
    /// the strided pattern has no summaries and requires `summary_width == 1` (the default).
    pub fn new(
        block_size: usize,
        summary_width: usize,
        pattern: SparsePattern,
    ) -> Result<Self, AttentionError> {
        if block_size == 0 {
            return Err(AttentionError::invalid(
                "block_size",
                "must be at least 1, got 0",
            ));
        }
        match pattern {
            SparsePattern::Fixed if summary_width == 0 || summary_width > block_size => {
                return Err(AttentionError::invalid(
                    "summary_width",
                    format!("must be in 1..=block_size ({block_size}), got {summary_width}"),
                ))
            }
            SparsePattern::Strided if summary_width != 1 => {
                return Err(AttentionError::invalid(
                    "summary_width",
                    format!(
                        "is only used by the fixed pattern; leave it at 1 for strided, got {summary_width}"
                    ),
                ))
            }
            _ => {}
        }
        Ok(Self {
            block_size,
            summary_width,
            pattern,
        })
    }

    /// Block size `B`.
    pub fn block_size(&self) -> usize {
        self.block_size
    }

    /// Summary width `c` (always 1 for the strided pattern).
    pub fn summary_width(&self) -> usize {
        self.summary_width
    }

    /// Fixed or strided.
    pub fn pattern(&self) -> SparsePattern {
        self.pattern
    }
}

/// Validated parameters of linear attention.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinearParams {
    chunk_size: usize,
    eps: f64,
}

impl LinearParams {
    /// Checks `chunk_size >= 1` and that `eps` is finite and non-negative.
    pub fn new(chunk_size: usize, eps: f64) -> Result<Self, AttentionError> {
        if chunk_size == 0 {
            return Err(AttentionError::invalid(
                "chunk_size",
                "must be at least 1, got 0",
            ));
        }
        if !eps.is_finite() || eps < 0.0 {
            return Err(AttentionError::invalid(
                "eps",
                format!("must be finite and >= 0, got {eps}"),
            ));
        }
        Ok(Self { chunk_size, eps })
    }

    /// Chunk size `C` of the parallel form.
    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    /// Normaliser stabiliser `ε`.
    pub fn eps(&self) -> f64 {
        self.eps
    }
}

/// Validated parameters of sliding-window attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlidingWindowParams {
    window: usize,
}

impl SlidingWindowParams {
    /// Checks `window >= 1`.
    pub fn new(window: usize) -> Result<Self, AttentionError> {
        if window == 0 {
            return Err(AttentionError::invalid(
                "window",
                "must be at least 1, got 0",
            ));
        }
        Ok(Self { window })
    }

    /// Window `w`.
    pub fn window(&self) -> usize {
        self.window
    }
}

/// A resolved attention variant: what [`CausalSelfAttention`](crate::CausalSelfAttention) runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AttentionKernel {
    /// Dense causal softmax attention.
    Softmax,
    /// Block-sparse attention.
    Sparse(SparseParams),
    /// Linear (kernelised) attention.
    Linear(LinearParams),
    /// Sliding-window softmax attention.
    SlidingWindow(SlidingWindowParams),
}

/// The variant with its parameters, in config-file spelling: `softmax`,
/// `sparse (block_size 4, summary_width 1, pattern fixed)`, `linear (chunk_size 64, eps 0.000001)`,
/// `sliding_window (window 8)`.
impl std::fmt::Display for AttentionKernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = self.name();
        match self {
            Self::Softmax => write!(f, "{name}"),
            Self::Sparse(p) => {
                let pattern = match p.pattern {
                    SparsePattern::Fixed => "fixed",
                    SparsePattern::Strided => "strided",
                };
                write!(
                    f,
                    "{name} (block_size {}, summary_width {}, pattern {pattern})",
                    p.block_size, p.summary_width
                )
            }
            Self::Linear(p) => write!(f, "{name} (chunk_size {}, eps {})", p.chunk_size, p.eps),
            Self::SlidingWindow(p) => write!(f, "{name} (window {})", p.window),
        }
    }
}

impl AttentionKernel {
    /// Short name used in messages and benchmark tables.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Softmax => "softmax",
            Self::Sparse(_) => "sparse",
            Self::Linear(_) => "linear",
            Self::SlidingWindow(_) => "sliding_window",
        }
    }

    /// Whether query `i` attends to key `j` — the definition of each pattern.
    ///
    /// Linear attention attends to every `j <= i` (with kernel weights instead of softmax ones).
    pub fn attends(&self, i: usize, j: usize) -> bool {
        if j > i {
            return false;
        }
        match self {
            Self::Softmax | Self::Linear(_) => true,
            Self::Sparse(p) => {
                let b = p.block_size;
                match p.pattern {
                    SparsePattern::Fixed => {
                        i / b == j / b || (j / b < i / b && j % b >= b - p.summary_width)
                    }
                    SparsePattern::Strided => i - j < b || (i - j).is_multiple_of(b),
                }
            }
            Self::SlidingWindow(p) => i - j < p.window,
        }
    }
}
