"""Downsampled ImageNet 32×32 / 64×64 ``.npz`` files (Chrabaszcz et al. 2017 release).

Key ``data``: uint8 ``(N, 3·S·S)`` with the R, G and B planes one after another (row-major);
optional key ``labels`` (1-based class numbers in the release). Loaded with
``allow_pickle=False``, so no object arrays and no code execution.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from pixelrnn.data.errors import DataFormatError


def read_downsampled_imagenet_npz(
    path: str | Path, image_size: int | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Read one downsampled-ImageNet ``.npz`` file.

    Args:
        path: the file.
        image_size: expected ``S`` (32 or 64); inferred from the row length when None.

    Returns:
        images uint8 ``(N, 3, S, S)``, labels int64 ``(N,)`` or None.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            if "data" not in npz.files:
                raise DataFormatError(path, f"no 'data' array (keys: {npz.files})")
            data = npz["data"]
            labels = npz["labels"] if "labels" in npz.files else None
    except DataFormatError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise DataFormatError(path, f"not a readable .npz file ({e})") from None
    if data.dtype != np.uint8 or data.ndim != 2:
        raise DataFormatError(
            path, f"'data' must be a 2-D uint8 array, got {data.ndim}-D {data.dtype}"
        )
    row = data.shape[1]
    size = image_size if image_size is not None else round((row / 3) ** 0.5)
    if 3 * size * size != row:
        raise DataFormatError(path, f"rows of {row} values are not 3 x {size} x {size} images")
    if labels is not None:
        labels = np.asarray(labels).astype(np.int64).reshape(-1)
        if len(labels) != len(data):
            raise DataFormatError(path, f"{len(labels)} labels for {len(data)} images")
    return data.reshape(-1, 3, size, size), labels
