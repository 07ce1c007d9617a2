"""Data-dependent initialisation of weight-normalised layers (Salimans & Kingma 2016, §3;
PixelCNN++ §3.1: one pass over 16 training images).

Every weight-normalised convolution ``w = g·v/‖v‖`` gets ``v ~ N(0, 0.05²)`` and, from one
forward pass in execution order, ``g`` and the bias such that its outputs on the batch have
zero mean and standard deviation ``init_scale`` per channel (``init_scale`` is an attribute a
layer may set, 1 by default; PixelCNN++ uses 0.1 on the second convolution of a residual
branch). Later layers see the already normalised outputs of earlier ones.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn.utils import parametrize

V_INIT_STD = 0.05


def _weight_normalised(module: nn.Module) -> bool:
    return (
        isinstance(module, (nn.Conv2d, nn.ConvTranspose2d))
        and parametrize.is_parametrized(module, "weight")
        and module.bias is not None
    )


@torch.no_grad()
def data_dependent_init(model: nn.Module, forward: Callable[[], object], seed: int = 0) -> int:
    """Initialise every weight-normalised convolution of ``model`` from one forward pass.

    Args:
        model: the network (its dropout is switched off for the pass).
        forward: runs ``model`` on the initialisation batch.
        seed: seeds the draw of the directions ``v``.

    Returns:
        The number of layers initialised.
    """
    layers = [m for m in model.modules() if _weight_normalised(m)]
    generator = torch.Generator().manual_seed(seed)
    dim = {}
    for m in layers:
        weights = m.parametrizations.weight  # type: ignore[union-attr]
        v, g = weights.original1, weights.original0
        v.copy_(torch.randn(v.shape, generator=generator, dtype=v.dtype) * V_INIT_STD)
        g.fill_(1.0)
        m.bias.zero_()  # type: ignore[union-attr]
        dim[m] = 1 if isinstance(m, nn.ConvTranspose2d) else 0  # the output-channel axis of v

    def normalise(module: nn.Module, inputs: object, out: torch.Tensor) -> torch.Tensor:
        scale = getattr(module, "init_scale", 1.0)
        mean = out.mean(dim=(0, 2, 3))
        std = out.std(dim=(0, 2, 3), unbiased=False).clamp(min=1e-10)
        g = module.parametrizations.weight.original0  # type: ignore[union-attr]
        shape = [1] * g.dim()
        shape[dim[module]] = -1
        g.copy_((scale / std).reshape(shape))
        module.bias.copy_(-mean * scale / std)  # type: ignore[union-attr]
        return (out - mean[None, :, None, None]) * (scale / std)[None, :, None, None]

    handles = [m.register_forward_hook(normalise) for m in layers]
    was_training = model.training
    model.eval()
    try:
        forward()
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return len(layers)
