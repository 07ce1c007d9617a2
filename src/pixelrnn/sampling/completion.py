"""Completion figures: which pixels an occlusion hides, and the rows of a completion grid."""

from __future__ import annotations

import torch

from pixelrnn.models.base import AutoregressiveModel
from pixelrnn.sampling.generation import complete

OCCLUSIONS = ("bottom-half", "right-half", "center")


def occlusion_mask(shape: tuple[int, ...], kind: str) -> torch.Tensor:
    """``known`` mask for an occlusion: ``bottom-half``, ``right-half`` or ``center``.

    Shape:
        ``(B, C, H, W)`` → bool ``(B, C, H, W)``, True where the pixel is given.
    """
    known = torch.ones(shape, dtype=torch.bool)
    h, w = shape[-2], shape[-1]
    if kind == "bottom-half":
        known[..., h // 2 :, :] = False
    elif kind == "right-half":
        known[..., :, w // 2 :] = False
    elif kind == "center":
        known[..., h // 4 : h - h // 4, w // 4 : w - w // 4] = False
    else:
        raise ValueError(f"occlusion must be one of {OCCLUSIONS}, got {kind!r}")
    return known


def completion_grid_images(
    model: AutoregressiveModel,
    x: torch.Tensor,
    known: torch.Tensor,
    num_completions: int,
    generator: torch.Generator | None,
    y: torch.Tensor | None = None,
    method: str = "cached",
    context: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of a completion figure: originals, occluded inputs, then ``num_completions`` rows.

    ``y``: the images' labels ``(B,)`` for a conditional model; ``method``: sampling method;
    ``context``: the images' conditioning maps ``(B, c, H, W)`` for a model that reads one.

    Returns:
        the images ``((2 + num_completions) · B, C, H, W)`` and a bool mask of the same shape
        that is True on the hidden sub-pixels of the occluded row (drawn grey).
    """
    repeated_x = x.repeat(num_completions, 1, 1, 1)
    repeated_known = known.repeat(num_completions, 1, 1, 1)
    repeated_y = None if y is None else y.repeat(num_completions)
    repeated_context = None if context is None else context.repeat(num_completions, 1, 1, 1)
    with model.conditioned_on(repeated_context):
        completions = complete(
            model, repeated_x, repeated_known, generator=generator, y=repeated_y, method=method
        )
    images = torch.cat([x, x, completions])
    hidden = torch.zeros_like(images, dtype=torch.bool)
    hidden[len(x) : 2 * len(x)] = ~known
    return images, hidden
