"""Pictures: image grids and the loss curve, written as PNG with Pillow.

The loss curve is drawn with Pillow's ImageDraw rather than matplotlib so that the package
needs no plotting library for one line chart.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from pixelrnn.checkpoint import atomic_write

HIDDEN_GREY = 128


def to_uint8(x: torch.Tensor, num_levels: int, hidden: torch.Tensor | None = None) -> np.ndarray:
    """Integer levels ``[0, K)`` → uint8 ``[0, 255]``; ``hidden`` entries are painted grey.

    Shape:
        ``(B, C, H, W)`` → ``(B, H, W, C)``.
    """
    scaled = (x.detach().cpu().double() * (255.0 / (num_levels - 1))).round().clamp(0, 255)
    if hidden is not None:
        scaled = torch.where(hidden.cpu(), torch.full_like(scaled, HIDDEN_GREY), scaled)
    return scaled.to(torch.uint8).permute(0, 2, 3, 1).numpy()


def image_grid(
    x: torch.Tensor,
    num_levels: int,
    ncols: int | None = None,
    pad: int = 2,
    scale: int = 1,
    hidden: torch.Tensor | None = None,
) -> Image.Image:
    """Tile a batch into one picture, row-major, with ``pad`` pixels of grey between images.

    Args:
        x: integer images ``(B, C, H, W)``, C = 1 or 3.
        num_levels: ``K`` of the values.
        ncols: images per row (default: a near-square grid).
        scale: integer up-scaling factor (nearest neighbour) for small images.
        hidden: optional bool mask like ``x``; True entries are drawn mid-grey (occlusions).
    """
    b, c, h, w = x.shape
    if c not in (1, 3):
        raise ValueError(f"can draw 1- or 3-channel images, got {c} channels")
    ncols = ncols or math.ceil(math.sqrt(b))
    nrows = math.ceil(b / ncols)
    tiles = to_uint8(x, num_levels, hidden)
    canvas = np.full((pad + nrows * (h + pad), pad + ncols * (w + pad), c), 128, np.uint8)
    for k in range(b):
        r, col = divmod(k, ncols)
        y0, x0 = pad + r * (h + pad), pad + col * (w + pad)
        canvas[y0 : y0 + h, x0 : x0 + w] = tiles[k]
    img = Image.fromarray(canvas[..., 0] if c == 1 else canvas, "L" if c == 1 else "RGB")
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    return img


def save_png(img: Image.Image, path: str | Path) -> None:
    """Write a picture atomically."""
    atomic_write(path, lambda p: img.save(p, format="PNG"))


def save_image_grid(
    x: torch.Tensor,
    num_levels: int,
    path: str | Path,
    ncols: int | None = None,
    hidden: torch.Tensor | None = None,
) -> None:
    """Write ``x`` as a PNG grid (images smaller than 64 px are shown at twice their size)."""
    scale = 2 if x.shape[-1] < 64 else 1
    save_png(image_grid(x, num_levels, ncols=ncols, scale=scale, hidden=hidden), path)


def save_loss_curve(
    series: dict[str, Sequence[tuple[float, float]]], path: str | Path, y_label: str
) -> None:
    """Draw named ``(x, y)`` series as lines on one chart and write it as PNG.

    Args:
        series: e.g. ``{"train": [(step, bpd), ...], "valid": [...]}``.
        path: output PNG.
        y_label: unit of the y axis, written in the corner.
    """
    width, height, margin = 640, 400, 50
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    points = [p for s in series.values() for p in s if math.isfinite(p[1])]
    draw.rectangle([margin, margin // 2, width - margin // 2, height - margin], outline="black")
    if points:
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
        y0, y1 = min(ys), max(ys) if max(ys) > min(ys) else min(ys) + 1

        def to_px(px: float, py: float) -> tuple[float, float]:
            u = margin + (px - x0) / (x1 - x0) * (width - 1.5 * margin)
            v = height - margin - (py - y0) / (y1 - y0) * (height - 1.5 * margin)
            return u, v

        colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]
        for k, (name, s) in enumerate(series.items()):
            pts = [to_px(*p) for p in s if math.isfinite(p[1])]
            colour = colours[k % len(colours)]
            if len(pts) > 1:
                draw.line(pts, fill=colour, width=2)
            for u, v in pts if len(pts) < 50 else []:
                draw.ellipse([u - 2, v - 2, u + 2, v + 2], fill=colour)
            draw.text((width - 200, margin // 2 + 5 + 14 * k), name, fill=colour)
        draw.text((5, margin // 2), f"{y1:.3f}", fill="black")
        draw.text((5, height - margin - 10), f"{y0:.3f}", fill="black")
        draw.text((margin, height - margin + 5), f"{x0:g}", fill="black")
        draw.text((width - margin - 30, height - margin + 5), f"{x1:g}", fill="black")
    draw.text((margin, height - 20), f"step        y: {y_label}", fill="black")
    save_png(img, path)
