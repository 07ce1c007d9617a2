"""Model architectures, one file each, and the registry that names them."""

from pixelrnn.models.base import AutoregressiveModel, ModelConfig
from pixelrnn.models.gated_pixelcnn import GatedPixelCNN, GatedPixelCNNConfig
from pixelrnn.models.multiscale import MultiScaleConfig, MultiScalePixelRNN
from pixelrnn.models.pixelcnn import PixelCNN, PixelCNNConfig
from pixelrnn.models.pixelcnn_pp import PixelCNNPP, PixelCNNPPConfig
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
    "MODELS",
    "PRESETS",
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
    "Preset",
    "available_models",
    "available_presets",
    "conditional_models",
    "create_model",
    "get_preset",
]
