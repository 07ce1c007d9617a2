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


def lstm_cell_into(
    pre: torch.Tensor,
    gate: torch.Tensor,
    c_prev: torch.Tensor,
    c: torch.Tensor,
    tanh_c: torch.Tensor,
    h: torch.Tensor,
    hidden_channels: int,
    dim: int,
) -> None:
    """:func:`lstm_cell` written into preallocated buffers (the scans' Python loops): the
    activations ``[σ(o, f, i) | tanh(g)]`` of the pre-activations ``pre`` into ``gate`` (which
    may be ``pre`` itself), then ``c``, ``tanh(c)`` and ``h``.

    Shape:
        pre and gate ``(…, 4h, …)`` with the gates along ``dim``; c_prev, c, tanh_c, h
        ``(…, h, …)``.
    """
    k = hidden_channels
    torch.sigmoid(pre.narrow(dim, 0, 3 * k), out=gate.narrow(dim, 0, 3 * k))
    torch.tanh(pre.narrow(dim, 3 * k, k), out=gate.narrow(dim, 3 * k, k))
    o, f, i, g = gate.split(k, dim=dim)
    torch.mul(f, c_prev, out=c)
    c.addcmul_(i, g)
    torch.tanh(c, out=tanh_c)
    torch.mul(o, tanh_c, out=h)


def lstm_cell_backward_into(
    gate: torch.Tensor,
    c_prev: torch.Tensor,
    tanh_c: torch.Tensor,
    dh: torch.Tensor,
    carry: torch.Tensor,
    d_gate: torch.Tensor,
    hidden_channels: int,
    dim: int,
) -> None:
    """The backward of :func:`lstm_cell_into` from the saved activations: from ``dL/dh``
    (``dh``) and the ``dL/dc`` carried from the next step (``carry``, replaced in place by
    ``dL/dc_prev``), the gradient of the pre-activations into ``d_gate``.

    Shape:
        gate and d_gate ``(…, 4h, …)`` with the gates along ``dim``; c_prev, tanh_c, dh, carry
        ``(…, h, …)``.
    """
    k = hidden_channels
    o, f, i, g = gate.split(k, dim=dim)
    dc = torch.ops.aten.tanh_backward(dh * o, tanh_c).add_(carry)
    d_act = torch.cat([dh * tanh_c, dc * c_prev, dc * g, dc * i], dim=dim)  # after σ / tanh
    torch.ops.aten.sigmoid_backward.grad_input(
        d_act.narrow(dim, 0, 3 * k), gate.narrow(dim, 0, 3 * k),
        grad_input=d_gate.narrow(dim, 0, 3 * k),
    )  # fmt: skip
    torch.ops.aten.tanh_backward.grad_input(
        d_act.narrow(dim, 3 * k, k), g, grad_input=d_gate.narrow(dim, 3 * k, k)
    )
    torch.mul(dc, f, out=carry)
