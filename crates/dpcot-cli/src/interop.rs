//! Interoperation with the reference PyTorch benchmark (Feng et al. 2023,
//! `guyuntian/CoT_benchmark`): its data files (`check --format cot-benchmark`, `import`,
//! `export`) and its checkpoints (`eval --checkpoint`). See docs/interop.md.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use dpcot_model::config::flag_help;
use dpcot_model::pretrained::{load_reference, CheckpointError, LoadOptions};
use dpcot_model::ModelError;
use dpcot_tasks::dataset::{self, Split};
use dpcot_tasks::reference_format;
use dpcot_tasks::{Dataset, DpTask, GenerateConfig, TaskKind, TaskOptions, TaskSpec};
use dpcot_train::{Backend, DataSource, TrainConfig};

use crate::generate::{existing, force_hint};

/// The formats of example files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum DataFormat {
    /// dpcot's datasets: a JSON header line, then one example per line.
    #[default]
    Dpcot,
    /// The reference benchmark's files: one example per line, no header (the task is given on
    /// the command line).
    CotBenchmark,
}

/// The task of reference files or checkpoints, which do not record it.
#[derive(Args, Debug, Clone, Default)]
pub struct ReferenceTaskArgs {
    /// The task (with --format cot-benchmark or --checkpoint).
    #[arg(long, value_enum)]
    pub task: Option<TaskKind>,
    /// Number of operators (arithmetic) or input length (lis, ed).
    #[arg(long)]
    pub size: Option<usize>,
    /// Arithmetic modulus [default: 11, the reference's --number_range].
    #[arg(long)]
    pub modulus: Option<u32>,
    /// LIS number range R [default: max(250, n+150); the reference uses 250].
    #[arg(long)]
    pub range: Option<u32>,
    /// Edit-distance number tokens [default: max(60, largest value + 1); the reference uses 60].
    #[arg(long)]
    pub numbers: Option<u32>,
}

impl ReferenceTaskArgs {
    fn given(&self) -> bool {
        self.task.is_some()
            || self.size.is_some()
            || self.modulus.is_some()
            || self.range.is_some()
            || self.numbers.is_some()
    }

    fn spec(&self, what: &str) -> Result<TaskSpec> {
        let (Some(task), Some(size)) = (&self.task, self.size) else {
            bail!("{what} needs --task and --size: the reference's files and checkpoints do not record the task");
        };
        let options = TaskOptions {
            modulus: self.modulus,
            range: self.range,
            numbers: self.numbers,
            ..TaskOptions::default()
        };
        Ok(TaskSpec::new(*task, size, &options)?)
    }
}

/// The options `dpcot check` takes for reference files.
#[derive(Args, Debug, Clone, Default)]
pub struct CheckFormatArgs {
    /// Format of FILE.
    #[arg(long, value_enum, default_value_t = DataFormat::Dpcot)]
    pub format: DataFormat,
    #[command(flatten)]
    pub task: ReferenceTaskArgs,
    /// Arithmetic: the answers file (test_ans.txt) of a prompt-only test file.
    #[arg(long)]
    pub answers: Option<PathBuf>,
}

/// `dpcot check --format cot-benchmark`: `None` for dpcot's own format (after making sure no
/// reference-only option was given), the outcome otherwise.
pub fn check(file: &Path, args: &CheckFormatArgs) -> Option<Result<()>> {
    match args.format {
        DataFormat::Dpcot if args.task.given() || args.answers.is_some() => Some(Err(
            anyhow::anyhow!("--task, --size, --modulus, --range, --numbers and --answers go with --format cot-benchmark; a dpcot dataset names its task in its header"),
        )),
        DataFormat::Dpcot => None,
        DataFormat::CotBenchmark => Some(check_reference(file, args)),
    }
}

fn check_reference(file: &Path, args: &CheckFormatArgs) -> Result<()> {
    let task = args.task.spec("checking a reference file")?.build()?;
    let outcome = reference_format::check_file(&task, file, args.answers.as_deref())?;
    for problem in &outcome.problems {
        eprintln!("{problem}");
    }
    println!(
        "{} ({}, {}): {} examples: {} valid, {} invalid",
        file.display(),
        reference_format::FORMAT_NAME,
        task.name(),
        outcome.examples,
        outcome.valid,
        outcome.invalid()
    );
    if outcome.examples == 0 {
        bail!("{}: no examples", file.display());
    }
    if outcome.invalid() > 0 {
        bail!(
            "{} invalid or unreadable examples in {}",
            outcome.invalid(),
            file.display()
        );
    }
    if let Some(mismatch) = outcome.size_mismatch {
        bail!(mismatch);
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// Format of the files to import.
    #[arg(long, value_enum, default_value_t = DataFormat::CotBenchmark)]
    format: DataFormat,
    #[command(flatten)]
    task: ReferenceTaskArgs,
    /// The training file (the reference's chain/train_data.txt).
    #[arg(long)]
    train: PathBuf,
    /// The test file (chain/test_data.txt; for arithmetic the prompts `expr =` only).
    #[arg(long)]
    test: PathBuf,
    /// Arithmetic: the answers of a prompt-only test file (chain/test_ans.txt).
    #[arg(long)]
    answers: Option<PathBuf>,
    /// Output dataset directory (train.txt, test.txt), for `dpcot train --data`.
    #[arg(long)]
    out: PathBuf,
    /// Replace a dataset already in --out.
    #[arg(long)]
    force: bool,
}

/// `dpcot import`: reference files → a dpcot dataset directory, every example verified.
pub fn import(args: ImportArgs) -> Result<()> {
    if args.format != DataFormat::CotBenchmark {
        bail!("import reads the cot-benchmark format; a dpcot dataset needs no import");
    }
    let spec = args.task.spec("import")?;
    let task = spec.build()?;
    let existing = existing(args.force);
    existing
        .check(dataset::dir_files(&args.out).iter().map(PathBuf::as_path))
        .map_err(force_hint)?;
    let train = reference_format::import_split(&spec, Split::Train, &args.train, None)?;
    let test =
        reference_format::import_split(&spec, Split::Test, &args.test, args.answers.as_deref())?;
    dataset::write_dir(&args.out, &train, &test, existing)
        .map_err(force_hint)
        .with_context(|| format!("writing the dataset to {}", args.out.display()))?;
    println!(
        "{}: {} train + {} test examples, all verified by the checker{} -> {}",
        task.name(),
        train.examples.len(),
        test.examples.len(),
        if train.header.mix_smaller {
            " (the training set mixes in smaller operator counts)"
        } else {
            ""
        },
        args.out.display()
    );
    Ok(())
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Format to write.
    #[arg(long, value_enum, default_value_t = DataFormat::CotBenchmark)]
    format: DataFormat,
    /// A dpcot dataset directory (train.txt and/or test.txt).
    #[arg(long)]
    data: PathBuf,
    /// Output directory, in the reference's layout (chain/train_data.txt, ...).
    #[arg(long)]
    out: PathBuf,
    /// Replace the reference files already in --out (all of them: none of an earlier export is
    /// left beside the new one).
    #[arg(long)]
    force: bool,
}

/// `dpcot export`: a dpcot dataset directory → the reference's layout.
pub fn export(args: ExportArgs) -> Result<()> {
    if args.format != DataFormat::CotBenchmark {
        bail!("export writes the cot-benchmark format");
    }
    let read = |split: Split| -> Result<Option<Dataset>> {
        let path = split.path_in(&args.data);
        if !path.exists() {
            return Ok(None);
        }
        let data = Dataset::read(&path)?;
        if data.header.split != split {
            bail!(
                "{}: holds the {} split",
                path.display(),
                data.header.split.as_str()
            );
        }
        Ok(Some(data))
    };
    let (train, test) = (read(Split::Train)?, read(Split::Test)?);
    if train.is_none() && test.is_none() {
        bail!(
            "{}: no train.txt or test.txt: not a dpcot dataset directory",
            args.data.display()
        );
    }
    if let (Some(a), Some(b)) = (&train, &test) {
        if a.header.task != b.header.task {
            bail!(
                "{}: train.txt and test.txt hold different tasks",
                args.data.display()
            );
        }
    }
    let written = reference_format::export_dir(
        &args.out,
        train.as_ref(),
        test.as_ref(),
        existing(args.force),
    )
    .map_err(force_hint)?;
    for path in &written {
        println!("{}", path.display());
    }
    Ok(())
}

/// `dpcot eval --checkpoint`: a reference checkpoint evaluated like a dpcot run.
#[derive(Args, Debug, Clone, Default)]
pub struct CheckpointArgs {
    /// A checkpoint of the reference benchmark's model (`torch.save(model.state_dict())`, .pt,
    /// or the same tensors as .safetensors), instead of --run.
    #[arg(long, conflicts_with = "run")]
    pub checkpoint: Option<PathBuf>,
    #[command(flatten)]
    pub task: ReferenceTaskArgs,
    /// Number of heads, when the checkpoint has no `attn.RPE` buffer to tell it [reference: 4].
    #[arg(long, requires = "checkpoint")]
    pub heads: Option<usize>,
    /// Evaluate on the test split of this dpcot dataset directory (e.g. from `dpcot import`)
    /// instead of freshly generated examples.
    #[arg(long, requires = "checkpoint")]
    pub data: Option<PathBuf>,
    /// Generated test examples (without --data).
    #[arg(long, conflicts_with = "data", help = flag_help("Generated test examples (without --data)", DataSource::DEFAULT_TEST_EXAMPLES))]
    pub test_examples: Option<usize>,
    /// Seed of the generated test examples.
    #[arg(long, conflicts_with = "data", help = flag_help("Seed of the generated test examples", TrainConfig::DEFAULT_SEED))]
    pub seed: Option<u64>,
}

/// `dpcot eval`: `None` without --checkpoint (after making sure no checkpoint-only option was
/// given), the outcome of evaluating the checkpoint otherwise.
pub fn eval(
    args: &CheckpointArgs,
    batch_size: usize,
    backend: impl FnOnce() -> Result<Backend>,
) -> Option<Result<()>> {
    match &args.checkpoint {
        None if args.task.given() => Some(Err(anyhow::anyhow!(
            "--task, --size, --modulus, --range and --numbers go with --checkpoint; a run directory records its task"
        ))),
        None => None,
        Some(checkpoint) => {
            Some(backend().and_then(|b| eval_checkpoint(checkpoint, args, batch_size, b)))
        }
    }
}

/// Loads a reference checkpoint and evaluates it with dpcot's metrics.
pub fn eval_checkpoint(
    checkpoint: &Path,
    args: &CheckpointArgs,
    batch_size: usize,
    backend: Backend,
) -> Result<()> {
    let spec = args.task.spec("eval --checkpoint")?;
    let task = spec.build()?;
    let device = backend.device()?;
    let options = LoadOptions {
        n_heads: args.heads,
        vocab_size: Some(task.vocab().len()),
        ..LoadOptions::new(task.max_len())
    };
    let (model, arch) = load_reference(checkpoint, &options, &device).map_err(with_hint)?;
    let examples = match &args.data {
        Some(dir) => {
            Dataset::read_expecting(&Split::Test.path_in(dir), &spec, Split::Test)?.examples
        }
        None => {
            let config = GenerateConfig {
                task: spec.clone(),
                train: 0,
                test: args
                    .test_examples
                    .unwrap_or(DataSource::DEFAULT_TEST_EXAMPLES),
                seed: args.seed.unwrap_or(TrainConfig::DEFAULT_SEED),
                mix_smaller: false,
            };
            dpcot_tasks::generate(&config, |_| {})?.1.examples
        }
    };
    eprintln!(
        "{}: reference checkpoint {} ({:?}, {} layers, d_model {}, {} heads, vocabulary {}), {} test examples on {backend}",
        task.name(),
        checkpoint.display(),
        arch.format,
        arch.n_layers,
        arch.d_model,
        model.config().n_heads,
        arch.vocab_size,
        examples.len()
    );
    let metrics = dpcot_train::evaluate(&model, &task, &examples, batch_size, &device)?;
    crate::eval::print_eval(
        &format!("{}, checkpoint {}", task.name(), checkpoint.display()),
        &metrics,
    );
    Ok(())
}

/// The library says what is wrong with a checkpoint; the command line adds the flag that
/// fixes it.
fn with_hint(err: ModelError) -> anyhow::Error {
    let hint = match &err {
        ModelError::Checkpoint { error, .. } => match error {
            CheckpointError::HeadsUnknown => "give it with --heads",
            CheckpointError::VocabMismatch { .. } => {
                "give the reference's task knobs, e.g. --numbers 60 (ed) or --range 250 (lis)"
            }
            _ => return err.into(),
        },
        _ => return err.into(),
    };
    anyhow::anyhow!("{err}; {hint}")
}
