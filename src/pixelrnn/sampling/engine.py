"""The one generation loop, shared by sampling and completion (conventions §6).

This is the naive reference: every step re-runs the whole network on the partly generated
batch and draws the next sub-pixel (or pixel, for joint distributions) from its conditional.
An explicit boolean ``known`` mask says which entries are given and must be kept exactly.
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from pixelrnn.models.base import AutoregressiveModel
from pixelrnn.sampling.ordering import generation_steps


@torch.no_grad()
def generate(
    model: AutoregressiveModel,
    x: torch.Tensor,
    known: torch.Tensor,
    generator: torch.Generator | None = None,
    temperature: float = 1.0,
    progress: bool = False,
    y: torch.Tensor | None = None,
) -> torch.Tensor:
    """Fill every entry of ``x`` where ``known`` is False, in autoregressive order.

    Args:
        model: any registered model.
        x: int64 ``(B, C, H, W)``; entries where ``known`` is True are kept exactly.
        known: bool ``(B, C, H, W)``.
        generator: source of randomness; the same generator state gives the same images.
        temperature: divides the logits before sampling (``1.0`` samples the model itself).
        progress: show a progress bar over the generation steps.
        y: class labels ``(B,)`` for a conditional model, else None.

    Returns:
        int64 ``(B, C, H, W)``.
    """
    was_training = model.training
    model.eval()
    x = x.clone()
    if y is not None:
        y = y.to(x.device)
    steps = list(generation_steps(model.image_shape, model.distribution.joint_channels))
    try:
        for i, j, channels in tqdm(steps, disable=not progress, desc="sampling", unit="step"):
            need = ~known[:, channels, i, j]  # (B, len(channels))
            if not need.any():
                continue
            params = model(x, y)[:, :, i : i + 1, j : j + 1]  # (B, P, 1, 1)
            draw = model.distribution.sample(params, generator, temperature)[:, :, 0, 0]
            current = x[:, channels, i, j]
            x[:, channels, i, j] = torch.where(need, draw[:, channels], current)
    finally:
        model.train(was_training)
    return x
