"""Multi-Scale PixelRNN: a proper distribution, small-image-first causality, stage-wise
generation that never changes the small image."""

from __future__ import annotations

import itertools

import pytest
import torch

import pixelrnn
from pixelrnn.models import MultiScalePixelRNN
from pixelrnn.models.multiscale import FAMILIES
from pixelrnn.sampling import generation_order, generation_rank, raster_order
from tests.helpers import assert_causal, random_images


def multiscale(
    family: str, channels: int = 1, size: int = 2, levels: int = 2, **overrides: object
) -> MultiScalePixelRNN:
    torch.manual_seed(0)
    config = dict(hidden_channels=3 * channels, num_layers=2, output_channels=6 * channels)
    model = pixelrnn.create_model(
        "multiscale",
        image_shape=(channels, size, size),
        num_levels=levels,
        family=family,
        upsampling_channels=3,
        **{**config, **overrides},
    )
    assert isinstance(model, MultiScalePixelRNN)
    return model.double().eval()


def every_image(channels: int, size: int) -> torch.Tensor:
    """All binary images of the shape. ``(2^D, C, H, W)``."""
    d = channels * size * size
    bits = torch.tensor(list(itertools.product([0, 1], repeat=d)))
    return bits.reshape(-1, channels, size, size)


@pytest.mark.parametrize("family", FAMILIES)
def test_the_probabilities_of_every_2x2_binary_image_sum_to_one(family: str) -> None:
    """s = 1: the first stage scores pixel (0, 0), the second the other three given it."""
    model = multiscale(family)
    with torch.no_grad():
        total = model.log_prob(every_image(1, 2)).exp().sum()
    assert total.item() == pytest.approx(1.0, abs=1e-6)  # log-probabilities are float32


@pytest.mark.parametrize(
    ("channels", "size", "overrides"),
    [(3, 2, {}), (1, 4, {"num_scales": 3}), (1, 3, {})],
    ids=["rgb-2x2", "three-scales-4x4", "odd-3x3"],
)
def test_colour_three_scales_and_odd_sizes_normalise(
    channels: int, size: int, overrides: dict
) -> None:
    model = multiscale("pixelcnn", channels, size, **overrides)
    with torch.no_grad():
        total = model.log_prob(every_image(channels, size)).exp().sum()
    assert total.item() == pytest.approx(1.0, abs=1e-6)


def test_the_likelihood_is_the_sum_of_the_stages() -> None:
    """log p(x) = log p1(small) + the second stage's log-probabilities off the small pixels."""
    model = multiscale("gated_pixelcnn", 3, 6, levels=4)
    x = random_images(model, 3)
    small = model.subsample(x)
    with torch.no_grad():
        context = model.context(model.normalize(small))
        with model.large_model.conditioned_on(context):
            large = model.large_model.log_prob(x, reduction="none")
        expected = model.small_model.log_prob(small) + large.masked_fill(
            model.small_positions(x), 0
        ).flatten(1).sum(1)
        torch.testing.assert_close(model.log_prob(x), expected, rtol=1e-6, atol=1e-4)


@pytest.mark.parametrize("family", FAMILIES)
def test_causal_in_its_order_and_the_order_matters(family: str) -> None:
    """The conditional stage sees the small image everywhere and the large one causally. In
    plain raster order the model is not causal: a small pixel (2, 2) shapes pixel (0, 1)."""
    model = multiscale(family, 1, 5)
    assert_causal(model)
    raster = torch.arange(model.num_dims).reshape(5, 5, 1).permute(2, 0, 1)
    with pytest.raises(AssertionError, match="changed with input"):
        assert_causal(model, rank=raster)


def test_generation_ranks() -> None:
    base = pixelrnn.create_model(preset="pixelcnn-tiny", image_shape=(3, 3, 4), num_levels=4)
    rank = generation_rank(base)
    for c, i, j in itertools.product(range(3), range(3), range(4)):
        assert rank[c, i, j] == (i * 4 + j) * 3 + c  # raster, then R→G→B
    assert generation_order(base) == raster_order((3, 3, 4), joint_channels=False)
    model = multiscale("pixelcnn", 1, 4, num_scales=3)
    rank = generation_rank(model)[0]
    assert sorted(rank.flatten().tolist()) == list(range(16))
    assert rank[0, 0] == 0 and rank[0, 2] == 1 and rank[2, 0] == 2 and rank[2, 2] == 3
    assert rank[0, 1] == 4 and rank[3, 3] == 15  # then raster order over the rest


@pytest.mark.parametrize("method", ["naive", "cached"])
def test_sampling_draws_the_small_image_first_and_keeps_it(method: str) -> None:
    model = multiscale("pixelcnn", 1, 6)
    images = pixelrnn.sample(model, 3, generator=torch.Generator().manual_seed(1), method=method)
    small = pixelrnn.sample(
        model.small_model, 3, generator=torch.Generator().manual_seed(1), method=method
    )
    assert torch.equal(model.subsample(images), small)
    # completion: the known pixels (among them some of the small image) are kept exactly
    x = random_images(model, 3, seed=2)
    known = torch.rand(x.shape, generator=torch.Generator().manual_seed(3)) < 0.4
    out = pixelrnn.complete(
        model, x, known, generator=torch.Generator().manual_seed(4), method=method
    )
    assert torch.equal(out[known], x[known])


@pytest.mark.parametrize("family", FAMILIES)
def test_cached_sampling_matches_the_naive_loop(family: str) -> None:
    """Every stage family reads the upsampled small image through its conditioning map; the
    cached steppers make those terms one row at a time. The full-size stage's distribution
    parameters at every draw agree (float64), and so do the images."""
    model = multiscale(family, 3, 6, levels=4).double()
    stage = model.large_model
    runs = {}
    for method in ("naive", "cached"):
        params: list[torch.Tensor] = []
        draw = stage.distribution.sample

        def recording(p: torch.Tensor, generator, temperature, draw=draw, params=params):
            params.append(p.clone())
            return draw(p, generator, temperature)

        stage.distribution.sample = recording  # type: ignore[method-assign]
        try:
            images = pixelrnn.sample(
                model, 3, generator=torch.Generator().manual_seed(5), method=method
            )
        finally:
            del stage.distribution.sample
        runs[method] = images, params
    (naive, naive_params), (cached, cached_params) = runs["naive"], runs["cached"]
    assert torch.equal(naive, cached)
    assert len(naive_params) == len(cached_params) > 0
    for a, b in zip(cached_params, naive_params, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


def test_config_errors() -> None:
    with pytest.raises(ValueError, match="family"):
        multiscale("pixelcnnpp")
    with pytest.raises(ValueError, match="scale"):
        multiscale("pixelcnn", scale=1)
    with pytest.raises(ValueError, match="context_channels"):
        multiscale("pixelcnn", context_channels=2)
    with pytest.raises(ValueError, match="conditioned_on"):
        pixelrnn.create_model(preset="pixelcnn-tiny", context_channels=2)(
            torch.zeros(1, 1, 8, 8, dtype=torch.long)
        )


def test_presets() -> None:
    mnist = pixelrnn.create_model(preset="multiscale-pixelcnn-mnist")
    assert mnist.config.small_shape() == (1, 14, 14)
    assert mnist.large_model.image_shape == (1, 28, 28)
    cifar = pixelrnn.models.get_preset("multiscale-row-lstm-cifar10").config
    assert (cifar["family"], cifar["num_layers"], cifar["hidden_channels"]) == ("row_lstm", 12, 128)
