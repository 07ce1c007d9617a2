"""The LSTM cell update of the PixelRNN layers (PixelRNN Eq. 3), shared by both recurrent layers."""

from __future__ import annotations

import torch


def lstm_cell(
    gates: torch.Tensor, c_prev: torch.Tensor, hidden_channels: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step on pre-activations laid out ``[o | f | i | g]`` along dim 1.

    ``o, f, i = σ(·)``, ``g = tanh(·)``, ``c = f ⊙ c_prev + i ⊙ g``, ``h = o ⊙ tanh(c)``.

    Returns:
        ``(h, c, sig, g, tanh_c)``: the new state and cell, plus the sigmoid gates ``[o|f|i]``,
        ``g`` and ``tanh(c)`` that a hand-written backward pass needs.

    Shape:
        gates ``(B, 4h, *)``, c_prev ``(B, h, *)`` → h, c, g, tanh_c ``(B, h, *)``,
        sig ``(B, 3h, *)``.
    """
    # split/chunk, not slicing: under autograd their backward is one concatenation, whereas
    # every slice's backward materialises a zero tensor of the full size (measured).
    sigmoid_part, g_part = torch.split(gates, [3 * hidden_channels, hidden_channels], dim=1)
    sig = torch.sigmoid(sigmoid_part)
    o, f, i = sig.chunk(3, dim=1)
    g = torch.tanh(g_part)
    c = f * c_prev + i * g
    tanh_c = torch.tanh(c)
    return o * tanh_c, c, sig, g, tanh_c
