"""Receptive fields: what each model claims, measured through the whole network.

Diagonal BiLSTM: every earlier pixel but one per row (see diagonal_bilstm_field). Row LSTM: its
documented triangle plus the left context of the masked input convolutions. (PixelCNN's blind
spot: test_causality.py.)
"""

from __future__ import annotations

import pytest
import torch

import pixelrnn.nn.diagonal_scan as diagonal_scan
from tests.helpers import assert_causal, dependency_matrix, strictly_earlier, tiny_model


def diagonal_bilstm_field(h: int, w: int, input_kernel: int) -> torch.Tensor:
    """Analytic dependency matrix of a single-channel Diagonal BiLSTM PixelRNN.

    Every earlier pixel, except one: the last pixel of the previous row, (i-1, W-1), for
    pixels (i, j) with j < W-1-r (r = input_kernel // 2). No feature of row i-1 ever holds
    x(i-1, W-1) (a feature at a position never holds that position's own value, and nothing
    lies to its right), so the shifted right-to-left scan cannot bring it down; only the mask-A
    input convolution's rows-above taps reach it, r columns wide. The paper's "entire available
    context" is this, minus that one pixel per row.
    """
    field = strictly_earlier(h, w)
    r = input_kernel // 2
    for i in range(1, h):
        for j in range(w - 1 - r):
            field[i * w + j, (i - 1) * w + w - 1] = False
    return field


@pytest.mark.parametrize(("num_layers", "input_kernel"), [(1, 7), (2, 3), (3, 7)])
def test_diagonal_bilstm_sees_every_earlier_pixel_but_the_documented_one(
    num_layers: int, input_kernel: int
) -> None:
    model = tiny_model(
        1,
        2,
        size=8,
        model="diagonal_bilstm",
        num_layers=num_layers,
        input_kernel_size=input_kernel,
    )
    assert torch.equal(dependency_matrix(model), diagonal_bilstm_field(8, 8, input_kernel))


def test_diagonal_bilstm_full_context_at_pixel_level_with_colour() -> None:
    """With RGB, the B features at (i-1, W-1) hold its R and G, so every earlier pixel (and the
    current one, through its earlier channels) influences the prediction."""
    model = tiny_model(3, 4, size=6, model="diagonal_bilstm")
    assert torch.equal(dependency_matrix(model), strictly_earlier(6, 6) | torch.eye(36, dtype=bool))


def test_without_the_down_shift_the_tests_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    """The deliberately broken variant: the right-to-left output is added unshifted, so a pixel
    sees the pixels to its right in its own row. Both checks must catch it."""
    monkeypatch.setattr(diagonal_scan, "RIGHT_TO_LEFT_ROW_SHIFT", 0)
    model = tiny_model(1, 2, size=8, model="diagonal_bilstm", num_layers=1)
    matrix = dependency_matrix(model)
    assert not torch.equal(matrix, diagonal_bilstm_field(8, 8, 7))
    assert (matrix & ~strictly_earlier(8, 8)).any()  # it sees the future
    with pytest.raises(AssertionError, match="changed with input"):
        assert_causal(tiny_model(1, 2, size=5, model="diagonal_bilstm"))


@pytest.mark.parametrize(("channels", "num_layers"), [(1, 1), (1, 3), (3, 1)])
def test_full_context_option_sees_every_earlier_sub_pixel(channels: int, num_layers: int) -> None:
    """full_context=True: the first layer's right-to-left direction reads the raw image, so
    (i-1, W-1) reaches every pixel of row i too; nothing later is seen (causal at sub-pixel
    level, 1 and 3 channels)."""
    levels = 2 if channels == 1 else 4
    wide = dict(hidden_channels=9, output_channels=24) if channels == 3 else {}
    model = tiny_model(
        channels,
        levels,
        size=8,
        model="diagonal_bilstm",
        full_context=True,
        num_layers=num_layers,
        input_kernel_size=3,
        **wide,
    )
    expected = strictly_earlier(8, 8)
    if channels == 3:
        expected |= torch.eye(64, dtype=torch.bool)
    assert torch.equal(dependency_matrix(model), expected)
    # the paper's layer misses exactly the documented pixels on the same configuration
    paper = tiny_model(
        1, 2, size=8, model="diagonal_bilstm", num_layers=num_layers, input_kernel_size=3
    )
    assert torch.equal(dependency_matrix(paper), diagonal_bilstm_field(8, 8, 3))
    assert_causal(
        tiny_model(channels, levels, size=5, model="diagonal_bilstm", full_context=True, **wide)
    )


def test_full_context_is_refused_by_the_row_lstm() -> None:
    with pytest.raises(ValueError, match="Diagonal BiLSTM only"):
        tiny_model(1, 2, model="row_lstm", full_context=True)


def row_lstm_field(h: int, w: int, num_layers: int, input_kernel: int) -> torch.Tensor:
    """Analytic dependency matrix of a Row LSTM PixelRNN, propagated layer by layer.

    One Row LSTM layer at (i, j) reads its input at (i, j-1) and (i, j) (width-3 mask-B input
    convolution) and its own state at (i-1, j-1..j+1), recursively; the residual block adds the
    identity. The mask-A input layer reads every tap above the centre row and the taps left of
    the centre. Out-of-image positions are zero padding and carry nothing.
    """
    n = h * w

    def idx(i: int, j: int) -> int:
        return i * w + j

    def inside(i: int, j: int) -> bool:
        return 0 <= i < h and 0 <= j < w

    lstm = torch.zeros(n, n, dtype=torch.bool)  # LSTM output at p <- block input at q
    for i in range(h):
        for j in range(w):
            p = idx(i, j)
            for dj in (-1, 0):
                if inside(i, j + dj):
                    lstm[p, idx(i, j + dj)] = True
            for dj in (-1, 0, 1):
                if inside(i - 1, j + dj):
                    lstm[p] |= lstm[idx(i - 1, j + dj)]
    block = lstm | torch.eye(n, dtype=torch.bool)
    r = input_kernel // 2
    first = torch.zeros(n, n, dtype=torch.bool)
    for i in range(h):
        for j in range(w):
            taps = [(di, dj) for di in range(-r, 0) for dj in range(-r, r + 1)]
            taps += [(0, dj) for dj in range(-r, 0)]
            for di, dj in taps:
                if inside(i + di, j + dj):
                    first[idx(i, j), idx(i + di, j + dj)] = True
    field = first
    for _ in range(num_layers):
        field = (block.double() @ field.double()) > 0
    return field


@pytest.mark.parametrize(("num_layers", "input_kernel"), [(1, 3), (2, 5)])
def test_row_lstm_sees_exactly_its_triangle(num_layers: int, input_kernel: int) -> None:
    model = tiny_model(
        1, 2, size=8, model="row_lstm", num_layers=num_layers, input_kernel_size=input_kernel
    )
    expected = row_lstm_field(8, 8, num_layers, input_kernel)
    measured = dependency_matrix(model)
    assert torch.equal(measured, expected)
    assert not (expected & ~strictly_earlier(8, 8)).any()
    # unlike the Diagonal BiLSTM, the Row LSTM does not see everything before a pixel
    assert (strictly_earlier(8, 8) & ~expected).any()
