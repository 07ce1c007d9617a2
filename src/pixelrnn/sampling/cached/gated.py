"""Incremental Gated PixelCNN (Gated PixelCNN §2.2): the vertical stack advances once per row,
the horizontal stack once per pixel.

The vertical stack at row ``i`` reads row ``i`` whole, and the horizontal stack only sees it
one row down (the link), so the vertical stack of row ``i`` is computed — with the layers' own
convolutions, for the whole row at once — when row ``i + 1`` starts. Everything a horizontal
pre-activation gets besides its own taps (bias, link, conditioning) is then one ``(B, W, 2p)``
term per row, and a pixel costs one matrix product per layer on a contiguous slice of the
current row (:class:`~pixelrnn.sampling.cached.base.CurrentRowTaps`). Caches: per layer, the
gated vertical output of the last ``r + 1`` finished rows (zero-padded: the next layer's
vertical input) and the current row's horizontal inputs.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from pixelrnn.models.gated_pixelcnn import GatedPixelCNN
from pixelrnn.native import flop_formula
from pixelrnn.nn import gated_activation
from pixelrnn.sampling.cached.base import (
    CurrentRowTaps,
    IncrementalStepper,
    bias_of,
    flat_weight,
    image_rows,
    linear,
    padded_buffer,
    use_compiled_step,
)


class GatedPixelCNNStepper(IncrementalStepper):
    """Cached evaluation of a :class:`~pixelrnn.models.GatedPixelCNN` (``B`` images)."""

    def __init__(
        self, model: GatedPixelCNN, x: torch.Tensor, y: torch.Tensor | None = None
    ) -> None:
        width = model.image_shape[-1]
        cfg = model.config
        self.p, self.r, self.r_in = (
            cfg.hidden_channels,
            cfg.kernel_size // 2,
            cfg.input_kernel_size // 2,
        )
        self.layers = list(model.layers)
        # the gate biases are made one row at a time (every layer's whole map, L · 4p channels
        # per image, was 3 GB for gated-pixelcnn-mnist with a map at 1,024 images)
        self.model = model
        self.conditioning = model.conditioning(y, model.bound_context)
        self.biases: dict[int, list[torch.Tensor | None]] = {}  # the last rows' (row: biases)
        r = self.r
        # per layer, its gated vertical output of the last r + 1 finished rows (what the next
        # layer's vertical convolution reads), zero-padded r columns on each side
        self.vertical = [padded_buffer(x, self.p, 0, width, r + 1, r, r) for _ in self.layers]
        self.horizontal = [
            CurrentRowTaps((layer.horizontal.weight * layer.horizontal.mask)[:, :, 0], x, width)
            for layer in self.layers
        ]
        # the residual 1x1 of every layer but the first
        self.outputs = [
            None if layer.output is None else (flat_weight(layer.output), bias_of(layer.output))
            for layer in self.layers
        ]
        self.hidden = (flat_weight(model.output_hidden), bias_of(model.output_hidden))
        self.out = (flat_weight(model.output), bias_of(model.output))
        self.row = -1
        # the compiled step (``native/csrc/*_step.cpp``, float32/float64 on the CPU) reads the
        # layers after the first stacked, their current-row buffers as views of one
        self.fused = len(self.layers) > 1 and use_compiled_step(x)
        if self.fused:
            rest = self.horizontal[1:]
            self.conv_w = torch.stack([taps.weight for taps in rest]).detach()
            self.rows = torch.stack([taps.row for taps in rest])
            for taps, row in zip(rest, self.rows, strict=True):
                taps.row = row  # the Python path keeps working on the same memory
            self.residual_w = torch.stack([w for w, _ in self.outputs[1:]]).detach()
            self.residual_b = torch.stack([b for _, b in self.outputs[1:]]).detach()
            self.output_weights = [t.detach().contiguous() for t in (*self.hidden, *self.out)]
            self.above = x.new_empty(len(rest), x.shape[0], width, 2 * self.p)  # (L - 1, B, W, 2p)

    def _condition(self, k: int, half: int, i: int) -> torch.Tensor | float:
        """Layer ``k``'s conditioning bias on row ``i`` for the vertical (``half=0``) or
        horizontal (1) gates: ``(B, 2p, 1)`` or ``(B, 2p, W)``; 0 when unconditional."""
        if i not in self.biases:  # rows are asked for in order: keep this row and the last
            self.biases = {row: biases for row, biases in self.biases.items() if row == i - 1}
            self.biases[i] = self.model.gate_biases(self.conditioning, slice(i, i + 1))
        cond = self.biases[i][k]
        if cond is None:
            return 0.0
        return cond[:, half * 2 * self.p : (half + 1) * 2 * self.p, 0]

    def _start_row(self, x: torch.Tensor, i: int) -> None:
        """Finish the vertical stack of row ``i − 1``; set row ``i``'s horizontal terms."""
        r, width = self.r, x.shape[-1]
        for k, layer in enumerate(self.layers):
            if i == 0:  # the link reads the zero row that the down-shift brings in
                v_pre = x.new_zeros(x.shape[0], 2 * self.p, 1, width)
            else:
                if k == 0:
                    window = image_rows(x, i - 1, self.r_in, self.r_in)
                else:
                    window = self.vertical[k - 1]  # rows i-1-r .. i-1
                v_pre = F.conv2d(window, layer.vertical.weight, layer.vertical.bias)
                gated = gated_activation(v_pre[:, :, 0] + self._condition(k, 0, i - 1))
                # row i - 1 joins the last r + 1 rows: one contiguous buffer per row (the
                # next layer's convolution reads it without a copy; all H rows of every layer
                # were 1.4 GB at 1024 images, and slower)
                newest = F.pad(gated[:, :, None], (r, r))
                self.vertical[k] = torch.cat([self.vertical[k][:, :, 1:], newest], dim=2)
            term = layer.link(v_pre)[:, :, 0] + self._condition(k, 1, i)  # (B, 2p, W)
            term = term + layer.horizontal.bias[:, None]
            if self.fused and k > 0:  # straight into the stacked terms the compiled step reads
                self.above[k - 1].copy_(term.transpose(1, 2))
            else:
                self.horizontal[k].above = term.transpose(1, 2)
            # (a current-row buffer needs no clearing: a step writes column j before its taps
            # read it, and the padding on the left is never written)
        self.horizontal[0].write_row(x[:, :, i])  # the image row so far (zeros ahead of j)
        self.row = i

    def step(self, x: torch.Tensor, i: int, j: int) -> torch.Tensor:
        if i != self.row:
            self._start_row(x, i)
        if self.fused:
            return self._fused_step(x, i, j)
        self.horizontal[0].refresh_previous(x, i, j)
        h = x[:, :, i, j]
        for k, taps in enumerate(self.horizontal):
            gated = gated_activation(taps(h, j))  # (B, p)
            residual = self.outputs[k]
            h = gated if residual is None else linear(gated, *residual) + h
        return linear(torch.relu(linear(torch.relu(h), *self.hidden)), *self.out)

    def _fused_step(self, x: torch.Tensor, i: int, j: int) -> torch.Tensor:
        """Every layer's horizontal stack and the output layers in one compiled call (the
        operations of :meth:`step`; tested equal in ``tests/sampling/test_cached.py``)."""
        first = self.horizontal[0]
        return torch.ops.pixelrnn.gated_pixelcnn_step(
            x,
            i,
            j,
            first.row,
            first.weight,
            first.above,
            self.rows,
            self.conv_w,
            self.above,
            self.residual_w,
            self.residual_b,
            *self.output_weights,
        )


@flop_formula("gated_pixelcnn_step")
def _gated_pixelcnn_step(
    x_shape: Any,
    _i: Any,
    _j: Any,
    _first_row: Any,
    first_w: Any,
    _first_above: Any,
    _rows: Any,
    conv_w: Any,
    _above: Any,
    residual_w: Any,
    _residual_b: Any,
    hidden_w: Any,
    _hidden_b: Any,
    out_w: Any,
    *_: Any,
    **__: Any,
) -> int:
    """First layer's horizontal taps; per later layer its taps and the 1×1 residual; the two
    output layers (shapes only)."""
    layers, taps, doubled = conv_w
    per_image = (
        first_w[0] * first_w[1]
        + layers * (taps * doubled + residual_w[1] * residual_w[2])
        + hidden_w[0] * hidden_w[1]
        + out_w[0] * out_w[1]
    )
    return 2 * x_shape[0] * per_image
