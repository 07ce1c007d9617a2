"""Conditioning inputs of conditional models (Gated PixelCNN §2.3).

A label ``y`` becomes a vector ``h`` — a one-hot code or a learned embedding — that every
layer projects into a bias on its gates (:class:`ClassEmbedding`); for location-dependent
conditioning a small deconvolution network maps ``h`` to a spatial map ``s = m(h)`` with the
image's height and width (:class:`SpatialConditioning`), which layers read through unmasked
1×1 convolutions. Neither depends on the pixels, so neither can break causality.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class ClassEmbedding(nn.Module):
    """Class label → conditioning vector ``h``.

    Args:
        num_classes: number of labels.
        embedding_dim: size of a learned embedding; None uses the one-hot code (then a layer's
            projection ``V^T h`` is exactly a per-class bias, Gated PixelCNN Eq. 4).

    Shape:
        ``(B,)`` int64 → ``(B, out_features)`` float.
    """

    def __init__(self, num_classes: int, embedding_dim: int | None = None) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.embedding = None if embedding_dim is None else nn.Embedding(num_classes, embedding_dim)
        self.out_features = num_classes if embedding_dim is None else embedding_dim
        # an empty buffer that follows .double() / .to(device): the one-hot code's dtype
        self.register_buffer("dtype_probe", torch.zeros(0), persistent=False)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        if self.embedding is not None:
            return self.embedding(y)
        return F.one_hot(y, self.num_classes).to(self.dtype_probe)


class SpatialConditioning(nn.Module):
    """Deconvolution network ``m``: conditioning vector → spatial map (Gated PixelCNN Eq. 5).

    A linear layer makes a ``channels × ⌈H/4⌉ × ⌈W/4⌉`` map, two stride-2 transposed
    convolutions (ReLU between) double it twice, and the result is cropped to ``H × W``.

    Shape:
        ``(B, in_features)`` → ``(B, channels, H, W)``.
    """

    def __init__(self, in_features: int, channels: int, image_size: tuple[int, int]) -> None:
        super().__init__()
        self.image_size = image_size
        self.base = (math.ceil(image_size[0] / 4), math.ceil(image_size[1] / 4))
        self.channels = channels
        self.project = nn.Linear(in_features, channels * self.base[0] * self.base[1])
        self.upsample = nn.Sequential(
            nn.ConvTranspose2d(channels, channels, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(channels, channels, 4, stride=2, padding=1),
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        s = F.relu(self.project(h)).view(-1, self.channels, *self.base)
        s = self.upsample(s)  # (B, channels, 4⌈H/4⌉, 4⌈W/4⌉)
        return s[:, :, : self.image_size[0], : self.image_size[1]]


class ContextProjections(nn.Module):
    """Per-layer unmasked 1×1 convolutions of a conditioning map (Multi-Scale PixelRNN,
    PixelRNN §3.4: the upsampled small image reaches every layer this way). The map never
    depends on the pixels being modelled, so reading it anywhere keeps causality.

    Args:
        context_channels: channels ``c`` of the map.
        widths: output channels of every layer's projection.

    Shape:
        ``(B, c, H, W)`` → a list of ``(B, widths[k], H, W)``.
    """

    def __init__(self, context_channels: int, widths: list[int]) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(context_channels, w, 1, bias=False) for w in widths)

    def forward(self, context: torch.Tensor) -> list[torch.Tensor]:
        return [conv(context) for conv in self.convs]


def context_terms(
    projections: ContextProjections | None, context: torch.Tensor | None, num_layers: int
) -> list[torch.Tensor | None]:
    """Every layer's term from the map, or ``None`` for each layer without a map."""
    if projections is None:
        if context is not None:
            raise ValueError("this model was built without context_channels")
        return [None] * num_layers
    if context is None:
        raise ValueError("this model reads a conditioning map: pass context")
    return list(projections(context))


def code_map(
    codes: torch.Tensor, levels: int, size: tuple[int, int], dtype: torch.dtype
) -> torch.Tensor:
    """A conditioning map of codes (e.g. the top code map of a two-level VQ-VAE, VQ-VAE-2):
    one channel per code (one-hot, so the 1×1 projection that reads it is a learned embedding
    of each code), repeated to ``size`` (nearest neighbour).

    Shape:
        int ``(B, h, w)`` → ``(B, levels, H, W)``.
    """
    one_hot = F.one_hot(codes.long(), levels).permute(0, 3, 1, 2).to(dtype)
    if tuple(one_hot.shape[-2:]) == tuple(size):
        return one_hot
    return F.interpolate(one_hot, size=size, mode="nearest")
