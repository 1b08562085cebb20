//! The training loop: one readable loop with evaluation, checkpoints and logging in sight.

use std::time::Instant;

use burn::module::Module;
use burn::optim::GradientsParams;
use dpcot_model::flops;
use dpcot_tasks::{DpTask, Example, Task};

use crate::backend::Backend;
use crate::batch::{Batch, BatchOrder};
use crate::checkpoint::{self, Progress};
use crate::config::RunConfig;
use crate::data::load_data;
use crate::eval::{evaluate, EvalMetrics};
use crate::memory::peak_memory_bytes;
use crate::metrics::{MetricsLine, RunSummary};
use crate::optim::{adamw, masked_cross_entropy};
use crate::run_dir::RunDir;
use crate::TrainError;

/// How to run, as opposed to what (which is [`RunConfig`]).
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Where the tensors live.
    pub backend: Backend,
    /// Continue the run in the directory from its last checkpoint.
    pub resume: bool,
    /// No progress bar.
    pub quiet: bool,
    /// Stop (with a checkpoint) once this many steps are done, to be resumed later — for time
    /// limits of batch schedulers.
    pub halt_after: Option<usize>,
}

/// Trains (or resumes) the run in `dir`.
pub fn train(
    dir: &RunDir,
    config: &RunConfig,
    options: &TrainOptions,
) -> Result<RunSummary, TrainError> {
    config.validate()?;
    dir.prepare(config, options.resume)?;
    let task = config.task.build()?;
    let (train_set, test_set) = load_data(config)?;

    let plain = options.backend.device()?;
    let device = plain.clone().autodiff();
    let train_config = &config.train;
    let mut optimizer = adamw(train_config).init();

    let (mut progress, mut model, mut metrics) = if options.resume && dir.checkpoint().exists() {
        let (header, model, restored) =
            checkpoint::load(&dir.checkpoint(), &config.model, &device, optimizer)?;
        optimizer = restored;
        let metrics = dir.open_metrics(Some(header.progress.step))?;
        (header.progress, model, metrics)
    } else {
        device.seed(train_config.seed);
        let metrics = dir.open_metrics(None)?;
        (Progress::default(), config.model.init(&device)?, metrics)
    };

    let mut order = BatchOrder::new(train_set.len(), train_config.batch_size, train_config.seed);
    let eval_subset = &test_set[..test_set.len().min(train_config.eval_examples)];
    let bar = crate::progress::training(train_config.steps, progress.step, options.quiet);
    let mut reached_target = train_config.target_accuracy.map(|_| false);
    let stop_at = options
        .halt_after
        .map_or(train_config.steps, |h| h.min(train_config.steps));
    let (mut window_tokens, mut window_started) = (0u64, Instant::now());

    while progress.step < stop_at {
        let step = progress.step;
        let started = Instant::now();
        let examples: Vec<&Example> = order
            .indices(step)
            .into_iter()
            .map(|i| &train_set[i])
            .collect();
        let batch = Batch::new(&examples, &device);
        // Dropout masks depend on (seed, step) only, so a resumed run draws the same ones.
        device.seed(step_seed(train_config.seed, step));
        let logits = model.forward(batch.inputs.clone());
        let loss = masked_cross_entropy(logits, batch.targets.clone(), batch.mask.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let learning_rate = train_config.learning_rate_at(step);
        model = optimizer.step(learning_rate, model, grads);

        // Reading the loss waits for the device; only steps that log, evaluate or checkpoint
        // do it (after the backward pass and update are queued), so a GPU is not stalled every
        // step. A non-finite loss is caught before anything is evaluated or saved.
        let done = step + 1;
        let logging = done % train_config.log_every == 0 || done == train_config.steps;
        let evaluating = done % train_config.eval_interval() == 0 && done < train_config.steps;
        let checkpointing = done % train_config.checkpoint_interval() == 0 || done == stop_at;
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
        progress = Progress {
            step: step + 1,
            train_seconds: progress.train_seconds + started.elapsed().as_secs_f64(),
            tokens_seen: progress.tokens_seen + batch_tokens,
            train_flops: progress.train_flops
                + (examples.len() as u64 * flops::training_step(&config.model, batch.seq)?) as f64,
        };
        let step = progress.step;

        if let (true, Some(loss_value)) = (logging, loss_value) {
            let tokens_per_second =
                window_tokens as f64 / window_started.elapsed().as_secs_f64().max(1e-9);
            (window_tokens, window_started) = (0, Instant::now());
            metrics.append(&MetricsLine::Train {
                step,
                loss: loss_value as f64,
                learning_rate,
                tokens_per_second,
            })?;
            bar.set_message(format!(
                "loss {loss_value:.4}  {tokens_per_second:.0} tok/s"
            ));
        }
        bar.set_position(step as u64);

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
                step,
                metrics: eval,
            })?;
            bar.set_message(format!(
                "loss {loss_value:.4}  eval {:.1}%",
                100.0 * headline
            ));
            if train_config.target_accuracy.is_some_and(|t| headline >= t) {
                reached_target = Some(true);
                break;
            }
        }
        if checkpointing {
            checkpoint::save(&dir.checkpoint(), progress, &model, &optimizer)?;
        }
    }
    bar.finish_and_clear();
    checkpoint::save(&dir.checkpoint(), progress, &model, &optimizer)?;
    let step = progress.step;
    if step < train_config.steps && reached_target != Some(true) {
        // Halted on request: the checkpoint holds everything to resume.
        return Err(TrainError::Halted {
            step,
            dir: dir.root.clone(),
        });
    }

    let eval = evaluate(
        &model.valid(),
        &task,
        &test_set,
        train_config.batch_size,
        &plain,
    )?;
    if let Some(target) = train_config.target_accuracy {
        reached_target = Some(reached_target == Some(true) || eval.headline >= target);
    }
    metrics.append(&MetricsLine::Eval {
        step,
        metrics: eval.clone(),
    })?;
    let summary = summarize(
        config,
        &task,
        options.backend,
        progress,
        reached_target,
        eval,
    )?;
    dir.write_summary(&summary)?;
    Ok(summary)
}

/// The seed of step `step`'s dropout masks.
fn step_seed(seed: u64, step: usize) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (step as u64)
            .wrapping_add(1)
            .wrapping_mul(0xBF58_476D_1CE4_E5B9)
}

/// The summary of a finished run that reached `progress` and scored `eval` on its test split.
fn summarize(
    config: &RunConfig,
    task: &Task,
    backend: Backend,
    progress: Progress,
    reached_target: Option<bool>,
    eval: EvalMetrics,
) -> Result<RunSummary, TrainError> {
    Ok(RunSummary {
        task: task.name(),
        attention: config.model.attention.name().to_string(),
        d_model: config.model.d_model,
        backend,
        steps: progress.step,
        reached_target,
        parameters: flops::parameters(&config.model),
        train_seconds: progress.train_seconds,
        train_tokens: progress.tokens_seen,
        train_tokens_per_second: progress.tokens_seen as f64 / progress.train_seconds.max(1e-9),
        train_flops: progress.train_flops,
        decode_flops_per_token: flops::decode_sequence(&config.model, task.max_len())? as f64
            / task.max_len() as f64,
        peak_memory_bytes: peak_memory_bytes(),
        eval,
        validation: None,
        ending: None,
    })
}
