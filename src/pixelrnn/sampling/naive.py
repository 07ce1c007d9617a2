"""The naive generation loop: the reference every fast path is tested against.

Every step re-runs the whole network on the partly generated batch and draws the step's
sub-pixels (or pixel, for joint distributions) from their conditional, in
:func:`~pixelrnn.sampling.order.generation_order`. An explicit boolean ``known`` mask says which
entries are given and must be kept exactly (conventions §6).
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from pixelrnn.models.base import AutoregressiveModel
from pixelrnn.sampling.order import generation_order
from pixelrnn.sampling.request import GenerationRequest, step_draw


@torch.no_grad()
def generate_naive(
    model: AutoregressiveModel, x: torch.Tensor, known: torch.Tensor, request: GenerationRequest
) -> torch.Tensor:
    """Fill every entry of ``x`` where ``known`` is False, in generation order.

    Args:
        model: any registered model.
        x: int64 ``(B, C, H, W)``; entries where ``known`` is True are kept exactly.
        known: bool ``(B, C, H, W)``.
        request: generator, temperature, progress bar and labels.

    Returns:
        int64 ``(B, C, H, W)``.
    """
    was_training = model.training
    model.eval()
    x = x.clone()
    y = None if request.y is None else request.y.to(x.device)
    steps = generation_order(model)
    last_channel, last_col = model.image_shape[0] - 1, model.image_shape[2] - 1
    try:
        for i, j, channels in tqdm(
            steps, disable=not request.progress, desc="sampling", unit="step"
        ):
            need = ~known[:, channels, i, j]  # (B, len(channels))
            if need.any():
                params = model(x, y)[:, :, i : i + 1, j : j + 1]  # (B, P, 1, 1)
                draw = step_draw(model, params, channels, request)  # (B, len(channels))
                current = x[:, channels, i, j]
                x[:, channels, i, j] = torch.where(need, draw, current)
            if request.on_row is not None and j == last_col and channels[-1] == last_channel:
                request.on_row(i, x)
    finally:
        model.train(was_training)
    return x
