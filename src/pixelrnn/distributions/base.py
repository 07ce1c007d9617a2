"""The contract every output distribution implements (conventions §5).

A network emits a tensor of distribution parameters, ``(B, P, H, W)``; an output distribution
interprets it. Distributions own the parameter layout, the log-likelihood and sampling; networks
never compute probabilities and never sample.
"""

from __future__ import annotations

import abc

import torch


class OutputDistribution(abc.ABC):
    """Interprets a network's ``(B, P, H, W)`` output as a distribution over ``(B, C, H, W)``.

    Attributes:
        name: registry name, written to ``config.json``.
        num_levels: number of discrete values per sub-pixel, ``K``.
        joint_channels: ``True`` if the distribution scores and samples all channels of a pixel
            at once (one network evaluation per pixel), ``False`` if every sub-pixel has its own
            conditional (R, then G, then B: one network evaluation per sub-pixel).
    """

    name: str
    joint_channels: bool = False

    def __init__(self, num_levels: int) -> None:
        if num_levels < 2:
            raise ValueError(f"num_levels must be at least 2, got {num_levels}")
        self.num_levels = num_levels

    @abc.abstractmethod
    def num_params(self, num_channels: int) -> int:
        """Number of parameter maps ``P`` the network must emit for ``num_channels`` channels."""

    @abc.abstractmethod
    def log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Log-probability in nats of every sub-pixel (or pixel, for joint distributions).

        Shape:
            params ``(B, P, H, W)``, x integer ``(B, C, H, W)`` →
            ``(B, C, H, W)`` float32, or ``(B, 1, H, W)`` when ``joint_channels``.
        """

    @abc.abstractmethod
    def sample(
        self,
        params: torch.Tensor,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
    ) -> torch.Tensor:
        """Draw integer values for every sub-pixel from its conditional.

        Shape:
            params ``(B, P, H, W)`` → ``(B, C, H, W)`` int64 in ``[0, num_levels)``.
        """

    @abc.abstractmethod
    def level_probabilities(
        self, params: torch.Tensor, channel: int, earlier: torch.Tensor
    ) -> torch.Tensor:
        """The probability of every level of one pixel's sub-pixel ``channel``, in float64:
        what an entropy coder needs, one sub-pixel at a time.

        Args:
            params: the pixel's parameters ``(B, P)`` (one generation step's).
            channel: the sub-pixel's channel.
            earlier: the pixel's values of the channels before ``channel`` that the same
                step codes, int64 ``(B, n)``: all ``channel`` of them for a distribution joint
                over a pixel (it conditions on them); none for one whose steps are single
                sub-pixels (``params`` already conditions on them).

        Returns:
            ``(B, K)`` float64, each row summing to 1.
        """

    def _check_x(self, x: torch.Tensor) -> None:
        if x.dtype.is_floating_point or x.dtype == torch.bool:
            raise TypeError(f"x must be an integer tensor, got dtype {x.dtype}")


def check_temperature(temperature: float) -> None:
    """Reject temperatures that do not define a distribution."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
