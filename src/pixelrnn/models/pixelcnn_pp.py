"""PixelCNN++ (Salimans et al. 2017, §2; openai/pixel-cnn ``model.py``).

Two streams of shifted convolutions (:mod:`pixelrnn.nn.shifted_conv`), no masks:

* ``u`` — the *down* stream: at ``(i, j)`` it has seen every pixel of the rows above;
* ``ul`` — the *down-right* stream: every pixel above and to the left of ``(i, j)`` in its row.

For ``R`` resolutions (3 for 32×32: 32 → 16 → 8) and ``n = nr_resnet``::

    x ⊕ ones ─► u = ↓(2×3 conv),  ul = ↓(1×3 conv) + →(2×1 conv)       (the current pixel is
                                                                       excluded here only)
    up pass:   per resolution n gated ResNet layers (ul reads u), then a stride-2 shifted
               convolution on each stream (not after the last); every output is kept
    down pass: n layers at the lowest resolution, then per higher resolution a stride-2
               transposed convolution and n + 1 layers; each layer pops its mirror from the
               up pass:  u = GR(u, a=u_skip),  ul = GR(ul, a=[u, ul_skip])
    head:      1×1 conv of elu(ul) → distribution parameters (10·M for an RGB mixture)

Gated ResNet layers: :class:`pixelrnn.nn.GatedResNet` (concat_elu, dropout after the first
convolution, gated second convolution, optional class bias). Weight normalisation everywhere,
initialised from data (:meth:`PixelCNNPP.initialize_from_data`).

Receptive field: every pixel above and every pixel to the left in the same row, for any image
size, once the streams have grown past the image (no blind spot; tests/models/
test_pixelcnn_pp.py). Sizes that do not halve evenly (e.g. 28 → 14 → 7 → 4) are upsampled to
the mirror layer's size by cropping the last rows and columns, which keeps causality.

NOTE: the official code supports only sizes divisible by ``2^(R−1)``; the cropping above is
this implementation's addition. With a sub-pixel distribution (e.g. a 256-way softmax per
channel) the network still sees nothing of the current pixel, so the channels of a pixel are
then predicted independently given the context (the paper's ablation of §3.4 used extra
channel dependencies; this is the plain variant).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pixelrnn.models.base import AutoregressiveModel, ModelConfig
from pixelrnn.nn import (
    ClassEmbedding,
    GatedResNet,
    ShiftedConv2d,
    ShiftedConvTranspose2d,
    data_dependent_init,
    down_shift,
    right_shift,
    weight_norm,
)


@dataclass(frozen=True)
class PixelCNNPPConfig(ModelConfig):
    """PixelCNN++ hyper-parameters (PixelCNN++ §2.3–2.5, §3.1; official code defaults).

    Attributes:
        distribution: output distribution; the discretized logistic mixture with ``M``
            components (``"logistic_mixture:M"``, 10 in the paper) by default.
        nr_resnet: gated ResNet layers per resolution in the up pass (5).
        nr_filters: feature maps of both streams (160 in the official code, 192 in the paper).
        num_resolutions: resolutions of the U-Net (3: 32 → 16 → 8).
        dropout: dropout probability after the first convolution of a layer (0.5).
        num_classes: class labels for a class-conditional model (None: unconditional).
        weight_norm: weight normalisation on every convolution.
    """

    distribution: str = "logistic_mixture:10"
    nr_resnet: int = 5
    nr_filters: int = 160
    num_resolutions: int = 3
    dropout: float = 0.5
    num_classes: int | None = None
    weight_norm: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.num_classes is not None and self.num_classes < 1:
            raise ValueError(f"num_classes must be >= 1 or None, got {self.num_classes}")


class PixelCNNPP(AutoregressiveModel):
    """PixelCNN++: down and down-right streams, a U-Net of gated ResNet layers.

    Shape:
        :meth:`network`: ``(B, C, H, W)`` float in ``[−1, 1]`` (and labels ``(B,)`` when
        conditional) → ``(B, P, H, W)`` distribution parameters.
    """

    model_name = "pixelcnnpp"
    config_class = PixelCNNPPConfig

    def __init__(self, config: PixelCNNPPConfig) -> None:
        super().__init__(config)
        c = config.image_shape[0]
        f, n, wn = config.nr_filters, config.nr_resnet, config.weight_norm
        levels = config.num_resolutions

        def layer(shift: str, aux: int) -> GatedResNet:
            return GatedResNet(f, shift, aux, config.dropout, config.num_classes, wn)

        # the input gets a constant-ones channel: zero padding then differs from black pixels
        self.u_init = ShiftedConv2d(c + 1, f, (2, 3), "down", use_weight_norm=wn)
        self.ul_init_above = ShiftedConv2d(c + 1, f, (1, 3), "down", use_weight_norm=wn)
        self.ul_init_left = ShiftedConv2d(c + 1, f, (2, 1), "down_right", use_weight_norm=wn)
        self.up_u = nn.ModuleList(
            nn.ModuleList(layer("down", 0) for _ in range(n)) for _ in range(levels)
        )
        self.up_ul = nn.ModuleList(
            nn.ModuleList(layer("down_right", f) for _ in range(n)) for _ in range(levels)
        )
        self.downsample_u = nn.ModuleList(
            ShiftedConv2d(f, f, (2, 3), "down", stride=2, use_weight_norm=wn)
            for _ in range(levels - 1)
        )
        self.downsample_ul = nn.ModuleList(
            ShiftedConv2d(f, f, (2, 2), "down_right", stride=2, use_weight_norm=wn)
            for _ in range(levels - 1)
        )
        # down pass, lowest resolution first: n layers there, n + 1 at every higher one
        depth = [n] + [n + 1] * (levels - 1)
        self.down_u = nn.ModuleList(
            nn.ModuleList(layer("down", f) for _ in range(d)) for d in depth
        )
        self.down_ul = nn.ModuleList(
            nn.ModuleList(layer("down_right", 2 * f) for _ in range(d)) for d in depth
        )
        self.upsample_u = nn.ModuleList(
            ShiftedConvTranspose2d(f, f, (2, 3), "down", use_weight_norm=wn)
            for _ in range(levels - 1)
        )
        self.upsample_ul = nn.ModuleList(
            ShiftedConvTranspose2d(f, f, (2, 2), "down_right", use_weight_norm=wn)
            for _ in range(levels - 1)
        )
        head = nn.Conv2d(f, self.num_params_out, 1)
        self.head = weight_norm(head) if wn else head
        self.class_code = None if config.num_classes is None else ClassEmbedding(config.num_classes)

    def one_hot(self, y: torch.Tensor | None) -> torch.Tensor | None:
        """The class code every layer's bias reads: ``(B,)`` → ``(B, classes)``, or None."""
        return None if self.class_code is None or y is None else self.class_code(y)

    def stream_inputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The two streams' first maps, which never see the current pixel.

        Shape:
            ``(B, C, H, W)`` → ``u, ul``: ``(B, F, H, W)`` each.
        """
        x = torch.cat([x, torch.ones_like(x[:, :1])], dim=1)
        x = x.contiguous(memory_format=torch.channels_last)
        u = down_shift(self.u_init(x))
        ul = down_shift(self.ul_init_above(x)) + right_shift(self.ul_init_left(x))
        return u, ul

    def network(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.one_hot(y)
        u, ul = self.stream_inputs(x)
        u_list, ul_list = [u], [ul]
        for level in range(self.config.num_resolutions):
            for layer_u, layer_ul in zip(self.up_u[level], self.up_ul[level], strict=True):
                u = layer_u(u, one_hot=h)
                ul = layer_ul(ul, u, h)
                u_list.append(u)
                ul_list.append(ul)
            if level < len(self.downsample_u):
                u = self.downsample_u[level](u)
                ul = self.downsample_ul[level](ul)
                u_list.append(u)
                ul_list.append(ul)
        u, ul = u_list.pop(), ul_list.pop()
        for level in range(self.config.num_resolutions):
            if level > 0:
                size = u_list[-1].shape[-2:]  # the mirror layer's size (odd sizes: cropped)
                u = self.upsample_u[level - 1](u, size)
                ul = self.upsample_ul[level - 1](ul, size)
            for layer_u, layer_ul in zip(self.down_u[level], self.down_ul[level], strict=True):
                u = layer_u(u, u_list.pop(), h)
                ul = layer_ul(ul, torch.cat([u, ul_list.pop()], dim=1), h)
        assert not u_list and not ul_list, "every up-pass output feeds one down-pass layer"
        return self.head(F.elu(ul))

    def initialize_from_data(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        """Data-dependent initialisation of every weight-normalised layer from one batch
        (PixelCNN++ §3.1: 16 training images; :func:`pixelrnn.nn.data_dependent_init`).

        Args:
            x: integer images ``(B, C, H, W)``; y: their labels for a conditional model.
        """
        if not self.config.weight_norm:
            raise ValueError("data-dependent initialisation needs weight_norm=True")
        data_dependent_init(self, lambda: self(x, y))
