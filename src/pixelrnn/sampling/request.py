"""What a generation asks for besides the images: one object instead of positional arguments."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pixelrnn.distributions.base import check_temperature

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
    """

    generator: torch.Generator | None = None
    temperature: float = 1.0
    progress: bool = False
    y: torch.Tensor | None = None
    method: str = "cached"

    def __post_init__(self) -> None:
        if self.method not in SAMPLING_METHODS:
            raise ValueError(f"method must be one of {SAMPLING_METHODS}, got {self.method!r}")
        check_temperature(self.temperature)  # before any step runs, not at the first draw
