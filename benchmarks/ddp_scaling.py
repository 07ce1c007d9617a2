"""Scaling of data-parallel training from 1 to N processes on this machine.

Runs ``pixelrnn train --nproc N`` (DDP over gloo on CPU, launched with torchrun) for a fixed
number of steps at a fixed global batch, with ``threads`` intra-op threads per process, and
reads the training images/s that rank 0 logs (median over the logged windows after the first).

    python benchmarks/ddp_scaling.py --preset pixelcnn-mnist --steps 300 \
        --output benchmarks/results/ddp_scaling.json
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


def run(preset: str, nproc: int, threads: int, steps: int, batch: int, data_dir: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        command = [sys.executable, "-m", "pixelrnn", "train", "--preset", preset]
        command += ["--max-steps", str(steps), "--batch-size", str(batch), "--epochs", "1000"]
        command += ["--valid-split", "none", "--test-split", "none", "--num-samples", "0"]
        command += ["--num-completions", "0", "--log-every", "20", "--device", "cpu"]
        command += ["--nproc", str(nproc), "--run-dir", str(run_dir)]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PIXELRNN_DATA": data_dir}
        subprocess.run(command, check=True, env=env, capture_output=True)
        lines = (run_dir / "metrics.jsonl").read_text().splitlines()
        rates = [json.loads(line)["images_per_second"] for line in lines if '"train"' in line]
    return {
        "benchmark": "ddp_scaling",
        "preset": preset,
        "processes": nproc,
        "threads_per_process": threads,
        "global_batch": batch,
        "steps": steps,
        "images_per_second_median": statistics.median(rates[1:]),
        "images_per_second_windows": rates,
        "machine": machine_info(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="pixelcnn-mnist")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--data-dir", default=os.environ.get("PIXELRNN_DATA", "../shared/data"))
    parser.add_argument("--output")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    # one process with one thread (the per-core baseline), one with every core, and one
    # process per core with one thread each
    configs = [(1, 1), (1, cores), (cores, 1)]
    results = []
    for nproc, threads in configs:
        r = run(args.preset, nproc, threads, args.steps, args.batch_size, args.data_dir)
        results.append(r)
        print(
            f"{nproc} process(es) x {threads} thread(s): {r['images_per_second_median']:.0f} img/s"
        )
    base = results[0]["images_per_second_median"]
    ddp = results[-1]["images_per_second_median"]
    print(f"scaling efficiency, 1 -> {cores} processes: {ddp / (cores * base):.0%}")
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
