"""Seconds to sample images, naive (whole network per step) vs cached (per-layer caches).

    python benchmarks/sample_time.py --preset pixelcnn-mnist gated-pixelcnn-mnist \
        --batch-size 1 16 64 --output benchmarks/results/sample_time.json

``--preset`` also takes the names in ``configs.SAME_SIZE`` (e.g. the small PixelCNN++,
``pixelcnnpp-1x32-mix5``). A naive multi-scale step is one forward pass of the whole model
(both stages), which is how its FLOPs are counted.

The naive loop costs the same at every step (it always runs the whole network), so with
``--naive-steps N`` it is timed over its first ``N`` steps and scaled to all of them; such
rows say ``"extrapolated_from_steps": N``. Cached times are always whole generations, the
median of ``--repeats`` runs (they take well under a second, and the machine is shared).

Each row also gives the floating-point work of the method (``FlopCounterMode``: the cached
generation counted whole; the naive one as one forward pass times the number of steps) and the
rate achieved, beside this process's dense matrix-product rate (``matmul_gflops``): how far a
method is from the cost of the operations it strictly needs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

import pixelrnn
from configs import build
from machine import machine_info, matmul_gflops, peak_rss_mib
from pixelrnn.models import MultiScalePixelRNN
from pixelrnn.native import native_available
from pixelrnn.sampling import generation_rank


def num_steps(model: pixelrnn.AutoregressiveModel) -> int:
    """Generation steps per image: one per sub-pixel, or per pixel for a joint distribution."""
    c, h, w = model.image_shape
    return h * w if model.distribution.joint_channels else c * h * w


def time_generation(
    model: pixelrnn.AutoregressiveModel, n: int, method: str, max_steps: int | None
) -> tuple[float, int | None]:
    """Seconds to sample ``n`` images (``model.complete`` with nothing known: what ``sample``
    runs); with ``max_steps``, the naive loop of a single-stage model is timed over its first
    ``max_steps`` steps (the rest of the image given as known) and scaled up."""
    x = torch.zeros((n, *model.image_shape), dtype=torch.long)
    known = torch.zeros_like(x, dtype=torch.bool)
    y = None if model.num_classes is None else torch.arange(n) % model.num_classes
    g = torch.Generator().manual_seed(0)
    total_steps = num_steps(model)
    single_stage = not isinstance(model, MultiScalePixelRNN)
    if method == "naive" and single_stage and max_steps is not None and max_steps < total_steps:
        # every step after the first max_steps is given: the loop skips those steps
        order = generation_rank(model)  # (C, H, W)
        if model.distribution.joint_channels:
            order = order // model.image_shape[0]  # whole pixels
        known = (order >= max_steps).expand_as(x).contiguous()
        start = time.perf_counter()
        pixelrnn.complete(model, x, known, generator=g, y=y, method="naive")
        return (time.perf_counter() - start) * total_steps / max_steps, max_steps
    start = time.perf_counter()
    pixelrnn.complete(model, x, known, generator=g, y=y, method=method)
    return time.perf_counter() - start, None


def count_flops(model: pixelrnn.AutoregressiveModel, n: int, method: str) -> float:
    """Floating-point operations of generating ``n`` images with ``method``."""
    x = torch.zeros((n, *model.image_shape), dtype=torch.long)
    y = None if model.num_classes is None else torch.arange(n) % model.num_classes
    native_available()  # load the compiled kernels first: the counter copies the formulas
    # (grad mode on: the counter's module hooks trip over parameters used under no_grad)
    with FlopCounterMode(display=False) as counter:
        if method == "naive":  # every step is one forward pass of the whole network
            model(x, y) if y is not None else model(x)
        else:
            pixelrnn.complete(model, x, torch.zeros_like(x, dtype=torch.bool), y=y, method="cached")
    steps = num_steps(model) if method == "naive" else 1
    return float(counter.get_total_flops()) * steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", nargs="+", default=["pixelcnn-mnist"])
    parser.add_argument("--batch-size", type=int, nargs="+", default=[16])
    parser.add_argument("--method", nargs="+", default=["naive", "cached"])
    parser.add_argument(
        "--naive-steps",
        type=int,
        help="time the naive loop over this many steps and scale up (it costs the same per step)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="cached runs per figure (median)")
    parser.add_argument("--output")
    args = parser.parse_args()
    results = []
    peak = matmul_gflops()
    print(f"dense matmul: {peak:.0f} GFLOP/s with {torch.get_num_threads()} threads")
    for preset in args.preset:
        torch.manual_seed(0)
        model = build(preset).eval()
        for n in args.batch_size:
            row = {}
            for method in args.method:
                repeats = args.repeats if method == "cached" else 1
                runs = [time_generation(model, n, method, args.naive_steps) for _ in range(repeats)]
                seconds, steps = statistics.median(r[0] for r in runs), runs[0][1]
                flops = count_flops(model, n, method)
                row[method] = seconds
                results.append(
                    {
                        "benchmark": "sample_time",
                        "preset": preset,
                        "method": method,
                        "num_images": n,
                        "seconds": seconds,
                        "seconds_per_image": seconds / n,
                        "extrapolated_from_steps": steps,
                        "gflop": flops / 1e9,
                        "achieved_gflops": flops / seconds / 1e9,
                        "matmul_gflops": peak,
                        "threads": torch.get_num_threads(),
                        "peak_rss_mib": peak_rss_mib(),
                        "machine": machine_info(),
                    }
                )
                note = f" (from {steps} steps)" if steps else ""
                print(
                    f"{preset:24s} batch {n:3d} {method:6s} {seconds:9.2f} s{note}  "
                    f"{flops / 1e9:9.2f} GFLOP at {flops / seconds / 1e9:6.1f} GFLOP/s"
                )
            if "naive" in row and "cached" in row:
                print(f"{preset:24s} batch {n:3d} speed-up {row['naive'] / row['cached']:.1f}x")
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
