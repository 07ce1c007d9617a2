"""The trainer state a checkpoint keeps beside the weights, so a resumed run continues exactly.

Tensors (the optimizer's, the raw training weights when the saved weights are a moving average,
the CPU random-number state) travel in safetensors, the rest (the position in the run, the
optimizer's settings) in JSON: restoring a checkpoint never runs code.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch.optim.swa_utils import AveragedModel

from pixelrnn.config_io import DictConfig
from pixelrnn.models.persistence import state_dict_for_saving

TRAIN_WEIGHTS = "train_weights."  # prefix of the raw weights in the tensors when EMA is on


@dataclass(frozen=True)
class RunPosition(DictConfig):
    """Where a run stands: the epoch, the step in it, the steps in all, and the best
    validation NLL so far (nats per image; None before the first validation)."""

    epoch: int
    step_in_epoch: int
    global_step: int
    best_valid_nats: float | None

    def __post_init__(self) -> None:
        for name in ("epoch", "step_in_epoch", "global_step"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


def pack_trainer_state(
    position: RunPosition,
    optimizer: torch.optim.Optimizer,
    model: torch.nn.Module,
    ema: AveragedModel | None,
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The JSON part and the tensors of the trainer state.

    With ``ema`` the saved weights are the average: the raw training weights go here.
    """
    tensors, optimizer_meta = flatten_optimizer_state(optimizer.state_dict())
    tensors["rng.torch"] = torch.get_rng_state()
    if ema is not None:
        raw = state_dict_for_saving(model)
        tensors.update({TRAIN_WEIGHTS + k: v for k, v in raw.items()})
        tensors["ema.n_averaged"] = ema.n_averaged.detach().cpu()
    return {**asdict(position), "optimizer": optimizer_meta}, tensors


def check_trainer_state(
    state: Any,
    tensors: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    model: torch.nn.Module,
    ema: AveragedModel | None,
    source: str,
) -> RunPosition:
    """Check a stored trainer state against the run it must continue, before anything is
    restored or written: the position (types, ranges), the optimizer's groups and the shape of
    every per-parameter tensor, the random-number state, the raw weights and averaging count
    with EMA, and that every tensor is finite.

    Returns:
        the stored position.

    Raises:
        ValueError: one line naming ``source`` and what is wrong.
    """
    if not isinstance(state, dict):
        raise ValueError(f"{source}: expected an object, found {type(state).__name__}")
    fields = {k: state.get(k) for k in ("epoch", "step_in_epoch", "global_step", "best_valid_nats")}
    missing = sorted(k for k in fields if k not in state)
    if missing:
        raise ValueError(f"{source}: missing field(s) {missing}")
    position = RunPosition.from_dict(fields, source)
    meta = state.get("optimizer")
    if not (
        isinstance(meta, dict)
        and isinstance(meta.get("state"), dict)
        and isinstance(meta.get("param_groups"), list)
    ):
        raise ValueError(
            f"{source}: field 'optimizer': expected an object with 'state' and 'param_groups'"
        )
    groups = optimizer.param_groups
    stored_groups = meta["param_groups"]
    shapes = [tuple(p.shape) for g in groups for p in g["params"]]
    if len(stored_groups) != len(groups) or any(
        not isinstance(sg, dict) or len(sg.get("params", ())) != len(g["params"])
        for sg, g in zip(stored_groups, groups, strict=False)
    ):
        raise ValueError(
            f"{source}: the optimizer's parameter groups do not fit this model "
            f"({len(shapes)} parameters)"
        )
    for pid, slots in meta["state"].items():
        if not (isinstance(pid, str) and pid.isdigit() and int(pid) < len(shapes)):
            raise ValueError(f"{source}: optimizer state for an unknown parameter {pid!r}")
        if not isinstance(slots, dict):
            raise ValueError(f"{source}: optimizer state {pid}: expected an object")
        for value in slots.values():
            if not (isinstance(value, dict) and "tensor" in value):
                continue
            name = value["tensor"]
            if name not in tensors:
                raise ValueError(f"{source}: the tensor {name!r} is missing from the state tensors")
            tensor = tensors[name]
            if tensor.numel() > 1 and tuple(tensor.shape) != shapes[int(pid)]:
                raise ValueError(
                    f"{source}: {name} has shape {tuple(tensor.shape)}, the parameter "
                    f"{shapes[int(pid)]}"
                )
    rng = tensors.get("rng.torch")
    if rng is None or rng.dtype != torch.uint8 or rng.dim() != 1:
        raise ValueError(f"{source}: the random-number state 'rng.torch' is missing or damaged")
    if ema is not None:
        raw = {
            k.removeprefix(TRAIN_WEIGHTS): v
            for k, v in tensors.items()
            if k.startswith(TRAIN_WEIGHTS)
        }
        expected = model.state_dict()
        if set(raw) != set(expected) or any(raw[k].shape != expected[k].shape for k in raw):
            raise ValueError(f"{source}: the raw training weights do not fit this model")
        if "ema.n_averaged" not in tensors:
            raise ValueError(f"{source}: the averaging count 'ema.n_averaged' is missing")
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ValueError(f"{source}: {name} holds NaN or infinite values")
    return position


def restore_trainer_state(
    state: dict[str, Any],
    tensors: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    model: torch.nn.Module,
    ema: AveragedModel | None,
    capturable: bool,
) -> RunPosition:
    """Load the optimizer, the raw weights (with EMA), the averaging count and the CPU RNG
    state; return the run's position.

    Args:
        capturable: this run's setting, not the stored one: a run resumed with a recorded
            CUDA step needs its optimizer's step counts on the GPU, and one resumed without it
            does not (``load_state_dict`` places the step counts by the stored groups' flag).
    """
    optimizer_state = unflatten_optimizer_state(state["optimizer"], tensors)
    for group in optimizer_state["param_groups"]:
        group["capturable"] = capturable
    optimizer.load_state_dict(optimizer_state)
    # with EMA, model.safetensors (loaded into the model and copied into the average) holds the
    # averaged weights; the raw training weights come from the state tensors
    raw = {
        k.removeprefix(TRAIN_WEIGHTS): v for k, v in tensors.items() if k.startswith(TRAIN_WEIGHTS)
    }
    if raw:
        model.load_state_dict(raw)
    if ema is not None and "ema.n_averaged" in tensors:
        ema.n_averaged.copy_(tensors["ema.n_averaged"])
    torch.set_rng_state(tensors["rng.torch"])
    return RunPosition(
        state["epoch"], state["step_in_epoch"], state["global_step"], state["best_valid_nats"]
    )


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
