"""CIFAR-10 binary version (Krizhevsky 2009): ``data_batch_{1..5}.bin``, ``test_batch.bin``.

Each record is 3073 bytes: a label byte 0..9, then 1024 red, 1024 green and 1024 blue bytes,
each a 32×32 row-major plane. No header. Any whole number of records is accepted, so a partial
file (the first 1000 test images, say) reads too. The pickled "python version" is never read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pixelrnn.data.errors import DataFormatError

RECORD_BYTES = 1 + 3 * 32 * 32
NUM_CLASSES = 10


def read_cifar10_binary(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 binary batch file.

    Returns:
        images uint8 ``(N, 3, 32, 32)``, labels uint8 ``(N,)``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % RECORD_BYTES:
        raise DataFormatError(
            path,
            f"{raw.size} bytes is not a whole, non-zero number of {RECORD_BYTES}-byte "
            "CIFAR-10 records: truncated or not a CIFAR-10 binary batch",
        )
    records = raw.reshape(-1, RECORD_BYTES)
    labels = records[:, 0].copy()
    if labels.max() >= NUM_CLASSES:
        bad = int(np.argmax(labels >= NUM_CLASSES))
        raise DataFormatError(
            path, f"record {bad} has label {int(labels[bad])}; CIFAR-10 labels are 0..9"
        )
    images = records[:, 1:].reshape(-1, 3, 32, 32).copy()
    return images, labels
