"""Lossless compression of images with a trained model: :func:`compress` and :func:`decompress`.

A model's negative log-likelihood is a code length: an image the model gives ``L`` nats is
stored in about ``L / ln 2`` bits. Images are coded in batches (one stream each,
:mod:`pixelrnn.compression.coder`) into the ``.prnn`` container
(:mod:`pixelrnn.compression.container`).

What must match between compressing and decompressing, for the decoder to compute the
encoder's probabilities bit for bit: the model (checked by fingerprint), the device kind, the
dtype (part of the fingerprint), the number of intra-op threads (recorded and set again), the
batch layout (recorded), and the numerical libraries — torch version and CPU instruction set,
recorded in the file. A decoder on another setup that computes other probabilities is caught
by the per-stream CRC of the images and reported with the differences, never returned as
images.
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from pixelrnn.compression.coder import decode_batch, encode_batch
from pixelrnn.compression.container import CompressedFile, CompressedFileError, StreamEntry
from pixelrnn.models.base import AutoregressiveModel
from pixelrnn.models.persistence import model_fingerprint

DEFAULT_BATCH_SIZE = 256


def coding_environment(model: AutoregressiveModel, threads: int) -> dict[str, object]:
    """What the probabilities depend on besides the model (the module docstring)."""
    device = next(model.parameters()).device
    return {
        "torch": torch.__version__,
        "device": device.type,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": threads,
    }


@contextlib.contextmanager
def _intra_op_threads(threads: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def images_crc(images: torch.Tensor) -> int:
    """CRC-32 of integer images ``(B, C, H, W)`` as int32 bytes."""
    return zlib.crc32(images.to(torch.int32).contiguous().numpy().tobytes())


def compress(
    model: AutoregressiveModel,
    images: torch.Tensor,
    y: torch.Tensor | None = None,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    threads: int | None = None,
    model_reference: str = "",
    names: Sequence[str] | None = None,
    progress: bool = False,
) -> bytes:
    """Code ``images`` losslessly with ``model``.

    Args:
        images: integer ``(N, C, H, W)`` in the model's ``[0, K)``.
        y: class labels ``(N,)`` for a class-conditional model (coded in the file), else None.
        batch_size: images per stream; decoding runs the same batches.
        threads: intra-op threads for the model (default: the current setting); recorded, and
            set again by :func:`decompress`.
        model_reference: how to find the model again (a pretrained name or a folder), stored
            so that ``pixelrnn decompress`` needs no model argument.
        names: a file name per image, stored (compressed) to name the decoded files.
        progress: show a progress bar over the images.

    Returns:
        the ``.prnn`` file's bytes.
    """
    if model.likelihood_kind != "exact":
        raise ValueError(
            f"a {model.model_name} is a latent model: coding its images at its bound needs "
            "bits-back coding, which pixelrnn does not have yet"
        )
    model.check_images(images, "images")
    n = len(images)
    if n < 1:
        raise ValueError("no images to compress")
    if model.num_classes is not None and y is None:
        raise ValueError(
            f"this {model.model_name} is class-conditional: give the images' labels (y)"
        )
    model.check_labels(y, n)
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive number of images, got {batch_size}")
    if names is not None and len(names) != n:
        raise ValueError(f"{len(names)} names for {n} images")
    threads = threads or torch.get_num_threads()
    images = images.detach().cpu().long()
    labels = None if y is None else y.detach().cpu().long()
    streams = []
    with (
        _intra_op_threads(threads),
        tqdm(total=n, disable=not progress, desc="compressing", unit="image") as bar,
    ):
        for start in range(0, n, batch_size):
            part = images[start : start + batch_size]
            part_labels = None if labels is None else labels[start : start + batch_size]
            words = encode_batch(model, part, part_labels)
            streams.append(StreamEntry(words, images_crc(part)))
            bar.update(len(part))
    return CompressedFile(
        fingerprint=model_fingerprint(model),
        image_shape=tuple(model.image_shape),
        num_levels=model.num_levels,
        num_images=n,
        batch_size=batch_size,
        environment=coding_environment(model, threads),
        model_reference=model_reference,
        streams=streams,
        labels_coded=model.num_classes is not None,
        names=list(names) if names is not None else None,
    ).to_bytes()


@dataclass
class Decompressed:
    """A decoded file: the images, their labels (conditional models) and stored file names."""

    images: torch.Tensor  # int64 (N, C, H, W)
    labels: torch.Tensor | None  # int64 (N,)
    names: list[str] | None


def check_model_matches(model: AutoregressiveModel, compressed: CompressedFile) -> None:
    """Refuse a model or device other than the file's, before any decoding."""
    fingerprint = model_fingerprint(model)
    if fingerprint != compressed.fingerprint:
        made_with = f" ({compressed.model_reference})" if compressed.model_reference else ""
        raise CompressedFileError(
            f"the file was made with another model{made_with}: its model fingerprint is "
            f"{compressed.fingerprint.hex()[:16]}…, this model's {fingerprint.hex()[:16]}…"
        )
    device = next(model.parameters()).device.type
    if compressed.environment.get("device") != device:
        raise CompressedFileError(
            f"the file was coded on {compressed.environment.get('device')}; decode it there "
            f"(the model is on {device}, whose arithmetic gives other probabilities)"
        )


def _differences(compressed: CompressedFile, here: dict[str, object]) -> str:
    stored = compressed.environment
    changed = [f"{k} {stored.get(k)} → {v}" for k, v in here.items() if stored.get(k) != v]
    return "; ".join(changed) if changed else "none recorded"


def decode_file(
    model: AutoregressiveModel, compressed: CompressedFile, *, progress: bool = False
) -> Decompressed:
    """Decode a parsed ``.prnn`` file with ``model`` (see :func:`decompress`)."""
    check_model_matches(model, compressed)
    threads = int(compressed.environment.get("threads") or torch.get_num_threads())
    here = coding_environment(model, threads)
    images, labels = [], []
    remaining = compressed.num_images
    with (
        _intra_op_threads(threads),
        tqdm(total=remaining, disable=not progress, desc="decompressing", unit="image") as bar,
    ):
        for index, stream in enumerate(compressed.streams):
            batch = min(compressed.batch_size, remaining)
            try:
                part, part_labels = decode_batch(model, stream.words, batch)
            except (ValueError, RuntimeError) as e:
                raise CompressedFileError(
                    f"stream {index} does not decode ({e}); setup differences from the "
                    f"encoder's: {_differences(compressed, here)}"
                ) from None
            if images_crc(part) != stream.image_crc:
                raise CompressedFileError(
                    f"stream {index} decodes to other images than were coded: this machine "
                    f"computes other probabilities than the encoder's (differences: "
                    f"{_differences(compressed, here)})"
                )
            images.append(part)
            if part_labels is not None:
                labels.append(part_labels)
            remaining -= batch
            bar.update(batch)
    return Decompressed(
        images=torch.cat(images),
        labels=torch.cat(labels) if labels else None,
        names=compressed.names,
    )


def decompress(model: AutoregressiveModel, data: bytes, *, progress: bool = False) -> torch.Tensor:
    """The images of :func:`compress`'s bytes, exactly.

    Returns:
        int64 ``(N, C, H, W)`` on the CPU.

    Raises:
        CompressedFileError: damaged, truncated or of another format version; made with another
            model; or decoded to other images than were coded (another machine setup).
    """
    return decode_file(model, CompressedFile.from_bytes(data), progress=progress).images
