//! Experiment profiles: which tasks, sizes, models and dimensions, trained how long.
//! Files in `configs/profiles/*.toml`; users copy and edit them.

use std::fmt;
use std::path::Path;

use dpcot_model::dpcot_attention::AttentionKind;
use dpcot_model::{ModelConfig, ModelOverrides};
use dpcot_tasks::{DpTask, TaskKind, TaskOptions, TaskSpec};
use dpcot_train::{DataOverrides, TrainOverrides};
use serde::{Deserialize, Serialize};

pub use dpcot_model::ModelChoice;

use crate::AnalysisError;

/// The profiles that come with dpcot, by name (`--profile quick`); any other profile is a
/// path to a TOML file.
pub const BUILTIN: [(&str, &str); 4] = [
    (
        "smoke",
        include_str!("../../../configs/profiles/smoke.toml"),
    ),
    (
        "quick",
        include_str!("../../../configs/profiles/quick.toml"),
    ),
    (
        "cpu-long",
        include_str!("../../../configs/profiles/cpu-long.toml"),
    ),
    (
        "paper",
        include_str!("../../../configs/profiles/paper.toml"),
    ),
];

/// One experiment profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// The profile's name (results go to `results/<name>` by default).
    pub name: String,
    /// A model "solves" a task at a dimension when its headline accuracy on the validation
    /// split reaches this (runs stop early there too).
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    /// Every search is repeated for each seed.
    #[serde(default = "default_seeds")]
    pub seeds: Vec<u64>,
    /// The models compared (a sweep may override).
    pub models: Vec<ModelChoice>,
    /// Model settings of every run; unset ones keep the model's defaults.
    #[serde(default)]
    pub model: ModelOverrides,
    /// Training settings of every run (a sweep may override some); unset ones keep the
    /// trainer's defaults.
    #[serde(default)]
    pub train: TrainOverrides,
    /// Sizes of the generated data of every run (the seed is the run's).
    #[serde(default)]
    pub data: DataOverrides,
    /// The experiments a sweep runs when none is named (`--experiment`); all when absent.
    #[serde(default)]
    pub default_experiments: Option<Vec<Experiment>>,
    /// The sweeps: one task over sizes and dimensions each.
    pub sweeps: Vec<TaskSweep>,
}

fn default_threshold() -> f64 {
    0.9
}
fn default_seeds() -> Vec<u64> {
    vec![1]
}

/// Which experiment a sweep belongs to.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum Experiment {
    /// The paper's Figure 1: the minimal dimension of each model on the general DP tasks.
    #[default]
    General,
    /// The paper's locality result: m-local tasks, with sliding-window attention beside.
    Locality,
    /// Beyond the paper: today's efficient models (GLA, DeltaNet, Mamba) on the general and the
    /// local tasks, reported beside the paper's models of the other two experiments.
    Modern,
}

impl Experiment {
    /// The name used in profiles, run ids and the report.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::General => "general",
            Self::Locality => "locality",
            Self::Modern => "modern",
        }
    }
}

impl fmt::Display for Experiment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One task swept over sizes (and, for the locality experiment, over a locality knob).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSweep {
    /// The experiment the sweep belongs to [default: general].
    #[serde(default)]
    pub experiment: Experiment,
    /// The task.
    pub task: TaskKind,
    /// The problem sizes (`--size` of the task), searched in ascending order.
    pub sizes: Vec<usize>,
    /// The embedding dimensions searched, ascending.
    pub dims: Vec<usize>,
    /// Overrides the profile's models.
    #[serde(default)]
    pub models: Option<Vec<ModelChoice>>,
    /// Training settings of this sweep's runs, over the profile's `[train]`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub train: TrainOverrides,
    /// Arithmetic modulus (see `dpcot show --help`).
    #[serde(default)]
    pub modulus: Option<u32>,
    /// LIS number range.
    #[serde(default)]
    pub range: Option<u32>,
    /// Edit-distance number tokens.
    #[serde(default)]
    pub numbers: Option<u32>,
    /// Locality windows (LIS) to sweep; one point per (size, window).
    #[serde(default)]
    pub windows: Vec<usize>,
    /// LIS with windows: each step carries its input inside the chain, so that every read is
    /// within the last 3m + 1 tokens (docs/locality.md).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub inline_inputs: bool,
    /// Locality bands (ED) to sweep; one point per (size, band).
    #[serde(default)]
    pub bands: Vec<usize>,
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
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
                            inline_inputs: self.inline_inputs,
                            numbers: self.numbers,
                            band,
                        };
                        TaskSpec::new(self.task, size, &options)
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                chains.push(chain);
            }
        }
        Ok(chains)
    }

    /// The models this sweep compares.
    pub fn models<'a>(&'a self, profile: &'a Profile) -> &'a [ModelChoice] {
        self.models.as_deref().unwrap_or(&profile.models)
    }
}

impl Profile {
    /// A built-in profile by name ([`BUILTIN`]) or else a profile file, validated.
    pub fn named_or_load(name_or_path: &str) -> Result<Self, AnalysisError> {
        match BUILTIN.iter().find(|(name, _)| *name == name_or_path) {
            Some((name, text)) => Self::parse(text, Path::new(&format!("<built-in {name}>"))),
            None if Path::new(name_or_path).exists() || name_or_path.ends_with(".toml") => {
                Self::load(Path::new(name_or_path))
            }
            None => Err(AnalysisError::UnknownProfile {
                name: name_or_path.to_string(),
                builtin: BUILTIN.map(|(name, _)| name).join(", "),
            }),
        }
    }

    /// Reads and validates a profile file.
    pub fn load(path: &Path) -> Result<Self, AnalysisError> {
        let text = std::fs::read_to_string(path).map_err(AnalysisError::io(path))?;
        Self::parse(&text, path)
    }

    /// Parses and validates a profile's text; `path` names it in errors.
    fn parse(text: &str, path: &Path) -> Result<Self, AnalysisError> {
        let invalid = |reason: String| AnalysisError::Profile {
            path: path.to_path_buf(),
            reason,
        };
        let profile: Profile = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        profile.validate().map_err(invalid)?;
        Ok(profile)
    }

    /// The attention heads of every model.
    pub fn heads(&self) -> usize {
        self.model_template().n_heads
    }

    /// The model settings every run shares (layers, heads, dropout), resolved; its sizes and
    /// attention are placeholders that each run sets.
    pub fn model_template(&self) -> ModelConfig {
        self.model
            .apply(ModelConfig::new(0, 0, 0, AttentionKind::Softmax))
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
            sweep
                .train
                .or(&self.train)
                .config()
                .validate()
                .map_err(|e| format!("the {} sweep's training settings: {e}", sweep.task))?;
            if sweep.sizes.is_empty() || sweep.dims.is_empty() {
                return Err(format!("the {} sweep needs sizes and dims", sweep.task));
            }
            if sweep.dims.windows(2).any(|w| w[0] >= w[1]) {
                return Err(format!(
                    "the {} sweep's dims must be strictly ascending",
                    sweep.task
                ));
            }
            // The model settings at every dimension (heads dividing it, at least one head and
            // layer, dropout in range); the task's vocabulary and length are checked per run.
            for &d in &sweep.dims {
                self.model
                    .apply(ModelConfig::new(1, 1, d, AttentionKind::Softmax))
                    .validate()
                    .map_err(|e| format!("dimension {d} of the {} sweep: {e}", sweep.task))?;
            }
            let chains = sweep
                .points()
                .map_err(|e| format!("{} sweep: {e}", sweep.task))?;
            // Every task must build (knobs that contradict each other, sizes past the caps),
            // before any run starts rather than in each run.
            let tasks = chains
                .iter()
                .flatten()
                .map(|spec| {
                    spec.build()
                        .map_err(|e| format!("the {} sweep, {spec}: {e}", sweep.task))
                })
                .collect::<Result<Vec<_>, _>>()?;
            if sweep.models(self).contains(&ModelChoice::Sparse) && self.model.sets_sparse() {
                // The pattern must fit every size: the summary width may not exceed the block.
                for task in &tasks {
                    let config = ModelConfig::new(
                        task.vocab().len(),
                        task.max_len(),
                        self.heads(),
                        ModelChoice::Sparse.attention(),
                    );
                    self.model.apply(config).validate().map_err(|e| {
                        format!("the sparse settings do not fit {}: {e}", task.name())
                    })?;
                }
            }
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
train_examples = 50
test_examples = 10
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
                window: None,
                inline_inputs: false,
            }
        );
        let local = p.sweeps[1].points().unwrap();
        assert_eq!(local.len(), 2);
        assert_eq!(
            local[1][1],
            TaskSpec::Lis {
                length: 8,
                range: 250,
                window: Some(3),
                inline_inputs: false,
            }
        );

        let (_dir, path) =
            write(&PROFILE.replace("windows = [2, 3]", "windows = [2, 3]\ninline_inputs = true"));
        let inline = Profile::load(&path).unwrap().sweeps[1].points().unwrap();
        assert_eq!(
            inline[0][0],
            TaskSpec::Lis {
                length: 4,
                range: 250,
                window: Some(2),
                inline_inputs: true,
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
                "unknown variant `sudoku`",
            ),
            (
                PROFILE.replace("name = \"t\"", "name = \"t\"\ncolour = 1"),
                "colour",
            ),
            (
                PROFILE
                    .replace(
                        "[train]",
                        "[model]\nsparse_block_size = 2\nsparse_summary_width = 3\n[train]",
                    )
                    .replace(
                        "models = [\"standard\", \"linear\"]",
                        "models = [\"standard\", \"sparse\"]",
                    ),
                "sparse settings do not fit",
            ),
            (
                PROFILE.replace("[train]", "[model]\nn_heads = 0\n[train]"),
                "`n_heads` must be at least 1",
            ),
            (
                PROFILE.replace("experiment = \"locality\"", "experiment = \"local\""),
                "unknown variant `local`",
            ),
            (
                PROFILE.replace(
                    "task = \"lis\"\nsizes = [8, 4]",
                    "task = \"lis\"\ninline_inputs = true\nsizes = [8, 4]",
                ),
                "needs a window",
            ),
            (
                PROFILE.replace(
                    "windows = [2, 3]",
                    "windows = [2, 3]\ntrain = { steps = 0 }",
                ),
                "training settings",
            ),
        ] {
            let (_dir, path) = write(&bad);
            let err = Profile::load(&path).unwrap_err().to_string();
            assert!(err.contains(needle), "{needle}: {err}");
        }
    }

    #[test]
    fn builtin_profiles_load_by_name_and_unknown_names_are_errors() {
        for (name, _) in BUILTIN {
            let profile = Profile::named_or_load(name).unwrap();
            assert_eq!(profile.name, name);
        }
        let err = Profile::named_or_load("fast").unwrap_err().to_string();
        assert!(err.contains("smoke, quick, cpu-long, paper"), "{err}");
        let (_dir, path) = write(PROFILE);
        assert_eq!(
            Profile::named_or_load(path.to_str().unwrap()).unwrap().name,
            "t"
        );
    }

    #[test]
    fn a_sweep_overrides_the_profile_training_settings() {
        let text = PROFILE.replace(
            "dims = [8, 16]\n",
            "dims = [8, 16]\ntrain = { steps = 40 }\n",
        );
        let (_dir, path) = write(&text);
        let p = Profile::load(&path).unwrap();
        let config = p.sweeps[0].train.or(&p.train).config();
        assert_eq!((config.steps, config.batch_size), (40, 4));
        assert_eq!(p.sweeps[1].train.or(&p.train).config().steps, 10);
    }

    #[test]
    fn sparse_settings_reach_the_sparse_runs() {
        let text = PROFILE
            .replace("[train]", "[model]\nsparse_summary_width = 2\n[train]")
            .replace(
                "models = [\"standard\", \"linear\"]",
                "models = [\"standard\", \"sparse\"]",
            );
        let (_dir, path) = write(&text);
        let p = Profile::load(&path).unwrap();
        assert_eq!(p.model.sparse_summary_width, Some(2));
        let model = p
            .model
            .apply(ModelConfig::new(10, 20, 8, ModelChoice::Sparse.attention()));
        assert!(matches!(
            model.attention,
            AttentionKind::Sparse {
                summary_width: 2,
                block_size: None,
                ..
            }
        ));
    }
}
