"""Sampling and completion, above the models: one entry point (:func:`sample`,
:func:`complete`) over one generation order and two loops — the naive reference
(:func:`generate_naive`, whole network per step) and the cached fast path
(:func:`generate_cached`, per-layer caches), tested to agree."""

from pixelrnn.sampling.cached import generate_cached, has_stepper
from pixelrnn.sampling.completion import OCCLUSIONS, completion_grid_images, occlusion_mask
from pixelrnn.sampling.generation import complete, generate, sample
from pixelrnn.sampling.grid import sample_grid
from pixelrnn.sampling.naive import generate_naive
from pixelrnn.sampling.order import Step, generation_order, generation_rank, raster_order
from pixelrnn.sampling.request import SAMPLING_METHODS, GenerationRequest

__all__ = [
    "OCCLUSIONS",
    "SAMPLING_METHODS",
    "GenerationRequest",
    "Step",
    "complete",
    "completion_grid_images",
    "generate",
    "generate_cached",
    "generate_naive",
    "generation_order",
    "generation_rank",
    "has_stepper",
    "occlusion_mask",
    "raster_order",
    "sample",
    "sample_grid",
]
