"""Cached sampling against the batch size, per family: images/s, the share of this machine's
dense matmul rate, and peak memory.

Each (preset, batch) runs in a fresh process (so its peak resident memory is its own): the
model is built with seeded random weights, one small generation warms it up (and builds the
compiled kernels), then ``pixelrnn.sample(model, n)`` is timed: the fastest of three
generations up to 64 images (short runs swing most on a shared machine), once above. The
floating-point work is counted once per preset on 16 images (``FlopCounterMode``, the cached
generation whole) and scaled by the batch. The dense matmul rate is measured in the same
process just before and just after the timed generations (the mean of the two): a shared
machine's speed drifts by tens of percent within minutes, and the share of the matmul rate is
taken against the rate of that moment. (The peak memory includes that measurement's three
2048² matrices, 48 MiB.)

    python benchmarks/batch_sweep.py --output benchmarks/results/batch_sweep.json \
        --plot docs/figures/batch_sweep.png
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

import torch

from machine import machine_info
from pixelrnn.images import save_line_chart

PRESETS = [
    "pixelcnn-mnist",
    "gated-pixelcnn-mnist",
    "diagonal-bilstm-mnist",
    "row-lstm-mnist",
    "multiscale-pixelcnn-mnist",
    "pixelcnnpp-1x32-mix5",
    "pixelcnnpp-3x32",
]
BATCHES = [1, 16, 64, 256, 1024]

CHILD = r"""
import json, resource, sys, time
import torch
sys.path.insert(0, {benchmarks!r})
import pixelrnn
from configs import build
from machine import matmul_gflops
from sample_time import count_flops

preset, n, flops_too = {preset!r}, {n}, {flops_too}
torch.manual_seed(0)
model = build(preset).eval()
pixelrnn.sample(model, 2, generator=torch.Generator().manual_seed(1))  # warm-up
rates, times = [matmul_gflops()], []
for _ in range(3 if n <= 64 else 1):
    start = time.perf_counter()
    pixelrnn.sample(model, n, generator=torch.Generator().manual_seed(0))
    times.append(time.perf_counter() - start)
rates.append(matmul_gflops())
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before the counting run
flops = count_flops(model, 16, "cached") / 16 if flops_too else None
print(json.dumps({{"seconds": min(times), "flops_per_image": flops, "peak_rss_mib": rss,
                  "matmul_gflops": sum(rates) / 2}}))
"""


def run_child(preset: str, n: int, flops_too: bool) -> dict:
    code = CHILD.format(
        benchmarks=str(Path(__file__).parent), preset=preset, n=n, flops_too=flops_too
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{preset} at batch {n} failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", nargs="+", default=PRESETS)
    parser.add_argument("--batch-size", type=int, nargs="+", default=BATCHES)
    parser.add_argument("--output", help="results JSON")
    parser.add_argument("--plot", help="PNG of images/s against the batch size")
    args = parser.parse_args()
    print(f"{torch.get_num_threads()} threads", flush=True)
    rows, series = [], {}
    for preset in args.preset:
        flops_per_image = None
        for n in args.batch_size:
            child = run_child(preset, n, flops_per_image is None)
            flops_per_image = flops_per_image or child["flops_per_image"]
            images_per_s = n / child["seconds"]
            achieved = flops_per_image * images_per_s / 1e9
            rate = child["matmul_gflops"]
            row = {
                "preset": preset,
                "batch_size": n,
                "images_per_s": images_per_s,
                "mflop_per_image": flops_per_image / 1e6,
                "achieved_gflops": achieved,
                "matmul_gflops": rate,
                "share_of_matmul_rate": achieved / rate,
                "peak_rss_mib": child["peak_rss_mib"],
            }
            rows.append(row)
            series.setdefault(preset, []).append((math.log2(n), images_per_s))
            print(
                f"{preset:28s} batch {n:5d}  {images_per_s:8.1f} images/s  {achieved:6.1f} "
                f"GFLOP/s ({100 * achieved / rate:4.1f} % of matmul at {rate:.0f})  "
                f"peak {child['peak_rss_mib']:6.0f} MiB",
                flush=True,
            )
    if args.output:
        report = {"machine": machine_info(), "threads": torch.get_num_threads(), "rows": rows}
        Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
    if args.plot:
        save_line_chart(series, args.plot, "images/s", "log2(batch size)")


if __name__ == "__main__":
    main()
