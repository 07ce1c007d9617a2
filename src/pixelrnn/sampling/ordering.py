"""Generation order of sub-pixels (PixelRNN §2.1): raster order, then R→G→B inside a pixel.

Shared by the sampling engine and the causality tests, so both agree on what "earlier" means.
"""

from __future__ import annotations

from collections.abc import Iterator


def generation_steps(
    image_shape: tuple[int, int, int], joint_channels: bool
) -> Iterator[tuple[int, int, tuple[int, ...]]]:
    """Yield ``(row, col, channels)`` for every generation step, in order.

    A sub-pixel model has one step per sub-pixel (``channels`` is one channel); a model whose
    distribution is joint over a pixel's channels has one step per pixel (all channels).
    """
    c, h, w = image_shape
    for i in range(h):
        for j in range(w):
            if joint_channels:
                yield i, j, tuple(range(c))
            else:
                for ch in range(c):
                    yield i, j, (ch,)


def sub_pixel_index(image_shape: tuple[int, int, int], channel: int, row: int, col: int) -> int:
    """Position of sub-pixel ``(channel, row, col)`` in the autoregressive order."""
    c, _, w = image_shape
    return (row * w + col) * c + channel
