"""Run directories and checkpoints (conventions §12).

A pretrained folder holds ``config.json`` (model name, config, package version) and
``model.safetensors`` (weights of the unwrapped module). Training adds ``trainer_state.json``
and ``trainer_state.safetensors`` (optimizer, step, RNG states). Nothing here unpickles:
tensors travel in safetensors, everything else in JSON, so loading a file never runs code.

Every file is written atomically (temporary file in the same folder, ``fsync``, ``os.replace``);
a whole checkpoint folder is swapped in with :func:`replace_dir`, so a kill at any moment leaves
either the old or the new checkpoint, never a mix.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from pixelrnn.models.base import AutoregressiveModel
from pixelrnn.models.registry import MODELS
from pixelrnn.version import __version__

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


@functools.cache
def _umask() -> int:
    """The process umask, read once (reading it means setting and restoring it, which other
    threads could observe, so it is not repeated for every write)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp_path)`` then move the result onto ``path`` in one step."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    text = json.dumps(obj, indent=2, sort_keys=False) + "\n"
    atomic_write(path, lambda p: p.write_text(text))


def read_json(path: str | Path) -> Any:
    """Read a JSON file with an error that names the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None


def replace_dir(build: Callable[[Path], None], target: str | Path) -> None:
    """Build a folder with ``build(tmp_dir)`` and swap it in for ``target``.

    The old folder is renamed to ``<target>.old`` first and removed only after the new one is
    in place; :func:`resolve_checkpoint_dir` falls back to ``.old`` if a kill came in between.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; give the usual mode
    old = target.with_name(target.name + ".old")
    try:
        build(tmp)
        if old.exists():
            shutil.rmtree(old)
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
        if old.exists():
            shutil.rmtree(old)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def resolve_checkpoint_dir(path: str | Path) -> Path:
    """``path`` itself, or ``path.old`` when a swap was interrupted after the rename."""
    path = Path(path)
    old = path.with_name(path.name + ".old")
    if not path.exists() and old.exists():
        return old
    return path


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
    """The folder holding the weights for ``path``: itself, else its ``best/``, else ``last/``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such run or model folder")
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
    """Rebuild a model from a folder written by :func:`save_pretrained` or a training run.

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


def flatten_optimizer_state(
    state: dict[str, Any],
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split ``optimizer.state_dict()`` into safetensors-ready tensors and JSON-ready rest."""
    tensors: dict[str, torch.Tensor] = {}
    per_param: dict[str, dict[str, Any]] = {}
    for pid, slots in state["state"].items():
        entry: dict[str, Any] = {}
        for key, value in slots.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{pid}.{key}"] = value.detach().contiguous().cpu()
                entry[key] = {"tensor": f"optimizer.{pid}.{key}"}
            else:
                entry[key] = value
        per_param[str(pid)] = entry
    return tensors, {"state": per_param, "param_groups": state["param_groups"]}


def unflatten_optimizer_state(
    meta: dict[str, Any], tensors: dict[str, torch.Tensor]
) -> dict[str, Any]:
    """Inverse of :func:`flatten_optimizer_state`."""
    state: dict[int, dict[str, Any]] = {}
    for pid, slots in meta["state"].items():
        state[int(pid)] = {
            k: tensors[v["tensor"]] if isinstance(v, dict) and "tensor" in v else v
            for k, v in slots.items()
        }
    return {"state": state, "param_groups": meta["param_groups"]}
