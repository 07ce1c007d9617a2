"""Likelihood units: bits/dim = nats / (D ln 2); uniform models give exactly 1 and 8 bits/dim."""

from __future__ import annotations

import math

import pytest
import torch

import pixelrnn
from pixelrnn.data import ImageDataset
from pixelrnn.training import evaluate_nll
from tests.helpers import tiny_model


def test_bits_per_dim_formula() -> None:
    assert pixelrnn.bits_per_dim(784 * math.log(2), 784) == pytest.approx(1.0, abs=1e-15)
    assert pixelrnn.bits_per_dim(6388.06, 3072) == pytest.approx(3.0, abs=1e-4)  # PixelRNN §5.1
    assert pixelrnn.bits_per_dim(79.20, 784) == pytest.approx(0.1457, abs=1e-4)
    t = pixelrnn.bits_per_dim(torch.tensor([0.0, 2 * math.log(2)]), 2)
    assert t.tolist() == pytest.approx([0.0, 1.0])
    with pytest.raises(ValueError):
        pixelrnn.bits_per_dim(1.0, 0)


def make_uniform(model: pixelrnn.AutoregressiveModel) -> pixelrnn.AutoregressiveModel:
    """Zero the last layer: every logit is 0, so every sub-pixel is uniform."""
    with torch.no_grad():
        model.output.weight.zero_()
        model.output.bias.zero_()
    return model


@pytest.mark.parametrize(
    ("channels", "levels", "expected"), [(1, 2, 1.0), (3, 256, 8.0), (1, 256, 8.0)]
)
def test_uniform_model_gives_exact_bits_per_dim(
    channels: int, levels: int, expected: float
) -> None:
    model = make_uniform(tiny_model(channels, levels, size=6, hidden_channels=6))
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, levels, (37, channels, 6, 6), generator=g).to(torch.uint8)
    data = ImageDataset("synthetic", "test", images, None, levels)
    result = evaluate_nll(model, data, batch_size=8)  # 37 = 4 full batches + a partial one
    assert result.num_images == 37
    assert result.bits_per_dim == pytest.approx(expected, abs=5e-7)
    assert f"{result.bits_per_dim:.3f}" == f"{expected:.3f}"
    assert result.nats_per_image == pytest.approx(channels * 36 * math.log(levels), rel=1e-6)
