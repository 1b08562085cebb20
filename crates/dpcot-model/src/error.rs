use std::path::PathBuf;

use dpcot_attention::AttentionError;

/// Everything that can go wrong in dpcot-model, each variant saying what and where.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("invalid model config: `{field}` {reason}")]
    InvalidConfig { field: &'static str, reason: String },

    #[error("invalid attention config: {0}")]
    Attention(#[from] AttentionError),

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{path}: not a valid model config: {reason}")]
    Parse { path: PathBuf, reason: String },

    #[error("token id {id} is outside the vocabulary of {vocab_size}")]
    TokenOutOfRange { id: u32, vocab_size: usize },

    #[error("prompts decoded together must have one length (got {first} and {other}); group them by length")]
    MixedPromptLengths { first: usize, other: usize },

    #[error("cannot decode from an empty prompt")]
    EmptyPrompt,

    #[error(
        "a prompt of {len} tokens leaves no room to generate within the maximum length {max_len}"
    )]
    PromptTooLong { len: usize, max_len: usize },

    /// A reference checkpoint that cannot be loaded (see [`crate::pretrained`]). The cause is
    /// part of the message (not a separate `source`, so that it is printed once).
    #[error("{path}: {error}")]
    Checkpoint {
        path: PathBuf,
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
