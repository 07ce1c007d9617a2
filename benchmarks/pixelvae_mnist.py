"""PixelVAE against a PixelCNN with the same autoregressive layers, on binarized MNIST.

For a trained PixelVAE run and a trained PixelCNN run (the same decoder size, the same training
budget), on the test split:

* PixelVAE: the importance-weighted bound with ``K`` samples and the ELBO (nats per image; upper
  bounds on the NLL), the KL in nats and the number of active latent units (posterior means
  whose variance over the test images exceeds 0.01);
* PixelCNN: the exact NLL;
* both: seconds to sample 16 images with the cached sampler.

    python benchmarks/pixelvae_mnist.py --vae RUN --pixelcnn RUN --data-dir DATA -k 10 \
        --output benchmarks/results/pixelvae_mnist.json
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
from pixelrnn.distributions.gaussian import active_units


@torch.no_grad()
def latent_figures(model, x: torch.Tensor, k: int, batch: int) -> dict[str, float]:
    """Means over the images of the bounds and the KL, and the active units."""
    g = torch.Generator().manual_seed(0)
    totals = {"iw": 0.0, "elbo": 0.0, "kl": 0.0}
    means = []
    for start in range(0, len(x), batch):
        part = x[start : start + batch]
        bounds = model.bounds(part, num_samples=k, generator=g)
        for name in totals:
            totals[name] += float(bounds[name].double().sum())
        means.append(model.encode(part)[0].flatten(1))
    n = len(x)
    return {
        "iw_bound_nats": -totals["iw"] / n,
        "elbo_bound_nats": -totals["elbo"] / n,
        "kl_nats": totals["kl"] / n,
        "active_units": active_units(torch.cat(means)),
        "latent_dims": int(torch.cat(means).shape[1]),
    }


@torch.no_grad()
def exact_nll(model, x: torch.Tensor, batch: int) -> float:
    total = sum(
        float(-model.log_prob(x[s : s + batch]).double().sum()) for s in range(0, len(x), batch)
    )
    return total / len(x)


def sample_seconds(model) -> float:
    pixelrnn.sample(model, 2)  # warm-up
    start = time.perf_counter()
    pixelrnn.sample(model, 16, generator=torch.Generator().manual_seed(0))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vae", required=True)
    parser.add_argument("--pixelcnn", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("-k", type=int, default=100, help="importance samples")
    parser.add_argument("--max-images", type=int)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--output")
    args = parser.parse_args()
    data = load_dataset("binarized-mnist", "test", args.data_dir)
    n = len(data) if args.max_images is None else min(args.max_images, len(data))
    x = data.batch(slice(0, n))
    vae = pixelrnn.load_pretrained(args.vae).eval()
    cnn = pixelrnn.load_pretrained(args.pixelcnn).eval()
    report = {
        "images": n,
        "k": args.k,
        "pixelvae": {
            **latent_figures(vae, x, args.k, args.batch_size),
            "sample_16_s": sample_seconds(vae),
        },
        "pixelcnn": {
            "nll_nats": exact_nll(cnn, x, args.batch_size),
            "sample_16_s": sample_seconds(cnn),
        },
        "machine": machine_info(),
    }
    print(json.dumps(report, indent=2))
    if args.output:
        Path(args.output).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
