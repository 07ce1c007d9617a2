"""kill -9 at random moments, then ``--resume``, again and again: the run ends bitwise where an
uninterrupted run with the same seed ends (weights, optimizer state, random-number state), with
the same metrics records. Besides the random kills, targeted ones land exactly in the moments
that matter: while ``last/`` or ``best/`` is built, between the two renames of its swap, and in
the middle of a ``metrics.jsonl`` line (the process kills itself there, through a wrapper that
patches the library from outside). Slow (about three minutes): ``python -m pytest -m slow -s
tests/training/test_kill_soak.py`` prints the figures docs/robustness.md reports."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.training.test_damaged_files import TINY_RUN

pytestmark = pytest.mark.slow

KILLS = 30
# 6 epochs of 4 steps, a checkpoint after every step, validation, samples and completions
SOAK_RUN = [*TINY_RUN, "--max-train-images", "64", "--epochs", "6", "--sample-every", "2"]
SOAK_RUN += ["--num-samples", "2", "--num-completions", "1"]


# Run the command line, but SIGKILL this process at the N-th moment of a phase ($SOAK_FAULT =
# "phase:target:N"): after building a checkpoint folder, between its swap's renames, or halfway
# through writing a metrics line.
FAULTY_MAIN = r"""
import os, signal, sys
import pixelrnn.files as files
from pixelrnn.training import run_dir
from pixelrnn.cli import main

phase, target, n = os.environ["SOAK_FAULT"].split(":")
count = [0]

def hit():
    count[0] += 1
    if count[0] == int(n):
        os.kill(os.getpid(), signal.SIGKILL)

replace_dir, replace = files.replace_dir, files.os.replace

def faulty_replace_dir(build, path):
    def built(folder):
        build(folder)
        if phase == "building" and os.path.basename(path) == target:
            hit()
    return replace_dir(built, path)

def faulty_replace(src, dst):
    replace(src, dst)
    if phase == "renamed" and os.path.basename(str(dst)) == target + ".old":
        hit()

def faulty_append(self, record):
    if phase == "metrics":
        with open(self.path / "metrics.jsonl", "a") as f:
            f.write('{"event": "' + record["event"])
            f.flush()
        hit()
        # not killed this time: finish the line as the real append would have
        with open(self.path / "metrics.jsonl", "rb+") as f:
            f.seek(-len(record["event"]) - 11, 2)
            f.truncate()
    return original_append(self, record)

original_append = run_dir.RunDirectory.append_metric
run_dir.replace_dir = faulty_replace_dir
files.os.replace = faulty_replace
run_dir.RunDirectory.append_metric = faulty_append
sys.exit(main(sys.argv[1:]))
"""
TARGETED = [
    ("building", "last"), ("renamed", "last"), ("building", "best"), ("renamed", "best"),
    ("metrics", "-"),
]  # fmt: skip


def _command(run: Path, data_dir: Path, fault: str | None = None) -> list[str]:
    launcher = ["-c", FAULTY_MAIN] if fault else ["-m", "pixelrnn"]
    base = [sys.executable, *launcher, "train", "--data-dir", str(data_dir)]
    if (run / "last").exists() or (run / "last.old").exists():
        return [*base, "--resume", str(run)]
    return [*base, *SOAK_RUN, "--run-dir", str(run)]


def _records(run: Path) -> list[tuple[str, int, int]]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [(r["event"], r["step"], r["epoch"]) for r in map(json.loads, lines)]


def _state(run: Path) -> dict[str, torch.Tensor]:
    tensors = load_file(str(run / "last" / "model.safetensors"))
    state = load_file(str(run / "last" / "trainer_state.safetensors"))
    return {**tensors, **{f"state.{k}": v for k, v in state.items()}}


def test_kill_soak_ends_bitwise_like_an_uninterrupted_run(tmp_path: Path, data_dir: Path) -> None:
    reference = tmp_path / "reference"
    start = time.monotonic()
    subprocess.run(_command(reference, data_dir), check=True, capture_output=True)
    duration = time.monotonic() - start
    run, rng = tmp_path / "soak", random.Random(0)
    kills = during_swap = torn_metrics = attempts = 0
    # targeted kills first, two of each kind, at random occurrences
    targeted = 0
    for phase, target in TARGETED * 2:
        fault = f"{phase}:{target}:{rng.randint(1, 3)}"
        result = subprocess.run(
            _command(run, data_dir, fault),
            env={**os.environ, "SOAK_FAULT": fault},
            capture_output=True,
            check=False,
        )
        attempts += 1
        assert result.returncode in (0, -signal.SIGKILL), result.stderr.decode()[-2000:]
        targeted += result.returncode == -signal.SIGKILL
    while True:
        attempts += 1
        process = subprocess.Popen(
            _command(run, data_dir), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        if kills < KILLS:
            try:
                process.wait(timeout=rng.uniform(0.2, duration))
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
                kills += 1
                leftovers = [p for p in run.iterdir() if p.name.startswith((".last.", ".best."))]
                during_swap += bool(leftovers) or any(
                    (run / f"{name}.old").exists() for name in ("last", "best")
                )
                metrics = run / "metrics.jsonl"
                torn_metrics += metrics.is_file() and not metrics.read_bytes().endswith(b"\n")
                continue
        else:
            process.wait()
        assert process.returncode == 0, process.stderr.read().decode()[-2000:]
        if kills >= KILLS:
            break
    print(
        f"\nkill soak: {targeted} targeted kills (building, between the renames of last/ and "
        f"best/, mid-line in metrics.jsonl) and {kills} at random moments ({during_swap} of "
        f"them during a checkpoint swap, {torn_metrics} mid-append) in {attempts} runs; an "
        f"uninterrupted run takes {duration:.1f} s"
    )
    assert kills >= KILLS and targeted >= len(TARGETED)
    expected, found = _state(reference), _state(run)
    assert expected.keys() == found.keys()
    for name in expected:
        assert torch.equal(expected[name], found[name]), name
    assert _records(run) == _records(reference)
    assert json.loads((run / "results.json").read_text()) == json.loads(
        (reference / "results.json").read_text()
    )
