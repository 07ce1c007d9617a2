"""Output distributions: interpret network outputs as probabilities over pixel values."""

from __future__ import annotations

from pixelrnn.distributions.base import OutputDistribution
from pixelrnn.distributions.bernoulli import Bernoulli
from pixelrnn.distributions.categorical import Categorical

DISTRIBUTIONS: dict[str, type[OutputDistribution]] = {
    Bernoulli.name: Bernoulli,
    Categorical.name: Categorical,
}


def make_distribution(name: str, num_levels: int) -> OutputDistribution:
    """Build an output distribution by name.

    ``"auto"`` is Bernoulli for 2 levels and a K-way categorical otherwise.
    """
    if name == "auto":
        name = "bernoulli" if num_levels == 2 else "categorical"
    if name not in DISTRIBUTIONS:
        raise ValueError(f"unknown distribution {name!r}; choose from {sorted(DISTRIBUTIONS)}")
    return DISTRIBUTIONS[name](num_levels)


__all__ = ["DISTRIBUTIONS", "Bernoulli", "Categorical", "OutputDistribution", "make_distribution"]
