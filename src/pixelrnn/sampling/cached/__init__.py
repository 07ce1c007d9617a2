"""Cached (incremental) generation: per-layer caches instead of whole-network recomputation."""

from pixelrnn.sampling.cached.base import IncrementalStepper
from pixelrnn.sampling.cached.engine import generate_cached, has_stepper, make_stepper

__all__ = ["IncrementalStepper", "generate_cached", "has_stepper", "make_stepper"]
