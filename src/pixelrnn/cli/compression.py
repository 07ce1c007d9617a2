"""``pixelrnn compress`` and ``pixelrnn decompress``: lossless files of images, coded by a model."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

from pixelrnn.cli.commands import image_files, load_model, own_labels, run_data_settings
from pixelrnn.compression import CompressedFile, compress, decode_file
from pixelrnn.data import load_dataset
from pixelrnn.device import resolve_device
from pixelrnn.files import atomic_write
from pixelrnn.images import read_image_exact, save_image
from pixelrnn.models import AutoregressiveModel, find_pretrained_dir, load_pretrained
from pixelrnn.training import make_generator

SUFFIX = ".prnn"


def _model_reference(args: argparse.Namespace) -> str:
    """How ``decompress`` finds the model again: a pretrained name as given, else the absolute
    folder of the weights used."""
    if not Path(args.run_dir).exists():
        return args.run_dir  # a pretrained model's name
    folder = Path(args.run_dir) / "last" if args.weights == "last" else Path(args.run_dir)
    return str(find_pretrained_dir(folder).resolve())


def _images_to_compress(
    model: AutoregressiveModel, args: argparse.Namespace
) -> tuple[torch.Tensor, torch.Tensor | None, list[str] | None]:
    """Images ``(N, C, H, W)``, labels and file names: the files named, or a dataset split."""
    if args.images:
        if args.split is not None:
            raise ValueError("give image files or --split, not both")
        files = image_files(args.images)
        names = [f.name for f in files]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(
                f"two files are named {repeated[0]}: decompress writes one folder, so the "
                "names must differ"
            )
        x = torch.stack([read_image_exact(f, model.image_shape, model.num_levels) for f in files])
        return x, own_labels(model, args.label, len(x)), names
    if args.split is None:
        raise ValueError("give image files (PNG files or folders) or a dataset --split")
    dataset, binarize, data_dir = run_data_settings(args.run_dir, args)
    data = load_dataset(dataset, args.split, data_dir, binarize=binarize)
    n = len(data) if args.max_images is None else min(args.max_images, len(data))
    x = data.batch(slice(0, n), make_generator(args.seed, "data"))
    y = None if model.num_classes is None else data.labels_at(slice(0, n))
    return x, y, None


@torch.no_grad()
def _model_bits(model: AutoregressiveModel, x: torch.Tensor, y: torch.Tensor | None) -> float:
    """The model's NLL of ``x`` in bits, summed over images (the ideal code length)."""
    device = next(model.parameters()).device
    nats = 0.0
    for start in range(0, len(x), 256):
        part = x[start : start + 256].to(device)
        labels = None if y is None else y[start : start + 256].to(device)
        nats -= model.log_prob(part, y=labels).double().sum().item()
    return nats / math.log(2)


def cmd_compress(args: argparse.Namespace) -> int:
    model = load_model(args).eval()
    x, y, names = _images_to_compress(model, args)
    data = compress(
        model,
        x,
        y,
        batch_size=args.batch_size,
        threads=args.threads,
        model_reference=_model_reference(args),
        names=names,
        progress=True,
    )
    output = Path(args.output)
    atomic_write(output, lambda p: p.write_bytes(data))
    n, dims = len(x), model.num_dims
    bits = 8 * len(data)
    ideal = _model_bits(model, x, y)
    print(
        f"compressed {n} images into {output}: {len(data):,} bytes, {bits / n:.1f} bits per "
        f"image ({bits / (n * dims):.4f} bits/dim); the model's NLL: {ideal / n:.1f} bits per "
        f"image ({ideal / (n * dims):.4f} bits/dim)"
    )
    return 0


def _output_name(name: str) -> str:
    """A stored file name as a safe PNG name in the output folder (no folders, no '..')."""
    base = Path(name).name
    if base in ("", ".", "..") or base != name:
        raise ValueError(f"the file stores an unsafe file name {name!r}")
    return str(Path(base).with_suffix(".png"))


def cmd_decompress(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    compressed = CompressedFile.from_bytes(path.read_bytes(), str(path))
    reference = args.model or compressed.model_reference
    if not reference:
        raise ValueError(f"{path} names no model; pass --model")
    device = resolve_device(args.device)
    model = load_pretrained(find_pretrained_dir(reference), map_location=device).eval()
    result = decode_file(model, compressed, progress=True)
    n = len(result.images)
    names = result.names or [f"{i:05d}.png" for i in range(n)]
    names = [_output_name(name) for name in names]
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    for image, name in zip(result.images, names, strict=True):
        save_image(image, model.num_levels, out / name)
    if result.labels is not None:
        rows = "".join(
            f"{name},{label}\n" for name, label in zip(names, result.labels.tolist(), strict=True)
        )
        atomic_write(out / "labels.csv", lambda p: p.write_text("file,label\n" + rows))
    print(f"decompressed {n} images into {out}/ (model {reference})")
    return 0


def add_compression_parsers(sub: argparse._SubParsersAction) -> None:
    """The ``compress`` and ``decompress`` subcommands."""
    p = sub.add_parser("compress", help="store images losslessly, coded by a model (a .prnn file)")
    p.add_argument(
        "run_dir",
        metavar="MODEL",
        help="a pretrained model's name, a run directory or a folder written by save_pretrained",
    )
    p.add_argument("images", nargs="*", help="image files and folders (or use --split)")
    p.add_argument("-o", "--output", required=True, help=f"output file (e.g. images{SUFFIX})")
    p.add_argument("--weights", choices=("best", "last"), default="best", help="(default: best)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: cpu)")
    p.add_argument("--label", type=int, help="class label of your images (conditional models)")
    p.add_argument("--split", help="compress a dataset split instead of files (e.g. test)")
    p.add_argument("--dataset", help="dataset of --split (default: the model's)")
    p.add_argument("--binarize", choices=("threshold", "dynamic"), help="(default: the run's)")
    p.add_argument("--data-dir", help="data root (default: $PIXELRNN_DATA or ~/.cache/...)")
    p.add_argument("--max-images", type=int, help="only the first N images of --split")
    p.add_argument("--seed", type=int, default=0, help="seed of dynamic binarization")
    p.add_argument("--batch-size", type=int, default=256, help="images per stream (256)")
    p.add_argument(
        "--threads", type=int, help="intra-op threads, recorded for decompress (default: all)"
    )
    p.set_defaults(func=cmd_compress)

    p = sub.add_parser("decompress", help="the images of a .prnn file, as PNG files")
    p.add_argument("file", help=f"a {SUFFIX} file written by `pixelrnn compress`")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--model", help="the model (default: the one the file names)")
    p.add_argument("--device", default="cpu", help="the device it was compressed on (cpu)")
    p.set_defaults(func=cmd_decompress)
