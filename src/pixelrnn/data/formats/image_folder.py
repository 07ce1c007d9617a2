"""A folder of PNG images (a user's own data), read with Pillow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from pixelrnn.data.errors import DataFormatError

MODES = {1: "L", 3: "RGB"}


def read_image_folder(folder: str | Path, channels: int = 3) -> np.ndarray:
    """Read every ``*.png`` in ``folder`` (sorted by name) as one array.

    Args:
        folder: the folder.
        channels: 1 (converted to grey) or 3 (converted to RGB).

    Returns:
        uint8 ``(N, channels, H, W)``; every image must have the size of the first.
    """
    folder = Path(folder)
    if channels not in MODES:
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png")
    if not paths:
        raise DataFormatError(folder, "no .png images in the folder")
    images = []
    for p in paths:
        try:
            with Image.open(p) as im:
                arr = np.asarray(im.convert(MODES[channels]))
        except (UnidentifiedImageError, OSError) as e:
            raise DataFormatError(p, f"not a readable PNG image ({e})") from None
        if images and arr.shape != images[0].shape:
            raise DataFormatError(
                p,
                f"size {arr.shape[1]}x{arr.shape[0]} differs from the first image's "
                f"{images[0].shape[1]}x{images[0].shape[0]}",
            )
        images.append(arr)
    stacked = np.stack(images)
    if channels == 1:
        return stacked[:, None]
    return stacked.transpose(0, 3, 1, 2).copy()
