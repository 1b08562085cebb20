//! The reference-benchmark commands end to end: generate → export → check / import, and
//! `eval --checkpoint` on the committed tiny reference checkpoint.

use std::path::Path;

mod common;
use common::{dpcot, text};

#[test]
fn export_check_and_import_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ok = |args: &[&str]| {
        let out = dpcot(args, d);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    ok(&[
        "generate",
        "--task",
        "arithmetic",
        "--size",
        "3",
        "--train",
        "200",
        "--test",
        "40",
        "--out",
        "ds",
        "--quiet",
    ]);
    ok(&[
        "export",
        "--format",
        "cot-benchmark",
        "--data",
        "ds",
        "--out",
        "ref",
    ]);
    // `check` of the exported reference files, before and after an answer is spoiled.
    let check_reference = [
        "check",
        "--format",
        "cot-benchmark",
        "--task",
        "arithmetic",
        "--size",
        "3",
        "ref/chain/test_data.txt",
        "--answers",
        "ref/chain/test_ans.txt",
    ];
    let out = ok(&check_reference);
    assert!(out.contains("40 examples: 40 valid, 0 invalid"), "{out}");
    ok(&[
        "import",
        "--format",
        "cot-benchmark",
        "--task",
        "arithmetic",
        "--size",
        "3",
        "--train",
        "ref/chain/train_data.txt",
        "--test",
        "ref/chain/test_data.txt",
        "--answers",
        "ref/chain/test_ans.txt",
        "--out",
        "back",
    ]);
    let body = |p: &str| {
        std::fs::read_to_string(d.join(p))
            .unwrap()
            .lines()
            .skip(1)
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert_eq!(body("back/train.txt"), body("ds/train.txt"));
    let out = ok(&["check", "back/test.txt"]);
    assert!(out.contains("40 examples: 40 valid, 0 invalid"), "{out}");

    // A wrong answer: named by line, non-zero exit.
    let answers = d.join("ref/chain/test_ans.txt");
    let mut lines: Vec<String> = std::fs::read_to_string(&answers)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let wrong = if lines[1] == "0" { "1" } else { "0" };
    lines[1] = wrong.to_string();
    std::fs::write(&answers, lines.join("\n")).unwrap();
    let out = dpcot(&check_reference, d);
    assert!(!out.status.success());
    assert!(
        text(&out.stdout).contains("40 examples: 39 valid, 1 invalid"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stderr).contains("test_data.txt:2: invalid example"),
        "{}",
        text(&out.stderr)
    );

    // dpcot's own format stays the default of `check`.
    let out = dpcot(&["check", "ds/train.txt", "--task", "lis"], d);
    assert!(!out.status.success());
}

#[test]
fn a_reference_checkpoint_is_evaluated_with_dpcot_metrics() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../dpcot-model/tests/fixtures/tiny_reference.pt");
    let dir = tempfile::tempdir().unwrap();
    let out = dpcot(
        &[
            "eval",
            "--checkpoint",
            fixture.to_str().unwrap(),
            "--task",
            "arithmetic",
            "--size",
            "2",
            "--test-examples",
            "30",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("30 test examples: headline (answer accuracy)"),
        "{stdout}"
    );
    // The fixture's positions (16) do not cover arithmetic with 4 operators (42 tokens).
    let out = dpcot(
        &[
            "eval",
            "--checkpoint",
            fixture.to_str().unwrap(),
            "--task",
            "arithmetic",
            "--size",
            "4",
        ],
        dir.path(),
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("position table has 16 rows"),
        "{}",
        text(&out.stderr)
    );
}
