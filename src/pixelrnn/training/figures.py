"""The figures a run draws: sample grids and a completion grid."""

from __future__ import annotations

from pathlib import Path

import torch

from pixelrnn.data import ImageDataset
from pixelrnn.images import save_image_grid
from pixelrnn.models.base import AutoregressiveModel
from pixelrnn.sampling import completion_grid_images, occlusion_mask, sample, sample_grid
from pixelrnn.training.config import TrainConfig
from pixelrnn.training.evaluate import check_fits, context_map
from pixelrnn.training.seeding import make_generator


def draw_samples(
    model: AutoregressiveModel,
    num: int,
    generator: torch.Generator,
    path: Path,
    source: ImageDataset | None = None,
) -> None:
    """A grid of ``num`` samples; one row per class for a conditional model. A model that
    reads a conditioning map per image samples given the maps (and labels) of ``num`` images
    evenly spaced through ``source``."""
    if model.config.context_channels is None:
        images, ncols = sample_grid(model, num, generator)
        save_image_grid(images, model.num_levels, path, ncols=ncols)
        return
    if source is None or source.context is None:
        raise ValueError("a model reading a conditioning map samples given a split's maps")
    save_image_grid(samples_given_maps(model, source, num, generator), model.num_levels, path)


def samples_given_maps(
    model: AutoregressiveModel,
    source: ImageDataset,
    num: int,
    generator: torch.Generator | None,
    temperature: float = 1.0,
) -> torch.Tensor:
    """A model reading a conditioning map per image: one sample given the map (and label) of
    each of ``num`` images evenly spaced through ``source``. Returns ``(n, C, H, W)``."""
    check_fits(source, model)
    index = torch.linspace(0, len(source) - 1, min(num, len(source))).long()
    device = next(model.parameters()).device
    y = None if model.num_classes is None else source.labels_at(index).to(device)
    with model.conditioned_on(context_map(source, index, model)):
        return sample(model, len(index), generator=generator, temperature=temperature, y=y)


def draw_completions(
    model: AutoregressiveModel,
    source: ImageDataset,
    num_completions: int,
    data_generator: torch.Generator,
    generator: torch.Generator,
    path: Path,
) -> None:
    """Up to 8 images evenly spaced through ``source`` (a split may be sorted by class), their
    bottom halves hidden, and ``num_completions`` completions of each, one column per image.

    ``data_generator`` draws the images (dynamic binarization), ``generator`` the completions.
    """
    device = next(model.parameters()).device
    n = min(8, len(source))
    index = torch.linspace(0, len(source) - 1, n).long()
    x = source.batch(index, data_generator).to(device)
    known = occlusion_mask(tuple(x.shape), "bottom-half").to(device)
    y = None if model.num_classes is None else source.labels_at(index).to(device)
    context = context_map(source, index, model)
    grid, hidden = completion_grid_images(
        model, x, known, num_completions, generator, y, context=context
    )
    save_image_grid(grid, model.num_levels, path, ncols=n, hidden=hidden)


def draw_final_figures(
    model: AutoregressiveModel, config: TrainConfig, source: ImageDataset | None, run_dir: Path
) -> None:
    """The figures of a finished run: ``samples.png`` (``config.num_samples``) and
    ``completions.png`` (``config.num_completions`` rows, of images of ``source``)."""
    device = next(model.parameters()).device
    if config.num_samples:
        generator = make_generator(config.seed, "samples", "final", device=device)
        draw_samples(model, config.num_samples, generator, run_dir / "samples.png", source)
    if config.num_completions and source is not None:
        draw_completions(
            model,
            source,
            config.num_completions,
            make_generator(config.seed, "completion-data"),
            make_generator(config.seed, "completions", device=device),
            run_dir / "completions.png",
        )
