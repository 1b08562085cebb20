//! Resume after an interruption is bit-exact. In a test binary of its own: burn's random
//! generator is global to the process, and tests running in parallel threads would reseed it
//! under each other.

use std::path::Path;

use burn::optim::AdamWConfig;
use dpcot_attention::AttentionKind;
use dpcot_model::ModelConfig;
use dpcot_tasks::{DpTask, TaskSpec};
use dpcot_train::{
    checkpoint, train, Backend, DataSource, MetricsLine, Resume, RunConfig, RunDir, TrainConfig,
    TrainError, TrainOptions,
};

fn config(attention: AttentionKind) -> RunConfig {
    let task = TaskSpec::Lis {
        length: 4,
        range: 16,
        window: None,
        inline_inputs: false,
    };
    let built = task.build().unwrap();
    let mut model = ModelConfig::new(built.vocab().len(), built.max_len(), 32, attention);
    model.n_layers = 2;
    // Dropout on, so that its masks must be reproduced too.
    model.dropout = 0.1;
    let mut train = TrainConfig::new(60);
    train.batch_size = 32;
    train.learning_rate = 3e-3;
    train.eval_every = Some(25);
    train.eval_examples = 100;
    // Continued past its budget if still improving at step 60, so a resume must also restore
    // the horizon and the plateau history.
    train.max_steps = Some(110);
    train.plateau_patience = 2;
    RunConfig {
        task,
        model,
        train,
        // Fresh examples every step: the stream must resume bit for bit too.
        data: DataSource::Generated {
            train: None,
            validation: 100,
            test: 100,
            seed: 1,
            mix_smaller: false,
        },
    }
}

fn options() -> TrainOptions {
    TrainOptions {
        backend: Backend::Flex,
        resume: Resume::No,
        quiet: true,
        halt_after: None,
    }
}

/// Logits of the run's final model on a fixed batch: equal logits (exactly, as f32) mean equal
/// weights for every purpose. (Record bytes also hold random parameter ids, which differ.)
fn final_logits(dir: &Path, config: &RunConfig) -> Vec<f32> {
    let device = Backend::Flex.device().unwrap();
    let (_, model, _) = checkpoint::load(
        &RunDir::new(dir).checkpoint(),
        &config.model,
        &device,
        AdamWConfig::new().init(),
    )
    .unwrap();
    let task = config.task.build().unwrap();
    let test = dpcot_train::data::load_data(config, &task).unwrap().test;
    let examples: Vec<_> = test.iter().take(16).collect();
    let batch = dpcot_train::batch::Batch::new(&examples, &task, &device);
    model
        .forward(batch.inputs)
        .into_data()
        .iter::<f32>()
        .collect()
}

fn losses(dir: &Path) -> Vec<(usize, f64)> {
    std::fs::read_to_string(RunDir::new(dir).metrics())
        .unwrap()
        .lines()
        .filter_map(|l| match serde_json::from_str(l).unwrap() {
            MetricsLine::Train { step, loss, .. } => Some((step, loss)),
            MetricsLine::Eval { .. } => None,
        })
        .collect()
}

#[test]
fn resuming_after_an_interruption_gives_the_uninterrupted_run() {
    // One after the other in one test: the recurrent mixers' checkpoints (Mamba: parameters
    // outside any Linear, a random bias at initialisation) must resume as exactly.
    for attention in [AttentionKind::Softmax, AttentionKind::mamba()] {
        resume_matches(attention);
    }
}

fn resume_matches(attention: AttentionKind) {
    let config = config(attention);
    let whole = tempfile::tempdir().unwrap();
    let reference = train(&RunDir::new(whole.path()), &config, &options()).unwrap();

    let pieces = tempfile::tempdir().unwrap();
    let halted = train(
        &RunDir::new(pieces.path()),
        &config,
        &TrainOptions {
            halt_after: Some(37),
            ..options()
        },
    );
    assert!(
        matches!(halted, Err(TrainError::Halted { step: 37, .. })),
        "{halted:?}"
    );
    let resumed = train(
        &RunDir::new(pieces.path()),
        &config,
        &TrainOptions {
            resume: Resume::Checkpoint,
            ..options()
        },
    )
    .unwrap();

    assert_eq!(
        losses(whole.path()),
        losses(pieces.path()),
        "loss curves differ"
    );
    assert!(
        final_logits(whole.path(), &config) == final_logits(pieces.path(), &config),
        "final weights differ"
    );
    assert_eq!(
        resumed.eval,
        EvalWithoutTiming::strip(reference.eval.clone()).restore(&resumed.eval)
    );
    assert_eq!(resumed.steps, reference.steps);
    assert_eq!(resumed.ending, reference.ending);
    assert_eq!(resumed.validation.is_some(), reference.validation.is_some());
    assert_eq!(resumed.train_flops, reference.train_flops);
}

/// Evaluation metrics apart from the decode timing, which is wall-clock.
struct EvalWithoutTiming(dpcot_train::EvalMetrics);

impl EvalWithoutTiming {
    fn strip(metrics: dpcot_train::EvalMetrics) -> Self {
        Self(metrics)
    }
    fn restore(mut self, timing_from: &dpcot_train::EvalMetrics) -> dpcot_train::EvalMetrics {
        self.0.decode_seconds = timing_from.decode_seconds;
        self.0.decode_tokens_per_second = timing_from.decode_tokens_per_second;
        self.0
    }
}
