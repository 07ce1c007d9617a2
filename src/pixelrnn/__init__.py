"""pixelrnn: autoregressive image models of the PixelRNN family.

Public API::

    import pixelrnn
    pixelrnn.available_models(); pixelrnn.available_presets()
    m = pixelrnn.create_model("pixelcnn", image_shape=(1, 28, 28), num_levels=2)
    m = pixelrnn.create_model(preset="pixelcnn-mnist")
    m.log_prob(x)                      # (B,) nats per image
    m.sample(16); m.complete(x, known)
    m.save_pretrained("run"); pixelrnn.load_pretrained("run")
    pixelrnn.bits_per_dim(nats_per_image, num_dims)
"""

from pixelrnn.checkpoint import load_pretrained
from pixelrnn.models import (
    AutoregressiveModel,
    available_models,
    available_presets,
    create_model,
)
from pixelrnn.units import bits_per_dim
from pixelrnn.version import __version__

__all__ = [
    "AutoregressiveModel",
    "__version__",
    "available_models",
    "available_presets",
    "bits_per_dim",
    "create_model",
    "load_pretrained",
]
