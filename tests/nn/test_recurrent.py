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


def test_the_scans_skewed_buffer_layout_is_the_skew() -> None:
    """The Diagonal BiLSTM's buffers are skewed through a strided view (``_pixels``): writing
    a map into it places pixel ``(r, j)`` where :func:`skew` puts it (column ``r + j``, after
    the padding column and row), and reading it back gives the map."""
    from pixelrnn.nn.diagonal_lstm import _pixels

    b, k, rows, width = 3, 2, 4, 5
    x = torch.randn(2, k, rows, width, b)
    buffer = torch.zeros(2, k, width + rows, rows + 1, b)
    _pixels(buffer, width).copy_(x)
    for n in range(b):
        skewed = skew(x[..., n])  # (2, K, H, W + H - 1)
        assert torch.equal(buffer[:, :, 1:, 1:, n], skewed.transpose(2, 3))
    assert torch.equal(_pixels(buffer, width), x)


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
    reads the state above, (i-1, j), and the state to the left, (i, j-1). Built without
    in-place writes, so autograd can differentiate it."""
    b, _, rows, cols = x.shape
    h = layer.hidden_channels
    w_is = (layer.input_to_state.weight * layer.input_to_state.mask)[:, :, 0, 0]  # (8h, C)
    b_is = layer.input_to_state.bias
    w_ss = layer.state_to_state.weight  # (8h, h, 2): taps [above, left] per direction group
    zero = torch.zeros(b, h, dtype=x.dtype)
    results = []
    for d, image in enumerate((x, x.flip(-1))):
        gates = slice(4 * h * d, 4 * h * (d + 1))
        state: dict[tuple[int, int], torch.Tensor] = {}
        cell: dict[tuple[int, int], torch.Tensor] = {}
        for i in range(rows):
            for j in range(cols):
                pre = b_is[gates] + image[:, :, i, j] @ w_is[gates].T  # (B, 4h)
                pre = pre + state.get((i - 1, j), zero) @ w_ss[gates, :, 0].T
                pre = pre + state.get((i, j - 1), zero) @ w_ss[gates, :, 1].T
                o, f, ig = pre[:, : 3 * h].sigmoid().chunk(3, dim=1)
                c = f * cell.get((i, j - 1), zero) + ig * pre[:, 3 * h :].tanh()
                state[i, j], cell[i, j] = o * c.tanh(), c
        grid = torch.stack(
            [torch.stack([state[i, j] for j in range(cols)], -1) for i in range(rows)], -2
        )
        results.append(grid)  # (B, h, H, W)
    left, right = results[0], results[1].flip(-1)
    return left + torch.cat([torch.zeros_like(right[:, :, :1]), right[:, :, :-1]], dim=2)


@pytest.mark.parametrize("channels", [1, 3])
@torch.no_grad()
def test_row_lstm_equals_per_pixel_reference(channels: int) -> None:
    torch.manual_seed(0)
    layer = RowLSTM(channels, 6, channels).double()
    torch.nn.init.normal_(layer.h0)
    torch.nn.init.normal_(layer.c0)
    x = torch.randn(2, channels, 4, 5, dtype=torch.float64)
    torch.testing.assert_close(layer(x), row_lstm_reference(layer, x), rtol=1e-12, atol=1e-12)


@pytest.fixture(params=["python", "native"])
def scan_loops(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a test with the Diagonal BiLSTM's Python column loops and with the compiled ones
    (``native.py``; PIXELRNN_NATIVE=1 makes a failed build an error, not a skip)."""
    monkeypatch.setenv("PIXELRNN_NATIVE", "0" if request.param == "python" else "1")
    return request.param


@pytest.mark.parametrize(("channels", "rows", "cols"), [(1, 4, 5), (3, 5, 3), (1, 1, 4)])
@torch.no_grad()
def test_diagonal_bilstm_equals_per_pixel_reference(
    channels: int, rows: int, cols: int, scan_loops: str
) -> None:
    torch.manual_seed(0)
    layer = DiagonalBiLSTM(channels, 6, channels).double()
    x = torch.randn(2, channels, rows, cols, dtype=torch.float64)
    torch.testing.assert_close(layer(x), diagonal_reference(layer, x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("channels", "rows", "cols"), [(1, 4, 5), (3, 5, 3), (1, 3, 1)])
def test_diagonal_bilstm_gradients_equal_the_reference(
    channels: int, rows: int, cols: int, scan_loops: str
) -> None:
    """The hand-written backward of the scan against autograd through the per-pixel loop."""
    torch.manual_seed(1)
    layer = DiagonalBiLSTM(channels, 4, channels).double()
    x = torch.randn(2, channels, rows, cols, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(2, 4, rows, cols, dtype=torch.float64)
    inputs = [x, *layer.parameters()]
    fast = torch.autograd.grad((layer(x) * weights).sum(), inputs)
    slow = torch.autograd.grad((diagonal_reference(layer, x) * weights).sum(), inputs)
    for a, b in zip(fast, slow, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_diagonal_scan_gradcheck(scan_loops: str) -> None:
    from pixelrnn.nn.diagonal_lstm import DiagonalScan

    torch.manual_seed(0)
    h, c, rows, width = 2, 3, 3, 4
    x = torch.randn(c, rows, width, 2, dtype=torch.float64, requires_grad=True)  # batch last
    w_in = torch.randn(8 * h, c, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(8 * h, dtype=torch.float64, requires_grad=True)
    w_state = torch.randn(8 * h, h, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(DiagonalScan.apply, (x, w_in, bias, w_state))


def _layer_values_and_gradients(
    layer: DiagonalBiLSTM, x: torch.Tensor, weights: torch.Tensor
) -> list[torch.Tensor]:
    x = x.detach().requires_grad_()
    out = layer(x)
    grads = torch.autograd.grad((out * weights).sum(), [x, *layer.parameters()])
    return [out.detach(), *grads]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compiled_column_loops_match_the_python_loops(
    dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The compiled loops (fused, vectorized cell: fast exp, tanh as 2 sigma(2x) - 1) against
    the Python loops (ATen's sigmoid/tanh), values and every gradient, at a size where each
    column has several batch-sized blocks: within 1e-5 relative in float32 and 1e-10 in
    float64."""
    torch.manual_seed(2)
    layer = DiagonalBiLSTM(12, 8, 3).to(dtype)
    x = torch.randn(5, 12, 9, 7, dtype=dtype)
    weights = torch.randn(5, 8, 9, 7, dtype=dtype)
    monkeypatch.setenv("PIXELRNN_NATIVE", "0")
    slow = _layer_values_and_gradients(layer, x, weights)
    monkeypatch.setenv("PIXELRNN_NATIVE", "1")
    fast = _layer_values_and_gradients(layer, x, weights)
    tolerance = 1e-5 if dtype == torch.float32 else 1e-10
    for a, b in zip(fast, slow, strict=True):
        torch.testing.assert_close(a, b, rtol=tolerance, atol=tolerance)


_SCAN_DIGESTS = """
import hashlib, sys, torch
from pixelrnn.nn import DiagonalBiLSTM
torch.set_num_threads(int(sys.argv[1]))
torch.manual_seed(5)
layer = DiagonalBiLSTM(10, 6, 1)
x = torch.randn(6, 10, 8, 11, requires_grad=True)
out = layer(x)
grads = torch.autograd.grad((out * torch.randn_like(out)).sum(), [x, *layer.parameters()])
for t in (out, *grads):
    print(hashlib.sha256(t.detach().contiguous().numpy().tobytes()).hexdigest())
"""


def test_the_compiled_scan_computes_the_same_bits_on_one_thread_or_two() -> None:
    """The compiled CPU scan runs each direction on its own thread where there are two: the
    output and every gradient are bitwise the same as on one thread (both directions in turn),
    run in fresh processes (a process's thread count is best set once)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PIXELRNN_NATIVE": "1"}
    digests = [
        subprocess.run(
            [sys.executable, "-c", _SCAN_DIGESTS, str(threads)],
            env=env, capture_output=True, text=True, check=True,
        ).stdout.split()
        for threads in (1, 2)
    ]  # fmt: skip
    assert len(digests[0]) == 5
    assert digests[0] == digests[1]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_scan_reads_no_unset_buffer_entry(
    dtype: torch.dtype, scan_loops: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scan leaves its buffers unset except where it reads (only some padding is zeroed):
    with every buffer filled with NaN instead, the output and every gradient are unchanged."""
    from pixelrnn.nn import diagonal_lstm

    torch.manual_seed(4)
    layer = DiagonalBiLSTM(6, 4, 3).to(dtype)
    x = torch.randn(3, 6, 5, 7, dtype=dtype)
    weights = torch.randn(3, 4, 5, 7, dtype=dtype)
    clean = _layer_values_and_gradients(layer, x, weights)
    monkeypatch.setattr(
        diagonal_lstm, "_new_buffer", lambda like, *shape: like.new_full(shape, float("nan"))
    )
    poisoned = _layer_values_and_gradients(layer, x, weights)
    for a, b in zip(poisoned, clean, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("scan", ["python", "native"])
def test_diagonal_bilstm_trains_under_bf16_autocast(
    scan: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under CPU autocast the scan runs in bfloat16 (the compiled loops use ATen's operations
    for it): the output is bfloat16, parameter gradients stay float32, and both are within
    bfloat16's precision of the float32 ones."""
    monkeypatch.setenv("PIXELRNN_NATIVE", "0" if scan == "python" else "1")
    torch.manual_seed(3)
    layer = DiagonalBiLSTM(8, 4, 1)
    x = torch.randn(2, 8, 6, 5)
    weights = torch.randn(2, 4, 6, 5)
    exact = _layer_values_and_gradients(layer, x, weights)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fast = _layer_values_and_gradients(layer, x, weights)
    assert fast[0].dtype == torch.bfloat16
    assert all(g.dtype == torch.float32 for g in fast[1:])
    for a, b in zip(fast, exact, strict=True):
        torch.testing.assert_close(a.float(), b, rtol=0.05, atol=0.05)
