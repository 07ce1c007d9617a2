"""The ``pixelrnn`` command line (conventions §11): the parser and the entry point."""

from __future__ import annotations

import argparse
import errno
import sys

from pixelrnn.allocator import reexec_with_tcmalloc
from pixelrnn.cli.commands import (
    cmd_complete,
    cmd_datasets,
    cmd_evaluate,
    cmd_models,
    cmd_presets,
    cmd_pretrained,
    cmd_score,
    cmd_train,
)
from pixelrnn.cli.compression import add_compression_parsers
from pixelrnn.cli.demo import add_demo_parser
from pixelrnn.cli.flags import add_config_flags, model_config_classes
from pixelrnn.cli.sampling import GRIDS, cmd_sample
from pixelrnn.data import (
    DataFormatError,
    DatasetNotFoundError,
)
from pixelrnn.models import (
    MODELS,
)
from pixelrnn.sampling import (
    OCCLUSIONS,
    SAMPLING_METHODS,
)
from pixelrnn.training import TrainConfig
from pixelrnn.version import __version__

HEAVY_COMMANDS = ("train", "evaluate", "sample", "complete", "score", "compress", "decompress")


# --- flags generated from config dataclasses -------------------------------------------------
def _add_run_args(p: argparse.ArgumentParser, weights: bool = True) -> None:
    p.add_argument(
        "run_dir",
        metavar="MODEL",
        help="a pretrained model's name (see `pixelrnn pretrained`), a run directory or a folder "
        "written by save_pretrained",
    )
    if weights:
        p.add_argument(
            "--weights",
            choices=("best", "last"),
            default="best",
            help="checkpoint of a run directory to use (default: best, else last)",
        )
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default: auto)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")


def _add_method_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--method",
        choices=SAMPLING_METHODS,
        default="cached",
        help="cached: per-layer caches, one position per step (default); naive: the whole "
        "network per step (the reference; same images for the same seed)",
    )


def _add_image_args(p: argparse.ArgumentParser) -> None:
    """How a user's image files become the model's levels (``pixelrnn.images.read_image``)."""
    p.add_argument(
        "--threshold",
        type=float,
        default=0.5,
        help="binary models: a pixel is 1 from this fraction of white (default: 0.5)",
    )
    p.add_argument(
        "--resize", action="store_true", help="resize images of another size (default: refuse)"
    )
    p.add_argument("--label", type=int, help="class label of your images (conditional models)")


def _add_data_args(p: argparse.ArgumentParser, split: str = "test") -> None:
    p.add_argument("--dataset", help="dataset (default: the one the run was trained on)")
    p.add_argument(
        "--binarize",
        choices=("threshold", "dynamic"),
        help="binarization of grey MNIST-type data (default: the run's)",
    )
    p.add_argument("--split", default=split, help=f"split to use (default: {split})")
    p.add_argument(
        "--data-dir", help="data root (default: $PIXELRNN_DATA or ~/.cache/pixelrnn/data)"
    )


def _add_vqvae_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--vqvae",
        metavar="RUN_DIR",
        help="a code prior's VQ-VAE, when it moved (default: where the prior recorded it; "
        "another VQ-VAE is refused)",
    )
    p.add_argument(
        "--top-prior",
        metavar="RUN_DIR",
        help="the prior over a two-level VQ-VAE's top codes, for its bottom codes' prior",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pixelrnn",
        description="Autoregressive image models (PixelRNN family): "
        "train, evaluate, sample, complete.",
    )
    parser.add_argument("--version", action="version", version=f"pixelrnn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train a model; writes a run directory")
    p.add_argument("--preset", help="named configuration (see `pixelrnn presets`)")
    p.add_argument("--model", choices=sorted(MODELS), help="model name, configured by flags")
    p.add_argument("--run-dir", help="output folder (default: runs/<preset or model>)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a stopped run exactly")
    p.add_argument(
        "--vqvae",
        metavar="RUN_DIR",
        help="train a prior over the codes of this VQ-VAE (its dataset's splits, extracted "
        "once into RUN_DIR/codes); sample and evaluate then decode through it",
    )
    p.add_argument(
        "--code-level",
        choices=("bottom", "top"),
        default="bottom",
        help="with --vqvae: the codes the prior models; a two-level VQ-VAE's bottom prior "
        "reads a map of its top codes (default: bottom)",
    )
    p.add_argument(
        "--nproc",
        type=int,
        default=1,
        help="train with N processes (DistributedDataParallel, launched with torchrun; gloo "
        "on CPU, nccl on GPUs); --batch-size stays the global batch (default: 1)",
    )
    p.add_argument(
        "--conditional",
        choices=("none", "class"),
        default="none",
        help="class: condition the model on the dataset's labels (sets --num-classes); "
        "models with a num_classes field only (default: none)",
    )
    p.add_argument(
        "--data-dir", help="data root (default: $PIXELRNN_DATA or ~/.cache/pixelrnn/data)"
    )
    model_fields = add_config_flags(
        p.add_argument_group("model configuration (overrides the preset)"), model_config_classes()
    )
    train_fields = add_config_flags(p.add_argument_group("training"), [TrainConfig])
    p.set_defaults(func=cmd_train, model_fields=model_fields, train_fields=train_fields)

    p = sub.add_parser(
        "evaluate",
        help="test NLL in nats/image and bits/dim (exact; a latent model's upper bound, KL "
        "and active units)",
    )
    _add_run_args(p)
    _add_data_args(p)
    p.add_argument("--batch-size", type=int, default=256, help="images per forward pass")
    p.add_argument("--max-images", type=int, help="score only the first N images")
    _add_vqvae_arg(p)
    p.add_argument(
        "--importance-samples",
        type=int,
        metavar="K",
        help="latent models: samples of the importance-weighted bound (default: the model's "
        "eval_samples)",
    )
    p.add_argument("-o", "--output", help="also write the result JSON here")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "sample", help="draw samples into a PNG grid (latent models: also their figures)"
    )
    _add_run_args(p)
    p.add_argument(
        "-n",
        "--num",
        type=int,
        help="number of images (default: 64); reconstructions: images (default: 8); "
        "interpolation: pairs of images (default: 8)",
    )
    p.add_argument(
        "-o",
        "--output",
        default="samples.png",
        help="output PNG; a .npy file holds the values (N, C, H, W), e.g. codes, with a PNG "
        "preview beside it",
    )
    p.add_argument("--temperature", type=float, default=1.0, help="logit temperature (default: 1)")
    _add_method_arg(p)
    p.add_argument(
        "--label",
        type=int,
        help="class of every sample (conditional models); without it a conditional model "
        "draws a class grid, one row per class",
    )
    p.add_argument(
        "--grid",
        choices=GRIDS,
        help="latent models: vary-top / vary-bottom / vary-noise (what each row shares and "
        "what changes along it; see docs/models.md), reconstructions of the split's images, "
        "or interpolations between pairs of them",
    )
    _add_data_args(p)
    _add_vqvae_arg(p)
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser(
        "complete", help="complete occluded images (your files or a split's) into a PNG grid"
    )
    _add_run_args(p)
    _add_data_args(p)
    p.add_argument(
        "--image", nargs="+", help="your image file(s) to complete, instead of a split's images"
    )
    _add_image_args(p)
    p.add_argument("--occlude", choices=OCCLUSIONS, help="region to fill (default: bottom-half)")
    p.add_argument("--mask", help="mask image of the image's size: white = erase, black = keep")
    p.add_argument("--box", help="erase the box x0,y0,x1,y1 (columns x0..x1-1, rows y0..y1-1)")
    _add_method_arg(p)
    p.add_argument(
        "-n",
        "--num",
        type=int,
        help="number of the split's images (default: 8); with --image, completions of each",
    )
    p.add_argument("--offset", type=int, default=0, help="index of the first image in the split")
    p.add_argument("--num-completions", type=int, default=3, help="completion rows per image")
    p.add_argument("-o", "--output", default="completions.png", help="output PNG")
    p.set_defaults(func=cmd_complete)

    p = sub.add_parser(
        "score", help="NLL of your image files (nats per image, bits/dim), as CSV or JSON"
    )
    _add_run_args(p)
    p.add_argument(
        "images",
        nargs="+",
        help="image files, .npy / .npz files of code grids (every grid scored), and folders "
        "of them",
    )
    _add_image_args(p)
    p.add_argument("--format", choices=("csv", "json"), default="csv", help="(default: csv)")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass")
    p.add_argument("-o", "--output", help="write the table here instead of to stdout")
    p.set_defaults(func=cmd_score)
    add_compression_parsers(sub)
    add_demo_parser(sub)

    sub.add_parser("models", help="list registered models").set_defaults(func=cmd_models)
    sub.add_parser("presets", help="list named presets").set_defaults(func=cmd_presets)
    sub.add_parser("datasets", help="list dataset names").set_defaults(func=cmd_datasets)
    sub.add_parser(
        "pretrained", help="list the pretrained models shipped with pixelrnn, with their test NLL"
    ).set_defaults(func=cmd_pretrained)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point. ``argv=None`` means the console script: it may re-exec under tcmalloc."""
    if argv is None:
        argv = sys.argv[1:]
        if argv and argv[0] in HEAVY_COMMANDS:
            reexec_with_tcmalloc(argv)
    args = build_parser().parse_args(argv)
    args.argv = list(argv)
    try:
        return args.func(args)
    except (
        ValueError,
        TypeError,
        DataFormatError,
        DatasetNotFoundError,
        RuntimeError,
        OSError,
    ) as e:
        print(f"pixelrnn: error: {_message(e)}", file=sys.stderr)
        return 2


def _message(error: BaseException) -> str:
    """One line for the user; a full disk or a read-only folder says that what was saved
    before is intact (every file is replaced only once its new version is complete)."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EROFS, errno.EACCES):
        where = f" while writing {error.filename}" if error.filename else ""
        return (
            f"{error.strerror}{where}; nothing saved before was changed (free space or choose "
            "a writable folder, then run the command again)"
        )
    return str(error)
