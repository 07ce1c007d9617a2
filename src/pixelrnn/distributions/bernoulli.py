"""Bernoulli output for binary images (PixelRNN §2.2: a sigmoid per sub-pixel for MNIST)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pixelrnn.distributions.base import OutputDistribution, check_temperature


class Bernoulli(OutputDistribution):
    """One logit per sub-pixel; ``p(x = 1) = sigmoid(logit)``.

    Shape:
        params ``(B, C, H, W)`` logits; values ``x`` in ``{0, 1}``.
    """

    name = "bernoulli"

    def __init__(self, num_levels: int = 2) -> None:
        if num_levels != 2:
            raise ValueError(f"the Bernoulli output needs num_levels == 2, got {num_levels}")
        super().__init__(num_levels)

    def num_params(self, num_channels: int) -> int:
        return num_channels

    def log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        self._check_x(x)
        logits = params.float()
        # log p(x) = -BCE(logit, x); exact at logit 0: log(1/2) per sub-pixel.
        return -F.binary_cross_entropy_with_logits(logits, x.to(logits.dtype), reduction="none")

    def sample(
        self,
        params: torch.Tensor,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
    ) -> torch.Tensor:
        check_temperature(temperature)
        prob_one = torch.sigmoid(params.float() / temperature)
        u = torch.rand(prob_one.shape, generator=generator, device=prob_one.device)
        return (u < prob_one).long()

    def level_probabilities(
        self, params: torch.Tensor, channel: int, earlier: torch.Tensor
    ) -> torch.Tensor:
        prob_one = torch.sigmoid(params[:, channel].double())  # (B,)
        return torch.stack([1.0 - prob_one, prob_one], dim=1)
