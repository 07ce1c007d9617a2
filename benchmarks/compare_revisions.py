"""Training step time and cached sampling time of two revisions of the library, interleaved.

A restructuring must leave the speed as it was. Timings on a shared machine drift by more than
the differences worth seeing, so the two code trees are measured in turns: round ``r`` runs
every measurement on one tree, then on the other (the order alternating between rounds), each
in a fresh process with ``PYTHONPATH`` pointing at that tree's ``src/``. Both revisions are
checked out into temporary git worktrees, so editing this checkout meanwhile changes nothing.

Measured per preset (random weights, seeded):

* ``train``: seconds per optimizer step of ``Trainer.train_step`` (batch ``--batch-size`` of
  random binary images, the preset's own settings otherwise), the median of ``--steps`` steps
  after 3 warm-up steps;
* ``sample``: seconds for the cached sampler to draw ``--num-samples`` images.

    python benchmarks/compare_revisions.py --base HEAD~1 --work HEAD --rounds 3 \
        --output benchmarks/results/compare_revisions.json

Each tree builds its compiled kernels into its own ``TORCH_EXTENSIONS_DIR`` (the two trees'
sources differ, and a shared build folder would rebuild at every switch).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from machine import machine_info

REPO = Path(__file__).resolve().parents[1]

# Runs in the measured tree's interpreter; prints one JSON line. Works with either API
# (generation as model methods, or as pixelrnn.sample).
CHILD = r"""
import json, statistics, sys, tempfile, time
import torch
import pixelrnn
from pixelrnn.models import get_preset
from pixelrnn.training import TrainConfig, Trainer

preset, kind, batch, steps, num_samples = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
torch.manual_seed(0)
model = pixelrnn.create_model(preset=preset)
if kind == "sample":
    draw = getattr(pixelrnn, "sample", None)
    run = (lambda: draw(model, num_samples)) if draw else (lambda: model.sample(num_samples))
    run()  # warm-up (builds caches and kernels)
    start = time.perf_counter()
    run()
    print(json.dumps({"seconds": time.perf_counter() - start}))
    sys.exit()
p = get_preset(preset)
training = dict(p.training, dataset=p.dataset, binarize=p.binarize)
training.update(batch_size=batch, max_train_images=batch, valid_split=None, test_split=None)
config = TrainConfig.from_dict({**TrainConfig().to_dict(), **training})
with tempfile.TemporaryDirectory() as run_dir:
    trainer = Trainer(model, config, run_dir)
    c, h, w = model.image_shape
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, model.num_levels, (batch, c, h, w), generator=g)
    times = []
    for k in range(3 + steps):
        start = time.perf_counter()
        trainer.train_step(x)
        times.append(time.perf_counter() - start)
print(json.dumps({"seconds": statistics.median(times[3:])}))
"""


def measure(tree: Path, preset: str, kind: str, args: argparse.Namespace) -> float:
    """Seconds of one measurement in a fresh process on ``tree``'s source."""
    env = dict(
        os.environ,
        PYTHONPATH=str(tree / "src"),
        OMP_NUM_THREADS=str(args.threads),
        TORCH_EXTENSIONS_DIR=str(tree / ".torch_extensions"),
        PIXELRNN_NATIVE="1",
    )
    sizes = [str(args.batch_size), str(args.steps), str(args.num_samples)]
    out = subprocess.run(
        [sys.executable, "-c", CHILD, preset, kind, *sizes],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="HEAD~1", help="git revision to compare against")
    parser.add_argument("--work", default="HEAD", help="git revision to compare")
    parser.add_argument("--presets", nargs="+", default=["pixelcnn-mnist", "diagonal-bilstm-mnist"])
    parser.add_argument("--kinds", nargs="+", default=["train", "sample"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--num-samples", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        trees = {name: Path(tmp) / name for name in ("base", "work")}
        for name, tree in trees.items():
            subprocess.run(
                ["git", "worktree", "add", "--detach", str(tree), getattr(args, name)],
                cwd=REPO,
                check=True,
                capture_output=True,
            )
        try:
            times: dict[str, dict[str, list[float]]] = {}
            for r in range(args.rounds):
                order = ["base", "work"] if r % 2 == 0 else ["work", "base"]
                for name in order:
                    for preset in args.presets:
                        for kind in args.kinds:
                            t = measure(trees[name], preset, kind, args)
                            times.setdefault(f"{preset} {kind}", {}).setdefault(name, []).append(t)
                            print(f"round {r} {name:4s} {preset} {kind}: {t:.4f} s", flush=True)
        finally:
            for tree in trees.values():
                subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=REPO)

    revisions = {
        name: subprocess.run(
            ["git", "rev-parse", getattr(args, name)], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
        for name in ("base", "work")
    }
    summary = {
        key: {
            "base_median_s": statistics.median(v["base"]),
            "work_median_s": statistics.median(v["work"]),
            "work_over_base": statistics.median(v["work"]) / statistics.median(v["base"]),
            "base_s": v["base"],
            "work_s": v["work"],
        }
        for key, v in times.items()
    }
    for key, s in summary.items():
        print(
            f"{key}: base {s['base_median_s']:.4f} s, work {s['work_median_s']:.4f} s, "
            f"ratio {s['work_over_base']:.3f}"
        )
    record = {
        "machine": machine_info(),
        "revisions": revisions,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "results": summary,
    }
    if args.output:
        args.output.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
