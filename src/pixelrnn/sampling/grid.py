"""Sample grids: plain ones, and one row per class for conditional models."""

from __future__ import annotations

import torch

from pixelrnn.models.base import AutoregressiveModel
from pixelrnn.sampling.generation import sample


def sample_grid(
    model: AutoregressiveModel,
    num: int,
    generator: torch.Generator | None = None,
    label: int | None = None,
    temperature: float = 1.0,
    progress: bool = False,
    method: str = "cached",
) -> tuple[torch.Tensor, int | None]:
    """Draw the images of a sample figure and say how many columns it has.

    * unconditional model: ``num`` samples, square-ish grid (``ncols`` None);
    * conditional model with ``label``: ``num`` samples of that class;
    * conditional model without: a class grid, one row per class with
      ``max(1, num // num_classes)`` samples each.

    ``method``: ``"cached"`` or ``"naive"`` (see :func:`pixelrnn.sampling.sample`).

    Returns:
        int64 images ``(N, C, H, W)`` and the number of grid columns (None: automatic).
    """
    options = dict(generator=generator, temperature=temperature, progress=progress, method=method)
    classes = model.num_classes
    if classes is None:
        if label is not None:
            raise ValueError(
                f"--label needs a class-conditional model; this {model.model_name} is unconditional"
            )
        return sample(model, num, **options), None
    if label is not None:
        if not 0 <= label < classes:
            raise ValueError(f"label must lie in [0, {classes}), got {label}")
        return sample(model, num, y=label, **options), None
    per_class = max(1, num // classes)
    y = torch.arange(classes).repeat_interleave(per_class)
    images = sample(model, len(y), y=y, **options)
    return images, per_class
