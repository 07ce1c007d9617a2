"""Two-stage VQ-VAE models: the time to sample images, and the figures of trained runs.

``--timing``: seconds to draw 64 images with the two-stage model (codes from the prior with the
cached sampler, then one decoder pass) against the library's cached pixel-level sampler at the
same resolution. Sampling time depends on the architecture only, so the two-stage presets run
with fresh weights; the pixel-level models are the shipped ones.

``--vqvae RUN --prior RUN``: on the test split of the VQ-VAE's data set, the reconstruction
nats, the codebook usage, the prior's bits per code and the two-stage bound in bits/dim.

    python benchmarks/code_prior.py --timing --output results/code_prior_timing.json
    python benchmarks/code_prior.py --vqvae RUN --prior RUN --data-dir DATA \
        --output results/code_prior_mnist.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import torch

import pixelrnn
from machine import machine_info
from pixelrnn.data import load_dataset
from pixelrnn.models.vqvae import VQVAE
from pixelrnn.training import evaluate_nll
from pixelrnn.training.code_prior import evaluate_two_stage, sample_two_stage

# (two-stage presets, the pixel-level model at the same resolution)
PAIRS = {
    "mnist": (("vqvae-mnist", "vqvae-prior-mnist"), "gated-pixelcnn-mnist"),
    "cifar10": (("vqvae-cifar10", "vqvae-prior-cifar10"), "pixelcnnpp-cifar10-small"),
}


def seconds(draw: Any, repeats: int = 2) -> float:
    """The faster of ``repeats`` runs of ``draw()`` (after one warm-up with 2 images)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        draw()
        times.append(time.perf_counter() - start)
    return min(times)


def timing(n: int) -> dict[str, Any]:
    report = {}
    for name, ((vq_preset, prior_preset), pixel_name) in PAIRS.items():
        torch.manual_seed(0)
        vqvae = pixelrnn.create_model(preset=vq_preset).eval()
        assert isinstance(vqvae, VQVAE)
        h, w = vqvae.code_shape
        prior = pixelrnn.create_model(
            preset=prior_preset, image_shape=(1, h, w), num_levels=vqvae.config.num_codes
        ).eval()
        pixel = pixelrnn.load_pretrained(pixel_name).eval()
        sample_two_stage(prior, vqvae, 2)
        pixelrnn.sample(pixel, 2)
        g = torch.Generator().manual_seed(0)
        report[name] = {
            "images": n,
            "two_stage": f"{vq_preset} + {prior_preset} ({h}x{w} codes)",
            "two_stage_s": seconds(lambda p=prior, v=vqvae, r=g: sample_two_stage(p, v, n, r)),
            "pixel_level": pixel_name,
            "pixel_level_s": seconds(lambda m=pixel, r=g: pixelrnn.sample(m, n, generator=r)),
        }
        print(json.dumps({name: report[name]}, indent=2), flush=True)
    return report


def trained(vq_dir: str, prior_dir: str, data_dir: str, max_images: int | None) -> dict:
    vqvae = pixelrnn.load_pretrained(vq_dir).eval()
    prior = pixelrnn.load_pretrained(prior_dir).eval()
    stored = json.loads((Path(vq_dir) / "config.json").read_text())["training"]
    data = load_dataset(stored["dataset"], "test", data_dir, binarize=stored["binarize"])
    vq_alone = evaluate_nll(vqvae, data, 256, max_images=max_images)
    two_stage = evaluate_two_stage(prior, vqvae, data, 256, max_images)
    return {"vqvae": vq_alone.to_dict(), "two_stage": dataclasses.asdict(two_stage)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timing", action="store_true")
    parser.add_argument("-n", type=int, default=64, help="images to sample")
    parser.add_argument("--vqvae", help="a VQ-VAE checkpoint folder (RUN/best)")
    parser.add_argument("--prior", help="its prior's checkpoint folder (RUN/best)")
    parser.add_argument("--data-dir")
    parser.add_argument("--max-images", type=int)
    parser.add_argument("--output")
    args = parser.parse_args()
    report: dict[str, Any] = {"machine": machine_info()}
    if args.timing:
        report["timing"] = timing(args.n)
    if args.vqvae and args.prior:
        report["trained"] = trained(args.vqvae, args.prior, args.data_dir, args.max_images)
        print(json.dumps(report["trained"], indent=2))
    if args.output:
        Path(args.output).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
