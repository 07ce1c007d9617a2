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

from pixelrnn.models.persistence import state_dict_for_saving

TRAIN_WEIGHTS = "train_weights."  # prefix of the raw weights in the tensors when EMA is on


@dataclass(frozen=True)
class RunPosition:
    """Where a run stands: the epoch, the step in it, the steps in all, and the best
    validation NLL so far (nats per image; None before the first validation)."""

    epoch: int
    step_in_epoch: int
    global_step: int
    best_valid_nats: float | None


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
