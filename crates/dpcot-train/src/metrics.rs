//! What a run writes down about itself: the lines of `metrics.jsonl` and `summary.json`.
//!
//! These are file formats read by the analysis and by other tools: a field added here must
//! keep old files readable (`#[serde(default)]`).

use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::eval::EvalMetrics;

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MetricsLine {
    /// The training loss at a logging step.
    Train {
        /// Steps completed.
        step: usize,
        /// The masked loss of this step's batch.
        loss: f64,
        /// The learning rate of this step.
        learning_rate: f64,
        /// Training tokens per second since the previous logging step.
        tokens_per_second: f64,
    },
    /// An evaluation: on the first `eval_examples` validation examples during training, on the
    /// whole validation and test splits at the end.
    Eval {
        /// Steps completed.
        step: usize,
        /// Which split was evaluated; `None` in files from before validation splits (the test
        /// split).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        split: Option<EvalSplit>,
        /// What the evaluation measured.
        #[serde(flatten)]
        metrics: EvalMetrics,
    },
}

impl MetricsLine {
    /// The number of steps completed when the line was written.
    pub fn step(&self) -> usize {
        match self {
            MetricsLine::Train { step, .. } | MetricsLine::Eval { step, .. } => *step,
        }
    }
}

/// The held-out split an evaluation read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvalSplit {
    /// The validation split (or its first `eval_examples` examples during training).
    Validation,
    /// The test split.
    Test,
}

/// `summary.json`: what a finished run reached and what it cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// The task's name with its size, as [`dpcot_tasks::DpTask::name`] gives it.
    pub task: String,
    /// The attention's name, as [`dpcot_model::dpcot_attention::AttentionKind::name`] gives it.
    pub attention: String,
    /// The model width.
    pub d_model: usize,
    /// The backend the run was trained on.
    pub backend: Backend,
    /// Steps trained: fewer than the budget if the run passed, more if it was continued.
    pub steps: usize,
    /// Whether the target accuracy was reached; `None` when the run had no target.
    pub reached_target: Option<bool>,
    /// Trainable parameters of the model.
    pub parameters: u64,
    /// Training wall time in seconds, evaluations excluded.
    pub train_seconds: f64,
    /// Training tokens seen: each example's next-token positions, padding excluded.
    pub train_tokens: u64,
    /// `train_tokens / train_seconds`.
    pub train_tokens_per_second: f64,
    /// FLOPs of all training steps (forward + backward on the padded batches).
    pub train_flops: f64,
    /// Mean FLOPs per generated token over positions 0..max_len.
    pub decode_flops_per_token: f64,
    /// Peak resident memory of the process (Linux `VmHWM`): the run's own when it is trained
    /// in a process of its own, as the sweeps do.
    #[serde(default)]
    pub peak_memory_bytes: Option<u64>,
    /// Evaluation on the whole test split: what the report shows.
    pub eval: EvalMetrics,
    /// Evaluation on the whole validation split: what early stopping and a sweep's pass/fail
    /// decision read. `None` for runs without one (older runs, which decided on `eval`).
    #[serde(default)]
    pub validation: Option<EvalMetrics>,
    /// How the run ended; `None` for runs from before endings were recorded.
    #[serde(default)]
    pub ending: Option<RunEnding>,
}

impl RunSummary {
    /// The accuracy that decides whether the run passed: the validation split's headline, or
    /// the test split's for runs without a validation split.
    pub fn decision_accuracy(&self) -> f64 {
        self.validation.as_ref().unwrap_or(&self.eval).headline
    }
}

/// How a run ended. Every run ends in exactly one of these ways; see
/// [`crate::config::TrainConfig::plateau_patience`] for the rule that tells the last two apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunEnding {
    /// An evaluation on the validation split reached the target accuracy.
    Passed,
    /// Validation accuracy stopped improving through a whole learning-rate cycle (rate
    /// restart included): the trend through the last `plateau_patience` evaluations rose by
    /// no more than `plateau_min_delta` ([`crate::train::decide`]). Evidence of missing
    /// capacity (at this training recipe), not of a short budget.
    Plateaued,
    /// The step cap was reached while validation accuracy was still improving: the run says
    /// nothing about capacity.
    OutOfBudget,
}

impl RunEnding {
    /// The name used in reports and logs: `passed`, `plateaued`, `out of budget`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunEnding::Passed => "passed",
            RunEnding::Plateaued => "plateaued",
            RunEnding::OutOfBudget => "out of budget",
        }
    }
}

impl std::fmt::Display for RunEnding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
