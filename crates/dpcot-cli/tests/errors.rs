//! Every row of docs/errors.md, run: the command fails with a message that contains the row's
//! text, nothing panics, and no file of the directory it runs in is created or changed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

mod common;
use common::{dpcot, text};

/// One row of the table: the arguments after `dpcot`, and what the message must contain.
#[derive(Debug)]
struct Row {
    args: Vec<String>,
    expected: String,
}

/// A markdown code span's content: `` `a` `` or ``` `` a ` b `` ```.
fn code_span(cell: &str) -> Option<&str> {
    let cell = cell.trim();
    let ticks = cell.len() - cell.trim_start_matches('`').len();
    if ticks == 0 || !cell.ends_with(&"`".repeat(ticks)) || cell.len() < 2 * ticks {
        return None;
    }
    let inner = &cell[ticks..cell.len() - ticks];
    Some(if ticks > 1 { inner.trim() } else { inner })
}

fn rows() -> Vec<Row> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/errors.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let rows: Vec<Row> = doc
        .lines()
        .filter(|line| line.starts_with("| `dpcot "))
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split(" | ").collect();
            assert_eq!(
                cells.len(),
                3,
                "{}: a row has three cells: {line}",
                path.display()
            );
            let command = code_span(cells[0]).unwrap_or_else(|| panic!("no command: {line}"));
            let expected = code_span(cells[2]).unwrap_or_else(|| panic!("no message: {line}"));
            Row {
                args: command
                    .split_whitespace()
                    .skip(1)
                    .map(String::from)
                    .collect(),
                expected: expected.to_string(),
            }
        })
        .collect();
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
