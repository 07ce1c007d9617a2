"""``pixelrnn sample``: a sample grid, or for a latent model (PixelVAE) one of its figures —
the hierarchy's ``vary-top`` / ``vary-bottom`` / ``vary-noise`` grids, reconstructions of a
split's images, or interpolations between them."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch

from pixelrnn.cli.commands import load_model, run_data_settings
from pixelrnn.data import load_dataset
from pixelrnn.files import atomic_write
from pixelrnn.images import save_image_grid
from pixelrnn.models import AutoregressiveModel
from pixelrnn.models.pixelvae import PixelVAE
from pixelrnn.sampling import sample_grid
from pixelrnn.sampling.latent_grids import (
    LATENT_GRIDS,
    interpolations,
    latent_grid,
    reconstructions,
)
from pixelrnn.training import make_generator
from pixelrnn.training.code_prior import (
    is_code_prior,
    recorded_vqvae,
    sample_two_stage,
    top_prior_for,
)
from pixelrnn.training.figures import samples_given_maps

GRIDS = (*LATENT_GRIDS, "reconstructions", "interpolation")
RECONSTRUCTION_ROWS = 3  # draws from p(x | z) under each image
INTERPOLATION_STEPS = 8


def cmd_sample(args: argparse.Namespace) -> int:
    model = load_model(args)
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(args.seed)
    if args.grid is not None:
        return _latent_figure(model, args, generator)
    if is_code_prior(args.run_dir):
        return _two_stage_samples(model, args, generator)
    if model.config.context_channels is not None:
        x, ncols = _samples_given_maps(model, args, generator), None
    else:
        x, ncols = sample_grid(
            model, args.num or 64, generator, args.label, args.temperature, True, args.method
        )
    output = Path(args.output)
    what = "samples" if ncols is None else f"samples, one row per class ({ncols} per class)"
    if args.label is not None:
        what = f"samples of class {args.label}"
    if output.suffix == ".npy":  # the values themselves (e.g. codes), and a picture of them
        atomic_write(output, lambda tmp: _save_npy(tmp, x))
        preview = output.with_suffix(".png")
        save_image_grid(x, model.num_levels, preview, ncols=ncols)
        print(f"wrote {len(x)} {what} to {output} ({tuple(x.shape)} int64), preview {preview}")
        return 0
    save_image_grid(x, model.num_levels, output, ncols=ncols)
    print(f"wrote {len(x)} {what} to {output}")
    return 0


def _samples_given_maps(
    model: AutoregressiveModel, args: argparse.Namespace, generator: torch.Generator
) -> torch.Tensor:
    """A model reading a conditioning map per image: one sample given the map (and label) of
    each of ``-n`` grids evenly spaced through ``--split`` of its data."""
    dataset, binarize, data_dir = run_data_settings(args.run_dir, args)
    data = load_dataset(dataset, args.split, data_dir, binarize=binarize)
    return samples_given_maps(model, data, args.num or 64, generator, args.temperature)


def _two_stage_samples(
    prior: AutoregressiveModel, args: argparse.Namespace, generator: torch.Generator
) -> int:
    """Codes from the prior, decoded by its VQ-VAE: a PNG of the images; with ``-o X.npy``
    the codes in ``X.npy`` and the images in ``X.png``."""
    vqvae = recorded_vqvae(args.run_dir, args.vqvae, generator.device)
    top_prior = top_prior_for(args.run_dir, vqvae, args.top_prior, generator.device)
    n = args.num or 64
    codes, images = sample_two_stage(
        prior, vqvae, n, generator, args.temperature, y=args.label, top_prior=top_prior
    )
    output = Path(args.output)
    picture = output.with_suffix(".png") if output.suffix == ".npy" else output
    if output.suffix == ".npy":  # the bottom codes (a two-level model's top ones: X.top.npy)
        atomic_write(output, lambda tmp: _save_npy(tmp, codes[0]))
        if len(codes) > 1:
            top = output.with_suffix(".top.npy")
            atomic_write(top, lambda tmp: _save_npy(tmp, codes[1]))
    save_image_grid(images, vqvae.num_levels, picture)
    shapes = " and ".join(str(tuple(level.shape)) for level in codes)
    codes_note = f", their codes {shapes} in {output}" if output != picture else ""
    print(f"wrote {n} images decoded from the prior's codes to {picture}{codes_note}")
    return 0


def _save_npy(path: Path, x: torch.Tensor) -> None:
    with open(path, "wb") as f:
        np.save(f, x.cpu().numpy())


def _latent_figure(
    model: AutoregressiveModel, args: argparse.Namespace, generator: torch.Generator
) -> int:
    if not isinstance(model, PixelVAE):
        raise ValueError(
            f"--grid {args.grid} needs a latent model (PixelVAE), not a {model.model_name}"
        )
    if args.grid in LATENT_GRIDS:
        n = args.num or 64
        columns = math.ceil(math.sqrt(n))
        rows = max(1, n // columns)
        x = latent_grid(model, args.grid, rows, columns, generator, args.temperature)
        save_image_grid(x, model.num_levels, args.output, ncols=columns)
        print(f"wrote a {rows}x{columns} {args.grid} grid to {args.output}")
        return 0
    n = args.num or 8
    dataset, binarize, data_dir = run_data_settings(args.run_dir, args)
    data = load_dataset(dataset, args.split, data_dir, binarize=binarize)
    count = n if args.grid == "reconstructions" else 2 * n
    if count > len(data):
        raise ValueError(f"{dataset}/{args.split} has {len(data)} images, {count} are needed")
    device = generator.device
    # evenly spaced through the split (a split may be sorted by class)
    index = torch.linspace(0, len(data) - 1, count).long()
    x = data.batch(index, make_generator(args.seed, "data")).to(device)
    if args.grid == "reconstructions":
        grid = reconstructions(model, x, RECONSTRUCTION_ROWS, generator)
        save_image_grid(grid, model.num_levels, args.output, ncols=n)
        print(
            f"wrote {n} {args.split} images and {RECONSTRUCTION_ROWS} rows of their "
            f"reconstructions to {args.output}"
        )
        return 0
    grid = interpolations(model, x[:n], x[n:], INTERPOLATION_STEPS, generator)
    save_image_grid(grid, model.num_levels, args.output, ncols=INTERPOLATION_STEPS + 2)
    print(f"wrote {n} latent interpolations between {args.split} images to {args.output}")
    return 0
