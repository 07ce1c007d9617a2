"""Diagonal Gaussian latents and the likelihood bounds of latent-variable models (PixelVAE,
Gulrajani et al. 2017; the importance-weighted bound of Burda et al. 2016).

A latent model gives no exact likelihood: ``log p(x) = log ∫ p(x | z) p(z) dz``. What it gives
are lower bounds on ``log p(x)`` — upper bounds on the NLL, and named so wherever they are
reported:

* the ELBO, ``E_q[log p(x | z)] − KL(q(z | x) ‖ p(z))``;
* the importance-weighted bound with ``K`` samples ``z_k ~ q(z | x)``,
  ``log (1/K) Σ_k p(x | z_k) p(z_k) / q(z_k | x)``, which is ≥ the ELBO in expectation and
  approaches ``log p(x)`` as ``K`` grows.

Shapes: a latent is flattened per image, ``mean`` and ``log_var`` ``(B, D)`` (a spatial latent
``(B, C, h, w)`` is flattened by the caller).
"""

from __future__ import annotations

import math

import torch

LOG_2PI = math.log(2 * math.pi)


def kl_per_entry(
    mean: torch.Tensor,
    log_var: torch.Tensor,
    prior_mean: torch.Tensor | None = None,
    prior_log_var: torch.Tensor | None = None,
) -> torch.Tensor:
    """``KL(N(mean, exp(log_var)) ‖ N(prior_mean, exp(prior_log_var)))`` in nats of every
    latent entry, closed form; the prior is ``N(0, 1)`` when its parameters are not given (a
    learned conditional prior, e.g. ``p(z_bottom | z_top)`` of a latent hierarchy, gives them).

    Shape:
        ``(B, ...)`` each → the same.
    """
    if prior_mean is None or prior_log_var is None:
        return 0.5 * (log_var.exp() + mean.square() - 1.0 - log_var)
    return 0.5 * (
        prior_log_var
        - log_var
        + (log_var.exp() + (mean - prior_mean).square()) / prior_log_var.exp()
        - 1.0
    )


def gaussian_log_density(
    z: torch.Tensor, mean: torch.Tensor, log_var: torch.Tensor
) -> torch.Tensor:
    """``log N(z; mean, exp(log_var))`` summed over the dimensions.

    Shape:
        ``z`` ``(..., B, D)``, mean and log_var ``(B, D)`` → ``(..., B)``.
    """
    return -0.5 * (LOG_2PI + log_var + (z - mean).square() / log_var.exp()).sum(dim=-1)


def standard_normal_log_density(z: torch.Tensor) -> torch.Tensor:
    """``log N(z; 0, I)`` summed over the dimensions. Shape: ``(..., D)`` → ``(...)``."""
    return -0.5 * (LOG_2PI + z.square()).sum(dim=-1)


def reparameterised_sample(
    mean: torch.Tensor,
    log_var: torch.Tensor,
    num_samples: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``z = mean + exp(log_var / 2) · ε``, ``ε ~ N(0, I)``: differentiable in the parameters.

    Shape:
        ``(B, D)`` each → ``(B, D)``, or ``(K, B, D)`` with ``num_samples = K``.
    """
    shape = mean.shape if num_samples is None else (num_samples, *mean.shape)
    noise = torch.randn(shape, generator=generator, dtype=mean.dtype, device=mean.device)
    return mean + (0.5 * log_var).exp() * noise


def importance_weighted_log_likelihood(
    log_likelihood: torch.Tensor, log_prior: torch.Tensor, log_posterior: torch.Tensor
) -> torch.Tensor:
    """The importance-weighted lower bound on ``log p(x)`` from ``K`` samples per image:
    ``logsumexp_k [log p(x | z_k) + log p(z_k) − log q(z_k | x)] − log K``.

    With ``K = 1`` it is a one-sample ELBO estimate. Its negative is an upper bound on the NLL.

    Shape:
        each ``(K, B)`` → ``(B,)``, in nats.
    """
    weights = log_likelihood + log_prior - log_posterior
    return torch.logsumexp(weights, dim=0) - math.log(weights.shape[0])


def active_units(
    mean_sum: torch.Tensor, mean_square_sum: torch.Tensor, count: int, threshold: float = 0.01
) -> int:
    """Latent dimensions whose posterior mean varies with the image: ``Var_x(E_q[z_d]) >
    threshold`` (Burda et al. 2016, §5.2), from the sums over ``count`` images of the means
    and of their squares (sums add across batches and processes).

    Shape:
        ``(D,)`` each → a count; the variance is the unbiased one.
    """
    if count < 2:
        raise ValueError(f"active units need the posterior means of >= 2 images, got {count}")
    variance = (mean_square_sum - mean_sum.square() / count) / (count - 1)
    return int((variance > threshold).sum())
