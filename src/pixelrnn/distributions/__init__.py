"""Output distributions: interpret network outputs as probabilities over pixel values."""

from __future__ import annotations

from pixelrnn.distributions.base import OutputDistribution
from pixelrnn.distributions.bernoulli import Bernoulli
from pixelrnn.distributions.categorical import Categorical
from pixelrnn.distributions.logistic_mixture import DiscretizedLogisticMixture

DISTRIBUTIONS: dict[str, type[OutputDistribution]] = {
    Bernoulli.name: Bernoulli,
    Categorical.name: Categorical,
    DiscretizedLogisticMixture.name: DiscretizedLogisticMixture,
}


def make_distribution(name: str, num_levels: int) -> OutputDistribution:
    """Build an output distribution by name.

    ``"auto"`` is Bernoulli for 2 levels and a K-way categorical otherwise;
    ``"logistic_mixture:M"`` is a mixture of ``M`` logistics (plain ``"logistic_mixture"``: 10).
    """
    base, _, components = name.partition(":")
    if base == DiscretizedLogisticMixture.name:
        if components and not components.isdigit():
            raise ValueError(f"logistic_mixture:M takes a number of components, got {name!r}")
        return DiscretizedLogisticMixture(num_levels, int(components or 10))
    if name == "auto":
        name = "bernoulli" if num_levels == 2 else "categorical"
    if name not in DISTRIBUTIONS:
        raise ValueError(f"unknown distribution {name!r}; choose from {sorted(DISTRIBUTIONS)}")
    return DISTRIBUTIONS[name](num_levels)


__all__ = [
    "DISTRIBUTIONS",
    "Bernoulli",
    "Categorical",
    "DiscretizedLogisticMixture",
    "OutputDistribution",
    "make_distribution",
]
