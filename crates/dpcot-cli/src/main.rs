//! `dpcot`: the single steps of the toolkit. `cargo xtask reproduce` drives whole experiments.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use dpcot_tasks::{dataset, Dataset, DpTask, GenerateConfig, TaskOptions, TaskSpec};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;

#[derive(Parser)]
#[command(
    name = "dpcot",
    version,
    about = "Do efficient transformers really save computation? Chain-of-thought DP tasks, models and experiments."
)]
struct Cli {
    /// No progress bars (for scripts and logs).
    #[arg(long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate a train and a test split of a task into a directory (train.txt, test.txt).
    Generate(GenerateArgs),
    /// Verify every example of a dataset file with the task's CoT checker.
    Check(CheckArgs),
    /// Print a few examples of a task, with its vocabulary and maximum length.
    Show(ShowArgs),
}

/// Which task, and its knobs.
#[derive(Args)]
struct TaskArgs {
    /// arithmetic, lis or ed.
    #[arg(long)]
    task: String,
    /// Number of operators (arithmetic) or input length (lis, ed).
    #[arg(long)]
    size: usize,
    /// Arithmetic modulus, a prime [default: 11].
    #[arg(long)]
    modulus: Option<u32>,
    /// LIS number range R, inputs in [n+1, R-1] [default: max(250, n+150)].
    #[arg(long)]
    range: Option<u32>,
    /// LIS locality window m: dp_i looks back m positions only.
    #[arg(long)]
    window: Option<usize>,
    /// Edit-distance number tokens 0..K [default: max(60, largest table value + 1)].
    #[arg(long)]
    numbers: Option<u32>,
    /// Edit-distance band w: only cells with |i - j| <= w.
    #[arg(long)]
    band: Option<usize>,
}

impl TaskArgs {
    fn spec(&self) -> Result<TaskSpec> {
        let options = TaskOptions {
            modulus: self.modulus,
            range: self.range,
            window: self.window,
            numbers: self.numbers,
            band: self.band,
        };
        Ok(TaskSpec::from_name(&self.task, self.size, &options)?)
    }
}

#[derive(Args)]
struct GenerateArgs {
    #[command(flatten)]
    task: TaskArgs,
    /// Training examples.
    #[arg(long, default_value_t = 100_000)]
    train: usize,
    /// Test examples (never in the training set).
    #[arg(long, default_value_t = 10_000)]
    test: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Arithmetic: mix smaller operator counts into the training set, share proportional to the count.
    #[arg(long)]
    mix_smaller: bool,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
struct CheckArgs {
    /// A dataset file written by `dpcot generate`.
    file: PathBuf,
}

#[derive(Args)]
struct ShowArgs {
    #[command(flatten)]
    task: TaskArgs,
    /// How many examples.
    #[arg(short = 'n', long, default_value_t = 3)]
    count: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Generate(args) => generate(args, cli.quiet),
        Command::Check(args) => check(args, cli.quiet),
        Command::Show(args) => show(args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn progress_bar(len: usize, what: &str, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

fn generate(args: GenerateArgs, quiet: bool) -> Result<()> {
    let config = GenerateConfig {
        task: args.task.spec()?,
        train: args.train,
        test: args.test,
        seed: args.seed,
        mix_smaller: args.mix_smaller,
    };
    let task = config.task.build()?;
    let started = Instant::now();
    let bar = progress_bar(args.train + args.test, "generate", quiet);
    let (train, test) = dpcot_tasks::generate(&config, |done| bar.set_position(done as u64))?;
    bar.finish_and_clear();
    let generated = started.elapsed();
    dataset::write_dir(&args.out, &train, &test)
        .with_context(|| format!("writing the dataset to {}", args.out.display()))?;
    println!(
        "{}: {} train + {} test examples (max length {}, vocabulary {}) in {} -> {:.2}s generate, {:.2}s total",
        task.name(),
        train.examples.len(),
        test.examples.len(),
        task.max_len(),
        task.vocab().len(),
        args.out.display(),
        generated.as_secs_f64(),
        started.elapsed().as_secs_f64(),
    );
    Ok(())
}

fn check(args: CheckArgs, quiet: bool) -> Result<()> {
    let data = Dataset::read(&args.file)?;
    let task = data.task()?;
    let bar = progress_bar(data.examples.len(), "check", quiet);
    let mut invalid = 0;
    for (i, example) in data.examples.iter().enumerate() {
        let report = task.check(example.prompt(), example.completion());
        match report {
            Ok(r) if r.is_correct() && r.answer_correct && r.well_formed => {}
            outcome => {
                invalid += 1;
                let why = match outcome {
                    Ok(r) => format!("{:?}", r.first_wrong),
                    Err(e) => e.to_string(),
                };
                // Line 1 is the header.
                bar.suspend(|| eprintln!("{}:{}: invalid: {why}", args.file.display(), i + 2));
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    println!(
        "{} ({}, {}): {} examples: {} valid, {invalid} invalid",
        args.file.display(),
        data.header.split.as_str(),
        task.name(),
        data.examples.len(),
        data.examples.len() - invalid
    );
    if invalid > 0 {
        bail!("{invalid} invalid examples in {}", args.file.display());
    }
    Ok(())
}

fn show(args: ShowArgs) -> Result<()> {
    let task = args.task.spec()?.build()?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(args.seed);
    println!("task: {}", serde_json::to_string(&task.spec())?);
    println!("max length (with <eos>): {}", task.max_len());
    println!(
        "vocabulary ({}): {}",
        task.vocab().len(),
        task.vocab().words().join(" ")
    );
    for _ in 0..args.count {
        println!("{}", task.vocab().decode(&task.generate(&mut rng).tokens));
    }
    Ok(())
}
