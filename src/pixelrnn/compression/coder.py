"""Entropy coding of a batch of images with a model: the generation loop drives the coder.

A model's code for an image is its generation order (:func:`~pixelrnn.sampling.generation_order`)
read as a sequence of sub-pixels, each coded with the model's conditional probabilities of
it (``OutputDistribution.level_probabilities``; a joint pixel's channels in the distribution's
own order, R→G→B). The probabilities come from the **cached** generation loop on both sides:
the encoder runs it with a :class:`StepEncoder` that returns the image's own values, the decoder
with a :class:`StepDecoder` that decodes them. Both sides therefore run the same operations on
the same batch and see bit-identical probabilities (on the same machine setup, which
:mod:`pixelrnn.compression.api` pins and records).

The coder is constriction's range coder (a queue: symbols come out in the order they went in,
so nothing is buffered); its categorical model quantises each probability table to integer
frequencies deterministically and gives every level a non-zero frequency, so any image can be
coded. A class-conditional model's labels are coded first, uniformly (log2 of the number of
classes bits each).
"""

from __future__ import annotations

from collections.abc import Iterator

import constriction
import numpy as np
import torch

from pixelrnn.models.base import AutoregressiveModel
from pixelrnn.sampling import GenerationRequest, Step, generate, generation_order


def _categorical() -> constriction.stream.model.Categorical:
    """The model family of every symbol: a table per symbol, quantised without the slow
    optimal search (``perfect=False``; encoder and decoder must agree on this)."""
    return constriction.stream.model.Categorical(perfect=False)


def _checked_table(probabilities: torch.Tensor) -> np.ndarray:
    """A ``(B, K)`` float64 table as constriction takes it, refused if not finite."""
    table = probabilities.detach().cpu().numpy()
    if not np.isfinite(table).all():
        raise ValueError(
            "the model gives non-finite probabilities (NaN or infinite weights?): it cannot code"
        )
    return table


class _StepCoder:
    """What the encoder and decoder share: the expected order and the probability tables."""

    def __init__(self, model: AutoregressiveModel) -> None:
        self.distribution = model.distribution
        self.order: Iterator[Step] = iter(generation_order(model))
        self.family = _categorical()

    def next_step(self, channels: tuple[int, ...]) -> Step:
        """The step the loop is at, checked against the generation order."""
        step = next(self.order, None)
        if step is None or step.channels != channels:
            raise RuntimeError(
                f"the generation loop left the generation order at {step} (channels "
                f"{channels}): the coder cannot follow it"
            )
        return step

    def table(self, params: torch.Tensor, channel: int, earlier: torch.Tensor) -> np.ndarray:
        """Probability table ``(B, K)`` of ``channel`` given the step's values before it."""
        return _checked_table(self.distribution.level_probabilities(params, channel, earlier))


class StepEncoder(_StepCoder):
    """Picks every step's values from ``images`` and codes them into ``encoder``.

    Args:
        images: int64 ``(B, C, H, W)`` on the CPU.
    """

    def __init__(
        self,
        model: AutoregressiveModel,
        images: torch.Tensor,
        encoder: constriction.stream.queue.RangeEncoder,
    ) -> None:
        super().__init__(model)
        self.images, self.encoder = images, encoder

    def __call__(self, params: torch.Tensor, channels: tuple[int, ...]) -> torch.Tensor:
        step = self.next_step(channels)
        values = self.images[:, list(channels), step.row, step.col]  # (B, n)
        for index, channel in enumerate(channels):
            table = self.table(params, channel, values[:, :index])
            symbols = values[:, index].numpy().astype(np.int32)
            self.encoder.encode(symbols, self.family, table)
        return values.to(params.device)


class StepDecoder(_StepCoder):
    """Decodes every step's values from ``decoder``."""

    def __init__(
        self, model: AutoregressiveModel, decoder: constriction.stream.queue.RangeDecoder
    ) -> None:
        super().__init__(model)
        self.decoder = decoder

    def __call__(self, params: torch.Tensor, channels: tuple[int, ...]) -> torch.Tensor:
        self.next_step(channels)
        values = torch.empty(len(params), 0, dtype=torch.long)
        for channel in channels:
            table = self.table(params, channel, values)
            symbols = torch.from_numpy(self.decoder.decode(self.family, table).astype(np.int64))
            values = torch.cat([values, symbols[:, None]], dim=1)
        return values.to(params.device)


def _uniform_labels(num_classes: int, batch: int) -> np.ndarray:
    return np.full((batch, num_classes), 1.0 / num_classes)


def encode_batch(
    model: AutoregressiveModel, images: torch.Tensor, labels: torch.Tensor | None = None
) -> bytes:
    """One range-coder stream holding ``images`` (and their labels, for a conditional model).

    Args:
        images: int64 ``(B, C, H, W)`` in ``[0, K)``, on the CPU.
        labels: int64 ``(B,)`` for a class-conditional model, else None.

    Returns:
        the stream's 32-bit words as bytes (little-endian).
    """
    encoder = constriction.stream.queue.RangeEncoder()
    if model.num_classes is not None:
        table = _uniform_labels(model.num_classes, len(images))
        encoder.encode(labels.numpy().astype(np.int32), _categorical(), table)
    device = next(model.parameters()).device
    request = GenerationRequest(
        y=None if labels is None else labels.to(device),
        step_values=StepEncoder(model, images, encoder),
    )
    blank = torch.zeros_like(images, device=device)
    coded = generate(model, blank, torch.zeros_like(blank, dtype=torch.bool), request)
    if not torch.equal(coded.cpu(), images):
        raise RuntimeError("the generation loop did not write the coded values back")
    return encoder.get_compressed().astype("<u4").tobytes()


def decode_batch(
    model: AutoregressiveModel, words: bytes, batch: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The images (and labels) of one stream of :func:`encode_batch`.

    Returns:
        int64 images ``(B, C, H, W)`` on the CPU, and int64 labels ``(B,)`` or None.

    Raises:
        ValueError: the stream does not end where the images do (another model or a decoder
            that computed other probabilities).
    """
    if len(words) % 4:
        raise ValueError("a stream is a whole number of 32-bit words")
    decoder = constriction.stream.queue.RangeDecoder(np.frombuffer(words, dtype="<u4").copy())
    labels = None
    if model.num_classes is not None:
        table = _uniform_labels(model.num_classes, batch)
        labels = torch.from_numpy(decoder.decode(_categorical(), table).astype(np.int64))
    device = next(model.parameters()).device
    request = GenerationRequest(
        y=None if labels is None else labels.to(device),
        step_values=StepDecoder(model, decoder),
    )
    blank = torch.zeros((batch, *model.image_shape), dtype=torch.long, device=device)
    images = generate(model, blank, torch.zeros_like(blank, dtype=torch.bool), request).cpu()
    if not decoder.maybe_exhausted():
        raise ValueError("the stream holds more data than its images")
    return images, labels
