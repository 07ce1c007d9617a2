"""Causality through the whole network, for every registered model (conventions §8).

Changing any sub-pixel must never change the predicted distribution (nor the log-probability)
of any earlier sub-pixel — raster order, then R→G→B — nor anything of another image in the
batch; and it must change some later one. Models run in float64 with random weights, so "no
change" is checked exactly.
"""

from __future__ import annotations

import pytest
import torch

import pixelrnn
from pixelrnn.models import PRESETS
from pixelrnn.nn import causal_mask
from tests.helpers import assert_causal, earlier_pixels, pixel_dependencies, tiny_model, tiny_preset

# every autoregressive model (a VQ-VAE's sub-pixels are independent given its codes:
# tests/models/test_vqvae.py)
AUTOREGRESSIVE = [
    n for n in pixelrnn.available_models() if pixelrnn.models.MODELS[n].autoregressive
]
CASES = [(name, c) for name in AUTOREGRESSIVE for c in (1, 3)]


def test_every_model_has_a_tiny_preset() -> None:
    for name in pixelrnn.available_models():
        assert tiny_preset(name) in PRESETS, f"register {tiny_preset(name)} for the shared tests"


@pytest.mark.parametrize(("name", "channels"), CASES)
def test_no_influence_from_later_sub_pixels(name: str, channels: int) -> None:
    model = tiny_model(channels, 2 if channels == 1 else 4, size=5, model=name)
    assert_causal(model)


@pytest.mark.parametrize("channels", [1, 3])
def test_the_causality_check_can_fail(channels: int) -> None:
    """A first layer with mask B lets a sub-pixel see itself: the check must catch it."""
    model = tiny_model(channels, 2 if channels == 1 else 4, size=5)
    conv = model.input_conv
    conv.mask.copy_(
        causal_mask(conv.in_channels, conv.out_channels, conv.kernel_size, "B", channels)
    )
    with pytest.raises(AssertionError, match="changed with input"):
        assert_causal(model)


def blind_spot_field(model: pixelrnn.AutoregressiveModel, row: int, col: int) -> torch.Tensor:
    """Analytic receptive field of a PixelCNN output, propagated layer by layer with the image's
    bounds (zero padding carries no dependency). bool ``(H, W)``."""
    cfg = model.config
    _, h, w = cfg.image_shape

    def taps(k: int, centre: bool) -> list[tuple[int, int]]:
        r = k // 2
        out = [(di, dj) for di in range(-r, 0) for dj in range(-r, r + 1)]
        return out + [(0, dj) for dj in range(-r, 0)] + ([(0, 0)] if centre else [])

    frontier = torch.zeros(h, w, dtype=torch.bool)
    frontier[row, col] = True
    layers = [taps(cfg.kernel_size, True)] * cfg.num_layers + [taps(cfg.input_kernel_size, False)]
    for layer in layers:
        nxt = torch.zeros_like(frontier)
        for i, j in frontier.nonzero().tolist():
            for di, dj in layer:
                if 0 <= i + di < h and 0 <= j + dj < w:
                    nxt[i + di, j + dj] = True
        frontier = nxt
    return frontier


def test_pixelcnn_receptive_field_is_the_documented_one_with_its_blind_spot() -> None:
    model = tiny_model(1, 2, size=8, num_layers=3, input_kernel_size=5)
    blind_spots = 0
    for row, col in [(4, 1), (7, 7), (5, 3), (0, 4)]:
        measured = pixel_dependencies(model, row, col)
        expected = blind_spot_field(model, row, col)
        assert torch.equal(measured, expected), f"receptive field at {(row, col)}"
        assert not (measured & ~earlier_pixels(8, 8, row, col)).any()
        blind_spots += int((earlier_pixels(8, 8, row, col) & ~measured).sum())
    # the plain PixelCNN never sees the pixels up and to the right beyond its cone
    assert blind_spots > 0
    assert not blind_spot_field(model, 4, 1)[3, 5]
