"""The run directory (conventions §12): everything a training run writes, and reads to resume.

::

    RUN/config.json        model name + config, training settings, package version
    RUN/last/              config.json, model.safetensors, trainer_state.{json,safetensors}
    RUN/best/              config.json, model.safetensors (lowest validation NLL)
    RUN/metrics.jsonl      one JSON object a line: train / valid / test events
    RUN/samples_epochNNN.png, RUN/loss_curve.png, RUN/samples.png, RUN/completions.png
    RUN/results.json       test NLL of the best weights

With ``ema_decay`` every ``model.safetensors`` holds the averaged weights, the ones to evaluate
and sample with; ``last/trainer_state.safetensors`` also keeps the raw training weights.

The trainer state (:mod:`pixelrnn.training.trainer_state`) goes in two files: its tensors in
``trainer_state.safetensors``, everything else in ``trainer_state.json``. Every file is written
atomically and each checkpoint folder swapped in whole (:mod:`pixelrnn.files`): a kill at any
moment leaves the old or the new checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from pixelrnn.files import (
    atomic_write,
    read_json,
    replace_dir,
    resolve_checkpoint_dir,
    write_json,
)
from pixelrnn.images import save_loss_curve
from pixelrnn.models.base import AutoregressiveModel
from pixelrnn.models.persistence import (
    CONFIG_NAME,
    load_pretrained,
    model_config_dict,
    save_pretrained,
)

STATE_JSON = "trainer_state.json"
STATE_TENSORS = "trainer_state.safetensors"
METRICS_NAME = "metrics.jsonl"
RESULTS_NAME = "results.json"


class RunDirectory:
    """Reads and writes one run directory (see the module docstring).

    Args:
        path: the folder (created on the first write).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @property
    def last(self) -> Path:
        """The ``last/`` checkpoint (``last.old`` if a swap was interrupted)."""
        return resolve_checkpoint_dir(self.path / "last")

    @property
    def best(self) -> Path:
        """The ``best/`` checkpoint (``best.old`` if a swap was interrupted)."""
        return resolve_checkpoint_dir(self.path / "best")

    # --- checkpoints -------------------------------------------------------------------------
    def write_config(self, model: AutoregressiveModel, run_config: dict[str, Any]) -> None:
        """``RUN/config.json``: what rebuilds the model, and the run's settings."""
        write_json(self.path / CONFIG_NAME, {**model_config_dict(model), **run_config})

    def save_last(
        self,
        model: AutoregressiveModel,
        run_config: dict[str, Any],
        state: dict[str, Any],
        tensors: dict[str, torch.Tensor],
    ) -> None:
        """Swap in a new ``last/``: the weights, and the trainer state (JSON and tensors)."""

        def build(folder: Path) -> None:
            save_pretrained(model, folder, run_config)
            save_file(tensors, str(folder / STATE_TENSORS))
            (folder / STATE_JSON).write_text(json.dumps(state, indent=2))

        replace_dir(build, self.path / "last")

    def save_best(self, model: AutoregressiveModel, run_config: dict[str, Any]) -> None:
        """Swap in a new ``best/`` with the weights of ``model``."""
        replace_dir(lambda d: save_pretrained(model, d, run_config), self.path / "best")

    def has_state(self) -> bool:
        """Whether ``last/`` holds a trainer state to resume from."""
        return (self.last / STATE_JSON).is_file()

    def read_state(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """The trainer state of ``last/``: the JSON part and the tensors."""
        return read_json(self.last / STATE_JSON), load_file(str(self.last / STATE_TENSORS))

    def stored_config(self) -> dict[str, Any]:
        """``last/config.json``: the model and the training settings of the checkpoint."""
        return read_json(self.last / CONFIG_NAME)

    def best_model(self, device: torch.device) -> AutoregressiveModel:
        """The best checkpoint's weights in a new model (the last ones without validation)."""
        folder = self.best if self.best.exists() else self.last
        return load_pretrained(folder, map_location=device)

    # --- metrics and results -------------------------------------------------------------------
    def append_metric(self, record: dict[str, Any]) -> None:
        """One line of ``metrics.jsonl``."""
        with open(self.path / METRICS_NAME, "a") as f:
            f.write(json.dumps(record) + "\n")

    def metrics(self) -> list[dict[str, Any]]:
        """Every line of ``metrics.jsonl`` (none before the first)."""
        path = self.path / METRICS_NAME
        lines = path.read_text().splitlines() if path.is_file() else []
        return [json.loads(line) for line in lines if line.strip()]

    def truncate_metrics(self, global_step: int) -> None:
        """Drop metric lines written after step ``global_step`` (by a run that was then
        killed after its last checkpoint)."""
        path = self.path / METRICS_NAME
        if not path.is_file():
            return
        kept = [r for r in self.metrics() if r.get("step", 0) <= global_step]
        text = "".join(json.dumps(r) + "\n" for r in kept)
        atomic_write(path, lambda p: p.write_text(text))

    def write_results(self, results: dict[str, Any]) -> None:
        """``results.json``: the test NLL of the best weights."""
        write_json(self.path / RESULTS_NAME, results)

    def draw_loss_curve(self) -> None:
        """``loss_curve.png``: training (a trailing mean, per-batch values are noisy at small
        batch sizes) and validation bits/dim against the step."""
        train: list[tuple[float, float]] = []
        valid: list[tuple[float, float]] = []
        for r in self.metrics():
            if r["event"] == "train":
                train.append((r["step"], r["bits_per_dim"]))
            elif r["event"] == "valid":
                valid.append((r["step"], r["bits_per_dim"]))
        window = 20
        smoothed = [
            (step, sum(v for _, v in train[max(0, k - window + 1) : k + 1]) / min(k + 1, window))
            for k, (step, _) in enumerate(train)
        ]
        series = {f"train (mean of {window} logs)": smoothed, "valid": valid}
        save_loss_curve(series, self.path / "loss_curve.png", "bits/dim")
