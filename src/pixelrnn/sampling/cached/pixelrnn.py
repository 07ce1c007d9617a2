"""Incremental Row LSTM and Diagonal BiLSTM PixelRNNs (PixelRNN §3.1–3.3).

Both share the network around the recurrent layers (mask-A input convolution, residual blocks,
skip connections, output layers), evaluated here at one position per step; they differ in what
a recurrent layer needs at a new pixel:

* **Row LSTM**: the previous row's state is fixed once that row is done, so ``K^ss ⊛ h_{r−1}``
  is computed once per row; per pixel only the masked input-to-state window (the layer inputs
  at ``j − r .. j`` of the current row) is new.
* **Diagonal BiLSTM**: unskewed, the left-to-right state at ``(i, j)`` reads the state above,
  ``(i − 1, j)``, and to the left, ``(i, j − 1)`` (cell from the left): one LSTM step per pixel.
  The right-to-left direction enters shifted down one row, so row ``i − 1``'s right-to-left
  scan (state from ``(i − 2, j)`` and ``(i − 1, j + 1)``) runs once, right to left, when row
  ``i`` starts, from the layer inputs cached during row ``i − 1``.

On the CPU in float32 and float64 a pixel's whole step (input layer, every recurrent layer,
expansions, residual and skip connections, output layers) is one compiled call
(``native/csrc/pixelrnn_step.cpp``), as is the Diagonal BiLSTM's right-to-left pass over a row;
the Python code below is their reference, tested equal.
"""

from __future__ import annotations

import abc
from typing import Any

import torch

from pixelrnn.models.pixelrnn import DiagonalBiLSTMPixelRNN, PixelRNN, RowLSTMPixelRNN
from pixelrnn.native import flop_formula
from pixelrnn.nn import lstm_cell
from pixelrnn.sampling.cached.base import (
    CurrentRowTaps,
    IncrementalStepper,
    RowwiseMaskedConv,
    add_shifted_products,
    bias_of,
    flat_weight,
    linear,
    use_compiled_step,
)


class PixelRNNStepper(IncrementalStepper):
    """The shared network around the recurrent layers; subclasses step the layers."""

    def __init__(self, model: PixelRNN, x: torch.Tensor) -> None:
        cfg = model.config
        self.h = cfg.hidden_channels
        self.input_conv = RowwiseMaskedConv(model.input_conv, x, x.shape[-1])
        self.layers = [block.layer for block in model.blocks]
        self.expand = [(flat_weight(blk.expand), bias_of(blk.expand)) for blk in model.blocks]
        self.residual = cfg.residual
        self.skips = [(flat_weight(s), bias_of(s)) for s in model.skips]
        self.hidden = (flat_weight(model.output_hidden), bias_of(model.output_hidden))
        self.out = (flat_weight(model.output), bias_of(model.output))
        # a conditioning map (Multi-Scale PixelRNN): per layer its input-to-state 1×1
        # projection, or None; made one row at a time (context_row: every layer's terms for
        # the whole map, 4h per direction and pixel, grow with the batch times the image)
        self.context_map = context = model.bound_context
        self.context = [
            None if layer.context_to_state is None or context is None else layer.context_to_state
            for layer in self.layers
        ]
        self.image = x  # the loop's image, final up to the previous row at a row's start
        self.row = 0
        # the compiled step (``native/csrc/pixelrnn_step.cpp``) reads the layers' weights as
        # lists of contiguous matrices
        self.fused = use_compiled_step(x)
        if self.fused:
            self.around = [
                [w.detach().contiguous() for w, _ in self.expand],
                [b.detach().contiguous() for _, b in self.expand],
                [w.detach().contiguous() for w, _ in self.skips],
                [b.detach().contiguous() for _, b in self.skips],
                self.residual,
                *(t.detach().contiguous() for t in (*self.hidden, *self.out)),
            ]

    def context_row(self, k: int, i: int, direction: int = 0) -> torch.Tensor | float:
        """Layer ``k``'s conditioning-map term on row ``i``: ``(B, W, 4h)``, or 0."""
        project = self.context[k]
        if project is None:
            return 0.0
        four_h = 4 * self.h
        term = project(self.context_map[:, :, i : i + 1])[:, :, 0]  # (B, 4h · directions, W)
        return term[:, direction * four_h : (direction + 1) * four_h].transpose(1, 2)

    @abc.abstractmethod
    def start_row(self, i: int) -> None:
        """Row ``i`` begins: everything of row ``i − 1`` is final."""

    @abc.abstractmethod
    def layer_step(self, k: int, features: torch.Tensor, i: int, j: int) -> torch.Tensor:
        """Recurrent layer ``k`` at ``(i, j)``. Shape: input ``(B, 2h)`` → ``(B, h)``."""

    @abc.abstractmethod
    def fused_step(self, x: torch.Tensor, i: int, j: int) -> torch.Tensor:
        """:meth:`step` after a row's start as one compiled call. Shape: ``(B, P)``."""

    def input_layer(self) -> list[torch.Tensor]:
        """The compiled step's input-layer arguments: current-row buffer, taps, row term."""
        conv = self.input_conv
        return [conv.row, conv.weight, conv.above]

    def step(self, x: torch.Tensor, i: int, j: int) -> torch.Tensor:
        if i != self.row:
            self.input_conv.start_row(finished=x[:, :, self.row])
            self.image = x
            self.start_row(i)
            self.row = i
        if self.fused:
            return self.fused_step(x, i, j)
        self.input_conv.refresh_previous(x, i, j)
        features = self.input_conv(x[:, :, i, j], j)  # (B, 2h)
        skip_sum = None
        for k in range(len(self.layers)):
            out = linear(self.layer_step(k, features, i, j), *self.expand[k])
            features = out + features if self.residual else out
            if self.skips:
                s = linear(features, *self.skips[k])
                skip_sum = s if skip_sum is None else skip_sum + s
        features = skip_sum if skip_sum is not None else features
        return linear(torch.relu(linear(torch.relu(features), *self.hidden)), *self.out)


class RowLSTMStepper(PixelRNNStepper):
    """Cached evaluation of a :class:`~pixelrnn.models.pixelrnn.RowLSTMPixelRNN`.

    Per layer: the current row's inputs (zero-padded on the left), the previous row's
    ``(h, c)`` and its state-to-state term, and the current row's states so far.
    """

    def __init__(self, model: RowLSTMPixelRNN, x: torch.Tensor) -> None:
        super().__init__(model, x)
        b, width = x.shape[0], x.shape[-1]
        # K^is: centre-row taps j-r .. j of the masked 1 x k kernel
        self.input_taps = []
        for layer in self.layers:
            conv = layer.input_to_state
            r = conv.kernel_size[1] // 2
            self.input_taps.append(
                CurrentRowTaps((conv.weight * conv.mask)[:, :, 0, : r + 1], x, width)
            )
        # the row's states (B, W, h): row 0 reads the learned initial state
        self.h_row = [layer.h0.t().expand(b, width, -1).clone() for layer in self.layers]
        self.c_row = [layer.c0.t().expand(b, width, -1).clone() for layer in self.layers]
        self.c_prev: list[torch.Tensor] = []
        self.start_row(0)

    def start_row(self, i: int) -> None:
        self.c_prev = self.c_row
        for k, (layer, taps, h) in enumerate(
            zip(self.layers, self.input_taps, self.h_row, strict=True)
        ):
            # K^ss ⊛ h_{i−1} plus the K^is bias (and the map's term), for the whole row
            above = self._state_term(h, layer.state_to_state.weight, layer.input_to_state.bias)
            taps.above = above + self.context_row(k, i) if self.context[k] is not None else above
            taps.row.zero_()
        self.h_row = [torch.empty_like(t) for t in self.h_row]
        self.c_row = [torch.empty_like(t) for t in self.c_row]

    @staticmethod
    def _state_term(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """``bias + K^ss ⊛ h`` for a whole row, row-major (a pixel's entries are then
        contiguous rows of its ``(B, 4h)`` slice): the rows zero-padded ``r`` columns on each
        side, end to end, one matrix product per tap (:func:`add_shifted_products`).

        Shape:
            h ``(B, W, h)``, weight ``(4h, h, k)``, bias ``(4h,)`` → ``(B, W, 4h)``.
        """
        batch, width, hidden = h.shape
        k = weight.shape[-1]
        r = k // 2
        padded = h.new_zeros(batch, width + 2 * r, hidden)
        padded[:, r : r + width] = h
        out = bias.expand(batch * (width + 2 * r), -1).contiguous()
        valid = out.shape[0] - 2 * r  # the last image's last outputs need no rows beyond
        taps = weight.permute(2, 1, 0)[None]  # (1, k, h, 4h)
        add_shifted_products(out[None, :valid], padded.view(1, -1, hidden), taps)
        return out.view(batch, width + 2 * r, -1)[:, :width]

    def fused_step(self, x: torch.Tensor, i: int, j: int) -> torch.Tensor:
        taps = self.input_taps
        return torch.ops.pixelrnn.row_lstm_step(
            x,
            i,
            j,
            *self.input_layer(),
            [t.row for t in taps],
            [t.weight.detach() for t in taps],
            [t.above for t in taps],
            self.c_prev,
            self.h_row,
            self.c_row,
            *self.around,
        )

    def layer_step(self, k: int, features: torch.Tensor, i: int, j: int) -> torch.Tensor:
        gates = self.input_taps[k](features, j)  # (B, 4h)
        h, c, *_ = lstm_cell(gates, self.c_prev[k][:, j], self.h)
        self.h_row[k][:, j], self.c_row[k][:, j] = h, c
        return h


class DiagonalBiLSTMStepper(PixelRNNStepper):
    """Cached evaluation of a :class:`~pixelrnn.models.pixelrnn.DiagonalBiLSTMPixelRNN`.

    Per layer: the left-to-right states of the previous and current rows, the cell of the
    pixel to the left, the current row's layer inputs, and the right-to-left states of the
    previous row (added, shifted down, to the current row's outputs).
    """

    def __init__(self, model: DiagonalBiLSTMPixelRNN, x: torch.Tensor) -> None:
        super().__init__(model, x)
        b, width, h = x.shape[0], x.shape[-1], self.h
        self.directions = []  # per layer, per direction: (W_in, b_in, W_above, W_side)
        for layer in self.layers:
            w_in = flat_weight(layer.input_to_state)  # (2h, 8h): [left 4h | right 4h]
            b_in = bias_of(layer.input_to_state)
            w_state = layer.state_to_state.weight  # (8h, h, 2): tap 0 above, tap 1 beside
            self.directions.append(
                [
                    (
                        w_in[:, d * 4 * h : (d + 1) * 4 * h],
                        b_in[d * 4 * h : (d + 1) * 4 * h],
                        w_state[d * 4 * h : (d + 1) * 4 * h, :, 0].t(),
                        w_state[d * 4 * h : (d + 1) * 4 * h, :, 1].t(),
                    )
                    for d in (0, 1)
                ]
            )
        # row-major (B, W, ·) caches, so a pixel's entry is a contiguous (B, ·) slice
        zeros = x.new_zeros(b, width, h)
        self.inputs = [x.new_zeros(b, width, 2 * h) for _ in self.layers]  # current row
        self.left_above = [  # left-to-right: input bias (+ map term) + K^ss · h(i−1, j), per row
            self.directions[k][0][1].expand(b, width, -1) + self.context_row(k, 0)
            for k in range(len(self.layers))
        ]
        self.left_row = [zeros.clone() for _ in self.layers]  # current row, left-to-right h
        self.left_cells = [zeros.clone() for _ in self.layers]  # current row, left-to-right c
        self.right_prev = [zeros.clone() for _ in self.layers]  # row i-1, right-to-left h
        if self.fused:  # left-to-right input and side weights, contiguous
            self.fused_weights = [
                [
                    self.directions[k][0][column].detach().contiguous()
                    for k in range(len(self.layers))
                ]
                for column in (0, 3)
            ]

    def start_row(self, i: int) -> None:
        if i == 0:
            return
        b, width, h = self.inputs[0].shape[0], self.inputs[0].shape[1], self.h
        for k in range(len(self.layers)):
            (_, _, w_above_left, _), (w_in, b_in, w_above, w_side) = self.directions[k]
            # right-to-left over row i−1, right to left: the state comes from above (i−2, j)
            # and from the right (i−1, j+1); input and above terms for the whole row at once
            # one product over every (image, column) of the row; out of place, which
            # FlopCounterMode sees (it misses addmm_)
            pre = torch.addmm(b_in, self.inputs[k].view(b * width, -1), w_in)
            pre = torch.addmm(pre, self.right_prev[k].view(b * width, -1), w_above)
            pre = pre.view(b, width, -1)
            if self.context[k] is not None:
                pre = pre + self.context_row(k, i - 1, direction=1)
            image_to_state = self.layers[k].image_to_state
            if image_to_state is not None:  # full_context: the raw row i − 1, unmasked
                w_img = image_to_state.weight[:, :, 0, 0].t()  # (C, 4h)
                pre = pre + self.image[:, :, i - 1].transpose(1, 2) @ w_img
            row = torch.empty_like(self.right_prev[k])
            if self.fused:
                w_side = w_side.detach().contiguous()
                torch.ops.pixelrnn.lstm_row_right_to_left(pre.contiguous(), w_side, row)
            else:
                side = c_side = pre.new_zeros(b, h)
                for j in range(width - 1, -1, -1):
                    side, c_side, *_ = lstm_cell(torch.addmm(pre[:, j], side, w_side), c_side, h)
                    row[:, j] = side
            self.right_prev[k] = row
            # the left-to-right above term of row i, from row i−1's left-to-right states
            left_bias = self.directions[k][0][1]
            left_above = torch.addmm(left_bias, self.left_row[k].view(b * width, -1), w_above_left)
            self.left_above[k] = left_above.view(b, width, -1)
            if self.context[k] is not None:
                self.left_above[k] = self.left_above[k] + self.context_row(k, i)

    def fused_step(self, x: torch.Tensor, i: int, j: int) -> torch.Tensor:
        w_in, w_side = self.fused_weights
        return torch.ops.pixelrnn.diagonal_lstm_step(
            x,
            i,
            j,
            *self.input_layer(),
            self.inputs,
            w_in,
            self.left_above,
            w_side,
            self.left_row,
            self.left_cells,
            self.right_prev,
            *self.around,
        )

    def layer_step(self, k: int, features: torch.Tensor, i: int, j: int) -> torch.Tensor:
        # idempotent at a pixel: reads only the row above and the pixel to the left
        w_in, _, _, w_side = self.directions[k][0]
        self.inputs[k][:, j] = features
        gates = torch.addmm(self.left_above[k][:, j], features, w_in)  # (B, 4h)
        if j == 0:  # the skew padding left of the row: zero state and cell
            c_side = torch.zeros_like(self.left_cells[k][:, 0])
        else:
            gates = torch.addmm(gates, self.left_row[k][:, j - 1], w_side)
            c_side = self.left_cells[k][:, j - 1]
        h, c, *_ = lstm_cell(gates, c_side, self.h)
        self.left_row[k][:, j], self.left_cells[k][:, j] = h, c
        return h + self.right_prev[k][:, j] if i > 0 else h


def _around_flops(in_w: Any, expand_w: list[Any], skip_w: list[Any], *outputs: Any) -> int:
    """Multiply-adds per image of the layers around the recurrent ones (shapes)."""
    hidden_w, _, out_w, _ = outputs
    total = in_w[0] * in_w[1] + hidden_w[0] * hidden_w[1] + out_w[0] * out_w[1]
    return total + sum(w[0] * w[1] for w in (*expand_w, *skip_w))


@flop_formula("row_lstm_step")
def _row_lstm_step(
    x_shape: Any,
    _i: Any,
    _j: Any,
    _in_row: Any,
    in_w: Any,
    _in_above: Any,
    _rows: Any,
    taps_w: list[Any],
    _above: Any,
    _c_prev: Any,
    _h_row: Any,
    _c_row: Any,
    expand_w: list[Any],
    _expand_b: Any,
    skip_w: list[Any],
    _skip_b: Any,
    _residual: Any,
    *outputs: Any,
    **__: Any,
) -> int:
    """The input layer's taps; per layer the input-to-state taps, the expansion and the skip;
    the output layers (shapes only)."""
    per_image = sum(w[0] * w[1] for w in taps_w) + _around_flops(in_w, expand_w, skip_w, *outputs)
    return 2 * x_shape[0] * per_image


@flop_formula("diagonal_lstm_step", raw=True)
def _diagonal_lstm_step(
    x: torch.Tensor,
    _i: int,
    j: int,
    _in_row: Any,
    in_w: torch.Tensor,
    _in_above: Any,
    _inputs: Any,
    w_in: list[torch.Tensor],
    _left_above: Any,
    w_side: list[torch.Tensor],
    _left_row: Any,
    _left_cells: Any,
    _right_prev: Any,
    expand_w: list[torch.Tensor],
    _expand_b: Any,
    skip_w: list[torch.Tensor],
    _skip_b: Any,
    _residual: Any,
    *outputs: torch.Tensor,
    **__: Any,
) -> int:
    """The input layer's taps; per layer the input-to-state product and, right of the first
    column, the state-to-state product of the left neighbour; the expansion and the skip; the
    output layers."""
    shapes = [[tuple(w.shape) for w in ws] for ws in (expand_w, skip_w)]
    recurrent = sum(w.numel() for w in w_in) + (sum(w.numel() for w in w_side) if j > 0 else 0)
    around = _around_flops(tuple(in_w.shape), *shapes, *(tuple(t.shape) for t in outputs))
    return 2 * x.shape[0] * (recurrent + around)


@flop_formula("lstm_row_right_to_left")
def _lstm_row_right_to_left(pre: Any, w_side: Any, *_: Any, **__: Any) -> int:
    """The state-to-state product at every column of the row (the first, on the zero state,
    counted as the PyTorch loop counts it)."""
    batch, width, _ = pre
    return 2 * batch * width * w_side[0] * w_side[1]
