"""Pictures: a user's own images and masks read in, image grids and line charts (a run's
loss curve, benchmark curves) written out, with Pillow.

Reading (:func:`read_image`) converts any file Pillow opens (PNG, JPEG, ...; grey, RGB,
palette, with or without alpha) to a model's levels:

* colour: to grey for a one-channel model (ITU-R 601-2 luma, Pillow's ``L``), to RGB for a
  three-channel one; transparent pixels are laid on black first (the background of the digit
  data sets);
* levels: 8-bit values ``v`` become ``round(v · (K − 1) / 255)`` — exact for 8-bit models
  (``K = 256``) and the inverse of how :func:`to_uint8` writes images, so a grid cell written
  here reads back unchanged; binary models (``K = 2``) threshold at ``v ≥ threshold · 255``
  (``threshold`` 0.5 by default, which is the same rule);
* size: a file of another size is refused with both sizes named, unless ``resize`` asks for a
  Lanczos resize.

Line charts are drawn with Pillow's ImageDraw rather than matplotlib so that the package
needs no plotting library for a few lines.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from pixelrnn.files import atomic_write

HIDDEN_GREY = 128


@dataclass(frozen=True)
class ImageBytes:
    """An image file's bytes that are not on disk (an upload), named ``name`` in messages."""

    data: bytes
    name: str = "the upload"

    def __str__(self) -> str:
        return self.name


ImageSource = str | Path | ImageBytes  # a file's path, or its bytes


def _open(path: ImageSource, what: str) -> Image.Image:
    """A file as a loaded Pillow image, or a clear error naming it."""
    if isinstance(path, ImageBytes):
        source: Path | io.BytesIO = io.BytesIO(path.data)
    else:
        source = path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such {what} file")
    try:
        with Image.open(source) as img:
            img.load()
            return img.copy()
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        why = "" if isinstance(path, ImageBytes) else f" ({e})"  # e names a BytesIO object
        raise ValueError(f"{path}: not an image Pillow can read{why}") from None


def _flatten_alpha(img: Image.Image) -> Image.Image:
    """Palette and transparency resolved: RGB or L, transparent pixels laid on black."""
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(black, rgba).convert("RGB")
    return img


def read_image(
    path: ImageSource,
    image_shape: tuple[int, int, int],
    num_levels: int,
    *,
    threshold: float = 0.5,
    resize: bool = False,
) -> torch.Tensor:
    """An image file as a model's integer levels (the conversion of the module docstring).

    Args:
        path: any image file Pillow reads.
        image_shape: the model's ``(C, H, W)``; ``C`` is 1 (grey) or 3 (RGB).
        num_levels: the model's ``K``.
        threshold: for binary models, the fraction of white from which a pixel is 1.
        resize: resize a file of another size instead of refusing it.

    Returns:
        int64 ``(C, H, W)`` in ``[0, K)``.
    """
    channels, height, width = image_shape
    if channels not in (1, 3):
        raise ValueError(f"images are read for 1- or 3-channel models, not {channels} channels")
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must lie in (0, 1], got {threshold}")
    img = _flatten_alpha(_open(path, "image")).convert("L" if channels == 1 else "RGB")
    if img.size != (width, height):
        if not resize:
            raise ValueError(
                f"{path}: the image is {img.size[0]}x{img.size[1]} (width x height), the model "
                f"takes {width}x{height}; pass --resize (or resize=True) to resize it"
            )
        img = img.resize((width, height), Image.Resampling.LANCZOS)
    values = torch.from_numpy(np.asarray(img, dtype=np.int64).copy())  # (H, W) or (H, W, C)
    values = values.reshape(height, width, channels).permute(2, 0, 1)
    if num_levels == 2:
        return (values >= threshold * 255).long()
    return torch.round(values.double() * (num_levels - 1) / 255).long()


LOSSLESS_MODES = ("1", "L", "P", "RGB", "RGBA", "LA", "PA")


def read_image_exact(
    path: ImageSource, image_shape: tuple[int, int, int], num_levels: int
) -> torch.Tensor:
    """An image file as a model's levels **without loss**, for lossless compression: refused,
    naming the first offending pixel, wherever :func:`read_image` would change it — a
    transparent pixel, a colour pixel for a grey model, a value between two levels (a grey
    pixel for a binary model), another size, a 16-bit or float file.

    Returns:
        int64 ``(C, H, W)`` in ``[0, K)``; :func:`to_uint8` of it gives the file's pixels back.
    """
    channels, height, width = image_shape
    img = _open(path, "image")
    if img.mode not in LOSSLESS_MODES:
        raise ValueError(
            f"{path}: {img.mode} images (16-bit, float, CMYK ...) cannot be stored without loss "
            "in an 8-bit model; convert it to 8-bit grey or RGB first"
        )
    if img.size != (width, height):
        raise ValueError(
            f"{path}: the image is {img.size[0]}x{img.size[1]} (width x height), the model "
            f"takes {width}x{height}"
        )
    rgba = np.asarray(img.convert("RGBA"), dtype=np.int64)  # (H, W, 4)
    _refuse_where(path, rgba[..., 3] != 255, "is transparent; only opaque images are stored")
    rgb = rgba[..., :3]
    if channels == 1:
        _refuse_where(path, (rgb != rgb[..., :1]).any(-1), "has colour, and the model is grey")
        rgb = rgb[..., :1]
    levels = np.rint(rgb * (num_levels - 1) / 255.0).astype(np.int64)
    back = np.rint(levels * (255.0 / (num_levels - 1))).astype(np.int64)
    _refuse_where(
        path,
        (back != rgb).any(-1),
        f"has a value between the model's {num_levels} levels (binary models take 0 and 255)",
    )
    return torch.from_numpy(levels).permute(2, 0, 1).contiguous()


def _refuse_where(path: ImageSource, bad: np.ndarray, what: str) -> None:
    """Raise naming the first pixel where ``bad`` ``(H, W)`` holds and how many do."""
    if bad.any():
        row, col = (int(v) for v in np.argwhere(bad)[0])
        raise ValueError(
            f"{path}: pixel (x={col}, y={row}) {what} ({int(bad.sum())} such pixels); "
            "compression stores images exactly as the model sees them"
        )


def read_mask(path: ImageSource, image_shape: tuple[int, int, int]) -> torch.Tensor:
    """A mask file as the ``known`` mask of a completion: white (255) marks the pixels to
    erase and complete, black (0) the pixels to keep. Any other value is refused, as is another
    size.

    Returns:
        bool ``(C, H, W)``: True where the pixel is kept.
    """
    channels, height, width = image_shape
    img = _flatten_alpha(_open(path, "mask")).convert("L")
    if img.size != (width, height):
        raise ValueError(
            f"{path}: the mask is {img.size[0]}x{img.size[1]} (width x height), the image "
            f"{width}x{height}; draw the mask at the image's size"
        )
    values = torch.from_numpy(np.asarray(img, dtype=np.int64).copy())  # (H, W)
    other = sorted(set(values.unique().tolist()) - {0, 255})
    if other:
        raise ValueError(
            f"{path}: a mask must be black (0: keep) and white (255: erase) only, found the "
            f"grey values {other[:5]}{' ...' if len(other) > 5 else ''}"
        )
    return (values == 0).expand(channels, height, width).clone()


def box_mask(box: str, image_shape: tuple[int, int, int]) -> torch.Tensor:
    """The ``known`` mask that erases the box ``"x0,y0,x1,y1"`` (pixel columns ``x0 ≤ x < x1``
    and rows ``y0 ≤ y < y1``).

    Returns:
        bool ``(C, H, W)``: True where the pixel is kept.
    """
    _, height, width = image_shape
    try:
        x0, y0, x1, y1 = (int(v) for v in box.split(","))
    except ValueError:
        raise ValueError(f"a box is x0,y0,x1,y1 (four integers), got {box!r}") from None
    if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
        raise ValueError(
            f"box {box!r} must satisfy 0 <= x0 < x1 <= {width} and 0 <= y0 < y1 <= {height}"
        )
    known = torch.ones(image_shape, dtype=torch.bool)
    known[:, y0:y1, x0:x1] = False
    return known


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


def save_image(x: torch.Tensor, num_levels: int, path: str | Path) -> None:
    """Write one image, at its own size, as an 8-bit grey or RGB PNG (atomically);
    :func:`read_image_exact` reads the same levels back.

    Shape:
        x integer ``(C, H, W)``, C = 1 or 3.
    """
    if x.shape[0] not in (1, 3):
        raise ValueError(f"can write 1- or 3-channel images, got {x.shape[0]} channels")
    pixels = to_uint8(x[None], num_levels)[0]  # (H, W, C)
    grey = x.shape[0] == 1
    save_png(Image.fromarray(pixels[..., 0] if grey else pixels, "L" if grey else "RGB"), path)


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


def save_line_chart(
    series: dict[str, Sequence[tuple[float, float]]],
    path: str | Path,
    y_label: str,
    x_label: str = "step",
) -> None:
    """Draw named ``(x, y)`` series as lines on one chart, the legend beside it, and write it
    as PNG (the loss curve of a run, benchmark curves).

    Args:
        series: e.g. ``{"train": [(step, bpd), ...], "valid": [...]}``.
        path: output PNG.
        y_label, x_label: what the axes show, written under the chart.
    """
    legend_width = 200 if len(series) > 2 else 0
    width, height, margin = 640 + legend_width, 400, 50
    right = width - legend_width - margin // 2  # the plot's right edge
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    points = [p for s in series.values() for p in s if math.isfinite(p[1])]
    draw.rectangle([margin, margin // 2, right, height - margin], outline="black")
    if points:
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
        y0, y1 = min(ys), max(ys) if max(ys) > min(ys) else min(ys) + 1

        def to_px(px: float, py: float) -> tuple[float, float]:
            u = margin + (px - x0) / (x1 - x0) * (right - margin)
            v = height - margin - (py - y0) / (y1 - y0) * (height - 1.5 * margin)
            return u, v

        colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf"]
        for k, (name, s) in enumerate(series.items()):
            pts = [to_px(*p) for p in s if math.isfinite(p[1])]
            colour = colours[k % len(colours)]
            if len(pts) > 1:
                draw.line(pts, fill=colour, width=2)
            for u, v in pts if len(pts) < 50 else []:
                draw.ellipse([u - 2, v - 2, u + 2, v + 2], fill=colour)
            legend_x = right + 10 if legend_width else right - 200
            draw.text((legend_x, margin // 2 + 5 + 14 * k), name, fill=colour)
        draw.text((5, margin // 2), f"{y1:.4g}", fill="black")
        draw.text((5, height - margin - 10), f"{y0:.4g}", fill="black")
        draw.text((margin, height - margin + 5), f"{x0:g}", fill="black")
        draw.text((right - 30, height - margin + 5), f"{x1:g}", fill="black")
    draw.text((margin, height - 20), f"x: {x_label}        y: {y_label}", fill="black")
    save_png(img, path)
