"""The cached generation path against the naive reference, for every registered model.

Per step, the cached path must hand the output distribution the same parameters as the naive
loop (float32: within 1e-5 relative to the largest parameter), and with the same generator it
must draw the same images (checked exactly in float64, where both paths agree to rounding).
"""

from __future__ import annotations

import pytest
import torch

import pixelrnn
from pixelrnn.models import conditional_models
from pixelrnn.native import native_available
from pixelrnn.sampling.cached import has_stepper, make_stepper
from pixelrnn.sampling.cached.gated import GatedPixelCNNStepper
from pixelrnn.sampling.cached.pixelcnn import PixelCNNStepper
from pixelrnn.sampling.cached.pixelcnn_pp import PixelCNNPPStepper
from pixelrnn.sampling.cached.pixelrnn import DiagonalBiLSTMStepper, RowLSTMStepper
from tests.helpers import random_images, random_labels, tiny_model

# the families with a compiled step
COMPILED_FAMILIES = ("pixelcnn", "gated_pixelcnn", "pixelcnnpp", "row_lstm", "diagonal_bilstm")
CASES = [
    (name, channels, conditional)
    for name in pixelrnn.available_models()
    for channels in (1, 3)
    for conditional in ((False, True) if name in conditional_models() else (False,))
]


def case_model(name: str, channels: int, conditional: bool, size: int = 6, **extra: object):
    if conditional:
        extra["num_classes"] = 3
        if name == "gated_pixelcnn":
            extra["spatial_conditioning"] = True
    return tiny_model(channels, 2 if channels == 1 else 4, size=size, model=name, **extra)


def draws_per_image(model: pixelrnn.AutoregressiveModel) -> int:
    """One draw per sub-pixel, or per pixel for a distribution joint over a pixel."""
    c, h, w = model.image_shape
    return h * w if model.distribution.joint_channels else c * h * w


def recorded_generation(
    model: pixelrnn.AutoregressiveModel, method: str, known: torch.Tensor, x: torch.Tensor
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Complete ``x`` with ``method``; also return the parameters of every draw."""
    params: list[torch.Tensor] = []
    draw = model.distribution.sample

    def recording_sample(p: torch.Tensor, generator, temperature) -> torch.Tensor:
        params.append(p.clone())
        return draw(p, generator, temperature)

    model.distribution.sample = recording_sample  # type: ignore[method-assign]
    try:
        y = random_labels(model, len(x), seed=3)
        out = pixelrnn.complete(
            model, x, known, generator=torch.Generator().manual_seed(0), y=y, method=method
        )
    finally:
        del model.distribution.sample
    return out, params


def test_every_model_has_a_cached_path() -> None:
    for name in pixelrnn.available_models():
        assert has_stepper(case_model(name, 1, False)), f"{name} has no cached sampler"


@pytest.mark.parametrize(("name", "channels", "conditional"), CASES)
def test_cached_parameters_match_the_naive_loop_float32(
    name: str, channels: int, conditional: bool
) -> None:
    model = case_model(name, channels, conditional)
    x = random_images(model, 3)
    known = torch.zeros_like(x, dtype=torch.bool)
    _, naive = recorded_generation(model, "naive", known, x)
    _, cached = recorded_generation(model, "cached", known, x)
    assert len(naive) == len(cached) == draws_per_image(model)
    # the paths draw different values only if the parameters differ; compare step by step on
    # the naive path's images, so one early difference cannot cascade
    for step, (p, q) in enumerate(zip(naive, cached, strict=True)):
        scale = float(p.abs().max())
        torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-5 * scale, msg=f"step {step}")


@pytest.mark.parametrize(("name", "channels", "conditional"), CASES)
def test_cached_draws_the_same_images_and_keeps_known_pixels(
    name: str, channels: int, conditional: bool
) -> None:
    model = case_model(name, channels, conditional).double()
    x = random_images(model, 3, seed=5)
    known = torch.rand(x.shape, generator=torch.Generator().manual_seed(2)) < 0.3
    known[0] = False  # one image sampled from scratch
    naive, _ = recorded_generation(model, "naive", known, x)
    cached, _ = recorded_generation(model, "cached", known, x)
    assert torch.equal(cached, naive)
    assert torch.equal(cached[known], x[known])


@pytest.mark.parametrize("name", pixelrnn.available_models())
def test_cached_matches_naive_with_a_whole_pixel_distribution(name: str) -> None:
    """The logistic mixture: one step per pixel, all three channels drawn at once."""
    model = tiny_model(3, 8, size=4, model=name, distribution="logistic_mixture:2").double()
    x = random_images(model, 2, seed=6)
    known = torch.zeros_like(x, dtype=torch.bool)
    naive, p_naive = recorded_generation(model, "naive", known, x)
    cached, p_cached = recorded_generation(model, "cached", known, x)
    assert len(p_naive) == len(p_cached) == 16  # one draw per pixel
    assert torch.equal(cached, naive)


@pytest.mark.parametrize(
    "overrides",
    [
        dict(distribution="auto"),  # sub-pixel steps: repeated calls at one pixel
        dict(num_resolutions=3, nr_resnet=2),  # 7 -> 4 -> 2 and back, cropped
    ],
    ids=["softmax-head", "three-resolutions-odd-size"],
)
def test_pixelcnnpp_cached_variants(overrides: dict) -> None:
    model = case_model("pixelcnnpp", 3, False, size=7, **overrides).double()
    x = random_images(model, 2, seed=4)
    known = torch.zeros_like(x, dtype=torch.bool)
    naive, p_naive = recorded_generation(model, "naive", known, x)
    cached, p_cached = recorded_generation(model, "cached", known, x)
    assert len(p_naive) == len(p_cached) == draws_per_image(model)
    for step, (p, q) in enumerate(zip(p_naive, p_cached, strict=True)):
        torch.testing.assert_close(q, p, rtol=1e-9, atol=1e-9, msg=f"step {step}")
    assert torch.equal(cached, naive)


@pytest.mark.parametrize("channels", [1, 3])
def test_diagonal_bilstm_full_context_cached_matches_naive(channels: int) -> None:
    model = case_model("diagonal_bilstm", channels, False, size=5, full_context=True).double()
    x = random_images(model, 2, seed=4)
    known = torch.zeros_like(x, dtype=torch.bool)
    naive, p_naive = recorded_generation(model, "naive", known, x)
    cached, p_cached = recorded_generation(model, "cached", known, x)
    for step, (p, q) in enumerate(zip(p_naive, p_cached, strict=True)):
        torch.testing.assert_close(q, p, rtol=1e-9, atol=1e-9, msg=f"step {step}")
    assert torch.equal(cached, naive)


def test_sample_defaults_to_cached_and_validates_the_method() -> None:
    model = tiny_model(1, 2, size=5, model="gated_pixelcnn").double()
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    assert torch.equal(
        pixelrnn.sample(model, 4, generator=g()),
        pixelrnn.sample(model, 4, generator=g(), method="naive"),
    )
    with pytest.raises(ValueError, match="method must be one of"):
        pixelrnn.sample(model, 1, method="fast")


@pytest.mark.parametrize(
    ("name", "channels", "conditional", "overrides", "batch"),
    [
        ("pixelcnn", 1, False, {"num_layers": 3}, 3),
        ("pixelcnn", 3, False, {"num_layers": 3}, 3),
        ("gated_pixelcnn", 1, False, {"num_layers": 3}, 3),
        ("gated_pixelcnn", 3, True, {"num_layers": 3}, 3),
        ("pixelcnnpp", 1, False, {}, 3),
        ("pixelcnnpp", 3, True, {"num_resolutions": 3}, 3),
        ("pixelcnnpp", 3, True, {"num_resolutions": 3}, 6),  # BLAS products above 4 images
        # BLAS products for every layer (from 32 images), the batch in two parts on two threads
        ("pixelcnn", 3, False, {"num_layers": 3}, 70),
        ("gated_pixelcnn", 3, True, {"num_layers": 3}, 70),
        ("pixelcnnpp", 3, True, {"num_resolutions": 3}, 70),
        ("row_lstm", 1, False, {"num_layers": 2}, 3),
        ("row_lstm", 3, False, {"num_layers": 2, "skip": False, "residual": False}, 70),
        ("diagonal_bilstm", 1, False, {"num_layers": 2}, 3),
        ("diagonal_bilstm", 3, False, {"num_layers": 2}, 70),
    ],
)
def test_compiled_steps_match_the_python_steps(
    name: str,
    channels: int,
    conditional: bool,
    overrides: dict,
    batch: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The compiled cached steps (``native/csrc/*_step.cpp``: for the PixelCNN and the Gated
    PixelCNN the input layer, every layer and the output layers at one pixel in one call; for
    PixelCNN++ the whole down-right stream, its first map and the head) against the steppers'
    Python code: the same parameters at every draw (float32, 1e-5 relative), the same images in
    float64; at a batch of 3 (and 6 for PixelCNN++: BLAS products), with completion of given
    rows, with labels (and a spatial map for the Gated PixelCNN), and PixelCNN++ over three
    resolutions of an odd-sized image."""
    size = 7 if overrides.get("num_resolutions") == 3 else 6
    model = case_model(name, channels, conditional, size=size, **overrides)
    x = random_images(model, batch, seed=1)
    known = torch.zeros_like(x, dtype=torch.bool)
    known[:, :, :2] = True  # completion: the first rows are given
    fused_calls = []
    owner, method = {
        "pixelcnn": (PixelCNNStepper, "_fused_step"),
        "gated_pixelcnn": (GatedPixelCNNStepper, "_fused_step"),
        "pixelcnnpp": (PixelCNNPPStepper, "_fused_step"),
        "row_lstm": (RowLSTMStepper, "fused_step"),
        "diagonal_bilstm": (DiagonalBiLSTMStepper, "fused_step"),
    }[name]
    original = getattr(owner, method)

    def counted(self: object, *args: object) -> object:
        if getattr(self, "fused", True):
            fused_calls.append(args)
        return original(self, *args)

    monkeypatch.setattr(owner, method, counted)
    runs = {}
    for setting in ("0", "1"):
        monkeypatch.setenv("PIXELRNN_NATIVE", setting)
        runs[setting] = recorded_generation(model, "cached", known, x)
        assert bool(fused_calls) == (setting == "1")  # the path under test ran
    python_params, (fused_images, fused_params) = runs["0"][1], runs["1"]
    assert torch.equal(fused_images[:, :, :2], x[:, :, :2])  # known pixels kept
    steps_per_pixel = 1 if model.distribution.joint_channels else channels
    given = 2 * model.image_shape[-1] * steps_per_pixel
    assert len(python_params) == len(fused_params) == draws_per_image(model) - given
    for a, b in zip(fused_params, python_params, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * float(b.abs().max()))
    model = model.double()
    images = {}
    for setting in ("0", "1"):
        monkeypatch.setenv("PIXELRNN_NATIVE", setting)
        images[setting] = recorded_generation(model, "cached", known, x)[0]
    assert torch.equal(images["0"], images["1"])


@pytest.mark.parametrize("name", sorted(COMPILED_FAMILIES))
def test_a_large_batch_draws_the_same_images_on_one_thread_or_two(name: str) -> None:
    """At 70 images the compiled steps run every layer as BLAS products and split the batch
    across two threads: the images are the same bit for bit as on one thread (float32: no
    image's arithmetic depends on the split) and the naive loop's (float64, same generator)."""
    threads = torch.get_num_threads()
    model = case_model(name, 3, False, size=5).eval()
    images = {}
    try:
        for count in (1, 2):
            torch.set_num_threads(count)
            for dtype in (torch.float32, torch.float64):
                generator = torch.Generator().manual_seed(5)
                images[count, dtype] = pixelrnn.sample(model.to(dtype), 70, generator=generator)
    finally:
        torch.set_num_threads(threads)
    with torch.no_grad():  # as the generation loop builds its steppers
        stepper = make_stepper(model, model.normalize(images[1, torch.float32]))
    assert stepper.fused == native_available()
    for dtype in (torch.float32, torch.float64):
        assert torch.equal(images[1, dtype], images[2, dtype])
    naive = pixelrnn.sample(model, 70, generator=torch.Generator().manual_seed(5), method="naive")
    assert torch.equal(images[1, torch.float64], naive)
