"""Benchmark-only model sizes, by name: models built at the size of a conventional
implementation or of a published measurement, for same-size comparisons.

``build(name)`` makes a preset or one of these.
"""

from __future__ import annotations

import pixelrnn

# Models built at the size of a conventional implementation, for same-size comparisons.
SAME_SIZE = {
    "gated-5x64-class": dict(
        model="gated_pixelcnn",
        image_shape=(1, 28, 28),
        num_levels=256,
        hidden_channels=64,
        num_layers=5,
        input_kernel_size=7,
        kernel_size=3,
        output_channels=512,
        num_classes=10,
    ),
    # a small PixelCNN++ (official defaults otherwise: dropout 0.5, weight norm)
    "pixelcnnpp-1x32-mix5": dict(
        model="pixelcnnpp",
        image_shape=(1, 28, 28),
        num_levels=256,
        nr_resnet=1,
        nr_filters=32,
        distribution="logistic_mixture:5",
        dropout=0.5,
    ),
    # a Multi-Scale PixelRNN with Gated PixelCNN stages the size of gated-pixelcnn-mnist:
    # the full-size stage reads a conditioning map (the upsampled small image) in every layer
    "multiscale-gated-mnist": dict(
        model="multiscale",
        image_shape=(1, 28, 28),
        num_levels=2,
        family="gated_pixelcnn",
        scale=2,
        hidden_channels=16,
        num_layers=15,
        output_channels=32,
        upsampling_channels=16,
    ),
    # the same on 32×32 colour images, 10 logistics (the official default)
    "pixelcnnpp-3x32": dict(
        model="pixelcnnpp",
        image_shape=(3, 32, 32),
        num_levels=256,
        nr_resnet=1,
        nr_filters=32,
        dropout=0.5,
    ),
}


def build(name: str) -> pixelrnn.AutoregressiveModel:
    """The preset ``name``, or the ``SAME_SIZE`` model of that name."""
    if name in SAME_SIZE:
        config = dict(SAME_SIZE[name])
        return pixelrnn.create_model(config.pop("model"), **config)
    return pixelrnn.create_model(preset=name)
