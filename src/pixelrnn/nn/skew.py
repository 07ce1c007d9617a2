"""Skew and unskew of feature maps (PixelRNN §3.2, Fig. 3).

Skewing shifts row ``r`` right by ``r`` positions, so that the diagonals of an ``H × W`` map
become the columns of an ``H × (W + H − 1)`` map::

    a b c         a b c . .
    d e f   →     . d e f .
    g h i         . . g h i

Both directions are done with one pad and two reshapes (no Python loop over pixels).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def skew(x: torch.Tensor) -> torch.Tensor:
    """Shift row ``r`` right by ``r``; new positions are zero.

    Shape:
        ``(B, C, H, W)`` → ``(B, C, H, W + H − 1)``.
    """
    b, c, h, w = x.shape
    # Row r of the padded map starts at r·(W+H); read with rows of W+H−1 it starts r places
    # earlier, i.e. after r zeros of the previous row's padding.
    flat = F.pad(x, (0, h)).reshape(b, c, h * (w + h))[..., : h * (w + h - 1)]
    return flat.reshape(b, c, h, w + h - 1)


def unskew(y: torch.Tensor, width: int) -> torch.Tensor:
    """Inverse of :func:`skew`: row ``r`` keeps columns ``r .. r + width − 1``.

    Shape:
        ``(B, C, H, W + H − 1)`` → ``(B, C, H, W)``.
    """
    b, c, h, skewed_width = y.shape
    if skewed_width != width + h - 1:
        raise ValueError(
            f"a skewed map of height {h} and width {width} has {width + h - 1} columns"
        )
    # Element (r, r + j) of rows of length W+H sits at r·(W+H+1) + j.
    flat = F.pad(y, (0, 1)).reshape(b, c, h * (width + h))
    flat = F.pad(flat, (0, h)).reshape(b, c, h, width + h + 1)
    return flat[..., :width]
