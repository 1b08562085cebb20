//! What a run trains, on what data, for how long: serde, stored as `config.json` in the run.

use std::path::PathBuf;

use dpcot_model::ModelConfig;
use dpcot_tasks::{DpTask, TaskSpec};
use serde::{Deserialize, Serialize};

use crate::TrainError;

/// Optimisation and evaluation schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Step budget.
    pub steps: usize,
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Peak learning rate of AdamW.
    #[serde(default = "default_learning_rate")]
    pub learning_rate: f64,
    /// Decoupled weight decay of AdamW (the reference's 0.01).
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
    /// Test examples used by the intermediate evaluations; the final one uses the whole split.
    #[serde(default = "default_eval_examples")]
    pub eval_examples: usize,
    /// Stop as soon as an evaluation reaches this headline accuracy (in [0, 1]).
    #[serde(default)]
    pub target_accuracy: Option<f64>,
    /// Write a checkpoint every this many steps. Default: at every evaluation.
    #[serde(default)]
    pub checkpoint_every: Option<usize>,
    /// Append the loss to `metrics.jsonl` every this many steps.
    #[serde(default = "default_log_every")]
    pub log_every: usize,
    /// Seeds the initialisation, the batch order and dropout.
    #[serde(default = "default_seed")]
    pub seed: u64,
}

fn default_batch_size() -> usize {
    64
}
fn default_learning_rate() -> f64 {
    1e-3
}
fn default_weight_decay() -> f64 {
    0.01
}
fn default_eval_examples() -> usize {
    500
}
fn default_log_every() -> usize {
    10
}
fn default_seed() -> u64 {
    1
}

impl TrainConfig {
    /// Defaults for a budget of `steps`.
    pub fn new(steps: usize) -> Self {
        Self {
            steps,
            batch_size: default_batch_size(),
            learning_rate: default_learning_rate(),
            weight_decay: default_weight_decay(),
            warmup_steps: None,
            grad_clip_norm: None,
            eval_every: None,
            eval_examples: default_eval_examples(),
            target_accuracy: None,
            checkpoint_every: None,
            log_every: default_log_every(),
            seed: default_seed(),
        }
    }

    pub fn warmup(&self) -> usize {
        self.warmup_steps.unwrap_or(self.steps / 20)
    }

    pub fn eval_interval(&self) -> usize {
        self.eval_every.unwrap_or((self.steps / 10).max(1))
    }

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

/// Where the examples come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum DataSource {
    /// A directory written by `dpcot generate` (train.txt, test.txt).
    Directory { path: PathBuf },
    /// Generated at the start of the run (deterministic in the seed, so a resume regenerates
    /// exactly the same examples).
    Generated {
        train: usize,
        test: usize,
        seed: u64,
    },
}

/// Everything that defines a run; `config.json` of the run directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    pub task: TaskSpec,
    pub model: ModelConfig,
    pub train: TrainConfig,
    pub data: DataSource,
}

impl RunConfig {
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
}
