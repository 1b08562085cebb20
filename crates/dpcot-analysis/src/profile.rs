//! Experiment profiles: which tasks, sizes, models and dimensions, trained how long.
//! Files in `configs/profiles/*.toml`; users copy and edit them.

use std::path::Path;

use dpcot_model::dpcot_attention::{AttentionKind, SparsePattern};
use dpcot_tasks::{TaskOptions, TaskSpec};
use serde::{Deserialize, Serialize};

use crate::AnalysisError;

/// One experiment profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    /// A model "solves" a task at a dimension when its headline accuracy reaches this.
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    /// Every search is repeated for each seed.
    #[serde(default = "default_seeds")]
    pub seeds: Vec<u64>,
    /// The models compared (a sweep may override).
    pub models: Vec<ModelChoice>,
    #[serde(default = "default_layers")]
    pub layers: usize,
    #[serde(default = "default_heads")]
    pub heads: usize,
    #[serde(default)]
    pub dropout: f64,
    pub train: TrainSettings,
    pub data: DataSettings,
    /// The experiments a sweep runs when none is named (`--experiment`); all when absent.
    #[serde(default)]
    pub default_experiments: Option<Vec<String>>,
    pub sweeps: Vec<TaskSweep>,
}

fn default_threshold() -> f64 {
    0.9
}
fn default_seeds() -> Vec<u64> {
    vec![1]
}
fn default_layers() -> usize {
    3
}
fn default_heads() -> usize {
    4
}

/// The attention of a compared model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelChoice {
    /// Causal softmax attention.
    Standard,
    /// Sparse Transformer, fixed pattern, block ⌈√L⌉.
    Sparse,
    /// Linear Transformer.
    Linear,
    /// Causal sliding-window attention over the last `window` tokens — the efficient model
    /// the locality assumption suits best. In TOML: `{ sliding = { window = 4 } }`.
    Sliding { window: usize },
}

impl ModelChoice {
    /// Short name, unique per choice (`sliding-w4` carries its window).
    pub fn name(self) -> String {
        match self {
            ModelChoice::Standard => "standard".into(),
            ModelChoice::Sparse => "sparse".into(),
            ModelChoice::Linear => "linear".into(),
            ModelChoice::Sliding { window } => format!("sliding-w{window}"),
        }
    }

    pub fn attention(self) -> AttentionKind {
        match self {
            ModelChoice::Standard => AttentionKind::Softmax,
            ModelChoice::Sparse => AttentionKind::Sparse {
                block_size: None,
                summary_width: 1,
                pattern: SparsePattern::Fixed,
            },
            ModelChoice::Linear => AttentionKind::Linear {
                chunk_size: 64,
                eps: 1e-6,
            },
            ModelChoice::Sliding { window } => AttentionKind::SlidingWindow { window },
        }
    }
}

/// Training schedule of every run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSettings {
    pub steps: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    #[serde(default)]
    pub warmup_steps: Option<usize>,
    pub eval_every: usize,
    pub eval_examples: usize,
}

/// Generated data of every run (the seed is the run's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSettings {
    pub train: usize,
    pub test: usize,
}

/// One task swept over sizes (and, for the locality experiment, over a locality knob).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSweep {
    /// `general` (the paper's Figure 1) or `locality`.
    #[serde(default = "default_experiment")]
    pub experiment: String,
    /// arithmetic, lis or ed.
    pub task: String,
    pub sizes: Vec<usize>,
    /// The embedding dimensions searched, ascending.
    pub dims: Vec<usize>,
    /// Overrides the profile's models.
    #[serde(default)]
    pub models: Option<Vec<ModelChoice>>,
    /// Knobs passed to the task (see `dpcot show --help`).
    #[serde(default)]
    pub modulus: Option<u32>,
    #[serde(default)]
    pub range: Option<u32>,
    #[serde(default)]
    pub numbers: Option<u32>,
    /// Locality windows (LIS) to sweep; one point per (size, window).
    #[serde(default)]
    pub windows: Vec<usize>,
    /// Locality bands (ED) to sweep; one point per (size, band).
    #[serde(default)]
    pub bands: Vec<usize>,
}

fn default_experiment() -> String {
    "general".to_string()
}

impl TaskSweep {
    /// The task specs of this sweep, in search order: sizes ascending within each locality
    /// setting, so that each search can start from the answer of the previous size.
    pub fn points(&self) -> Result<Vec<Vec<TaskSpec>>, dpcot_tasks::TaskError> {
        let windows: Vec<Option<usize>> = if self.windows.is_empty() {
            vec![None]
        } else {
            self.windows.iter().copied().map(Some).collect()
        };
        let bands: Vec<Option<usize>> = if self.bands.is_empty() {
            vec![None]
        } else {
            self.bands.iter().copied().map(Some).collect()
        };
        let mut chains = Vec::new();
        for &window in &windows {
            for &band in &bands {
                let mut sizes = self.sizes.clone();
                sizes.sort_unstable();
                let chain = sizes
                    .into_iter()
                    .map(|size| {
                        let options = TaskOptions {
                            modulus: self.modulus,
                            range: self.range,
                            window,
                            numbers: self.numbers,
                            band,
                        };
                        TaskSpec::from_name(&self.task, size, &options)
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                chains.push(chain);
            }
        }
        Ok(chains)
    }

    pub fn models<'a>(&'a self, profile: &'a Profile) -> &'a [ModelChoice] {
        self.models.as_deref().unwrap_or(&profile.models)
    }
}

impl Profile {
    /// Reads and validates a profile file.
    pub fn load(path: &Path) -> Result<Self, AnalysisError> {
        let text = std::fs::read_to_string(path).map_err(AnalysisError::io(path))?;
        let invalid = |reason: String| AnalysisError::Profile {
            path: path.to_path_buf(),
            reason,
        };
        let profile: Profile = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        profile.validate().map_err(invalid)?;
        Ok(profile)
    }

    fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.threshold) {
            return Err(format!("threshold {} is not in [0, 1]", self.threshold));
        }
        if self.seeds.is_empty() || self.models.is_empty() || self.sweeps.is_empty() {
            return Err("seeds, models and sweeps must not be empty".into());
        }
        for sweep in &self.sweeps {
            if sweep
                .models(self)
                .iter()
                .any(|m| matches!(m, ModelChoice::Sliding { window: 0 }))
            {
                return Err(format!(
                    "the {} sweep has a sliding window of 0",
                    sweep.task
                ));
            }
            if !["general", "locality"].contains(&sweep.experiment.as_str()) {
                return Err(format!(
                    "unknown experiment `{}` (general or locality)",
                    sweep.experiment
                ));
            }
            if sweep.sizes.is_empty() || sweep.dims.is_empty() {
                return Err(format!("the {} sweep needs sizes and dims", sweep.task));
            }
            if sweep.dims.windows(2).any(|w| w[0] >= w[1]) {
                return Err(format!(
                    "the {} sweep's dims must be strictly ascending",
                    sweep.task
                ));
            }
            if let Some(&d) = sweep.dims.iter().find(|&&d| d % self.heads != 0) {
                return Err(format!(
                    "dimension {d} of the {} sweep is not divisible by {} heads",
                    sweep.task, self.heads
                ));
            }
            sweep
                .points()
                .map_err(|e| format!("{} sweep: {e}", sweep.task))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROFILE: &str = r#"
name = "t"
models = ["standard", "linear"]
[train]
steps = 10
batch_size = 4
learning_rate = 1e-3
eval_every = 5
eval_examples = 10
[data]
train = 50
test = 10
[[sweeps]]
task = "lis"
sizes = [8, 4]
dims = [8, 16]
range = 32
[[sweeps]]
experiment = "locality"
task = "lis"
sizes = [4, 8]
windows = [2, 3]
dims = [8]
models = ["standard", { sliding = { window = 3 } }]
"#;

    fn write(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn points_are_ordered_by_size_per_locality_setting() {
        let (_dir, path) = write(PROFILE);
        let p = Profile::load(&path).unwrap();
        assert_eq!(p.threshold, 0.9);
        let chains = p.sweeps[0].points().unwrap();
        assert_eq!(chains.len(), 1);
        assert_eq!(
            chains[0][0],
            TaskSpec::Lis {
                length: 4,
                range: 32,
                window: None
            }
        );
        let local = p.sweeps[1].points().unwrap();
        assert_eq!(local.len(), 2);
        assert_eq!(
            local[1][1],
            TaskSpec::Lis {
                length: 8,
                range: 250,
                window: Some(3)
            }
        );
    }

    #[test]
    fn bad_profiles_say_what_is_wrong() {
        for (bad, needle) in [
            (
                PROFILE.replace("dims = [8, 16]", "dims = [16, 8]"),
                "ascending",
            ),
            (
                PROFILE.replace("dims = [8, 16]", "dims = [8, 18]"),
                "divisible",
            ),
            (
                PROFILE.replace(
                    "task = \"lis\"\nsizes = [8, 4]",
                    "task = \"sudoku\"\nsizes = [8, 4]",
                ),
                "unknown task",
            ),
            (
                PROFILE.replace("name = \"t\"", "name = \"t\"\ncolour = 1"),
                "colour",
            ),
        ] {
            let (_dir, path) = write(&bad);
            let err = Profile::load(&path).unwrap_err().to_string();
            assert!(err.contains(needle), "{needle}: {err}");
        }
    }
}
