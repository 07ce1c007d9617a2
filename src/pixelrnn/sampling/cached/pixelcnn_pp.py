"""Incremental PixelCNN++ (Ramachandran et al. 2017, "Fast
Generation for Convolutional Autoregressive Models"): the down stream once per
row, the down-right stream once per pixel, each resolution only when it has a new position.

At generation step ``(i, j)`` (full resolution):

* the ``u`` (down) stream at any resolution only sees rows above, so its row ``a`` of resolution
  ``ℓ`` (``a = i / 2^ℓ``) is computed for the whole row, with the layers' own convolutions, when
  row ``i`` starts — for every ``ℓ`` with ``2^ℓ`` dividing ``i``;
* the ``ul`` (down-right) stream gets a new position at resolution ``ℓ`` only when ``2^ℓ``
  divides both ``i`` and ``j`` (position ``(i, j) / 2^ℓ``): a stride-2 convolution's output
  ``(a, b)`` reads rows ``2a − 1 .. 2a`` and columns ``2b − 1 .. 2b`` below it, all final by
  then, and a transposed convolution's output ``(a, b)`` reads only ``(a // 2, b // 2)`` above
  it (the ``cache_every`` / ``run_every`` of fast-pixel-cnn). Every layer at such a position is
  one matrix product of its 2×2 window.

Caches: every layer's output map and its first convolution's (``concat_elu``-ed) map, at the
layer's resolution, zero-padded one row on top and one column on each side. The network's
output at ``(i, j)`` does not depend on pixel ``(i, j)``, so repeated calls at one pixel (a
sub-pixel distribution) return the same parameters.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from pixelrnn.models.pixelcnn_pp import PixelCNNPP
from pixelrnn.native import flop_formula
from pixelrnn.nn import GatedResNet
from pixelrnn.sampling.cached.base import (
    IncrementalStepper,
    image_rows,
    linear,
    use_compiled_step,
)
from pixelrnn.sampling.cached.pixelcnn_pp_ops import (
    Downsample,
    Map,
    Op,
    Residual,
    Upsample,
    kernel_matrix,
    layer_kernel,
)


class PixelCNNPPStepper(IncrementalStepper):
    """Cached evaluation of a :class:`~pixelrnn.models.PixelCNNPP` (``B`` images)."""

    def __init__(self, model: PixelCNNPP, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        cfg = model.config
        _, height, width = model.image_shape
        f, levels = cfg.nr_filters, cfg.num_resolutions
        self.levels = levels
        sizes = [(height, width)]
        for _ in range(levels - 1):
            h, w = sizes[-1]
            sizes.append(((h + 1) // 2, (w + 1) // 2))
        one_hot = model.one_hot(y)

        def new(level: int, channels: int = f) -> Map:
            return Map(x, channels, sizes[level][1])  # (height, width): a ring of rows

        def residual(layer: GatedResNet, level: int, inp: Map, aux: list[Map]) -> Residual:
            bias = 0.0 if one_hot is None or layer.class_bias is None else layer.class_bias(one_hot)
            return Residual(layer, inp, aux, new(level, 2 * f), new(level), bias)

        # the same construction as PixelCNNPP.network, on maps: per resolution, the ops of the
        # up pass and of the down pass, for each stream, in execution order
        self.init_u, self.init_ul = new(0), new(0)
        self.up: list[tuple[list[Op], list[Op]]] = []
        self.down: list[tuple[list[Op], list[Op]]] = [([], []) for _ in range(levels)]
        u, ul = self.init_u, self.init_ul
        for level in range(levels):
            ops_u: list[Op] = []
            ops_ul: list[Op] = []
            if level > 0:
                ops_u.append(Downsample(model.downsample_u[level - 1], u, new(level)))
                ops_ul.append(Downsample(model.downsample_ul[level - 1], ul, new(level)))
                u, ul = ops_u[-1].out, ops_ul[-1].out
            for layer_u, layer_ul in zip(model.up_u[level], model.up_ul[level], strict=True):
                ops_u.append(residual(layer_u, level, u, []))
                u = ops_u[-1].out
                ops_ul.append(residual(layer_ul, level, ul, [u]))
                ul = ops_ul[-1].out
            self.up.append((ops_u, ops_ul))
        # the network's skip list: every up-pass output in order (a downsampling output sits
        # between its two resolutions' layers), popped from the end by the down pass
        u_list = [self.init_u] + [m for ops, _ in self.up for m in _outputs(ops)]
        ul_list = [self.init_ul] + [m for _, ops in self.up for m in _outputs(ops)]
        u, ul = u_list.pop(), ul_list.pop()
        for step in range(levels):
            level = levels - 1 - step
            ops_u, ops_ul = self.down[level]
            if step > 0:
                ops_u.append(Upsample(model.upsample_u[step - 1], u, new(level)))
                ops_ul.append(Upsample(model.upsample_ul[step - 1], ul, new(level)))
                u, ul = ops_u[-1].out, ops_ul[-1].out
            for layer_u, layer_ul in zip(model.down_u[step], model.down_ul[step], strict=True):
                ops_u.append(residual(layer_u, level, u, [u_list.pop()]))
                u = ops_u[-1].out
                ops_ul.append(residual(layer_ul, level, ul, [u, ul_list.pop()]))
                ul = ops_ul[-1].out
        assert not u_list and not ul_list
        self.final = ul
        self.head = kernel_matrix(layer_kernel(model.head))
        self.ul_left = kernel_matrix(layer_kernel(model.ul_init_left.conv))
        self.u_init, self.ul_init_above = (
            layer_kernel(model.u_init.conv),
            layer_kernel(model.ul_init_above.conv),
        )
        self.ul_above = x.new_zeros(x.shape[0], f, width)  # row i's down-shifted 1×3 term
        self.row = -1
        # the down-right stream's step and the down stream's row compiled
        # (``native/csrc/*_step.cpp``, float32/float64 on the CPU): their ops as programs over
        # lists of maps and weights
        self.ops_down, self.ops_down_right = self._stream_ops(0), self._stream_ops(1)
        self.fused = use_compiled_step(x)
        if self.fused:
            self.program = CompiledProgram(self)
        self.last: tuple[int, int, torch.Tensor] | None = None

    def _start_row(self, x: torch.Tensor, i: int) -> None:
        """Row ``i`` starts: the down stream's new rows at every resolution that has one."""
        if i == 0:  # the down-shift brings in zeros
            self.init_u.set_row(0, 0.0)
            self.ul_above.zero_()
        else:
            x1 = torch.cat([x, torch.ones_like(x[:, :1])], dim=1)
            window = image_rows(x1, i - 1, 1, 1)  # rows i−2 .. i−1: (B, C+1, 2, W+2)
            self.init_u.set_row(i, F.conv2d(window, *self.u_init)[:, :, 0])
            self.ul_above = F.conv2d(window[:, :, 1:], *self.ul_init_above)[:, :, 0]
        top = self._top_level(i)
        self.row = i
        if self.fused:  # the same ops, compiled: every column of a row as the step's products
            p = self.program
            torch.ops.pixelrnn.pixelcnnpp_row(x, p.maps, p.elu_of, p.weights, p.row_table, i, top)
            return
        for level, op in self.ops_down:
            if level <= top:
                op.row(i >> level)

    def _top_level(self, *coordinates: int) -> int:
        """The coarsest resolution with a new position: ``2^ℓ`` divides every coordinate."""
        top = 0
        while top + 1 < self.levels and all(v % (2 ** (top + 1)) == 0 for v in coordinates):
            top += 1
        return top

    def step(self, x: torch.Tensor, i: int, j: int) -> torch.Tensor:
        if self.last is not None and self.last[:2] == (i, j):
            return self.last[2]  # nothing at (i, j) depends on pixel (i, j)
        if i != self.row:
            self._start_row(x, i)
        if self.fused:
            params = self._fused_step(x, i, j)
            self.last = (i, j, params)
            return params
        # the first down-right map: the row above (per row) + the pixel to the left
        value = self.ul_above[:, :, j]
        if j > 0:
            left = x[:, :, max(i - 1, 0) : i + 1, j - 1]  # (B, C, 1 or 2)
            left = torch.cat([left, torch.ones_like(left[:, :1])], dim=1)
            if i == 0:
                left = F.pad(left, (1, 0))  # zero padding above the image
            value = value + linear(left.flatten(1), *self.ul_left)
        self.init_ul.set_at(i, j, value)
        top = self._top_level(i, j)
        for level, op in self.ops_down_right:
            if level <= top:
                op.at(i >> level, j >> level)
        params = linear(F.elu(self.final.at(i, j)), *self.head)
        self.last = (i, j, params)
        return params

    def _stream_ops(self, stream: int) -> list[tuple[int, Op]]:
        """The ops of the down (``stream=0``) or down-right (1) stream with their resolutions,
        in execution order (a row or a step runs those at resolutions up to its
        :meth:`_top_level`, in this order): the up pass fine to coarse, then the down pass
        coarse to fine."""
        up = [(level, op) for level in range(self.levels) for op in self.up[level][stream]]
        down = [
            (level, op) for level in reversed(range(self.levels)) for op in self.down[level][stream]
        ]
        return up + down

    def _fused_step(self, x: torch.Tensor, i: int, j: int) -> torch.Tensor:
        """:meth:`step`'s down-right part in one compiled call."""
        p = self.program
        return torch.ops.pixelrnn.pixelcnnpp_step(
            x,
            self.ul_above,
            p.maps,
            p.elu_of,
            p.weights,
            p.table,
            *self.ul_left,
            *self.head,
            p.init_ul,
            p.final,
            i,
            j,
            self._top_level(i, j),
        )


class CompiledProgram:
    """The down-right stream (``table``, run per pixel by ``pixelcnnpp_step``) and the down
    stream (``row_table``, run per row by ``pixelcnnpp_row``) as the compiled ops read them:
    the maps and weights as lists, and one int64 row per op, in execution order: kind (0 gated
    ResNet, 1 downsample, 2 upsample), resolution, then indices into the lists (−1: none) — the
    order of ``enum Column`` in ``native/csrc/*_step.cpp``: input, output, first-convolution
    map, two auxiliary maps, weight and bias (an upsample's ``(kh, kw, C_in, C_out)`` taps),
    auxiliary weight and bias, second weight and bias, class bias, kernel width, and a
    transposed convolution's first kept column.

    The maps are channels last, so a window's row is one contiguous run of its positions'
    channels; the kernels are stored in that order (:func:`window_matrix`). A gated ResNet's
    input and auxiliary maps keep their ``concat_elu`` (:meth:`Map.keep_elu`); ``elu_of`` gives
    each map's (an index into the list, −1: none)."""

    # the columns (``enum Column``) and kinds (``enum Kind``)
    (KIND, LEVEL, IN, OUT, C1, AUX0, AUX1, W, B, AUX_W, AUX_B, W_OUT, B_OUT, CLASS_BIAS, TAPS,
     FIRST) = range(16)  # fmt: skip
    COLUMNS = 16
    RESIDUAL, DOWNSAMPLE, UPSAMPLE = 0, 1, 2

    def __init__(self, stepper: PixelCNNPPStepper) -> None:
        self.maps: list[torch.Tensor] = []
        self.weights: list[torch.Tensor] = []
        self._map_index: dict[int, int] = {}
        self._map_objects: list[Map] = []
        self.table = self._program(stepper.ops_down_right)
        self.row_table = self._program(stepper.ops_down)
        self.init_ul, self.final = self._map(stepper.init_ul), self._map(stepper.final)
        # per map, the index of its concat_elu map (Map.keep_elu) in the list, or −1
        for m in list(self._map_objects):
            if m.elu is not None:
                self._map(m.elu)
        elu_of = [-1 if m.elu is None else self._map(m.elu) for m in self._map_objects]
        self.elu_of = torch.tensor(elu_of, dtype=torch.int64)

    def _program(self, ops: list[tuple[int, Op]]) -> torch.Tensor:
        """One row per op (``enum Column``), in execution order."""
        rows = []
        for level, op in ops:
            row = [-1] * self.COLUMNS
            row[self.LEVEL], row[self.IN] = level, self._map(op.inp)
            row[self.OUT] = self._map(op.out)
            if isinstance(op, Residual):
                for m in (op.inp, *op.aux):
                    m.keep_elu()  # its windows are read through concat_elu
                if len(op.aux) > 2:
                    raise ValueError("the compiled step takes at most two auxiliary maps")
                row[self.KIND], row[self.TAPS] = self.RESIDUAL, op.k
                row[self.C1] = self._map(op.c1)
                for column, m in zip((self.AUX0, self.AUX1), op.aux, strict=False):
                    row[column] = self._map(m)
                w_in = window_matrix(op.kernel_in[0])  # read from the concat_elu map
                w_out = window_matrix(op.kernel_out[0])
                weights = [(self.W, w_in), (self.B, op.b_in), (self.W_OUT, w_out)]
                weights += [(self.B_OUT, op.b_out)]
                if op.aux_w is not None:
                    aux_w = aux_matrix(op.aux_w[0], [m.t.shape[1] for m in op.aux])
                    weights += [(self.AUX_W, aux_w), (self.AUX_B, op.aux_w[1])]
                if isinstance(op.class_bias, torch.Tensor):
                    weights += [(self.CLASS_BIAS, op.class_bias)]
            elif isinstance(op, Downsample):
                w = window_matrix(op.kernel[0])
                row[self.KIND], weights = self.DOWNSAMPLE, [(self.W, w), (self.B, op.b)]
                row[self.TAPS] = op.kernel[0].shape[-1]
            else:
                row[self.KIND], weights = self.UPSAMPLE, [(self.W, op.taps), (self.B, op.bias)]
                row[self.TAPS], row[self.FIRST] = op.taps.shape[1], op.conv.first_column
            for column, t in weights:
                row[column] = self._weight(t)
            rows.append(row)
        return torch.tensor(rows, dtype=torch.int64).reshape(-1, self.COLUMNS)

    def _map(self, m: Map) -> int:
        if id(m) not in self._map_index:
            self._map_index[id(m)] = len(self.maps)
            self.maps.append(m.t)
            self._map_objects.append(m)
        return self._map_index[id(m)]

    def _weight(self, t: torch.Tensor) -> int:
        self.weights.append(t.detach().contiguous())
        return len(self.weights) - 1


def window_matrix(kernel: torch.Tensor) -> torch.Tensor:
    """A kernel ``(C_out, C, kh, kw)`` as the matrix ``(kh·kw·C, C_out)`` of a window gathered
    channels last: rows ordered (row, column, channel)."""
    return kernel.permute(2, 3, 1, 0).reshape(-1, kernel.shape[0])


def aux_matrix(weight: torch.Tensor, channels: list[int]) -> torch.Tensor:
    """A gated ResNet's auxiliary 1×1 matrix ``(2·ΣC_i, F)``, whose rows follow
    ``concat_elu`` of the concatenated maps (every map's ``elu(x)`` rows, then every map's
    ``elu(−x)`` rows), reordered map by map (map ``i``'s ``elu(x)`` and ``elu(−x)`` rows: the
    layout of its concat_elu map)."""
    total, start, parts = sum(channels), 0, []
    for c in channels:
        parts += [weight[start : start + c], weight[total + start : total + start + c]]
        start += c
    return torch.cat(parts)


def _outputs(ops: list[Op]) -> list[Map]:
    return [op.out for op in ops]


@flop_formula("pixelcnnpp_step", raw=True)
def _pixelcnnpp_step(
    x: torch.Tensor,
    _ul_above: torch.Tensor,
    maps: list[torch.Tensor],
    _elu_of: torch.Tensor,
    weights: list[torch.Tensor],
    program: torch.Tensor,
    left_w: torch.Tensor,
    _left_b: torch.Tensor,
    head_w: torch.Tensor,
    _head_b: torch.Tensor,
    _init_ul: int,
    _final_map: int,
    _i: int,
    j: int,
    top: int,
    *_: Any,
    **__: Any,
) -> int:
    """The ops of the program that run at this position (resolution ≤ ``top``): each gated
    ResNet's two convolutions (and its auxiliary 1×1), each stride-2 convolution, one tap of
    each transposed convolution; the first map's left window (``j > 0``) and the head. Column
    order as ``CompiledProgram`` in ``sampling/cached/pixelcnn_pp.py``."""
    per_image = head_w.numel() + (left_w.numel() if j > 0 else 0)
    for row in program.tolist():
        if row[CompiledProgram.LEVEL] <= top:
            per_image += _op_multiplies(row, maps, weights, [j >> row[CompiledProgram.LEVEL]])
    return 2 * x.shape[0] * per_image


@flop_formula("pixelcnnpp_row", raw=True)
def _pixelcnnpp_row(
    x: torch.Tensor,
    maps: list[torch.Tensor],
    _elu_of: torch.Tensor,
    weights: list[torch.Tensor],
    program: torch.Tensor,
    _i: int,
    top: int,
    *_: Any,
    **__: Any,
) -> int:
    """The ops of the program that run at this row (resolution ≤ ``top``), at every column
    of their output's row."""
    per_image = 0
    for row in program.tolist():
        if row[CompiledProgram.LEVEL] <= top:
            width = maps[row[CompiledProgram.OUT]].shape[3] - 2
            per_image += _op_multiplies(row, maps, weights, range(width))
    return 2 * x.shape[0] * per_image


def _op_multiplies(
    row: list[int], maps: list[torch.Tensor], weights: list[torch.Tensor], columns: Any
) -> int:
    """Multiply-adds per image of one op of a compiled program at the given columns of its
    output row: a gated ResNet's two convolutions (and its auxiliary 1×1), a stride-2
    convolution's window, the taps of a transposed convolution that reach the column."""
    P = CompiledProgram
    kernel = weights[row[P.W]].numel()
    if row[P.KIND] == P.RESIDUAL:
        per_column = kernel + weights[row[P.W_OUT]].numel()
        per_column += weights[row[P.AUX_W]].numel() if row[P.AUX_W] >= 0 else 0
        return per_column * len(columns)
    if row[P.KIND] == P.DOWNSAMPLE:
        return kernel * len(columns)
    taps = weights[row[P.W]]  # (2, k, C_in, C_out)
    tap, k, width_in = taps[0, 0].numel(), taps.shape[1], maps[row[P.IN]].shape[3] - 2
    return tap * sum(_reaching_taps(row[P.FIRST] + b, k, width_in) for b in columns)


def _reaching_taps(q: int, k: int, width_in: int) -> int:
    """How many of a stride-2 transposed convolution's ``k`` kernel columns reach its full
    output column ``q``: those with an input column ``p``, ``2p + kw = q``."""
    return sum(1 for kw in range(k) if (q - kw) % 2 == 0 and 0 <= (q - kw) // 2 < width_in)
