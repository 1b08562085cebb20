//! `cargo xtask slurm-test`: docs/scale-out.md's Slurm route on a real one-node cluster.
//!
//! It submits the repository's sbatch files (`deploy/slurm/`), the very ones the docs tell
//! users to submit, with the smoke profile on the CPU, and checks that what the array and its
//! report job produce equals a single-machine run of the same profile (`compare`): once
//! straight through, once with an array task cancelled mid-run and resubmitted on its own.

mod cluster;
mod compare;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use clap::Args;

use crate::BuildArgs;
use cluster::{Cluster, JobId, Programs, Task};
use compare::Outcome;

#[derive(Args)]
pub struct SlurmTestArgs {
    /// Where the cluster's configuration, its daemons' state and logs, the jobs' output and the
    /// results go; emptied first [default: slurm-test in the cargo target directory].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// The profile to run, a built-in name or a file.
    #[arg(long, default_value = "smoke")]
    profile: String,
    /// Array tasks, i.e. shards of the sweep.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(2..))]
    shards: u32,
    /// Longest wait, in seconds, for the node to come up and for each set of jobs to end.
    #[arg(long, default_value_t = 900)]
    timeout: u64,
}

/// A file in `dir` that says the directory is the Slurm test's, which it may empty.
const MARKER: &str = ".dpcot-slurm-test";

pub fn slurm_test(args: SlurmTestArgs) -> Result<()> {
    let started = Instant::now();
    let root = crate::workspace_root()?;
    let dir = match args.dir {
        Some(dir) => std::path::absolute(dir)?,
        None => std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"))
            .join("slurm-test"),
    };
    let profile = match Path::new(&args.profile) {
        file if file.is_file() => std::path::absolute(file)?.display().to_string(),
        _ => args.profile.clone(),
    };
    let timeout = Duration::from_secs(args.timeout);
    let mut times = Times::default();

    check_dir(&dir)?;
    cluster::require_root()?;
    let install_started = Instant::now();
    let (programs, installed) = Programs::find_or_install()?;
    if installed {
        times
            .0
            .push(("install slurm-wlm and munge", install_started.elapsed()));
    }
    prepare(&dir, &programs)?;
    eprintln!("== starting a one-node cluster in {}", dir.display());
    let cluster = times.take("daemons up, node idle", || {
        Cluster::start(programs, &dir.join("cluster"), timeout)
    })?;

    let test = Test {
        cluster: &cluster,
        root,
        dir,
        profile,
        shards: args.shards,
        timeout,
    };
    let dpcot = times.take("build dpcot", || {
        crate::build_dpcot(&BuildArgs { features: None })
    })?;
    let reference = times.take("reference: single-machine sweep", || test.reference(&dpcot))?;
    times.take("array + report job, compared", || test.array(&reference))?;
    let cancelled = times.take("scancel + resubmission, compared", || {
        test.cancel_and_resubmit(&reference)
    })?;
    times.take("stop the cluster", || cluster.stop())?;

    eprintln!(
        "\nSlurm test passed ({} shards of `{}`):",
        args.shards, args.profile
    );
    eprintln!("  {cancelled}");
    for (step, time) in &times.0 {
        eprintln!("  {step:<36} {:>6.1} s", time.as_secs_f64());
    }
    eprintln!(
        "  {:<36} {:>6.1} s",
        "total",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Refuses a test directory that holds something else than an earlier Slurm test's files,
/// which [`prepare`] would delete.
fn check_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        let ours = dir.join(MARKER).exists();
        let empty = std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .next()
            .is_none();
        ensure!(
            ours || empty,
            "{} is not empty and not a Slurm test's directory ({MARKER} is missing); give \
             another --dir",
            dir.display()
        );
    }
    Ok(())
}

/// Empties the test's directory, after stopping daemons a killed earlier test left running
/// from it; refuses a directory of something else.
fn prepare(dir: &Path, programs: &Programs) -> Result<()> {
    if dir.exists() {
        check_dir(dir)?;
        Cluster::stop_leftovers(programs, &dir.join("cluster"))?;
        std::fs::remove_dir_all(dir).with_context(|| format!("emptying {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir.join("jobs"))?;
    std::fs::write(dir.join(MARKER), "")?;
    Ok(())
}

/// Named durations, in order.
#[derive(Default)]
struct Times(Vec<(&'static str, Duration)>);

impl Times {
    /// Runs `step`, noting how long it took.
    fn take<T>(&mut self, name: &'static str, step: impl FnOnce() -> Result<T>) -> Result<T> {
        let started = Instant::now();
        let out = step().with_context(|| format!("Slurm test, step `{name}`"))?;
        self.0.push((name, started.elapsed()));
        Ok(out)
    }
}

struct Test<'a> {
    cluster: &'a Cluster,
    root: PathBuf,
    dir: PathBuf,
    profile: String,
    shards: u32,
    timeout: Duration,
}

impl Test<'_> {
    /// The profile run on this machine, as one sweep.
    fn reference(&self, dpcot: &Path) -> Result<Outcome> {
        let results = self.dir.join("reference");
        let log = self.dir.join("reference.log");
        eprintln!(
            "== reference: `dpcot sweep --profile {}` on this machine (log: {})",
            self.profile,
            log.display()
        );
        let file = std::fs::File::create(&log)?;
        let status = std::process::Command::new(dpcot)
            .args(["--quiet", "sweep", "--profile", &self.profile, "--results"])
            .arg(&results)
            .current_dir(&self.root)
            .stdout(file.try_clone()?)
            .stderr(file)
            .status()
            .with_context(|| format!("running {}", dpcot.display()))?;
        ensure!(
            status.success(),
            "the reference sweep failed ({status}):\n{}",
            tail(&log)
        );
        let outcome = Outcome::load(&results)?;
        eprintln!("   {} runs recorded", outcome.runs());
        Ok(outcome)
    }

    /// The array and its report job as the docs submit them; their results must equal the
    /// reference.
    fn array(&self, reference: &Outcome) -> Result<()> {
        let results = self.dir.join("array");
        eprintln!(
            "== the array and its report job, into {}",
            results.display()
        );
        let submitted = Instant::now();
        let array = self.submit_sweep(&results, &format!("1-{}", self.shards))?;
        let report = self.submit_report(&results, array)?;
        let tasks = self.cluster.wait(
            &[array, report],
            submitted,
            self.timeout,
            "the array and its report",
        )?;
        self.expect_states(&tasks, |_| "COMPLETED")?;
        let outcome = Outcome::load(&results)?;
        expect_equal(reference, &outcome, &results)?;
        eprintln!(
            "   records and report tables equal the reference's ({} runs)",
            outcome.runs()
        );
        // The same comparison sees a single changed value.
        let changed = compare::differences(reference, &outcome.with_one_record_changed()?);
        ensure!(
            changed.len() == 1,
            "one changed record should make exactly one difference, made {changed:?}"
        );
        eprintln!("   (and one changed record makes it fail: {})", changed[0]);
        Ok(())
    }

    /// The array and its report again, one task cancelled once it is training a run past its
    /// first checkpoint; then that task resubmitted alone, and the report again. Returns what
    /// was cancelled and how it came back.
    fn cancel_and_resubmit(&self, reference: &Outcome) -> Result<String> {
        let results = self.dir.join("scancel");
        eprintln!(
            "== the array again, into {}, one task cancelled mid-run",
            results.display()
        );
        let submitted = Instant::now();
        let array = self.submit_sweep(&results, &format!("1-{}", self.shards))?;
        let report = self.submit_report(&results, array)?;
        // A task found training past a checkpoint is suspended, and cancelled only if the run
        // is still unfinished once its processes have stopped: a cancel is never too late.
        let (index, run, first_metrics) = self.cluster.watch(
            &[array, report],
            submitted,
            self.timeout,
            "waiting for a task to be mid-run",
            |tasks| {
                if tasks.iter().filter(|t| t.job == array).all(Task::ended) {
                    bail!("every task of the array ended before one could be cancelled mid-run");
                }
                let Some(worker) = self.mid_run(array, &results) else {
                    return Ok(None);
                };
                let task = format!("{array}_{}", worker.index);
                self.cluster.suspend(&task, false)?;
                let started = Instant::now();
                while !stopped(worker.pid) {
                    ensure!(
                        started.elapsed() < Duration::from_secs(10),
                        "task {task} was suspended, but its worker (pid {}) did not stop",
                        worker.pid
                    );
                    std::thread::sleep(cluster::POLL);
                }
                if unfinished(&results, &worker.run) {
                    // Its first metrics line holds a measured speed: a run resumed from its
                    // checkpoint keeps the line, one trained again from step 0 would not.
                    let metrics = results.join("runs").join(&worker.run).join("metrics.jsonl");
                    return Ok(Some((worker.index, worker.run, first_line(&metrics)?)));
                }
                // The run ended before the task stopped; wait for another.
                self.cluster.suspend(&task, true)?;
                Ok(None)
            },
        )?;
        eprintln!(
            "   task {array}_{index} has finished a run and is suspended while training {run} \
             past its first checkpoint"
        );
        self.cluster.scancel(&format!("{array}_{index}"))?;
        let tasks = self.cluster.wait(
            &[array, report],
            submitted,
            self.timeout,
            "the cancelled array and its report",
        )?;
        self.expect_states(&tasks, |t| match t.index {
            Some(i) if i == index => "CANCELLED",
            _ => "COMPLETED",
        })?;
        ensure!(
            unfinished(&results, &run),
            "run {run} finished although its task was cancelled while suspended mid-run"
        );
        let partial = Outcome::load(&results)?;
        let missing = reference.runs().saturating_sub(partial.runs());
        ensure!(
            missing > 0 && !compare::differences(reference, &partial).is_empty(),
            "the cancelled array recorded every run: the cancel came too late to test anything"
        );
        eprintln!(
            "   as it should, the report job's results differ from the reference: {missing} of \
             {} runs are missing",
            reference.runs()
        );

        eprintln!("== task {index} resubmitted alone, then the report");
        let resubmitted = Instant::now();
        let again = self.submit_sweep(&results, &index.to_string())?;
        let report = self.submit_report(&results, again)?;
        let tasks = self.cluster.wait(
            &[again, report],
            resubmitted,
            self.timeout,
            "the resubmitted task and its report",
        )?;
        self.expect_states(&tasks, |_| "COMPLETED")?;
        let metrics = results.join("runs").join(&run).join("metrics.jsonl");
        ensure!(
            first_line(&metrics)? == first_metrics,
            "run {run} was interrupted past a checkpoint, but the resubmitted task trained it \
             again from the start instead of resuming it ({} changed)",
            metrics.display()
        );
        let summary = last_line_with(&self.sweep_output(again, index), "already recorded")
            .unwrap_or_else(|| "(no summary line in its output)".into());
        let outcome = Outcome::load(&results)?;
        expect_equal(reference, &outcome, &results)?;
        eprintln!(
            "   records and report tables equal the reference's ({} runs)",
            outcome.runs()
        );
        Ok(format!(
            "task {array}_{index} cancelled while training {run} past a checkpoint; \
             resubmitted, it resumed that run from its checkpoint, the metrics before it kept \
             ({summary})"
        ))
    }

    /// A worker of an array task of `array` that has finished a run of its own and is training
    /// another past its first checkpoint.
    fn mid_run(&self, array: JobId, results: &Path) -> Option<Worker> {
        workers(array).into_iter().find(|worker| {
            let finished_one = std::fs::read_to_string(self.sweep_output(array, worker.index))
                .is_ok_and(|out| out.contains(" at step "));
            let run_dir = results.join("runs").join(&worker.run);
            finished_one
                && run_dir.join("checkpoint.bin").exists()
                && unfinished(results, &worker.run)
        })
    }

    /// `sbatch` of deploy/slurm/sweep.sbatch with the test's settings: the array `indices`.
    fn submit_sweep(&self, results: &Path, indices: &str) -> Result<JobId> {
        let output = self.dir.join("jobs").join("sweep-%A_%a.out");
        self.cluster.sbatch(
            &self.root.join("deploy/slurm/sweep.sbatch"),
            &[
                format!("--array={indices}"),
                // A CPU and no GPU per task, instead of the paper's settings.
                "--cpus-per-task=1".into(),
                "--gres=none".into(),
                format!("--output={}", output.display()),
            ],
            &self.env(results),
            &self.root,
        )
    }

    /// `sbatch` of deploy/slurm/report.sbatch, to start once every task of `array` has ended.
    fn submit_report(&self, results: &Path, array: JobId) -> Result<JobId> {
        let output = self.dir.join("jobs").join("report-%j.out");
        self.cluster.sbatch(
            &self.root.join("deploy/slurm/report.sbatch"),
            &[
                format!("--dependency=afterany:{array}"),
                format!("--output={}", output.display()),
            ],
            &self.env(results),
            &self.root,
        )
    }

    /// The settings the sbatch files read: this profile, these shards, the CPU build.
    fn env(&self, results: &Path) -> Vec<(&'static str, String)> {
        vec![
            ("DPCOT_PROFILE", self.profile.clone()),
            ("DPCOT_RESULTS", results.display().to_string()),
            ("DPCOT_FEATURES", String::new()),
            ("DPCOT_SHARDS", self.shards.to_string()),
        ]
    }

    fn sweep_output(&self, array: JobId, index: u32) -> PathBuf {
        self.dir
            .join("jobs")
            .join(format!("sweep-{array}_{index}.out"))
    }

    fn output_of(&self, task: &Task) -> PathBuf {
        match task.index {
            Some(index) => self.sweep_output(task.job, index),
            None => self
                .dir
                .join("jobs")
                .join(format!("report-{}.out", task.job)),
        }
    }

    /// Fails, showing the job's output, unless every task is in the state `expected` says.
    fn expect_states(
        &self,
        tasks: &[Task],
        expected: impl Fn(&Task) -> &'static str,
    ) -> Result<()> {
        for task in tasks {
            let expected = expected(task);
            if task.state != expected {
                let output = self.output_of(task);
                bail!(
                    "job {} ended {} where {expected} was expected; its output, {}:\n{}\n\
                     cluster logs: {}",
                    task.name(),
                    task.state,
                    output.display(),
                    tail(&output),
                    self.cluster.logs()
                );
            }
        }
        Ok(())
    }
}

/// Fails with the differences unless `outcome` equals `reference`.
fn expect_equal(reference: &Outcome, outcome: &Outcome, results: &Path) -> Result<()> {
    let differences = compare::differences(reference, outcome);
    if differences.is_empty() {
        return Ok(());
    }
    const SHOWN: usize = 20;
    let mut text = differences
        .iter()
        .take(SHOWN)
        .map(|d| format!("  {d}"))
        .collect::<Vec<_>>()
        .join("\n");
    if differences.len() > SHOWN {
        text.push_str(&format!("\n  … and {} more", differences.len() - SHOWN));
    }
    bail!(
        "the results in {} differ from the single-machine reference in {} places:\n{text}",
        results.display(),
        differences.len()
    )
}

/// A `dpcot worker` process of an array task.
struct Worker {
    pid: u32,
    /// The task's index in the array.
    index: u32,
    /// The id of the run it trains (its job file is `jobs/<id>.json`).
    run: String,
}

/// The `dpcot worker` processes of the array job `array`, found in /proc by the Slurm variables
/// in their environment.
fn workers(array: JobId) -> Vec<Worker> {
    let Ok(processes) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let array = array.to_string();
    let mut found = Vec::new();
    for process in processes.flatten() {
        let Some(pid) = process.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let proc_dir = process.path();
        // Processes come and go while this reads: one that is gone is skipped.
        let Ok(cmdline) = std::fs::read(proc_dir.join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let Some(at) = args.iter().position(|a| *a == b"worker") else {
            continue;
        };
        if !args[0].ends_with(b"dpcot") {
            continue;
        }
        let Some(run) = args
            .get(at + 1)
            .and_then(|job| Path::new(std::str::from_utf8(job).ok()?).file_stem())
        else {
            continue;
        };
        let Ok(environ) = std::fs::read(proc_dir.join("environ")) else {
            continue;
        };
        let var = |name: &str| {
            environ.split(|b| *b == 0).find_map(|entry| {
                let entry = std::str::from_utf8(entry).ok()?;
                entry
                    .strip_prefix(name)?
                    .strip_prefix('=')
                    .map(str::to_string)
            })
        };
        if var("SLURM_ARRAY_JOB_ID").as_deref() != Some(array.as_str()) {
            continue;
        }
        if let Some(index) = var("SLURM_ARRAY_TASK_ID").and_then(|i| i.parse().ok()) {
            found.push(Worker {
                pid,
                index,
                run: run.to_string_lossy().into_owned(),
            });
        }
    }
    found.sort_by_key(|w| w.index);
    found
}

/// Whether process `pid` is stopped (or gone).
fn stopped(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return true;
    };
    // `pid (comm) state …`; comm may hold spaces and parentheses.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .is_some_and(|state| state == "T" || state == "t")
}

/// Whether run `run` in `results` has neither a summary nor a record yet.
fn unfinished(results: &Path, run: &str) -> bool {
    !results.join("runs").join(run).join("summary.json").exists()
        && !results.join("records").join(format!("{run}.json")).exists()
}

/// The first line of the file at `path`.
fn first_line(path: &Path) -> Result<String> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let line = text.lines().next().unwrap_or_default();
    ensure!(!line.is_empty(), "{} has no lines", path.display());
    Ok(line.to_string())
}

/// The last line of the file at `path` that contains `text`.
fn last_line_with(path: &Path, text: &str) -> Option<String> {
    let content = std::fs::read_to_string(path).ok()?;
    content
        .lines()
        .rev()
        .find(|l| l.contains(text))
        .map(|l| l.trim().to_string())
}

/// The last lines of a log, for error messages.
fn tail(path: &Path) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(20)..].join("\n")
        }
        Err(e) => format!("({} cannot be read: {e})", path.display()),
    }
}
