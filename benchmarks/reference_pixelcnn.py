"""A conventional PyTorch PixelCNN, for a same-machine speed comparison only.

It follows the style common in widely used PyTorch PixelCNN code: the mask is multiplied into
``weight.data`` in place at every forward, tensors stay NCHW and activations are separate
out-of-place modules. Same network as ``pixelcnn-mnist`` (53,569 parameters). Written for this
benchmark; not used by the library.
"""

from __future__ import annotations

import torch
from torch import nn


class InPlaceMaskedConv2d(nn.Conv2d):
    def __init__(self, c_in: int, c_out: int, k: int, mask_type: str) -> None:
        super().__init__(c_in, c_out, k, padding=k // 2)
        mask = torch.ones_like(self.weight)
        mask[:, :, k // 2, k // 2 + (mask_type == "B") :] = 0
        mask[:, :, k // 2 + 1 :] = 0
        self.register_buffer("mask", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.weight.data *= self.mask
        return super().forward(x)


class Block(nn.Module):
    def __init__(self, h: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(2 * h, h, 1),
            nn.ReLU(),
            InPlaceMaskedConv2d(h, h, 3, "B"),
            nn.ReLU(),
            nn.Conv2d(h, 2 * h, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


class ReferencePixelCNN(nn.Module):
    def __init__(self, h: int = 16, layers: int = 15, out: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            InPlaceMaskedConv2d(1, 2 * h, 7, "A"),
            *[Block(h) for _ in range(layers)],
            nn.ReLU(),
            nn.Conv2d(2 * h, out, 1),
            nn.ReLU(),
            nn.Conv2d(out, 1, 1),
        )

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.net(x.float() * 2 - 1)
        return (
            -nn.functional.binary_cross_entropy_with_logits(logits, x.float(), reduction="none")
            .flatten(1)
            .sum(1)
        )
