"""PixelVAEs against autoregressive models with the same layers, on binarized MNIST.

For trained latent runs (``--latent``: PixelVAE, one level or two) and trained pixel-level runs
(``--exact``: e.g. a PixelCNN and a Gated PixelCNN of the same decoder size and training
budget), on the test split:

* latent runs: the importance-weighted bound with ``K`` samples and the ELBO (nats per image;
  upper bounds on the NLL), the KL in nats and the active latent units (posterior means whose
  variance over the test images exceeds 0.01) — ``pixelrnn evaluate``'s figures;
* pixel-level runs: the exact NLL;
* all: seconds to sample 16 images with the cached sampler (the fastest of three draws;
  ``--sampling-only`` times only this, for a quiet machine).

    python benchmarks/pixelvae_mnist.py --latent RUN [RUN ...] --exact RUN [RUN ...] \
        --data-dir DATA -k 100 --output benchmarks/results/pixelvae_mnist.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import pixelrnn
from machine import machine_info
from pixelrnn.data import load_dataset
from pixelrnn.training import evaluate_nll


def sample_seconds(model: pixelrnn.AutoregressiveModel, repeats: int = 3) -> float:
    """The fastest of ``repeats`` draws of 16 images, after a warm-up."""
    pixelrnn.sample(model, 2)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        pixelrnn.sample(model, 16, generator=torch.Generator().manual_seed(0))
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latent", nargs="+", required=True, help="PixelVAE run folders")
    parser.add_argument("--exact", nargs="*", default=[], help="pixel-level run folders")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("-k", type=int, default=100, help="importance samples")
    parser.add_argument("--max-images", type=int)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument(
        "--sampling-only", action="store_true", help="time the sampling only (no evaluation)"
    )
    parser.add_argument("--output")
    args = parser.parse_args()
    data = load_dataset("binarized-mnist", "test", args.data_dir)
    runs = {}
    for folder in [*args.latent, *args.exact]:
        model = pixelrnn.load_pretrained(folder).eval()
        name = Path(folder).name
        if name in ("best", "last"):  # a run's checkpoint: named by its run
            name = Path(folder).parent.name
        runs[name] = {
            "model": model.model_name,
            "layers": model.config.num_layers,
            "parameters": sum(p.numel() for p in model.parameters()),
        }
        if not args.sampling_only:
            start = time.perf_counter()
            result = evaluate_nll(
                model, data, args.batch_size, max_images=args.max_images, importance_samples=args.k
            )
            runs[name] |= {**result.to_dict(), "evaluate_s": time.perf_counter() - start}
        runs[name]["sample_16_s"] = sample_seconds(model)
        print(json.dumps({name: runs[name]}, indent=2), flush=True)
    report = {"k": args.k, "runs": runs, "machine": machine_info()}
    if args.output:
        Path(args.output).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
