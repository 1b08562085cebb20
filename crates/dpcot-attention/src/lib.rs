//! Causal attention variants that really compute less, as burn modules.
//!
//! The paper under reproduction ("Do Efficient Transformers Really Save Computation?", ICML
//! 2024) compares standard softmax attention with the sparse and linear Transformers. This crate
//! provides those variants — plus sliding-window attention — with one shared layer,
//! [`CausalSelfAttention`], and for each variant:
//!
//! - a parallel form for training whose work really is sub-quadratic (block-sparse products,
//!   chunked linear attention, block-local windows — never a masked dense `L×L` matrix), and
//! - an incremental decoding form with a per-variant cache ([`AttentionCache`]),
//!
//! together with dense references ([`mod@reference`]) the efficient forms are tested against, and
//! exact FLOP counts ([`flops`]). See `docs/attention.md` for the algorithms.
//!
//! - [`config`]: [`AttentionKind`] (what a config file says) and its validated form,
//!   [`AttentionKernel`];
//! - [`layer`]: the multi-head layer [`CausalSelfAttention`] and its config;
//! - [`kernels`]: the parallel form and the decoding cache of each variant, one file each;
//! - [`cache`]: [`AttentionCache`], the decoding state of one layer;
//! - [`recurrent`]: the recurrent mixers beyond the paper — gated linear attention, DeltaNet and
//!   a Mamba-style selective SSM — each with a parallel and a recurrent form;
//! - [`mod@reference`]: dense, obviously correct versions of every kernel, for tests;
//! - [`flops`]: FLOP counts of what the kernels really compute;
//! - [`fused`]: fused softmax, GELU, LayerNorm and cross-entropy with their backward passes
//!   (our own CPU kernels on burn-flex, the composed form elsewhere);
//! - [`AttentionError`]: the crate's one error type.
//!
//! ```
//! use burn::tensor::{Device, Distribution, Tensor};
//! use dpcot_attention::{AttentionKind, CausalSelfAttentionConfig, SparsePattern};
//!
//! let device = Device::default();
//! let kind = AttentionKind::Sparse { block_size: Some(4), summary_width: 1, pattern: SparsePattern::Fixed };
//! let attn = CausalSelfAttentionConfig::new(32, 4, 64).with_kind(kind).init(&device)?;
//!
//! // Training: the whole sequence at once.
//! let x = Tensor::<3>::random([2, 10, 32], Distribution::Default, &device);
//! let y = attn.forward(x.clone());
//! assert_eq!(y.dims(), [2, 10, 32]);
//!
//! // Decoding: one token at a time, same results.
//! let mut cache = attn.new_cache(2, &device);
//! let y0 = attn.forward_step(x.slice([0..2, 0..1, 0..32]), &mut cache)?;
//! assert_eq!(y0.dims(), [2, 1, 32]);
//! # Ok::<(), dpcot_attention::AttentionError>(())
//! ```

#![warn(missing_docs)]

pub mod cache;
pub mod config;
pub mod error;
pub mod flops;
pub mod fused;
pub mod kernels;
pub mod layer;
pub mod recurrent;
pub mod reference;

pub use burn;
pub use cache::AttentionCache;
pub use config::{
    default_block_size, AttentionKernel, AttentionKind, LinearParams, SlidingWindowParams,
    SparseParams, SparsePattern,
};
pub use error::AttentionError;
pub use kernels::{
    linear_attention, sliding_window_attention, softmax_attention, sparse_attention,
};
pub use layer::{linear_rows, CausalSelfAttention, CausalSelfAttentionConfig};
pub use recurrent::{RecurrentKernel, RecurrentMixer, RecurrentMixerConfig, RecurrentState};
