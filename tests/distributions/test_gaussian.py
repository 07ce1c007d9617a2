"""Gaussian latents and likelihood bounds: closed-form KL against Monte Carlo, and the ELBO and
the importance-weighted bound against the exact log-likelihood of a toy latent model that
quadrature integrates (2-D latent, 2×2 binary images)."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from pixelrnn.distributions.gaussian import (
    active_units,
    gaussian_log_density,
    importance_weighted_log_likelihood,
    kl_per_entry,
    reparameterised_sample,
    standard_normal_log_density,
)


def test_closed_form_kl_equals_monte_carlo() -> None:
    """Against N(0, I), and against another diagonal Gaussian (a learned conditional prior)."""
    g = torch.Generator().manual_seed(0)
    mean, prior_mean = torch.randn(2, 3, 4, generator=g, dtype=torch.float64)
    log_var, prior_log_var = torch.randn(2, 3, 4, generator=g, dtype=torch.float64) * 0.5
    z = reparameterised_sample(mean, log_var, 200_000, g)  # (K, B, D)
    log_q = gaussian_log_density(z, mean, log_var)
    to_standard = (log_q - standard_normal_log_density(z)).mean(0)
    assert torch.allclose(to_standard, kl_per_entry(mean, log_var).sum(1), atol=0.02)
    to_prior = (log_q - gaussian_log_density(z, prior_mean, prior_log_var)).mean(0)
    closed_form = kl_per_entry(mean, log_var, prior_mean, prior_log_var).sum(1)
    assert torch.allclose(to_prior, closed_form, atol=0.03)
    zeros = torch.zeros_like(mean)
    assert torch.allclose(kl_per_entry(mean, log_var, zeros, zeros), kl_per_entry(mean, log_var))


def test_the_sample_is_differentiable_in_its_parameters() -> None:
    mean = torch.zeros(2, 3, requires_grad=True)
    log_var = torch.zeros(2, 3, requires_grad=True)
    reparameterised_sample(
        mean, log_var, generator=torch.Generator().manual_seed(0)
    ).sum().backward()
    assert mean.grad is not None and log_var.grad is not None and log_var.grad.abs().sum() > 0


class ToyModel:
    """p(z) = N(0, I₂); p(x | z) = Π_i Bernoulli(σ(w_i · z + b_i)) over 4 binary pixels."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        self.weight, self.bias = weight, bias  # (4, 2), (4,)

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``log p(x | z)``; x ``(B, 4)``, z ``(..., B, 2)`` → ``(..., B)``."""
        logits, target = torch.broadcast_tensors(z @ self.weight.T + self.bias, x)
        return -F.binary_cross_entropy_with_logits(logits, target, reduction="none").sum(-1)

    def exact_log_likelihood(self, x: torch.Tensor, points: int = 80) -> torch.Tensor:
        """``log ∫ p(x | z) N(z; 0, I) dz`` by Gauss–Hermite quadrature (probabilists')."""
        nodes, weights = np.polynomial.hermite_e.hermegauss(points)
        nodes = torch.tensor(nodes, dtype=torch.float64)
        log_w = torch.tensor(np.log(weights / math.sqrt(2 * math.pi)), dtype=torch.float64)
        z = torch.stack(torch.meshgrid(nodes, nodes, indexing="ij"), -1).reshape(-1, 1, 2)
        log_weight = (log_w[:, None] + log_w[None, :]).reshape(-1, 1)
        return torch.logsumexp(self.log_likelihood(x, z) + log_weight, dim=0)


def _toy() -> tuple[ToyModel, torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    model = ToyModel(
        torch.randn(4, 2, generator=g, dtype=torch.float64) * 2,
        torch.randn(4, generator=g, dtype=torch.float64),
    )
    x = torch.tensor([[1, 0, 1, 1], [0, 0, 1, 0], [1, 1, 1, 1]], dtype=torch.float64)
    mean = torch.tensor([[0.3, -0.2], [-0.5, 0.1], [0.8, 0.4]], dtype=torch.float64)
    log_var = torch.full((3, 2), -1.0, dtype=torch.float64)  # a q that is not the posterior
    return model, x, mean, log_var


def _bound(model, x, mean, log_var, k: int, g: torch.Generator) -> torch.Tensor:
    z = reparameterised_sample(mean, log_var, k, g)  # (K, B, 2)
    return importance_weighted_log_likelihood(
        model.log_likelihood(x, z),
        standard_normal_log_density(z),
        gaussian_log_density(z, mean, log_var),
    )


def test_bounds_approach_the_exact_likelihood_from_below() -> None:
    model, x, mean, log_var = _toy()
    exact = model.exact_log_likelihood(x)
    every_image = torch.tensor(
        [[(k >> i) & 1 for i in range(4)] for k in range(16)], dtype=torch.float64
    )
    total = model.exact_log_likelihood(every_image).exp().sum()
    assert torch.allclose(total, torch.tensor(1.0, dtype=torch.float64))  # the quadrature is exact
    g = torch.Generator().manual_seed(0)
    # the ELBO: Monte Carlo reconstruction term minus the closed-form KL
    z = reparameterised_sample(mean, log_var, 100_000, g)
    elbo = model.log_likelihood(x, z).mean(0) - kl_per_entry(mean, log_var).sum(1)
    # each bound averaged over 4,000 independent estimates (standard error below 0.02 nats)
    means = {
        k: torch.stack([_bound(model, x, mean, log_var, k, g) for _ in range(4000)]).mean(0)
        for k in (1, 10, 100)
    }
    assert torch.allclose(means[1], elbo, atol=0.08)  # one sample: the ELBO in expectation
    assert (elbo < exact).all()
    assert (means[1] < means[10]).all() and (means[10] < means[100]).all()
    assert (means[100] <= exact + 1e-3).all()
    large = _bound(model, x, mean, log_var, 200_000, g)
    assert torch.allclose(large, exact, atol=0.03)


def test_prior_as_encoder_and_a_decoder_that_ignores_z_give_the_exact_likelihood() -> None:
    model, x, _, _ = _toy()
    model.weight.zero_()  # p(x | z) = p(x): the latent is ignored
    exact = model.exact_log_likelihood(x)
    assert torch.allclose(
        exact,
        -F.binary_cross_entropy_with_logits(model.bias.expand_as(x), x, reduction="none").sum(-1),
    )
    zeros = torch.zeros(3, 2, dtype=torch.float64)  # q(z | x) = p(z)
    g = torch.Generator().manual_seed(1)
    assert torch.equal(kl_per_entry(zeros, zeros).sum(1), torch.zeros(3, dtype=torch.float64))
    for k in (1, 7):
        assert torch.allclose(_bound(model, x, zeros, zeros, k, g), exact)


def test_active_units_count_dimensions_that_vary_with_the_image() -> None:
    g = torch.Generator().manual_seed(0)
    mean = torch.zeros(100, 5)
    mean[:, :2] = torch.randn(100, 2, generator=g)
    mean[:, 2] = 1e-3 * torch.randn(100, generator=g)
    sums = mean.double().sum(0), mean.double().square().sum(0)
    assert active_units(*sums, 100) == 2
    variance = mean.double().var(0)  # the sums give torch's unbiased variance
    for threshold in (*variance.tolist(), 0.5, 2.0):
        expected = int((variance > threshold * (1 + 1e-9)).sum())
        assert active_units(*sums, 100, threshold=threshold * (1 + 1e-9)) == expected
