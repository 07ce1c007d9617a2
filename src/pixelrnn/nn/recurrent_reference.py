"""The two recurrent layers in the paper's own form: the readable references that every fast
path (the Python and the compiled scans, on any device, and the cached sampling steps) is
tested against.

They read a layer's weights and compute its output with plain differentiable operations, one
row (Row LSTM, PixelRNN §3.1) or one skewed column (Diagonal BiLSTM, §3.2, Fig. 3) at a time,
so autograd through them is also the reference for the scans' hand-written backward passes.
They are slow (a Python loop of small operations) and never used for training.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pixelrnn.nn.diagonal_lstm import DiagonalBiLSTM
from pixelrnn.nn.row_lstm import RowLSTM
from pixelrnn.nn.skew import skew, unskew


def lstm_update(
    pre: torch.Tensor, cell: torch.Tensor, hidden_channels: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """PixelRNN Eq. 3: gates ``[o, f, i | g]`` from the pre-activations, then the new cell and
    state. Shape: pre ``(B, 4h, …)``, cell ``(B, h, …)`` → state and cell ``(B, h, …)``."""
    o, f, i = pre[:, : 3 * hidden_channels].sigmoid().chunk(3, dim=1)
    g = pre[:, 3 * hidden_channels :].tanh()
    cell = f * cell + i * g
    return o * cell.tanh(), cell


def row_lstm_reference(
    layer: RowLSTM, x: torch.Tensor, context: torch.Tensor | None = None
) -> torch.Tensor:
    """Row LSTM (PixelRNN §3.1): the masked ``1 × k`` input-to-state convolution of the whole
    map, then row by row the ``k``-wide state-to-state convolution of the row above and the
    LSTM update, from the learned initial state.

    Shape: x ``(B, C, H, W)`` (context ``(B, c, H, W)``) → ``(B, h, H, W)``.
    """
    b, _, rows, width = x.shape
    h = layer.hidden_channels
    conv = layer.input_to_state
    k = conv.weight.shape[-1]
    pre_input = F.conv2d(x, conv.weight * conv.mask, conv.bias, padding=(0, k // 2))
    if layer.context_to_state is not None and context is not None:
        pre_input = pre_input + layer.context_to_state(context)
    state = layer.h0.expand(h, width).expand(b, h, width)  # (B, h, W)
    cell = layer.c0.expand(h, width).expand(b, h, width)
    outputs = []
    for r in range(rows):
        pre = pre_input[:, :, r] + F.conv1d(state, layer.state_to_state.weight, padding=k // 2)
        state, cell = lstm_update(pre, cell, h)
        outputs.append(state)
    return torch.stack(outputs, dim=2)


def diagonal_bilstm_reference(
    layer: DiagonalBiLSTM,
    x: torch.Tensor,
    context: torch.Tensor | None = None,
    image: torch.Tensor | None = None,
) -> torch.Tensor:
    """Diagonal BiLSTM (PixelRNN §3.2): per direction (the right-to-left one on the mirrored
    map), skew → the masked 1×1 input-to-state convolution → column by column the 2×1
    state-to-state convolution of the previous column (padded on top) and the LSTM update →
    unskew; the right-to-left output mirrored back and shifted down one row, then added.

    Shape: x ``(B, C, H, W)`` (context ``(B, c, H, W)``, image ``(B, C_img, H, W)``) →
    ``(B, h, H, W)``.
    """
    b, _, rows, width = x.shape
    h = layer.hidden_channels
    conv = layer.input_to_state
    # both directions' 1x1 input-to-state maps [left-to-right | right-to-left], (B, 8h, H, W)
    pre_input = F.conv2d(x, conv.weight * conv.mask, conv.bias)
    if layer.context_to_state is not None and context is not None:
        pre_input = pre_input + layer.context_to_state(context)
    if layer.image_to_state is not None:
        if image is None:
            raise ValueError("this layer reads the image (image_channels): pass image")
        zero = torch.zeros_like(layer.image_to_state.weight)
        pre_input = pre_input + F.conv2d(image, torch.cat([zero, layer.image_to_state.weight]))
    outputs = []
    for d, flip in enumerate((False, True)):
        pre_d = pre_input[:, 4 * h * d : 4 * h * (d + 1)]
        columns = skew(pre_d.flip(-1) if flip else pre_d)  # (B, 4h, H, W + H - 1)
        w_state = layer.state_to_state.weight[4 * h * d : 4 * h * (d + 1)]  # (4h, h, 2)
        state = x.new_zeros(b, h, rows)
        cell = x.new_zeros(b, h, rows)
        skewed_states = []
        for t in range(columns.shape[-1]):
            # tap 0 reads the row above in the previous column, tap 1 the same row
            pre = columns[..., t] + F.conv1d(F.pad(state, (1, 0)), w_state)
            state, cell = lstm_update(pre, cell, h)
            skewed_states.append(state)
        hidden = unskew(torch.stack(skewed_states, dim=-1), width)  # (B, h, H, W)
        outputs.append(hidden.flip(-1) if flip else hidden)
    left, right = outputs
    return left + F.pad(right, (0, 0, 1, 0))[:, :, :rows]  # right-to-left: one row down
