"""Model architectures, one file each, the registry that names them, and saving and loading."""

from pixelrnn.models.base import AutoregressiveModel, ModelConfig
from pixelrnn.models.gated_pixelcnn import GatedPixelCNN, GatedPixelCNNConfig
from pixelrnn.models.multiscale import MultiScaleConfig, MultiScalePixelRNN
from pixelrnn.models.persistence import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    find_pretrained_dir,
    load_pretrained,
    model_fingerprint,
    save_pretrained,
)
from pixelrnn.models.pixelcnn import PixelCNN, PixelCNNConfig
from pixelrnn.models.pixelcnn_pp import PixelCNNPP, PixelCNNPPConfig
from pixelrnn.models.pixelvae import PixelVAE, PixelVAEConfig
from pixelrnn.models.registry import (
    MODELS,
    PRESETS,
    Preset,
    available_models,
    available_presets,
    conditional_models,
    create_model,
    get_preset,
)

__all__ = [
    "CONFIG_NAME",
    "MODELS",
    "PRESETS",
    "WEIGHTS_NAME",
    "AutoregressiveModel",
    "GatedPixelCNN",
    "GatedPixelCNNConfig",
    "ModelConfig",
    "MultiScaleConfig",
    "MultiScalePixelRNN",
    "PixelCNN",
    "PixelCNNConfig",
    "PixelCNNPP",
    "PixelCNNPPConfig",
    "PixelVAE",
    "PixelVAEConfig",
    "Preset",
    "available_models",
    "available_presets",
    "conditional_models",
    "create_model",
    "find_pretrained_dir",
    "get_preset",
    "load_pretrained",
    "model_fingerprint",
    "save_pretrained",
]
