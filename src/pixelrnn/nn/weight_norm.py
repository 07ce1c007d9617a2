"""Weight normalisation (Salimans & Kingma 2016, §2; PixelCNN++ §2.6 uses it on every layer):
``w = g · v / ‖v‖``, one norm per output filter.

Registered through :func:`torch.nn.utils.parametrize.register_parametrization` with the same
layout as :func:`torch.nn.utils.parametrizations.weight_norm` (``parametrizations.weight``'s
``original0`` is ``g``, ``original1`` is ``v``), so checkpoints are interchangeable. Only the
norm is written here, as plain tensor operations: PyTorch's fused ``torch._weight_norm``
kernel is float32-precise on CUDA even for float64 tensors (measured on an H100, torch 2.11:
7.5e-9 from ``g·v/‖v‖`` in float64, where the CPU kernel is within 3e-17), which made the
float64 GPU and CPU networks differ far beyond float64 rounding.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize


class _WeightNorm(nn.Module):
    """The parametrization ``(g, v) ↦ g · v / ‖v‖``, the norm over every axis but ``dim``.

    ``v``: the weight's shape, e.g. ``(out, in, kH, kW)`` for a convolution (``dim = 0``) or
    ``(in, out, kH, kW)`` for a transposed one (``dim = 1``); ``g``: ``v``'s shape with every
    axis but ``dim`` of size 1.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def _norm(self, v: torch.Tensor) -> torch.Tensor:
        axes = [a for a in range(v.dim()) if a != self.dim % v.dim()]
        return torch.linalg.vector_norm(v, dim=axes, keepdim=True)

    def forward(self, g: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return v * (g / self._norm(v))

    def right_inverse(self, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(g, v)`` for a given weight: ``v = w`` and ``g = ‖w‖``, so that ``w`` is kept."""
        return self._norm(weight), weight


def weight_norm(module: nn.Module, dim: int = 0) -> nn.Module:
    """Reparametrise ``module.weight`` as ``g · v / ‖v‖`` (norm per index of axis ``dim``, the
    output channels: 0 for ``Conv2d``, 1 for ``ConvTranspose2d``); returns ``module``."""
    parametrize.register_parametrization(module, "weight", _WeightNorm(dim), unsafe=True)
    return module


__all__ = ["weight_norm"]
