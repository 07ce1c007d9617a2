"""Sizes that cannot fit: refused with an estimate before anything is allocated.

A model is first built on PyTorch's ``meta`` device (shapes without storage), so a config asking
for a 10⁵×10⁵ image or a million hidden channels is measured, not allocated. The estimate is a
floor: the parameters, plus the distribution parameters the network emits for one image.
"""

from __future__ import annotations

import os

import torch

from pixelrnn.models.base import AutoregressiveModel, ModelConfig

BYTES_PER_VALUE = 4  # float32


def machine_memory_bytes() -> int:
    """Physical memory of this machine."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def minimum_bytes(model_class: type[AutoregressiveModel], config: ModelConfig) -> tuple[int, int]:
    """Bytes of the parameters and of one image's distribution parameters."""
    with torch.device("meta"):
        model = model_class(config)
    values = sum(t.numel() for t in model.state_dict().values())
    c, h, w = config.image_shape
    output = model.distribution.num_params(c) * h * w
    return values * BYTES_PER_VALUE, output * BYTES_PER_VALUE


def check_fits_memory(
    model_class: type[AutoregressiveModel], config: ModelConfig, source: str
) -> None:
    """Refuse a config whose model cannot fit in this machine's memory, with the estimate.

    Raises:
        ValueError: naming ``source``, the estimate and the machine's memory.
    """
    weights, output = minimum_bytes(model_class, config)
    available = machine_memory_bytes()
    if weights + output > available:
        c, h, w = config.image_shape
        raise ValueError(
            f"{source}: this model needs at least {(weights + output) / 1e9:,.1f} GB "
            f"({weights / 1e9:,.1f} GB of weights, {output / 1e9:,.1f} GB of outputs for one "
            f"{c}x{h}x{w} image); this machine has {available / 1e9:,.1f} GB"
        )
