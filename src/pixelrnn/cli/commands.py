"""The subcommands: each a thin call into the library."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from pixelrnn.allocator import active_allocator
from pixelrnn.cli.flags import given_flags
from pixelrnn.data import (
    LABELLED_COUNTERPARTS,
    NOMINAL_DATASETS,
    available_datasets,
    dataset_image_spec,
    dataset_num_classes,
    load_dataset,
)
from pixelrnn.data.formats import read_code_grids
from pixelrnn.device import resolve_device
from pixelrnn.files import read_json
from pixelrnn.images import box_mask, read_image, read_mask, save_image_grid
from pixelrnn.models import (
    MODELS,
    PRESETS,
    AutoregressiveModel,
    conditional_models,
    create_model,
    find_pretrained_dir,
    get_preset,
    load_pretrained,
)
from pixelrnn.models.pretrained import available_pretrained, pretrained_card
from pixelrnn.sampling import completion_grid_images, occlusion_mask
from pixelrnn.training import TrainConfig, Trainer, evaluate_nll, make_generator
from pixelrnn.training.code_prior import (
    CODES_DIR,
    LEVELS,
    evaluate_two_stage,
    is_code_prior,
    load_vqvae,
    read_record,
    recorded_vqvae,
    top_prior_for,
    write_code_splits,
)
from pixelrnn.training.distributed import teardown_distributed
from pixelrnn.training.evaluate import check_fits, context_map
from pixelrnn.units import bits_per_dim


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
    train_overrides = given_flags(args, args.train_fields)
    model_overrides = given_flags(args, args.model_fields)
    if args.resume:
        if model_overrides or args.preset or args.model or args.conditional != "none" or args.vqvae:
            raise ValueError("--resume continues the stored model; drop the model flags")
        data_dir = args.data_dir
        if data_dir is None and is_code_prior(args.resume):
            data_dir = Path(args.resume) / CODES_DIR
        trainer = Trainer.resume(args.resume, train_overrides, data_dir)
        if trainer.dist.is_main:
            print(f"resuming {args.resume} at epoch {trainer.epoch}, step {trainer.global_step}")
    else:
        preset = get_preset(args.preset) if args.preset else None
        if preset is None and args.model is None:
            raise ValueError("give --preset NAME or --model NAME (see `pixelrnn presets`)")
        default_dataset = preset.dataset if preset else "binarized-mnist"
        conditional = args.conditional == "class"
        run_dir = Path(args.run_dir or Path("runs") / (args.preset or args.model))
        if (run_dir / "last").exists() or (run_dir / "last.old").exists():
            raise ValueError(
                f"{run_dir} already holds a run: continue it with `pixelrnn train --resume "
                f"{run_dir}` or choose another --run-dir"
            )
        data_dir = args.data_dir
        if args.vqvae is not None:
            data_dir = prepare_code_prior(args, run_dir, train_overrides, model_overrides)
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
            if "num_classes" not in model_overrides:  # (a code prior's: its images')
                model_overrides["num_classes"] = dataset_num_classes(config.dataset)
        if preset is None:
            spec = dataset_image_spec(config.dataset, config.binarize)
            if spec is None:  # the files say: read the training split
                train = load_dataset(config.dataset, config.train_split, data_dir)
                spec = train.image_shape, train.num_levels
                if train.context_levels is not None:  # a conditioning code map per grid
                    model_overrides.setdefault("context_channels", train.context_levels)
            model_overrides.setdefault("image_shape", spec[0])
            model_overrides.setdefault("num_levels", spec[1])
        family = MODELS[preset.model if preset else args.model]
        if config.dataset in NOMINAL_DATASETS and family.supports_embedding:
            # codes are names, not intensities (pixelrnn.nn.input_encoding)
            model_overrides.setdefault("input_encoding", "embedding")
        torch.manual_seed(config.seed)
        model = create_model(args.model, preset=args.preset, **model_overrides)
        trainer = Trainer(model, config, run_dir, data_dir)
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


def prepare_code_prior(
    args: argparse.Namespace,
    run_dir: Path,
    train_overrides: dict[str, object],
    model_overrides: dict[str, object],
) -> Path:
    """``train --vqvae RUN``: the VQ-VAE's codes of the splits written into ``run_dir/codes``
    (once), the prior sized to them (grid shape, ``K``, classes) and trained on them. Returns
    the data folder of the prior's ``code-grids``."""
    if "dataset" in train_overrides:
        raise ValueError("--vqvae trains on the VQ-VAE's codes: drop --dataset")
    vqvae = load_vqvae(args.vqvae)
    stored = read_json(find_pretrained_dir(args.vqvae) / "config.json").get("training", {})
    dataset, binarize = stored.get("dataset"), stored.get("binarize")
    if dataset is None:
        raise ValueError(f"{args.vqvae} does not say which dataset it was trained on")
    level = args.code_level
    if level == "top" and len(vqvae.code_shapes) == 1:
        raise ValueError(f"--code-level top: {args.vqvae} has one code level")
    h, w = vqvae.code_shapes[LEVELS.index(level)]
    k = vqvae.config.num_codes
    # the bottom prior of a two-level VQ-VAE reads a map of the top codes
    context = k if level == "bottom" and len(vqvae.code_shapes) > 1 else None
    for name, value in (("image_shape", (1, h, w)), ("num_levels", k)):
        if model_overrides.get(name, value) != value:
            raise ValueError(f"--{name.replace('_', '-')}: the VQ-VAE's codes need {value}")
        model_overrides[name] = value
    if context is not None:
        model_overrides["context_channels"] = context
    if args.conditional == "class":
        model_overrides.setdefault("num_classes", dataset_num_classes(dataset))
    fields = (("train_split", "train"), ("valid_split", "valid"), ("test_split", "test"))
    splits = [str(train_overrides.get(f, default) or "") for f, default in fields]
    splits = [split for split in splits if split]  # an empty split name: none
    if os.environ.get("RANK", "0") == "0":
        print(f"codes of {dataset} {', '.join(splits)} under {args.vqvae} → {run_dir / CODES_DIR}")
    # every process writes what is missing (the same bytes, each file replaced atomically)
    folder = write_code_splits(
        vqvae, args.vqvae, dataset, binarize, splits, args.data_dir, run_dir, level
    )
    train_overrides["dataset"] = "code-grids"
    return folder


def run_data_settings(
    run_dir: Path, args: argparse.Namespace
) -> tuple[str, str | None, str | Path | None]:
    """Dataset, binarization and data folder: the flags, else what the run (or the pretrained
    model of that name) was trained on; a code prior's codes are in its run directory."""
    folder = Path(run_dir) if Path(run_dir).exists() else find_pretrained_dir(run_dir)
    stored = read_json(folder / "config.json") if (folder / "config.json").is_file() else {}
    training = stored.get("training", {})
    dataset = args.dataset or training.get("dataset")
    if dataset is None:
        raise ValueError(f"{run_dir} does not say which dataset it was trained on; pass --dataset")
    binarize = args.binarize if args.binarize is not None else training.get("binarize")
    data_dir = args.data_dir
    if data_dir is None and args.dataset is None and (folder / CODES_DIR).is_dir():
        data_dir = folder / CODES_DIR  # a code prior's codes
    return dataset, binarize, data_dir


def load_model(args: argparse.Namespace) -> AutoregressiveModel:
    folder = Path(args.run_dir)
    if getattr(args, "weights", None) == "last":
        folder = folder / "last"
    device = resolve_device(args.device)
    return load_pretrained(find_pretrained_dir(folder), map_location=device)


def cmd_evaluate(args: argparse.Namespace) -> int:
    model = load_model(args)
    if is_code_prior(args.run_dir):  # the two-stage bound on the VQ-VAE's images
        device = next(model.parameters()).device
        vqvae = recorded_vqvae(args.run_dir, args.vqvae, device)
        record = read_record(args.run_dir)
        images = load_dataset(
            args.dataset or record["dataset"],
            args.split,
            args.data_dir,
            binarize=args.binarize or record["binarize"],
        )
        top_prior = top_prior_for(args.run_dir, vqvae, args.top_prior, device)
        two_stage = evaluate_two_stage(
            model, vqvae, images, args.batch_size, args.max_images, top_prior
        )
        return _print_result(dataclasses.asdict(two_stage), args.output)
    dataset, binarize, data_dir = run_data_settings(args.run_dir, args)
    data = load_dataset(dataset, args.split, data_dir, binarize=binarize)
    result = evaluate_nll(
        model,
        data,
        args.batch_size,
        generator=make_generator(args.seed, "eval", args.split),
        max_images=args.max_images,
        progress=True,
        importance_samples=args.importance_samples,
    )
    return _print_result(result.to_dict(), args.output)


def _print_result(result: dict[str, object], output: str | None) -> int:
    text = json.dumps(result, indent=2)
    print(text)
    if output:
        Path(output).write_text(text + "\n")
    return 0


def cmd_complete(args: argparse.Namespace) -> int:
    model = load_model(args)
    device = next(model.parameters()).device
    num_completions = args.num_completions
    context = None
    if args.image:
        refuse_context_model(model, "complete --image")
        # the files are the images: -n counts the completions of each
        num_completions = args.num if args.num is not None else num_completions
        x = torch.stack([_read(path, model, args) for path in args.image])
        y = own_labels(model, args.label, len(x))
    else:
        dataset, binarize, data_dir = run_data_settings(args.run_dir, args)
        data = load_dataset(dataset, args.split, data_dir, binarize=binarize)
        n = min(8 if args.num is None else args.num, len(data) - args.offset)
        if n < 1:
            raise ValueError(f"--offset {args.offset} is past the {len(data)} images of the split")
        index = slice(args.offset, args.offset + n)
        x = data.batch(index, make_generator(args.seed, "data"))
        y = None if model.num_classes is None else data.labels_at(index)
        check_fits(data, model)
        context = context_map(data, index, model)
    known = _known_mask(args, tuple(x.shape))
    x, known = x.to(device), known.to(device)
    y = None if y is None else y.to(device)
    generator = torch.Generator(device=device).manual_seed(args.seed)
    grid, hidden = completion_grid_images(
        model, x, known, num_completions, generator, y, args.method, context
    )
    save_image_grid(grid, model.num_levels, args.output, ncols=len(x), hidden=hidden)
    print(
        f"wrote originals, occluded inputs and {num_completions} completion rows "
        f"of {len(x)} images to {args.output}"
    )
    return 0


def _read(path: str | Path, model: AutoregressiveModel, args: argparse.Namespace) -> torch.Tensor:
    """A user's image file as the model's levels ``(C, H, W)``."""
    return read_image(
        path, model.image_shape, model.num_levels, threshold=args.threshold, resize=args.resize
    )


def refuse_context_model(model: AutoregressiveModel, command: str) -> None:
    """A model that reads a conditioning map per image works on a split that has them."""
    if model.config.context_channels is not None:
        raise ValueError(
            f"this {model.model_name} reads a conditioning map per image, which {command} "
            "does not give: use a split of its code-grids data (evaluate, complete, sample)"
        )


def own_labels(model: AutoregressiveModel, label: int | None, n: int) -> torch.Tensor | None:
    """``--label`` for the user's images: required by a conditional model, refused otherwise."""
    if model.num_classes is None:
        if label is not None:
            raise ValueError(
                f"--label needs a class-conditional model; this {model.model_name} is not"
            )
        return None
    if label is None:
        raise ValueError(
            f"this {model.model_name} is class-conditional ({model.num_classes} classes): "
            "pass --label for your images"
        )
    return torch.full((n,), label, dtype=torch.long)


def _known_mask(args: argparse.Namespace, shape: tuple[int, ...]) -> torch.Tensor:
    """The pixels to keep, from ``--mask``, ``--box`` or ``--occlude`` (at most one of them;
    ``bottom-half`` when none is given). Shape: ``(B, C, H, W)`` → bool, the same."""
    given = [name for name in ("mask", "box", "occlude") if getattr(args, name) is not None]
    if len(given) > 1:
        raise ValueError(f"choose one of --mask, --box and --occlude, not {' and '.join(given)}")
    if args.mask is not None:
        return read_mask(args.mask, shape[1:]).expand(shape).clone()
    if args.box is not None:
        return box_mask(args.box, shape[1:]).expand(shape).clone()
    return occlusion_mask(shape, args.occlude or "bottom-half")


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


CODE_SUFFIXES = (".npy", ".npz")  # code grids (pixelrnn.data.formats.code_grids)


def image_files(paths: Sequence[str]) -> list[Path]:
    """The files named, and the image and code files of the folders named (sorted by name)."""
    files: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            suffixes = (*IMAGE_SUFFIXES, *CODE_SUFFIXES)
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in suffixes)
            if not found:
                raise ValueError(f"{path}: no image or code files ({', '.join(suffixes)}) in it")
            files += found
        else:
            files.append(path)
    return files


def scored_items(
    paths: Sequence[str], model: AutoregressiveModel, args: argparse.Namespace
) -> list[tuple[str, Callable[[], torch.Tensor]]]:
    """What ``score`` scores, each a name and a reader of its ``(C, H, W)`` levels: the image
    files, and every grid of a code file (named ``file[i]``)."""
    items: list[tuple[str, Callable[[], torch.Tensor]]] = []
    for path in image_files(paths):
        if path.suffix in CODE_SUFFIXES:
            codes = torch.from_numpy(read_code_grids(path, model.num_levels).codes)
            items += [(f"{path}[{i}]", lambda g=grid: g) for i, grid in enumerate(codes)]
        else:
            items.append((str(path), lambda p=path: _read(p, model, args)))
    return items


def cmd_score(args: argparse.Namespace) -> int:
    """NLL of every image file (every grid of a ``.npy`` / ``.npz`` code file) under the model,
    in nats per image and bits per dimension."""
    model = load_model(args).eval()
    refuse_context_model(model, "score")
    device = next(model.parameters()).device
    items = scored_items(args.images, model, args)
    rows = []
    with torch.no_grad():
        for start in range(0, len(items), args.batch_size):
            part = items[start : start + args.batch_size]
            x = torch.stack([read() for _, read in part]).to(device)
            model.check_images(x, part[0][0] if len(part) == 1 else "the files' images")
            y = own_labels(model, args.label, len(x))
            nats = -model.log_prob(x, y=None if y is None else y.to(device)).double()
            for (name, _), value in zip(part, nats.tolist(), strict=True):
                rows.append(
                    {
                        "file": name,
                        "nats_per_image": value,
                        "bits_per_dim": float(bits_per_dim(torch.tensor(value), model.num_dims)),
                    }
                )
    if args.format == "json":
        text = json.dumps(rows, indent=2) + "\n"
    else:
        text = "file,nats_per_image,bits_per_dim\n" + "".join(
            f"{r['file']},{r['nats_per_image']:.6f},{r['bits_per_dim']:.6f}\n" for r in rows
        )
    if args.output:
        Path(args.output).write_text(text)
        print(f"scored {len(rows)} images; wrote {args.output}")
    else:
        sys.stdout.write(text)
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


def cmd_pretrained(args: argparse.Namespace) -> int:
    print(f"{'name':28s} {'dataset':16s} {'test NLL':>13s} {'bits/dim':>8s} {'paper':>7s}")
    for name in available_pretrained():
        card = pretrained_card(name)
        paper = "-" if card.paper_nats_per_image is None else f"{card.paper_nats_per_image:.2f}"
        bound = "" if card.likelihood == "exact" else "<="  # a VQ-VAE's and a code prior's
        nll = f"{bound}{card.nats_per_image:.2f} nats"
        print(f"{name:28s} {card.dataset:16s} {nll:>13s} {card.bits_per_dim:8.4f} {paper:>7s}")
    print("<=: an upper bound on the NLL (the model card's likelihood field says which)")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    for name in available_datasets():
        print(name)
    return 0


# --- parser --------------------------------------------------------------------------------------
