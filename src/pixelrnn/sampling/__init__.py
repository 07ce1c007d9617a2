"""Sampling and completion: one loop driven by an explicit ``known`` mask, in two forms — the
naive reference (:func:`generate`, whole network per step) and the cached fast path
(:func:`generate_cached`, per-layer caches), tested to agree."""

from pixelrnn.sampling.cached import generate_cached
from pixelrnn.sampling.engine import generate
from pixelrnn.sampling.grid import sample_grid
from pixelrnn.sampling.ordering import generation_steps, sub_pixel_index

__all__ = ["generate", "generate_cached", "generation_steps", "sample_grid", "sub_pixel_index"]
