//! Project automation, run as `cargo xtask <task>`.
//!
//! Each task is a function; `cargo xtask --help` lists them, `cargo xtask <task> --help` their
//! options.

mod bench;
mod fuzz;
mod slurm;
mod to_accuracy;

use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};

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
    /// Reproduce the paper's experiment end to end: builds `dpcot`, then runs `dpcot sweep`
    /// (the sweep, then its report) with the arguments given, unchanged. Default: the quick
    /// profile on the CPU. `cargo xtask reproduce --help` lists the sweep's options.
    Reproduce(PassThrough),
    /// Merge the records of one or more results directories (e.g. shards) into one report:
    /// `dpcot report` with the arguments given, unchanged.
    Report(PassThrough),
    /// Time dpcot against the same model in PyTorch (bench/torch_bench.py): training step,
    /// forward pass and cached decoding per model and shape, as dpcot ÷ PyTorch ratios; with
    /// `--to-accuracy`, the training time each needs to reach 90 % on LIS.
    Bench(bench::BenchArgs),
    /// What CI checks: formatting, clippy with warnings denied, and the whole test suite.
    Ci(CiArgs),
    /// docs/scale-out.md's Slurm route on a real one-node cluster on this machine (Linux, as
    /// root; installs Debian's slurm-wlm and munge if missing): submits deploy/slurm/'s sbatch
    /// files with the smoke profile, checks the merged results against a single-machine run,
    /// again after cancelling an array task mid-run and resubmitting it, then stops the cluster.
    SlurmTest(slurm::SlurmTestArgs),
    /// A short run of every cargo-fuzz target (fuzz/) on its committed corpus: installs
    /// cargo-fuzz if missing, fails if any target crashes, prints each target's executions
    /// (docs/fuzzing.md).
    Fuzz(fuzz::FuzzArgs),
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

/// A `dpcot` subcommand's arguments, passed through as they are; only `--features` (anywhere
/// among them) is the xtask's own.
#[derive(Args)]
#[command(disable_help_flag = true)]
struct PassThrough {
    /// The arguments of the `dpcot` subcommand, and `--features F` for the build.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

impl PassThrough {
    /// The build's features and the subcommand's arguments.
    fn split(self) -> Result<(BuildArgs, Vec<String>)> {
        let mut features = None;
        let mut rest = Vec::new();
        let mut args = self.args.into_iter();
        while let Some(arg) = args.next() {
            if arg == "--features" {
                features = Some(args.next().context("--features needs a value")?);
            } else if let Some(value) = arg.strip_prefix("--features=") {
                features = Some(value.to_string());
            } else {
                rest.push(arg);
            }
        }
        Ok((BuildArgs { features }, rest))
    }
}

fn main() -> ExitCode {
    let outcome = match Xtask::parse().task {
        Task::Reproduce(args) => pass_through("sweep", args),
        Task::Report(args) => pass_through("report", args),
        Task::Bench(args) => bench::bench(args),
        Task::Ci(args) if args.wgpu => ci_wgpu(),
        Task::Ci(_) => ci(),
        Task::SlurmTest(args) => slurm::slurm_test(args),
        Task::Fuzz(args) => fuzz::fuzz(args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace this xtask was started from. `cargo run` sets `CARGO_MANIFEST_DIR` for the
/// process it starts; the compile-time value is only the fallback, because a binary kept in a
/// shared target directory may have been built from another checkout.
fn workspace_root() -> Result<PathBuf> {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    Ok(manifest_dir
        .parent()
        .context("xtask lives inside the workspace")?
        .to_path_buf())
}

/// Builds `dpcot`, then runs `dpcot <subcommand> <args>` directly.
fn pass_through(subcommand: &str, args: PassThrough) -> Result<()> {
    let (build, args) = args.split()?;
    let dpcot = build_dpcot(&build)?;
    eprintln!("$ {} {subcommand} {}", dpcot.display(), args.join(" "));
    let status = Command::new(&dpcot)
        .arg(subcommand)
        .args(&args)
        .status()
        .with_context(|| format!("running {}", dpcot.display()))?;
    if !status.success() {
        bail!("`dpcot {subcommand}` failed ({status})");
    }
    Ok(())
}

/// Builds the `dpcot` binary, with cargo's progress in view, and returns its path.
///
/// It builds what `cargo test --workspace` builds (all targets of the workspace): cargo
/// resolves features per selection, so building the binary alone (`-p dpcot-cli`, or
/// `--bins`) would compile burn a second time with another feature set.
fn build_dpcot(build: &BuildArgs) -> Result<PathBuf> {
    let mut args: Vec<String> = [
        "build",
        "--workspace",
        "--all-targets",
        "--message-format=json-render-diagnostics",
    ]
    .map(String::from)
    .to_vec();
    if let Some(features) = &build.features {
        // Features of the binary's package, whichever way they were written.
        let features: Vec<String> = features
            .split(',')
            .map(|f| match f.trim() {
                f if f.contains('/') => f.to_string(),
                f => format!("dpcot-cli/{f}"),
            })
            .collect();
        args.extend(["--features".to_string(), features.join(",")]);
    }
    eprintln!(
        "building dpcot (cargo {}); the first build compiles burn and takes several minutes",
        args.join(" ")
    );
    let cargo = cargo_program();
    // Progress and diagnostics go to stderr as usual; stdout carries the JSON messages, one of
    // which names the executable.
    let output = Command::new(&cargo)
        .args(&args)
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {cargo}"))?;
    if !output.status.success() {
        bail!("building dpcot failed ({})", output.status);
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Artifact>(line).ok())
        .find(|a| a.target.name == "dpcot" && a.target.kind == ["bin"] && !a.profile.test)
        .and_then(|artifact| artifact.executable)
        .context("cargo built no dpcot executable")
}

/// The parts of cargo's `compiler-artifact` message that name a target's executable.
#[derive(serde::Deserialize)]
struct Artifact {
    target: ArtifactTarget,
    /// Set for the binary's unit-test harness, which has the binary's name too.
    profile: ArtifactProfile,
    executable: Option<PathBuf>,
}

#[derive(serde::Deserialize)]
struct ArtifactProfile {
    test: bool,
}

#[derive(serde::Deserialize)]
struct ArtifactTarget {
    name: String,
    kind: Vec<String>,
}

/// What `.ci/run` runs, with the same `--locked`, less its Slurm test (`cargo xtask slurm-test`,
/// which needs root).
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
