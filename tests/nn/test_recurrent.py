"""Skew/unskew and the recurrent layers against straightforward per-pixel references."""

from __future__ import annotations

import pytest
import torch

from pixelrnn.nn import DiagonalBiLSTM, RowLSTM, skew, unskew


@pytest.mark.parametrize(("h", "w"), [(1, 1), (3, 5), (5, 3), (4, 4), (7, 2)])
def test_skew_matches_a_loop_and_unskew_inverts_it(h: int, w: int) -> None:
    x = torch.randn(2, 3, h, w)
    expected = torch.zeros(2, 3, h, w + h - 1)
    for r in range(h):
        expected[:, :, r, r : r + w] = x[:, :, r]
    assert torch.equal(skew(x), expected)
    assert torch.equal(unskew(skew(x), w), x)
    with pytest.raises(ValueError, match="columns"):
        unskew(skew(x), w + 1)


def _gates(pre: torch.Tensor, c: torch.Tensor, h: int) -> tuple[torch.Tensor, torch.Tensor]:
    o, f, i, g = (
        pre[:h].sigmoid(),
        pre[h : 2 * h].sigmoid(),
        pre[2 * h : 3 * h].sigmoid(),
        pre[3 * h :].tanh(),
    )
    c = f * c + i * g
    return o * c.tanh(), c


def row_lstm_reference(layer: RowLSTM, x: torch.Tensor) -> torch.Tensor:
    """Pixel by pixel, with the convolutions written out as sums over taps."""
    b, _, rows, cols = x.shape
    h = layer.hidden_channels
    w_is = (layer.input_to_state.weight * layer.input_to_state.mask)[:, :, 0]  # (4h, C, 3)
    b_is = layer.input_to_state.bias
    w_ss = layer.state_to_state.weight  # (4h, h, 3)
    out = torch.zeros(b, h, rows, cols, dtype=x.dtype)
    cell = torch.zeros(b, h, rows, cols, dtype=x.dtype)
    for n in range(b):
        for i in range(rows):
            for j in range(cols):
                pre = b_is.clone()
                for k, dj in enumerate((-1, 0, 1)):
                    if 0 <= j + dj < cols:
                        pre = pre + w_is[:, :, k] @ x[n, :, i, j + dj]
                        prev_h = out[n, :, i - 1, j + dj] if i > 0 else layer.h0[:, 0]
                        pre = pre + w_ss[:, :, k] @ prev_h
                prev_c = cell[n, :, i - 1, j] if i > 0 else layer.c0[:, 0]
                out[n, :, i, j], cell[n, :, i, j] = _gates(pre, prev_c, h)
    return out


def diagonal_reference(layer: DiagonalBiLSTM, x: torch.Tensor) -> torch.Tensor:
    """Both directions pixel by pixel in image coordinates (no skewing): the state at (i, j)
    reads the state above, (i-1, j), and the state to the left, (i, j-1)."""
    b, _, rows, cols = x.shape
    h = layer.hidden_channels
    w_is = (layer.input_to_state.weight * layer.input_to_state.mask)[:, :, 0, 0]  # (8h, C)
    b_is = layer.input_to_state.bias
    w_ss = layer.state_to_state.weight  # (8h, h, 2): taps [above, left] per direction group
    results = []
    for d, image in enumerate((x, x.flip(-1))):
        gates = slice(4 * h * d, 4 * h * (d + 1))
        state = torch.zeros(b, h, rows, cols, dtype=x.dtype)
        cell = torch.zeros(b, h, rows, cols, dtype=x.dtype)
        for n in range(b):
            for i in range(rows):
                for j in range(cols):
                    pre = b_is[gates] + w_is[gates] @ image[n, :, i, j]
                    if i > 0:
                        pre = pre + w_ss[gates, :, 0] @ state[n, :, i - 1, j]
                    if j > 0:
                        pre = pre + w_ss[gates, :, 1] @ state[n, :, i, j - 1]
                    c_left = cell[n, :, i, j - 1] if j > 0 else torch.zeros(h, dtype=x.dtype)
                    state[n, :, i, j], cell[n, :, i, j] = _gates(pre, c_left, h)
        results.append(state)
    left, right = results[0], results[1].flip(-1)
    shifted = torch.zeros_like(right)
    shifted[:, :, 1:] = right[:, :, :-1]
    return left + shifted


@pytest.mark.parametrize("channels", [1, 3])
@torch.no_grad()
def test_row_lstm_equals_per_pixel_reference(channels: int) -> None:
    torch.manual_seed(0)
    layer = RowLSTM(channels, 6, channels).double()
    torch.nn.init.normal_(layer.h0)
    torch.nn.init.normal_(layer.c0)
    x = torch.randn(2, channels, 4, 5, dtype=torch.float64)
    torch.testing.assert_close(layer(x), row_lstm_reference(layer, x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("channels", "rows", "cols"), [(1, 4, 5), (3, 5, 3), (1, 1, 4)])
@torch.no_grad()
def test_diagonal_bilstm_equals_per_pixel_reference(channels: int, rows: int, cols: int) -> None:
    torch.manual_seed(0)
    layer = DiagonalBiLSTM(channels, 6, channels).double()
    x = torch.randn(2, channels, rows, cols, dtype=torch.float64)
    torch.testing.assert_close(layer(x), diagonal_reference(layer, x), rtol=1e-12, atol=1e-12)
