"""The cached generation loop: the naive engine's order and draws, a stepper's parameters.

Same contract as :func:`pixelrnn.sampling.naive.generate_naive` — same order, same ``known`` mask,
same draws from the same generator — but each step asks a per-model
:class:`~pixelrnn.sampling.cached.base.IncrementalStepper` for the parameters at the new
position instead of re-running the network on the whole image. Tested against the naive loop
for every registered model.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator

import torch
from tqdm.auto import tqdm

from pixelrnn.models.base import AutoregressiveModel
from pixelrnn.sampling.cached.base import IncrementalStepper
from pixelrnn.sampling.cached.codes import CodeDecoderStepper
from pixelrnn.sampling.cached.gated import GatedPixelCNNStepper
from pixelrnn.sampling.cached.pixelcnn import PixelCNNStepper
from pixelrnn.sampling.cached.pixelcnn_pp import PixelCNNPPStepper
from pixelrnn.sampling.cached.pixelrnn import DiagonalBiLSTMStepper, RowLSTMStepper
from pixelrnn.sampling.order import generation_order
from pixelrnn.sampling.request import GenerationRequest, step_draw

# the models with a cached path, by registry name
STEPPERS: dict[str, Callable[..., IncrementalStepper]] = {
    "pixelcnn": PixelCNNStepper,
    "gated_pixelcnn": GatedPixelCNNStepper,
    "row_lstm": RowLSTMStepper,
    "diagonal_bilstm": DiagonalBiLSTMStepper,
    "pixelcnnpp": PixelCNNPPStepper,
    "vqvae": CodeDecoderStepper,
}


def has_stepper(model: AutoregressiveModel) -> bool:
    """Whether ``model`` has a cached generation path (a model generated stage by stage, such
    as the Multi-Scale PixelRNN, has one when every stage has; a latent model when its decoder
    has)."""
    stages = getattr(model, "stages", None)
    if stages is not None:
        return all(has_stepper(stage) for stage in stages)
    decoder = getattr(model, "decoder", None)  # a latent model generates with its decoder
    if isinstance(decoder, AutoregressiveModel):
        return has_stepper(decoder)
    return model.model_name in STEPPERS


def make_stepper(
    model: AutoregressiveModel, x: torch.Tensor, y: torch.Tensor | None = None
) -> IncrementalStepper:
    """A fresh stepper for ``model`` over the batch of normalised images ``x``."""
    if model.model_name not in STEPPERS:
        raise ValueError(
            f"{model.model_name} has no cached generation path yet; use method='naive' "
            f"(cached: {sorted(STEPPERS)})"
        )
    if y is None:
        return STEPPERS[model.model_name](model, x)
    return STEPPERS[model.model_name](model, x, y)


# Below this many images a generation runs on one intra-op thread: a compiled step splits the
# batch across threads in parts of at least 32 images (``kGemmMinBatch`` in
# ``native/csrc/cached_steps.h``), and for fewer images the per-row PyTorch operations only
# pay threading's synchronisation (measured on the 2-core CPU of docs/benchmarks.md with
# benchmarks/batch_sweep.py).
PARALLEL_MIN_BATCH = 64


@contextlib.contextmanager
def _threads_for(batch: int) -> Iterator[None]:
    """Run small generations on one intra-op thread; restore the setting afterwards."""
    before = torch.get_num_threads()
    if batch < PARALLEL_MIN_BATCH and before > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@torch.no_grad()
def generate_cached(
    model: AutoregressiveModel, x: torch.Tensor, known: torch.Tensor, request: GenerationRequest
) -> torch.Tensor:
    """Fill every entry of ``x`` where ``known`` is False, with per-layer caches.

    Args and result as :func:`pixelrnn.sampling.naive.generate_naive`; the same draws.
    """
    with _threads_for(len(x)):
        return _fill(model, x, known, request)


def _fill(
    model: AutoregressiveModel, x: torch.Tensor, known: torch.Tensor, request: GenerationRequest
) -> torch.Tensor:
    """The loop of :func:`generate_cached`: :func:`generation_order`'s steps, pixel by pixel."""
    was_training = model.training
    model.eval()
    x = x.clone()
    y = None if request.y is None else request.y.to(x.device)
    c, h, w = model.image_shape
    joint = model.distribution.joint_channels
    unknown = ~known
    # per sub-pixel: does any / every image need it drawn? (plain lists: no tensor ops per step)
    any_needed, all_needed = unknown.any(0).tolist(), unknown.all(0).tolist()  # [C][H][W]
    x_norm = model.normalize(x)  # (B, C · width, H, W): width features per sub-pixel
    encoding, width = model.input_encoding, model.input_encoding.width
    stepper = make_stepper(model, x_norm, y)
    # (H, W, B, C) views: a pixel's (B, C) entries by two selects (indexing x[:, part, i, j]
    # costs several times more, and this loop runs once per sub-pixel)
    pixels, pixels_norm = x.permute(2, 3, 0, 1), x_norm.permute(2, 3, 0, 1)
    batch = len(x)
    # a stepper goes in raster order, pixel by pixel: the order's steps grouped by pixel
    by_pixel = itertools.groupby(generation_order(model), key=lambda s: (s.row, s.col))
    try:
        for (i, j), steps in tqdm(
            by_pixel,
            total=h * w,
            disable=not request.progress,
            desc="sampling (cached)",
            unit="pixel",
        ):
            last_call = None  # the highest channel index the stepper has seen at this pixel
            pixel, pixel_norm = pixels[i][j], pixels_norm[i][j]  # (B, C) views
            for _, _, channels in steps:
                if not any(any_needed[ch][i][j] for ch in channels):
                    continue
                params = stepper.step(x_norm, i, j).reshape(batch, -1, 1, 1)  # (B, P, 1, 1)
                last_call = channels[-1]
                part = slice(channels[0], channels[-1] + 1)
                draw = step_draw(model, params, channels, request)  # (B, len(channels))
                whole_pixel = len(channels) == c  # one draw for every channel
                if not all(all_needed[ch][i][j] for ch in channels):
                    draw = torch.where(unknown[:, part, i, j], draw, x[:, part, i, j])
                features = encoding.values(draw, channels[0], x_norm.dtype)
                if whole_pixel:
                    pixel.copy_(draw)
                    pixel_norm.copy_(features)
                else:
                    pixel[:, part].copy_(draw)
                    pixel_norm[:, channels[0] * width : (channels[-1] + 1) * width].copy_(features)
            # The caches must hold this pixel's activations for its final values. Features at a
            # pixel never depend on its own last channel (mask A, then mask B), nor on a joint
            # pixel's channels, so a call that sampled the last channel already left them final.
            if last_call is None or (not joint and last_call < c - 1):
                stepper.step(x_norm, i, j)
            if j == w - 1 and request.on_row is not None:
                request.on_row(i, x)
    finally:
        model.train(was_training)
    return x
