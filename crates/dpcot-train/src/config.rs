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
    /// Validation examples used by the intermediate evaluations; the final ones use the whole
    /// validation and test splits [default: [`Self::DEFAULT_EVAL_EXAMPLES`]].
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
    /// Continue a run that is still improving when `steps` are done, up to this many steps in
    /// all (see [`Self::extension`]). Default: `steps`, no continuation.
    #[serde(default)]
    pub max_steps: Option<usize>,
    /// The plateau window, in evaluations: validation accuracy has stalled when the
    /// least-squares line through the last `plateau_patience` evaluations rises by no more
    /// than `plateau_min_delta` across them ([`crate::plateau::Plateau`])
    /// [default: [`Self::DEFAULT_PLATEAU_PATIENCE`]]. Also the length of a continuation.
    /// Judged at the end of each learning-rate cycle only (the budget, then each
    /// continuation): a run has *plateaued* when it stalled at the end of a continuation
    /// cycle, or at the end of its budget with no continuation left
    /// ([`crate::train::decide`]).
    #[serde(default = "default_plateau_patience")]
    pub plateau_patience: usize,
    /// The smallest rise of the trend across the plateau window that counts as improving
    /// [default: [`Self::DEFAULT_PLATEAU_MIN_DELTA`]].
    #[serde(default = "default_plateau_min_delta")]
    pub plateau_min_delta: f64,
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
fn default_plateau_patience() -> usize {
    TrainConfig::DEFAULT_PLATEAU_PATIENCE
}
fn default_plateau_min_delta() -> f64 {
    TrainConfig::DEFAULT_PLATEAU_MIN_DELTA
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
    /// The plateau window in evaluations, when not given: a trend through 8 accuracies on a
    /// few hundred examples each is certain to a few points.
    pub const DEFAULT_PLATEAU_PATIENCE: usize = 8;
    /// The smallest rise of the trend across the plateau window that counts as improving,
    /// when not given.
    pub const DEFAULT_PLATEAU_MIN_DELTA: f64 = 0.01;

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
            max_steps: None,
            plateau_patience: Self::DEFAULT_PLATEAU_PATIENCE,
            plateau_min_delta: Self::DEFAULT_PLATEAU_MIN_DELTA,
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

    /// The step cap: `max_steps`, else `steps`.
    pub fn step_cap(&self) -> usize {
        self.max_steps.unwrap_or(self.steps).max(self.steps)
    }

    /// Steps added to the horizon of a run that is still improving at its end: one plateau
    /// window (`plateau_patience` evaluations), so that the extension alone can show a
    /// plateau.
    pub fn extension(&self) -> usize {
        self.plateau_patience * self.eval_interval()
    }

    /// Learning rate at `step` (0-based) of a run whose budget is `steps`: linear warm-up,
    /// then linear decay to 0 at `steps`.
    pub fn learning_rate_at(&self, step: usize) -> f64 {
        self.learning_rate_within(step, self.steps)
    }

    /// Learning rate at `step` (0-based) when the run's horizon is `horizon` steps: linear
    /// warm-up, then linear decay to 0 at the horizon. A continued run's horizon grows, so its
    /// rate rises again (a warm restart) and decays to 0 at the new horizon.
    pub fn learning_rate_within(&self, step: usize, horizon: usize) -> f64 {
        let warmup = self.warmup();
        if step < warmup {
            self.learning_rate * (step + 1) as f64 / warmup as f64
        } else {
            let left = horizon.saturating_sub(step) as f64;
            self.learning_rate * left / horizon.saturating_sub(warmup).max(1) as f64
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
        positive("plateau_patience", self.plateau_patience)?;
        if let Some(cap) = self.max_steps.filter(|&cap| cap < self.steps) {
            return Err(TrainError::invalid(
                "max_steps",
                format!(
                    "({cap}) is below steps ({}): the cap bounds continuations of the budget",
                    self.steps
                ),
            ));
        }
        if !(0.0..1.0).contains(&self.plateau_min_delta) {
            return Err(TrainError::invalid(
                "plateau_min_delta",
                format!("must be in [0, 1), got {}", self.plateau_min_delta),
            ));
        }
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
    /// Validation examples per intermediate evaluation.
    #[cfg_attr(feature = "clap", arg(long, help = flag_help("Validation examples per intermediate evaluation", TrainConfig::DEFAULT_EVAL_EXAMPLES)))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_examples: Option<usize>,
    /// Continue a run still improving at the end of its budget, up to this many steps in all
    /// [default: no continuation].
    #[cfg_attr(feature = "clap", arg(long))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_steps: Option<usize>,
    /// Evaluations without improvement that make a plateau.
    #[cfg_attr(feature = "clap", arg(long, help = flag_help("Evaluations without improvement that make a plateau", TrainConfig::DEFAULT_PLATEAU_PATIENCE)))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plateau_patience: Option<usize>,
    /// The smallest gain in validation accuracy that counts as improving.
    #[cfg_attr(feature = "clap", arg(long, help = flag_help("The smallest gain in validation accuracy that counts as improving", TrainConfig::DEFAULT_PLATEAU_MIN_DELTA)))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plateau_min_delta: Option<f64>,
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
        config.max_steps = self.max_steps;
        if let Some(patience) = self.plateau_patience {
            config.plateau_patience = patience;
        }
        if let Some(min_delta) = self.plateau_min_delta {
            config.plateau_min_delta = min_delta;
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
            max_steps: self.max_steps.or(base.max_steps),
            plateau_patience: self.plateau_patience.or(base.plateau_patience),
            plateau_min_delta: self.plateau_min_delta.or(base.plateau_min_delta),
        }
    }
}

/// Where the examples come from. Every run has three splits: training examples, a
/// validation split (what intermediate evaluations, early stopping and a sweep's pass/fail
/// decision read) and a test split (what reports show); no example of one of the last two is
/// ever trained on, and the two are disjoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum DataSource {
    /// A directory written by `dpcot generate` or `dpcot import` (train.txt, test.txt); the
    /// validation split is the last `validation` examples of train.txt, and the examples left
    /// for training are those not equal to one of them.
    Directory {
        /// The dataset directory.
        path: PathBuf,
        /// Validation examples taken from the end of the training file.
        validation: usize,
    },
    /// Generated from the task and seed: the test split first (so it does not depend on the
    /// other sizes), then the validation split (distinct examples, none in the test split),
    /// then the training examples. Deterministic in the seed, so a resume sees exactly the same
    /// examples.
    Generated {
        /// A fixed set of this many training examples, or `None` for fresh examples at every
        /// step, drawn from (seed, step).
        #[serde(default)]
        train: Option<usize>,
        /// Validation examples.
        validation: usize,
        /// Test examples.
        test: usize,
        /// Seed of the generator.
        seed: u64,
        /// Arithmetic: train on a mixture of operator counts 1..=N, i with weight i, as the
        /// reference does (validation and test keep the full size).
        #[serde(default)]
        mix_smaller: bool,
    },
}

impl DataSource {
    /// Generated validation examples when not given.
    pub const DEFAULT_VALIDATION_EXAMPLES: usize = 500;
    /// Generated test examples when not given.
    pub const DEFAULT_TEST_EXAMPLES: usize = 1_000;

    /// Whether arithmetic mixes in smaller sizes when not told: yes, as the reference's
    /// training data does; other tasks have no smaller sizes to mix.
    pub fn default_mix_smaller(task: &TaskSpec) -> bool {
        matches!(task, TaskSpec::Arithmetic { .. })
    }

    /// Checks the split sizes.
    pub fn validate(&self) -> Result<(), TrainError> {
        let (validation, test) = match self {
            DataSource::Directory { validation, .. } => (*validation, 1),
            DataSource::Generated {
                train,
                validation,
                test,
                ..
            } => {
                if *train == Some(0) {
                    return Err(TrainError::invalid(
                        "data.train",
                        "a fixed training set needs at least one example",
                    ));
                }
                (*validation, *test)
            }
        };
        if validation == 0 {
            return Err(TrainError::invalid(
                "data.validation",
                "must be at least 1: early stopping and pass/fail decisions read it",
            ));
        }
        if test == 0 {
            return Err(TrainError::invalid("data.test", "must be at least 1"));
        }
        Ok(())
    }
}

/// The generated-data settings a user may change (a profile's `[data]` table, the command
/// line's flags): each unset field keeps [`DataSource`]'s default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
#[serde(deny_unknown_fields)]
pub struct DataOverrides {
    /// A fixed set of this many generated training examples [default: fresh examples every
    /// step].
    #[cfg_attr(feature = "clap", arg(long))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_examples: Option<usize>,
    /// Generated validation examples (never trained on).
    #[cfg_attr(feature = "clap", arg(long, help = flag_help("Generated validation examples (never trained on, disjoint from the test split)", DataSource::DEFAULT_VALIDATION_EXAMPLES)))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_examples: Option<usize>,
    /// Generated test examples (never trained on).
    #[cfg_attr(feature = "clap", arg(long, help = flag_help("Generated test examples (never trained on)", DataSource::DEFAULT_TEST_EXAMPLES)))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_examples: Option<usize>,
    /// Arithmetic: mix smaller operator counts into training as the reference does
    /// [default: true for arithmetic; an error for other tasks].
    #[cfg_attr(feature = "clap", arg(long))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mix_smaller: Option<bool>,
}

impl DataOverrides {
    /// Generated data for `task` from the generator seeded with `seed`: these settings over
    /// the defaults.
    pub fn generated(&self, task: &TaskSpec, seed: u64) -> DataSource {
        DataSource::Generated {
            train: self.train_examples,
            validation: self.validation(),
            test: self.test(),
            seed,
            mix_smaller: self
                .mix_smaller
                .unwrap_or_else(|| DataSource::default_mix_smaller(task)),
        }
    }

    /// The data in words, for reports: "fresh training examples every step (arithmetic mixes
    /// in smaller sizes), 500 validation and 1000 test examples".
    pub fn describe(&self) -> String {
        let train = match self.train_examples {
            Some(n) => format!("a fixed set of {n} training examples"),
            None => "fresh training examples every step".to_string(),
        };
        let mix = match self.mix_smaller {
            None | Some(true) => " (arithmetic mixes in smaller sizes, as the reference does)",
            Some(false) => "",
        };
        format!(
            "{train}{mix}, {} validation and {} test examples",
            self.validation(),
            self.test()
        )
    }

    /// Validation examples held out of a dataset directory's training file: as set, else the
    /// default.
    pub fn validation(&self) -> usize {
        self.validation_examples
            .unwrap_or(DataSource::DEFAULT_VALIDATION_EXAMPLES)
    }

    /// Generated test examples: as set, else the default.
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
        self.data.validate()?;
        if let DataSource::Generated {
            mix_smaller: true, ..
        } = self.data
        {
            if !matches!(self.task, TaskSpec::Arithmetic { .. }) {
                return Err(TrainError::invalid(
                    "data.mix_smaller",
                    format!(
                        "only arithmetic mixes in smaller sizes, not {}",
                        task.name()
                    ),
                ));
            }
        }
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
    use dpcot_tasks::{TaskKind, TaskOptions};

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
        let mut c = TrainConfig::new(100);
        c.max_steps = Some(10);
        let err = c.validate().unwrap_err().to_string();
        assert!(
            err.contains("max_steps` (10) is below steps (100)"),
            "{err}"
        );
        let mut c = TrainConfig::new(100);
        c.plateau_patience = 0;
        assert!(c.validate().is_err());
        c.plateau_patience = 1;
        c.plateau_min_delta = 1.5;
        assert!(c.validate().is_err());
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
        let lis = TaskSpec::new(TaskKind::Lis, 4, &TaskOptions::default()).unwrap();
        let arithmetic = TaskSpec::new(TaskKind::Arithmetic, 4, &TaskOptions::default()).unwrap();
        let expected = |mix_smaller| DataSource::Generated {
            train: None,
            validation: DataSource::DEFAULT_VALIDATION_EXAMPLES,
            test: 7,
            seed: 3,
            mix_smaller,
        };
        assert_eq!(data.generated(&lis, 3), expected(false));
        assert_eq!(
            data.generated(&arithmetic, 3),
            expected(true),
            "arithmetic mixes smaller sizes unless told not to"
        );
        let unmixed = DataOverrides {
            mix_smaller: Some(false),
            ..data
        };
        assert_eq!(unmixed.generated(&arithmetic, 3), expected(false));
    }

    #[test]
    fn empty_held_out_splits_are_errors() {
        let data = |train, validation, test| DataSource::Generated {
            train,
            validation,
            test,
            seed: 1,
            mix_smaller: false,
        };
        assert!(data(None, 1, 1).validate().is_ok());
        let err = data(None, 0, 1).validate().unwrap_err().to_string();
        assert!(err.contains("data.validation"), "{err}");
        assert!(data(None, 1, 0).validate().is_err());
        assert!(data(Some(0), 1, 1).validate().is_err());
    }
}
