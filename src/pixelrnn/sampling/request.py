"""What a generation asks for besides the images: one object instead of positional arguments."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from pixelrnn.distributions.base import check_temperature
from pixelrnn.models.base import AutoregressiveModel

# Picks one step's values instead of drawing them: ``(params (B, P), channels) → (B, n)`` int64
# for the ``n`` channels of the step, called once per step in generation order.
StepValues = Callable[[torch.Tensor, tuple[int, ...]], torch.Tensor]
# Told that an image row is final: ``(row, images so far (B, C, H, W))``.
RowDone = Callable[[int, torch.Tensor], None]

SAMPLING_METHODS = ("cached", "naive")


@dataclass(frozen=True)
class GenerationRequest:
    """How to generate: everything but the images and the ``known`` mask.

    Attributes:
        generator: source of randomness; the same generator state gives the same images.
        temperature: divides the logits before sampling (``1.0`` samples the model itself).
        progress: show a progress bar over the generation steps.
        y: class labels ``(B,)`` for a conditional model, else None.
        method: ``"cached"`` (per-layer caches, one position per step) or ``"naive"`` (the whole
            network per step: the reference).
        step_values: instead of drawing, the function that picks every step's values from its
            distribution parameters (entropy coding: the encoder returns the image's values,
            the decoder decodes them); ``generator`` and ``temperature`` are then unused.
        on_row: called when a row of the images is final, with its index and the images so far
            (a page that shows rows as they finish); the cached loop of a Multi-Scale model
            reports its small image's rows first, with the small images.
    """

    generator: torch.Generator | None = None
    temperature: float = 1.0
    progress: bool = False
    y: torch.Tensor | None = None
    method: str = "cached"
    step_values: StepValues | None = None
    on_row: RowDone | None = None

    def __post_init__(self) -> None:
        if self.method not in SAMPLING_METHODS:
            raise ValueError(f"method must be one of {SAMPLING_METHODS}, got {self.method!r}")
        check_temperature(self.temperature)  # before any step runs, not at the first draw


def step_draw(
    model: AutoregressiveModel,
    params: torch.Tensor,
    channels: tuple[int, ...],
    request: GenerationRequest,
) -> torch.Tensor:
    """The values of one generation step: drawn from the model, or picked by
    ``request.step_values``.

    Shape:
        params ``(B, P, 1, 1)`` (the step's pixel) → int64 ``(B, len(channels))``.
    """
    if request.step_values is not None:
        return request.step_values(params[:, :, 0, 0], channels)
    draw = model.distribution.sample(params, request.generator, request.temperature)
    return draw.reshape(len(params), -1)[:, channels[0] : channels[-1] + 1]
