#!/usr/bin/env python3
"""Writes the fuzz targets' seed inputs from real dpcot files (docs/fuzzing.md).

    python3 fuzz/seeds/make_seeds.py DPCOT_BINARY OUT_DIR

generates small datasets of every task of `dpcot_fuzz::tasks` (fuzz/src/lib.rs) with
`dpcot generate`, exports them in the reference layout with `dpcot export`, trains a tiny
model for two steps with `dpcot train`, and writes OUT_DIR/<target>/<name> in each target's
input format (see each target's documentation). The committed corpus (fuzz/corpus) is these
seeds after fuzzing, minimised with `cargo fuzz cmin`.
"""

import json
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

# dpcot_fuzz::tasks, in order: the selector byte of an input is the index here.
TASKS = [
    ("ar3", ["--task", "arithmetic", "--size", "3"]),
    ("ar1", ["--task", "arithmetic", "--size", "1"]),
    ("lis6", ["--task", "lis", "--size", "6"]),
    ("lis6w2", ["--task", "lis", "--size", "6", "--window", "2"]),
    ("ed4", ["--task", "ed", "--size", "4"]),
    ("ed4b1", ["--task", "ed", "--size", "4", "--band", "1"]),
    ("ar6m7", ["--task", "arithmetic", "--size", "6", "--modulus", "7"]),
    ("lis12r40", ["--task", "lis", "--size", "12", "--range", "40"]),
    ("ed8n30", ["--task", "ed", "--size", "8", "--numbers", "30"]),
]


def run(*args):
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)


def checker_bytes(ids):
    """The checker target's token encoding: a byte per id, 0xff + u32 LE for larger ones."""
    out = bytearray()
    for i in ids:
        out += bytes([i]) if i < 0xFF else b"\xff" + struct.pack("<I", i)
    return bytes(out)


def main():
    dpcot, out = sys.argv[1], Path(sys.argv[2])
    targets = ["reference_format", "dataset", "checker", "profile", "checkpoint"]
    for target in targets:
        (out / target).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="dpcot-seeds-"))
    try:
        for index, (name, task) in enumerate(TASKS):
            data, ref = work / name, work / f"ref-{name}"
            run(dpcot, "--quiet", "generate", *task, "--train", "4", "--test", "2",
                "--out", str(data))
            run(dpcot, "--quiet", "export", "--data", str(data), "--out", str(ref))
            sel = bytes([index])
            for split in ["train", "test"]:
                text = (data / f"{split}.txt").read_bytes()
                (out / "dataset" / f"{name}-{split}").write_bytes(text)
                lines = text.decode().splitlines()
                vocab = {w: i for i, w in enumerate(json.loads(lines[0])["vocab"])}
                for n, line in enumerate(lines[1:3]):
                    ids = [vocab[w] for w in line.split()] + [vocab["<eos>"]]
                    (out / "checker" / f"{name}-{split}-{n}").write_bytes(sel + checker_bytes(ids))
                    # The same tokens as a completion of a generated prompt.
                    (out / "checker" / f"{name}-{split}-{n}-generated").write_bytes(
                        bytes([index | 0x80]) + checker_bytes(ids))
            chain = ref / "chain"
            (out / "reference_format" / f"{name}-train").write_bytes(
                sel + (chain / "train_data.txt").read_bytes())
            test = (chain / "test_data.txt").read_bytes()
            (out / "reference_format" / f"{name}-test").write_bytes(sel + test)
            if (chain / "test_ans.txt").exists():
                answers = (chain / "test_ans.txt").read_bytes()
                (out / "reference_format" / f"{name}-test-answers").write_bytes(
                    bytes([index | 0x80]) + test + b"\0" + answers)

        profiles = Path(__file__).resolve().parents[2] / "configs" / "profiles"
        for profile in sorted(profiles.glob("*.toml")):
            shutil.copy(profile, out / "profile" / profile.name)

        run_dir = work / "run"
        run(dpcot, "--quiet", "train", "--task", "arithmetic", "--size", "1", "--d-model", "8",
            "--n-layers", "1", "--n-heads", "1", "--steps", "2", "--batch-size", "2",
            "--eval-every", "2", "--eval-examples", "2", "--train-examples", "8",
            "--validation-examples", "4", "--test-examples", "4", "--out", str(run_dir))
        checkpoint = (run_dir / "checkpoint.bin").read_bytes()
        for mode in range(3):
            (out / "checkpoint" / f"tiny-mode{mode}").write_bytes(bytes([mode]) + checkpoint)
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
