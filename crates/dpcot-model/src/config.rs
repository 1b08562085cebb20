//! The model's configuration: serde (JSON or TOML), validated before anything is built.

use std::path::Path;

use dpcot_attention::{AttentionKind, CausalSelfAttentionConfig};
use serde::{Deserialize, Serialize};

use crate::ModelError;

/// A GPT-style decoder as in the reference CoT benchmark: 3 layers, 4 heads, dropout 0.1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Vocabulary size of the task.
    pub vocab_size: usize,
    /// Longest sequence (the task's maximum length); sets the sparse block size default.
    pub max_len: usize,
    /// Embedding (model) dimension, the quantity whose minimum the experiments search.
    pub d_model: usize,
    #[serde(default = "default_layers")]
    pub n_layers: usize,
    #[serde(default = "default_heads")]
    pub n_heads: usize,
    /// Dropout on the embeddings, after attention and after the MLP.
    #[serde(default = "default_dropout")]
    pub dropout: f64,
    /// The attention variant of every layer.
    #[serde(default)]
    pub attention: AttentionKind,
}

fn default_layers() -> usize {
    3
}
fn default_heads() -> usize {
    4
}
fn default_dropout() -> f64 {
    0.1
}

impl ModelConfig {
    /// The reference setup (3 layers, 4 heads, dropout 0.1) with the given sizes.
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
            n_layers: default_layers(),
            n_heads: default_heads(),
            dropout: default_dropout(),
            attention,
        }
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
        self.attention_config().kernel()?;
        Ok(())
    }

    /// The configuration of every attention layer.
    pub fn attention_config(&self) -> CausalSelfAttentionConfig {
        CausalSelfAttentionConfig::new(self.d_model, self.n_heads, self.max_len)
            .with_kind(self.attention.clone())
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
}
