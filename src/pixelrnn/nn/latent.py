"""Convolutional maps between images and latents, for latent-variable models whose decoder is
an autoregressive network (PixelVAE, Gulrajani et al. 2017 §3; the Gated PixelCNN paper's
PixelCNN auto-encoder, §2.4).

* :class:`LatentEncoder` — ``q(z | x)``: stride-2 convolutions down to a ``(h, w)`` map, then
  either a diagonal Gaussian over a vector ``z`` ``(D,)`` (a global latent) or over a latent
  map ``(D, h, w)`` (a spatial latent); optionally a second, global level above a spatial one
  (PixelVAE §3.2's two-level hierarchy), read from the same features;
* :class:`LatentUpsampler` — ``m(z)``: back up to a conditioning map ``s`` with the image's
  height and width, which the decoder reads through its spatial conditioning (an unmasked 1×1
  convolution of ``s``, added in every layer). With the latent map's size as the output size
  it also gives the parameters of ``p(z_bottom | z_top)`` in a hierarchy.

Neither looks at pixels in order: the decoder alone is autoregressive.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def halving_stack(
    in_channels: int,
    channels: int,
    steps: int,
    kernel_size: int = 3,
    activation: type[nn.Module] = nn.ELU,
) -> list[nn.Module]:
    """``steps`` stride-2 convolutions (padding 1), each followed by ``activation``: the
    downsampling of the latent models' encoders (3×3 + ELU in PixelVAE, 4×4 + ReLU in
    VQ-VAE). Shape: ``(B, in_channels, H, W)`` → ``(B, channels, ⌈H/2^n⌉, ⌈W/2^n⌉)`` for 3×3,
    ``(H/2^n, W/2^n)`` for 4×4 on even sides."""
    layers: list[nn.Module] = []
    for step in range(steps):
        source = in_channels if step == 0 else channels
        layers += [nn.Conv2d(source, channels, kernel_size, stride=2, padding=1), activation()]
    return layers


def doubling_stack(
    channels: int, steps: int, activation: type[nn.Module] = nn.ELU
) -> list[nn.Module]:
    """``steps`` times ``activation`` then a 4×4 stride-2 transposed convolution (padding 1):
    the upsampling of the latent models' decoders. Shape: ``(B, C, h, w)`` →
    ``(B, C, 2^n h, 2^n w)``."""
    layers: list[nn.Module] = []
    for _ in range(steps):
        layers += [activation(), nn.ConvTranspose2d(channels, channels, 4, stride=2, padding=1)]
    return layers


def _downsampled(size: int, steps: int) -> int:
    """A side after ``steps`` stride-2 convolutions with padding 1 and kernel 3."""
    for _ in range(steps):
        size = (size + 1) // 2
    return size


class LatentEncoder(nn.Module):
    """``q(z | x)`` as a diagonal Gaussian.

    Args:
        image_shape: ``(C, H, W)`` of the (normalised) images.
        latent_dim: ``D``, per position for a spatial latent.
        spatial: a latent map ``(D, h, w)`` instead of a vector ``(D,)``.
        hidden_channels: width of the convolutions.
        downsamplings: number of stride-2 convolutions (``h = ⌈H / 2^n⌉``).
        top_latent_dim: ``D_top`` of a global level above the first (None: one level). The
            posterior factorises over the levels, ``q(z_bottom | x) q(z_top | x)``.

    Shape:
        ``(B, C, H, W)`` → one (mean, log-variance) pair per level, bottom first: each
        ``(B, D)`` or ``(B, D, h, w)``, then ``(B, D_top)``.
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        latent_dim: int,
        spatial: bool = False,
        hidden_channels: int = 32,
        downsamplings: int = 2,
        top_latent_dim: int | None = None,
    ) -> None:
        super().__init__()
        c, h, w = image_shape
        self.features = nn.Sequential(*halving_stack(c, hidden_channels, downsamplings))
        channels = hidden_channels if downsamplings else c
        self.spatial, self.latent_dim = spatial, latent_dim
        self.map_shape = (_downsampled(h, downsamplings), _downsampled(w, downsamplings))
        if spatial:
            self.head: nn.Module = nn.Conv2d(channels, 2 * latent_dim, 1)
        else:
            self.head = nn.Linear(channels * math.prod(self.map_shape), 2 * latent_dim)
        self.top_head = (
            None
            if top_latent_dim is None
            else nn.Linear(channels * math.prod(self.map_shape), 2 * top_latent_dim)
        )

    def forward(self, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        features = self.features(x)
        flat = features.flatten(1)
        bottom = self.head(features if self.spatial else flat).chunk(2, dim=1)
        levels = [(bottom[0], bottom[1])]
        if self.top_head is not None:
            top = self.top_head(flat).chunk(2, dim=1)
            levels.append((top[0], top[1]))
        return levels


class LatentUpsampler(nn.Module):
    """``m(z)``: a latent up to a conditioning map with the image's height and width.

    Args:
        latent_dim: ``D``.
        map_shape: ``(h, w)`` of the encoder's map (the latent map's, for a spatial latent).
        image_size: ``(H, W)``.
        out_channels: channels ``S`` of the conditioning map.
        spatial: the latent is a map ``(D, h, w)``, else a vector ``(D,)``.
        hidden_channels: width of the transposed convolutions.

    Shape:
        ``(B, D)`` or ``(B, D, h, w)`` → ``(B, S, H, W)``.
    """

    def __init__(
        self,
        latent_dim: int,
        map_shape: tuple[int, int],
        image_size: tuple[int, int],
        out_channels: int,
        spatial: bool = False,
        hidden_channels: int = 32,
    ) -> None:
        super().__init__()
        self.spatial, self.map_shape, self.image_size = spatial, map_shape, image_size
        self.hidden_channels = hidden_channels
        self.project: nn.Module = (
            nn.Conv2d(latent_dim, hidden_channels, 1)
            if spatial
            else nn.Linear(latent_dim, hidden_channels * math.prod(map_shape))
        )
        # enough doublings for both sides (each side is at least its image side afterwards)
        doublings = max(
            math.ceil(math.log2(size / side))
            for size, side in zip(image_size, map_shape, strict=True)
        )
        self.upsample = nn.Sequential(*doubling_stack(hidden_channels, max(doublings, 0)))
        self.out = nn.Conv2d(hidden_channels, out_channels, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        features = self.project(z)
        if not self.spatial:
            features = features.view(len(z), self.hidden_channels, *self.map_shape)
        features = self.upsample(features)
        # a side that doubled past the image's (an odd size) is cropped back
        features = features[:, :, : self.image_size[0], : self.image_size[1]]
        return self.out(features)


class ResidualStack(nn.Module):
    """Residual blocks ``h + conv1×1(ReLU(conv3×3(ReLU(h))))``, then a ReLU (the VQ-VAE
    encoder's and decoder's blocks, van den Oord et al. 2017 §4.1).

    Shape:
        ``(B, C, H, W)`` → the same.
    """

    def __init__(self, channels: int, residual_channels: int, num_blocks: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.ReLU(),
                nn.Conv2d(channels, residual_channels, 3, padding=1),
                nn.ReLU(),
                nn.Conv2d(residual_channels, channels, 1),
            )
            for _ in range(num_blocks)
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            h = h + block(h)
        return torch.relu(h)
