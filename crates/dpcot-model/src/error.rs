use std::path::PathBuf;

use dpcot_attention::AttentionError;

/// Everything that can go wrong in dpcot-model, each variant saying what and where.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A model configuration field has a value the model cannot be built with.
    #[error("invalid model config: `{field}` {reason}")]
    InvalidConfig {
        /// Name of the offending field, as spelled in the serialized config.
        field: &'static str,
        /// Why the value is rejected, including the value itself.
        reason: String,
    },

    /// An error of the attention layers: an invalid attention config, or a decoding state
    /// that does not fit the model. Displayed as it is, since it already says which.
    #[error(transparent)]
    Attention(#[from] AttentionError),

    /// A file that cannot be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system reported.
        #[source]
        source: std::io::Error,
    },

    /// A config file that is not a valid model config.
    #[error("{path}: not a valid model config: {reason}")]
    Parse {
        /// The config file.
        path: PathBuf,
        /// The parser's message.
        reason: String,
    },

    /// A prompt token outside the model's vocabulary.
    #[error("token id {id} is outside the vocabulary of {vocab_size}")]
    TokenOutOfRange {
        /// The offending token id.
        id: u32,
        /// The model's vocabulary size.
        vocab_size: usize,
    },

    /// Prompts of different lengths in one decoding batch.
    #[error("prompts decoded together must have one length (got {first} and {other}); group them by length")]
    MixedPromptLengths {
        /// Length of the first prompt.
        first: usize,
        /// Length of the first prompt that differs from it.
        other: usize,
    },

    /// A prompt without tokens.
    #[error("cannot decode from an empty prompt")]
    EmptyPrompt,

    /// A prompt that already fills the maximum length.
    #[error(
        "a prompt of {len} tokens leaves no room to generate within the maximum length {max_len}"
    )]
    PromptTooLong {
        /// Length of the prompts.
        len: usize,
        /// The maximum length of prompt plus generation.
        max_len: usize,
    },

    /// A reference checkpoint that cannot be loaded (see [`crate::pretrained`]). The cause is
    /// part of the message (not a separate `source`, so that it is printed once).
    #[error("{path}: {error}")]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong with it.
        error: crate::pretrained::CheckpointError,
    },
}

impl ModelError {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        ModelError::InvalidConfig {
            field,
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Int, Tensor};
    use dpcot_attention::AttentionKind;

    use super::*;
    use crate::ModelConfig;

    #[test]
    fn an_invalid_attention_config_is_named_once() {
        let config = ModelConfig::new(20, 30, 64, AttentionKind::SlidingWindow { window: 0 });
        let err = config.validate().expect_err("window 0");
        assert!(matches!(err, ModelError::Attention(_)), "{err:?}");
        assert_eq!(
            err.to_string(),
            "invalid attention config: `window` must be at least 1, got 0"
        );
    }

    #[test]
    fn a_decoding_state_of_another_variant_is_a_cache_mismatch_not_a_config_error() {
        let device = Device::default();
        let softmax = ModelConfig::new(20, 30, 32, AttentionKind::Softmax)
            .init(&device)
            .expect("valid");
        let linear = ModelConfig::new(
            20,
            30,
            32,
            AttentionKind::Linear {
                chunk_size: 4,
                eps: 1e-6,
            },
        )
        .init(&device)
        .expect("valid");
        let mut state = linear.new_decode_state(1, &device);
        let token = Tensor::<2, Int>::zeros([1, 1], &device);
        let err = softmax
            .forward_step(token, &mut state)
            .expect_err("a linear-attention state in a softmax model");
        assert!(
            matches!(
                err,
                ModelError::Attention(AttentionError::CacheMismatch { .. })
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "decoding cache mismatch: the layer runs softmax but the cache was built for \
             linear (chunk_size 4, eps 0.000001)"
        );
    }
}
