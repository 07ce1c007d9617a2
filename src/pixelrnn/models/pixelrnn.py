"""Row LSTM and Diagonal BiLSTM PixelRNNs (van den Oord et al. 2016, §3.1–3.3, §4, Table 1).

Network, for ``L`` recurrent layers of ``h`` hidden units::

    x ─ 7×7 conv, mask A ─► 2h ─► L × [recurrent block] ─► (Σ skip)
      ─► ReLU ─ 1×1 mask B ─► out ─► ReLU ─ 1×1 mask B ─► P distribution parameters
    recurrent block (Fig. 5 right):
      2h ─ Row LSTM or Diagonal BiLSTM ─► h ─ 1×1 mask B ─► 2h, + identity (residual)
    skip (§3.3): every block's output ─ 1×1 mask B ─► 2h, summed into the output layers' input

Residual and skip connections can be switched off (the paper's Table 2 ablation). Without skip
connections the output layers read the last block only.

Receptive field: the Diagonal BiLSTM sees every earlier pixel except, from pixels more than
``input_kernel_size // 2`` columns left of it, the last sub-pixel of the previous row (see
``nn/diagonal_lstm.py``); the Row LSTM sees a triangle above the pixel, widening by one column on
each side per row, plus the left context its masked input convolutions reach. Both are tested
exactly against these statements.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from pixelrnn.models.base import AutoregressiveModel, ModelConfig
from pixelrnn.nn import DiagonalBiLSTM, MaskedConv2d, RowLSTM


@dataclass(frozen=True)
class PixelRNNConfig(ModelConfig):
    """PixelRNN hyper-parameters (PixelRNN §3.3, §4).

    Attributes:
        hidden_channels: ``h`` of every recurrent layer; the residual stream carries ``2h``.
        num_layers: number of recurrent layers (up to 12 in the paper).
        output_channels: feature maps of the two ReLU + 1×1 output layers (32 MNIST, 1024 CIFAR).
        input_kernel_size: size of the mask-A input convolution (7 in the paper).
        residual: residual connection around every recurrent layer.
        skip: learnable 1×1 skip connection from every layer to the output layers.
        full_context: Diagonal BiLSTM only: the first layer's right-to-left direction also
            reads the raw image, so every earlier sub-pixel is seen (a deviation from the
            paper, whose layer misses one sub-pixel per row; see ``nn/diagonal_lstm.py``).
    """

    hidden_channels: int = 16
    num_layers: int = 7
    output_channels: int = 32
    input_kernel_size: int = 7
    residual: bool = True
    skip: bool = True
    full_context: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        self.require_odd("input_kernel_size")
        self.require_width_per_colour()


class RecurrentBlock(nn.Module):
    """A recurrent layer inside a residual block (PixelRNN Fig. 5 right).

    Shape:
        ``(B, 2h, H, W)`` → ``(B, 2h, H, W)``.
    """

    def __init__(self, layer: nn.Module, hidden_channels: int, num_groups: int, residual: bool):
        super().__init__()
        self.layer = layer
        self.expand = MaskedConv2d(hidden_channels, 2 * hidden_channels, 1, "B", num_groups)
        self.residual = residual

    def forward(
        self, x: torch.Tensor, context: torch.Tensor | None = None, **extra: torch.Tensor
    ) -> torch.Tensor:
        y = self.expand(self.layer(x, context, **extra))
        return y + x if self.residual else y

    def forward_batch_last(
        self, x: torch.Tensor, context: torch.Tensor | None = None, **extra: torch.Tensor
    ) -> torch.Tensor:
        """:meth:`forward` on batch-last maps ``(2h, H, W, B)``, for a layer that has a
        ``forward_batch_last``."""
        y = self.layer.forward_batch_last(x, context, **extra)
        return self.expand.forward_batch_last(y, residual=x if self.residual else None)


class PixelRNN(AutoregressiveModel):
    """Shared body of the recurrent PixelRNNs; subclasses set ``layer_class``, a module taking
    ``(in_channels, hidden_channels, num_groups)`` and mapping ``(B, in, H, W)`` → ``(B, h, H, W)``.
    """

    config_class = PixelRNNConfig
    layer_class: ClassVar[type[nn.Module]]
    supports_context = True
    supports_embedding = True

    def __init__(self, config: PixelRNNConfig) -> None:
        super().__init__(config)
        c, g = self.input_channels, self.mask_groups
        h = config.hidden_channels
        if config.full_context and self.layer_class is not DiagonalBiLSTM:
            raise ValueError("full_context applies to the Diagonal BiLSTM only")
        self.input_conv = MaskedConv2d(c, 2 * h, config.input_kernel_size, "A", g)

        def layer(k: int) -> nn.Module:
            extra = {"image_channels": c} if config.full_context and k == 0 else {}
            return self.layer_class(2 * h, h, g, context_channels=config.context_channels, **extra)

        self.blocks = nn.ModuleList(
            RecurrentBlock(layer(k), h, g, config.residual) for k in range(config.num_layers)
        )
        self.skips = nn.ModuleList(
            MaskedConv2d(2 * h, 2 * h, 1, "B", g)
            for _ in range(config.num_layers if config.skip else 0)
        )
        self.output_hidden = MaskedConv2d(2 * h, config.output_channels, 1, "B", g)
        self.output = MaskedConv2d(config.output_channels, self.num_params_out, 1, "B", g)

    def network(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """``context``: the conditioning map ``(B, c, H, W)`` of a model with
        ``context_channels``, added to every recurrent layer's input-to-state map.

        Everything after the input convolution runs on batch-last maps ``(C, H, W, B)``, the
        recurrent layers' own layout: every other layer is 1×1, i.e. one matrix product over
        the whole batch, and no layer changes the layout (docs/benchmarks.md has the
        measurement). Tested equal to the same network on ``(B, C, H, W)`` maps
        (``tests/models/test_pixelrnn_layouts.py``)."""

        def batch_last(t: torch.Tensor) -> torch.Tensor:
            return t.permute(1, 2, 3, 0).contiguous()

        h = batch_last(self.input_conv(x))
        context = None if context is None else batch_last(context)
        # the skip connections' sum accumulates in place, every bias added once at the start
        skip_sum = None
        for k, block in enumerate(self.blocks):
            extra = {"image": batch_last(x)} if k == 0 and self.config.full_context else {}
            h = block.forward_batch_last(h, context, **extra)
            if self.skips:
                flat = h.reshape(h.shape[0], -1)
                if skip_sum is None:
                    bias = torch.stack([skip.bias for skip in self.skips]).sum(0)
                    skip_sum = torch.addmm(bias[:, None], self.skips[k].matrix(), flat)
                else:  # in place, so in skip_sum's dtype (autocast does not cast it)
                    matrix = self.skips[k].matrix().to(skip_sum.dtype)
                    skip_sum.addmm_(matrix, flat.to(skip_sum.dtype))
        features = skip_sum.view(h.shape) if skip_sum is not None else h
        hidden = self.output_hidden.forward_batch_last(F.relu(features))
        return self.output.forward_batch_last(F.relu(hidden)).permute(3, 0, 1, 2)


class RowLSTMPixelRNN(PixelRNN):
    """Row LSTM PixelRNN (PixelRNN §3.1): rows top to bottom, a whole row at a time."""

    model_name = "row_lstm"
    layer_class = RowLSTM


class DiagonalBiLSTMPixelRNN(PixelRNN):
    """Diagonal BiLSTM PixelRNN (PixelRNN §3.2): two diagonal scans over all earlier pixels."""

    model_name = "diagonal_bilstm"
    layer_class = DiagonalBiLSTM
