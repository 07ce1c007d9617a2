"""K-way categorical output per sub-pixel (PixelRNN §2.2: a 256-way softmax per colour channel)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pixelrnn.distributions.base import OutputDistribution, check_temperature


class Categorical(OutputDistribution):
    """A softmax over ``K`` values for every sub-pixel.

    The ``C · K`` parameter maps are grouped by the channel they predict (contiguous blocks of
    ``K``: R logits, then G, then B), which is the layout mask-B output layers keep causal.

    Shape:
        params ``(B, C·K, H, W)`` logits; values ``x`` in ``[0, K)``.
    """

    name = "categorical"

    def num_params(self, num_channels: int) -> int:
        return num_channels * self.num_levels

    def _logits(self, params: torch.Tensor) -> torch.Tensor:
        b, p, h, w = params.shape
        if p % self.num_levels:
            raise ValueError(f"{p} parameter maps are not a multiple of K={self.num_levels}")
        return params.float().reshape(b, p // self.num_levels, self.num_levels, h, w)

    def log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        self._check_x(x)
        log_p = F.log_softmax(self._logits(params), dim=2)  # (B, C, K, H, W)
        return log_p.gather(2, x.long().unsqueeze(2)).squeeze(2)

    def sample(
        self,
        params: torch.Tensor,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
    ) -> torch.Tensor:
        check_temperature(temperature)
        logits = self._logits(params) / temperature  # (B, C, K, H, W)
        b, c, k, h, w = logits.shape
        probs = F.softmax(logits, dim=2).permute(0, 1, 3, 4, 2).reshape(-1, k)
        draws = torch.multinomial(probs, 1, generator=generator)
        return draws.reshape(b, c, h, w)

    def level_probabilities(
        self, params: torch.Tensor, channel: int, earlier: torch.Tensor
    ) -> torch.Tensor:
        k = self.num_levels
        return F.softmax(params[:, channel * k : (channel + 1) * k].double(), dim=1)
