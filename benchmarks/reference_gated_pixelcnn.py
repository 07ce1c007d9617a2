"""A conventional PyTorch Gated PixelCNN, for a same-machine speed comparison only.

It follows the structure of the widely used PyTorch Gated PixelCNN code: every pixel value is
embedded into ``dim`` channels, the first layer is causal by zeroing kernel taps in place, the
vertical and horizontal stacks are square-padded convolutions cropped afterwards, labels enter
through an embedding added to both stacks, and the head is ``1×1 → 512 → ReLU → 1×1 → 256``
with a cross-entropy loss. Size of the comparison: 5 layers × 64 channels, kernel 7 then 3, on
28×28 greyscale images with 256 levels and 10 classes. Written for this benchmark; not used by
the library.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConventionalGatedLayer(nn.Module):
    def __init__(self, dim: int, k: int, first: bool, num_classes: int) -> None:
        super().__init__()
        self.first = first
        self.label_bias = nn.Embedding(num_classes, 2 * dim)
        self.v_conv = nn.Conv2d(dim, 2 * dim, (k // 2 + 1, k), padding=(k // 2, k // 2))
        self.v_to_h = nn.Conv2d(2 * dim, 2 * dim, 1)
        self.h_conv = nn.Conv2d(dim, 2 * dim, (1, k // 2 + 1), padding=(0, k // 2))
        self.h_res = nn.Conv2d(dim, dim, 1)

    def zero_future_taps(self) -> None:
        # first layer: the vertical stack's last row and the horizontal stack's last column
        self.v_conv.weight.data[:, :, -1].zero_()
        self.h_conv.weight.data[:, :, :, -1].zero_()

    def forward(
        self, v: torch.Tensor, h: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.first:
            self.zero_future_taps()
        size = v.shape[-1]
        v_pre = self.v_conv(v)[:, :, :size, :]
        v_out = self._gate(v_pre + self.label_bias(y)[:, :, None, None])
        h_pre = self.h_conv(h)[:, :, :, :size] + self.v_to_h(v_pre)
        h_gated = self._gate(h_pre + self.label_bias(y)[:, :, None, None])
        if self.first:
            return v_out, self.h_res(h_gated)
        return v_out, self.h_res(h_gated) + h

    @staticmethod
    def _gate(x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return torch.tanh(a) * torch.sigmoid(b)


class ReferenceGatedPixelCNN(nn.Module):
    def __init__(
        self, levels: int = 256, dim: int = 64, layers: int = 5, num_classes: int = 10
    ) -> None:
        super().__init__()
        self.embedding = nn.Embedding(levels, dim)
        self.layers = nn.ModuleList(
            ConventionalGatedLayer(dim, 7 if i == 0 else 3, i == 0, num_classes)
            for i in range(layers)
        )
        self.head = nn.Sequential(nn.Conv2d(dim, 512, 1), nn.ReLU(), nn.Conv2d(512, levels, 1))

    def log_prob(self, x: torch.Tensor, *, y: torch.Tensor) -> torch.Tensor:
        """``x`` int64 ``(B, 1, H, W)``, ``y`` int64 ``(B,)`` → nats per image ``(B,)``."""
        e = self.embedding(x[:, 0]).permute(0, 3, 1, 2)  # (B, dim, H, W)
        v = h = e
        for layer in self.layers:
            v, h = layer(v, h, y)
        logits = self.head(h)  # (B, levels, H, W)
        return -F.cross_entropy(logits, x[:, 0], reduction="none").flatten(1).sum(1)
