//! # dpcot-attention
//!
//! Causal attention variants as burn modules, each with a parallel (training) form and an
//! incremental (decoding) form. Being built (see the attention issue). Intended modules:
//! - `config`: the serde choice of variant (softmax, block-sparse, linear, sliding window);
//! - `kernels`: the head-level computations, block-sparse and chunked so that they compute less;
//! - `cache`: KV cache, block cache and recurrent state for decoding;
//! - `flops`: exact FLOP counts per variant.
