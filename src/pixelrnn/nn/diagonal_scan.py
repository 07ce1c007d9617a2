"""The Diagonal BiLSTM's scan (PixelRNN §3.2): both directions' column-by-column LSTM
recurrence over the skewed map, with a hand-written backward pass.

Both directions are computed in one scan over the ``W + H − 1`` skewed columns (a leading
direction axis; per column one batched product of the stacked input-to-state and
state-to-state kernels with what they read, so the data a column touches stays in cache; the
training step is bound by memory traffic, see docs/benchmarks.md). Each step only computes the
rows of its column that hold pixels, and the skew padding is kept at exactly zero (zero initial
state, no bias in the state convolution), which is what the pixels next to the diagonal read.

One fast path per device: the compiled column loops (``pixelrnn.native``; on the CPU in
float32/float64 each direction on its own thread, the products' operands read straight from
the skewed buffers, ``native/csrc/diagonal_scan.cpp``; elsewhere the same loops as ATen calls).
The Python column loops below compute the same and run where no compiler is found: they are 3–4×
faster than autograd through the paper-form reference (105–150 ms against 430–460 ms for one
layer's forward and backward at batch 16, h = 16, 28×28, one thread), which is why they stay.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from pixelrnn.native import flop_formula, native_available
from pixelrnn.nn.lstm_cell import lstm_cell_backward_into, lstm_cell_into
from pixelrnn.nn.masked_conv import run_in_compute_dtype

# Rows the right-to-left direction's output is shifted down before it is added (§3.2): one, so
# that it brings in only rows above. Module-level so a test can break it (0) and show that the
# receptive-field and causality checks catch the leak.
RIGHT_TO_LEFT_ROW_SHIFT = 1


def _bands(rows: int, width: int) -> list[tuple[int, int]]:
    """``[lo, hi)`` of the rows of every skewed column that hold pixels (the rest is padding)."""
    return [(max(0, t - width + 1), min(t, rows - 1) + 1) for t in range(width + rows - 1)]


def _pixels(columns: torch.Tensor, width: int) -> torch.Tensor:
    """The pixels of a skewed buffer as a strided view in image coordinates.

    ``columns`` is ``(2, K, T + 1, H + 1, B)`` (contiguous): skewed column ``t`` at index
    ``t + 1`` and row ``r`` at index ``r + 1`` (index 0 of both is padding: the "previous"
    column of the first and the row above the first); pixel ``(r, j)`` lives in skewed column
    ``r + j`` at row ``r`` (PixelRNN Fig. 3). Writing into the view skews, reading from it
    unskews, a batch-sized contiguous block at a time, with no Python loop over pixels.

    Shape:
        ``(2, K, T + 1, H + 1, B)`` → view ``(2, K, H, W, B)``.
    """
    s_d, s_k, s_t, s_r, _ = columns.stride()
    two, k, _, rows_1, b = columns.shape
    return columns.as_strided(
        (two, k, rows_1 - 1, width, b),
        (s_d, s_k, s_t + s_r, s_t, 1),
        columns.storage_offset() + s_t + s_r,
    )


def _diagonal(buffer: torch.Tensor, row_offset: int) -> torch.Tensor:
    """Entries ``(t, t + row_offset)`` of a skewed buffer ``(2, K, T + 1, R, B)`` for
    ``t < R − row_offset``, as a view ``(2, K, R − row_offset, B)``."""
    s_d, s_k, s_t, s_r, _ = buffer.stride()
    two, k, _, rows, b = buffer.shape
    return buffer.as_strided(
        (two, k, rows - row_offset, b),
        (s_d, s_k, s_t + s_r, 1),
        buffer.storage_offset() + row_offset * s_r,
    )


def _zero_padding(states: torch.Tensor, cells: torch.Tensor) -> None:
    """Zero the padding of the state and cell buffers that the column loops read (the rest is
    never read, so it is left unset instead of clearing the whole buffers): the "previous"
    column of the first, the row above the first (states) and, in column index ``t`` for
    ``t < H``, the row one past the band of skewed column ``t − 1`` (row ``t``), which the next
    column's "left" tap and cell read.

    Shape:
        states ``(2, h, T + 1, H + 1, B)``, cells ``(2, h, T + 1, H, B)``.
    """
    states.select(2, 0).zero_()
    states.select(3, 0).zero_()
    _diagonal(states, row_offset=1).zero_()
    cells.select(2, 0).zero_()
    _diagonal(cells, row_offset=0).zero_()


def _new_buffer(like: torch.Tensor, *shape: int) -> torch.Tensor:
    """An unset buffer for the scan (like ``like``'s dtype and device): the scan sets every
    entry it reads. ``tests/nn/test_recurrent.py`` fills these with NaN to prove it."""
    return like.new_empty(shape)


def column_loops() -> tuple[Callable[..., None], Callable[..., None]]:
    """The forward and backward column loops: compiled (``native.py``) when available (they
    are ATen calls, for any device; the fused cell on CPU float32/float64), else the Python
    ones."""
    if native_available():
        ops = torch.ops.pixelrnn
        return ops.diagonal_scan_forward, ops.diagonal_scan_backward
    return _forward_columns, _backward_columns


def _column(buffer: torch.Tensor, t: int, lo: int, n: int, row_offset: int = 1) -> torch.Tensor:
    """Rows ``[lo, lo + n)`` of column index ``t`` of a skewed buffer ``(2, K, T + 1, R, B)`` as
    a ``(2, K, n · B)`` view (``row_offset``: the buffer's index of row 0, 1 where a zero row
    pads the top, 0 where none)."""
    two, k, _, _, b = buffer.shape
    return buffer.select(2, t).narrow(2, lo + row_offset, n).view(two, k, n * b)


def _operand(inputs: torch.Tensor, states: torch.Tensor, t: int, lo: int, n: int) -> torch.Tensor:
    """What the gates of skewed column ``t`` read, stacked ``[input; above; left]``: the
    column's input pixels and, from the previous column, the states one row up and on the same
    row (the 2×1 state kernel's two taps; zero padding above the first row and outside the
    previous column's band). Shape ``(2, c + 2h, n · B)``."""
    above, left = _column(states, t, lo, n, row_offset=0), _column(states, t, lo, n)
    return torch.cat([_column(inputs, t + 1, lo, n), above, left], dim=1)


def _forward_columns(
    inputs: torch.Tensor,
    gates: torch.Tensor,
    states: torch.Tensor,
    cells: torch.Tensor,
    tanh_cells: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    width: int,
) -> None:
    """The forward recurrence, column by column, in place (the reference for the compiled
    ``pixelrnn::diagonal_scan_forward``): per column one batched product of the stacked
    kernels ``[input | above | left]`` with what they read (:func:`_operand`), plus the bias,
    then the LSTM cell (PixelRNN Eq. 3).

    Shape:
        inputs ``(2, c, T + 1, H + 1, B)`` (skewed, both directions), gates
        ``(2, 4h, T + 1, H + 1, B)`` (activations out), states ``(2, h, T + 1, H + 1, B)``,
        cells ``(2, h, T + 1, H, B)``, tanh_cells ``(2, h, T, H, B)``, weight
        ``(2, 4h, c + 2h)``, bias ``(2, 4h, 1)``.
    """
    h, rows = states.shape[1], cells.shape[3]
    for t, (lo, hi) in enumerate(_bands(rows, width)):
        n = hi - lo
        pre = torch.baddbmm(bias, weight, _operand(inputs, states, t, lo, n))
        lstm_cell_into(
            pre, _column(gates, t + 1, lo, n), _column(cells, t, lo, n, row_offset=0),
            _column(cells, t + 1, lo, n, row_offset=0),
            _column(tanh_cells, t, lo, n, row_offset=0), _column(states, t + 1, lo, n), h, dim=1,
        )  # fmt: skip


def _backward_columns(
    inputs: torch.Tensor,
    gates: torch.Tensor,
    states: torch.Tensor,
    cells: torch.Tensor,
    tanh_cells: torch.Tensor,
    weight: torch.Tensor,
    d_states: torch.Tensor,
    d_inputs: torch.Tensor,
    d_cell: torch.Tensor,
    d_weight: torch.Tensor,
    d_bias: torch.Tensor,
    width: int,
) -> None:
    """Back-propagation through the columns, in place (the reference for the compiled
    ``pixelrnn::diagonal_scan_backward``). Per column, from the gate gradient: the kernels'
    gradient (one product with the column's :func:`_operand`, summed into ``d_weight``, and
    the bias's into ``d_bias``), and the operand's (one product with the transposed kernels):
    written to the column's input pixels in ``d_inputs`` and added to the previous column's
    ``d_states`` on the two taps' rows.

    Shape:
        as :func:`_forward_columns`; d_states like states (the output's gradient in, on the
        bands), d_inputs like inputs, d_cell ``(2, h, H, B)`` (zero in), d_weight like weight
        and d_bias ``(2, 4h, 1)`` (zero in, possibly float32 for a lower-precision scan).
    """
    c, h, rows = inputs.shape[1], cells.shape[1], cells.shape[3]
    bands = _bands(rows, width)
    w_t = weight.transpose(1, 2)
    for t in range(len(bands) - 1, -1, -1):
        lo, hi = bands[t]
        n = hi - lo
        gate = _column(gates, t + 1, lo, n)
        d_gate = torch.empty_like(gate)  # dL/d(pre-activations)
        lstm_cell_backward_into(
            gate, _column(cells, t, lo, n, row_offset=0),
            _column(tanh_cells, t, lo, n, row_offset=0), _column(d_states, t + 1, lo, n),
            d_cell.narrow(2, lo, n).view(2, h, -1), d_gate, h, dim=1,
        )  # fmt: skip
        operand = _operand(inputs, states, t, lo, n)
        # summed in d_weight's dtype (float32 for a bfloat16 scan: not rounded per column)
        d_weight.add_(torch.bmm(d_gate, operand.transpose(1, 2)))
        d_bias.add_(d_gate.sum(dim=2, keepdim=True))
        d_operand = torch.bmm(w_t, d_gate)  # (2, c + 2h, n * B)
        _column(d_inputs, t + 1, lo, n).copy_(d_operand[:, :c])
        # the state kernel's two taps, transposed, into the previous column
        _column(d_states, t, lo, n, row_offset=0).add_(d_operand[:, c : c + h])
        _column(d_states, t, lo, n).add_(d_operand[:, c + h :])


class DiagonalScan(torch.autograd.Function):
    """Both directions' input-to-state maps and column-by-column LSTM recurrence, with a
    hand-written backward.

    Every buffer is skewed with the batch innermost, ``(direction, channel, column, row,
    batch)`` (see :func:`_pixels`), so the rows of a column that hold pixels (its *band*) are
    one contiguous block per channel:

    - forward: the input and its mirror image skewed once; then per column one batched
      product (both directions at once) of the stacked kernels ``[1x1 mask-B input-to-state |
      state tap "above" | state tap "left"]`` with what they read, and the cell update, written
      into preallocated buffers;
    - backward: back-propagation through time written out (LSTM cell derivatives), and per
      column two batched products: the kernels' gradient and the gradient of what they read.

    Everything a column reads is then still in cache: no whole-image gate or gradient map is
    formed and skewed or unskewed (the training step is bound by memory traffic, see
    docs/benchmarks.md). The compiled CPU loops (float32/float64) compute the same per
    direction, one thread each, with the products split by operand block ``[input | above |
    left]`` and read from (and the gradients written to) the skewed buffers in place. Rows
    outside a band are skew padding: their state is exactly zero and gets no gradient.
    ``tests/nn/test_recurrent.py`` checks values and gradients against a per-pixel reference
    differentiated by autograd, and ``gradcheck``. Under autocast (CPU or CUDA) the scan runs
    in the autocast dtype; the kernels' gradients are summed in float32.

    Shape:
        input ``(C, H, W, B)``, batch last (read by both directions, the second on its mirror
        image), input weight ``(8h, C)`` and bias ``(8h,)``, state weight ``(8h, h, 2)`` → the
        layer's output ``(h, H, W, B)``: left-to-right plus right-to-left shifted down one
        row.
    """

    @staticmethod
    def forward(ctx, x, w_in, bias, w_state):  # type: ignore[override]
        return run_in_compute_dtype(DiagonalScan._forward, ctx, x, w_in, bias, w_state)

    @staticmethod
    def _forward(ctx, x, w_in, bias, w_state):  # type: ignore[no-untyped-def]
        dtype = x.dtype
        c, rows, width, b = x.shape
        h = w_state.shape[1]
        num_columns = width + rows - 1
        # the input of both directions (the image, then its mirror), skewed, batch innermost
        inputs = _new_buffer(x, 2, c, num_columns + 1, rows + 1, b)
        skewed = _pixels(inputs, width)  # (2, c, H, W, B)
        skewed[0].copy_(x)
        skewed[1].copy_(x.flip(2))
        # [input | above | left] kernels of both directions: (2, 4h, c + 2h)
        w = w_state.to(dtype).view(2, 4 * h, h, 2)
        weight = torch.cat([w_in.to(dtype).view(2, 4 * h, c), w[..., 0], w[..., 1]], dim=2)
        bias_d = bias.to(dtype).view(2, 4 * h, 1)
        # gates: activations [sigma(o, f, i) | tanh(g)]; states and cells zero where padding
        gates = _new_buffer(x, 2, 4 * h, num_columns + 1, rows + 1, b)
        states = _new_buffer(x, 2, h, num_columns + 1, rows + 1, b)
        cells = _new_buffer(x, 2, h, num_columns + 1, rows, b)
        _zero_padding(states, cells)
        tanh_cells = _new_buffer(x, 2, h, num_columns, rows, b)
        forward_columns, _ = column_loops()
        forward_columns(inputs, gates, states, cells, tanh_cells, weight, bias_d, width)
        # left-to-right + right-to-left mirrored back and shifted down one row
        hidden = _pixels(states, width)  # (2, h, H, W, B)
        out = hidden[0].contiguous()
        shift = RIGHT_TO_LEFT_ROW_SHIFT
        out[:, shift:] += hidden[1, :, : rows - shift].flip(2)
        ctx.save_for_backward(inputs, weight, gates, states, cells, tanh_cells)
        ctx.dtypes = (x.dtype, w_in.dtype, bias.dtype, w_state.dtype)
        return out  # (h, H, W, B)

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        inputs, weight, gates, states, cells, tanh_cells = ctx.saved_tensors
        x_dtype, w_in_dtype, bias_dtype, w_state_dtype = ctx.dtypes
        _, c, _, rows_1, b = inputs.shape
        h, rows = states.shape[1], rows_1 - 1
        width = gates.shape[2] - rows
        grad = grad_out.to(gates.dtype)  # (h, H, W, B)
        # set on the bands (what the loop reads as dL/dh); the taps add into the padding too,
        # which is never read
        d_states = _new_buffer(states, *states.shape)
        d_hidden = _pixels(d_states, width)
        d_hidden[0].copy_(grad)
        shift = RIGHT_TO_LEFT_ROW_SHIFT
        d_hidden[1, :, : rows - shift].copy_(grad[:, shift:].flip(2))
        d_hidden[1, :, rows - shift :].zero_()
        d_inputs = _new_buffer(inputs, *inputs.shape)  # only the bands are written and read
        d_cell = grad.new_zeros(2, h, rows, b)  # from the next column, same rows
        # the kernels' gradients are sums over every pixel: float32 or wider
        sum_dtype = torch.promote_types(gates.dtype, torch.float32)
        d_weight = weight.new_zeros(weight.shape, dtype=sum_dtype)
        d_bias = weight.new_zeros(2, 4 * h, 1, dtype=sum_dtype)
        _, backward_columns = column_loops()
        backward_columns(
            inputs, gates, states, cells, tanh_cells, weight,
            d_states, d_inputs, d_cell, d_weight, d_bias, width,
        )  # fmt: skip
        d_image = _pixels(d_inputs, width)  # (2, c, H, W, B)
        d_x = d_image[0] + d_image[1].flip(2)  # (c, H, W, B)
        d_w_in, d_w_above, d_w_left = d_weight.split([c, h, h], dim=2)
        d_w_state = torch.stack([d_w_above, d_w_left], dim=-1).view(8 * h, h, 2)
        return (
            d_x.to(x_dtype),
            d_w_in.reshape(8 * h, c).to(w_in_dtype),
            d_bias.view(8 * h).to(bias_dtype),
            d_w_state.to(w_state_dtype),
        )


def _scan_columns(inputs: Any, weight: Any, width: int) -> int:
    """One product of the stacked kernels ``[input | above | left]`` ``(4h × (c + 2h))`` per
    pixel and direction. ``inputs``: ``(2, c, T + 1, H + 1, B)``; ``weight``:
    ``(2, 4h, c + 2h)``."""
    _, _, _, rows_1, batch = inputs
    _, four_h, k = weight
    return 2 * 2 * four_h * k * (rows_1 - 1) * width * batch


@flop_formula("diagonal_scan_forward")
def _diagonal_scan_forward(
    inputs: Any,
    _gates: Any,
    _states: Any,
    _cells: Any,
    _tanh_cells: Any,
    weight: Any,
    _bias: Any,
    width: int,
    *_: Any,
    **__: Any,
) -> int:
    """The stacked kernels at every pixel, both directions (shapes only)."""
    return _scan_columns(inputs, weight, width)


@flop_formula("diagonal_scan_backward")
def _diagonal_scan_backward(
    inputs: Any,
    _gates: Any,
    _states: Any,
    _cells: Any,
    _tanh_cells: Any,
    weight: Any,
    *rest: Any,
    **__: Any,
) -> int:
    """Two products per pixel and direction: the kernels' gradient and the gradient of what
    they read (shapes only; ``width`` is the last argument)."""
    return 2 * _scan_columns(inputs, weight, rest[-1])
