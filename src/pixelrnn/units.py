"""Likelihood units (PixelRNN §5.1). The one place where nats become bits per dimension."""

from __future__ import annotations

import math

import torch


def bits_per_dim(nats_per_image: float | torch.Tensor, num_dims: int) -> float | torch.Tensor:
    """Convert a negative log-likelihood in nats per image to bits per dimension.

    ``bits/dim = NLL_nats / (D · ln 2)``, where ``D = C · H · W`` is the number of sub-pixels.
    A uniform model over 256 levels gives exactly 8 bits/dim, over 2 levels exactly 1.

    Args:
        nats_per_image: NLL in nats per image (positive), a float or a tensor of any shape.
        num_dims: ``D``, the number of sub-pixels of one image.

    Returns:
        Bits per dimension, same type and shape as ``nats_per_image``.
    """
    if num_dims <= 0:
        raise ValueError(f"num_dims must be positive, got {num_dims}")
    return nats_per_image / (num_dims * math.log(2.0))
