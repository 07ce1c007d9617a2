"""Multi-process training (DDP, gloo on CPU) against one process with the same global batch.

The 2-process runs go through ``pixelrnn train --nproc 2``, i.e. torchrun, as a user runs them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import pixelrnn
from pixelrnn.data import load_dataset
from pixelrnn.training import evaluate_nll
from pixelrnn.training.distributed import DistributedContext

TINY = [
    "--preset",
    "pixelcnn-tiny",
    "--image-shape",
    "1,28,28",
    "--max-train-images",
    "40",
    "--batch-size",
    "8",
    "--epochs",
    "2",
    "--max-eval-images",
    "20",
    "--eval-batch-size",
    "8",
    "--num-samples",
    "0",
    "--num-completions",
    "0",
    "--optimizer",
    "adam",
    "--lr",
    "3e-3",
    "--device",
    "cpu",
]


def train(run: Path, data_dir: Path, *args: str, nproc: int = 1) -> None:
    env = {**os.environ, "PIXELRNN_DATA": str(data_dir), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "pixelrnn", "train", *args, "--run-dir", str(run)]
    if nproc > 1:
        command += ["--nproc", str(nproc)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def assert_same_weights(a: Path, b: Path, atol: float = 1e-5) -> None:
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert wa.keys() == wb.keys()
    for name in wa:
        torch.testing.assert_close(wb[name], wa[name], rtol=0, atol=atol, msg=name)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> dict[str, Path]:
    """One process for 6 steps; two processes for 3 steps resumed by one process to 6 (a
    change of world size); two processes for 6 steps. Global batch 8 throughout; the last batch
    of an epoch has 40 − 32 = 8 images, split 4 + 4."""
    root = tmp_path_factory.mktemp("ddp")
    runs = {name: root / name for name in ("single", "resumed", "double")}
    train(runs["single"], data_dir, *TINY, "--max-steps", "6")
    train(runs["resumed"], data_dir, *TINY, "--max-steps", "3", nproc=2)
    train(runs["resumed"], data_dir, "--resume", str(runs["resumed"]), "--max-steps", "6")
    train(runs["double"], data_dir, *TINY, "--max-steps", "6", nproc=2)
    return runs


def test_two_processes_give_the_weights_of_one_with_the_same_global_batch(runs) -> None:
    """Float tolerance: DDP averages the two halves' gradients, one process sums one batch."""
    assert_same_weights(runs["single"] / "last", runs["double"] / "last")
    state = json.loads((runs["double"] / "last" / "trainer_state.json").read_text())
    assert state["global_step"] == 6  # 5 steps of 8 make an epoch of 40 images


def test_resuming_on_another_world_size_continues_the_run(runs) -> None:
    assert_same_weights(runs["single"] / "last", runs["resumed"] / "last")


def test_sharded_evaluation_sums_every_image_exactly(runs, data_dir: Path) -> None:
    """The 2-process test NLL equals a one-process evaluation of the same weights: 20 images,
    batches of 8 split between the ranks (8 + 4 on rank 0, 8 on rank 1), nats summed."""
    stored = json.loads((runs["double"] / "results.json").read_text())
    model = pixelrnn.load_pretrained(runs["double"] / "best")
    test = load_dataset("binarized-mnist", "test", data_dir)
    exact = evaluate_nll(model, test, batch_size=8, max_images=20)
    assert stored["num_images"] == 20
    assert stored["nats_per_image"] == pytest.approx(exact.nats_per_image, rel=1e-6)


def test_only_rank_zero_writes(runs) -> None:
    lines = (runs["double"] / "metrics.jsonl").read_text().splitlines()
    steps = [json.loads(line)["step"] for line in lines if '"train"' in line]
    assert steps == sorted(set(steps))  # one line per step, not one per rank


@pytest.mark.parametrize(("n", "world"), [(8, 2), (9, 2), (3, 4), (0, 2)])
def test_shards_cover_every_item_once(n: int, world: int) -> None:
    shards = [DistributedContext(rank, world).shard(n) for rank in range(world)]
    covered = [i for s in shards for i in range(n)[s]]
    assert covered == list(range(n))
    assert max(len(range(n)[s]) for s in shards) - min(len(range(n)[s]) for s in shards) <= 1


def test_ema_and_data_init_agree_across_process_counts(tmp_path: Path, data_dir: Path) -> None:
    """PixelCNN++ with data-dependent initialisation and Polyak averaging: two processes take
    the steps of one — raw weights and averaged weights alike (dropout off: its masks are
    per-rank draws)."""
    args = [*TINY, "--max-steps", "3", "--ema-decay", "0.9"]
    args[1] = "pixelcnnpp-tiny"
    args += ["--nr-filters", "4", "--dropout", "0.0", "--data-init-images", "8"]
    train(tmp_path / "one", data_dir, *args)
    train(tmp_path / "two", data_dir, *args, nproc=2)
    assert_same_weights(tmp_path / "one" / "last", tmp_path / "two" / "last")
    one = load_file(str(tmp_path / "one" / "last" / "trainer_state.safetensors"))
    two = load_file(str(tmp_path / "two" / "last" / "trainer_state.safetensors"))
    raw = [k for k in one if k.startswith("train_weights.")]
    assert raw
    for name in raw:
        torch.testing.assert_close(two[name], one[name], rtol=0, atol=1e-5, msg=name)
