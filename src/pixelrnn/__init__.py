"""pixelrnn: autoregressive image models of the PixelRNN family.

Public API::

    import pixelrnn
    pixelrnn.available_models(); pixelrnn.available_presets()
    m = pixelrnn.create_model("pixelcnn", image_shape=(1, 28, 28), num_levels=2)
    m = pixelrnn.create_model(preset="pixelcnn-mnist")
    m.log_prob(x)                      # (B,) nats per image
    pixelrnn.sample(m, 16); pixelrnn.complete(m, x, known)
    pixelrnn.save_pretrained(m, "run"); pixelrnn.load_pretrained("run")
    pixelrnn.bits_per_dim(nats_per_image, num_dims)
    data = pixelrnn.compress(m, x); pixelrnn.decompress(m, data)   # lossless, exact
"""

from pixelrnn.compression import compress, decompress
from pixelrnn.models import (
    AutoregressiveModel,
    available_models,
    available_presets,
    create_model,
    load_pretrained,
    save_pretrained,
)
from pixelrnn.sampling import GenerationRequest, complete, sample
from pixelrnn.units import bits_per_dim
from pixelrnn.version import __version__

__all__ = [
    "AutoregressiveModel",
    "GenerationRequest",
    "__version__",
    "available_models",
    "available_presets",
    "bits_per_dim",
    "complete",
    "compress",
    "create_model",
    "decompress",
    "load_pretrained",
    "sample",
    "save_pretrained",
]
