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
rows above (everything to the right in the current row is future). Together: every earlier
pixel, up to the one sub-pixel per row of the second NOTE.

NOTE: both directions are computed in one scan over the ``W + H − 1`` skewed columns, their
states stacked on the channel axis, with a grouped 1-D convolution (``groups=2``) for the two
state-to-state kernels. The scan is one autograd Function with back-propagation through time
written out (:class:`DiagonalScan`), and each step only computes the rows of its column that
hold pixels; the skew padding is kept at exactly zero (zero initial state, no bias in the state
convolution), which is what the pixels next to the diagonal read.

NOTE: "entire available context" (§3.2) holds up to one sub-pixel per row: no feature of row
``i − 1`` ever holds the last channel of its last pixel ``(i − 1, W − 1)`` (a feature never holds
its own position's current channel, and nothing lies to its right), so pixels ``(i, j)`` with
``j < W − 1 − r`` (``r`` = half the input kernel) do not see it. Tested exactly in
``tests/models/test_receptive_field.py``. With ``image_channels`` (the models'
``full_context=True``; a deviation from the paper) the right-to-left direction also reads the
raw image at its own position through an unmasked 1×1 kernel — allowed because its output
enters one row down — and then every earlier sub-pixel is seen.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pixelrnn.nn.lstm_cell import lstm_cell
from pixelrnn.nn.masked_conv import MaskedConv2d, gate_groups
from pixelrnn.nn.shifted_conv import down_shift
from pixelrnn.nn.skew import skew, unskew


class DiagonalBiLSTM(nn.Module):
    """Diagonal BiLSTM over a feature map.

    Args:
        in_channels: input feature maps.
        hidden_channels: ``h``, hidden units per direction.
        num_groups: colour groups (3 for RGB, 1 otherwise).
        context_channels: channels of a conditioning map added to both directions'
            input-to-state maps through an unmasked 1×1 convolution (Multi-Scale PixelRNN,
            §3.4); None: none.
        image_channels: the right-to-left direction also reads the raw image (this many
            channels) through an unmasked 1×1 convolution (see the module docstring); None:
            the paper's layer.

    Shape:
        ``(B, in_channels, H, W)`` (and context ``(B, c, H, W)``) → ``(B, h, H, W)`` (the sum
        of the two directions).
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        num_groups: int = 1,
        context_channels: int | None = None,
        image_channels: int | None = None,
    ) -> None:
        super().__init__()
        h = hidden_channels
        self.hidden_channels = h
        # Both directions' 1x1 mask-B input-to-state kernels, [left | right] x 4h. Like
        # state_to_state below, the module holds the weights; DiagonalScan applies them.
        self.input_to_state = MaskedConv2d(
            in_channels, 8 * h, 1, "B", num_groups, out_groups=gate_groups(h, 8, num_groups)
        )
        # Column-wise 2x1 state-to-state kernels, one per direction (groups=2), no bias.
        self.state_to_state = nn.Conv1d(2 * h, 8 * h, kernel_size=2, groups=2, bias=False)
        self.context_to_state = (
            None if context_channels is None else nn.Conv2d(context_channels, 8 * h, 1, bias=False)
        )
        # right-to-left only: (4h, C_img, 1, 1); the left-to-right direction must not see it
        self.image_to_state = (
            None if image_channels is None else nn.Conv2d(image_channels, 4 * h, 1, bias=False)
        )

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        image: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``context``: a conditioning map; ``image``: the raw image, for a layer built with
        ``image_channels``. Shapes ``(B, c, H, W)``, ``(B, C_img, H, W)``."""
        conv = self.input_to_state
        w_in = conv.weight * conv.mask  # (8h, C, 1, 1)
        # extra inputs join as channels with unmasked kernels: the scan then adds their 1x1
        # convolutions to the input-to-state maps
        if self.context_to_state is not None and context is not None:
            x = torch.cat([x, context.to(x.dtype)], dim=1)
            w_in = torch.cat([w_in, self.context_to_state.weight], dim=1)
        if self.image_to_state is not None:
            if image is None:
                raise ValueError("this layer reads the image (image_channels): pass image")
            right = self.image_to_state.weight
            x = torch.cat([x, image.to(x.dtype)], dim=1)
            w_in = torch.cat([w_in, torch.cat([torch.zeros_like(right), right])], dim=1)
        c_in, width = x.shape[1], x.shape[-1]
        # Direction d reads channels [d*C, (d+1)*C): the image, then its mirror. The 1x1
        # input-to-state kernels are applied inside the scan, column by column (groups=2), so
        # only this input (not the 4x wider gate map) is skewed and made column-major.
        both = torch.cat([x, x.flip(-1)], dim=1)
        columns = skew(both).permute(3, 0, 1, 2).contiguous()  # (T, B, 2C, H)
        w_in = w_in.reshape(8 * self.hidden_channels, c_in, 1)
        states = DiagonalScan.apply(
            columns, w_in, conv.bias, self.state_to_state.weight, self.hidden_channels, width
        )
        out = unskew(states.permute(1, 2, 3, 0), width)  # (B, 2h, H, W)
        left, right = out.chunk(2, dim=1)
        return left + down_shift(right.flip(-1))


def _bands(rows: int, width: int) -> list[tuple[int, int]]:
    """``[lo, hi)`` of the rows of every skewed column that hold pixels (the rest is padding)."""
    return [(max(0, t - width + 1), min(t, rows - 1) + 1) for t in range(width + rows - 1)]


class DiagonalScan(torch.autograd.Function):
    """The column-by-column LSTM scan of both directions, with a hand-written backward.

    One autograd node for the whole scan instead of a dozen per column: the backward pass is
    back-propagation through time written out (LSTM cell derivatives, the transposed 1x1 input
    and 2x1 state convolutions and their weight gradients), on the band of rows of each column
    that hold pixels. Rows outside the band are skew padding: their state is exactly zero and
    gets no gradient. ``tests/nn/test_recurrent.py`` checks values and gradients against a
    per-pixel reference differentiated by autograd.

    Shape:
        skewed input, column-major ``(T, B, 2C, H)``; input weight ``(8h, C, 1)``, bias
        ``(8h,)``; state weight ``(8h, h, 2)`` → states, column-major ``(T, B, 2h, H)``.
    """

    @staticmethod
    def forward(ctx, columns, w_in, bias, w_state, hidden, width):  # type: ignore[override]
        num_columns, b, _, rows = columns.shape
        h = hidden
        states = columns.new_zeros(num_columns, b, 2 * h, rows)
        state = columns.new_zeros(b, 2 * h, rows)
        cell = columns.new_zeros(b * 2, h, rows)
        saved = []
        for t, (lo, hi) in enumerate(_bands(rows, width)):
            n = hi - lo
            prev = F.pad(state, (1, 0))[:, :, lo : hi + 1]  # rows lo-1 .. hi-1, zero row on top
            pre = F.conv1d(columns[t, :, :, lo:hi], w_in, bias, groups=2)
            pre = (pre + F.conv1d(prev, w_state, groups=2)).view(b * 2, 4 * h, n)
            c_prev = cell[:, :, lo:hi]
            new_h, c, sig, g, tanh_c = lstm_cell(pre, c_prev, h)
            state = F.pad(new_h.reshape(b, 2 * h, n), (lo, rows - hi))
            cell = F.pad(c, (lo, rows - hi))
            states[t] = state
            saved.append((prev, sig, g, c_prev, tanh_c))
        ctx.saved = saved
        ctx.save_for_backward(columns, w_in, w_state)
        ctx.sizes = (h, width)
        return states

    @staticmethod
    def backward(ctx, grad_states):  # type: ignore[override]
        columns, w_in, w_state = ctx.saved_tensors
        h, width = ctx.sizes
        num_columns, b, _, rows = columns.shape
        grad_states = grad_states.contiguous()  # columns read one by one below
        grad_columns = torch.zeros_like(columns)
        grad_w_in, grad_w_state = torch.zeros_like(w_in), torch.zeros_like(w_state)
        grad_bias = w_in.new_zeros(w_in.shape[0])
        dh_next = grad_states.new_zeros(b, 2 * h, rows)  # from the next column's state conv
        dc_next = grad_states.new_zeros(b * 2, h, rows)
        bands = _bands(rows, width)
        for t in range(num_columns - 1, -1, -1):
            lo, hi = bands[t]
            n = hi - lo
            prev, sig, g, c_prev, tanh_c = ctx.saved[t]
            o, f, i = sig.chunk(3, dim=1)
            dh = (grad_states[t, :, :, lo:hi] + dh_next[:, :, lo:hi]).reshape(b * 2, h, n)
            dc = dc_next[:, :, lo:hi] + dh * o * (1 - tanh_c * tanh_c)
            d_pre = torch.cat(
                [
                    dh * tanh_c * o * (1 - o),
                    dc * c_prev * f * (1 - f),
                    dc * g * i * (1 - i),
                    dc * i * (1 - g * g),
                ],
                dim=1,
            ).view(b, 8 * h, n)
            band_in = columns[t, :, :, lo:hi]
            grad_columns[t, :, :, lo:hi] = F.conv_transpose1d(d_pre, w_in, groups=2)
            grad_w_in += torch.nn.grad.conv1d_weight(band_in, w_in.shape, d_pre, groups=2)
            grad_bias += d_pre.sum(dim=(0, 2))
            grad_w_state += torch.nn.grad.conv1d_weight(prev, w_state.shape, d_pre, groups=2)
            d_prev = F.conv_transpose1d(d_pre, w_state, groups=2)  # rows lo-1 .. hi-1
            dh_next = F.pad(d_prev, (lo, rows - hi))[:, :, 1:]  # drop the zero row on top
            dc_next = F.pad(dc * f, (lo, rows - hi))
        return grad_columns, grad_w_in, grad_bias, grad_w_state, None, None
