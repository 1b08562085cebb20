//! Hand-made run records for the unit tests of the summary and the report: each says only what
//! a test needs (task, model, dimension, seed, test and validation accuracy, ending, decode
//! cost), the rest is a fixed, valid filler.

use dpcot_model::ModelConfig;
use dpcot_tasks::{DpTask, TaskSpec};
use dpcot_train::{DataSource, RunConfig, RunEnding, RunSummary, TrainConfig};

use crate::profile::{Experiment, ModelChoice};
use crate::results::{RunKey, RunRecord};

/// The general LIS task on `length` numbers.
pub(crate) fn lis(length: usize) -> TaskSpec {
    TaskSpec::Lis {
        length,
        range: 250,
        window: None,
        inline_inputs: false,
    }
}

/// The m-local LIS task on `length` numbers with window `window`, its inputs inline.
pub(crate) fn inline_lis(length: usize, window: usize) -> TaskSpec {
    TaskSpec::Lis {
        length,
        range: 250,
        window: Some(window),
        inline_inputs: true,
    }
}

/// The m-local LIS task on `length` numbers with window `window`.
pub(crate) fn local_lis(length: usize, window: usize) -> TaskSpec {
    TaskSpec::Lis {
        length,
        range: 250,
        window: Some(window),
        inline_inputs: false,
    }
}

/// A run to be finished with the builder methods and [`Run::record`].
pub(crate) struct Run {
    record: RunRecord,
}

/// A finished run of `model` at `d_model` on `task`: experiment `general`, seed 1, headline
/// test accuracy 0, no validation split and no recorded ending (a run from before either was
/// recorded, decided on its test accuracy), d_model² parameters and decode FLOPs per token, 1 µs per decoded token.
pub(crate) fn run(task: &TaskSpec, model: ModelChoice, d_model: usize) -> Run {
    let built = task.build().expect("fixture tasks are valid");
    let square = (d_model * d_model) as f64;
    // The JSON shape of a summary is a fixed format; filling it from JSON keeps the fixtures
    // independent of how the training crate lays out its types.
    let mut summary: RunSummary = serde_json::from_value(serde_json::json!({
        "task": built.name(), "attention": model.name(), "d_model": d_model, "backend": "flex",
        "steps": 100, "reached_target": null, "parameters": square as u64,
        "train_seconds": 1.0, "train_tokens": 1000, "train_tokens_per_second": 1000.0,
        "train_flops": 1e9, "decode_flops_per_token": square,
        "eval": {
            "examples": 10, "headline": 0.0, "headline_metric": "teacher_forced",
            "answer_accuracy": 0.0, "chain_accuracy": 0.0, "well_formed": 1.0,
            "teacher_forced_accuracy": 0.0, "first_wrong_step": [], "first_wrong_kind": {},
            "teacher_forced_first_wrong_step": [], "decode_tokens": 1000000,
            "decode_seconds": 1.0, "decode_tokens_per_second": 1e6
        }
    }))
    .expect("the fixture summary has the summary's JSON shape");
    summary.peak_memory_bytes = None;
    let config = RunConfig {
        task: task.clone(),
        model: ModelConfig::new(
            built.vocab().len(),
            built.max_len(),
            d_model,
            model.attention(),
        ),
        train: TrainConfig::new(100),
        data: DataSource::Generated {
            train: Some(10),
            validation: 10,
            test: 10,
            seed: 1,
            mix_smaller: false,
        },
    };
    Run {
        record: RunRecord {
            key: RunKey {
                experiment: Experiment::General,
                task: task.clone(),
                model,
                d_model,
                seed: 1,
            },
            config,
            summary,
            wall_seconds: 2.0,
        },
    }
}

impl Run {
    pub(crate) fn seed(mut self, seed: u64) -> Self {
        self.record.key.seed = seed;
        self
    }

    pub(crate) fn experiment(mut self, experiment: Experiment) -> Self {
        self.record.key.experiment = experiment;
        self
    }

    pub(crate) fn headline(mut self, accuracy: f64) -> Self {
        let eval = &mut self.record.summary.eval;
        eval.headline = accuracy;
        eval.teacher_forced_accuracy = accuracy;
        self
    }

    /// A validation split whose headline accuracy is `accuracy` (the one that decides).
    pub(crate) fn validation(mut self, accuracy: f64) -> Self {
        let mut validation = self.record.summary.eval.clone();
        validation.headline = accuracy;
        validation.teacher_forced_accuracy = accuracy;
        self.record.summary.validation = Some(validation);
        self
    }

    pub(crate) fn ending(mut self, ending: RunEnding) -> Self {
        self.record.summary.ending = Some(ending);
        self
    }

    pub(crate) fn decode_flops(mut self, flops_per_token: f64) -> Self {
        self.record.summary.decode_flops_per_token = flops_per_token;
        self
    }

    pub(crate) fn decode_seconds_per_token(mut self, seconds: f64) -> Self {
        let eval = &mut self.record.summary.eval;
        eval.decode_seconds = seconds * eval.decode_tokens as f64;
        self
    }

    pub(crate) fn peak_memory(mut self, bytes: u64) -> Self {
        self.record.summary.peak_memory_bytes = Some(bytes);
        self
    }

    pub(crate) fn record(self) -> RunRecord {
        self.record
    }
}

/// A run that solved its task (headline accuracy 1) at `d_model`, spending `flops_per_token`
/// per generated token.
pub(crate) fn solved(
    task: &TaskSpec,
    model: ModelChoice,
    d_model: usize,
    flops_per_token: f64,
) -> Run {
    run(task, model, d_model)
        .headline(1.0)
        .decode_flops(flops_per_token)
}

/// The runs one search of `model` on `task` with `seed` trained: `(dimension, headline)` each.
pub(crate) fn search(
    task: &TaskSpec,
    model: ModelChoice,
    seed: u64,
    runs: &[(usize, f64)],
) -> Vec<RunRecord> {
    runs.iter()
        .map(|&(d_model, headline)| {
            run(task, model, d_model)
                .seed(seed)
                .headline(headline)
                .record()
        })
        .collect()
}
