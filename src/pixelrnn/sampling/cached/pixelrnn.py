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
        # a conditioning map (Multi-Scale PixelRNN): per layer its input-to-state term,
        # (B, H, W, 4h) per direction, or None
        context = model.bound_context
        self.context = [
            None
            if layer.context_to_state is None or context is None
            else layer.context_to_state(context).permute(0, 2, 3, 1)
            for layer in self.layers
        ]
        self.image = x  # the loop's image, final up to the previous row at a row's start
        self.row = 0

    def context_row(self, k: int, i: int, direction: int = 0) -> torch.Tensor | float:
        """Layer ``k``'s conditioning-map term on row ``i``: ``(B, W, 4h)``, or 0."""
        term = self.context[k]
        if term is None:
            return 0.0
        four_h = 4 * self.h
        return term[:, i, :, direction * four_h : (direction + 1) * four_h]

    @abc.abstractmethod
    def start_row(self, i: int) -> None:
        """Row ``i`` begins: everything of row ``i − 1`` is final."""

    @abc.abstractmethod
    def layer_step(self, k: int, features: torch.Tensor, i: int, j: int) -> torch.Tensor:
        """Recurrent layer ``k`` at ``(i, j)``. Shape: input ``(B, 2h)`` → ``(B, h)``."""

    def step(self, x: torch.Tensor, i: int, j: int) -> torch.Tensor:
        if i != self.row:
            self.input_conv.start_row(finished=x[:, :, self.row])
            self.image = x
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
        for k, (layer, taps, h) in enumerate(
            zip(self.layers, self.input_taps, self.h_row, strict=True)
        ):
            # K^ss ⊛ h_{i−1} plus the K^is bias (and the map's term), for the whole row
            state_term = layer.state_to_state(h.transpose(1, 2)).transpose(1, 2)  # (B, W, 4h)
            taps.above = state_term + layer.input_to_state.bias + self.context_row(k, i)
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

    def start_row(self, i: int) -> None:
        if i == 0:
            return
        b, width, h = self.inputs[0].shape[0], self.inputs[0].shape[1], self.h
        for k in range(len(self.layers)):
            (_, _, w_above_left, _), (w_in, b_in, w_above, w_side) = self.directions[k]
            # right-to-left over row i−1, right to left: the state comes from above (i−2, j)
            # and from the right (i−1, j+1); input and above terms for the whole row at once
            pre = torch.baddbmm(b_in, self.inputs[k], w_in.expand(b, -1, -1))  # (B, W, 4h)
            pre = pre.baddbmm_(self.right_prev[k], w_above.expand(b, -1, -1))
            pre = pre + self.context_row(k, i - 1, direction=1)
            image_to_state = self.layers[k].image_to_state
            if image_to_state is not None:  # full_context: the raw row i − 1, unmasked
                w_img = image_to_state.weight[:, :, 0, 0].t()  # (C, 4h)
                pre = pre + self.image[:, :, i - 1].transpose(1, 2) @ w_img
            row = torch.empty_like(self.right_prev[k])
            side = c_side = pre.new_zeros(b, h)
            for j in range(width - 1, -1, -1):
                side, c_side, *_ = lstm_cell(torch.addmm(pre[:, j], side, w_side), c_side, h)
                row[:, j] = side
            self.right_prev[k] = row
            # the left-to-right above term of row i, from row i−1's left-to-right states
            left_bias = self.directions[k][0][1]
            self.left_above[k] = torch.baddbmm(
                left_bias, self.left_row[k], w_above_left.expand(b, -1, -1)
            ) + self.context_row(k, i)

    def layer_step(self, k: int, features: torch.Tensor, i: int, j: int) -> torch.Tensor:
        # idempotent at a pixel: reads only the row above and the pixel to the left
        w_in, _, _, w_side = self.directions[k][0]
        self.inputs[k][:, j] = features
        gates = torch.addmm(self.left_above[k][:, j], features, w_in)  # (B, 4h)
        if j == 0:  # the skew padding left of the row: zero state and cell
            c_side = torch.zeros_like(self.left_cells[k][:, 0])
        else:
            gates = gates.addmm_(self.left_row[k][:, j - 1], w_side)
            c_side = self.left_cells[k][:, j - 1]
        h, c, *_ = lstm_cell(gates, c_side, self.h)
        self.left_row[k][:, j], self.left_cells[k][:, j] = h, c
        return h + self.right_prev[k][:, j] if i > 0 else h
