"""Generation from a decoder whose sub-pixels are independent given codes (a VQ-VAE with a
bound code map): the parameters of every position come from one decoder pass, and each step
reads its own. The draws, order and ``known`` handling are the shared engine's."""

from __future__ import annotations

import torch

from pixelrnn.models.vqvae import VQVAE
from pixelrnn.sampling.cached.base import IncrementalStepper


class CodeDecoderStepper(IncrementalStepper):
    """All parameters ``(B, P, H, W)`` at once, then one position per step."""

    def __init__(self, model: VQVAE, x: torch.Tensor) -> None:
        if model.bound_codes is None:
            raise ValueError("a VQ-VAE generates given codes: call it inside model.given_codes")
        self.params = model.decoder_params(model.bound_codes).permute(2, 3, 0, 1)  # (H, W, B, P)

    def step(self, x: torch.Tensor, i: int, j: int) -> torch.Tensor:
        return self.params[i, j]
