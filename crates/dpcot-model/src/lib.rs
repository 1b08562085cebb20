//! # dpcot-model
//!
//! The decoder-only transformer of the reference CoT benchmark (Feng et al. 2023), assembled
//! from a chosen [`dpcot_attention`] variant, with exact FLOP and parameter accounting.
//!
//! ```
//! use burn::tensor::Device;
//! use dpcot_attention::AttentionKind;
//! use dpcot_model::{flops, generate::greedy_decode, ModelConfig};
//!
//! let device = Device::default();
//! let config = ModelConfig::new(21, 40, 32, AttentionKind::Linear { chunk_size: 16, eps: 1e-6 });
//! let model = config.init(&device)?;
//! // Greedy decoding with the recurrent state of linear attention.
//! let out = greedy_decode(&model, &[vec![10, 3, 11, 9]], 2, 12, &device)?;
//! assert!(out[0].len() <= 8);
//! println!("{} parameters, {} FLOPs per token at position 30",
//!     flops::parameters(&config), flops::decode_step(&config, 30)?);
//! # Ok::<(), dpcot_model::ModelError>(())
//! ```

#![warn(missing_docs)]

pub mod choice;
pub mod config;
mod error;
pub mod flops;
pub mod generate;
pub mod pretrained;
pub mod transformer;

pub use choice::{ModelChoice, ModelFamily};
pub use config::{ModelConfig, ModelOverrides};
pub use dpcot_attention;
pub use error::ModelError;
pub use transformer::{gelu_tanh, DecodeState, Transformer};
