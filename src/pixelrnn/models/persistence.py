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
from pixelrnn.models.pretrained import available_pretrained, pretrained_dir
from pixelrnn.models.registry import MODELS
from pixelrnn.version import __version__

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


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


def model_fingerprint(model: AutoregressiveModel) -> bytes:
    """A SHA-256 of what the model computes: its registry name and config (not the package
    version) and every tensor of its state — name, dtype, shape and bytes, in name order.
    Two models with the same fingerprint give the same outputs on the same machine.

    Returns:
        32 bytes.
    """
    digest = hashlib.sha256()
    config = {k: v for k, v in model_config_dict(model).items() if k != "pixelrnn_version"}
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
    atomic_write(path / WEIGHTS_NAME, lambda p: save_file(weights, str(p)))
    write_json(path / CONFIG_NAME, {**model_config_dict(model), **(extra_config or {})})


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
    cfg = read_json(folder / CONFIG_NAME)
    name = cfg.get("model") if isinstance(cfg, dict) else None
    if name not in MODELS:
        raise ValueError(
            f"{folder / CONFIG_NAME}: model {name!r} is not registered; "
            f"known models: {sorted(MODELS)}"
        )
    cls = MODELS[name]
    model = cls(cls.config_class.from_dict(cfg.get("config", {})))
    try:
        weights = load_file(str(folder / WEIGHTS_NAME), device=str(map_location))
    except (SafetensorError, OSError) as e:
        raise ValueError(
            f"{folder / WEIGHTS_NAME}: not a readable safetensors file ({e})"
        ) from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    mismatched = sorted(
        k for k in set(expected) & set(weights) if expected[k].shape != weights[k].shape
    )
    if missing or unexpected or mismatched:
        raise ValueError(
            f"{folder / WEIGHTS_NAME} does not fit a {name} with this config: "
            f"missing {missing}, unexpected {unexpected}, wrong shape {mismatched}"
        )
    model.load_state_dict(weights)
    return model.to(map_location)
