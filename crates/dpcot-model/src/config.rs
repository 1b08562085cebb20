//! The model's configuration: serde (JSON or TOML), validated before anything is built.

use std::path::Path;

use dpcot_attention::{AttentionKind, CausalSelfAttentionConfig, RecurrentMixerConfig};
use serde::{Deserialize, Serialize};

use crate::ModelError;

/// A GPT-style decoder as in the reference CoT benchmark: 3 layers, 4 heads, dropout 0.1.
///
/// Built as burn's module configs are: `ModelConfig::new(required…).with_optional(…)`. Every
/// default is a constant of this type, written once and used by serde, the builders and the
/// command line's help.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Vocabulary size of the task.
    pub vocab_size: usize,
    /// Longest sequence (the task's maximum length); sets the sparse block size default.
    pub max_len: usize,
    /// Embedding (model) dimension, the quantity whose minimum the experiments search.
    pub d_model: usize,
    /// Decoder layers [default: [`Self::DEFAULT_N_LAYERS`]].
    #[serde(default = "default_layers")]
    pub n_layers: usize,
    /// Attention heads per layer; must divide `d_model` [default: [`Self::DEFAULT_N_HEADS`]].
    #[serde(default = "default_heads")]
    pub n_heads: usize,
    /// Dropout on the embeddings, on the attention probabilities (not in linear attention,
    /// which has none), after attention and after the MLP, as the reference places it
    /// [default: [`Self::DEFAULT_DROPOUT`]].
    #[serde(default = "default_dropout")]
    pub dropout: f64,
    /// The attention variant of every layer [default: softmax].
    #[serde(default)]
    pub attention: AttentionKind,
}

fn default_layers() -> usize {
    ModelConfig::DEFAULT_N_LAYERS
}
fn default_heads() -> usize {
    ModelConfig::DEFAULT_N_HEADS
}
fn default_dropout() -> f64 {
    ModelConfig::DEFAULT_DROPOUT
}

impl ModelConfig {
    /// The reference benchmark's depth.
    pub const DEFAULT_N_LAYERS: usize = 3;
    /// The reference benchmark's head count.
    pub const DEFAULT_N_HEADS: usize = 4;
    /// The reference benchmark's dropout.
    pub const DEFAULT_DROPOUT: f64 = 0.1;
    /// The most parameters a model may have: 2³¹, 8 GiB of f32 weights (and as much again for
    /// each of the gradients and the two AdamW moments). The paper's largest models have a few
    /// million; past this, building the model would abort on a failed allocation.
    pub const MAX_PARAMETERS: u64 = 1 << 31;

    /// The reference setup with the given sizes and attention.
    pub fn new(
        vocab_size: usize,
        max_len: usize,
        d_model: usize,
        attention: AttentionKind,
    ) -> Self {
        Self {
            vocab_size,
            max_len,
            d_model,
            n_layers: Self::DEFAULT_N_LAYERS,
            n_heads: Self::DEFAULT_N_HEADS,
            dropout: Self::DEFAULT_DROPOUT,
            attention,
        }
    }

    /// With `n_layers` decoder layers.
    pub fn with_n_layers(self, n_layers: usize) -> Self {
        Self { n_layers, ..self }
    }

    /// With `n_heads` attention heads.
    pub fn with_n_heads(self, n_heads: usize) -> Self {
        Self { n_heads, ..self }
    }

    /// With dropout probability `dropout`.
    pub fn with_dropout(self, dropout: f64) -> Self {
        Self { dropout, ..self }
    }

    /// With `attention` in every layer.
    pub fn with_attention(self, attention: AttentionKind) -> Self {
        Self { attention, ..self }
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ModelError> {
        let positive = |field, value: usize| {
            if value == 0 {
                Err(ModelError::invalid(field, "must be at least 1, got 0"))
            } else {
                Ok(())
            }
        };
        positive("vocab_size", self.vocab_size)?;
        positive("max_len", self.max_len)?;
        positive("d_model", self.d_model)?;
        positive("n_layers", self.n_layers)?;
        positive("n_heads", self.n_heads)?;
        if !self.d_model.is_multiple_of(self.n_heads) {
            return Err(ModelError::invalid(
                "d_model",
                format!(
                    "({}) must be divisible by n_heads ({})",
                    self.d_model, self.n_heads
                ),
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(ModelError::invalid(
                "dropout",
                format!("must be in [0, 1), got {}", self.dropout),
            ));
        }
        let parameters = crate::flops::parameters(self);
        if parameters > Self::MAX_PARAMETERS {
            return Err(ModelError::invalid(
                "vocab_size, d_model, n_layers",
                format!(
                    "({}, {}, {}) give {parameters} parameters, past the supported {}",
                    self.vocab_size,
                    self.d_model,
                    self.n_layers,
                    Self::MAX_PARAMETERS
                ),
            ));
        }
        if self.attention.is_recurrent() {
            self.recurrent_config().kernel()?;
        } else {
            self.attention_config().kernel()?;
        }
        Ok(())
    }

    /// The configuration of every recurrent mixer, for the recurrent kinds
    /// ([`AttentionKind::is_recurrent`]).
    pub fn recurrent_config(&self) -> RecurrentMixerConfig {
        RecurrentMixerConfig::new(self.d_model, self.n_heads, self.attention.clone())
    }

    /// The configuration of every attention layer.
    pub fn attention_config(&self) -> CausalSelfAttentionConfig {
        CausalSelfAttentionConfig::new(self.d_model, self.n_heads, self.max_len)
            .with_kind(self.attention.clone())
            .with_dropout(self.dropout)
    }

    /// Reads a config from a `.json` or `.toml` file and validates it.
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let parse_error = |reason: String| ModelError::Parse {
            path: path.to_path_buf(),
            reason,
        };
        let config: Self = match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => toml::from_str(&text).map_err(|e| parse_error(e.to_string()))?,
            _ => serde_json::from_str(&text).map_err(|e| parse_error(e.to_string()))?,
        };
        config.validate()?;
        Ok(config)
    }
}

/// The model settings a user may change (a profile's `[model]` table, the command line's
/// flags): each unset field keeps [`ModelConfig`]'s default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
#[serde(deny_unknown_fields)]
pub struct ModelOverrides {
    /// Decoder layers.
    #[cfg_attr(feature = "clap", arg(long, help = flag_help("Decoder layers", ModelConfig::DEFAULT_N_LAYERS)))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_layers: Option<usize>,
    /// Attention heads per layer, dividing the dimension.
    #[cfg_attr(feature = "clap", arg(long, help = flag_help("Attention heads per layer, dividing the dimension", ModelConfig::DEFAULT_N_HEADS)))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_heads: Option<usize>,
    /// Dropout probability.
    #[cfg_attr(feature = "clap", arg(long, help = flag_help("Dropout probability", ModelConfig::DEFAULT_DROPOUT)))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropout: Option<f64>,
    /// Sparse attention's block size B [default: ⌈√L⌉]; applies to sparse models only.
    #[cfg_attr(feature = "clap", arg(long))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sparse_block_size: Option<usize>,
    /// Sparse attention's summary positions per block c (fixed pattern); applies to sparse
    /// models only.
    #[cfg_attr(feature = "clap", arg(long, help = flag_help("Sparse attention's summary positions per block (fixed pattern)", AttentionKind::DEFAULT_SUMMARY_WIDTH)))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sparse_summary_width: Option<usize>,
    /// DeltaNet's writing strength in (0, 2) instead of (0, 1), so that its state transitions
    /// have eigenvalues in (−1, 1]; applies to the deltanet model only.
    #[cfg_attr(feature = "clap", arg(long))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub negative_eigenvalues: Option<bool>,
}

/// The help of a command-line flag that overrides a config field: what it is and the default
/// it overrides, read from the config's constant so that the value is written once.
#[cfg(feature = "clap")]
pub fn flag_help(what: &str, default: impl std::fmt::Display) -> String {
    format!("{what} [default: {default}]")
}

impl ModelOverrides {
    /// `config` with every set field replaced.
    pub fn apply(&self, mut config: ModelConfig) -> ModelConfig {
        if let Some(n_layers) = self.n_layers {
            config.n_layers = n_layers;
        }
        if let Some(n_heads) = self.n_heads {
            config.n_heads = n_heads;
        }
        if let Some(dropout) = self.dropout {
            config.dropout = dropout;
        }
        if let AttentionKind::Sparse {
            block_size,
            summary_width,
            ..
        } = &mut config.attention
        {
            *block_size = self.sparse_block_size.or(*block_size);
            *summary_width = self.sparse_summary_width.unwrap_or(*summary_width);
        }
        if let AttentionKind::DeltaNet {
            negative_eigenvalues,
            ..
        } = &mut config.attention
        {
            *negative_eigenvalues = self.negative_eigenvalues.unwrap_or(*negative_eigenvalues);
        }
        config
    }

    /// Whether a setting of sparse attention is given (which only a sparse model can take).
    pub fn sets_sparse(&self) -> bool {
        self.sparse_block_size.is_some() || self.sparse_summary_width.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_reference_setup() {
        let c: ModelConfig =
            serde_json::from_str(r#"{"vocab_size":20,"max_len":30,"d_model":64}"#).unwrap();
        assert_eq!((c.n_layers, c.n_heads, c.dropout), (3, 4, 0.1));
        assert_eq!(c.attention, AttentionKind::Softmax);
        c.validate().unwrap();
    }

    #[test]
    fn bad_configs_name_the_field() {
        let mut c = ModelConfig::new(20, 30, 66, AttentionKind::Softmax);
        let err = c.validate().unwrap_err();
        assert!(err.to_string().contains("divisible by n_heads"), "{err}");
        c.d_model = 64;
        c.dropout = 1.5;
        assert!(c.validate().unwrap_err().to_string().contains("dropout"));
        c.dropout = 0.0;
        c.attention = AttentionKind::SlidingWindow { window: 0 };
        assert!(matches!(c.validate(), Err(ModelError::Attention(_))));
    }

    #[test]
    fn a_model_too_large_to_allocate_is_an_error_not_an_abort() {
        // `dpcot bench --vocab 1000000000` aborted on a failed allocation of 512 GB.
        let mut c = ModelConfig::new(1_000_000_000, 30, 64, AttentionKind::Softmax);
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("parameters, past the supported"), "{err}");
        assert!(c.init(&Default::default()).is_err());
        // Counted without overflow however large.
        c.vocab_size = 20;
        c.d_model = usize::MAX / 2;
        c.n_heads = 1;
        assert_eq!(crate::flops::parameters(&c), u64::MAX);
        assert!(c.validate().is_err());
        c.d_model = 64;
        c.n_heads = 4;
        c.validate().unwrap();
    }

    #[test]
    fn malformed_and_unknown_fields_are_errors() {
        let dir = std::env::temp_dir().join(format!("dpcot-model-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.toml");
        std::fs::write(
            &path,
            "vocab_size = 20\nmax_len = 30\nd_model = 64\nlayers = 2\n",
        )
        .unwrap();
        let err = ModelConfig::load(&path).unwrap_err();
        assert!(
            matches!(err, ModelError::Parse { .. }) && err.to_string().contains("layers"),
            "{err}"
        );
        std::fs::write(
            &path,
            "vocab_size = 20\nmax_len = 30\nd_model = 64\n[attention]\nkind = \"linear\"\n",
        )
        .unwrap();
        assert!(matches!(
            ModelConfig::load(&path).unwrap().attention,
            AttentionKind::Linear { .. }
        ));
        assert!(matches!(
            ModelConfig::load(&dir.join("missing.json")),
            Err(ModelError::Io { .. })
        ));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn sparse_settings_reach_sparse_attention_only() {
        let overrides = ModelOverrides {
            sparse_block_size: Some(6),
            sparse_summary_width: Some(2),
            ..Default::default()
        };
        let sparse = overrides.apply(ModelConfig::new(20, 30, 64, AttentionKind::sparse(None)));
        assert!(matches!(
            sparse.attention,
            AttentionKind::Sparse {
                block_size: Some(6),
                summary_width: 2,
                ..
            }
        ));
        sparse.validate().unwrap();
        let softmax = overrides.apply(ModelConfig::new(20, 30, 64, AttentionKind::Softmax));
        assert_eq!(softmax.attention, AttentionKind::Softmax);

        let too_wide = ModelOverrides {
            sparse_block_size: Some(2),
            sparse_summary_width: Some(3),
            ..Default::default()
        }
        .apply(ModelConfig::new(20, 30, 64, AttentionKind::sparse(None)));
        assert!(too_wide.validate().is_err(), "c may not exceed B");
        let width_only = ModelOverrides {
            sparse_summary_width: Some(3),
            ..Default::default()
        }
        .apply(ModelConfig::new(20, 30, 64, AttentionKind::sparse(None)));
        assert!(
            matches!(
                width_only.attention,
                AttentionKind::Sparse {
                    block_size: None,
                    summary_width: 3,
                    ..
                }
            ),
            "the block size keeps its default"
        );
    }
}
