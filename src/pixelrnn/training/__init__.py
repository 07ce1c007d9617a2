"""Training and evaluation: a model-agnostic loop over ``log_prob``."""

from pixelrnn.training.config import TrainConfig
from pixelrnn.training.evaluate import EvalResult, evaluate_nll
from pixelrnn.training.run_dir import RunDirectory
from pixelrnn.training.seeding import derive_seed, make_generator
from pixelrnn.training.trainer import Trainer, TrainingDivergedError

__all__ = [
    "EvalResult",
    "RunDirectory",
    "TrainConfig",
    "Trainer",
    "TrainingDivergedError",
    "derive_seed",
    "evaluate_nll",
    "make_generator",
]
