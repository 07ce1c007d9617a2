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
"""

from __future__ import annotations

import abc

import torch

from pixelrnn.models.pixelrnn import DiagonalBiLSTMPixelRNN, PixelRNN, RowLSTMPixelRNN
from pixelrnn.nn import lstm_cell
from pixelrnn.sampling.cached.base import (
    CurrentRowTaps,
    IncrementalStepper,
    RowwiseMaskedConv,
    bias_of,
    flat_weight,
    linear,
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
        self.row = 0

    @abc.abstractmethod
    def start_row(self, i: int) -> None:
        """Row ``i`` begins: everything of row ``i − 1`` is final."""

    @abc.abstractmethod
    def layer_step(self, k: int, features: torch.Tensor, i: int, j: int) -> torch.Tensor:
        """Recurrent layer ``k`` at ``(i, j)``. Shape: input ``(B, 2h)`` → ``(B, h)``."""

    def step(self, x: torch.Tensor, i: int, j: int) -> torch.Tensor:
        if i != self.row:
            self.input_conv.start_row(finished=x[:, :, self.row])
            self.start_row(i)
            self.row = i
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
        for layer, taps, h in zip(self.layers, self.input_taps, self.h_row, strict=True):
            # K^ss ⊛ h_{i−1} plus the K^is bias, for the whole row: (B, W, 4h)
            state_term = layer.state_to_state(h.transpose(1, 2)).transpose(1, 2)
            taps.above = state_term + layer.input_to_state.bias
            taps.row.zero_()
        self.h_row = [torch.empty_like(t) for t in self.h_row]
        self.c_row = [torch.empty_like(t) for t in self.c_row]

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
        zeros = x.new_zeros(b, h, width)
        self.inputs = [x.new_zeros(b, 2 * h, width) for _ in self.layers]
        self.left_prev = [zeros.clone() for _ in self.layers]  # row i-1, left-to-right h
        self.left_row = [zeros.clone() for _ in self.layers]
        self.left_cells = [zeros.clone() for _ in self.layers]  # current row, left-to-right c
        self.right_prev = [zeros.clone() for _ in self.layers]  # row i-1, right-to-left h

    def _cell(
        self,
        weights: tuple[torch.Tensor, ...],
        inp: torch.Tensor,
        above: torch.Tensor,
        side: torch.Tensor,
        c_side: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        w_in, b_in, w_above, w_side = weights
        gates = linear(inp, w_in, b_in) + above @ w_above + side @ w_side  # (B, 4h)
        h, c, *_ = lstm_cell(gates, c_side, self.h)
        return h, c

    def start_row(self, i: int) -> None:
        if i == 0:
            return
        b, h, width = self.inputs[0].shape[0], self.h, self.inputs[0].shape[-1]
        for k in range(len(self.layers)):
            # right-to-left over row i-1: state from above (i-2, j) and the right (i-1, j+1)
            older, row = self.right_prev[k], torch.empty_like(self.right_prev[k])
            side, c_side = self.inputs[k].new_zeros(b, h), self.inputs[k].new_zeros(b, h)
            for j in range(width - 1, -1, -1):
                side, c_side = self._cell(
                    self.directions[k][1], self.inputs[k][:, :, j], older[:, :, j], side, c_side
                )
                row[:, :, j] = side
            self.right_prev[k] = row
            self.left_prev[k], self.left_row[k] = self.left_row[k], torch.empty_like(row)

    def layer_step(self, k: int, features: torch.Tensor, i: int, j: int) -> torch.Tensor:
        # idempotent at a pixel: reads only the row above and the pixel to the left
        self.inputs[k][:, :, j] = features
        if j == 0:  # the skew padding left of the row: zero state and cell
            side = c_side = features.new_zeros(features.shape[0], self.h)
        else:
            side, c_side = self.left_row[k][:, :, j - 1], self.left_cells[k][:, :, j - 1]
        h, c = self._cell(self.directions[k][0], features, self.left_prev[k][:, :, j], side, c_side)
        self.left_row[k][:, :, j], self.left_cells[k][:, :, j] = h, c
        return h + self.right_prev[k][:, :, j] if i > 0 else h
