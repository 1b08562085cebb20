//! The training loop: one readable loop with evaluation, checkpoints and logging in sight.

use std::time::Instant;

use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use dpcot_model::dpcot_attention::fused;
use dpcot_model::{flops, Transformer};
use dpcot_tasks::{DpTask, Example, Task};
use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::batch::Batch;
use crate::checkpoint::{self, Progress};
use crate::config::{RunConfig, TrainConfig};
use crate::data::load_data;
use crate::eval::{evaluate, EvalMetrics};
use crate::memory::peak_memory_bytes;
use crate::metrics::{EvalSplit, MetricsLine, RunEnding, RunSummary};
use crate::optim::{masked_cross_entropy, optimizer};
use crate::run_dir::{MetricsLog, RunDir};
use crate::TrainError;

/// What [`train`] does with a run the directory may already hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resume {
    /// Start a new run; a directory that holds one is refused ([`TrainError::RunExists`]).
    #[default]
    No,
    /// Continue the run from its checkpoint; a directory without one is refused
    /// ([`TrainError::NothingToResume`]) and left as it is.
    Checkpoint,
    /// Continue from the checkpoint if there is one, else start the run from step 0: a
    /// sweep's runs, which a kill may stop before their first checkpoint.
    IfAny,
}

/// How to run, as opposed to what (which is [`RunConfig`]).
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Where the tensors live.
    pub backend: Backend,
    /// Whether to continue a run already in the directory.
    pub resume: Resume,
    /// No progress bar.
    pub quiet: bool,
    /// Stop (with a checkpoint) once this many steps are done, to be resumed later — for time
    /// limits of batch schedulers.
    pub halt_after: Option<usize>,
}

/// Trains (or resumes) the run in `dir`.
///
/// One process at a time trains a run: the directory is locked ([`RunDir::lock`]) until
/// this returns. Resuming a run that has finished returns its summary and writes nothing.
///
/// The run ends in one of the ways of [`RunEnding`]: an evaluation on the validation split
/// reaches the target; or validation accuracy stalls through a whole learning-rate cycle; or
/// the step cap is reached while it is still improving. [`decide`] is the rule, applied at
/// every evaluation; a run still improving at the end of its horizon is continued by
/// [`TrainConfig::extension`] steps up to the cap.
pub fn train(
    dir: &RunDir,
    config: &RunConfig,
    options: &TrainOptions,
) -> Result<RunSummary, TrainError> {
    config.validate()?;
    let task = config.task.build()?;
    // Data and device first: a split the task cannot fill, or a backend that is not there, is
    // refused before the run directory is written.
    let mut data = load_data(config, &task)?;
    let plain = options.backend.device()?;
    if options.resume == Resume::Checkpoint && !dir.checkpoint().exists() {
        return Err(TrainError::NothingToResume {
            dir: dir.root.clone(),
        });
    }
    let _lock = dir.lock()?;
    dir.prepare(config, options.resume != Resume::No)?;
    if options.resume != Resume::No && dir.summary().exists() {
        // The summary is the last thing a run writes: it has finished, under this config.
        return dir.read_summary();
    }

    let device = plain.clone().autodiff();
    let train_config = &config.train;
    let mut optimizer = optimizer(train_config)?;

    let resuming = options.resume != Resume::No && dir.checkpoint().exists();
    let (mut progress, mut model, mut metrics) = if resuming {
        let (header, model, restored) =
            checkpoint::load(&dir.checkpoint(), &config.model, &device, optimizer)?;
        optimizer = restored;
        let metrics = dir.open_metrics(Some(&header.progress))?;
        (header.progress, model, metrics)
    } else {
        device.seed(train_config.seed);
        let metrics = dir.open_metrics(None)?;
        (Progress::default(), config.model.init(&device)?, metrics)
    };
    if progress.horizon == 0 {
        progress.horizon = train_config.steps;
    }

    let eval_subset = &data.validation[..data.validation.len().min(train_config.eval_examples)];
    let bar = crate::progress::training(progress.horizon, progress.step, options.quiet);
    let (mut window_tokens, mut window_started) = (0u64, Instant::now());
    // The last evaluation on the whole validation split, with its step: the final one when
    // the run ends right after it.
    let mut last_full_validation: Option<(usize, EvalMetrics)> = None;

    while progress.ending.is_none() {
        if options.halt_after.is_some_and(|h| progress.step >= h) {
            // Halted on request: the checkpoint holds everything to resume.
            bar.finish_and_clear();
            save(dir, &mut progress, &metrics, &model, &optimizer)?;
            return Err(TrainError::Halted {
                step: progress.step,
                dir: dir.root.clone(),
            });
        }
        let step = progress.step;
        let started = Instant::now();
        let examples = data.train.batch(step, train_config.batch_size)?;
        let refs: Vec<&Example> = examples.iter().collect();
        let batch = Batch::new(&refs, &task, &device);
        // Dropout masks depend on (seed, step) only, so a resumed run draws the same ones: the
        // fused dropout's stream on burn-flex, burn's generator on the other backends.
        let seed = step_seed(train_config.seed, step);
        fused::seed_dropout(seed);
        device.seed(seed);
        let logits = model.forward(batch.inputs.clone());
        let loss = masked_cross_entropy(logits, batch.targets.clone(), batch.mask.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let learning_rate = train_config.learning_rate_within(step, progress.horizon);
        model = optimizer.step(learning_rate, model, grads);

        // Reading the loss waits for the device; only steps that log, evaluate or checkpoint
        // do it (after the backward pass and update are queued), so a GPU is not stalled every
        // step. A non-finite loss is caught before anything is evaluated or saved.
        let done = step + 1;
        let logging = done % train_config.log_every == 0 || done == progress.horizon;
        let evaluating = done % train_config.eval_interval() == 0 || done == progress.horizon;
        let checkpointing = done % train_config.checkpoint_interval() == 0;
        let loss_value = if logging || evaluating || checkpointing {
            let value: f32 = loss.into_scalar();
            if !value.is_finite() {
                return Err(TrainError::NonFiniteLoss { step, value });
            }
            Some(value)
        } else {
            None
        };

        let batch_tokens = examples
            .iter()
            .map(|e| e.tokens.len() as u64 - 1)
            .sum::<u64>();
        window_tokens += batch_tokens;
        progress.step = done;
        progress.train_seconds += started.elapsed().as_secs_f64();
        progress.tokens_seen += batch_tokens;
        progress.train_flops +=
            (examples.len() as u64 * flops::training_step(&config.model, batch.seq)?) as f64;

        if let (true, Some(loss_value)) = (logging, loss_value) {
            let tokens_per_second =
                window_tokens as f64 / window_started.elapsed().as_secs_f64().max(1e-9);
            (window_tokens, window_started) = (0, Instant::now());
            metrics.append(&MetricsLine::Train {
                step: done,
                loss: loss_value as f64,
                learning_rate,
                tokens_per_second,
            })?;
            bar.set_message(format!(
                "loss {loss_value:.4}  {tokens_per_second:.0} tok/s"
            ));
        }
        bar.set_position(done as u64);

        if let (true, Some(loss_value)) = (evaluating, loss_value) {
            let eval = bar.suspend(|| {
                evaluate(
                    &model.valid(),
                    &task,
                    eval_subset,
                    train_config.batch_size,
                    &plain,
                )
            })?;
            let headline = eval.headline;
            metrics.append(&MetricsLine::Eval {
                step: done,
                split: Some(EvalSplit::Validation),
                metrics: eval.clone(),
            })?;
            if eval_subset.len() == data.validation.len() {
                last_full_validation = Some((done, eval));
            }
            let horizon = progress.horizon;
            decide(train_config, &mut progress, headline);
            if progress.horizon > horizon {
                bar.set_length(progress.horizon as u64);
                bar.suspend(|| {
                    if !options.quiet {
                        eprintln!(
                            "step {done}: validation {:.1}%; continuing to step {} \
                             (a new learning-rate cycle)",
                            100.0 * headline,
                            progress.horizon
                        );
                    }
                });
            }
            bar.set_message(format!(
                "loss {loss_value:.4}  validation {:.1}%",
                100.0 * headline
            ));
        }
        if checkpointing && progress.ending.is_none() {
            save(dir, &mut progress, &metrics, &model, &optimizer)?;
        }
    }
    bar.finish_and_clear();
    save(dir, &mut progress, &metrics, &model, &optimizer)?;
    let step = progress.step;

    let final_eval = |examples: &[Example]| {
        evaluate(
            &model.valid(),
            &task,
            examples,
            train_config.batch_size,
            &plain,
        )
    };
    // Evaluation is deterministic, so a whole-split evaluation at this very step is reused
    // (and is already in the metrics log).
    let (validation, fresh) = match last_full_validation {
        Some((at, metrics)) if at == step => (metrics, false),
        _ => (final_eval(&data.validation)?, true),
    };
    let eval = final_eval(&data.test)?;
    let mut ending = progress.ending.expect("the loop ends only with an ending");
    if train_config
        .target_accuracy
        .is_some_and(|t| validation.headline >= t)
    {
        ending = RunEnding::Passed;
    }
    let finals = [
        (EvalSplit::Validation, &validation),
        (EvalSplit::Test, &eval),
    ];
    for (split, metrics_of) in finals.into_iter().skip(usize::from(!fresh)) {
        metrics.append(&MetricsLine::Eval {
            step,
            split: Some(split),
            metrics: metrics_of.clone(),
        })?;
    }
    let summary = summarize(
        config,
        &task,
        options.backend,
        progress,
        ending,
        validation,
        eval,
    )?;
    dir.write_summary(&summary)?;
    Ok(summary)
}

/// Saves the run's checkpoint, with the number of metrics lines written so far (so that a
/// resume can tell a log cut short).
fn save(
    dir: &RunDir,
    progress: &mut Progress,
    metrics: &MetricsLog,
    model: &Transformer,
    optimizer: &ModuleOptimizer,
) -> Result<(), TrainError> {
    progress.metrics_lines = Some(metrics.lines());
    checkpoint::save(&dir.checkpoint(), progress, model, optimizer)
}

/// What an evaluation on the validation split at `progress.step` means for the run: records
/// it for the plateau rule, then ends the run as soon as it passes, or, at the end of the
/// run's horizon (one learning-rate cycle), decides between continuing and ending:
///
/// - still improving (the trend through the last `plateau_patience` evaluations rose by more
///   than `plateau_min_delta`, [`crate::plateau::Plateau`]; or fewer evaluations than that
///   so far): continued by
///   [`TrainConfig::extension`] steps, a fresh learning-rate cycle, up to the cap; at the cap
///   it is out of budget;
/// - stalled at the end of the first cycle, whose rate had decayed to 0: continued once, since
///   the stall may be the schedule's rather than the model's; with no room left, plateaued;
/// - stalled at the end of a continuation cycle, rate restart included: plateaued.
pub fn decide(config: &TrainConfig, progress: &mut Progress, accuracy: f64) {
    progress.plateau.record(progress.step, accuracy);
    if config.target_accuracy.is_some_and(|t| accuracy >= t) {
        progress.ending = Some(RunEnding::Passed);
        return;
    }
    if progress.step < progress.horizon {
        return;
    }
    let stalled = progress
        .plateau
        .stalled(config.plateau_patience, config.plateau_min_delta);
    let continued = progress.horizon > config.steps;
    let room = progress.horizon < config.step_cap();
    progress.ending = if stalled && (continued || !room) {
        Some(RunEnding::Plateaued)
    } else if room {
        progress.horizon = (progress.horizon + config.extension()).min(config.step_cap());
        None
    } else {
        Some(RunEnding::OutOfBudget)
    };
}

/// The seed of step `step`'s dropout masks.
fn step_seed(seed: u64, step: usize) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (step as u64)
            .wrapping_add(1)
            .wrapping_mul(0xBF58_476D_1CE4_E5B9)
}

/// The summary of a finished run that reached `progress`, ended as `ending`, and scored
/// `validation` and `eval` on its validation and test splits.
fn summarize(
    config: &RunConfig,
    task: &Task,
    backend: Backend,
    progress: Progress,
    ending: RunEnding,
    validation: EvalMetrics,
    eval: EvalMetrics,
) -> Result<RunSummary, TrainError> {
    Ok(RunSummary {
        task: task.name(),
        attention: config.model.attention.name().to_string(),
        d_model: config.model.d_model,
        backend,
        steps: progress.step,
        reached_target: config
            .train
            .target_accuracy
            .map(|_| ending == RunEnding::Passed),
        parameters: flops::parameters(&config.model),
        train_seconds: progress.train_seconds,
        train_tokens: progress.tokens_seen,
        train_tokens_per_second: progress.tokens_seen as f64 / progress.train_seconds.max(1e-9),
        train_flops: progress.train_flops,
        decode_flops_per_token: flops::decode_sequence(&config.model, task.max_len())? as f64
            / task.max_len() as f64,
        peak_memory_bytes: peak_memory_bytes(),
        eval,
        validation: Some(validation),
        ending: Some(ending),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> TrainConfig {
        let mut config = TrainConfig::new(100).with_target_accuracy(Some(0.9));
        config.eval_every = Some(10);
        config.plateau_patience = 3;
        config.max_steps = Some(140);
        config
    }

    /// Evaluates `accuracies` at steps 10, 20, …, extending the horizon as the run would.
    fn run(config: &TrainConfig, accuracies: &[f64]) -> Progress {
        let mut progress = Progress {
            horizon: config.steps,
            ..Progress::default()
        };
        for &accuracy in accuracies {
            assert!(progress.ending.is_none(), "evaluated after the run ended");
            progress.step += config.eval_interval();
            decide(config, &mut progress, accuracy);
        }
        progress
    }

    #[test]
    fn reaching_the_target_passes_at_once() {
        let p = run(&config(), &[0.1, 0.5, 0.95]);
        assert_eq!((p.ending, p.step), (Some(RunEnding::Passed), 30));
    }

    #[test]
    fn a_stall_at_the_end_of_the_decayed_first_cycle_earns_one_restart() {
        let flat = [0.2; 13];
        let p = run(&config(), &flat[..9]);
        assert_eq!(p.ending, None, "step 90 < the budget of 100");
        let p = run(&config(), &flat[..10]);
        assert_eq!(
            (p.ending, p.horizon),
            (None, 130),
            "the stall at 100 came at a decayed rate: one more cycle"
        );
        let p = run(&config(), &flat);
        assert_eq!((p.ending, p.step), (Some(RunEnding::Plateaued), 130));
    }

    #[test]
    fn a_restart_that_brings_a_gain_keeps_the_run_going() {
        let mut accuracies = vec![0.2; 10];
        accuracies.extend([0.25, 0.3, 0.35]);
        let p = run(&config(), &accuracies);
        assert_eq!((p.ending, p.horizon), (None, 140));
    }

    #[test]
    fn a_run_still_improving_at_its_budget_is_continued_up_to_the_cap() {
        let rising: Vec<f64> = (0..14).map(|i| 0.05 * i as f64).collect();
        let p = run(&config(), &rising[..10]);
        assert_eq!(p.ending, None);
        assert_eq!(
            p.horizon, 130,
            "extended by one plateau window (3 × 10 steps)"
        );
        let p = run(&config(), &rising);
        assert_eq!(p.horizon, 140, "never past the cap");
        assert_eq!((p.ending, p.step), (Some(RunEnding::OutOfBudget), 140));
    }

    #[test]
    fn a_continued_run_that_stops_improving_plateaus() {
        let mut accuracies: Vec<f64> = (0..10).map(|i| 0.05 * i as f64).collect();
        accuracies.extend([0.45, 0.44, 0.45]);
        let p = run(&config(), &accuracies);
        assert_eq!((p.ending, p.step), (Some(RunEnding::Plateaued), 130));
    }

    #[test]
    fn without_continuation_the_budget_decides() {
        let mut config = config();
        config.max_steps = None;
        let rising: Vec<f64> = (0..10).map(|i| 0.05 * i as f64).collect();
        let p = run(&config, &rising);
        assert_eq!((p.ending, p.step), (Some(RunEnding::OutOfBudget), 100));
        let p = run(&config, &[0.2; 10]);
        assert_eq!((p.ending, p.step), (Some(RunEnding::Plateaued), 100));
    }
}
