//! `dpcot`: the single steps of the toolkit, each a module of its own; `cargo xtask reproduce`
//! builds this binary and runs `dpcot sweep`.

mod args;
mod bench;
mod check;
mod eval;
mod generate;
mod interop;
mod report;
mod runtime;
mod show;
mod sweep;
mod train;
mod worker;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    Generate(generate::GenerateArgs),
    /// Verify every example of a dataset file with the task's CoT checker.
    Check(check::CheckArgs),
    /// Print a few examples of a task, with its vocabulary and maximum length.
    Show(show::ShowArgs),
    /// Train a model on a task (generating data on the fly unless --data is given).
    Train(Box<train::TrainArgs>),
    /// Evaluate a trained run on its whole test split, or a reference checkpoint (--checkpoint).
    Eval(eval::EvalArgs),
    /// Convert the reference benchmark's data files into a dpcot dataset, verifying every example.
    Import(interop::ImportArgs),
    /// Write a dpcot dataset in the reference benchmark's layout.
    Export(interop::ExportArgs),
    /// Run an experiment profile (minimal-dimension searches over tasks, sizes and models),
    /// then write its report.
    Sweep(sweep::SweepArgs),
    /// Write report.md, tables and figures from the records of one or more results directories.
    Report(report::ReportArgs),
    /// Time a training step, a forward pass and cached decoding of one model shape
    /// (`cargo xtask bench` runs a grid of these beside PyTorch).
    Bench(bench::BenchArgs),
    /// Execute one run job file, as a sweep does for each of its runs.
    Worker(worker::WorkerArgs),
}

fn main() -> ExitCode {
    runtime::keep_freed_memory();
    let cli = Cli::parse();
    let quiet = cli.quiet;
    let outcome = runtime::on_pool(move || run(cli.command, quiet)).and_then(|outcome| outcome);
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", args::error_chain(&err));
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command, quiet: bool) -> anyhow::Result<()> {
    match command {
        Command::Generate(args) => generate::run(args, quiet),
        Command::Check(args) => check::run(args, quiet),
        Command::Show(args) => show::run(args),
        Command::Train(args) => train::run(*args, quiet),
        Command::Eval(args) => eval::run(args),
        Command::Import(args) => interop::import(args),
        Command::Export(args) => interop::export(args),
        Command::Sweep(args) => sweep::run(args, quiet),
        Command::Report(args) => report::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Worker(args) => worker::run(args),
    }
}
