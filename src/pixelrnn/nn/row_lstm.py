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

NOTE: the initial state ``(h_{−1}, c_{−1})`` is learned, one value per channel shared across
the row (PixelRNN §5.2 "learned initial state"; the paper does not say whether it varies
along the row).
"""

from __future__ import annotations

import torch
from torch import nn

from pixelrnn.nn.lstm_cell import lstm_cell
from pixelrnn.nn.masked_conv import MaskedConv2d, gate_groups


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
        b, _, _, w = x.shape
        gates_in = self.input_to_state(x)  # (B, 4h, H, W), all rows at once
        if self.context_to_state is not None and context is not None:
            gates_in = gates_in + self.context_to_state(context)
        gates_in = gates_in.contiguous()
        h = self.h0.expand(b, -1, w)
        c = self.c0.expand(b, -1, w)
        outputs = []
        for row in gates_in.unbind(dim=2):  # unbind: one cheap backward for all rows
            gates = row + self.state_to_state(h)  # (B, 4h, W)
            h, c, *_ = lstm_cell(gates, c, self.hidden_channels)
            outputs.append(h)
        return torch.stack(outputs, dim=2)
