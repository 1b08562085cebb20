//! `dpcot train`: one run, configured by flags over the library's defaults.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use dpcot_model::config::flag_help;
use dpcot_model::{ModelConfig, ModelOverrides};
use dpcot_tasks::DpTask;
use dpcot_train::{
    DataOverrides, DataSource, RunConfig, RunDir, TrainConfig, TrainError, TrainOptions,
    TrainOverrides,
};

use crate::args::{BackendArgs, ModelArgs, TaskArgs};
use crate::eval::print_eval;

#[derive(Args)]
pub struct TrainArgs {
    #[command(flatten)]
    task: TaskArgs,
    #[command(flatten)]
    model: ModelArgs,
    /// Embedding dimension.
    #[arg(long, default_value_t = 64)]
    d_model: usize,
    #[command(flatten)]
    model_settings: ModelOverrides,
    #[command(flatten)]
    train: TrainOverrides,
    /// Stop early once the headline accuracy reaches this fraction.
    #[arg(long)]
    target: Option<f64>,
    /// Seed of the initialisation, the data, the batch order and dropout.
    #[arg(long, help = flag_help("Seed of the initialisation, the data, the batch order and dropout", TrainConfig::DEFAULT_SEED))]
    seed: Option<u64>,
    /// A dataset directory from `dpcot generate`; otherwise data is generated.
    #[arg(long, conflicts_with_all = ["train_examples", "test_examples"])]
    data: Option<PathBuf>,
    #[command(flatten)]
    generated: DataOverrides,
    /// Run directory.
    #[arg(long)]
    out: PathBuf,
    /// Continue the run in --out from its last checkpoint.
    #[arg(long)]
    resume: bool,
    /// Stop with a checkpoint after N steps (resume later with --resume).
    #[arg(long)]
    halt_after: Option<usize>,
    #[command(flatten)]
    backend: BackendArgs,
}

pub fn run(args: TrainArgs, quiet: bool) -> Result<()> {
    let task = args.task.spec()?;
    let built = task.build()?;
    let model = args.model_settings.apply(ModelConfig::new(
        built.vocab().len(),
        built.max_len(),
        args.d_model,
        args.model.attention()?,
    ));
    let seed = args.seed.unwrap_or(TrainConfig::DEFAULT_SEED);
    let train = args
        .train
        .config()
        .with_seed(seed)
        .with_target_accuracy(args.target);
    let data = match args.data {
        Some(path) => DataSource::Directory { path },
        None => args.generated.generated(seed),
    };
    let config = RunConfig {
        task,
        model,
        train,
        data,
    };
    let options = TrainOptions {
        backend: args.backend.backend()?,
        resume: args.resume,
        quiet,
        halt_after: args.halt_after,
    };
    if !quiet {
        eprintln!(
            "{}: {} model, d_model {}, {} parameters, on {} -> {}",
            built.name(),
            args.model.choice()?,
            config.model.d_model,
            dpcot_model::flops::parameters(&config.model),
            options.backend,
            args.out.display()
        );
    }
    let dir = RunDir::new(&args.out);
    let summary = dpcot_train::train(&dir, &config, &options).map_err(with_hint)?;
    print_summary(&summary, &dir);
    Ok(())
}

/// What a finished run reached, and where its summary is.
pub fn print_summary(summary: &dpcot_train::RunSummary, dir: &RunDir) {
    print_eval(
        &format!("{} after {} steps", summary.task, summary.steps),
        &summary.eval,
    );
    println!(
        "trained {} steps in {:.1}s ({:.0} tokens/s, {:.3e} FLOPs); summary in {}",
        summary.steps,
        summary.train_seconds,
        summary.train_tokens_per_second,
        summary.train_flops,
        dir.summary().display()
    );
}

/// The library says what is wrong; the command line adds how to fix it with its flags.
fn with_hint(err: TrainError) -> anyhow::Error {
    let hint = match &err {
        TrainError::RunExists { .. } => "pass --resume to continue it, or choose another --out",
        TrainError::Halted { .. } => "continue it with the same command and --resume",
        _ => return err.into(),
    };
    anyhow::anyhow!("{err}; {hint}")
}
