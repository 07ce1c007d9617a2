"""Row LSTM layer (PixelRNN §3.1, Eq. 3).

The image is processed row by row, top to bottom, a whole row at a time::

    [o, f, i, g]_r = σ( K^ss ⊛ h_{r−1} + K^is ⊛ x_r ),   σ = sigmoid for o, f, i and tanh for g
    c_r = f ⊙ c_{r−1} + i ⊙ g,    h_r = o ⊙ tanh(c_r)

``K^is`` is a width-``k`` masked convolution along the row (mask B: the taps left of the
pixel and, with the colour rule, the pixel itself), computed for the whole map at once.
``K^ss`` is an unmasked width-``k`` 1-D convolution of the previous row's hidden state: every
entry of row ``r − 1`` precedes every sub-pixel of row ``r``. The receptive field of one layer
is a triangle above the pixel (one more column each side per row up) plus the left neighbour::

    . x x x x x .        (rows above: width grows by k−1 per row)
    . . x x x . .
    . . x ● . . .        ● = current pixel, x = context

NOTE: the layer runs on batch-last maps ``(C, H, W, B)`` (:meth:`RowLSTM.forward_batch_last`,
which the PixelRNN network uses throughout): the input-to-state map is one matrix product for
the whole map, and the recurrence is :class:`~pixelrnn.nn.row_scan.RowScan`, back-propagation
through the rows written out and compiled on the CPU. ``tests/nn/test_recurrent.py`` checks
values and gradients against a per-pixel reference differentiated by autograd.

NOTE: the initial state ``(h_{−1}, c_{−1})`` is learned, one value per channel shared across
the row (PixelRNN §5.2 "learned initial state"; the paper does not say whether it varies
along the row).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pixelrnn.nn.masked_conv import MaskedConv2d, gate_groups
from pixelrnn.nn.row_scan import RowScan


class RowLSTM(nn.Module):
    """Row LSTM over a feature map.

    Args:
        in_channels: input feature maps.
        hidden_channels: ``h``, hidden units (the gates have ``4h`` pre-activations).
        num_groups: colour groups (3 for RGB, 1 otherwise); the gates keep them per unit.
        kernel_size: width ``k`` of both convolutions (3 in the paper).
        context_channels: channels of a conditioning map added to the input-to-state map
            through an unmasked 1×1 convolution (Multi-Scale PixelRNN, §3.4); None: none.

    Shape:
        ``(B, in_channels, H, W)`` (and context ``(B, c, H, W)``) → ``(B, h, H, W)``.
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        num_groups: int = 1,
        kernel_size: int = 3,
        context_channels: int | None = None,
    ) -> None:
        super().__init__()
        h = hidden_channels
        self.hidden_channels = h
        self.input_to_state = MaskedConv2d(
            in_channels,
            4 * h,
            (1, kernel_size),
            "B",
            num_groups,
            out_groups=gate_groups(h, 4, num_groups),
        )
        # The bias lives in input_to_state; the state convolution has none.
        self.state_to_state = nn.Conv1d(h, 4 * h, kernel_size, padding=kernel_size // 2, bias=False)
        self.h0 = nn.Parameter(torch.zeros(h, 1))
        self.c0 = nn.Parameter(torch.zeros(h, 1))
        self.context_to_state = (
            None if context_channels is None else nn.Conv2d(context_channels, 4 * h, 1, bias=False)
        )

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """Shape: ``(B, in_channels, H, W)`` (context ``(B, c, H, W)``) → ``(B, h, H, W)``."""
        out = self.forward_batch_last(
            *(None if t is None else t.permute(1, 2, 3, 0) for t in (x, context))
        )
        return out.permute(3, 0, 1, 2).contiguous()

    def forward_batch_last(
        self, x: torch.Tensor, context: torch.Tensor | None = None
    ) -> torch.Tensor:
        """:meth:`forward` on batch-last maps (the scan's own layout, so a network kept in it
        changes no layout per layer): the input-to-state convolution for the whole map as one
        matrix product of its stacked taps, then :class:`~pixelrnn.nn.row_scan.RowScan`.

        Shape:
            ``(in_channels, H, W, B)`` (context ``(c, H, W, B)``) → ``(h, H, W, B)``.
        """
        conv = self.input_to_state
        _, rows, width, b = x.shape
        taps = (conv.weight * conv.mask)[:, :, 0]  # (4h, C, k)
        p = taps.shape[2] // 2
        # mask B zeroes the taps right of the centre: the centre and the p taps left of it read
        # the input shifted right by p..0 columns, stacked into one operand of one product
        padded = F.pad(x, (0, 0, p, 0))  # (C, H, p + W, B)
        operand = torch.cat([padded[:, :, t : t + width] for t in range(p + 1)])
        kernel = taps[:, :, : p + 1].transpose(1, 2).reshape(taps.shape[0], -1)
        pre = torch.addmm(conv.bias[:, None], kernel, operand.view(-1, rows * width * b))
        pre = pre.view(-1, rows, width, b)
        if self.context_to_state is not None and context is not None:
            weight = self.context_to_state.weight.flatten(1)
            pre = pre + (weight @ context.reshape(context.shape[0], -1)).view(pre.shape)
        return RowScan.apply(pre, self.state_to_state.weight, self.h0, self.c0)
