"""The optional compiled kernels: the setting, the fallback when a build fails, the error
when the build is required."""

from __future__ import annotations

import pytest
import torch
import torch.utils.cpp_extension
from torch.utils.flop_counter import FlopCounterMode

import pixelrnn
from pixelrnn import native
from pixelrnn.nn import DiagonalBiLSTM, RowLSTM
from tests.helpers import tiny_model


def test_native_setting_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(native.NATIVE_ENV_VAR, "yes")
    with pytest.raises(ValueError, match="PIXELRNN_NATIVE must be auto, 0 or 1, not 'yes'"):
        native.native_available()
    monkeypatch.setenv(native.NATIVE_ENV_VAR, "0")
    assert native.native_available() is False


def test_a_failed_build_falls_back_with_a_warning_or_raises_when_required(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken_load(**kwargs: object) -> None:
        raise OSError("no compiler here")

    # as on a machine where nothing was built yet
    monkeypatch.setattr(native, "_registered", lambda: False)
    monkeypatch.setattr(torch.utils.cpp_extension, "load", broken_load)
    with pytest.warns(RuntimeWarning, match=r"no compiler here.*slower Python loops"):
        assert native._load(required=False) is False
    with pytest.raises(RuntimeError, match=r"PIXELRNN_NATIVE=1.*no compiler here"):
        native._load(required=True)


def test_build_flags_follow_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    name, flags = native.build_flags()
    assert name.endswith("avx512") and "-mavx512f" in flags and "-mavx2" not in flags
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    name, flags = native.build_flags()
    assert name.endswith("avx2") and "-mavx2" in flags and "-mavx512f" not in flags
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "DEFAULT")
    name, flags = native.build_flags()
    assert not name.endswith("avx2") and "-mavx2" not in flags


@pytest.mark.parametrize(
    ("name", "channels", "overrides"),
    [
        ("pixelcnn", 1, {"num_layers": 3}),
        ("gated_pixelcnn", 3, {"num_layers": 3}),
        ("pixelcnnpp", 3, {"num_resolutions": 3}),
        ("row_lstm", 3, {"num_layers": 2}),
        ("diagonal_bilstm", 1, {"num_layers": 2}),
    ],
)
def test_the_flop_counter_sees_the_compiled_steps(
    name: str, channels: int, overrides: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``FlopCounterMode`` counts the same work for a cached generation whether its steps ran
    compiled (``native_flops`` formulas) or as the PyTorch operations they replace."""
    assert native.native_available()  # the formulas are registered once the kernels load
    model = tiny_model(channels, 256, size=7, model=name, **overrides).eval()
    x = torch.zeros(2, *model.image_shape, dtype=torch.long)
    counts = {}
    for setting in ("0", "1"):
        monkeypatch.setenv(native.NATIVE_ENV_VAR, setting)
        with FlopCounterMode(display=False) as counter:
            pixelrnn.complete(
                model, x, torch.zeros_like(x, dtype=torch.bool), generator=torch.Generator()
            )
        counts[setting] = counter.get_total_flops()
    assert (
        counts["1"] == counts["0"] + padding_flops(model, len(x)) - cropped_flops(model, len(x)) > 0
    )


def cropped_flops(model: pixelrnn.AutoregressiveModel, batch: int) -> int:
    """PixelCNN++'s down stream upsamples a row with a transposed convolution whose output
    rows and columns are then cropped (one of its two kernel rows is kept, and the columns
    from ``first_column``); the compiled row computes only what is kept
    (``pixelcnnpp_row``)."""
    if model.model_name != "pixelcnnpp":
        return 0
    height, width = model.image_shape[1:]
    sizes = [(height, width)]
    for _ in range(model.config.num_resolutions - 1):
        sizes.append(((sizes[-1][0] + 1) // 2, (sizes[-1][1] + 1) // 2))
    total = 0
    for step, up in enumerate(model.upsample_u):
        (_, width_in), (rows, width_out) = sizes[-1 - step], sizes[-2 - step]
        c_in, c_out, kh, kw = up.conv.weight.shape
        first = up.first_column
        kept = sum(
            1
            for q in range(first, first + width_out)
            for tap in range(kw)
            if (q - tap) % 2 == 0 and 0 <= (q - tap) // 2 < width_in
        )
        total += rows * (kh * kw * width_in - kept) * c_in * c_out
    return 2 * total * batch


def padding_flops(model: pixelrnn.AutoregressiveModel, batch: int) -> int:
    """The compiled PixelCNN's rows-above products also run at the ``2r`` padding columns of
    every image's row in its flat row buffers (``B·2r`` positions per row and block, for rows
    1 .. H − 1; ``sampling/cached/pixelcnn.py``); the other steps do no more than the
    PyTorch operations."""
    if model.model_name != "pixelcnn":
        return 0
    c_out, c_in, k, _ = model.blocks[0].conv.weight.shape
    r = k // 2
    positions = len(model.blocks) * (model.image_shape[1] - 1) * 2 * r * batch
    return 2 * positions * r * (2 * r + 1) * c_in * c_out


# per layer kind: the scan's operators and, for b images of c channels, h hidden units and
# rows x width pixels, the FLOPs of one forward pass of the scan and of the layer's other
# products in a training pass
B, C, H, ROWS, WIDTH = 3, 4, 5, 6, 7
PIXELS = B * ROWS * WIDTH
SCANS = {
    # the stacked kernels [input | above | left] (4h x (c + 2h)) at every pixel, both directions
    "diagonal": (DiagonalBiLSTM, "diagonal_scan", 2 * 2 * (4 * H) * (C + 2 * H) * PIXELS, 0),
    # the three state taps (4h x 3h) at every pixel; outside the scan, the input-to-state
    # product of the centre and left taps (4h x 2c), forward and its kernel's gradient
    "row": (
        RowLSTM,
        "row_scan",
        2 * (4 * H) * (3 * H) * PIXELS,
        2 * 2 * (4 * H) * (2 * C) * PIXELS,
    ),
}


@pytest.mark.parametrize("kind", SCANS)
def test_the_flop_counter_sees_the_scans(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A compiled scan's forward counts one product of its kernels at every pixel, its backward
    two (the kernels' gradient and that of what they read); and a training pass of the layer
    counts exactly the same in all as with the Python loops."""
    assert native.native_available()
    layer_class, op_name, per_pass, other = SCANS[kind]
    layer = layer_class(C, H)
    x = torch.randn(B, C, ROWS, WIDTH)
    totals = {}
    for setting in ("0", "1"):
        monkeypatch.setenv(native.NATIVE_ENV_VAR, setting)
        with FlopCounterMode(display=False) as counter:
            layer(x).sum().backward()
        totals[setting] = counter.get_total_flops()
    by_op = counter.get_flop_counts()["Global"]
    assert by_op[getattr(torch.ops.pixelrnn, f"{op_name}_forward")] == per_pass
    assert by_op[getattr(torch.ops.pixelrnn, f"{op_name}_backward")] == 2 * per_pass
    assert totals["1"] == totals["0"] == 3 * per_pass + other
