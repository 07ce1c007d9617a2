"""Microseconds per draw of the output distributions at one pixel: compiled vs PyTorch.

A cached generation step ends with a draw at one pixel per image; at batch 1 the draw's dozens
of tiny tensor operations can cost more than the compiled network step itself. This script
times ``distribution.sample`` on parameters of shape ``(B, P, 1, 1)`` — the logistic mixture's
compiled draw (``csrc/logistic_mixture_sample.cpp``) against its PyTorch operations
(``_sample_reference``), and the Bernoulli and softmax draws for scale — interleaving the two
mixture paths over ``--rounds`` rounds and reporting each one's best round (the machine is
shared and drifts).

    python benchmarks/draw_time.py --batch-size 1 16 --output benchmarks/results/draw_time.json
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import torch

from machine import machine_info
from pixelrnn.distributions import make_distribution


def per_call(fn: Callable[[], object], calls: int) -> float:
    """Microseconds per call over ``calls`` calls."""
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--components", type=int, default=5)
    parser.add_argument("--channels", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--calls", type=int, default=1000, help="draws per timing round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--output")
    args = parser.parse_args()
    torch.set_num_threads(1)  # what the cached loop uses for these models
    generator = torch.Generator().manual_seed(0)
    rows = []
    with torch.no_grad():
        for batch in args.batch_size:
            for channels in args.channels:
                mixture = make_distribution(f"logistic_mixture:{args.components}", 256)
                params = torch.randn(batch, mixture.num_params(channels), 1, 1)
                paths = {
                    "logistic_mixture compiled": lambda p=params, d=mixture: d.sample(p, generator),
                    "logistic_mixture pytorch": lambda p=params, d=mixture, c=channels: (
                        d._sample_reference(p, generator, 1.0, c)
                    ),
                }
                for name in ("bernoulli", "categorical"):
                    if name == "bernoulli" and channels != 1:
                        continue
                    dist = make_distribution(name, 2 if name == "bernoulli" else 256)
                    p = torch.randn(batch, dist.num_params(channels), 1, 1)
                    paths[name] = lambda p=p, d=dist: d.sample(p, generator)
                best = {name: float("inf") for name in paths}
                for _ in range(args.rounds):
                    for name, fn in paths.items():
                        fn()  # warm-up (and the compiled kernels' first build)
                        best[name] = min(best[name], per_call(fn, args.calls))
                for name, us in best.items():
                    print(f"batch {batch:3d}  {channels} channel(s)  {name:28s} {us:8.1f} µs")
                    rows.append(
                        {
                            "benchmark": "draw_time",
                            "distribution": name,
                            "batch_size": batch,
                            "channels": channels,
                            "microseconds_per_draw": us,
                            "rounds": args.rounds,
                            "calls_per_round": args.calls,
                            "machine": machine_info(),
                        }
                    )
    if args.output:
        with open(args.output, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
