//! The reproduce pipeline end to end on the smoke profile: sweep, report, figures; and a sweep
//! killed mid-run finishes on restart with no run lost or duplicated.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dpcot_analysis::profile::Profile;
use dpcot_analysis::results::{Results, RunKey};
use dpcot_analysis::sweep::search_groups;
use dpcot_train::Backend;

fn smoke_profile() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/profiles/smoke.toml")
}

/// The backend under test: burn's `BURN_DEVICE` (`flex`, `ndarray`, `wgpu`, `cuda`) if set, as
/// for the other crates' tests, else the binary's default (the first compiled, GPUs first).
fn backend() -> Backend {
    match std::env::var("BURN_DEVICE") {
        Ok(name) => name.parse().unwrap(),
        Err(_) => Backend::default_compiled().expect("a backend is compiled in"),
    }
}

/// `dpcot sweep` of the smoke profile into `results`, on [`backend`].
fn sweep_args(results: &Path) -> Vec<String> {
    let profile = smoke_profile();
    [
        "sweep",
        "--profile",
        profile.to_str().unwrap(),
        "--results",
        results.to_str().unwrap(),
        "--backend",
        &backend().to_string(),
    ]
    .map(String::from)
    .to_vec()
}

fn dpcot<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dpcot"));
    command.arg("--quiet").args(args);
    command
}

fn run_ok(command: &mut Command) {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{command:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every search's runs are recorded: for each point and model, the minimal passing dimension's
/// smaller neighbour was run and failed, or, if none passed, the largest dimension was run.
fn assert_searches_complete(profile: &Profile, results: &Results) {
    let records = results.load_records().unwrap();
    let find = |key: &RunKey| records.iter().find(|r| &r.key == key);
    for group in search_groups(profile, &[]).unwrap() {
        for task in &group.chain {
            let key = |d: usize| RunKey {
                experiment: group.sweep.experiment,
                task: task.clone(),
                model: group.model,
                d_model: d,
                seed: group.seed,
            };
            let dims = &group.sweep.dims;
            let passed: Vec<usize> = (0..dims.len())
                .filter(|&i| {
                    find(&key(dims[i]))
                        .is_some_and(|r| r.summary.eval.headline >= profile.threshold)
                })
                .collect();
            match passed.first() {
                Some(&0) => {}
                Some(&i) => {
                    let below = find(&key(dims[i - 1]))
                        .unwrap_or_else(|| panic!("{} not run", key(dims[i - 1]).id()));
                    assert!(below.summary.eval.headline < profile.threshold);
                }
                None => assert!(
                    find(&key(*dims.last().unwrap())).is_some(),
                    "{}: largest dim not run",
                    key(0).id()
                ),
            }
        }
    }
    let ids: BTreeSet<String> = records.iter().map(|r| r.key.id()).collect();
    assert_eq!(ids.len(), records.len(), "a run is recorded twice");
}

fn assert_figure(path: &Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    match path.extension().and_then(|e| e.to_str()) {
        Some("png") => assert!(
            bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 1000,
            "{}",
            path.display()
        ),
        Some("svg") => {
            let text = String::from_utf8(bytes).unwrap();
            assert!(
                text.contains("<svg") && text.trim_end().ends_with("</svg>"),
                "{}",
                path.display()
            );
        }
        other => panic!("unexpected figure {other:?}"),
    }
}

#[test]
fn smoke_profile_runs_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let profile_path = smoke_profile();
    let results_arg = results.to_str().unwrap();
    run_ok(&mut dpcot(&sweep_args(&results)));
    run_ok(&mut dpcot(&["report", "--results", results_arg]));

    let profile = Profile::load(&profile_path).unwrap();
    assert_searches_complete(&profile, &Results::new(&results));
    let records = Results::new(&results).load_records().unwrap();
    println!("{} runs trained on {}", records.len(), backend());
    for record in &records {
        assert_eq!(record.summary.backend, backend(), "{}", record.key.id());
    }
    let report = std::fs::read_to_string(results.join("report.md")).unwrap();
    for needle in [
        "## General DP tasks",
        "### lis",
        "### ed",
        "### arithmetic",
        "Compute at equal accuracy",
        "Verdict",
        "## Local DP tasks",
        "### lis-window1",
        "### Local against general",
        "## Run times",
    ] {
        assert!(report.contains(needle), "report lacks `{needle}`");
    }
    let mut figures = 0;
    for line in report.lines().filter(|l| l.starts_with("![")) {
        let png = line.split("](").nth(1).unwrap().trim_end_matches(')');
        assert_figure(&results.join(png));
        assert_figure(&results.join(png).with_extension("svg"));
        figures += 1;
    }
    assert!(figures >= 14, "{figures} figures in the report");
    assert!(report.contains("figures/locality-lis-window2-vs-general.png"));
    assert!(
        report.contains("sliding-w4"),
        "the sliding-window model is in the report"
    );
    for table in ["runs", "min_dims", "compute"] {
        let csv = std::fs::read_to_string(results.join(format!("tables/{table}.csv"))).unwrap();
        assert!(csv.lines().count() >= 2, "{table}.csv is empty");
    }
}

#[test]
fn a_killed_sweep_resumes_without_losing_or_repeating_runs() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let profile_path = smoke_profile();
    let args = sweep_args(&results);

    // Kill the sweep once a few runs are recorded (mid-sweep, possibly mid-run).
    let mut child = dpcot(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let records = results.join("records");
    let started = Instant::now();
    while std::fs::read_dir(&records).map(|d| d.count()).unwrap_or(0) < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "no records after 5 minutes"
        );
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "the sweep ended before it could be killed"
    );
    // One sweep at a time on a results directory.
    let second = dpcot(&args).output().unwrap();
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("held by another sweep"), "{stderr}");

    child.kill().ok();
    child.wait().unwrap();
    // The killed sweep's workers die with it (none trains on as an orphan): every run's lock
    // is free again within moments.
    let runs = results.join("runs");
    let started = Instant::now();
    for run in std::fs::read_dir(&runs).unwrap() {
        let run = dpcot_train::RunDir::new(run.unwrap().path());
        while let Err(e) = run.lock() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "a worker outlived its sweep: {e}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let files = |dir: &Path| -> BTreeSet<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect()
    };
    // A kill in the middle of an atomic write leaves its temporary file, never a partial record.
    let left_by_kill = files(&records);
    let before: BTreeSet<String> = left_by_kill
        .iter()
        .filter(|f| f.ends_with(".json"))
        .cloned()
        .collect();

    let out = dpcot(&args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("{} already recorded", before.len())),
        "{stdout}"
    );

    let profile = Profile::load(&profile_path).unwrap();
    assert_searches_complete(&profile, &Results::new(&results));
    let after = files(&records);
    assert!(before.is_subset(&after));
    assert!(
        after
            .iter()
            .all(|f| f.ends_with(".json") || left_by_kill.contains(f)),
        "the resumed sweep left temporary files: {after:?}"
    );

    // A third start has nothing left to do.
    let out = dpcot(&args).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 runs trained"));

    // Killed between a run's end and its record: the finished run is recorded as it is, not
    // resumed (which would train on past its early stop).
    let victim = std::fs::read_dir(&records)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let before: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&victim).unwrap()).unwrap();
    std::fs::remove_file(&victim).unwrap();
    run_ok(&mut dpcot(&args));
    let after: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&victim).unwrap()).unwrap();
    assert_eq!(
        before["summary"], after["summary"],
        "the finished run was trained again"
    );
}
