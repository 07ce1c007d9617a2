"""Seconds to sample images with the (naive, reference) sampling engine.

    python benchmarks/sample_time.py --preset pixelcnn-mnist --num-images 16 \
        --output benchmarks/results/sample_time.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import pixelrnn
from machine import machine_info, peak_rss_mib


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", nargs="+", default=["pixelcnn-mnist"])
    parser.add_argument("--num-images", type=int, nargs="+", default=[16])
    parser.add_argument("--output")
    args = parser.parse_args()
    results = []
    for preset in args.preset:
        torch.manual_seed(0)
        model = pixelrnn.create_model(preset=preset)
        for n in args.num_images:
            start = time.perf_counter()
            model.sample(n, generator=torch.Generator().manual_seed(0))
            seconds = time.perf_counter() - start
            results.append(
                {
                    "benchmark": "sample_time",
                    "preset": preset,
                    "method": "naive",
                    "num_images": n,
                    "seconds": seconds,
                    "seconds_per_image": seconds / n,
                    "peak_rss_mib": peak_rss_mib(),
                    "machine": machine_info(),
                }
            )
            print(f"{preset:24s} {n:4d} images  {seconds:8.2f} s  ({seconds / n:.3f} s/image)")
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
