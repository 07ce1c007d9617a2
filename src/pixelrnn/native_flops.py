"""Floating-point operation counts of the compiled operators, for ``torch.utils.flop_counter``.

``FlopCounterMode`` counts the matrix products and convolutions of ATen operators; a custom
operator is opaque to it unless it has a formula. These formulas count what the compiled
kernels (``csrc``) multiply, with the convention of PyTorch's own formulas: 2 operations per
multiply-add, element-wise work (gates, non-linearities, draws) not counted. So a measurement
sees the same work whether a step ran compiled or as the equivalent PyTorch operations (tested
in ``tests/test_native.py``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.flop_counter import flop_registry, register_flop_formula


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


def _pixelcnnpp_step(
    x: torch.Tensor,
    _ul_above: torch.Tensor,
    _maps: list[torch.Tensor],
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
    from pixelrnn.sampling.cached.pixelcnn_pp import CompiledProgram as P

    per_image = head_w.numel() + (left_w.numel() if j > 0 else 0)
    for row in program.tolist():
        if row[P.LEVEL] > top:
            continue
        kernel = weights[row[P.W]].numel()
        if row[P.KIND] == P.RESIDUAL:  # two convolutions (and the auxiliary 1×1)
            per_image += kernel + weights[row[P.W_OUT]].numel()
            per_image += weights[row[P.AUX_W]].numel() if row[P.AUX_W] >= 0 else 0
        elif row[P.KIND] == P.DOWNSAMPLE:  # a 2×2 window
            per_image += kernel
        else:  # a transposed convolution: one of its 2×2 taps
            per_image += kernel // 4
    return 2 * x.shape[0] * per_image


def _scan_columns(inputs: Any, weight: Any, width: int) -> int:
    """One product of the stacked kernels ``[input | above | left]`` ``(4h × (c + 2h))`` per
    pixel and direction. ``inputs``: ``(2, c, T + 1, H + 1, B)``; ``weight``:
    ``(2, 4h, c + 2h)``."""
    _, _, _, rows_1, batch = inputs
    _, four_h, k = weight
    return 2 * 2 * four_h * k * (rows_1 - 1) * width * batch


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


def _row_scan_rows(tanh_cells: Any, weight: Any) -> int:
    """One product of the ``k`` state taps ``(4h × k·h)`` per pixel. ``tanh_cells``:
    ``(h, H, W, B)``; ``weight``: ``(4h, k, h)``."""
    _, rows, width, batch = tanh_cells
    four_h, k, h = weight
    return 2 * four_h * k * h * rows * width * batch


def _row_scan_forward(
    _gates: Any, _states: Any, _cells: Any, tanh_cells: Any, weight: Any, *_: Any, **__: Any
) -> int:
    """The state taps at every pixel (shapes only)."""
    return _row_scan_rows(tanh_cells, weight)


def _row_scan_backward(
    _gates: Any, _states: Any, _cells: Any, tanh_cells: Any, weight: Any, *_: Any, **__: Any
) -> int:
    """Two products per pixel: the taps' gradient and the gradient of the states they read
    (shapes only)."""
    return 2 * _row_scan_rows(tanh_cells, weight)


def register() -> None:
    """Register the formulas (once per process; after the operators are loaded)."""
    ops = torch.ops.pixelrnn
    formulas = [
        (ops.pixelcnn_step, _pixelcnn_step, False),
        (ops.gated_pixelcnn_step, _gated_pixelcnn_step, False),
        (ops.pixelcnnpp_step, _pixelcnnpp_step, True),
        (ops.diagonal_scan_forward, _diagonal_scan_forward, False),
        (ops.diagonal_scan_backward, _diagonal_scan_backward, False),
        (ops.row_scan_forward, _row_scan_forward, False),
        (ops.row_scan_backward, _row_scan_backward, False),
    ]
    for op, formula, raw in formulas:
        if op not in flop_registry:
            register_flop_formula(op, get_raw=raw)(formula)
