//! # dpcot-model
//!
//! The decoder-only transformer of the reference CoT benchmark (Feng et al. 2023), assembled from
//! a chosen [`dpcot_attention`] variant, with exact FLOP and parameter accounting.
//!
//! Not yet built (see the model/training issue). Intended modules:
//! - `config`: `ModelConfig` (serde, validated on load: `d_model` divisible by heads, positive sizes);
//! - `transformer`: token embedding + fixed sinusoidal positions, embedding LayerNorm, pre-LN
//!   blocks (attention, MLP d→4d→d with GELU), final LayerNorm, untied LM head with bias;
//! - `cache`: the per-layer decoding state (KV cache, block cache or recurrent state);
//! - `flops`: exact parameter count and FLOPs per generated token and per training step.
