//! Project automation, run as `cargo xtask <task>`.
//!
//! Each task is a function; `cargo xtask --help` lists them, `cargo xtask <task> --help` their
//! options.

mod bench;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "dpcot project automation")]
struct Xtask {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Reproduce the paper's experiment (and the locality one) end to end: sweep, then report.
    Reproduce(ReproduceArgs),
    /// Merge the records of one or more results directories (e.g. shards) into one report.
    Report(ReportArgs),
    /// Time dpcot against the same model in PyTorch (bench/torch_bench.py): training step,
    /// forward pass and cached decoding per model and shape, as dpcot ÷ PyTorch ratios.
    Bench(bench::BenchArgs),
    /// What CI checks: formatting, clippy with warnings denied, and the whole test suite.
    Ci(CiArgs),
}

#[derive(Args)]
struct CiArgs {
    /// Instead, the wgpu backend's tests on a real Vulkan driver: installs Mesa's software
    /// driver lavapipe if missing (tools/install-lavapipe.sh; Linux, apt), then runs the
    /// attention suite, the cached-vs-full decoding tests and the smoke reproduce with
    /// `--features wgpu` and `BURN_DEVICE=wgpu`, in their own target directory
    /// ($DPCOT_WGPU_TARGET_DIR, default: `wgpu` in the usual one) so that they never rebuild the
    /// default build's artefacts.
    #[arg(long)]
    wgpu: bool,
}

#[derive(Args)]
struct BuildArgs {
    /// Cargo features of the dpcot binary, e.g. `wgpu` or `cuda` (GPU backends are preferred
    /// over the CPU ones when compiled in).
    #[arg(long)]
    features: Option<String>,
}

#[derive(Args)]
struct ReproduceArgs {
    /// smoke (~1 minute, CI), quick (the default, ≤ 30 minutes on a 2-core laptop) or paper
    /// (the paper's sizes, for GPUs); or a path to a profile file.
    #[arg(long, default_value = "quick")]
    profile: String,
    /// Results directory [default: results/<profile>].
    #[arg(long)]
    results: Option<PathBuf>,
    /// Run only shard i of N (1-based), e.g. `--shard 3/8`; no report is written, merge the
    /// shards with `cargo xtask report`.
    #[arg(long)]
    shard: Option<String>,
    /// Train the whole dimension grid instead of bisecting for the minimal dimension.
    #[arg(long)]
    full_grid: bool,
    /// Only this experiment: general (the paper's Figure 1) or locality. Repeatable.
    #[arg(long)]
    experiment: Vec<String>,
    /// Backend among those compiled in (flex, ndarray, wgpu, cuda).
    #[arg(long)]
    backend: Option<String>,
    /// Searches run at once [default: the number of cores on a CPU backend, 1 on a GPU].
    #[arg(long)]
    jobs: Option<usize>,
    #[command(flatten)]
    build: BuildArgs,
}

#[derive(Args)]
struct ReportArgs {
    /// Results directories to merge.
    #[arg(long, required = true, num_args = 1..)]
    results: Vec<PathBuf>,
    /// Where to write the report [default: the first results directory].
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    build: BuildArgs,
}

fn main() -> ExitCode {
    let outcome = match Xtask::parse().task {
        Task::Reproduce(args) => reproduce(args),
        Task::Report(args) => report(args),
        Task::Bench(args) => bench::bench(args),
        Task::Ci(args) if args.wgpu => ci_wgpu(),
        Task::Ci(_) => ci(),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn workspace_root() -> Result<PathBuf> {
    Ok(Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("xtask lives inside the workspace")?
        .to_path_buf())
}

fn profile_path(profile: &str) -> Result<PathBuf> {
    let as_path = PathBuf::from(profile);
    if as_path.extension().is_some_and(|e| e == "toml") {
        return Ok(as_path);
    }
    let path = workspace_root()?
        .join("configs/profiles")
        .join(format!("{profile}.toml"));
    if !path.exists() {
        bail!(
            "no profile `{profile}` ({} does not exist); the profiles are smoke, quick and paper",
            path.display()
        );
    }
    Ok(path)
}

fn reproduce(args: ReproduceArgs) -> Result<()> {
    let profile = profile_path(&args.profile)?;
    let name = profile
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("profile")
        .to_string();
    let results = args
        .results
        .unwrap_or_else(|| PathBuf::from("results").join(&name));
    let mut sweep: Vec<String> = vec![
        "sweep".into(),
        "--profile".into(),
        profile.display().to_string(),
        "--results".into(),
        results.display().to_string(),
    ];
    if let Some(shard) = &args.shard {
        sweep.extend(["--shard".into(), shard.clone()]);
    }
    if args.full_grid {
        sweep.push("--full-grid".into());
    }
    for e in &args.experiment {
        sweep.extend(["--experiment".into(), e.clone()]);
    }
    if let Some(backend) = &args.backend {
        sweep.extend(["--backend".into(), backend.clone()]);
    }
    if let Some(jobs) = args.jobs {
        sweep.extend(["--jobs".into(), jobs.to_string()]);
    }
    dpcot(&args.build, &sweep)?;
    if args.shard.is_some() {
        eprintln!(
            "shard done; merge all shards with: cargo xtask report --results {}",
            results.display()
        );
        return Ok(());
    }
    dpcot(
        &args.build,
        &[
            "report".into(),
            "--results".into(),
            results.display().to_string(),
        ],
    )
}

fn report(args: ReportArgs) -> Result<()> {
    let mut command: Vec<String> = vec!["report".into(), "--results".into()];
    command.extend(args.results.iter().map(|r| r.display().to_string()));
    if let Some(out) = &args.out {
        command.extend(["--out".into(), out.display().to_string()]);
    }
    dpcot(&args.build, &command)
}

/// Runs the `dpcot` binary through `cargo run`, in the one build profile of the workspace.
fn dpcot(build: &BuildArgs, args: &[String]) -> Result<()> {
    let mut cargo_args: Vec<String> = vec![
        "run".into(),
        "--quiet".into(),
        "-p".into(),
        "dpcot-cli".into(),
    ];
    if let Some(features) = &build.features {
        cargo_args.extend(["--features".into(), features.clone()]);
    }
    cargo_args.push("--".into());
    cargo_args.extend(args.iter().cloned());
    let refs: Vec<&str> = cargo_args.iter().map(String::as_str).collect();
    cargo(&refs)
}

/// What `.ci/run` runs, with the same `--locked`.
fn ci() -> Result<()> {
    cargo(&["fmt", "--all", "--", "--check"])?;
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--locked",
        "--",
        "-D",
        "warnings",
    ])?;
    cargo(&["test", "--workspace", "--locked"])
}

/// The wgpu tests (see `CiArgs::wgpu`): a few minutes on lavapipe once built, so the selection
/// is what the backend changes — kernels against their references, cached against full
/// decoding, one whole smoke sweep and report — and not the backend-independent rest.
fn ci_wgpu() -> Result<()> {
    let root = workspace_root()?;
    if cfg!(target_os = "linux") {
        let script = root.join("tools/install-lavapipe.sh");
        eprintln!("$ {}", script.display());
        let status = Command::new("bash")
            .arg(&script)
            .status()
            .with_context(|| format!("running {}", script.display()))?;
        if !status.success() {
            bail!("{} failed ({status})", script.display());
        }
    }
    let target_dir = match std::env::var_os("DPCOT_WGPU_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"))
            .join("wgpu"),
    };
    let envs = [
        ("CARGO_TARGET_DIR", target_dir.into_os_string()),
        // burn's own switch: every `Device::default()` is the wgpu device (or burn panics), and
        // the tests check it is.
        ("BURN_DEVICE", "wgpu".into()),
    ];
    cargo_with(
        &envs,
        &[
            "test",
            "--locked",
            "--features",
            "wgpu",
            "-p",
            "dpcot-attention",
            "-p",
            "dpcot-model",
            "-p",
            "dpcot-cli",
            "--test",
            "suite",
            "--test",
            "decode",
            "--test",
            "reproduce",
            "--",
            // Sweep bookkeeping, the same on every backend (and as long again as the smoke run).
            "--skip",
            "a_killed_sweep_resumes",
            // Prints the device under test (the adapter, e.g. `llvmpipe (LLVM …)`).
            "--show-output",
        ],
    )
}

/// Runs cargo in the current directory, failing if it fails.
fn cargo(args: &[&str]) -> Result<()> {
    cargo_with(&[], args)
}

/// The cargo that runs this xtask (`$CARGO`), else `cargo` from the PATH.
fn cargo_program() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string())
}

/// [`cargo`] with extra environment variables.
fn cargo_with(envs: &[(&str, std::ffi::OsString)], args: &[&str]) -> Result<()> {
    let cargo = cargo_program();
    let shown: Vec<String> = envs
        .iter()
        .map(|(k, v)| format!("{k}={} ", v.to_string_lossy()))
        .collect();
    eprintln!("$ {}cargo {}", shown.concat(), args.join(" "));
    let status = Command::new(&cargo)
        .args(args)
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .status()
        .with_context(|| format!("running {cargo}"))?;
    if !status.success() {
        bail!("`cargo {}` failed ({status})", args.join(" "));
    }
    Ok(())
}
