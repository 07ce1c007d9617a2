"""Sampling and completion of any model: one entry point over the naive and the cached loops.

:func:`sample` and :func:`complete` check their inputs and call :func:`generate`, which picks
the loop a :class:`GenerationRequest` names (conventions §6: one loop driven by an explicit
``known`` mask, in two forms tested to agree):

* ``"naive"`` — :func:`pixelrnn.sampling.naive.generate_naive`, the whole network per step: the
  reference;
* ``"cached"`` — :func:`pixelrnn.sampling.cached.generate_cached`, per-layer caches; a
  Multi-Scale PixelRNN runs it stage by stage (PixelRNN §3.4): the small image first, then the
  full image with the small image's pixels known, conditioned on it.

Both draw the same images from the same generator state.
"""

from __future__ import annotations

import torch

from pixelrnn.models.base import AutoregressiveModel
from pixelrnn.models.multiscale import MultiScalePixelRNN
from pixelrnn.models.pixelvae import PixelVAE
from pixelrnn.models.vqvae import VQVAE
from pixelrnn.sampling.cached import generate_cached
from pixelrnn.sampling.naive import generate_naive
from pixelrnn.sampling.request import GenerationRequest


def sample(
    model: AutoregressiveModel,
    n: int,
    *,
    generator: torch.Generator | None = None,
    temperature: float = 1.0,
    progress: bool = False,
    y: torch.Tensor | int | None = None,
    method: str = "cached",
) -> torch.Tensor:
    """Draw ``n`` images, one step of :func:`~pixelrnn.sampling.order.generation_order` at a
    time.

    Args:
        y: for a conditional model, the label of every image ``(n,)`` or one label for all.
        Others: as the fields of :class:`GenerationRequest`.

    Returns:
        ``(n, C, H, W)`` int64 in ``[0, K)``.
    """
    if n < 1:
        raise ValueError(f"n must be a positive number of images, got {n}")
    device = next(model.parameters()).device
    if isinstance(y, int):
        y = torch.full((n,), y, dtype=torch.long)
    model.check_labels(y, n)
    x = torch.zeros((n, *model.image_shape), dtype=torch.long, device=device)
    known = torch.zeros_like(x, dtype=torch.bool)
    request = GenerationRequest(
        generator=generator, temperature=temperature, progress=progress, y=y, method=method
    )
    return generate(model, x, known, request)


def complete(
    model: AutoregressiveModel,
    x: torch.Tensor,
    known: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    temperature: float = 1.0,
    progress: bool = False,
    y: torch.Tensor | None = None,
    method: str = "cached",
) -> torch.Tensor:
    """Fill the unknown sub-pixels of ``x`` from the model; known ones are kept exactly.

    Args:
        x: integer images ``(B, C, H, W)``; values where ``known`` is False are ignored.
        known: bool ``(B, C, H, W)``.
        Others: as the fields of :class:`GenerationRequest`.

    Returns:
        ``(B, C, H, W)`` int64.
    """
    if not isinstance(known, torch.Tensor) or known.dtype != torch.bool:
        raise TypeError("known must be a bool tensor")
    if not isinstance(x, torch.Tensor) or known.shape != x.shape:
        raise ValueError(
            f"known must have the shape of x {tuple(getattr(x, 'shape', ()))}, "
            f"got {tuple(known.shape)}"
        )
    x_known = torch.where(known, x, torch.zeros_like(x))
    model.check_images(x_known, "x")
    model.check_labels(y, x.shape[0])
    request = GenerationRequest(
        generator=generator, temperature=temperature, progress=progress, y=y, method=method
    )
    return generate(model, x_known.long(), known, request)


def generate(
    model: AutoregressiveModel, x: torch.Tensor, known: torch.Tensor, request: GenerationRequest
) -> torch.Tensor:
    """The generation behind :func:`sample` and :func:`complete`, on checked inputs.

    Shape:
        x int64 and known bool ``(B, C, H, W)`` → int64 ``(B, C, H, W)``.
    """
    if isinstance(model, PixelVAE):
        return _generate_given_latent(model, x, known, request)
    if isinstance(model, VQVAE):  # codes from the uniform prior (a learned one: two_stage)
        codes = [
            torch.randint(
                model.config.num_codes,
                (len(x), *shape),
                generator=request.generator,
                device=x.device,
            )
            for shape in model.code_shapes
        ]
        return generate_given_codes(model, codes, x, known, request)
    if request.method == "naive":
        return generate_naive(model, x, known, request)
    if isinstance(model, MultiScalePixelRNN):
        return _generate_stages(model, x, known, request)
    return generate_cached(model, x, known, request)


def _generate_stages(
    model: MultiScalePixelRNN, x: torch.Tensor, known: torch.Tensor, request: GenerationRequest
) -> torch.Tensor:
    """The small image first (completing its known pixels), then the full image with the
    small image's pixels known, conditioned on it."""
    small = generate(model.small_model, model.subsample(x), model.subsample(known), request)
    x = x.clone()
    k = model.config.scale
    x[:, :, ::k, ::k] = small
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            context = model.context(model.upsampler_input(small))
        with model.large_model.conditioned_on(context):
            return generate(model.large_model, x, known | model.small_positions(x), request)
    finally:
        model.train(was_training)


def _generate_given_latent(
    model: PixelVAE, x: torch.Tensor, known: torch.Tensor, request: GenerationRequest
) -> torch.Tensor:
    """A latent model: ``z`` from the prior (the first draws of the generator), then the decoder
    fills the image given it. Completion uses the same prior draw: the encoder is not valid on
    a partial image."""
    with torch.no_grad():
        z = model.prior_sample(len(x), request.generator)
    return generate_given_latent(model, z, x, known, request)


def generate_given_latent(
    model: PixelVAE,
    z: list[torch.Tensor],
    x: torch.Tensor,
    known: torch.Tensor,
    request: GenerationRequest,
) -> torch.Tensor:
    """Fill the unknown sub-pixels of ``x`` from ``p(x | z)``: the conditioning map of ``z``
    (one tensor per latent level, ``(B, *shape)``) computed once, then the decoder's cached
    (or naive) loop.

    Shape:
        x int64 and known bool ``(B, C, H, W)`` → int64 ``(B, C, H, W)``.
    """
    if request.step_values is not None:
        raise ValueError(
            "a latent model's images are not coded by their pixels alone (bits-back coding is "
            "not available yet)"
        )
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            given_z = model.given_latent(z)
        with given_z:
            return generate(model.decoder, x, known, request)
    finally:
        model.train(was_training)


def generate_given_codes(
    model: VQVAE,
    codes: list[torch.Tensor],
    x: torch.Tensor,
    known: torch.Tensor,
    request: GenerationRequest,
) -> torch.Tensor:
    """Fill the unknown sub-pixels of ``x`` from a VQ-VAE's ``p(x | z_q(codes))`` (sub-pixels
    independent given the codes: one decoder pass for the cached loop).

    Shape:
        codes int64 ``(B, h, w)`` per level, bottom first; x int64 and known bool
        ``(B, C, H, W)`` → int64 ``(B, C, H, W)``.
    """
    if request.step_values is not None:
        raise ValueError(
            "a VQ-VAE's images are not coded by their pixels alone: compress with the "
            "two-stage model"
        )
    was_training = model.training
    model.eval()
    try:
        with model.given_codes([level.to(x.device) for level in codes]):
            if request.method == "naive":
                return generate_naive(model, x, known, request)
            return generate_cached(model, x, known, request)
    finally:
        model.train(was_training)
