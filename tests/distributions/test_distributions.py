"""Output distributions: normalisation, exact uniform values, sampling, bad input."""

from __future__ import annotations

import math

import pytest
import torch

from pixelrnn.distributions import Bernoulli, Categorical, make_distribution


@pytest.mark.parametrize("levels", [2, 4, 256])
def test_categorical_normalises(levels: int) -> None:
    dist = Categorical(levels)
    params = torch.randn(2, 3 * levels, 4, 4) * 5
    total = torch.zeros(2, 3, 4, 4, dtype=torch.float64)
    for k in range(levels):
        x = torch.full((2, 3, 4, 4), k, dtype=torch.long)
        total += dist.log_prob(params, x).double().exp()
    torch.testing.assert_close(total, torch.ones_like(total), rtol=0, atol=1e-5)


def test_bernoulli_normalises_even_for_large_logits() -> None:
    dist = Bernoulli()
    params = torch.tensor([-80.0, -3.0, 0.0, 2.5, 90.0]).reshape(1, 1, 1, 5)
    p0 = dist.log_prob(params, torch.zeros(1, 1, 1, 5, dtype=torch.long)).double().exp()
    p1 = dist.log_prob(params, torch.ones(1, 1, 1, 5, dtype=torch.long)).double().exp()
    torch.testing.assert_close(p0 + p1, torch.ones_like(p0), rtol=0, atol=1e-6)
    assert torch.isfinite(dist.log_prob(params, torch.ones(1, 1, 1, 5, dtype=torch.long))).all()


def test_uniform_parameters_give_exact_uniform_log_prob() -> None:
    x2 = torch.randint(0, 2, (3, 1, 4, 4))
    x256 = torch.randint(0, 256, (3, 3, 4, 4))
    lp2 = Bernoulli().log_prob(torch.zeros(3, 1, 4, 4), x2)
    lp256 = Categorical(256).log_prob(torch.zeros(3, 768, 4, 4), x256)
    torch.testing.assert_close(lp2, torch.full_like(lp2, -math.log(2)), rtol=1e-7, atol=0)
    torch.testing.assert_close(lp256, torch.full_like(lp256, -math.log(256)), rtol=1e-7, atol=0)


def test_categorical_layout_is_grouped_by_channel() -> None:
    # Put all mass of channel c on value c+1: the layout is [R logits | G logits | B logits].
    levels = 4
    params = torch.full((1, 3 * levels, 1, 1), -50.0)
    for c in range(3):
        params[0, c * levels + c + 1] = 50.0
    draw = Categorical(levels).sample(params, torch.Generator().manual_seed(0))
    assert draw.flatten().tolist() == [1, 2, 3]


@pytest.mark.parametrize("dist", [Bernoulli(), Categorical(5)])
def test_seeded_sampling_is_reproducible_and_in_range(dist) -> None:
    params = torch.randn(4, dist.num_params(3), 6, 6)
    a = dist.sample(params, torch.Generator().manual_seed(7))
    b = dist.sample(params, torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    assert a.dtype == torch.long and a.shape == (4, 3, 6, 6)
    assert int(a.min()) >= 0 and int(a.max()) < dist.num_levels


def test_sampling_frequencies_match_probabilities() -> None:
    dist = Categorical(3)
    logits = torch.log(torch.tensor([0.2, 0.5, 0.3]))
    params = logits.reshape(1, 3, 1, 1).expand(20000, 3, 1, 1)
    draw = dist.sample(params, torch.Generator().manual_seed(0)).flatten()
    freq = torch.bincount(draw, minlength=3).double() / draw.numel()
    torch.testing.assert_close(
        freq, torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64), atol=0.015, rtol=0
    )


def test_temperature_sharpens() -> None:
    dist = Bernoulli()
    params = torch.full((20000, 1, 1, 1), 1.0)  # p(1) = 0.73 at T = 1
    cold = dist.sample(params, torch.Generator().manual_seed(0), temperature=0.1).float().mean()
    warm = dist.sample(params, torch.Generator().manual_seed(0), temperature=1.0).float().mean()
    assert cold > 0.99 and 0.70 < warm < 0.76
    with pytest.raises(ValueError, match="temperature"):
        dist.sample(params, temperature=0.0)


def test_bad_input() -> None:
    with pytest.raises(TypeError, match="integer"):
        Bernoulli().log_prob(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2))
    with pytest.raises(ValueError, match="num_levels == 2"):
        Bernoulli(4)
    with pytest.raises(ValueError, match="unknown distribution"):
        make_distribution("gaussian", 2)
    assert isinstance(make_distribution("auto", 2), Bernoulli)
    assert isinstance(make_distribution("auto", 256), Categorical)
