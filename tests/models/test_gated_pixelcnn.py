"""Gated PixelCNN: causality with conditioning, no blind spot, labels threaded through the API."""

from __future__ import annotations

import pytest
import torch

import pixelrnn
from pixelrnn.nn import HorizontalStackConv, VerticalStackConv, gated_activation
from tests.helpers import (
    assert_causal,
    dependency_matrix,
    random_images,
    strictly_earlier,
    tiny_model,
)

CONDITIONINGS = [
    dict(num_classes=3),
    dict(num_classes=3, class_embedding_dim=4),
    dict(num_classes=3, spatial_conditioning=True, spatial_channels=2),
]


def gated(channels: int = 1, size: int = 5, **overrides: object) -> pixelrnn.AutoregressiveModel:
    levels = 2 if channels == 1 else 4
    return tiny_model(channels, levels, size=size, model="gated_pixelcnn", **overrides)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("conditioning", CONDITIONINGS, ids=["one-hot", "embedding", "spatial"])
def test_conditional_models_are_causal(channels: int, conditioning: dict) -> None:
    assert_causal(gated(channels, **conditioning))


def assert_full_context(model: pixelrnn.AutoregressiveModel) -> None:
    """Raise AssertionError unless every pixel's prediction depends on every earlier pixel
    (and, with colour, on the current pixel through its earlier channels) — and nothing else."""
    c, h, w = model.image_shape
    expected = strictly_earlier(h, w)
    if c > 1:
        expected |= torch.eye(h * w, dtype=torch.bool)
    measured = dependency_matrix(model)
    missing = (expected & ~measured).nonzero().tolist()
    assert not missing, f"{len(missing)} (pixel, earlier pixel) pairs unseen, e.g. {missing[:3]}"
    assert torch.equal(measured, expected)


@pytest.mark.parametrize("channels", [1, 3])
def test_gated_pixelcnn_has_no_blind_spot(channels: int) -> None:
    """8x8: the first layer reaches 3 columns, each 5x5 layer 2 more; 3 layers cover 7."""
    assert_full_context(gated(channels, size=8, num_layers=3, num_classes=2))


def test_the_same_test_finds_the_plain_pixelcnn_blind_spot() -> None:
    """Even with a receptive field taller than the image, the plain PixelCNN misses pixels up
    and to the right: the full-context check must fail on it."""
    model = tiny_model(1, 2, size=8, num_layers=6)
    with pytest.raises(AssertionError, match="unseen"):
        assert_full_context(model)


def test_too_few_layers_leave_pixels_out_of_reach() -> None:
    """The full context needs the documented depth: with one 7x7 layer, pixel (1, 0) does not
    see (0, 7), which lies 7 columns to the right."""
    model = gated(1, size=8, num_layers=1)
    matrix = dependency_matrix(model)
    assert not matrix[1 * 8 + 0, 0 * 8 + 7]
    assert matrix[1 * 8 + 0, 0 * 8 + 3]
    assert not (matrix & ~strictly_earlier(8, 8)).any()


def test_stack_convolutions_reach_what_they_claim() -> None:
    """Vertical: rows i-r..i, columns j-r..j+r. Horizontal: columns j-r..j of row i, with the
    colour rule at j. Probed with gradients on a 7x7 map, kernel 5 (r = 2)."""
    torch.manual_seed(0)
    vertical = VerticalStackConv(1, 1, 5)
    x = torch.randn(1, 1, 7, 7, requires_grad=True)
    vertical(x)[0, 0, 4, 3].backward()
    rows, cols = (x.grad[0, 0] != 0).nonzero().T
    assert set(rows.tolist()) == {2, 3, 4} and set(cols.tolist()) == {1, 2, 3, 4, 5}

    horizontal = HorizontalStackConv(3, 6, 5, "A", 3)
    x = torch.randn(1, 3, 7, 7, requires_grad=True)
    horizontal(x)[0, 2, 4, 3].backward()  # output channel 2 is in the G group (6 channels)
    seen = x.grad[0] != 0  # (3, 7, 7)
    assert seen[:, 4, 1:3].all() and not seen[:, 4, 4:].any() and not seen[:, :4].any()
    assert seen[0, 4, 3] and not seen[1:, 4, 3].any()  # G sees R of its own pixel, not G or B


def test_gated_activation() -> None:
    pre = torch.randn(2, 6, 3, 3)
    expected = torch.tanh(pre[:, :3]) * torch.sigmoid(pre[:, 3:])
    assert torch.equal(gated_activation(pre), expected)


def test_the_label_changes_the_likelihood_and_is_required() -> None:
    model = gated(1, size=6, num_classes=4)
    x = random_images(model, 3)
    scores = torch.stack([model.log_prob(x, y=torch.full((3,), k)) for k in range(4)])
    assert (scores[1:] != scores[:1]).all()
    with pytest.raises(ValueError, match="pass labels y"):
        model.log_prob(x)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\)"):
        model.log_prob(x, y=torch.tensor([0, 1, 4]))
    with pytest.raises(ValueError, match="one label per image"):
        model.log_prob(x, y=torch.tensor([0, 1]))
    with pytest.raises(TypeError, match="integer tensor"):
        model.log_prob(x, y=torch.zeros(3))
    with pytest.raises(ValueError, match="without conditioning"):
        gated(1, size=6).log_prob(x, y=torch.zeros(3, dtype=torch.long))


def test_conditional_sampling_and_completion_use_the_label() -> None:
    """One engine: labels reach every step of sampling and completion; same seed and label →
    same images; known pixels kept."""
    model = gated(1, size=5, num_classes=3, spatial_conditioning=True, spatial_channels=2)

    def draw(label: int) -> torch.Tensor:
        return pixelrnn.sample(model, 6, generator=torch.Generator().manual_seed(0), y=label)

    assert torch.equal(draw(1), draw(1))
    assert not torch.equal(draw(0), draw(2))
    x = random_images(model, 2)
    known = torch.zeros_like(x, dtype=torch.bool)
    known[..., :2, :] = True
    y = torch.tensor([0, 2])
    out = pixelrnn.complete(model, x, known, generator=torch.Generator().manual_seed(0), y=y)
    assert torch.equal(out[known], x[known])
    with pytest.raises(ValueError, match="pass labels y"):
        pixelrnn.complete(model, x, known)


def test_gate_biases_of_a_few_rows_are_those_rows_of_the_whole_map() -> None:
    """The cached sampler makes the gate biases one row at a time (labels, the spatial map of
    Eq. 5 and a conditioning map together)."""
    model = gated(
        3, num_classes=3, spatial_conditioning=True, spatial_channels=2, context_channels=2
    ).eval()
    y, context = torch.tensor([0, 2]), torch.randn(2, 2, 5, 5)
    whole = model.conditions(y, context)
    conditioning = model.conditioning(y, context)
    assert all(t.shape[-2:] == (5, 5) for t in whole)
    for rows in (slice(0, 1), slice(3, 4), slice(1, 5)):
        part = model.gate_biases(conditioning, rows)
        for k, (a, b) in enumerate(zip(part, whole, strict=True)):
            torch.testing.assert_close(a, b[:, :, rows], msg=f"layer {k}, rows {rows}")
    # a label alone stays one (B, 4p, 1, 1) bias per layer
    labels_only = gated(3, num_classes=3).eval()
    biases = labels_only.gate_biases(labels_only.conditioning(y), slice(2, 3))
    assert all(t.shape == (2, 4 * labels_only.config.hidden_channels, 1, 1) for t in biases)


def test_config_errors() -> None:
    with pytest.raises(ValueError, match="need num_classes"):
        pixelrnn.create_model("gated_pixelcnn", spatial_conditioning=True)
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        pixelrnn.create_model("gated_pixelcnn", kernel_size=4)


def test_paper_size_preset() -> None:
    cfg = pixelrnn.models.PRESETS["gated-pixelcnn-cifar10"].config
    assert (cfg["num_layers"], cfg["hidden_channels"], cfg["kernel_size"]) == (20, 384, 5)
    assert pixelrnn.models.PRESETS["gated-pixelcnn-cifar10-class"].config["num_classes"] == 10
    mnist = pixelrnn.models.PRESETS["gated-pixelcnn-mnist-class"]
    assert (mnist.dataset, mnist.binarize, mnist.config["num_classes"]) == ("mnist", "dynamic", 10)
