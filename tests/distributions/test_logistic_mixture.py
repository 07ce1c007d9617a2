"""Discretized logistic mixture: normalisation (incl. extreme parameters), the joint RGB pixel,
the loss against a straightforward computation, sampling frequencies, models using it."""

from __future__ import annotations

import itertools

import pytest
import torch

from pixelrnn.distributions import DiscretizedLogisticMixture, logistic_mixture, make_distribution
from tests.helpers import assert_causal, tiny_model


def grey_params(components: int, means: torch.Tensor, log_scales: torch.Tensor) -> torch.Tensor:
    """``(N, 3M, 1, 1)`` for N parameter sets: random logits, the given means and log-scales."""
    n = len(means)
    logits = torch.randn(n, components, generator=torch.Generator().manual_seed(0))
    return torch.cat([logits, means, log_scales], dim=1)[:, :, None, None]


@pytest.mark.parametrize(
    ("mean", "log_scale"),
    [(0.0, -2.0), (-1.5, -7.0), (1.3, -9.0), (0.999, 3.0), (-0.2, -6.5), (0.5, 0.0)],
)
def test_256_values_sum_to_one_even_at_extreme_parameters(mean: float, log_scale: float) -> None:
    """Means beyond the range, scales below the clamp, very wide logistics: mass stays 1."""
    dist = DiscretizedLogisticMixture(256, num_components=3)
    means = torch.tensor([[mean, mean / 2, -mean]])
    params = grey_params(3, means, torch.full((1, 3), log_scale)).expand(256, -1, -1, -1)
    x = torch.arange(256).view(256, 1, 1, 1)
    total = torch.logsumexp(dist.log_prob(params, x).double().flatten(), 0).exp()
    assert abs(float(total) - 1.0) < 1e-4


def test_the_joint_rgb_pixel_normalises_on_a_reduced_grid() -> None:
    """8 levels per channel: the 512 pixel values of random coupled parameters sum to 1."""
    dist = DiscretizedLogisticMixture(8, num_components=4)
    params = torch.randn(1, 40, 1, 1, generator=torch.Generator().manual_seed(1)) * 1.5
    grid = torch.tensor(list(itertools.product(range(8), repeat=3))).view(512, 3, 1, 1)
    lp = dist.log_prob(params.expand(512, -1, -1, -1), grid)
    assert lp.shape == (512, 1, 1, 1)
    assert abs(float(torch.logsumexp(lp.double().flatten(), 0).exp()) - 1.0) < 1e-4


def straightforward_log_prob(params: torch.Tensor, x: torch.Tensor, levels: int) -> torch.Tensor:
    """Eq. 2 of PixelCNN++ with the channel coupling, written plainly in float64, per pixel."""
    params, m = params.double(), params.shape[1] // 10
    b, _, h, w = x.shape
    out = torch.empty(b, 1, h, w, dtype=torch.float64)
    for n, i, j in itertools.product(range(b), range(h), range(w)):
        p = params[n, :, i, j]
        logits, rest = p[:m], p[m:].view(3, 3 * m)
        v = x[n, :, i, j].double() * 2 / (levels - 1) - 1
        total = torch.zeros((), dtype=torch.float64)
        weights = torch.softmax(logits, 0)
        for k in range(m):
            prob = weights[k]
            for c in range(3):
                mean = rest[c, k]
                if c == 1:
                    mean = mean + torch.tanh(rest[0, 2 * m + k]) * v[0]
                if c == 2:
                    mean = mean + torch.tanh(rest[1, 2 * m + k]) * v[0]
                    mean = mean + torch.tanh(rest[2, 2 * m + k]) * v[1]
                s = torch.exp(rest[c, m + k].clamp(min=-7))
                half = 1 / (levels - 1)
                upper = (
                    1.0 if x[n, c, i, j] == levels - 1 else torch.sigmoid((v[c] + half - mean) / s)
                )
                lower = 0.0 if x[n, c, i, j] == 0 else torch.sigmoid((v[c] - half - mean) / s)
                prob = prob * (upper - lower)
            total = total + prob
        out[n, 0, i, j] = torch.log(total)
    return out


def test_the_loss_equals_a_straightforward_computation() -> None:
    g = torch.Generator().manual_seed(2)
    params = torch.randn(2, 50, 3, 3, generator=g)  # 5 components, moderate scales
    x = torch.randint(0, 256, (2, 3, 3, 3), generator=g)
    x[0, :, 0, 0] = torch.tensor([0, 255, 0])  # the edge bins
    dist = DiscretizedLogisticMixture(256, num_components=5)
    ours = dist.log_prob(params, x).double()
    torch.testing.assert_close(ours, straightforward_log_prob(params, x, 256), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("compiled", [False, True])
def test_sampling_follows_the_probabilities(
    compiled: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """20,000 draws of one RGB pixel on 4 levels: frequencies of the 64 values match exp(log p),
    for the PyTorch draw and the compiled one (``csrc/logistic_mixture_sample.cpp``)."""
    monkeypatch.setattr(logistic_mixture, "COMPILED_SAMPLE_MAX_PIXELS", 10**9 if compiled else 0)
    dist = DiscretizedLogisticMixture(4, num_components=2)
    params = torch.randn(1, 20, 1, 1, generator=torch.Generator().manual_seed(3))
    n = 20_000
    draws = dist.sample(params.expand(n, -1, -1, -1), torch.Generator().manual_seed(4))
    codes = (draws[:, 0] * 16 + draws[:, 1] * 4 + draws[:, 2]).flatten()
    freq = torch.bincount(codes, minlength=64).double() / n
    grid = torch.tensor(list(itertools.product(range(4), repeat=3))).view(64, 3, 1, 1)
    prob = dist.log_prob(params.expand(64, -1, -1, -1), grid).double().exp().flatten()
    assert (freq - prob).abs().max() < 0.015


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_the_compiled_draw_matches_the_pytorch_draw(channels: int, temperature: float) -> None:
    """One compiled call against the PyTorch operations, same generator, 5 components on 256
    levels, 20,000 pixels in batches of a generation step's size (and a 2x3 map): the same
    levels, but for log/exp/tanh rounding (one level, where a draw sits on a bin edge) in at
    most 0.1 % of draws. Wide and narrow scales, means beyond the range."""
    dist = DiscretizedLogisticMixture(256, num_components=5)
    gen = torch.Generator().manual_seed(11)
    compiled, reference = [], []
    for shape in [(16, 1, 1)] * 1250 + [(4, 2, 3)]:
        b, h, w = shape
        params = torch.randn(b, dist.num_params(channels), h, w, generator=gen) * 1.5
        seed = len(compiled)
        compiled.append(dist.sample(params, torch.Generator().manual_seed(seed), temperature))
        reference.append(
            dist._sample_reference(
                params, torch.Generator().manual_seed(seed), temperature, channels
            )
        )
    ours, theirs = (torch.cat([t.flatten() for t in ts]) for ts in (compiled, reference))
    assert ours.dtype == torch.long and ours.shape == theirs.shape
    differ = ours != theirs
    assert (ours - theirs).abs().max() <= 1
    assert differ.double().mean() <= 1e-3
    assert theirs.unique().numel() > 200  # the draws cover the levels


def test_names_and_sizes() -> None:
    assert make_distribution("logistic_mixture", 256).num_components == 10
    assert make_distribution("logistic_mixture:5", 256).num_params(3) == 50
    assert make_distribution("logistic_mixture:5", 256).num_params(1) == 15
    with pytest.raises(ValueError, match="takes a number of components"):
        make_distribution("logistic_mixture:x", 256)
    with pytest.raises(ValueError, match="1 or 3 channels"):
        make_distribution("logistic_mixture", 256).num_params(2)


@pytest.mark.parametrize("name", ["pixelcnn", "row_lstm", "diagonal_bilstm", "gated_pixelcnn"])
def test_every_network_takes_the_mixture_head_causally(name: str) -> None:
    """Whole-pixel parameters: with the mixture every network masks the whole current pixel
    (one colour group), so no parameter at a pixel sees any of its channels."""
    model = tiny_model(3, 8, size=4, model=name, distribution="logistic_mixture:2")
    assert model.mask_groups == 1
    assert_causal(model)
