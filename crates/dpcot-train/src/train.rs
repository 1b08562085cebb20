//! The training loop: one readable loop with evaluation, checkpoints and logging in sight.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::grad_clipping::GradientClippingConfig;
use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor};
use dpcot_model::flops;
use dpcot_tasks::{Dataset, DpTask, Example, GenerateConfig, Split, Task};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::batch::{Batch, BatchOrder};
use crate::checkpoint::{self, Progress};
use crate::config::{DataSource, RunConfig, TrainConfig};
use crate::eval::{evaluate, EvalMetrics};
use crate::TrainError;

/// The files of a run directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    pub root: PathBuf,
}

impl RunDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }
    pub fn config(&self) -> PathBuf {
        self.root.join("config.json")
    }
    pub fn metrics(&self) -> PathBuf {
        self.root.join("metrics.jsonl")
    }
    pub fn checkpoint(&self) -> PathBuf {
        self.root.join("checkpoint.bin")
    }
    pub fn summary(&self) -> PathBuf {
        self.root.join("summary.json")
    }

    /// Reads the run's `config.json`.
    pub fn read_config(&self) -> Result<RunConfig, TrainError> {
        read_json(&self.config())
    }

    /// Reads the run's `summary.json`.
    pub fn read_summary(&self) -> Result<RunSummary, TrainError> {
        read_json(&self.summary())
    }
}

/// How to run, as opposed to what (which is [`RunConfig`]).
#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub backend: Backend,
    /// Continue the run in the directory from its last checkpoint.
    pub resume: bool,
    /// No progress bar.
    pub quiet: bool,
    /// Stop (with a checkpoint) once this many steps are done, to be resumed later — for time
    /// limits of batch schedulers.
    pub halt_after: Option<usize>,
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MetricsLine {
    Train {
        step: usize,
        loss: f64,
        learning_rate: f64,
        tokens_per_second: f64,
    },
    Eval {
        step: usize,
        #[serde(flatten)]
        metrics: EvalMetrics,
    },
}

impl MetricsLine {
    fn step(&self) -> usize {
        match self {
            MetricsLine::Train { step, .. } | MetricsLine::Eval { step, .. } => *step,
        }
    }
}

/// `summary.json`: what a finished run reached and what it cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub task: String,
    pub attention: String,
    pub d_model: usize,
    pub backend: Backend,
    /// Steps trained (fewer than the budget if the target was reached).
    pub steps: usize,
    pub reached_target: Option<bool>,
    pub parameters: u64,
    pub train_seconds: f64,
    pub train_tokens: u64,
    pub train_tokens_per_second: f64,
    /// FLOPs of all training steps (forward + backward on the padded batches).
    pub train_flops: f64,
    /// Mean FLOPs per generated token over positions 0..max_len.
    pub decode_flops_per_token: f64,
    /// Peak resident memory of the process (Linux `VmHWM`): the run's own when it is trained
    /// in a process of its own, as the sweeps do.
    #[serde(default)]
    pub peak_memory_bytes: Option<u64>,
    /// Evaluation on the whole test split.
    pub eval: EvalMetrics,
}

/// Trains (or resumes) the run in `dir`.
pub fn train(
    dir: &RunDir,
    config: &RunConfig,
    options: &TrainOptions,
) -> Result<RunSummary, TrainError> {
    config.validate()?;
    prepare_dir(dir, config, options.resume)?;
    let task = config.task.build()?;
    let (train_set, test_set) = load_data(config)?;

    let plain = options.backend.device()?;
    let device = plain.clone().autodiff();
    let train_config = &config.train;
    let mut optimizer = adamw(train_config).init();

    let (mut progress, mut model) = if options.resume && dir.checkpoint().exists() {
        let (header, model, restored) =
            checkpoint::load(&dir.checkpoint(), &config.model, &device, optimizer)?;
        optimizer = restored;
        truncate_metrics(&dir.metrics(), header.progress.step)?;
        (header.progress, model)
    } else {
        device.seed(train_config.seed);
        let _ = std::fs::remove_file(dir.metrics());
        (Progress::default(), config.model.init(&device)?)
    };
    let mut metrics = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.metrics())
        .map_err(TrainError::io(dir.metrics()))?;

    let mut order = BatchOrder::new(train_set.len(), train_config.batch_size, train_config.seed);
    let eval_subset = &test_set[..test_set.len().min(train_config.eval_examples)];
    let bar = progress_bar(train_config.steps, progress.step, options.quiet);
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
            append(
                &mut metrics,
                &dir.metrics(),
                &MetricsLine::Train {
                    step,
                    loss: loss_value as f64,
                    learning_rate,
                    tokens_per_second,
                },
            )?;
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
            append(
                &mut metrics,
                &dir.metrics(),
                &MetricsLine::Eval {
                    step,
                    metrics: eval,
                },
            )?;
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
    append(
        &mut metrics,
        &dir.metrics(),
        &MetricsLine::Eval {
            step,
            metrics: eval.clone(),
        },
    )?;
    let summary = RunSummary {
        task: task.name(),
        attention: config.model.attention.name().to_string(),
        d_model: config.model.d_model,
        backend: options.backend,
        steps: step,
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
    };
    write_json_atomic(&dir.summary(), &summary)?;
    Ok(summary)
}

/// Peak resident set size of this process, where the OS tells it.
fn peak_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The optimizer of `config`: AdamW with its weight decay and gradient clipping.
pub(crate) fn adamw(config: &TrainConfig) -> AdamWConfig {
    AdamWConfig::new()
        .with_weight_decay(config.weight_decay as f32)
        // PyTorch's AdamW epsilon, as the reference uses.
        .with_epsilon(1e-8)
        .with_grad_clipping(
            config
                .grad_clip_norm
                .map(|c| GradientClippingConfig::Norm(c as f32)),
        )
}

/// Next-token cross-entropy averaged over the supervised targets only.
///
/// - logits: `[batch, seq, vocab]`; targets, mask: `[batch, seq]`
pub fn masked_cross_entropy(
    logits: Tensor<3>,
    targets: Tensor<2, Int>,
    mask: Tensor<2>,
) -> Tensor<1> {
    let [batch, seq, _] = logits.dims();
    let log_probs = log_softmax(logits, 2);
    let picked = log_probs
        .gather(2, targets.reshape([batch, seq, 1]))
        .reshape([batch, seq]);
    let count = mask.clone().sum();
    (picked * mask).sum().neg() / count
}

fn step_seed(seed: u64, step: usize) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (step as u64)
            .wrapping_add(1)
            .wrapping_mul(0xBF58_476D_1CE4_E5B9)
}

/// Creates the run directory and its `config.json`, or checks the config of a resumed run.
fn prepare_dir(dir: &RunDir, config: &RunConfig, resume: bool) -> Result<(), TrainError> {
    std::fs::create_dir_all(&dir.root).map_err(TrainError::io(&dir.root))?;
    if dir.config().exists() {
        if !resume {
            return Err(TrainError::RunExists {
                dir: dir.root.clone(),
            });
        }
        let existing = dir.read_config()?;
        if &existing != config {
            return Err(TrainError::CheckpointMismatch {
                path: dir.config(),
                reason:
                    "the run was started with another config; resume it without changing the config"
                        .into(),
            });
        }
        return Ok(());
    }
    write_json_atomic(&dir.config(), config)
}

/// The train and test examples of a run.
pub fn load_data(config: &RunConfig) -> Result<(Vec<Example>, Vec<Example>), TrainError> {
    match &config.data {
        DataSource::Directory { path } => {
            let train =
                Dataset::read_expecting(&Split::Train.path_in(path), &config.task, Split::Train)?;
            let test =
                Dataset::read_expecting(&Split::Test.path_in(path), &config.task, Split::Test)?;
            if train.examples.is_empty() || test.examples.is_empty() {
                return Err(TrainError::Data(format!(
                    "{}: a split is empty",
                    path.display()
                )));
            }
            Ok((train.examples, test.examples))
        }
        DataSource::Generated { train, test, seed } => {
            if *train == 0 || *test == 0 {
                return Err(TrainError::invalid(
                    "data",
                    "generated splits need at least one example each",
                ));
            }
            let (train, test) = dpcot_tasks::generate(
                &GenerateConfig {
                    task: config.task.clone(),
                    train: *train,
                    test: *test,
                    seed: *seed,
                    mix_smaller: false,
                },
                |_| {},
            )?;
            Ok((train.examples, test.examples))
        }
    }
}

/// Evaluates the model of a finished (or halted) run on its whole test split.
pub fn evaluate_run(
    dir: &RunDir,
    backend: Backend,
    batch_size: usize,
) -> Result<(Task, EvalMetrics), TrainError> {
    let config = dir.read_config()?;
    let task = config.task.build()?;
    let (_, test) = load_data(&config)?;
    let device = backend.device()?;
    let optimizer = AdamWConfig::new().init();
    let (_, model, _) = checkpoint::load(&dir.checkpoint(), &config.model, &device, optimizer)?;
    let metrics = evaluate(&model, &task, &test, batch_size, &device)?;
    Ok((task, metrics))
}

fn progress_bar(steps: usize, done: usize, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(steps as u64).with_position(done as u64);
    bar.set_style(
        ProgressStyle::with_template("train [{bar:30}] {pos}/{len} {msg} (eta {eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar
}

fn append(file: &mut File, path: &Path, line: &MetricsLine) -> Result<(), TrainError> {
    let mut text = serde_json::to_string(line).expect("metrics serialise");
    text.push('\n');
    file.write_all(text.as_bytes())
        .map_err(TrainError::io(path))
}

/// Drops metric lines past `step` (written after the checkpoint a run resumes from).
fn truncate_metrics(path: &Path, step: usize) -> Result<(), TrainError> {
    let Ok(file) = File::open(path) else {
        return Ok(());
    };
    let mut kept = String::new();
    for line in BufReader::new(file).lines() {
        let line = line.map_err(TrainError::io(path))?;
        if let Ok(parsed) = serde_json::from_str::<MetricsLine>(&line) {
            if parsed.step() <= step {
                kept.push_str(&line);
                kept.push('\n');
            }
        }
    }
    write_atomic(path, kept.as_bytes())
}

pub(crate) fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<(), TrainError> {
    let mut text = serde_json::to_string_pretty(value).expect("serialisable");
    text.push('\n');
    write_atomic(path, text.as_bytes())
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(TrainError::io(dir))?;
    file.write_all(bytes).map_err(TrainError::io(path))?;
    file.persist(path)
        .map_err(|e| TrainError::io(path)(e.error))?;
    Ok(())
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, TrainError> {
    let text = std::fs::read_to_string(path).map_err(TrainError::io(path))?;
    serde_json::from_str(&text).map_err(|e| TrainError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}
