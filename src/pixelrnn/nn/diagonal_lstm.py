"""Diagonal BiLSTM layer (PixelRNN §3.2, Fig. 3 and 4).

Each direction skews its input so that diagonals become columns and runs an LSTM over the
columns of the skewed map: the state at skewed position ``(r, t)`` reads the previous column at
rows ``r − 1`` and ``r`` (a 2×1 state-to-state convolution, padded on top), i.e. the pixels
above and to the left in the original image. The input-to-state convolution is 1×1 with mask B.
After unskewing, the left-to-right direction has seen every pixel above-left of the current one
(and the current one, by the colour rule)::

    x x x x . .     left-to-right: rows above up to the column, and the row to the left
    x x x x . .
    x x x ● . .

The right-to-left direction is the same computation on the mirrored map (separate weights); its
output is **shifted down by one row** before it is added, so that at a pixel it only brings in
rows above (everything to the right in the current row is future). Together: full context.

NOTE: both directions are computed in one loop over ``W + H − 1`` columns, their states stacked
on the channel axis, with a grouped 1-D convolution (``groups=2``) for the two state-to-state
kernels. Each step only computes the rows of its column that hold pixels; the skew padding is
kept at exactly zero (zero initial state, no bias in the state convolution), which is what
the pixels next to the diagonal read.

NOTE: "entire available context" (§3.2) holds up to one sub-pixel per row: no feature of row
``i − 1`` ever holds the last channel of its last pixel ``(i − 1, W − 1)`` (a feature never holds
its own position's current channel, and nothing lies to its right), so pixels ``(i, j)`` with
``j < W − 1 − r`` (``r`` = half the input kernel) do not see it. Tested exactly in
``tests/models/test_receptive_field.py``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pixelrnn.nn.masked_conv import MaskedConv2d, gate_groups
from pixelrnn.nn.row_lstm import lstm_update
from pixelrnn.nn.skew import skew, unskew


def down_shift(x: torch.Tensor) -> torch.Tensor:
    """Shift a map down by one row: row 0 becomes zero, the last row drops off.

    Shape:
        ``(B, C, H, W)`` → ``(B, C, H, W)``.
    """
    return F.pad(x, (0, 0, 1, 0))[:, :, :-1]


class DiagonalBiLSTM(nn.Module):
    """Diagonal BiLSTM over a feature map.

    Args:
        in_channels: input feature maps.
        hidden_channels: ``h``, hidden units per direction.
        num_groups: colour groups (3 for RGB, 1 otherwise).

    Shape:
        ``(B, in_channels, H, W)`` → ``(B, h, H, W)`` (the sum of the two directions).
    """

    def __init__(self, in_channels: int, hidden_channels: int, num_groups: int = 1) -> None:
        super().__init__()
        h = hidden_channels
        self.hidden_channels = h
        # Both directions' 1x1 input-to-state kernels in one convolution: [left | right] x 4h.
        self.input_to_state = MaskedConv2d(
            in_channels, 8 * h, 1, "B", num_groups, out_groups=gate_groups(h, 8, num_groups)
        )
        # Column-wise 2x1 state-to-state kernels, one per direction (groups=2), no bias.
        self.state_to_state = nn.Conv1d(2 * h, 8 * h, kernel_size=2, groups=2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, rows, width = x.shape
        h = self.hidden_channels
        gates = self.input_to_state(x)  # (B, 8h, H, W); 1x1, so mirroring commutes with it
        left_gates, right_gates = gates.chunk(2, dim=1)
        gates = torch.cat([left_gates, right_gates.flip(-1)], dim=1)
        skewed = skew(gates)  # (B, 8h, H, W+H-1); columns are read as strided views
        state = x.new_zeros(b, 2 * h, rows)
        cell = x.new_zeros(b * 2, h, rows)
        outputs = []
        for t, column in enumerate(skewed.unbind(-1)):  # unbind: one backward for all
            # Column t holds pixels only in rows lo..hi; the rows above are right padding
            # (never read) and the rows below left padding (must stay zero), so the step
            # runs on the band and is zero-padded back: about half the work of the full map.
            lo, hi = max(0, t - width + 1), min(t, rows - 1) + 1
            # rows r-1 and r of the previous column: a zero row on top, then rows lo-1 .. hi-1
            prev = F.pad(state, (1, 0))[:, :, lo : hi + 1]
            pre = column[:, :, lo:hi] + self.state_to_state(prev)  # (B, 8h, band)
            band_h, band_c = lstm_update(
                pre.reshape(b * 2, 4 * h, hi - lo), cell[:, :, lo:hi], h
            )  # both directions at once
            state = F.pad(band_h.reshape(b, 2 * h, hi - lo), (lo, rows - hi))
            cell = F.pad(band_c, (lo, rows - hi))
            outputs.append(state)
        out = unskew(torch.stack(outputs, dim=-1), width)  # (B, 2h, H, W)
        left, right = out.chunk(2, dim=1)
        return left + down_shift(right.flip(-1))
