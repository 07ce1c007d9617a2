"""The generation order (PixelRNN §2.1): which sub-pixels are drawn at each step, in order.

One list, :func:`generation_order`, that the naive and the cached loops iterate and the
causality tests rank against, so all three agree on what "earlier" means:

* raster order over pixels, then R→G→B inside a pixel — one step per sub-pixel, or one step per
  pixel (all channels at once) for a distribution that is joint over a pixel's channels;
* the Multi-Scale PixelRNN (PixelRNN §3.4): the small image's steps first (in its own order,
  at their places in the full image), then every other pixel in raster order.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from pixelrnn.models.base import AutoregressiveModel
from pixelrnn.models.multiscale import MultiScalePixelRNN


class Step(NamedTuple):
    """One generation step: the sub-pixels ``channels`` of pixel ``(row, col)``."""

    row: int
    col: int
    channels: tuple[int, ...]


def raster_order(image_shape: tuple[int, int, int], joint_channels: bool) -> list[Step]:
    """Raster order over pixels, then R→G→B (one step for all channels when joint)."""
    c, h, w = image_shape
    per_pixel = [tuple(range(c))] if joint_channels else [(ch,) for ch in range(c)]
    return [Step(i, j, channels) for i in range(h) for j in range(w) for channels in per_pixel]


def generation_order(model: AutoregressiveModel) -> list[Step]:
    """Every generation step of ``model``, in order."""
    joint = model.distribution.joint_channels
    if not isinstance(model, MultiScalePixelRNN):
        return raster_order(model.image_shape, joint)
    k = model.config.scale
    small = [Step(s.row * k, s.col * k, s.channels) for s in generation_order(model.small_model)]
    rest = [s for s in raster_order(model.image_shape, joint) if s.row % k or s.col % k]
    return small + rest


def generation_rank(model: AutoregressiveModel) -> torch.Tensor:
    """Rank of every sub-pixel in :func:`generation_order` (a joint step's channels count one
    after another, R→G→B).

    Shape: ``(C, H, W)`` int64.
    """
    rank = torch.empty(model.image_shape, dtype=torch.long)
    position = 0
    for step in generation_order(model):
        for ch in step.channels:
            rank[ch, step.row, step.col] = position
            position += 1
    return rank
