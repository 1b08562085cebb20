//! The models the experiments compare, by the names the paper gives them.

use std::fmt;

use dpcot_attention::AttentionKind;
use serde::{Deserialize, Serialize};

use crate::ModelError;

/// One compared model: the attention of all its layers, with that attention's defaults.
///
/// The one spelling of a model everywhere (profiles, the command line, file names, the report):
/// `standard`, `sparse`, `linear`, `sliding-w<window>` in names, and the models beyond the
/// paper, `gla`, `deltanet` and `mamba`. In a profile (TOML): `"standard"` or
/// `{ sliding = { window = 4 } }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelChoice {
    /// The standard Transformer: causal softmax attention.
    Standard,
    /// The Sparse Transformer (Child et al. 2019): fixed pattern, block ⌈√L⌉.
    Sparse,
    /// The Linear Transformer (Katharopoulos et al. 2020).
    Linear,
    /// Causal sliding-window attention over the last `window` tokens: the efficient model the
    /// locality assumption suits best.
    Sliding {
        /// How many tokens (the current one included) each query sees.
        window: usize,
    },
    /// Gated linear attention (Yang et al. 2023) in attention's place.
    Gla,
    /// DeltaNet (Schlag et al. 2021; Yang et al. 2024) in attention's place.
    #[serde(rename = "deltanet")]
    DeltaNet,
    /// A Mamba-style selective state-space layer (Gu & Dao 2023) in attention's place.
    Mamba,
}

/// The family of a [`ModelChoice`], without its parameters: what `--model` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum ModelFamily {
    /// Causal softmax attention.
    Standard,
    /// Block-sparse causal attention.
    Sparse,
    /// Kernelized causal attention with a recurrent form.
    Linear,
    /// Sliding-window causal attention (needs a window).
    Sliding,
    /// Gated linear attention.
    Gla,
    /// DeltaNet (delta-rule linear attention).
    #[serde(rename = "deltanet")]
    #[cfg_attr(feature = "clap", value(name = "deltanet"))]
    DeltaNet,
    /// Mamba-style selective state-space layer.
    Mamba,
}

impl ModelChoice {
    /// The model of `family`; `window` is the sliding window's width, which only the sliding
    /// model takes and requires.
    pub fn new(family: ModelFamily, window: Option<usize>) -> Result<Self, ModelError> {
        match (family, window) {
            (ModelFamily::Sliding, Some(window)) => Ok(Self::Sliding { window }),
            (ModelFamily::Sliding, None) => Err(ModelError::invalid(
                "window",
                "the sliding model needs a window",
            )),
            (_, Some(_)) => Err(ModelError::invalid(
                "window",
                format!("only the sliding model takes a window, not the {family:?} one"),
            )),
            (ModelFamily::Standard, None) => Ok(Self::Standard),
            (ModelFamily::Sparse, None) => Ok(Self::Sparse),
            (ModelFamily::Linear, None) => Ok(Self::Linear),
            (ModelFamily::Gla, None) => Ok(Self::Gla),
            (ModelFamily::DeltaNet, None) => Ok(Self::DeltaNet),
            (ModelFamily::Mamba, None) => Ok(Self::Mamba),
        }
    }

    /// The family, without parameters.
    pub fn family(self) -> ModelFamily {
        match self {
            Self::Standard => ModelFamily::Standard,
            Self::Sparse => ModelFamily::Sparse,
            Self::Linear => ModelFamily::Linear,
            Self::Sliding { .. } => ModelFamily::Sliding,
            Self::Gla => ModelFamily::Gla,
            Self::DeltaNet => ModelFamily::DeltaNet,
            Self::Mamba => ModelFamily::Mamba,
        }
    }

    /// Short name, unique per choice (`sliding-w4` carries its window).
    pub fn name(self) -> String {
        self.to_string()
    }

    /// The attention of every layer, with the attention's own defaults.
    pub fn attention(self) -> AttentionKind {
        match self {
            Self::Standard => AttentionKind::Softmax,
            Self::Sparse => AttentionKind::sparse(None),
            Self::Linear => AttentionKind::linear(),
            Self::Sliding { window } => AttentionKind::SlidingWindow { window },
            Self::Gla => AttentionKind::gla(),
            Self::DeltaNet => AttentionKind::delta_net(),
            Self::Mamba => AttentionKind::mamba(),
        }
    }
}

impl fmt::Display for ModelChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Standard => f.write_str("standard"),
            Self::Sparse => f.write_str("sparse"),
            Self::Linear => f.write_str("linear"),
            Self::Sliding { window } => write!(f, "sliding-w{window}"),
            Self::Gla => f.write_str("gla"),
            Self::DeltaNet => f.write_str("deltanet"),
            Self::Mamba => f.write_str("mamba"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_choice_is_spelled_one_way_in_profiles_and_names() {
        let choices: Vec<ModelChoice> = serde_json::from_str(
            r#"["standard","sparse","linear",{"sliding":{"window":4}},"gla","deltanet","mamba"]"#,
        )
        .unwrap();
        let names: Vec<String> = choices.iter().map(|c| c.name()).collect();
        assert_eq!(
            names,
            [
                "standard",
                "sparse",
                "linear",
                "sliding-w4",
                "gla",
                "deltanet",
                "mamba"
            ]
        );
        for choice in choices {
            let window = match choice {
                ModelChoice::Sliding { window } => Some(window),
                _ => None,
            };
            assert_eq!(ModelChoice::new(choice.family(), window).unwrap(), choice);
        }
    }

    #[test]
    fn windows_go_with_the_sliding_model_only() {
        let err = ModelChoice::new(ModelFamily::Sliding, None).unwrap_err();
        assert!(err.to_string().contains("needs a window"), "{err}");
        let err = ModelChoice::new(ModelFamily::Linear, Some(3)).unwrap_err();
        assert!(err.to_string().contains("only the sliding model"), "{err}");
    }

    #[test]
    fn choices_use_the_attention_defaults() {
        let json = |kind: AttentionKind| serde_json::to_value(kind).unwrap();
        assert_eq!(
            json(ModelChoice::Linear.attention()),
            serde_json::json!({"kind": "linear", "chunk_size": 64, "eps": 1e-6})
        );
        assert_eq!(
            json(ModelChoice::Sparse.attention()),
            serde_json::json!({"kind": "sparse", "block_size": null, "summary_width": 1, "pattern": "fixed"})
        );
    }
}
