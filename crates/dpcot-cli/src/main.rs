//! `dpcot`: the single steps of the toolkit. `cargo xtask reproduce` drives whole experiments.

mod interop;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use dpcot_analysis::profile::Profile;
use dpcot_analysis::sweep::{Results, SweepOptions};
use dpcot_model::dpcot_attention::{AttentionKind, SparsePattern};
use dpcot_model::ModelConfig;
use dpcot_tasks::{dataset, Dataset, DpTask, GenerateConfig, TaskOptions, TaskSpec};
use dpcot_train::bench::BenchSpec;
use dpcot_train::{Backend, DataSource, EvalMetrics, RunConfig, RunDir, TrainConfig, TrainOptions};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;

/// Training frees and reallocates multi-megabyte tensors every step; mimalloc keeps them
/// mapped where glibc's malloc returns them to the kernel (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Train a model on a task (generating data on the fly unless --data is given).
    Train(Box<TrainArgs>),
    /// Evaluate a trained run on its whole test split, or a reference checkpoint (--checkpoint).
    Eval(EvalArgs),
    /// Convert the reference benchmark's data files into a dpcot dataset, verifying every example.
    Import(interop::ImportArgs),
    /// Write a dpcot dataset in the reference benchmark's layout.
    Export(interop::ExportArgs),
    /// Train the run described by a run config file (the `config.json` of a run directory).
    TrainConfig(TrainConfigArgs),
    /// Run an experiment profile: minimal-dimension searches over tasks, sizes and models.
    Sweep(SweepArgs),
    /// Write report.md, tables and figures from the records of one or more results directories.
    Report(ReportArgs),
    /// Time a training step, a forward pass and cached decoding of one model shape
    /// (`cargo xtask bench` runs a grid of these beside PyTorch).
    Bench(BenchArgs),
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
    /// A dataset file written by `dpcot generate` (or a reference file with --format cot-benchmark).
    file: PathBuf,
    #[command(flatten)]
    interop: interop::CheckFormatArgs,
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
        Command::Train(args) => train(*args, cli.quiet),
        Command::Eval(args) => eval(args),
        Command::Import(args) => interop::import(args),
        Command::Export(args) => interop::export(args),
        Command::TrainConfig(args) => train_config(args, cli.quiet),
        Command::Sweep(args) => sweep(args, cli.quiet),
        Command::Report(args) => report(args),
        Command::Bench(args) => bench(args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", error_chain(&err));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, leaving out a cause whose text the message already holds (our
/// error types print their source inline).
fn error_chain(err: &anyhow::Error) -> String {
    let mut message = err.to_string();
    for cause in err.chain().skip(1) {
        let cause = cause.to_string();
        if !message.contains(&cause) {
            message.push_str(": ");
            message.push_str(&cause);
        }
    }
    message
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
    if let Some(outcome) = interop::check(&args.file, &args.interop) {
        return outcome;
    }
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

#[derive(Args)]
struct BenchArgs {
    #[command(flatten)]
    attention: AttentionArgs,
    #[arg(long, default_value_t = 128)]
    d_model: usize,
    #[arg(long, default_value_t = 128)]
    seq_len: usize,
    #[arg(long, default_value_t = 32)]
    batch: usize,
    #[arg(long, default_value_t = 3)]
    layers: usize,
    #[arg(long, default_value_t = 4)]
    heads: usize,
    #[arg(long, default_value_t = 64)]
    vocab: usize,
    /// Untimed repetitions of each measurement.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Timed repetitions of each measurement (the median is reported).
    #[arg(long, default_value_t = 3)]
    iterations: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Time the operations a training step is made of instead, one by one.
    #[arg(long)]
    ops: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    backend: BackendArgs,
}

/// Which model (attention variant), and its knobs.
#[derive(Args)]
struct AttentionArgs {
    /// standard (softmax), sparse, linear or sliding.
    #[arg(long, default_value = "standard")]
    model: String,
    /// Sparse block size [default: ceil(sqrt(max length))].
    #[arg(long)]
    block_size: Option<usize>,
    /// Sliding-window width (with --model sliding).
    #[arg(long)]
    attention_window: Option<usize>,
}

impl AttentionArgs {
    fn kind(&self) -> Result<AttentionKind> {
        Ok(match self.model.as_str() {
            "standard" | "softmax" => AttentionKind::Softmax,
            "sparse" => AttentionKind::Sparse {
                block_size: self.block_size,
                summary_width: 1,
                pattern: SparsePattern::Fixed,
            },
            "linear" => AttentionKind::Linear {
                chunk_size: 64,
                eps: 1e-6,
            },
            "sliding" | "sliding-window" => AttentionKind::SlidingWindow {
                window: self
                    .attention_window
                    .context("--model sliding needs --attention-window")?,
            },
            other => {
                bail!("unknown model `{other}` (expected standard, sparse, linear or sliding)")
            }
        })
    }
}

#[derive(Args)]
struct TrainArgs {
    #[command(flatten)]
    task: TaskArgs,
    #[command(flatten)]
    attention: AttentionArgs,
    /// Embedding dimension.
    #[arg(long, default_value_t = 64)]
    d_model: usize,
    #[arg(long, default_value_t = 3)]
    layers: usize,
    #[arg(long, default_value_t = 4)]
    heads: usize,
    #[arg(long, default_value_t = 0.1)]
    dropout: f64,
    #[arg(long, default_value_t = 3000)]
    steps: usize,
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    #[arg(long, default_value_t = 0.01)]
    weight_decay: f64,
    /// Clip the gradient norm.
    #[arg(long)]
    grad_clip: Option<f64>,
    /// Evaluate every N steps [default: steps / 10].
    #[arg(long)]
    eval_every: Option<usize>,
    /// Test examples per intermediate evaluation.
    #[arg(long, default_value_t = 500)]
    eval_examples: usize,
    /// Stop early once the headline accuracy reaches this fraction.
    #[arg(long)]
    target: Option<f64>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// A dataset directory from `dpcot generate`; otherwise data is generated.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Generated training examples (without --data).
    #[arg(long, default_value_t = 20_000)]
    train_examples: usize,
    /// Generated test examples (without --data).
    #[arg(long, default_value_t = 1_000)]
    test_examples: usize,
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

#[derive(Args)]
struct BackendArgs {
    /// Backend among those compiled in: flex, ndarray, wgpu, cuda [default: the first compiled, GPUs first].
    #[arg(long)]
    backend: Option<String>,
}

impl BackendArgs {
    fn backend(&self) -> Result<Backend> {
        match &self.backend {
            Some(name) => Ok(name.parse()?),
            None => Backend::default_compiled()
                .context("no backend compiled in; build with --features flex"),
        }
    }
}

#[derive(Args)]
struct EvalArgs {
    /// A run directory written by `dpcot train`.
    #[arg(long, required_unless_present = "checkpoint")]
    run: Option<PathBuf>,
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    #[command(flatten)]
    backend: BackendArgs,
    #[command(flatten)]
    reference: interop::CheckpointArgs,
}

fn bench(args: BenchArgs) -> Result<()> {
    let backend = args.backend.backend()?;
    let mut spec = BenchSpec::new(
        args.attention.kind()?,
        args.d_model,
        args.seq_len,
        args.batch,
    );
    spec.n_layers = args.layers;
    spec.n_heads = args.heads;
    spec.vocab_size = args.vocab;
    spec.warmup = args.warmup;
    spec.iterations = args.iterations;
    spec.seed = args.seed;
    let device = backend.device()?;
    if args.ops {
        let ops = dpcot_train::bench::measure_ops(&spec, &device)?;
        if args.json {
            println!(
                "{}",
                serde_json::json!({ "backend": backend, "spec": spec, "ops": ops })
            );
        } else {
            for op in ops {
                println!("{:<24} {:>9.3} ms", op.op, 1e3 * op.seconds);
            }
        }
        return Ok(());
    }
    let timings = dpcot_train::bench::measure(&spec, &device)?;
    if args.json {
        let line = serde_json::json!({ "backend": backend, "spec": spec, "timings": timings });
        println!("{line}");
    } else {
        println!(
            "{backend} {} d_model={} seq_len={} batch={}: train step {:.3} s, forward {:.3} s, decode {:.0} tokens/s",
            args.attention.model,
            spec.d_model,
            spec.seq_len,
            spec.batch,
            timings.train_step_seconds,
            timings.forward_seconds,
            timings.decode_tokens_per_second,
        );
    }
    Ok(())
}

fn train(args: TrainArgs, quiet: bool) -> Result<()> {
    let task_spec = args.task.spec()?;
    let task = task_spec.build()?;
    let mut model = ModelConfig::new(
        task.vocab().len(),
        task.max_len(),
        args.d_model,
        args.attention.kind()?,
    );
    model.n_layers = args.layers;
    model.n_heads = args.heads;
    model.dropout = args.dropout;
    let mut train = TrainConfig::new(args.steps);
    train.batch_size = args.batch_size;
    train.learning_rate = args.lr;
    train.weight_decay = args.weight_decay;
    train.grad_clip_norm = args.grad_clip;
    train.eval_every = args.eval_every;
    train.eval_examples = args.eval_examples;
    train.target_accuracy = args.target;
    train.seed = args.seed;
    let data = match args.data {
        Some(path) => DataSource::Directory { path },
        None => DataSource::Generated {
            train: args.train_examples,
            test: args.test_examples,
            seed: args.seed,
        },
    };
    let config = RunConfig {
        task: task_spec,
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
            task.name(),
            config.model.attention.name(),
            config.model.d_model,
            dpcot_model::flops::parameters(&config.model),
            options.backend,
            args.out.display()
        );
    }
    run_and_print(&config, &args.out, &options)
}

fn run_and_print(config: &RunConfig, out: &std::path::Path, options: &TrainOptions) -> Result<()> {
    let summary = dpcot_train::train(&RunDir::new(out), config, options)?;
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
        RunDir::new(out).summary().display()
    );
    Ok(())
}

fn eval(args: EvalArgs) -> Result<()> {
    if let Some(outcome) =
        interop::eval(&args.reference, args.batch_size, || args.backend.backend())
    {
        return outcome;
    }
    let dir = RunDir::new(
        args.run
            .as_ref()
            .context("--run or --checkpoint is required")?,
    );
    let (task, metrics) =
        dpcot_train::evaluate_run(&dir, args.backend.backend()?, args.batch_size)?;
    let steps = dir.read_summary().map(|s| s.steps).unwrap_or(0);
    print_eval(&format!("{} after {steps} steps", task.name()), &metrics);
    Ok(())
}

/// One evaluation as a person reads it; `heading` says what was evaluated.
fn print_eval(heading: &str, m: &EvalMetrics) {
    println!(
        "{heading}, {} test examples: headline ({:?}) {:.1}% | answer {:.1}% | chain {:.1}% | teacher-forced {:.1}% | well-formed {:.1}% | decode {:.0} tokens/s",
        m.examples,
        m.headline_metric,
        100.0 * m.headline,
        100.0 * m.answer_accuracy,
        100.0 * m.chain_accuracy,
        100.0 * m.teacher_forced_accuracy,
        100.0 * m.well_formed,
        m.decode_tokens_per_second
    );
    if !m.first_wrong_step.is_empty() {
        println!(
            "first wrong step (free generation): {:?}; kinds {:?}",
            m.first_wrong_step, m.first_wrong_kind
        );
    }
}

#[derive(Args)]
struct TrainConfigArgs {
    /// A run config (JSON), as written to `config.json` of a run directory.
    config: PathBuf,
    /// Run directory.
    #[arg(long)]
    out: PathBuf,
    /// Continue the run in --out from its last checkpoint.
    #[arg(long)]
    resume: bool,
    #[command(flatten)]
    backend: BackendArgs,
}

fn train_config(args: TrainConfigArgs, quiet: bool) -> Result<()> {
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("reading {}", args.config.display()))?;
    let config: RunConfig = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a valid run config", args.config.display()))?;
    let options = TrainOptions {
        backend: args.backend.backend()?,
        resume: args.resume,
        quiet,
        halt_after: None,
    };
    run_and_print(&config, &args.out, &options)
}

#[derive(Args)]
struct SweepArgs {
    /// An experiment profile (e.g. configs/profiles/quick.toml).
    #[arg(long)]
    profile: PathBuf,
    /// Results directory: records/, runs/, logs/ (resumable: finished runs are skipped).
    #[arg(long)]
    results: PathBuf,
    /// Run only shard i of N (1-based), e.g. 2/8; merge with `dpcot report`.
    #[arg(long)]
    shard: Option<String>,
    /// Train every dimension of the grid instead of bisecting.
    #[arg(long)]
    full_grid: bool,
    /// Searches run at once, each run in a process of its own [default: the number of cores on
    /// a CPU backend, 1 on a GPU].
    #[arg(long)]
    jobs: Option<usize>,
    /// Only this experiment (general or locality); repeatable. Default: all in the profile.
    #[arg(long)]
    experiment: Vec<String>,
    #[command(flatten)]
    backend: BackendArgs,
}

fn sweep(args: SweepArgs, quiet: bool) -> Result<()> {
    let profile = Profile::load(&args.profile)?;
    let backend = args.backend.backend()?;
    // Small CPU runs use about one core each; GPU runs share one device, so one at a time.
    let default_jobs = match backend {
        Backend::Wgpu | Backend::Cuda => 1,
        Backend::Flex | Backend::Ndarray => {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
    };
    let options = SweepOptions {
        results: Results::new(&args.results),
        worker: std::env::current_exe().context("locating the dpcot executable")?,
        backend: backend.to_string(),
        shard: args
            .shard
            .as_deref()
            .map(dpcot_analysis::sweep::parse_shard)
            .transpose()?,
        full_grid: args.full_grid,
        jobs: args.jobs.unwrap_or(default_jobs),
        experiments: args.experiment,
        quiet,
    };
    let outcome = dpcot_analysis::sweep::run_sweep(&profile, &options)?;
    println!(
        "{}: {} runs trained, {} already recorded, in {}",
        profile.name,
        outcome.trained,
        outcome.reused,
        args.results.display()
    );
    Ok(())
}

#[derive(Args)]
struct ReportArgs {
    /// The profile the results were produced with [default: the copy a sweep keeps in the
    /// first results directory].
    #[arg(long)]
    profile: Option<PathBuf>,
    /// Results directories (shards of one sweep are merged).
    #[arg(long, required = true, num_args = 1..)]
    results: Vec<PathBuf>,
    /// Where to write report.md, figures/ and tables/ [default: the first results directory].
    #[arg(long)]
    out: Option<PathBuf>,
}

fn report(args: ReportArgs) -> Result<()> {
    let results: Vec<Results> = args.results.iter().map(Results::new).collect();
    let profile = Profile::load(&args.profile.unwrap_or_else(|| results[0].profile()))?;
    let out = args.out.unwrap_or_else(|| args.results[0].clone());
    let files = dpcot_analysis::report::write_report(&profile, &results, &out)?;
    println!(
        "{} ({} figures, {} tables)",
        files.report.display(),
        files.figures.len(),
        files.tables.len()
    );
    Ok(())
}
