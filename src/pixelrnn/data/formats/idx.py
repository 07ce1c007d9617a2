"""IDX files (MNIST, Fashion-MNIST; LeCun et al.), plain or gzip-compressed.

Layout: big-endian magic ``0x00000800 | type << 8 | ndim`` (type 0x08 = uint8), ``ndim``
big-endian uint32 sizes, then the data row-major. Images: ``0x00000803, N, rows, cols``;
labels: ``0x00000801, N``.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from pixelrnn.data.errors import DataFormatError
from pixelrnn.data.formats.compressed import read_maybe_gzip

UBYTE_TYPE = 0x08


def _read_idx(path: str | Path, ndim: int) -> np.ndarray:
    data = read_maybe_gzip(path)
    if len(data) < 4 + 4 * ndim:
        raise DataFormatError(path, f"only {len(data)} bytes: too short for an IDX header")
    zero, dtype_code, file_ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != UBYTE_TYPE:
        raise DataFormatError(
            path,
            f"bad IDX magic number 0x{int.from_bytes(data[:4], 'big'):08x} "
            f"(expected 0x{0x800 | ndim:08x}: unsigned bytes, {ndim} dimension(s))",
        )
    if file_ndim != ndim:
        kind = "images" if ndim == 3 else "labels"
        raise DataFormatError(path, f"IDX file has {file_ndim} dimension(s), {kind} need {ndim}")
    dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    expected = int(np.prod(dims))
    body = data[4 + 4 * ndim :]
    if len(body) != expected:
        raise DataFormatError(
            path,
            f"header says {' x '.join(map(str, dims))} = {expected} bytes of data, "
            f"the file holds {len(body)}" + (" (truncated)" if len(body) < expected else ""),
        )
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def read_idx_images(path: str | Path) -> np.ndarray:
    """Read an IDX image file.

    Returns:
        uint8 array ``(N, rows, cols)``.
    """
    return _read_idx(path, 3)


def read_idx_labels(path: str | Path, num_classes: int = 10) -> np.ndarray:
    """Read an IDX label file, checking every label is in ``[0, num_classes)``.

    Returns:
        uint8 array ``(N,)``.
    """
    labels = _read_idx(path, 1)
    if labels.size and labels.max() >= num_classes:
        raise DataFormatError(
            path, f"label {int(labels.max())} out of range: expected 0..{num_classes - 1}"
        )
    return labels
