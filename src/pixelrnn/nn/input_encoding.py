"""How a network reads its discrete input: each sub-pixel's level ``v ∈ [0, K)`` becomes the
features the first (masked) layer sees.

* ``"intensity"`` — one feature per sub-pixel, ``v · 2/(K−1) − 1`` in ``[-1, 1]`` (PixelRNN §5.2:
  centring). Right for pixel intensities, whose levels are ordered.
* ``"embedding"`` — ``E`` learned features per sub-pixel, a row of the channel's own ``(K, E)``
  table. Right for nominal symbols such as the discrete codes of a VQ-VAE (van den Oord et al.
  2017), whose numbers mean nothing: relabelling the codes (and the table's rows with them)
  changes nothing, where a scaled input would see an order that is not there.

Features keep the colour channels in contiguous blocks ``(C, E)``, so the masks' channel groups
(R → G → B) apply to them unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

INPUT_ENCODINGS = ("intensity", "embedding")


class InputEncoding(nn.Module):
    """Levels to input features.

    Args:
        channels: ``C``, sub-pixels per pixel.
        num_levels: ``K``.
        kind: one of :data:`INPUT_ENCODINGS`.
        embedding_dim: ``E``, features per sub-pixel of an embedding.

    Shape:
        int ``(B, C, H, W)`` → float ``(B, C · width, H, W)`` (``width`` 1 or ``E``).
    """

    def __init__(self, channels: int, num_levels: int, kind: str, embedding_dim: int) -> None:
        super().__init__()
        if kind not in INPUT_ENCODINGS:
            raise ValueError(f"input_encoding must be one of {INPUT_ENCODINGS}, got {kind!r}")
        self.kind, self.channels, self.num_levels = kind, channels, num_levels
        self.width = embedding_dim if kind == "embedding" else 1
        self.table = (
            nn.Parameter(torch.randn(channels, num_levels, embedding_dim))
            if kind == "embedding"
            else None
        )

    @property
    def out_channels(self) -> int:
        """``C · width``: the first layer's input channels."""
        return self.channels * self.width

    def forward(self, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        if self.table is None:
            return x.to(dtype) * (2.0 / (self.num_levels - 1)) - 1.0
        b, c, h, w = x.shape
        rows = torch.arange(c, device=x.device)[None, :, None, None]
        features = self.table[rows, x.long()]  # (B, C, H, W, E)
        return features.permute(0, 1, 4, 2, 3).reshape(b, c * self.width, h, w).to(dtype)

    def values(self, levels: torch.Tensor, first_channel: int, dtype: torch.dtype) -> torch.Tensor:
        """The features of the levels of channels ``first_channel …`` at one position (the
        same numbers as :meth:`forward` gives there).

        Shape:
            int ``(B, n)`` → ``(B, n · width)``.
        """
        if self.table is None:
            return levels.to(dtype) * (2.0 / (self.num_levels - 1)) - 1.0
        n = levels.shape[1]
        rows = torch.arange(first_channel, first_channel + n, device=levels.device)[None, :]
        return self.table[rows, levels.long()].flatten(1).to(dtype)
