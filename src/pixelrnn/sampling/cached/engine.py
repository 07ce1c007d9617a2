"""The cached generation loop: the naive engine's order and draws, a stepper's parameters.

Same contract as :func:`pixelrnn.sampling.engine.generate` — same order, same ``known`` mask,
same draws from the same generator — but each step asks a per-model
:class:`~pixelrnn.sampling.cached.base.IncrementalStepper` for the parameters at the new
position instead of re-running the network on the whole image. Tested against the naive loop
for every registered model.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from tqdm.auto import tqdm

from pixelrnn.models.base import AutoregressiveModel
from pixelrnn.sampling.cached.base import IncrementalStepper


def _factories() -> dict[str, Callable[..., IncrementalStepper]]:
    from pixelrnn.sampling.cached.gated import GatedPixelCNNStepper
    from pixelrnn.sampling.cached.pixelcnn import PixelCNNStepper
    from pixelrnn.sampling.cached.pixelcnn_pp import PixelCNNPPStepper
    from pixelrnn.sampling.cached.pixelrnn import DiagonalBiLSTMStepper, RowLSTMStepper

    return {
        "pixelcnn": PixelCNNStepper,
        "gated_pixelcnn": GatedPixelCNNStepper,
        "row_lstm": RowLSTMStepper,
        "diagonal_bilstm": DiagonalBiLSTMStepper,
        "pixelcnnpp": PixelCNNPPStepper,
    }


def has_stepper(model: AutoregressiveModel) -> bool:
    """Whether ``model`` has a cached generation path (a model generated stage by stage, such
    as the Multi-Scale PixelRNN, has one when every stage has)."""
    stages = getattr(model, "stages", None)
    if stages is not None:
        return all(has_stepper(stage) for stage in stages)
    return model.model_name in _factories()


def make_stepper(
    model: AutoregressiveModel, x: torch.Tensor, y: torch.Tensor | None = None
) -> IncrementalStepper:
    """A fresh stepper for ``model`` over the batch of normalised images ``x``."""
    factories = _factories()
    if model.model_name not in factories:
        raise ValueError(
            f"{model.model_name} has no cached generation path yet; use method='naive' "
            f"(cached: {sorted(factories)})"
        )
    if y is None:
        return factories[model.model_name](model, x)
    return factories[model.model_name](model, x, y)


# Below this many multiply-adds per step (parameters × images, roughly), one intra-op thread is
# faster: the steps are hundreds of tiny operations and threading only adds synchronisation
# (measured on the 2-core CPU of docs/benchmarks.md: 1.2–1.6× faster for the MNIST presets at
# batch 16, equal at 64).
SINGLE_THREAD_WORK = 50_000_000


@contextlib.contextmanager
def _threads_for(model: AutoregressiveModel, batch: int) -> Iterator[None]:
    """Run small generations on one intra-op thread; restore the setting afterwards."""
    before = torch.get_num_threads()
    work = batch * sum(p.numel() for p in model.parameters())
    if work < SINGLE_THREAD_WORK and before > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@torch.no_grad()
def generate_cached(
    model: AutoregressiveModel,
    x: torch.Tensor,
    known: torch.Tensor,
    generator: torch.Generator | None = None,
    temperature: float = 1.0,
    progress: bool = False,
    y: torch.Tensor | None = None,
) -> torch.Tensor:
    """Fill every entry of ``x`` where ``known`` is False, with per-layer caches.

    Args and result as :func:`pixelrnn.sampling.engine.generate`.
    """
    with _threads_for(model, len(x)):
        return _fill(model, x, known, generator, temperature, progress, y)


def _fill(
    model: AutoregressiveModel,
    x: torch.Tensor,
    known: torch.Tensor,
    generator: torch.Generator | None,
    temperature: float,
    progress: bool,
    y: torch.Tensor | None,
) -> torch.Tensor:
    """The loop of :func:`generate_cached`."""
    was_training = model.training
    model.eval()
    x = x.clone()
    if y is not None:
        y = y.to(x.device)
    c, h, w = model.image_shape
    joint = model.distribution.joint_channels
    channel_steps = [range(c)] if joint else [range(ch, ch + 1) for ch in range(c)]
    whole_pixel = len(channel_steps) == 1  # one draw per pixel, every channel
    unknown = ~known
    # per sub-pixel: does any / every image need it drawn? (plain lists: no tensor ops per step)
    any_needed, all_needed = unknown.any(0).tolist(), unknown.all(0).tolist()  # [C][H][W]
    x_norm = model.normalize(x)
    scale = 2.0 / (model.num_levels - 1)  # normalize: level · scale − 1
    stepper = make_stepper(model, x_norm, y)
    # (H, W, B, C) views: a pixel's (B, C) entries by two selects (indexing x[:, part, i, j]
    # costs several times more, and this loop runs once per sub-pixel)
    pixels, pixels_norm = x.permute(2, 3, 0, 1), x_norm.permute(2, 3, 0, 1)
    batch = len(x)
    try:
        for i, j in tqdm(
            [(i, j) for i in range(h) for j in range(w)],
            disable=not progress,
            desc="sampling (cached)",
            unit="pixel",
        ):
            last_call = None  # the highest channel index the stepper has seen at this pixel
            pixel, pixel_norm = pixels[i][j], pixels_norm[i][j]  # (B, C) views
            for channels in channel_steps:
                if not any(any_needed[ch][i][j] for ch in channels):
                    continue
                params = stepper.step(x_norm, i, j).reshape(batch, -1, 1, 1)  # (B, P, 1, 1)
                last_call = channels[-1]
                part = slice(channels.start, channels.stop)
                draw = model.distribution.sample(params, generator, temperature)
                draw = draw.view(batch, -1)  # (B, C)
                if not whole_pixel:
                    draw = draw[:, part]  # (B, 1)
                if not all(all_needed[ch][i][j] for ch in channels):
                    draw = torch.where(unknown[:, part, i, j], draw, x[:, part, i, j])
                if whole_pixel:
                    pixel.copy_(draw)
                    pixel_norm.copy_(draw).mul_(scale).sub_(1.0)
                else:
                    pixel[:, part].copy_(draw)
                    pixel_norm[:, part].copy_(draw).mul_(scale).sub_(1.0)
            # The caches must hold this pixel's activations for its final values. Features at a
            # pixel never depend on its own last channel (mask A, then mask B), nor on a joint
            # pixel's channels, so a call that sampled the last channel already left them final.
            if last_call is None or (not joint and last_call < c - 1):
                stepper.step(x_norm, i, j)
    finally:
        model.train(was_training)
    return x
