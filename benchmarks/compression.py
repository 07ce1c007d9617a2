"""Lossless compression with trained models against PNG, WebP and xz, and its speed.

For each data set (binarized MNIST's test split with a binary model, the staged CIFAR-10 test
images with an 8-bit RGB model):

* ``pixelrnn compress`` (the library's :func:`pixelrnn.compress`): the file's size in bits per
  image and bits per dimension, beside the model's NLL of the same images (the ideal code
  length); every image decoded again and compared (the round trip is verified on all of them);
  encode and decode images per second;
* the same images stored by standard tools, each as one archive: one optimised PNG per image
  (1-bit PNGs for binary images; the sum of the files), one optimised PNG of all images side by
  side, WebP lossless (Pillow, ``method=6``) per image and of all images side by side, and xz
  (``-9e``) of the raw pixels (one byte per sub-pixel, and for binary images also 8 pixels per
  byte);
* a batch-size sweep of encode and decode speed on the first images.

    python benchmarks/compression.py --data-dir ../shared/data \
        --output benchmarks/results/compression.json
"""

from __future__ import annotations

import argparse
import io
import json
import lzma
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

import pixelrnn
from machine import machine_info
from pixelrnn.compression import CompressedFile
from pixelrnn.data import load_dataset
from pixelrnn.images import to_uint8


@torch.no_grad()
def model_bits(model: pixelrnn.AutoregressiveModel, x: torch.Tensor) -> float:
    """The model's NLL of ``x`` in bits, summed over the images."""
    nats = 0.0
    for start in range(0, len(x), 500):
        nats -= model.log_prob(x[start : start + 500]).double().sum().item()
    return nats / math.log(2)


def _png_bytes(img: Image.Image) -> int:
    buffer = io.BytesIO()
    img.save(buffer, format="PNG", optimize=True)
    return buffer.tell()


def _webp_bytes(img: Image.Image) -> int:
    buffer = io.BytesIO()
    img.save(buffer, format="WEBP", lossless=True, quality=100, method=6)
    return buffer.tell()


def _pictures(x: torch.Tensor, num_levels: int) -> list[Image.Image]:
    """Every image as the file a user would have: 1-bit for binary, else 8-bit grey or RGB."""
    pixels = to_uint8(x, num_levels)  # (N, H, W, C)
    if x.shape[1] == 3:
        return [Image.fromarray(p, "RGB") for p in pixels]
    mode = "1" if num_levels == 2 else "L"
    return [Image.fromarray(p[..., 0], "L").convert(mode) for p in pixels]


def _side_by_side(x: torch.Tensor, num_levels: int) -> Image.Image:
    """All images in one near-square grid without gaps (WebP takes at most 16383 px a side)."""
    n, c, h, w = x.shape
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    canvas = np.zeros((rows * h, cols * w, c), np.uint8)
    for k, tile in enumerate(to_uint8(x, num_levels)):
        r, col = divmod(k, cols)
        canvas[r * h : (r + 1) * h, col * w : (col + 1) * w] = tile
    if c == 3:
        return Image.fromarray(canvas, "RGB")
    grey = Image.fromarray(canvas[..., 0], "L")
    return grey.convert("1") if num_levels == 2 else grey


def standard_formats(x: torch.Tensor, num_levels: int) -> dict[str, int]:
    """Bytes of the same images in standard lossless formats (the module docstring)."""
    pictures = _pictures(x, num_levels)
    grid = _side_by_side(x, num_levels)
    raw = to_uint8(x, num_levels).tobytes()  # one byte per sub-pixel
    sizes = {
        "png_per_image": sum(_png_bytes(p) for p in pictures),
        "png_one_image": _png_bytes(grid),
        "webp_per_image": sum(
            _webp_bytes(p.convert("L") if p.mode == "1" else p) for p in pictures
        ),
        "webp_one_image": _webp_bytes(grid.convert("L") if grid.mode == "1" else grid),
        "xz_bytes_per_subpixel": len(lzma.compress(raw, preset=9 | lzma.PRESET_EXTREME)),
    }
    if num_levels == 2:
        packed = np.packbits(x.numpy().astype(np.uint8).reshape(len(x), -1), axis=1).tobytes()
        sizes["xz_bit_packed"] = len(lzma.compress(packed, preset=9 | lzma.PRESET_EXTREME))
    return sizes


def measure(
    name: str, model_name: str, x: torch.Tensor, batch_size: int, sweep: list[int], sweep_n: int
) -> dict[str, Any]:
    model = pixelrnn.load_pretrained(model_name).eval()
    n, dims = len(x), model.num_dims
    ideal = model_bits(model, x)
    pixelrnn.compress(model, x[:2], batch_size=2)  # build the compiled kernels outside the timing
    start = time.perf_counter()
    data = pixelrnn.compress(model, x, batch_size=batch_size, model_reference=model_name)
    encode_s = time.perf_counter() - start
    start = time.perf_counter()
    decoded = pixelrnn.decompress(model, data)
    decode_s = time.perf_counter() - start
    if not torch.equal(decoded, x):
        raise SystemExit(f"{name}: the round trip changed an image")
    parsed = CompressedFile.from_bytes(data)
    payload = sum(len(s.words) for s in parsed.streams)
    result: dict[str, Any] = {
        "dataset": name,
        "model": model_name,
        "images": n,
        "dims_per_image": dims,
        "batch_size": batch_size,
        "round_trip_verified_images": n,
        "model_nll_bits_per_image": ideal / n,
        "model_nll_bits_per_dim": ideal / (n * dims),
        "file_bytes": len(data),
        "header_bytes": len(data) - payload,
        "prnn_bits_per_image": 8 * len(data) / n,
        "prnn_bits_per_dim": 8 * len(data) / (n * dims),
        "overhead_vs_nll_percent": 100 * (8 * len(data) / ideal - 1),
        "payload_overhead_vs_nll_percent": 100 * (8 * payload / ideal - 1),
        "encode_images_per_s": n / encode_s,
        "decode_images_per_s": n / decode_s,
        "standard_formats_bytes": standard_formats(x, model.num_levels),
        "sweep": [],
    }
    for batch in sweep:
        part = x[:sweep_n]
        start = time.perf_counter()
        data = pixelrnn.compress(model, part, batch_size=batch)
        encode_s = time.perf_counter() - start
        start = time.perf_counter()
        assert torch.equal(pixelrnn.decompress(model, data), part)
        decode_s = time.perf_counter() - start
        result["sweep"].append(
            {
                "batch_size": batch,
                "images": len(part),
                "encode_images_per_s": len(part) / encode_s,
                "decode_images_per_s": len(part) / decode_s,
            }
        )
        print(json.dumps(result["sweep"][-1]), flush=True)
    return result


def table(results: list[dict[str, Any]]) -> str:
    """The markdown table of docs/compression.md."""
    lines = [
        "| data | images | model NLL | `pixelrnn compress` | PNG per image | PNG, one image | "
        "WebP per image | WebP, one image | xz |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        n, dims = r["images"], r["dims_per_image"]
        sizes = r["standard_formats_bytes"]
        xz = min(v for k, v in sizes.items() if k.startswith("xz"))

        def cell(size_bytes: int, n: int = n, dims: int = dims) -> str:
            return f"{8 * size_bytes / n:.1f} ({8 * size_bytes / (n * dims):.3f})"

        lines.append(
            f"| {r['dataset']} | {n:,} | {r['model_nll_bits_per_image']:.1f} "
            f"({r['model_nll_bits_per_dim']:.3f}) | **{cell(r['file_bytes'])}** | "
            f"{cell(sizes['png_per_image'])} | {cell(sizes['png_one_image'])} | "
            f"{cell(sizes['webp_per_image'])} | {cell(sizes['webp_one_image'])} | {cell(xz)} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--mnist-model", default="diagonal-bilstm-mnist")
    parser.add_argument("--cifar-model", default="pixelcnnpp-cifar10-small")
    parser.add_argument("--mnist-images", type=int, default=10_000)
    parser.add_argument("--cifar-images", type=int, default=1_000)
    parser.add_argument("--mnist-batch", type=int, default=256)
    parser.add_argument("--cifar-batch", type=int, default=64)
    parser.add_argument("--mnist-sweep", default="16,64,256,1024")
    parser.add_argument("--cifar-sweep", default="16,64,128")
    parser.add_argument("--mnist-sweep-images", type=int, default=1024)
    parser.add_argument("--cifar-sweep-images", type=int, default=128)
    parser.add_argument("--output", help="write the results JSON here")
    args = parser.parse_args()
    mnist = load_dataset("binarized-mnist", "test", args.data_dir)
    cifar = load_dataset("cifar10", "test", args.data_dir)
    jobs = [
        (
            "binarized MNIST test",
            args.mnist_model,
            mnist.batch(slice(0, min(args.mnist_images, len(mnist)))),
            args.mnist_batch,
            args.mnist_sweep,
            args.mnist_sweep_images,
        ),
        (
            f"CIFAR-10 test[:{min(args.cifar_images, len(cifar))}]",
            args.cifar_model,
            cifar.batch(slice(0, min(args.cifar_images, len(cifar)))),
            args.cifar_batch,
            args.cifar_sweep,
            args.cifar_sweep_images,
        ),
    ]
    results = []
    for name, model_name, x, batch, sweep, sweep_n in jobs:
        sizes = [int(s) for s in sweep.split(",") if s]
        result = measure(name, model_name, x, batch, sizes, sweep_n)
        print(json.dumps(result, indent=2), flush=True)
        results.append(result)
    print(table(results))
    if args.output:
        report = {
            "machine": machine_info(),
            "command": " ".join(["python", "benchmarks/compression.py", *sys.argv[1:]]),
            "results": results,
        }
        Path(args.output).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
