"""Training and evaluation: a model-agnostic loop over ``log_prob``."""

from pixelrnn.training.config import TrainConfig
from pixelrnn.training.evaluate import EvalResult, evaluate_nll
from pixelrnn.training.trainer import (
    Trainer,
    completion_grid_images,
    derive_seed,
    make_generator,
    occlusion_mask,
)

__all__ = [
    "EvalResult",
    "TrainConfig",
    "Trainer",
    "completion_grid_images",
    "derive_seed",
    "evaluate_nll",
    "make_generator",
    "occlusion_mask",
]
