"""Figures of a latent model (PixelVAE, Gulrajani et al. 2017 §4): reconstructions, latent
interpolations, and the three grids of a latent hierarchy.

In a grid, what a row shares and what changes along it:

* ``vary-top`` — the bottom level's noise and the pixel-level noise are shared; the top latent
  changes from column to column (a one-level model's only latent is its top);
* ``vary-bottom`` — the top latent and the pixel-level noise are shared; the bottom level's
  noise changes (two-level models only);
* ``vary-noise`` — every latent is shared; only the pixel-level noise changes.

"Pixel-level noise" is the random stream of the decoder's sampler: a row shares it by decoding
each column from a generator with the same seed, so two images of a row differ only through the
latents that changed.
"""

from __future__ import annotations

import torch

from pixelrnn.models.pixelvae import PixelVAE
from pixelrnn.sampling.generation import generate_given_latent
from pixelrnn.sampling.request import GenerationRequest

LATENT_GRIDS = ("vary-top", "vary-bottom", "vary-noise")


def decode(
    model: PixelVAE,
    z: list[torch.Tensor],
    generator: torch.Generator | None = None,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Images drawn from ``p(x | z)`` with the cached sampler. Shape: latents ``(B, ...)`` per
    level → int64 ``(B, C, H, W)``."""
    n = len(z[0])
    device = z[0].device
    x = torch.zeros((n, *model.image_shape), dtype=torch.long, device=device)
    request = GenerationRequest(generator=generator, temperature=temperature)
    return generate_given_latent(model, z, x, torch.zeros_like(x, dtype=torch.bool), request)


def latent_grid(
    model: PixelVAE,
    kind: str,
    rows: int,
    columns: int,
    generator: torch.Generator,
    temperature: float = 1.0,
) -> torch.Tensor:
    """One of :data:`LATENT_GRIDS` (see the module docstring).

    Returns:
        int64 images ``(rows · columns, C, H, W)``, row by row.
    """
    if kind not in LATENT_GRIDS:
        raise ValueError(f"grid must be one of {', '.join(LATENT_GRIDS)}, got {kind!r}")
    levels = len(model.latent_shapes)
    if kind == "vary-bottom" and levels == 1:
        raise ValueError(
            "vary-bottom needs a two-level PixelVAE (top_latent_dim); this one has one latent "
            "level: use vary-top or vary-noise"
        )
    if rows < 1 or columns < 1:
        raise ValueError(f"a grid needs >= 1 row and column, got {rows}x{columns}")
    varied = {"vary-top": levels - 1, "vary-bottom": 0, "vary-noise": None}[kind]
    with torch.no_grad():
        shared = model.prior_noise(rows, generator)
        pixel_seed = int(torch.randint(2**62, (1,), generator=generator))
        images = []
        for column in range(columns):
            noise = list(shared)
            if varied is not None:
                noise[varied] = model.prior_noise(rows, generator)[varied]
            seed = pixel_seed + column if varied is None else pixel_seed
            pixels = torch.Generator(device=shared[0].device).manual_seed(seed)
            z = model.latents_from_noise(noise)
            images.append(decode(model, z, pixels, temperature))
    return torch.stack(images, dim=1).flatten(0, 1)  # (rows, columns, ...) row by row


def reconstructions(
    model: PixelVAE, x: torch.Tensor, repeats: int, generator: torch.Generator
) -> torch.Tensor:
    """The images ``x`` ``(B, C, H, W)``, then ``repeats`` rows of draws from ``p(x | z)`` at the
    posterior means ``z = E_q[z | x]``: ``(B · (1 + repeats), C, H, W)``, row by row."""
    with torch.no_grad():
        z = [mean for mean, _ in model.encode(x)]
        rows = [x.long()] + [decode(model, z, generator) for _ in range(repeats)]
    return torch.cat(rows)


def interpolations(
    model: PixelVAE,
    start: torch.Tensor,
    end: torch.Tensor,
    steps: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """Rows from each image of ``start`` to the one of ``end`` (both ``(B, C, H, W)``): the first
    image, ``steps`` decodings of the posterior means mixed linearly (``t = 0 … 1``, every level),
    the last image. A row shares its pixel-level noise.

    Returns:
        int64 ``(B · (steps + 2), C, H, W)``, row by row.
    """
    if steps < 2:
        raise ValueError(f"an interpolation needs >= 2 steps, got {steps}")
    with torch.no_grad():
        a = [mean for mean, _ in model.encode(start)]
        b = [mean for mean, _ in model.encode(end)]
        seed = int(torch.randint(2**62, (1,), generator=generator))
        columns = [start.long()]
        for t in torch.linspace(0, 1, steps).tolist():
            z = [(1 - t) * za + t * zb for za, zb in zip(a, b, strict=True)]
            pixels = torch.Generator(device=start.device).manual_seed(seed)
            columns.append(decode(model, z, pixels))
        columns.append(end.long())
    return torch.stack(columns, dim=1).flatten(0, 1)
