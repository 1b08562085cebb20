//! `cargo xtask fuzz`: a short run of every cargo-fuzz target (fuzz/, docs/fuzzing.md) on its
//! committed corpus, failing if any target crashes.
//!
//! cargo-fuzz needs nightly flags (`-Zsanitizer`, sanitizer coverage); on the stable toolchain
//! `RUSTC_BOOTSTRAP=1` lets them through. The targets build in a target directory of their own
//! ($DPCOT_FUZZ_TARGET_DIR, default: `fuzz` in $CARGO_TARGET_DIR, else fuzz/target): their
//! instrumented dependencies (burn among them) share nothing with the workspace's build, and a
//! kept directory makes the next run's build take seconds instead of many minutes.
//!
//! New inputs a run finds go to a scratch corpus directory, not to the committed corpus: a
//! short run is a check, not corpus maintenance (docs/fuzzing.md says how to grow the corpus).

use std::ffi::OsString;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::{cargo_program, workspace_root};

#[derive(Args)]
pub struct FuzzArgs {
    /// Seconds each target runs (libFuzzer's `-max_total_time`).
    /// At least 1: libFuzzer reads 0 as "no limit".
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    seconds: u64,
    /// The targets to run, e.g. `--target checker --target profile` [default: all of
    /// `cargo fuzz list`].
    #[arg(long)]
    target: Vec<String>,
}

/// libFuzzer's limit on one input's run time, in seconds: longer is reported as a crash (a
/// hang). Inputs are small, so this is generous even on a busy machine.
const TIMEOUT_SECONDS: u64 = 30;

pub fn fuzz(args: FuzzArgs) -> Result<()> {
    let root = workspace_root()?;
    let fuzz_dir = root.join("fuzz");
    let target_dir = match std::env::var_os("DPCOT_FUZZ_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => match std::env::var_os("CARGO_TARGET_DIR") {
            Some(dir) => PathBuf::from(dir).join("fuzz"),
            None => fuzz_dir.join("target"),
        },
    };
    let known = list_targets(&fuzz_dir)?;
    if known.is_empty() {
        bail!("{} has no fuzz targets", fuzz_dir.display());
    }
    if let Some(unknown) = args.target.iter().find(|target| !known.contains(target)) {
        bail!(
            "no fuzz target `{unknown}` in {}; the targets are {}",
            fuzz_dir.display(),
            known.join(", ")
        );
    }
    let targets = if args.target.is_empty() {
        known
    } else {
        args.target
    };
    ensure_cargo_fuzz()?;

    let started = Instant::now();
    cargo_fuzz(
        &root,
        &[
            "build".into(),
            "--target-dir".into(),
            target_dir.clone().into(),
        ],
        None,
        &[],
    )?;
    eprintln!(
        "built the fuzz targets in {:.0} s",
        started.elapsed().as_secs_f64()
    );

    let scratch = target_dir.join("xtask-fuzz");
    let mut summary = Vec::new();
    for target in &targets {
        let corpus = fuzz_dir.join("corpus").join(target);
        if !corpus.is_dir() {
            bail!(
                "no corpus for the fuzz target `{target}` ({})",
                corpus.display()
            );
        }
        let new_inputs = scratch.join("corpus").join(target);
        if new_inputs.exists() {
            fs::remove_dir_all(&new_inputs)
                .with_context(|| format!("removing {}", new_inputs.display()))?;
        }
        fs::create_dir_all(&new_inputs)
            .with_context(|| format!("creating {}", new_inputs.display()))?;
        let log = scratch.join(format!("{target}.log"));
        let run_args: Vec<OsString> = vec![
            "run".into(),
            "--target-dir".into(),
            target_dir.clone().into(),
            target.into(),
            // New inputs go to the first directory; the committed corpus is only read.
            new_inputs.into(),
            corpus.into(),
            "--".into(),
            format!("-max_total_time={}", args.seconds).into(),
            format!("-timeout={TIMEOUT_SECONDS}").into(),
            "-print_final_stats=1".into(),
        ];
        let outcome = cargo_fuzz(&root, &run_args, Some(&log), &run_environment());
        let output = fs::read_to_string(&log).unwrap_or_default();
        if let Err(err) = outcome {
            eprintln!("--- the end of {} ---", log.display());
            let lines: Vec<&str> = output.lines().collect();
            for line in &lines[lines.len().saturating_sub(60)..] {
                eprintln!("{line}");
            }
            return Err(err.context(format!(
                "the fuzz target `{target}` failed; the input that crashed it is in {} \
                 (`cargo fuzz run {target} <file>` reproduces it)",
                fuzz_dir.join("artifacts").join(target).display()
            )));
        }
        let runs = executions(&output)
            .with_context(|| format!("no execution count in {}", log.display()))?;
        eprintln!(
            "{target}: {runs} executions in {} s, no crash",
            args.seconds
        );
        summary.push((target.clone(), runs));
    }

    println!(
        "fuzz: {} targets, {} s each, no crash",
        targets.len(),
        args.seconds
    );
    for (target, runs) in summary {
        println!("  {target:<20} {runs:>12} executions");
    }
    Ok(())
}

/// Installs cargo-fuzz with `cargo install --locked` unless `cargo fuzz` already runs.
fn ensure_cargo_fuzz() -> Result<()> {
    let cargo = cargo_program();
    let installed = Command::new(&cargo)
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|output| output.status.success());
    if installed {
        return Ok(());
    }
    eprintln!("$ cargo install cargo-fuzz --locked");
    let status = Command::new(&cargo)
        .args(["install", "cargo-fuzz", "--locked"])
        .status()
        .with_context(|| format!("running {cargo}"))?;
    if !status.success() {
        bail!("installing cargo-fuzz failed ({status})");
    }
    Ok(())
}

/// The fuzz targets, as `cargo fuzz list` names them: the files of `fuzz/fuzz_targets/`, each
/// a `[[bin]]` of fuzz/Cargo.toml. Read here rather than from `cargo fuzz list`, so that a
/// target name is checked before cargo-fuzz is installed or anything is built.
fn list_targets(fuzz_dir: &Path) -> Result<Vec<String>> {
    let dir = fuzz_dir.join("fuzz_targets");
    let mut targets = Vec::new();
    for entry in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "rs") {
            if let Some(stem) = path.file_stem() {
                targets.push(stem.to_string_lossy().into_owned());
            }
        }
    }
    targets.sort();
    Ok(targets)
}

/// The environment of a target's run, where the user has not set it:
/// - `TMPDIR` on `/dev/shm` if there is one. Most targets write their input to a file in the
///   temporary directory and some write datasets, each synced to disk; on a disk-backed `/tmp`
///   the syncs take most of the time (the reference-format target: 375 executions a second
///   against 1,580 on a tmpfs).
/// - `ASAN_OPTIONS` that skip recording an allocation stack for every `malloc`, which otherwise
///   takes a third of the time; memory errors are still detected, with shorter reports.
fn run_environment() -> Vec<(&'static str, OsString)> {
    let mut env = Vec::new();
    let shm = Path::new("/dev/shm");
    if std::env::var_os("TMPDIR").is_none() && shm.is_dir() {
        env.push(("TMPDIR", shm.into()));
    }
    if std::env::var_os("ASAN_OPTIONS").is_none() {
        env.push((
            "ASAN_OPTIONS",
            "malloc_context_size=0:quarantine_size_mb=16:detect_leaks=0".into(),
        ));
    }
    env
}

/// Runs `cargo fuzz <args>` in the workspace `root` (cargo-fuzz takes the `fuzz/` beside the
/// manifest it finds there) with `RUSTC_BOOTSTRAP=1` and `env`, its output (libFuzzer's progress
/// lines) into `log` if given, failing if it fails.
fn cargo_fuzz(
    root: &Path,
    args: &[OsString],
    log: Option<&Path>,
    env: &[(&str, OsString)],
) -> Result<()> {
    let shown: Vec<String> = args.iter().map(|a| a.to_string_lossy().into()).collect();
    let shown_env: String = env
        .iter()
        .map(|(key, value)| format!("{key}={} ", value.to_string_lossy()))
        .collect();
    eprintln!(
        "$ {shown_env}RUSTC_BOOTSTRAP=1 cargo fuzz {}{}",
        shown.join(" "),
        log.map(|log| format!(" > {}", log.display()))
            .unwrap_or_default()
    );
    let mut command = Command::new(cargo_program());
    command
        .arg("fuzz")
        .args(args)
        .current_dir(root)
        .env("RUSTC_BOOTSTRAP", "1")
        .envs(env.iter().map(|(key, value)| (key, value)));
    if let Some(log) = log {
        if let Some(dir) = log.parent() {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let file = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        command.stdout(file.try_clone()?).stderr(file);
    }
    let status = command.status().context("running cargo fuzz")?;
    if !status.success() {
        bail!("`cargo fuzz {}` failed ({status})", shown.join(" "));
    }
    Ok(())
}

/// The executions of a libFuzzer run: its closing `Done N runs in S second(s)`, or else the
/// `stat::number_of_executed_units` of `-print_final_stats`.
fn executions(output: &str) -> Option<u64> {
    output.lines().rev().find_map(|line| {
        if let Some(rest) = line.strip_prefix("Done ") {
            return rest.split_whitespace().next()?.parse().ok();
        }
        line.strip_prefix("stat::number_of_executed_units:")?
            .trim()
            .parse()
            .ok()
    })
}
