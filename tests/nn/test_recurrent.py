"""Skew/unskew, and the recurrent layers' fast paths (the Python and the compiled scans)
against their references in the paper's form (:mod:`pixelrnn.nn.recurrent_reference`)."""

from __future__ import annotations

import pytest
import torch

from pixelrnn.nn import DiagonalBiLSTM, RowLSTM, skew, unskew
from pixelrnn.nn.recurrent_reference import diagonal_bilstm_reference, row_lstm_reference


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
    from pixelrnn.nn.diagonal_scan import _pixels

    b, k, rows, width = 3, 2, 4, 5
    x = torch.randn(2, k, rows, width, b)
    buffer = torch.zeros(2, k, width + rows, rows + 1, b)
    _pixels(buffer, width).copy_(x)
    for n in range(b):
        skewed = skew(x[..., n])  # (2, K, H, W + H - 1)
        assert torch.equal(buffer[:, :, 1:, 1:, n], skewed.transpose(2, 3))
    assert torch.equal(_pixels(buffer, width), x)


def _row_lstm(channels: int, hidden: int, groups: int, dtype: torch.dtype) -> RowLSTM:
    """A Row LSTM with a non-zero learned initial state and cell (zero at initialisation)."""
    layer = RowLSTM(channels, hidden, groups).to(dtype)
    torch.nn.init.normal_(layer.h0)
    torch.nn.init.normal_(layer.c0)
    return layer


# each recurrent layer: a factory (in channels, hidden units, colour groups, dtype) and its
# reference in the paper's form
LAYERS = {
    "diagonal": lambda c, h, g, dtype: DiagonalBiLSTM(c, h, g).to(dtype),
    "row": _row_lstm,
}
REFERENCES = {"diagonal": diagonal_bilstm_reference, "row": row_lstm_reference}
SIZES = [(1, 4, 5), (3, 5, 3), (1, 1, 4), (1, 3, 1)]  # channels, rows, columns


@pytest.fixture(params=["python", "native"])
def scan_loops(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a test with the scans' Python loops and with the compiled ones (``native.py``;
    PIXELRNN_NATIVE=1 makes a failed build an error, not a skip)."""
    monkeypatch.setenv("PIXELRNN_NATIVE", "0" if request.param == "python" else "1")
    return request.param


@pytest.mark.parametrize("kind", LAYERS)
@pytest.mark.parametrize(("channels", "rows", "cols"), SIZES)
@torch.no_grad()
def test_the_recurrent_layers_equal_their_references(
    kind: str, channels: int, rows: int, cols: int, scan_loops: str
) -> None:
    torch.manual_seed(0)
    layer = LAYERS[kind](channels, 6, channels, torch.float64)
    x = torch.randn(2, channels, rows, cols, dtype=torch.float64)
    expected = REFERENCES[kind](layer, x)
    torch.testing.assert_close(layer(x), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", LAYERS)
@pytest.mark.parametrize(("channels", "rows", "cols"), SIZES)
def test_the_recurrent_layers_gradients_equal_the_references(
    kind: str, channels: int, rows: int, cols: int, scan_loops: str
) -> None:
    """The scans' hand-written backward passes (and the layers' whole-map products) against
    autograd through the references, for the input and every parameter (the Row LSTM's
    initial state and cell included)."""
    torch.manual_seed(1)
    layer = LAYERS[kind](channels, 4, channels, torch.float64)
    x = torch.randn(2, channels, rows, cols, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(2, 4, rows, cols, dtype=torch.float64)
    inputs = [x, *layer.parameters()]
    fast = torch.autograd.grad((layer(x) * weights).sum(), inputs)
    slow = torch.autograd.grad((REFERENCES[kind](layer, x) * weights).sum(), inputs)
    for a, b in zip(fast, slow, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", LAYERS)
def test_conditioning_maps_and_the_image_input_equal_the_references(
    kind: str, scan_loops: str
) -> None:
    """The extra inputs the models use: a conditioning map (Multi-Scale PixelRNN §3.4) for both
    layers, and the raw image the Diagonal BiLSTM's right-to-left direction reads with
    ``full_context``; values and every gradient."""
    torch.manual_seed(6)
    extra = {"context_channels": 3}
    if kind == "diagonal":
        layer = DiagonalBiLSTM(4, 5, 1, image_channels=2, **extra).double()
    else:
        layer = RowLSTM(4, 5, 1, **extra).double()
        torch.nn.init.normal_(layer.h0)
    x = torch.randn(2, 4, 5, 6, dtype=torch.float64, requires_grad=True)
    inputs = {"context": torch.randn(2, 3, 5, 6, dtype=torch.float64)}
    if kind == "diagonal":
        inputs["image"] = torch.randn(2, 2, 5, 6, dtype=torch.float64)
    weights = torch.randn(2, 5, 5, 6, dtype=torch.float64)
    fast_out = layer(x, **inputs)
    slow_out = REFERENCES[kind](layer, x, **inputs)
    torch.testing.assert_close(fast_out, slow_out, rtol=1e-12, atol=1e-12)
    params = [x, *layer.parameters()]
    fast = torch.autograd.grad((fast_out * weights).sum(), params)
    slow = torch.autograd.grad((slow_out * weights).sum(), params)
    for a, b in zip(fast, slow, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_row_scan_gradcheck(scan_loops: str) -> None:
    from pixelrnn.nn.row_scan import RowScan

    torch.manual_seed(0)
    h, rows, width, b = 2, 3, 4, 2
    pre = torch.randn(4 * h, rows, width, b, dtype=torch.float64, requires_grad=True)
    w_state = torch.randn(4 * h, h, 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(h, 1, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(h, 1, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(RowScan.apply, (pre, w_state, h0, c0))


def test_diagonal_scan_gradcheck(scan_loops: str) -> None:
    from pixelrnn.nn.diagonal_scan import DiagonalScan

    torch.manual_seed(0)
    h, c, rows, width = 2, 3, 3, 4
    x = torch.randn(c, rows, width, 2, dtype=torch.float64, requires_grad=True)  # batch last
    w_in = torch.randn(8 * h, c, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(8 * h, dtype=torch.float64, requires_grad=True)
    w_state = torch.randn(8 * h, h, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(DiagonalScan.apply, (x, w_in, bias, w_state))


def _layer_values_and_gradients(
    layer: torch.nn.Module, x: torch.Tensor, weights: torch.Tensor
) -> list[torch.Tensor]:
    x = x.detach().requires_grad_()
    out = layer(x)
    grads = torch.autograd.grad((out * weights).sum(), [x, *layer.parameters()])
    return [out.detach(), *grads]


@pytest.mark.parametrize("kind", LAYERS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compiled_loops_match_the_python_loops(
    kind: str, dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The compiled loops (fused, vectorized cell: fast exp, tanh as 2 sigma(2x) - 1) of both
    scans against their Python loops (ATen's sigmoid/tanh), values and every gradient, at a
    size where each column or row has several batch-sized blocks: within 1e-5 relative in
    float32 and 1e-10 in float64."""
    torch.manual_seed(2)
    layer = LAYERS[kind](12, 8, 3, dtype)
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
from pixelrnn.nn import DiagonalBiLSTM, RowLSTM
torch.set_num_threads(int(sys.argv[1]))
torch.manual_seed(5)
for layer in (DiagonalBiLSTM(10, 6, 1), RowLSTM(10, 6, 1)):
    x = torch.randn(6, 10, 8, 11, requires_grad=True)
    out = layer(x)
    grads = torch.autograd.grad((out * torch.randn_like(out)).sum(), [x, *layer.parameters()])
    for t in (out, *grads):
        print(hashlib.sha256(t.detach().contiguous().numpy().tobytes()).hexdigest())
"""


def test_the_compiled_scan_computes_the_same_bits_on_one_thread_or_two() -> None:
    """The compiled CPU scan runs each direction on its own thread where there are two (the row
    scan runs on one, the layers around it on all): the output and every gradient of both
    layers are bitwise the same as on one thread, run in fresh processes (a process's thread
    count is best set once)."""
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
    assert len(digests[0]) == 5 + 7
    assert digests[0] == digests[1]


@pytest.mark.parametrize("kind", LAYERS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_scan_reads_no_unset_buffer_entry(
    kind: str, dtype: torch.dtype, scan_loops: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scans leave their buffers unset except where they read (only some padding is
    zeroed): with every buffer filled with NaN instead, the output and every gradient are
    unchanged."""
    from pixelrnn.nn import diagonal_scan, row_scan

    torch.manual_seed(4)
    layer = LAYERS[kind](6, 4, 3, dtype)
    x = torch.randn(3, 6, 5, 7, dtype=dtype)
    weights = torch.randn(3, 4, 5, 7, dtype=dtype)
    clean = _layer_values_and_gradients(layer, x, weights)
    for module in (diagonal_scan, row_scan):
        monkeypatch.setattr(
            module, "_new_buffer", lambda like, *shape: like.new_full(shape, float("nan"))
        )
    poisoned = _layer_values_and_gradients(layer, x, weights)
    for a, b in zip(poisoned, clean, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("kind", LAYERS)
@pytest.mark.parametrize("scan", ["python", "native"])
def test_the_recurrent_layers_train_under_bf16_autocast(
    kind: str, scan: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under CPU autocast the scans run in bfloat16 (the compiled diagonal loops use ATen's
    operations for it, the row scan its Python loops): the output is bfloat16, parameter
    gradients stay float32, and both are within bfloat16's precision of the float32 ones."""
    monkeypatch.setenv("PIXELRNN_NATIVE", "0" if scan == "python" else "1")
    torch.manual_seed(3)
    layer = LAYERS[kind](8, 4, 1, torch.float32)
    x = torch.randn(2, 8, 6, 5)
    weights = torch.randn(2, 4, 6, 5)
    exact = _layer_values_and_gradients(layer, x, weights)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fast = _layer_values_and_gradients(layer, x, weights)
    assert fast[0].dtype == torch.bfloat16
    assert all(g.dtype == torch.float32 for g in fast[1:])
    for a, b in zip(fast, exact, strict=True):
        torch.testing.assert_close(a.float(), b, rtol=0.05, atol=0.05)
