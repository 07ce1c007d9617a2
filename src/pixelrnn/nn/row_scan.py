"""The Row LSTM's recurrence (PixelRNN §3.1, Eq. 3) as one autograd Function.

Row by row, top to bottom, with every whole-map product done before or after (the input-to-state
map arrives as pre-activations)::

    [o, f, i, g]_r = σ( pre_r + K^ss ⊛ h_{r−1} ),   c_r = f ⊙ c_{r−1} + i ⊙ g,   h_r = o ⊙ tanh(c_r)

``K^ss ⊛`` is the unmasked width-``k`` state-to-state convolution along the row, written as ``k``
matrix products per row, one per tap, each reading the previous row's states shifted by the tap.
The buffers keep the batch innermost, ``(channel, row, column, batch)``, so a row is one
contiguous block per channel and a tap's shifted operand is the same block moved by ``B``
numbers: the products read it in place (states padded by ``k // 2`` zero columns on each side).
Back-propagation through the rows is written out (:func:`_backward_rows`), so a training step
runs a handful of products per row instead of an autograd graph of convolutions (whose backward
cost about a millisecond per row on the CPU, docs/benchmarks.md).

On the CPU in float32/float64 the row loops run compiled (``csrc/row_scan.cpp``: the products
through ATen's batch-reduce GEMM and one fused, vectorized cell loop per row); elsewhere (bf16,
CUDA) the Python loops below, which stay the reference. Tests: ``tests/nn/test_recurrent.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from pixelrnn.native import flop_formula, native_available
from pixelrnn.nn.lstm_cell import lstm_cell_backward_into, lstm_cell_into
from pixelrnn.nn.masked_conv import run_in_compute_dtype


def _row(buffer: torch.Tensor, r: int, start: int = 0, width: int | None = None) -> torch.Tensor:
    """Columns ``[start, start + width)`` of row ``r`` of a batch-last buffer ``(K, R, W', B)``
    as a ``(K, width · B)`` view (all columns when ``width`` is None)."""
    k, _, cols, b = buffer.shape
    width = cols - start if width is None else width
    return buffer[:, r, start : start + width].view(k, width * b)


def _new_buffer(like: torch.Tensor, *shape: int) -> torch.Tensor:
    """An unset buffer for the scan (like ``like``'s dtype and device): the scan sets every
    entry it reads. ``tests/nn/test_recurrent.py`` fills these with NaN to prove it."""
    return like.new_empty(shape)


def _forward_rows(
    gates: torch.Tensor,
    states: torch.Tensor,
    cells: torch.Tensor,
    tanh_cells: torch.Tensor,
    weight: torch.Tensor,
) -> None:
    """The forward recurrence, row by row, in place (the reference for the compiled
    ``pixelrnn::row_scan_forward``): per row the ``k`` tap products added to the
    pre-activations, then the LSTM cell, whose activations replace the pre-activations.

    Shape:
        gates ``(4h, H, W, B)`` (pre-activations in, activations ``[σ(o, f, i) | tanh(g)]``
        out), states ``(h, H + 1, W + 2p, B)`` (row 0: the initial state; ``p = k // 2`` zero
        columns each side), cells ``(h, H + 1, W, B)`` (row 0: the initial cell), tanh_cells
        ``(h, H, W, B)``, weight ``(4h, k, h)`` (tap ``t`` reads column ``j + t − p``).
    """
    h, rows, width = cells.shape[0], tanh_cells.shape[1], tanh_cells.shape[2]
    p = (states.shape[2] - width) // 2
    for r in range(rows):
        pre = _row(gates, r)
        for t in range(weight.shape[1]):  # (not addmm_: FlopCounterMode does not count it)
            pre.add_(weight[:, t] @ _row(states, r, t, width))
        lstm_cell_into(
            pre, pre, _row(cells, r), _row(cells, r + 1), _row(tanh_cells, r),
            _row(states, r + 1, p, width), h, dim=0,
        )  # fmt: skip


def _backward_rows(
    gates: torch.Tensor,
    states: torch.Tensor,
    cells: torch.Tensor,
    tanh_cells: torch.Tensor,
    weight: torch.Tensor,
    d_states: torch.Tensor,
    d_gates: torch.Tensor,
    d_cell: torch.Tensor,
    d_weight: torch.Tensor,
) -> None:
    """Back-propagation through the rows, bottom to top, in place (the reference for the
    compiled ``pixelrnn::row_scan_backward``): per row the cell's backward gives the gradient
    of the pre-activations (written to ``d_gates``); then per tap the kernel's gradient (added
    to ``d_weight``) and the gradient of the previous row's states it read (added to
    ``d_states``, shifted by the tap).

    Shape:
        as :func:`_forward_rows`; d_states like states (the output's gradient in on rows 1..H
        inside the padding, zero on row 0: the initial state's gradient out there), d_gates
        like gates (out), d_cell ``(h, W, B)`` (zero in; the initial cell's gradient out),
        d_weight ``(4h, k, h)`` (zero in, possibly float32 for a lower-precision scan).
    """
    h, rows, width = cells.shape[0], tanh_cells.shape[1], tanh_cells.shape[2]
    p = (states.shape[2] - width) // 2
    carry = d_cell.view(h, -1)
    for r in range(rows - 1, -1, -1):
        d_gate = _row(d_gates, r)
        lstm_cell_backward_into(
            _row(gates, r), _row(cells, r), _row(tanh_cells, r),
            _row(d_states, r + 1, p, width), carry, d_gate, h, dim=0,
        )  # fmt: skip
        for t in range(weight.shape[1]):
            above = _row(states, r, t, width)
            # summed in d_weight's dtype (float32 for a bfloat16 scan: not rounded per row)
            d_weight[:, t].add_(d_gate @ above.T)
            _row(d_states, r, t, width).add_(weight[:, t].T @ d_gate)


def row_loops(like: torch.Tensor) -> tuple[Callable[..., None], Callable[..., None]]:
    """The forward and backward row loops for buffers like ``like``: compiled (``native.py``)
    for CPU float32/float64 when available, else the Python ones."""
    compiled_dtype = like.device.type == "cpu" and like.dtype in (torch.float32, torch.float64)
    if compiled_dtype and native_available():
        ops = torch.ops.pixelrnn
        return ops.row_scan_forward, ops.row_scan_backward
    return _forward_rows, _backward_rows


class RowScan(torch.autograd.Function):
    """The Row LSTM's recurrence over a batch-last map with a hand-written backward.

    Shape:
        pre-activations ``(4h, H, W, B)`` (the input-to-state map with its bias), state weight
        ``(4h, h, k)`` (a ``Conv1d``'s), initial state and cell ``(h, 1)`` → hidden states
        ``(h, H, W, B)``.
    """

    @staticmethod
    def forward(ctx, pre, w_state, h0, c0):  # type: ignore[override]
        return run_in_compute_dtype(RowScan._forward, ctx, pre, w_state, h0, c0)

    @staticmethod
    def _forward(ctx, pre, w_state, h0, c0):  # type: ignore[no-untyped-def]
        dtype = pre.dtype
        four_h, rows, width, b = pre.shape
        h, k = four_h // 4, w_state.shape[2]
        p = k // 2
        gates = _new_buffer(pre, four_h, rows, width, b).copy_(pre)
        states = _new_buffer(pre, h, rows + 1, width + 2 * p, b)
        states[:, :, :p].zero_()
        states[:, :, p + width :].zero_()
        states[:, 0, p : p + width].copy_(h0.to(dtype)[:, :, None].expand(h, width, b))
        cells = _new_buffer(pre, h, rows + 1, width, b)
        cells[:, 0].copy_(c0.to(dtype)[:, :, None].expand(h, width, b))
        tanh_cells = _new_buffer(pre, h, rows, width, b)
        weight = w_state.to(dtype).permute(0, 2, 1).contiguous()  # (4h, k, h): [tap 0 | ...]
        forward_rows, _ = row_loops(pre)
        forward_rows(gates, states, cells, tanh_cells, weight)
        ctx.save_for_backward(gates, states, cells, tanh_cells, weight)
        ctx.dtypes = (pre.dtype, w_state.dtype, h0.dtype, c0.dtype)
        return states[:, 1:, p : p + width].contiguous()

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        gates, states, cells, tanh_cells, weight = ctx.saved_tensors
        pre_dtype, w_state_dtype, h0_dtype, c0_dtype = ctx.dtypes
        h, _, padded, b = states.shape
        width = cells.shape[2]
        p = (padded - width) // 2
        # the output's gradient on rows 1..H, zero on row 0 (the initial state's gradient
        # collects there); the padding columns are only added to, never read
        d_states = _new_buffer(states, *states.shape)
        d_states[:, 0].zero_()
        d_states[:, 1:, p : p + width].copy_(grad_out)
        d_gates = _new_buffer(gates, *gates.shape)  # every entry written
        d_cell = states.new_zeros(h, width, b)
        sum_dtype = torch.promote_types(gates.dtype, torch.float32)
        d_weight = weight.new_zeros(weight.shape, dtype=sum_dtype)
        _, backward_rows = row_loops(gates)
        backward_rows(gates, states, cells, tanh_cells, weight, d_states, d_gates, d_cell, d_weight)
        d_h0 = d_states[:, 0, p : p + width].sum(dim=(1, 2))[:, None]
        d_c0 = d_cell.sum(dim=(1, 2))[:, None]
        return (
            d_gates.to(pre_dtype),
            d_weight.permute(0, 2, 1).contiguous().to(w_state_dtype),
            d_h0.to(h0_dtype),
            d_c0.to(c0_dtype),
        )


def _row_scan_rows(tanh_cells: Any, weight: Any) -> int:
    """One product of the ``k`` state taps ``(4h × k·h)`` per pixel. ``tanh_cells``:
    ``(h, H, W, B)``; ``weight``: ``(4h, k, h)``."""
    _, rows, width, batch = tanh_cells
    four_h, k, h = weight
    return 2 * four_h * k * h * rows * width * batch


@flop_formula("row_scan_forward")
def _row_scan_forward(
    _gates: Any, _states: Any, _cells: Any, tanh_cells: Any, weight: Any, *_: Any, **__: Any
) -> int:
    """The state taps at every pixel (shapes only)."""
    return _row_scan_rows(tanh_cells, weight)


@flop_formula("row_scan_backward")
def _row_scan_backward(
    _gates: Any, _states: Any, _cells: Any, tanh_cells: Any, weight: Any, *_: Any, **__: Any
) -> int:
    """Two products per pixel: the taps' gradient and the gradient of the states they read
    (shapes only)."""
    return 2 * _row_scan_rows(tanh_cells, weight)
