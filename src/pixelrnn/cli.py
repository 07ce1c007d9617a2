"""The ``pixelrnn`` command line (conventions §11): thin subcommands over the library.

Model and training flags are generated from the config dataclasses, so every field of every
registered model config and of :class:`~pixelrnn.training.TrainConfig` is a flag, with the
field's docstring as its help.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from pixelrnn.allocator import active_allocator, reexec_with_tcmalloc
from pixelrnn.checkpoint import find_pretrained_dir, load_pretrained, read_json
from pixelrnn.data import (
    LABELLED_COUNTERPARTS,
    DataFormatError,
    DatasetNotFoundError,
    available_datasets,
    dataset_image_spec,
    dataset_num_classes,
    load_dataset,
)
from pixelrnn.images import save_image_grid
from pixelrnn.models import (
    MODELS,
    PRESETS,
    AutoregressiveModel,
    conditional_models,
    create_model,
    get_preset,
)
from pixelrnn.models.base import SAMPLING_METHODS
from pixelrnn.sampling import sample_grid
from pixelrnn.training import (
    TrainConfig,
    Trainer,
    completion_grid_images,
    evaluate_nll,
    make_generator,
    occlusion_mask,
)
from pixelrnn.training.distributed import teardown_distributed
from pixelrnn.training.trainer import resolve_device
from pixelrnn.version import __version__

OCCLUSIONS = ("bottom-half", "right-half", "center")
HEAVY_COMMANDS = ("train", "evaluate", "sample", "complete")


# --- flags generated from config dataclasses -------------------------------------------------
def _field_docs(cls: type) -> dict[str, str]:
    """``name: text`` entries of the ``Attributes:`` sections of ``cls`` and its bases."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        doc = inspect.getdoc(klass) or ""
        if "Attributes:" not in doc:
            continue
        section = doc.split("Attributes:", 1)[1]
        for m in re.finditer(r"^ {4}(\w+): (.+?)(?=^ {4}\w+: |\Z)", section, re.M | re.S):
            docs[m.group(1)] = " ".join(m.group(2).split())
    return docs


def _parse_optional(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse_or_none(text: str) -> Any:
        return None if text.lower() == "none" else parse(text)

    return parse_or_none


def _parse_shape(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected C,H,W (e.g. 1,28,28), got {text!r}") from None


def _parse_bool(text: str) -> bool:
    value = text.lower()
    if value in ("true", "yes", "1", "on"):
        return True
    if value in ("false", "no", "0", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _value_parser(annotation: str) -> Callable[[str], Any]:
    base = annotation.replace(" | None", "")
    parse: Callable[[str], Any] = {
        "int": int,
        "float": float,
        "str": str,
        "bool": _parse_bool,
        "tuple[int, int, int]": _parse_shape,
    }[base]
    return _parse_optional(parse) if "None" in annotation else parse


def config_fields(classes: Sequence[type]) -> dict[str, dataclasses.Field[Any]]:
    """Fields of the given dataclasses by name (first one wins for shared names)."""
    fields: dict[str, dataclasses.Field[Any]] = {}
    for cls in classes:
        for f in dataclasses.fields(cls):
            fields.setdefault(f.name, f)
    return fields


def _add_config_flags(group: argparse._ArgumentGroup, classes: Sequence[type]) -> list[str]:
    docs: dict[str, str] = {}
    for cls in classes:
        docs = {**_field_docs(cls), **docs}
    names = []
    for name, f in config_fields(classes).items():
        default = f.default if f.default is not dataclasses.MISSING else None
        group.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            type=_value_parser(str(f.type)),
            default=argparse.SUPPRESS,  # absent unless given, so `--flag none` can override
            metavar=name.upper(),
            help=f"{docs.get(name, '')} (default: {default})",
        )
        names.append(name)
    return names


def model_config_classes() -> list[type]:
    return [cls.config_class for cls in MODELS.values()]


# --- subcommands -------------------------------------------------------------------------------
def _given(args: argparse.Namespace, names: Sequence[str]) -> dict[str, Any]:
    """The config flags given on the command line (``none`` included), by field name."""
    return {n: getattr(args, n) for n in names if hasattr(args, n)}


def launch_processes(nproc: int, argv: Sequence[str]) -> int:
    """Run ``pixelrnn train`` under ``torchrun`` with ``nproc`` processes on this machine
    (``--nproc`` removed from ``argv``); returns torchrun's exit status."""
    rest, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            rest.append(arg)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += [f"--nproc_per_node={nproc}", "-m", "pixelrnn", *rest]
    print("launching: " + " ".join(command[1:]), flush=True)
    return subprocess.run(command, check=False).returncode


def cmd_train(args: argparse.Namespace) -> int:
    if args.nproc > 1 and "WORLD_SIZE" not in os.environ:
        return launch_processes(args.nproc, args.argv)
    train_overrides = _given(args, args.train_fields)
    model_overrides = _given(args, args.model_fields)
    if args.resume:
        if model_overrides or args.preset or args.model or args.conditional != "none":
            raise ValueError("--resume continues the stored model; drop the model flags")
        trainer = Trainer.resume(args.resume, train_overrides, args.data_dir)
        if trainer.dist.is_main:
            print(f"resuming {args.resume} at epoch {trainer.epoch}, step {trainer.global_step}")
    else:
        preset = get_preset(args.preset) if args.preset else None
        if preset is None and args.model is None:
            raise ValueError("give --preset NAME or --model NAME (see `pixelrnn presets`)")
        default_dataset = preset.dataset if preset else "binarized-mnist"
        conditional = args.conditional == "class"
        if (
            conditional
            and "dataset" not in train_overrides
            and default_dataset in LABELLED_COUNTERPARTS
        ):
            labelled, binarize = LABELLED_COUNTERPARTS[default_dataset]
            if os.environ.get("RANK", "0") == "0":  # once in a torchrun job
                print(
                    f"{default_dataset} has no class labels: training on {labelled} "
                    f"(binarize={binarize}) instead; --dataset chooses another"
                )
            train_overrides.update(dataset=labelled, binarize=binarize)
        train_overrides.setdefault("dataset", default_dataset)
        if preset is not None and train_overrides["dataset"] == preset.dataset:
            train_overrides.setdefault("binarize", preset.binarize)
        for name, value in (preset.training if preset else {}).items():
            train_overrides.setdefault(name, value)  # the preset's defaults; flags win
        config = TrainConfig.from_dict(train_overrides)
        if conditional:
            name = preset.model if preset else args.model
            if name not in conditional_models():
                raise ValueError(
                    f"{name} has no class conditioning; --conditional class works with "
                    f"{conditional_models()}"
                )
            model_overrides.setdefault("num_classes", dataset_num_classes(config.dataset))
        if preset is None:
            spec = dataset_image_spec(config.dataset, config.binarize)
            if spec is not None:
                model_overrides.setdefault("image_shape", spec[0])
                model_overrides.setdefault("num_levels", spec[1])
        torch.manual_seed(config.seed)
        model = create_model(args.model, preset=args.preset, **model_overrides)
        run_dir = Path(args.run_dir or Path("runs") / (args.preset or args.model))
        if (run_dir / "last").exists() or (run_dir / "last.old").exists():
            raise ValueError(
                f"{run_dir} already holds a run: continue it with `pixelrnn train --resume "
                f"{run_dir}` or choose another --run-dir"
            )
        trainer = Trainer(model, config, run_dir, args.data_dir)
        n = sum(p.numel() for p in model.parameters())
        if trainer.dist.is_main:
            print(
                f"training {model.model_name} ({n:,} parameters) on {config.dataset} → {run_dir} "
                f"[device {trainer.device}, allocator {active_allocator()}]"
            )
    try:
        reason = trainer.fit()
    finally:
        teardown_distributed()
    if trainer.dist.is_main:
        print(f"stopped: {reason}; run directory: {trainer.run_dir}")
    return 0


def _run_data_settings(run_dir: Path, args: argparse.Namespace) -> tuple[str, str | None]:
    """Dataset and binarization: the flags, else what the run was trained on."""
    stored = (
        read_json(Path(run_dir) / "config.json")
        if (Path(run_dir) / "config.json").is_file()
        else {}
    )
    training = stored.get("training", {})
    dataset = args.dataset or training.get("dataset")
    if dataset is None:
        raise ValueError(f"{run_dir} does not say which dataset it was trained on; pass --dataset")
    binarize = args.binarize if args.binarize is not None else training.get("binarize")
    return dataset, binarize


def _load_model(args: argparse.Namespace) -> AutoregressiveModel:
    folder = Path(args.run_dir)
    if getattr(args, "weights", None) == "last":
        folder = folder / "last"
    device = resolve_device(args.device)
    return load_pretrained(find_pretrained_dir(folder), map_location=device)


def cmd_evaluate(args: argparse.Namespace) -> int:
    model = _load_model(args)
    dataset, binarize = _run_data_settings(args.run_dir, args)
    data = load_dataset(dataset, args.split, args.data_dir, binarize=binarize)
    result = evaluate_nll(
        model,
        data,
        args.batch_size,
        generator=make_generator(args.seed, "eval", args.split),
        max_images=args.max_images,
        progress=True,
    )
    text = json.dumps(result.to_dict(), indent=2)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    model = _load_model(args)
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(args.seed)
    x, ncols = sample_grid(
        model, args.num, generator, args.label, args.temperature, True, args.method
    )
    save_image_grid(x, model.num_levels, args.output, ncols=ncols)
    what = "samples" if ncols is None else f"samples, one row per class ({ncols} per class)"
    if args.label is not None:
        what = f"samples of class {args.label}"
    print(f"wrote {len(x)} {what} to {args.output}")
    return 0


def cmd_complete(args: argparse.Namespace) -> int:
    model = _load_model(args)
    device = next(model.parameters()).device
    dataset, binarize = _run_data_settings(args.run_dir, args)
    data = load_dataset(dataset, args.split, args.data_dir, binarize=binarize)
    n = min(args.num, len(data) - args.offset)
    if n < 1:
        raise ValueError(f"--offset {args.offset} is past the {len(data)} images of the split")
    x = data.batch(slice(args.offset, args.offset + n), make_generator(args.seed, "data"))
    x = x.to(device)
    known = occlusion_mask(tuple(x.shape), args.occlude).to(device)
    generator = torch.Generator(device=device).manual_seed(args.seed)
    index = slice(args.offset, args.offset + n)
    y = None if model.num_classes is None else data.labels_at(index).to(device)
    grid, hidden = completion_grid_images(
        model, x, known, args.num_completions, generator, y, args.method
    )
    save_image_grid(grid, model.num_levels, args.output, ncols=n, hidden=hidden)
    print(
        f"wrote originals, occluded inputs and {args.num_completions} completion rows "
        f"of {n} images to {args.output}"
    )
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    for name, cls in sorted(MODELS.items()):
        summary = (inspect.getdoc(cls) or "").splitlines()[0]
        print(f"{name:20s} {summary}")
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    for name, p in sorted(PRESETS.items()):
        print(f"{name:24s} {p.model:12s} {p.dataset:16s} {p.description}")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    for name in available_datasets():
        print(name)
    return 0


# --- parser --------------------------------------------------------------------------------------
def _add_run_args(p: argparse.ArgumentParser, weights: bool = True) -> None:
    p.add_argument("run_dir", help="run directory (or a folder written by save_pretrained)")
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
    model_fields = _add_config_flags(
        p.add_argument_group("model configuration (overrides the preset)"), model_config_classes()
    )
    train_fields = _add_config_flags(p.add_argument_group("training"), [TrainConfig])
    p.set_defaults(func=cmd_train, model_fields=model_fields, train_fields=train_fields)

    p = sub.add_parser("evaluate", help="exact test NLL in nats/image and bits/dim")
    _add_run_args(p)
    _add_data_args(p)
    p.add_argument("--batch-size", type=int, default=256, help="images per forward pass")
    p.add_argument("--max-images", type=int, help="score only the first N images")
    p.add_argument("-o", "--output", help="also write the result JSON here")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("sample", help="draw samples into a PNG grid")
    _add_run_args(p)
    p.add_argument("-n", "--num", type=int, default=64, help="number of images (default: 64)")
    p.add_argument("-o", "--output", default="samples.png", help="output PNG")
    p.add_argument("--temperature", type=float, default=1.0, help="logit temperature (default: 1)")
    _add_method_arg(p)
    p.add_argument(
        "--label",
        type=int,
        help="class of every sample (conditional models); without it a conditional model "
        "draws a class grid, one row per class",
    )
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("complete", help="complete occluded images into a PNG grid")
    _add_run_args(p)
    _add_data_args(p)
    p.add_argument("--occlude", choices=OCCLUSIONS, default="bottom-half", help="region to fill")
    _add_method_arg(p)
    p.add_argument("-n", "--num", type=int, default=8, help="number of images (columns)")
    p.add_argument("--offset", type=int, default=0, help="index of the first image in the split")
    p.add_argument("--num-completions", type=int, default=3, help="completion rows per image")
    p.add_argument("-o", "--output", default="completions.png", help="output PNG")
    p.set_defaults(func=cmd_complete)

    sub.add_parser("models", help="list registered models").set_defaults(func=cmd_models)
    sub.add_parser("presets", help="list named presets").set_defaults(func=cmd_presets)
    sub.add_parser("datasets", help="list dataset names").set_defaults(func=cmd_datasets)
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
        FileNotFoundError,
        DataFormatError,
        DatasetNotFoundError,
        RuntimeError,
    ) as e:
        print(f"pixelrnn: error: {e}", file=sys.stderr)
        return 2
