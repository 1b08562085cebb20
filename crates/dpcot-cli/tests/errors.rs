//! Every row of docs/errors.md, run: the command fails with a message that contains the row's
//! text, nothing panics, and no file of the directory it runs in is created or changed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

mod common;
use common::{dpcot, text};

#[path = "support/error_table.rs"]
mod error_table;
use error_table::{code_span, Row};

/// The `dpcot` rows of docs/errors.md.
fn rows() -> Vec<Row> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/errors.md");
    let rows = error_table::rows(&path, "dpcot");
    assert!(
        rows.len() >= 30,
        "only {} rows read from {}",
        rows.len(),
        path.display()
    );
    rows
}

/// Every file under `dir` with its length and modification time.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u64, SystemTime)> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).unwrap() {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                pending.push(entry.path());
            }
            files.insert(entry.path(), (meta.len(), meta.modified().unwrap()));
        }
    }
    files
}

/// The directory the table's commands run in (see docs/errors.md).
fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ok = |args: &[&str]| {
        let out = dpcot(args, d);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    };
    ok(&[
        "--quiet", "generate", "--task", "lis", "--size", "4", "--train", "60", "--test", "20",
        "--out", "data",
    ]);
    ok(&["--quiet", "export", "--data", "data", "--out", "ref"]);
    ok(&[
        "--quiet",
        "generate",
        "--task",
        "arithmetic",
        "--size",
        "2",
        "--train",
        "60",
        "--test",
        "20",
        "--out",
        "arith",
    ]);
    ok(&["--quiet", "export", "--data", "arith", "--out", "arith-ref"]);
    ok(&[
        "--quiet",
        "train",
        "--task",
        "lis",
        "--size",
        "4",
        "--out",
        "run",
        "--d-model",
        "8",
        "--n-heads",
        "2",
        "--n-layers",
        "1",
        "--steps",
        "3",
        "--validation-examples",
        "10",
        "--test-examples",
        "10",
    ]);
    let test = std::fs::read_to_string(d.join("data/test.txt")).unwrap();
    let last = test.lines().last().unwrap();
    std::fs::write(d.join("extra.txt"), format!("{test}{last}\n")).unwrap();
    dir
}

#[test]
fn every_documented_bad_input_gets_its_documented_answer_and_changes_nothing() {
    let dir = workspace();
    let mut failures = Vec::new();
    for row in rows() {
        let before = snapshot(dir.path());
        let args: Vec<&str> = row.args.iter().map(String::as_str).collect();
        let out = dpcot(&args, dir.path());
        let stderr = text(&out.stderr);
        let code = out.status.code();
        let problem = if out.status.success() {
            Some("succeeded".to_string())
        } else if stderr.contains("panicked") || !matches!(code, Some(1 | 2)) {
            Some(format!("crashed ({:?})", out.status))
        } else if !stderr.lines().any(|line| line.starts_with("error: ")) {
            Some("no `error:` line".to_string())
        } else if !stderr.contains(&row.expected) {
            Some(format!("no `{}` in the message", row.expected))
        } else if snapshot(dir.path()) != before {
            Some("changed the directory it ran in".to_string())
        } else {
            None
        };
        if let Some(problem) = problem {
            failures.push(format!("dpcot {}: {problem}\n{stderr}", row.args.join(" ")));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_table_row_that_expects_another_answer_fails() {
    // The negative control: the check above can fail.
    let dir = workspace();
    let out = dpcot(&["show", "--task", "lis", "--size", "0"], dir.path());
    assert!(!out.status.success());
    assert!(!text(&out.stderr).contains("an answer no command gives"));
    assert_eq!(code_span("`` `a` b ``"), Some("`a` b"));
    assert_eq!(code_span("`x`"), Some("x"));
    assert_eq!(code_span("x"), None);
}

#[test]
fn an_invalid_model_is_refused_before_the_run_is_announced() {
    let dir = tempfile::tempdir().unwrap();
    for model in ["standard", "gla", "mamba"] {
        let args = [
            "train",
            "--task",
            "lis",
            "--size",
            "3",
            "--model",
            model,
            "--d-model",
            "30",
            "--n-heads",
            "4",
            "--steps",
            "1",
            "--out",
            "run",
        ];
        let out = dpcot(&args, dir.path());
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{model}: {stderr}");
        assert!(
            stderr.contains("`d_model` (30) must be divisible by n_heads (4)"),
            "{model}: {stderr}"
        );
        assert!(!stderr.contains("parameters, on"), "{model}: {stderr}");
        assert!(!dir.path().join("run").exists(), "{model}");
    }
}
