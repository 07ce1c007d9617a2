"""PixelCNN as defined in the PixelRNN paper (van den Oord et al. 2016, §3.5, §4, Table 1, Fig. 5).

Network, for a residual stream of ``2h`` maps::

    x ─ 7×7 conv, mask A ─► 2h ─► [residual block] × L
      ─► ReLU ─ 1×1 mask B ─► ReLU ─ 1×1 mask B ─► P distribution parameters

    residual block (Fig. 5 left):
      2h ─ ReLU ─ 1×1 (mask B) ─► h ─ ReLU ─ 3×3 mask B ─► h ─ ReLU ─ 1×1 (mask B) ─► 2h, + identity

Receptive field: a stack of masked 3×3 convolutions grows the context one row up and one
column left/right per layer, but the taps to the upper right of the current pixel that the
centre row would need are never reached: the well-known *blind spot* (Gated PixelCNN §2.2),
which the receptive-field test documents.

NOTE: the paper's "15 layers" for CIFAR-10 is read here as 15 residual blocks, each with one
3×3 masked convolution; the paper does not say whether the input and output layers count.
NOTE: every 1×1 convolution inside the network uses mask B (PixelRNN §3.4): for one colour
group that mask is all ones, for three groups it keeps the R→G→B structure.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pixelrnn.models.base import AutoregressiveModel, ModelConfig
from pixelrnn.nn import ContextProjections, MaskedConv2d, context_terms


@dataclass(frozen=True)
class PixelCNNConfig(ModelConfig):
    """PixelCNN hyper-parameters (PixelRNN §4).

    Attributes:
        hidden_channels: ``h``; the residual stream carries ``2h`` feature maps.
        num_layers: number of residual blocks.
        output_channels: feature maps of the two ReLU + 1×1 output layers (32 MNIST, 1024 CIFAR).
        input_kernel_size: size of the mask-A input convolution (7 in the paper).
        kernel_size: size of the mask-B convolution inside each residual block (3).
    """

    hidden_channels: int = 16
    num_layers: int = 15
    output_channels: int = 32
    input_kernel_size: int = 7
    kernel_size: int = 3

    def __post_init__(self) -> None:
        super().__post_init__()
        self.require_odd("input_kernel_size", "kernel_size")
        self.require_width_per_colour()


class ResidualBlock(nn.Module):
    """PixelCNN residual block (PixelRNN Fig. 5, left).

    Shape:
        ``(B, 2h, H, W)`` → ``(B, 2h, H, W)``.
    """

    def __init__(self, hidden_channels: int, kernel_size: int, num_groups: int) -> None:
        super().__init__()
        h = hidden_channels
        self.reduce = MaskedConv2d(2 * h, h, 1, "B", num_groups)
        self.conv = MaskedConv2d(h, h, kernel_size, "B", num_groups)
        self.expand = MaskedConv2d(h, 2 * h, 1, "B", num_groups)

    def forward(self, x: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        """``extra``: a term added to the masked convolution's output ``(B, h, H, W)``."""
        # In-place ReLUs and add act on fresh convolution outputs, which the convolutions'
        # backward passes do not need: same values, fewer memory passes.
        y = F.relu(self.reduce(F.relu(x)), inplace=True)
        y = self.conv(y)
        if extra is not None:
            y = y + extra
        y = F.relu(y, inplace=True)
        y = self.expand(y)
        return y.add_(x)


class PixelCNN(AutoregressiveModel):
    """The PixelCNN of the PixelRNN paper: masked convolutions, residual blocks, no pooling.

    Shape:
        :meth:`network`: ``(B, C, H, W)`` float → ``(B, P, H, W)`` distribution parameters.
    """

    model_name = "pixelcnn"
    config_class = PixelCNNConfig
    supports_context = True
    supports_embedding = True

    def __init__(self, config: PixelCNNConfig) -> None:
        super().__init__(config)
        g = self.mask_groups
        h2 = 2 * config.hidden_channels
        self.input_conv = MaskedConv2d(self.input_channels, h2, config.input_kernel_size, "A", g)
        self.blocks = nn.ModuleList(
            ResidualBlock(config.hidden_channels, config.kernel_size, g)
            for _ in range(config.num_layers)
        )
        self.output_hidden = MaskedConv2d(h2, config.output_channels, 1, "B", g)
        self.output = MaskedConv2d(config.output_channels, self.num_params_out, 1, "B", g)
        self.context_projections = (
            None
            if config.context_channels is None
            else ContextProjections(
                config.context_channels, [config.hidden_channels] * config.num_layers
            )
        )
        # Weights in channels_last match the activations' layout (see network): no reorders.
        self.to(memory_format=torch.channels_last)

    def network(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """``context``: the conditioning map ``(B, c, H, W)`` of a model with
        ``context_channels``, added to every block's masked-convolution output."""
        # channels_last lets oneDNN/cuDNN run the many small convolutions without reorders.
        h = self.input_conv(x.contiguous(memory_format=torch.channels_last))
        extras = context_terms(self.context_projections, context, len(self.blocks))
        for block, extra in zip(self.blocks, extras, strict=True):
            h = block(h, extra)
        h = F.relu(self.output_hidden(F.relu(h)), inplace=True)
        return self.output(h)
