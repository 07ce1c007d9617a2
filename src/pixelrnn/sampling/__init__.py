"""Sampling and completion: one engine driven by an explicit ``known`` mask."""

from pixelrnn.sampling.engine import generate
from pixelrnn.sampling.ordering import generation_steps, sub_pixel_index

__all__ = ["generate", "generation_steps", "sub_pixel_index"]
