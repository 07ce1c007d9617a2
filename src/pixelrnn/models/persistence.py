"""Saving and loading models (conventions §12): a folder of ``config.json`` and
``model.safetensors``.

``config.json`` holds the registry name, the model config and the package version (and, for a
training run, its training and data settings); ``model.safetensors`` the weights of the
unwrapped module. Only JSON and safetensors are read, so loading a file never runs code.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from pixelrnn.files import atomic_write, read_json, resolve_checkpoint_dir, write_json
from pixelrnn.models.base import AutoregressiveModel
from pixelrnn.models.memory import check_fits_memory
from pixelrnn.models.pretrained import available_pretrained, pretrained_dir
from pixelrnn.models.registry import MODELS
from pixelrnn.version import __version__

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CHECKSUMS_NAME = "checksums.json"


class CheckpointCorruptedError(ValueError):
    """A file whose bytes differ from the SHA-256 recorded when it was written."""


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_checksums(folder: str | Path, names: list[str]) -> None:
    """``checksums.json``: the SHA-256 of the files ``names`` of a checkpoint folder, written
    after them (inside the folder being built, before it is swapped in)."""
    folder = Path(folder)
    write_json(folder / CHECKSUMS_NAME, {name: sha256_file(folder / name) for name in names})


def verify_checksums(folder: str | Path, names: list[str]) -> None:
    """Check the files ``names`` of ``folder`` against its ``checksums.json`` (a folder without
    one, written by an older version or by hand, is not checked).

    Raises:
        CheckpointCorruptedError: a file differs from its recorded digest or is not recorded.
    """
    folder = Path(folder)
    if not (folder / CHECKSUMS_NAME).is_file():
        return
    recorded = read_json(folder / CHECKSUMS_NAME)
    if not isinstance(recorded, dict):
        raise CheckpointCorruptedError(f"{folder / CHECKSUMS_NAME}: not an object of digests")
    for name in names:
        if name not in recorded:
            raise CheckpointCorruptedError(
                f"checkpoint corrupted: {folder / name} has no digest in {CHECKSUMS_NAME}"
            )
        if sha256_file(folder / name) != recorded[name]:
            raise CheckpointCorruptedError(
                f"checkpoint corrupted: {folder / name} differs from the SHA-256 recorded "
                "when it was saved"
            )


def state_dict_for_saving(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Contiguous CPU copies of the persistent state of the unwrapped module."""
    module = getattr(model, "module", model)  # unwrap DistributedDataParallel
    return {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}


def model_config_dict(model: AutoregressiveModel) -> dict[str, Any]:
    """What rebuilds the model: its registry name, config and the package version."""
    return {
        "model": model.model_name,
        "config": model.config.to_dict(),
        "pixelrnn_version": __version__,
    }


# config fields added after the first fingerprinted files: left out of the fingerprint at their
# default values, so that a model's fingerprint (and the .prnn files that name it) stays the same
LATER_FIELD_DEFAULTS: dict[str, object] = {
    "input_encoding": "intensity",
    "embedding_dim": 16,
    "top_downsamplings": None,  # a VQ-VAE's: one code level
}
_NOT_A_DEFAULT = object()


def model_fingerprint(model: AutoregressiveModel) -> bytes:
    """A SHA-256 of what the model computes: its registry name and config (not the package
    version) and every tensor of its state — name, dtype, shape and bytes, in name order.
    Two models with the same fingerprint give the same outputs on the same machine.

    Returns:
        32 bytes.
    """
    digest = hashlib.sha256()
    config = {k: v for k, v in model_config_dict(model).items() if k != "pixelrnn_version"}
    config["config"] = {
        name: value
        for name, value in config["config"].items()
        if LATER_FIELD_DEFAULTS.get(name, _NOT_A_DEFAULT) != value
    }
    digest.update(json.dumps(config, sort_keys=True).encode())
    for name, tensor in sorted(state_dict_for_saving(model).items()):
        digest.update(f"\n{name}:{tensor.dtype}:{tuple(tensor.shape)}\n".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.digest()


def save_pretrained(
    model: AutoregressiveModel, path: str | Path, extra_config: dict[str, Any] | None = None
) -> None:
    """Write ``config.json`` and ``model.safetensors`` into the folder ``path``.

    Args:
        model: the model (a DDP wrapper is unwrapped).
        path: folder, created if needed.
        extra_config: further JSON sections for ``config.json`` (training and data settings).
    """
    model = getattr(model, "module", model)
    path = Path(path)
    weights = state_dict_for_saving(model)
    refuse_non_finite(weights, f"the weights to save in {path}")
    atomic_write(path / WEIGHTS_NAME, lambda p: save_file(weights, str(p)))
    write_json(path / CONFIG_NAME, {**model_config_dict(model), **(extra_config or {})})
    write_checksums(path, [CONFIG_NAME, WEIGHTS_NAME])


def refuse_non_finite(tensors: dict[str, torch.Tensor], what: str) -> None:
    """Raise if a floating tensor holds NaN or infinity, naming the first one."""
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ValueError(
                f"{what}: {name} holds NaN or infinite values (weights of a diverged run?)"
            )


def find_pretrained_dir(path: str | Path) -> Path:
    """The folder holding the weights for ``path``: itself, else its ``best/``, else ``last/``;
    or, where no such file or folder exists, the shipped model of that name
    (:mod:`pixelrnn.models.pretrained`, its weights checked against its card)."""
    if not Path(path).exists() and str(path) in available_pretrained():
        return pretrained_dir(str(path), WEIGHTS_NAME)
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: no such run or model folder, nor a pretrained model of that name "
            f"(pretrained: {', '.join(available_pretrained()) or 'none'})"
        )
    for candidate in (path, path / "best", path / "last"):
        candidate = resolve_checkpoint_dir(candidate)
        if (candidate / WEIGHTS_NAME).is_file():
            return candidate
    raise FileNotFoundError(
        f"{path}: no {WEIGHTS_NAME} in the folder, its best/ or its last/ checkpoint"
    )


def load_pretrained(
    path: str | Path, map_location: str | torch.device = "cpu"
) -> AutoregressiveModel:
    """Rebuild a model from a folder written by :func:`save_pretrained` or a training run, or
    a shipped model by name (``pixelrnn pretrained`` lists them).

    ``path`` may be a run directory: its ``best/`` checkpoint is used, else ``last/``.
    Only JSON and safetensors are read; nothing is unpickled.
    """
    folder = find_pretrained_dir(path)
    config_file, weights_file = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    verify_checksums(folder, [CONFIG_NAME, WEIGHTS_NAME])
    cfg = read_json(config_file)
    name = cfg.get("model") if isinstance(cfg, dict) else None
    if name not in MODELS:
        raise ValueError(
            f"{config_file}: field 'model': expected one of {sorted(MODELS)}, found {name!r}"
        )
    cls = MODELS[name]
    config = cls.config_class.from_dict(cfg.get("config", {}), f"{config_file}: config")
    check_fits_memory(cls, config, str(config_file))
    try:
        weights = load_file(str(weights_file), device=str(map_location))
    except (SafetensorError, OSError) as e:
        raise ValueError(f"{weights_file}: not a readable safetensors file ({e})") from None
    model = cls(config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    mismatched = sorted(
        k for k in set(expected) & set(weights) if expected[k].shape != weights[k].shape
    )
    if missing or unexpected or mismatched:
        raise ValueError(
            f"{weights_file} does not fit a {name} with this config: "
            f"missing {missing}, unexpected {unexpected}, wrong shape {mismatched}"
        )
    model = model.to(_saved_dtype(weights, expected, weights_file))
    refuse_non_finite(weights, str(weights_file))
    model.load_state_dict(weights)
    return model.to(map_location)


def _saved_dtype(
    weights: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], source: Path
) -> torch.dtype:
    """The floating dtype the weights were saved in (the model is built in it): one dtype for
    every floating tensor, float32 or float64, and integer tensors where the model has them."""
    floating = {w.dtype for k, w in weights.items() if expected[k].is_floating_point()}
    wrong = sorted(
        f"{k} ({w.dtype})"
        for k, w in weights.items()
        if w.is_floating_point() != expected[k].is_floating_point()
        or (not w.is_floating_point() and w.dtype != expected[k].dtype)
    )
    if wrong or len(floating) > 1 or not floating <= {torch.float32, torch.float64}:
        found = ", ".join(wrong[:3]) if wrong else ", ".join(sorted(map(str, floating)))
        raise ValueError(
            f"{source}: weights must be float32 or float64 throughout (the dtypes they were "
            f"saved in), found {found}"
        )
    return floating.pop() if floating else torch.float32
