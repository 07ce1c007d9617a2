"""Larochelle's fixed binarization of MNIST (``binarized_mnist_{train,valid,test}.amat``).

Text format: one image per line, 784 values ``0`` or ``1`` separated by single spaces, ended by
a newline (Larochelle's binarized MNIST). Plain or gzip-compressed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pixelrnn.data.errors import DataFormatError
from pixelrnn.data.formats.compressed import read_maybe_gzip

NUM_PIXELS = 784
LINE_BYTES = 2 * NUM_PIXELS  # "v v v ... v\n": one value and one separator per pixel


def read_binarized_mnist_amat(path: str | Path, expected_count: int | None = None) -> np.ndarray:
    """Read a binarized-MNIST ``.amat`` file (plain or ``.gz``).

    Args:
        path: the file.
        expected_count: number of images the split must hold (50000 / 10000 / 10000), or None.

    Returns:
        uint8 array ``(N, 28, 28)`` of zeros and ones.
    """
    data = read_maybe_gzip(path)
    if len(data) % LINE_BYTES:
        raise DataFormatError(
            path,
            f"{len(data)} bytes is not a whole number of {NUM_PIXELS}-value lines "
            f"({LINE_BYTES} bytes each): truncated or not a binarized-MNIST .amat file",
        )
    rows = np.frombuffer(data, dtype=np.uint8).reshape(-1, LINE_BYTES)
    values, separators = rows[:, 0::2], rows[:, 1::2]
    bad_sep = (separators[:, :-1] != ord(" ")) | (separators[:, -1:] != ord("\n"))
    if bad_sep.any():
        line = int(np.nonzero(bad_sep.any(axis=1))[0][0]) + 1
        raise DataFormatError(
            path, f"line {line} is not {NUM_PIXELS} space-separated values ending in a newline"
        )
    bits = values.astype(np.int16) - ord("0")
    bad = (bits < 0) | (bits > 1)
    if bad.any():
        line = int(np.nonzero(bad.any(axis=1))[0][0]) + 1
        raise DataFormatError(path, f"line {line} holds a value other than 0 or 1")
    if expected_count is not None and len(bits) != expected_count:
        raise DataFormatError(path, f"{len(bits)} images, expected {expected_count} for this split")
    return bits.astype(np.uint8).reshape(-1, 28, 28)
