//! Resumable, shardable sweeps: every run is trained in its own process and recorded as one
//! JSON file, written atomically once the run is finished.

use std::collections::VecDeque;
use std::io::IsTerminal;
use std::process::Stdio;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use dpcot_model::ModelConfig;
use dpcot_tasks::{DpTask, TaskSpec};
use dpcot_train::{Backend, Resume, RunConfig, RunJob};
use indicatif::ProgressBar;

use crate::profile::{Experiment, ModelChoice, Profile, TaskSweep};
use crate::results::{read_record, write_atomic, write_record, Results, RunKey, RunRecord};
use crate::search::min_passing;
use crate::worker::WorkerCommand;
use crate::AnalysisError;

/// How to run a sweep.
#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// Where records, runs, jobs and logs go.
    pub results: Results,
    /// How to start the process that trains one run.
    pub worker: WorkerCommand,
    /// The backend every run trains on.
    pub backend: Backend,
    /// Only this shard: search groups whose index is `shard.index - 1` modulo `shard.count`.
    pub shard: Option<Shard>,
    /// Train every dimension of the grid instead of bisecting.
    pub full_grid: bool,
    /// Searches run at once (each run is a process of its own). Small models leave cores idle,
    /// so 2 on 2 cores nearly halves the time; concurrent runs share the CPU, which measured
    /// times reflect (every model equally). On the CPU each run's thread pool gets the cores
    /// divided among the searches still running ([`worker_threads`]).
    pub jobs: usize,
    /// Only these experiments; when empty, the profile's `default_experiments`, or all.
    pub experiments: Vec<Experiment>,
    /// No progress bar and no per-run lines.
    pub quiet: bool,
}

impl SweepOptions {
    /// Searches at once when not given: small CPU runs use about one core each, so one per
    /// core; GPU runs share one device, so one at a time.
    pub fn default_jobs(backend: Backend) -> usize {
        cpu_cores(backend).unwrap_or(1)
    }
}

/// The cores a run on `backend` computes with, or `None` for a GPU backend.
fn cpu_cores(backend: Backend) -> Option<usize> {
    match backend {
        Backend::Wgpu | Backend::Cuda => None,
        Backend::Flex | Backend::Ndarray => {
            Some(std::thread::available_parallelism().map_or(1, |n| n.get()))
        }
    }
}

/// One of N shards of a sweep, `i/N` (1-based), for running a sweep on several machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// Which shard, from 1.
    pub index: usize,
    /// How many shards.
    pub count: usize,
}

impl Shard {
    /// Whether the search group at `position` (0-based) belongs to this shard.
    pub fn owns(self, position: usize) -> bool {
        position % self.count == self.index - 1
    }
}

impl FromStr for Shard {
    type Err = AnalysisError;

    /// Parses `i/N`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || AnalysisError::Shard(text.to_string());
        let (i, n) = text.split_once('/').ok_or_else(bad)?;
        let (index, count): (usize, usize) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if index == 0 || count == 0 || index > count {
            return Err(bad());
        }
        Ok(Self { index, count })
    }
}

/// One search: a task swept over sizes for one model and seed.
#[derive(Debug, Clone)]
pub struct SearchGroup<'a> {
    /// The sweep it belongs to.
    pub sweep: &'a TaskSweep,
    /// The task at each size, ascending: each search starts from the previous answer.
    pub chain: Vec<TaskSpec>,
    /// The model searched.
    pub model: ModelChoice,
    /// The seed of its runs.
    pub seed: u64,
}

/// The search groups of a profile, in a fixed order (the unit of sharding).
pub fn search_groups<'a>(
    profile: &'a Profile,
    experiments: &[Experiment],
) -> Result<Vec<SearchGroup<'a>>, AnalysisError> {
    if let Some(unknown) = experiments
        .iter()
        .find(|e| !profile.sweeps.iter().any(|s| s.experiment == **e))
    {
        let available: std::collections::BTreeSet<&str> = profile
            .sweeps
            .iter()
            .map(|s| s.experiment.as_str())
            .collect();
        return Err(AnalysisError::UnknownExperiment {
            name: unknown.to_string(),
            profile: profile.name.clone(),
            available: available.into_iter().collect::<Vec<_>>().join(", "),
        });
    }
    let mut groups = Vec::new();
    for sweep in &profile.sweeps {
        if !experiments.is_empty() && !experiments.contains(&sweep.experiment) {
            continue;
        }
        for chain in sweep.points()? {
            for &model in sweep.models(profile) {
                for &seed in &profile.seeds {
                    groups.push(SearchGroup {
                        sweep,
                        chain: chain.clone(),
                        model,
                        seed,
                    });
                }
            }
        }
    }
    Ok(groups)
}

/// The outcome of a sweep session.
#[derive(Debug, Clone, Default)]
pub struct SweepOutcome {
    /// Runs trained in this session.
    pub trained: usize,
    /// Runs found finished in the results directory.
    pub reused: usize,
}

/// Runs the profile's searches (or full grids), skipping runs already recorded.
pub fn run_sweep(profile: &Profile, options: &SweepOptions) -> Result<SweepOutcome, AnalysisError> {
    let _lock = options.results.lock(options.shard)?;
    keep_profile(profile, &options.results)?;
    let experiments = match (&options.experiments[..], &profile.default_experiments) {
        ([], Some(defaults)) => defaults.clone(),
        (named, _) => named.to_vec(),
    };
    let groups = search_groups(profile, &experiments)?;
    let mine: Vec<&SearchGroup> = groups
        .iter()
        .enumerate()
        .filter(|(g, _)| options.shard.is_none_or(|shard| shard.owns(*g)))
        .map(|(_, group)| group)
        .collect();

    // Bisection needs about log2(dims) + 1 runs per point; the full grid needs them all.
    let planned: usize = mine
        .iter()
        .map(|g| {
            let dims = g.sweep.dims.len();
            let per_point = if options.full_grid {
                dims
            } else {
                (usize::BITS - dims.leading_zeros()) as usize
            };
            per_point * g.chain.len()
        })
        .sum();
    let bar = dpcot_train::progress::sweep(planned, options.quiet);
    let counts = Counts {
        unfinished: AtomicUsize::new(mine.len()),
        ..Counts::default()
    };
    let started = Instant::now();

    // Searches are independent: `jobs` workers take them from one queue, costliest first, each
    // training its runs in child processes. The first error stops every worker from starting
    // new searches.
    let queue = Mutex::new(VecDeque::from(costliest_first(profile, mine)));
    let failure: Mutex<Option<AnalysisError>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..options.jobs.max(1) {
            scope.spawn(|| loop {
                if failure.lock().expect("no panics hold the lock").is_some() {
                    return;
                }
                let Some(group) = queue.lock().expect("no panics hold the lock").pop_front() else {
                    return;
                };
                let searched = search(profile, group, options, &bar, &counts);
                counts.unfinished.fetch_sub(1, Ordering::Relaxed);
                if let Err(e) = searched {
                    failure
                        .lock()
                        .expect("no panics hold the lock")
                        .get_or_insert(e);
                    return;
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().expect("no panics hold the lock") {
        bar.abandon();
        return Err(e);
    }
    let outcome = SweepOutcome {
        trained: counts.trained.load(Ordering::Relaxed),
        reused: counts.reused.load(Ordering::Relaxed),
    };
    bar.finish_and_clear();
    if !options.quiet {
        eprintln!(
            "sweep: {} runs trained, {} already recorded, in {:.0}s",
            outcome.trained,
            outcome.reused,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(outcome)
}

/// `groups` in the order a sweep takes them: the costliest first (longest-processing-time
/// first), so that the long searches of a profile do not start last and leave a core idle
/// while they finish (in the quick profile ED's two searches, a third of the run time, ran
/// last). A search's cost is estimated as its runs' step cap times the lengths of its
/// problems; ties keep the profile's order. Shards are assigned before this, by position.
fn costliest_first<'g, 'a>(
    profile: &Profile,
    mut groups: Vec<&'g SearchGroup<'a>>,
) -> Vec<&'g SearchGroup<'a>> {
    let cost = |group: &SearchGroup| -> usize {
        let train = group.sweep.train.or(&profile.train).config();
        let cap = train.max_steps.unwrap_or(train.steps).max(train.steps);
        let lengths: usize = group
            .chain
            .iter()
            .filter_map(|task| task.build().ok())
            .map(|task| task.max_len())
            .sum();
        cap * lengths
    };
    groups.sort_by_cached_key(|group| std::cmp::Reverse(cost(group)));
    groups
}

/// Stores the profile with the results, or checks that it is the one stored there or extends it
/// with more sweeps: records of two profiles in one directory would be mixed up in the report.
fn keep_profile(profile: &Profile, results: &Results) -> Result<(), AnalysisError> {
    let path = results.profile();
    if path.exists() {
        let kept = Profile::load(&path)?;
        if &kept == profile {
            return Ok(());
        }
        // A profile that only adds sweeps extends the results; anything else would mix runs
        // trained under different settings.
        let extends = Profile {
            sweeps: profile.sweeps.clone(),
            default_experiments: profile.default_experiments.clone(),
            ..kept.clone()
        } == *profile
            && kept.sweeps.iter().all(|s| profile.sweeps.contains(s));
        if !extends {
            return Err(AnalysisError::Profile {
                path,
                reason: "this results directory was produced with another profile (a profile may only add sweeps to it); use a fresh results directory".into(),
            });
        }
    }
    let text = toml::to_string_pretty(profile).map_err(|e| AnalysisError::Profile {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    write_atomic(&path, text.as_bytes())
}

#[derive(Default)]
struct Counts {
    trained: AtomicUsize,
    reused: AtomicUsize,
    /// Searches not finished yet, queued or running.
    unfinished: AtomicUsize,
}

/// The size of a CPU run's thread pool when `unfinished` searches remain, `jobs` at a time, on
/// `cores` cores: the cores shared among the runs that can be running at once. Two runs with a
/// pool of 2 each on 2 cores trained 7–10 % slower than with 1 each, and the quick profile's
/// LIS sweep took 1.56× the run time (docs/performance.md); the last search, once alone, gets
/// every core. A run's numbers do not depend on its pool's size (the kernels split work by
/// shape, not by thread), so this changes only the time.
pub fn worker_threads(cores: usize, jobs: usize, unfinished: usize) -> usize {
    let concurrent = jobs.min(unfinished).max(1);
    (cores / concurrent).max(1)
}

/// One search group: the minimal dimension at every size, each size starting from the answer
/// for the previous one.
fn search(
    profile: &Profile,
    group: &SearchGroup,
    options: &SweepOptions,
    bar: &ProgressBar,
    counts: &Counts,
) -> Result<(), AnalysisError> {
    let mut hint = None;
    for task in &group.chain {
        let mut passes = |i: usize| -> Result<bool, AnalysisError> {
            let key = RunKey {
                experiment: group.sweep.experiment,
                task: task.clone(),
                model: group.model,
                d_model: group.sweep.dims[i],
                seed: group.seed,
            };
            let record = ensure_run(profile, group.sweep, &key, options, bar, counts)?;
            Ok(record.summary.decision_accuracy() >= profile.threshold)
        };
        let found = if options.full_grid {
            let mut first = None;
            for i in 0..group.sweep.dims.len() {
                if passes(i)? && first.is_none() {
                    first = Some(i);
                }
            }
            first
        } else {
            min_passing(group.sweep.dims.len(), hint, &mut passes)?
        };
        hint = Some(next_hint(found, group.sweep.dims.len()));
    }
    Ok(())
}

/// Where the search at the next (larger) size starts: where this one ended, or, if no
/// dimension solved this size, at the top of the grid, where one run tells whether the larger
/// size is unsolved too (probing small dimensions first would spend several runs to learn
/// what the smaller size already suggests).
fn next_hint(found: Option<usize>, dims: usize) -> usize {
    found.unwrap_or(dims.saturating_sub(1))
}

/// The record of `key`, training the run first if it has none.
fn ensure_run(
    profile: &Profile,
    sweep: &TaskSweep,
    key: &RunKey,
    options: &SweepOptions,
    bar: &ProgressBar,
    counts: &Counts,
) -> Result<RunRecord, AnalysisError> {
    let results = &options.results;
    let id = key.id();
    let record_path = results.record(&id);
    if record_path.exists() {
        let record = read_record(&record_path)?;
        if &record.key == key {
            counts.reused.fetch_add(1, Ordering::Relaxed);
            bar.inc(1);
            return Ok(record);
        }
        return Err(AnalysisError::Record {
            path: record_path,
            reason: format!(
                "holds another run with the same id ({}); use a fresh results directory",
                record.key.id()
            ),
        });
    }

    let config = run_config(profile, sweep, key)?;
    let run_dir = results.run_dir(&id);
    let log_path = results.log(&id);
    std::fs::create_dir_all(log_path.parent().expect("logs dir"))
        .map_err(AnalysisError::io(&log_path))?;
    let log = std::fs::File::create(&log_path).map_err(AnalysisError::io(&log_path))?;
    let err_log = log.try_clone().map_err(AnalysisError::io(&log_path))?;

    bar.set_message(id.clone());
    let started = Instant::now();
    let run = dpcot_train::RunDir::new(&run_dir);
    // A run that finished just before the sweep was stopped (summary written, record not yet)
    // is recorded as it is: resuming it would train on past its early stop.
    let finished = run.summary().exists() && run.read_config().ok().as_ref() == Some(&config);
    if !finished {
        let job = RunJob {
            config: config.clone(),
            out: run_dir.clone(),
            backend: options.backend,
            // A run interrupted with the sweep continues from its checkpoint (if it got to
            // one; else it starts again).
            resume: Resume::IfAny,
        };
        let job_path = results.job(&id);
        job.write(&job_path)?;
        let mut command = options.worker.command(&job_path);
        // The pool's size is the user's if they set it.
        let cores = cpu_cores(options.backend);
        if let (Some(cores), None) = (cores, std::env::var_os("RAYON_NUM_THREADS")) {
            let unfinished = counts.unfinished.load(Ordering::Relaxed);
            let threads = worker_threads(cores, options.jobs, unfinished);
            command.env("RAYON_NUM_THREADS", threads.to_string());
        }
        let status = command
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log)
            .status()
            .map_err(AnalysisError::io(&options.worker.program))?;
        if !status.success() {
            // The worker's own message says what went wrong and where: pass it on.
            let reason = std::fs::read_to_string(&log_path).ok().and_then(|log| {
                log.lines()
                    .rev()
                    .find_map(|l| l.strip_prefix("error: ").map(String::from))
            });
            return Err(AnalysisError::RunFailed {
                id,
                status: status.to_string(),
                reason,
                log: log_path,
            });
        }
    }
    let summary = run.read_summary()?;
    let wall_seconds = if finished {
        // The process that trained it is gone; its training time is the best lower bound.
        summary.train_seconds
    } else {
        started.elapsed().as_secs_f64()
    };
    let record = RunRecord {
        key: key.clone(),
        config,
        summary,
        wall_seconds,
    };
    write_record(&record_path, &record)?;
    counts.trained.fetch_add(1, Ordering::Relaxed);
    bar.inc(1);
    log_line(
        bar,
        options.quiet,
        format!(
            "{id}: {} at step {} (validation {:.1}%, test {:.1}%), {:.0}s",
            record
                .summary
                .ending
                .map_or("finished", |ending| ending.as_str()),
            record.summary.steps,
            100.0 * record.summary.decision_accuracy(),
            100.0 * record.summary.eval.headline,
            record.wall_seconds
        ),
    );
    Ok(record)
}

/// The run configuration of a key of `sweep` under a profile.
pub fn run_config(
    profile: &Profile,
    sweep: &TaskSweep,
    key: &RunKey,
) -> Result<RunConfig, AnalysisError> {
    let task = key.task.build()?;
    let model = profile.model.apply(ModelConfig::new(
        task.vocab().len(),
        task.max_len(),
        key.d_model,
        key.model.attention(),
    ));
    let train = sweep
        .train
        .or(&profile.train)
        .config()
        .with_target_accuracy(Some(profile.threshold))
        .with_seed(key.seed);
    let config = RunConfig {
        task: key.task.clone(),
        model,
        train,
        data: profile.data.generated(&key.task, key.seed),
    };
    config.validate()?;
    Ok(config)
}

/// One line a person can follow: above the progress bar on a terminal, plain on stderr when
/// the output goes to a log file (where the bar is hidden).
fn log_line(bar: &ProgressBar, quiet: bool, line: String) {
    if quiet {
        return;
    }
    if std::io::stderr().is_terminal() {
        bar.println(line);
    } else {
        eprintln!("{line}");
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn after_an_unsolved_size_the_search_starts_at_the_top_of_the_grid() {
        assert_eq!(next_hint(Some(2), 5), 2);
        assert_eq!(next_hint(None, 5), 4);
        // One probe at the top settles a size that is unsolved there too.
        let mut probes = Vec::new();
        let found = min_passing::<()>(5, Some(next_hint(None, 5)), &mut |i| {
            probes.push(i);
            Ok(false)
        })
        .unwrap();
        assert_eq!((found, probes), (None, vec![4]));
    }

    #[test]
    fn the_costliest_searches_are_taken_first() {
        // Short LIS runs first in the profile, then ED with a long budget and longer problems,
        // then arithmetic with the LIS budget: ED's searches must come first, and searches of
        // equal cost keep the profile's order.
        let profile: Profile = toml::from_str(
            r#"
            name = "order"
            threshold = 0.9
            seeds = [1, 2]
            models = ["standard", "linear"]
            [train]
            steps = 100
            [[sweeps]]
            task = "lis"
            sizes = [3]
            dims = [16]
            [[sweeps]]
            task = "ed"
            sizes = [1, 2]
            dims = [16]
            models = ["standard"]
            train = { steps = 800, max_steps = 1000 }
            [[sweeps]]
            task = "arithmetic"
            sizes = [2]
            dims = [16]
            models = ["standard"]
            "#,
        )
        .unwrap();
        let groups = search_groups(&profile, &[Experiment::General]).unwrap();
        let order: Vec<(&str, String, u64)> = costliest_first(&profile, groups.iter().collect())
            .iter()
            .map(|g| (g.sweep.task.as_str(), g.model.name(), g.seed))
            .collect();
        let order: Vec<(&str, &str, u64)> =
            order.iter().map(|(t, m, s)| (*t, &m[..], *s)).collect();
        assert_eq!(
            order,
            [
                ("ed", "standard", 1),
                ("ed", "standard", 2),
                ("arithmetic", "standard", 1),
                ("arithmetic", "standard", 2),
                ("lis", "standard", 1),
                ("lis", "standard", 2),
                ("lis", "linear", 1),
                ("lis", "linear", 2),
            ]
        );
    }

    #[test]
    fn the_cores_are_shared_among_the_searches_that_can_run_at_once() {
        // Two searches at a time on 2 cores: one thread each while both run.
        assert_eq!(worker_threads(2, 2, 9), 1);
        assert_eq!(worker_threads(2, 2, 2), 1);
        // The last search alone gets both cores.
        assert_eq!(worker_threads(2, 2, 1), 2);
        assert_eq!(worker_threads(2, 1, 9), 2);
        // More jobs than cores, or a count of zero, still leaves every run a thread.
        assert_eq!(worker_threads(2, 4, 4), 1);
        assert_eq!(worker_threads(8, 3, 5), 2);
        assert_eq!(worker_threads(4, 0, 0), 4);
    }

    #[test]
    fn one_whole_sweep_or_distinct_shards_hold_a_results_directory() {
        let dir = tempfile::tempdir().unwrap();
        let results = Results::new(dir.path().join("results"));
        let shard = |text: &str| Some(text.parse::<Shard>().unwrap());
        let busy = |taken: Result<crate::results::ResultsLock, AnalysisError>| {
            matches!(taken, Err(AnalysisError::ResultsBusy { .. }))
        };

        let whole = results.lock(None).unwrap();
        assert!(busy(results.lock(None)));
        assert!(busy(results.lock(shard("1/2"))));
        drop(whole);

        // The tasks of an array share the directory; the same shard twice does not.
        let first = results.lock(shard("1/2")).unwrap();
        let second = results.lock(shard("2/2")).unwrap();
        assert!(busy(results.lock(shard("1/2"))));
        let err = results.lock(None).unwrap_err().to_string();
        assert!(err.contains("held by another sweep"), "{err}");
        drop((first, second));
        results.lock(None).unwrap();
    }

    #[test]
    fn shards_parse_and_reject_nonsense() {
        let shard: Shard = "2/3".parse().unwrap();
        assert_eq!(shard, Shard { index: 2, count: 3 });
        assert_eq!(
            (0..7).filter(|&g| shard.owns(g)).collect::<Vec<_>>(),
            [1, 4]
        );
        for bad in ["0/3", "4/3", "1/0", "x/2", "3"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_results_directory_takes_added_sweeps_but_no_other_change() {
        let dir = tempfile::tempdir().unwrap();
        let results = Results::new(dir.path());
        let path = dir.path().join("smoke.toml");
        let smoke = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/profiles/smoke.toml");
        std::fs::copy(&smoke, &path).unwrap();
        let profile = Profile::load(&path).unwrap();
        let mut fewer = profile.clone();
        fewer.sweeps.pop();
        keep_profile(&fewer, &results).unwrap();
        keep_profile(&fewer, &results).unwrap();
        keep_profile(&profile, &results).expect("adding a sweep extends the results");
        assert_eq!(Profile::load(&results.profile()).unwrap(), profile);

        let mut other = profile.clone();
        other.threshold = 0.5;
        let err = keep_profile(&other, &results).unwrap_err();
        assert!(err.to_string().contains("another profile"), "{err}");
        let mut changed = profile.clone();
        changed.sweeps[0].dims.push(1024);
        assert!(
            keep_profile(&changed, &results).is_err(),
            "a changed sweep is not an addition"
        );
    }
}
