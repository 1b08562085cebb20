//! What a run trains, on what data, for how long: serde, stored as `config.json` in the run.

use std::path::PathBuf;

use dpcot_model::ModelConfig;
use dpcot_tasks::{DpTask, TaskSpec};
use serde::{Deserialize, Serialize};

#[cfg(feature = "clap")]
use dpcot_model::config::flag_help;

use crate::TrainError;

/// Optimisation and evaluation schedule.
///
/// Every default is a constant of this type, written once and used by serde, [`Self::new`] and
/// the command line's help.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Step budget.
    pub steps: usize,
    /// Examples per step [default: [`Self::DEFAULT_BATCH_SIZE`]].
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Peak learning rate of AdamW [default: [`Self::DEFAULT_LEARNING_RATE`]].
    #[serde(default = "default_learning_rate")]
    pub learning_rate: f64,
    /// Decoupled weight decay of AdamW [default: [`Self::DEFAULT_WEIGHT_DECAY`]].
    #[serde(default = "default_weight_decay")]
    pub weight_decay: f64,
    /// Linear warm-up steps; the rate then decays linearly to 0 at `steps`.
    /// Default: 5% of the budget.
    #[serde(default)]
    pub warmup_steps: Option<usize>,
    /// Clip the gradient's global norm to this value.
    #[serde(default)]
    pub grad_clip_norm: Option<f64>,
    /// Evaluate every this many steps (and at the end). Default: a tenth of the budget.
    #[serde(default)]
    pub eval_every: Option<usize>,
    /// Test examples used by the intermediate evaluations; the final one uses the whole split
    /// [default: [`Self::DEFAULT_EVAL_EXAMPLES`]].
    #[serde(default = "default_eval_examples")]
    pub eval_examples: usize,
    /// Stop as soon as an evaluation reaches this headline accuracy (in [0, 1]).
    #[serde(default)]
    pub target_accuracy: Option<f64>,
    /// Write a checkpoint every this many steps. Default: at every evaluation.
    #[serde(default)]
    pub checkpoint_every: Option<usize>,
    /// Append the loss to `metrics.jsonl` every this many steps
    /// [default: [`Self::DEFAULT_LOG_EVERY`]].
    #[serde(default = "default_log_every")]
    pub log_every: usize,
    /// Seeds the initialisation, the batch order and dropout [default: [`Self::DEFAULT_SEED`]].
    #[serde(default = "default_seed")]
    pub seed: u64,
}

fn default_batch_size() -> usize {
    TrainConfig::DEFAULT_BATCH_SIZE
}
fn default_learning_rate() -> f64 {
    TrainConfig::DEFAULT_LEARNING_RATE
}
fn default_weight_decay() -> f64 {
    TrainConfig::DEFAULT_WEIGHT_DECAY
}
fn default_eval_examples() -> usize {
    TrainConfig::DEFAULT_EVAL_EXAMPLES
}
fn default_log_every() -> usize {
    TrainConfig::DEFAULT_LOG_EVERY
}
fn default_seed() -> u64 {
    TrainConfig::DEFAULT_SEED
}

impl TrainConfig {
    /// The step budget when none is given.
    pub const DEFAULT_STEPS: usize = 3000;
    /// The batch size when none is given.
    pub const DEFAULT_BATCH_SIZE: usize = 64;
    /// The peak learning rate when none is given.
    pub const DEFAULT_LEARNING_RATE: f64 = 1e-3;
    /// The reference's AdamW weight decay.
    pub const DEFAULT_WEIGHT_DECAY: f64 = 0.01;
    /// Test examples of the intermediate evaluations when not given.
    pub const DEFAULT_EVAL_EXAMPLES: usize = 500;
    /// Steps between two loss lines of `metrics.jsonl` when not given.
    pub const DEFAULT_LOG_EVERY: usize = 10;
    /// The seed when none is given.
    pub const DEFAULT_SEED: u64 = 1;

    /// Defaults for a budget of `steps`.
    pub fn new(steps: usize) -> Self {
        Self {
            steps,
            batch_size: Self::DEFAULT_BATCH_SIZE,
            learning_rate: Self::DEFAULT_LEARNING_RATE,
            weight_decay: Self::DEFAULT_WEIGHT_DECAY,
            warmup_steps: None,
            grad_clip_norm: None,
            eval_every: None,
            eval_examples: Self::DEFAULT_EVAL_EXAMPLES,
            target_accuracy: None,
            checkpoint_every: None,
            log_every: Self::DEFAULT_LOG_EVERY,
            seed: Self::DEFAULT_SEED,
        }
    }

    /// With seed `seed`.
    pub fn with_seed(self, seed: u64) -> Self {
        Self { seed, ..self }
    }

    /// Stopping as soon as an evaluation reaches `target` (or never, with `None`).
    pub fn with_target_accuracy(self, target_accuracy: Option<f64>) -> Self {
        Self {
            target_accuracy,
            ..self
        }
    }

    /// Warm-up steps: as configured, else 5% of the budget.
    pub fn warmup(&self) -> usize {
        self.warmup_steps.unwrap_or(self.steps / 20)
    }

    /// Steps between two intermediate evaluations.
    pub fn eval_interval(&self) -> usize {
        self.eval_every.unwrap_or((self.steps / 10).max(1))
    }

    /// Steps between two checkpoints.
    pub fn checkpoint_interval(&self) -> usize {
        self.checkpoint_every
            .unwrap_or_else(|| self.eval_interval())
    }

    /// Learning rate at `step` (0-based): linear warm-up, then linear decay to 0.
    pub fn learning_rate_at(&self, step: usize) -> f64 {
        let warmup = self.warmup();
        if step < warmup {
            self.learning_rate * (step + 1) as f64 / warmup as f64
        } else {
            let left = self.steps.saturating_sub(step) as f64;
            self.learning_rate * left / (self.steps - warmup).max(1) as f64
        }
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), TrainError> {
        let positive = |field, v: usize| {
            if v == 0 {
                Err(TrainError::invalid(field, "must be at least 1"))
            } else {
                Ok(())
            }
        };
        positive("steps", self.steps)?;
        positive("batch_size", self.batch_size)?;
        positive("eval_examples", self.eval_examples)?;
        positive("log_every", self.log_every)?;
        positive("eval_every", self.eval_interval())?;
        positive("checkpoint_every", self.checkpoint_interval())?;
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return Err(TrainError::invalid(
                "learning_rate",
                format!("must be positive, got {}", self.learning_rate),
            ));
        }
        if !(0.0..1.0).contains(&self.weight_decay) {
            return Err(TrainError::invalid(
                "weight_decay",
                format!("must be in [0, 1), got {}", self.weight_decay),
            ));
        }
        if self.warmup() > self.steps {
            return Err(TrainError::invalid(
                "warmup_steps",
                format!("({}) exceeds steps ({})", self.warmup(), self.steps),
            ));
        }
        if let Some(t) = self.target_accuracy {
            if !(0.0..=1.0).contains(&t) {
                return Err(TrainError::invalid(
                    "target_accuracy",
                    format!("must be in [0, 1], got {t}"),
                ));
            }
        }
        if let Some(c) = self.grad_clip_norm {
            if c <= 0.0 || !c.is_finite() {
                return Err(TrainError::invalid(
                    "grad_clip_norm",
                    format!("must be positive, got {c}"),
                ));
            }
        }
        Ok(())
    }
}

/// The training settings a user may change (a profile's `[train]` table, a sweep's own
/// `train` table, the command line's flags): each unset field keeps [`TrainConfig`]'s default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
#[serde(deny_unknown_fields)]
pub struct TrainOverrides {
    /// Step budget.
    #[cfg_attr(feature = "clap", arg(long, help = flag_help("Step budget", TrainConfig::DEFAULT_STEPS)))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<usize>,
    /// Examples per step.
    #[cfg_attr(feature = "clap", arg(long, help = flag_help("Examples per step", TrainConfig::DEFAULT_BATCH_SIZE)))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<usize>,
    /// Peak learning rate of AdamW.
    #[cfg_attr(feature = "clap", arg(long, help = flag_help("Peak learning rate of AdamW", TrainConfig::DEFAULT_LEARNING_RATE)))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learning_rate: Option<f64>,
    /// Decoupled weight decay of AdamW.
    #[cfg_attr(feature = "clap", arg(long, help = flag_help("Decoupled weight decay of AdamW", TrainConfig::DEFAULT_WEIGHT_DECAY)))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_decay: Option<f64>,
    /// Linear warm-up steps [default: 5% of the budget].
    #[cfg_attr(feature = "clap", arg(long))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_steps: Option<usize>,
    /// Clip the gradient's global norm to this value [default: no clipping].
    #[cfg_attr(feature = "clap", arg(long))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grad_clip_norm: Option<f64>,
    /// Evaluate every this many steps [default: a tenth of the budget].
    #[cfg_attr(feature = "clap", arg(long))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_every: Option<usize>,
    /// Test examples per intermediate evaluation.
    #[cfg_attr(feature = "clap", arg(long, help = flag_help("Test examples per intermediate evaluation", TrainConfig::DEFAULT_EVAL_EXAMPLES)))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_examples: Option<usize>,
}

impl TrainOverrides {
    /// The training config these settings give: the defaults with every set field replaced.
    pub fn config(&self) -> TrainConfig {
        let mut config = TrainConfig::new(self.steps.unwrap_or(TrainConfig::DEFAULT_STEPS));
        if let Some(batch_size) = self.batch_size {
            config.batch_size = batch_size;
        }
        if let Some(learning_rate) = self.learning_rate {
            config.learning_rate = learning_rate;
        }
        if let Some(weight_decay) = self.weight_decay {
            config.weight_decay = weight_decay;
        }
        config.warmup_steps = self.warmup_steps;
        config.grad_clip_norm = self.grad_clip_norm;
        config.eval_every = self.eval_every;
        if let Some(eval_examples) = self.eval_examples {
            config.eval_examples = eval_examples;
        }
        config
    }

    /// These settings, with the fields they leave unset taken from `base` (a sweep's own
    /// settings over its profile's).
    pub fn or(&self, base: &Self) -> Self {
        Self {
            steps: self.steps.or(base.steps),
            batch_size: self.batch_size.or(base.batch_size),
            learning_rate: self.learning_rate.or(base.learning_rate),
            weight_decay: self.weight_decay.or(base.weight_decay),
            warmup_steps: self.warmup_steps.or(base.warmup_steps),
            grad_clip_norm: self.grad_clip_norm.or(base.grad_clip_norm),
            eval_every: self.eval_every.or(base.eval_every),
            eval_examples: self.eval_examples.or(base.eval_examples),
        }
    }
}

/// Where the examples come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum DataSource {
    /// A directory written by `dpcot generate` (train.txt, test.txt).
    Directory {
        /// The dataset directory.
        path: PathBuf,
    },
    /// Generated at the start of the run (deterministic in the seed, so a resume regenerates
    /// exactly the same examples).
    Generated {
        /// Training examples.
        train: usize,
        /// Test examples, disjoint from the training ones.
        test: usize,
        /// Seed of the generator.
        seed: u64,
    },
}

impl DataSource {
    /// Generated training examples when not given.
    pub const DEFAULT_TRAIN_EXAMPLES: usize = 20_000;
    /// Generated test examples when not given.
    pub const DEFAULT_TEST_EXAMPLES: usize = 1_000;
}

/// The generated-data settings a user may change (a profile's `[data]` table, the command
/// line's flags): each unset field keeps [`DataSource`]'s default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
#[serde(deny_unknown_fields)]
pub struct DataOverrides {
    /// Generated training examples.
    #[cfg_attr(feature = "clap", arg(long, help = flag_help("Generated training examples", DataSource::DEFAULT_TRAIN_EXAMPLES)))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_examples: Option<usize>,
    /// Generated test examples (never in the training set).
    #[cfg_attr(feature = "clap", arg(long, help = flag_help("Generated test examples (never in the training set)", DataSource::DEFAULT_TEST_EXAMPLES)))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_examples: Option<usize>,
}

impl DataOverrides {
    /// Generated data of these sizes, from the generator seeded with `seed`.
    pub fn generated(&self, seed: u64) -> DataSource {
        DataSource::Generated {
            train: self.train(),
            test: self.test(),
            seed,
        }
    }

    /// Training examples: as set, else the default.
    pub fn train(&self) -> usize {
        self.train_examples
            .unwrap_or(DataSource::DEFAULT_TRAIN_EXAMPLES)
    }

    /// Test examples: as set, else the default.
    pub fn test(&self) -> usize {
        self.test_examples
            .unwrap_or(DataSource::DEFAULT_TEST_EXAMPLES)
    }
}

/// Everything that defines a run; `config.json` of the run directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// The task and its size.
    pub task: TaskSpec,
    /// The model trained.
    pub model: ModelConfig,
    /// How it is trained.
    pub train: TrainConfig,
    /// On which examples.
    pub data: DataSource,
}

impl RunConfig {
    /// Checks the parts and that the model fits the task.
    pub fn validate(&self) -> Result<(), TrainError> {
        let task = self.task.build()?;
        self.model.validate()?;
        self.train.validate()?;
        if self.model.vocab_size != task.vocab().len() {
            return Err(TrainError::invalid(
                "model.vocab_size",
                format!(
                    "is {}, but the {} vocabulary has {}",
                    self.model.vocab_size,
                    task.name(),
                    task.vocab().len()
                ),
            ));
        }
        if self.model.max_len < task.max_len() {
            return Err(TrainError::invalid(
                "model.max_len",
                format!(
                    "is {}, shorter than the task's longest sequence {}",
                    self.model.max_len,
                    task.max_len()
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_then_decays_to_zero() {
        let mut c = TrainConfig::new(100);
        c.warmup_steps = Some(10);
        assert!((c.learning_rate_at(0) - 1e-4).abs() < 1e-12);
        assert!((c.learning_rate_at(9) - 1e-3).abs() < 1e-12);
        assert!((c.learning_rate_at(10) - 1e-3).abs() < 1e-12);
        assert!(c.learning_rate_at(55) < c.learning_rate_at(54));
        assert!(c.learning_rate_at(99) > 0.0 && c.learning_rate_at(99) < 2e-5);
    }

    #[test]
    fn bad_schedules_are_errors() {
        let mut c = TrainConfig::new(100);
        c.warmup_steps = Some(200);
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("warmup_steps"));
        let mut c = TrainConfig::new(100);
        c.learning_rate = -1.0;
        assert!(c.validate().is_err());
        assert!(TrainConfig::new(0).validate().is_err());
    }

    #[test]
    fn overrides_replace_only_what_they_set() {
        assert_eq!(
            TrainOverrides::default().config(),
            TrainConfig::new(TrainConfig::DEFAULT_STEPS)
        );
        let profile = TrainOverrides {
            steps: Some(100),
            learning_rate: Some(3e-3),
            eval_every: Some(25),
            ..Default::default()
        };
        let sweep = TrainOverrides {
            steps: Some(400),
            ..Default::default()
        };
        let config = sweep.or(&profile).config();
        assert_eq!(config.steps, 400, "the sweep's own budget wins");
        assert_eq!(config.learning_rate, 3e-3, "the profile's rate is kept");
        assert_eq!(config.eval_every, Some(25));
        assert_eq!(config.batch_size, TrainConfig::DEFAULT_BATCH_SIZE);
        let unknown = toml::from_str::<TrainOverrides>("lr = 1.0");
        assert!(unknown.is_err(), "unknown settings are errors");
    }

    #[test]
    fn generated_data_defaults_apply_to_unset_sizes() {
        let data = DataOverrides {
            test_examples: Some(7),
            ..Default::default()
        };
        assert_eq!(
            data.generated(3),
            DataSource::Generated {
                train: DataSource::DEFAULT_TRAIN_EXAMPLES,
                test: 7,
                seed: 3
            }
        );
    }
}
