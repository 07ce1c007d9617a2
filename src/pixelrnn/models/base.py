"""The one model contract (conventions §4): networks return distribution parameters.

Every model is an :class:`AutoregressiveModel` built from one frozen, validated config
dataclass. Subclasses implement :meth:`AutoregressiveModel.network` only; likelihoods come from
the output distribution, sampling and completion from :mod:`pixelrnn.sampling`, and bits/dim
from :func:`pixelrnn.units.bits_per_dim`.
"""

from __future__ import annotations

import abc
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import torch
from torch import nn

from pixelrnn.config_io import DictConfig
from pixelrnn.distributions import DISTRIBUTIONS, OutputDistribution, make_distribution


@dataclass(frozen=True)
class ModelConfig(DictConfig):
    """Fields every model shares.

    Attributes:
        image_shape: ``(C, H, W)`` of the images the model scores and generates.
        num_levels: number of discrete values per sub-pixel ``K`` (2 for binary, 256 for 8-bit).
        distribution: output distribution name; ``"auto"`` picks Bernoulli for ``K = 2`` and a
            ``K``-way categorical otherwise.
    """

    image_shape: tuple[int, int, int] = (1, 28, 28)
    num_levels: int = 2
    distribution: str = "auto"

    def __post_init__(self) -> None:
        shape = tuple(int(s) for s in self.image_shape)
        object.__setattr__(self, "image_shape", shape)
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"image_shape must be (C, H, W) with positive sizes, got {shape}")
        if self.num_levels < 2:
            raise ValueError(f"num_levels must be at least 2, got {self.num_levels}")
        if self.distribution != "auto" and self.distribution not in DISTRIBUTIONS:
            raise ValueError(
                f"unknown distribution {self.distribution!r}; "
                f"choose 'auto' or one of {sorted(DISTRIBUTIONS)}"
            )
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.type in ("int", int) and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{f.name} must be a positive integer, got {value!r}")

    def require_odd(self, *names: str) -> None:
        """Raise unless the named (kernel size) fields are odd."""
        for name in names:
            if getattr(self, name) % 2 == 0:
                raise ValueError(f"{name} must be odd, got {getattr(self, name)}")

    def require_width_per_colour(self) -> None:
        """Raise unless ``hidden_channels`` gives every colour group at least one feature map."""
        width = self.hidden_channels  # type: ignore[attr-defined]  # defined by subclasses
        channels = self.image_shape[0]
        if width < channels:
            raise ValueError(
                f"hidden_channels ({width}) must be at least the number of image channels "
                f"({channels}) so every colour group has feature maps"
            )


class AutoregressiveModel(nn.Module, abc.ABC):
    """Base class of every registered model.

    Subclasses set ``model_name`` and ``config_class`` and implement :meth:`network`.
    """

    model_name: ClassVar[str]
    config_class: ClassVar[type[ModelConfig]]

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__} needs a {self.config_class.__name__}")
        self.config = config
        self.distribution: OutputDistribution = make_distribution(
            config.distribution, config.num_levels
        )

    # --- properties -----------------------------------------------------------------------
    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.config.image_shape

    @property
    def num_levels(self) -> int:
        return self.config.num_levels

    @property
    def num_dims(self) -> int:
        """``D = C · H · W``, the number of sub-pixels of one image."""
        c, h, w = self.image_shape
        return c * h * w

    @property
    def num_params_out(self) -> int:
        """Number of distribution-parameter maps the network emits."""
        return self.distribution.num_params(self.image_shape[0])

    # --- the network ------------------------------------------------------------------------
    @abc.abstractmethod
    def network(self, x: torch.Tensor) -> torch.Tensor:
        """Map a normalised image to distribution parameters.

        Shape:
            x ``(B, C, H, W)`` float in ``[-1, 1]`` → ``(B, P, H, W)``.
        """

    def check_images(self, x: torch.Tensor, name: str = "x") -> None:
        """Raise a clear error unless ``x`` is an integer batch of this model's images."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.dtype.is_floating_point or x.dtype == torch.bool or x.is_complex():
            raise TypeError(
                f"{name} must hold integer pixel values in [0, {self.num_levels}), "
                f"got dtype {x.dtype}"
            )
        if x.dim() != 4 or tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(
                f"{name} must have shape (B, {', '.join(map(str, self.image_shape))}), "
                f"got {tuple(x.shape)}"
            )
        if x.numel() and (int(x.min()) < 0 or int(x.max()) >= self.num_levels):
            raise ValueError(
                f"{name} values must lie in [0, {self.num_levels}), "
                f"got min {int(x.min())}, max {int(x.max())}"
            )

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Scale integer levels ``[0, K)`` to floats in ``[-1, 1]`` (PixelRNN §5.2: centring)."""
        dtype = next(self.parameters()).dtype
        return x.to(dtype) * (2.0 / (self.num_levels - 1)) - 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Distribution parameters for every position.

        Shape:
            x integer ``(B, C, H, W)`` → ``(B, P, H, W)``.
        """
        self.check_images(x)
        return self.network(self.normalize(x))

    # --- likelihood ---------------------------------------------------------------------------
    def log_prob(self, x: torch.Tensor, reduction: Literal["sum", "none"] = "sum") -> torch.Tensor:
        """Exact log-likelihood in nats.

        Args:
            x: integer images ``(B, C, H, W)`` in ``[0, K)``.
            reduction: ``"sum"`` for nats per image, ``"none"`` for nats per sub-pixel.

        Returns:
            ``(B,)`` with ``"sum"``; ``(B, C, H, W)`` with ``"none"`` (``(B, 1, H, W)`` for
            distributions that score a whole pixel jointly).
        """
        if reduction not in ("sum", "none"):
            raise ValueError(f"reduction must be 'sum' or 'none', got {reduction!r}")
        per_dim = self.distribution.log_prob(self(x), x)
        if reduction == "none":
            return per_dim
        return per_dim.flatten(1).sum(1)

    # --- generation ---------------------------------------------------------------------------
    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
        progress: bool = False,
    ) -> torch.Tensor:
        """Draw ``n`` images, one sub-pixel at a time (raster order, then R→G→B).

        Returns:
            ``(n, C, H, W)`` int64 in ``[0, K)``.
        """
        from pixelrnn.sampling import generate

        if n < 1:
            raise ValueError(f"n must be a positive number of images, got {n}")
        device = next(self.parameters()).device
        x = torch.zeros((n, *self.image_shape), dtype=torch.long, device=device)
        known = torch.zeros_like(x, dtype=torch.bool)
        return generate(self, x, known, generator, temperature, progress)

    def complete(
        self,
        x: torch.Tensor,
        known: torch.Tensor,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
        progress: bool = False,
    ) -> torch.Tensor:
        """Fill the unknown sub-pixels of ``x`` from the model; known ones are kept exactly.

        Args:
            x: integer images ``(B, C, H, W)``; values where ``known`` is False are ignored.
            known: bool ``(B, C, H, W)``.

        Returns:
            ``(B, C, H, W)`` int64.
        """
        from pixelrnn.sampling import generate

        if not isinstance(known, torch.Tensor) or known.dtype != torch.bool:
            raise TypeError("known must be a bool tensor")
        if known.shape != x.shape:
            raise ValueError(
                f"known must have the shape of x {tuple(x.shape)}, got {tuple(known.shape)}"
            )
        x_known = torch.where(known, x, torch.zeros_like(x))
        self.check_images(x_known, "x")
        return generate(self, x_known.long(), known, generator, temperature, progress)

    # --- persistence ----------------------------------------------------------------------------
    def save_pretrained(self, path: str | Path) -> None:
        """Write ``config.json`` and ``model.safetensors`` into the folder ``path``."""
        from pixelrnn.checkpoint import save_pretrained

        save_pretrained(self, path)

    def extra_repr(self) -> str:
        n = sum(p.numel() for p in self.parameters())
        return f"config={self.config}, num_parameters={n}"
