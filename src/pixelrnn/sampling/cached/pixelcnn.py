"""Incremental PixelCNN (PixelRNN §3.5): one position per step through every layer.

A masked ``k × k`` convolution at ``(i, j)`` reads ``r = k // 2`` finished rows above and the
current row up to ``j``. So, per masked convolution:

* when row ``i`` starts, the rows-above taps are applied to the finished rows for the whole row
  at once (one convolution; its result, plus the bias, is row ``i``'s *above term*);
* per pixel, only the current-row taps ``j − r .. j`` are new: one matrix product of the kernel's
  centre row with a contiguous slice of a row-major cache of the current row.

Caches per residual block: the last ``r`` finished rows of the masked convolution's input and the
current row so far; for the input layer, the image is read from the engine's ``x``.
"""

from __future__ import annotations

from typing import Any

import torch

from pixelrnn.models.pixelcnn import PixelCNN
from pixelrnn.native import flop_formula
from pixelrnn.nn import context_terms
from pixelrnn.sampling.cached.base import (
    IncrementalStepper,
    RowwiseMaskedConv,
    add_shifted_products,
    bias_of,
    flat_weight,
    linear,
    use_compiled_step,
)


class PixelCNNStepper(IncrementalStepper):
    """Cached evaluation of a :class:`~pixelrnn.models.PixelCNN` (shapes: ``B`` images)."""

    def __init__(self, model: PixelCNN, x: torch.Tensor) -> None:
        width = model.image_shape[-1]
        self.input_conv = RowwiseMaskedConv(model.input_conv, x, width)
        self.blocks = [
            (
                flat_weight(b.reduce),
                bias_of(b.reduce),
                RowwiseMaskedConv(b.conv, x, width),
                flat_weight(b.expand),
                bias_of(b.expand),
            )
            for b in model.blocks
        ]
        self.hidden = (flat_weight(model.output_hidden), bias_of(model.output_hidden))
        self.out = (flat_weight(model.output), bias_of(model.output))
        # the compiled step (``native/csrc/*_step.cpp``, float32/float64 on the CPU) reads
        # every block's weights stacked, and the blocks' current-row buffers as views of one
        self.fused = bool(self.blocks) and use_compiled_step(x)
        # a conditioning map (Multi-Scale PixelRNN): per block (B, H, W, h), added row by row;
        # the compiled path projects one row of the map at a time (_context_row: every block's
        # terms for all rows at once were 1.5 GB at 1024 images)
        projections, context = model.context_projections, model.bound_context
        self.context_map = self.context_rows = None
        if self.fused and projections is not None and context is not None:
            self.context_map = context.permute(2, 0, 3, 1)  # (H, B, W, c)
            weights = [conv.weight[:, :, 0, 0] for conv in projections.convs]
            self.context_weight = torch.cat(weights).t().detach()  # (c, L·h)
            terms = [None] * len(self.blocks)
        else:
            terms = context_terms(projections, context, len(self.blocks))
        self.context = [None if t is None else t.permute(0, 2, 3, 1) for t in terms]
        self._add_context(0)
        self.row = 0
        if self.fused:
            stacked = [torch.stack([b[k] for b in self.blocks]).detach() for k in (0, 1, 3, 4)]
            self.reduce_w, self.reduce_b, self.expand_w, self.expand_b = stacked
            convs = [b[2] for b in self.blocks]
            self.conv_w = torch.stack([c.weight for c in convs]).detach()
            self.output_weights = [t.detach().contiguous() for t in (*self.hidden, *self.out)]
            self._ring_of_rows(convs, x)
            self.above = self._context_row(torch.stack([b[2].above for b in self.blocks]), 0)

    def _ring_of_rows(self, convs: list[RowwiseMaskedConv], x: torch.Tensor) -> None:
        """For the compiled path, the blocks' masked-convolution inputs of the last ``r + 1``
        rows, kept where the step writes them (no copies when a row starts): a ring of
        ``r + 1`` slots, row ``i`` in slot ``i mod (r + 1)``, each per block the batch's rows
        of ``W + 2r`` columns flat, ``(L, B·(W + 2r) + 2r, C_in)``, with ``r`` zero columns on
        each side of a row and ``2r`` zero rows at the end that nothing writes. The current
        row's slot is the step's row buffer ``(L, B, (W + r)·C_in)``; the finished ones feed
        the rows-above taps ``(L, r, 2r + 1, C_in, C_out)``."""
        first = convs[0]
        r, width, c_in = first.r, first.width, first.c_in
        self.batch, self.padded = x.shape[0], width + 2 * r
        total = self.batch * self.padded
        self.slots = x.new_zeros(r + 1, len(convs), total + 2 * r, c_in)
        self.rows = self._slot_row(0)
        self.taps_above = torch.stack(
            [c.above_weight.permute(2, 3, 1, 0) for c in convs]  # (r, k, C_in, C_out) each
        ).detach()
        self.bias_above = torch.stack([c.bias for c in convs]).detach()[:, None]  # (L, 1, C_out)
        self.above_rows = x.new_empty(len(convs), total, self.bias_above.shape[-1])

    def _slot_row(self, i: int) -> torch.Tensor:
        """Row ``i``'s slot as the step's current-row buffer ``(L, B, (W + r)·C_in)``: the
        left padding and the row, in the slot's rows of ``(W + 2r)·C_in``."""
        slots, blocks, _, c_in = self.slots.shape
        r, total = slots - 1, self.batch * self.padded
        flat = self.slots[i % slots][:, :total].view(blocks, self.batch, self.padded * c_in)
        return flat[:, :, : (self.padded - r) * c_in]

    def _fused_start_row(self, i: int) -> None:
        """Row ``i`` starts (compiled path): its slot becomes the row buffer, and the rows-above
        term of all blocks is ``r (2r + 1)`` batched matrix products, one per tap, over the
        finished rows' slots read as ``(L, B·(W + 2r), C_in)`` matrices shifted by the tap's
        column (the padding keeps the images apart; the outputs at padding columns are not
        used). The operations of the blocks' :meth:`RowwiseMaskedConv.start_row`, stacked."""
        slots, blocks, _, _ = self.slots.shape
        r, batch, padded = slots - 1, self.batch, self.padded
        self.rows = self._slot_row(i)
        if r:
            out = self.above_rows  # flat output m: the window starting at flat input m
            out.copy_(self.bias_above.expand_as(out))
            for tap_row in range(r):  # row i - r + tap_row
                finished = self.slots[(i - r + tap_row) % slots]
                add_shifted_products(out, finished, self.taps_above[:, tap_row])
            self.above = out.view(blocks, batch, padded, -1)[:, :, : padded - 2 * r]
        else:
            self.above = self.bias_above[:, None].expand(blocks, batch, padded, -1)
        self.above = self._context_row(self.above, i)

    def _context_row(self, above: torch.Tensor, i: int) -> torch.Tensor:
        """``above`` ``(L, B, W, h)`` plus row ``i`` of every block's projection of the
        conditioning map (compiled path; one product for all blocks), or ``above`` itself
        without a map."""
        if self.context_map is None:
            return above
        row = self.context_map[i]  # (B, W, c)
        blocks, batch, width, channels = above.shape
        if self.context_rows is None:  # written at every row: allocated once
            self.context_terms = above.new_empty(batch * width, blocks * channels)
            self.context_rows = above.new_empty(above.shape)
        terms = torch.mm(
            row.reshape(batch * width, -1), self.context_weight, out=self.context_terms
        )
        # into a row-major (L, B, W, h) tensor: the step reads a block's (B, h) column of it
        terms = terms.view(batch, width, blocks, channels).permute(2, 0, 1, 3)
        return torch.add(above, terms, out=self.context_rows)

    def _add_context(self, i: int) -> None:
        """Add row ``i`` of the conditioning map to every block's per-row term."""
        for block, term in zip(self.blocks, self.context, strict=True):
            if term is not None:
                block[2].above = block[2].above + term[:, i]

    def step(self, x: torch.Tensor, i: int, j: int) -> torch.Tensor:
        if i != self.row:
            self.input_conv.start_row(finished=x[:, :, self.row])
            if self.fused:
                self._fused_start_row(i)
            else:
                for block in self.blocks:
                    block[2].start_row()
                self._add_context(i)
            self.row = i
        if self.fused:
            return self._fused_step(x, i, j)
        self.input_conv.refresh_previous(x, i, j)
        h = self.input_conv(x[:, :, i, j], j)  # (B, 2h)
        for w_red, b_red, conv, w_exp, b_exp in self.blocks:
            t = conv(torch.relu(linear(torch.relu(h), w_red, b_red)), j)
            h = linear(torch.relu(t), w_exp, b_exp) + h
        return linear(torch.relu(linear(torch.relu(h), *self.hidden)), *self.out)

    def _fused_step(self, x: torch.Tensor, i: int, j: int) -> torch.Tensor:
        """The input layer, every block and the output layers in one compiled call (the
        operations of :meth:`step`; tested equal in ``tests/sampling/test_cached.py``)."""
        conv = self.input_conv
        return torch.ops.pixelrnn.pixelcnn_step(
            x,
            i,
            j,
            conv.row,
            conv.weight,
            conv.above,
            self.reduce_w,
            self.reduce_b,
            self.rows,
            self.conv_w,
            self.above,
            self.expand_w,
            self.expand_b,
            *self.output_weights,
        )


@flop_formula("pixelcnn_step")
def _pixelcnn_step(
    x_shape: Any,
    _i: Any,
    _j: Any,
    _in_row: Any,
    in_w: Any,
    _in_above: Any,
    reduce_w: Any,
    _reduce_b: Any,
    _rows: Any,
    conv_w: Any,
    _above: Any,
    expand_w: Any,
    _expand_b: Any,
    hidden_w: Any,
    _hidden_b: Any,
    out_w: Any,
    *_: Any,
    **__: Any,
) -> int:
    """Input layer's current-row taps; per block the 1×1 reduction, the current-row taps and
    the 1×1 expansion; the two output layers (shapes only)."""
    blocks, features, reduced = reduce_w
    _, taps, convolved = conv_w
    per_image = (
        in_w[0] * in_w[1]
        + blocks * (features * reduced + taps * convolved + expand_w[1] * expand_w[2])
        + hidden_w[0] * hidden_w[1]
        + out_w[0] * out_w[1]
    )
    return 2 * x_shape[0] * per_image
