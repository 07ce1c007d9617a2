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
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from pixelrnn.files import (
    FolderLock,
    read_json,
    remove_temporaries,
    replace_dir,
    resolve_checkpoint_dir,
    restore_interrupted_swap,
    write_json,
)
from pixelrnn.images import save_line_chart
from pixelrnn.models.base import AutoregressiveModel
from pixelrnn.models.persistence import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    CheckpointCorruptedError,
    load_pretrained,
    model_config_dict,
    save_pretrained,
    verify_checksums,
    write_checksums,
)

STATE_JSON = "trainer_state.json"
STATE_TENSORS = "trainer_state.safetensors"
METRICS_NAME = "metrics.jsonl"
RESULTS_NAME = "results.json"
METRIC_EVENTS = ("train", "valid", "test")
CHECKPOINTS = ("last", "best")


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

    # --- one writer, and what killed writers left -------------------------------------------------
    def lock(self) -> FolderLock:
        """Take the run directory for this process (``RuntimeError`` naming the pid of another
        live process that has it)."""
        return FolderLock(self.path).acquire()

    def recover(self) -> None:
        """Undo what kills left (call with the lock held): a checkpoint swap interrupted between
        its renames is completed backwards, build folders and temporary files are removed."""
        for name in CHECKPOINTS:
            restore_interrupted_swap(self.path / name)
        remove_temporaries(self.path, CHECKPOINTS)

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
            (folder / STATE_JSON).write_text(json.dumps(state, indent=2, allow_nan=False))
            write_checksums(folder, [CONFIG_NAME, WEIGHTS_NAME, STATE_TENSORS, STATE_JSON])

        replace_dir(build, self.path / "last")

    def save_best(self, model: AutoregressiveModel, run_config: dict[str, Any]) -> None:
        """Swap in a new ``best/`` with the weights of ``model``."""
        replace_dir(lambda d: save_pretrained(model, d, run_config), self.path / "best")

    def has_state(self) -> bool:
        """Whether ``last/`` holds a trainer state to resume from."""
        return (self.last / STATE_JSON).is_file()

    def read_state(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """The trainer state of ``last/``: the JSON part and the tensors, their files checked
        against the checkpoint's digests first."""
        folder = self.last
        try:
            verify_checksums(folder, [STATE_JSON, STATE_TENSORS])
        except CheckpointCorruptedError as e:
            raise CheckpointCorruptedError(f"{e}{self.intact_hint()}") from None
        try:
            tensors = load_file(str(folder / STATE_TENSORS))
        except (SafetensorError, OSError) as e:
            raise ValueError(
                f"{folder / STATE_TENSORS}: not a readable safetensors file ({e})"
            ) from None
        return read_json(folder / STATE_JSON), tensors

    def intact_hint(self) -> str:
        """Where an intact copy of the weights is, for a corrupted ``last/``."""
        try:
            verify_checksums(self.best, [CONFIG_NAME, WEIGHTS_NAME])
        except (CheckpointCorruptedError, OSError, ValueError):
            return "; no intact checkpoint is left"
        if (self.best / WEIGHTS_NAME).is_file():
            return f"; {self.best} is intact (evaluate and sample read best/ by default)"
        return ""

    def stored_config(self) -> dict[str, Any]:
        """``last/config.json``: the model and the training settings of the checkpoint."""
        return read_json(self.last / CONFIG_NAME)

    def best_model(self, device: torch.device) -> AutoregressiveModel:
        """The best checkpoint's weights in a new model (the last ones without validation)."""
        folder = self.best if self.best.exists() else self.last
        return load_pretrained(folder, map_location=device)

    # --- metrics and results -------------------------------------------------------------------
    def append_metric(self, record: dict[str, Any]) -> None:
        """One line of ``metrics.jsonl``. A validation or test record already there (same
        event, step and epoch: written before a kill, recomputed after the resume) is not
        written twice."""
        if record["event"] != "train":
            key = (record["event"], record["step"], record["epoch"])
            if any((r["event"], r["step"], r["epoch"]) == key for r in self.metrics()):
                return
        line = json.dumps(record, allow_nan=False) + "\n"
        with open(self.path / METRICS_NAME, "a") as f:
            f.write(line)

    def metrics(self) -> list[dict[str, Any]]:
        """Every record of ``metrics.jsonl`` (none before the first), checked: an object with
        a known ``event`` and integer ``step`` and ``epoch`` ≥ 0 a line. A last line without its
        newline (an append cut short by a kill) is ignored.

        Raises:
            ValueError: naming the file and line of the first bad record.
        """
        return [record for record, _ in self._records()]

    def _records(self) -> list[tuple[dict[str, Any], int]]:
        """Each record and the byte offset where its line ends."""
        path = self.path / METRICS_NAME
        if not path.is_file():
            return []
        data = path.read_bytes()
        records, start = [], 0
        for number, line in enumerate(data.split(b"\n")[:-1], start=1):  # [-1]: unfinished
            start += len(line) + 1
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise ValueError(f"{path}:{number}: not a JSON line") from None
            problem = _metric_problem(record)
            if problem:
                raise ValueError(f"{path}:{number}: {problem}")
            records.append((record, start))
        return records

    def truncate_metrics(self, global_step: int) -> None:
        """Drop the records after step ``global_step`` (written by a run that was then killed
        after its last checkpoint) and an unfinished last line, by truncating the file in place
        (records are in step order; no second copy of the file is needed)."""
        path = self.path / METRICS_NAME
        if not path.is_file():
            return
        end = 0
        for record, line_end in self._records():
            if record["step"] > global_step:
                break
            end = line_end
        if end < path.stat().st_size:
            os.truncate(path, end)

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
        save_line_chart(series, self.path / "loss_curve.png", "bits/dim")


def _metric_problem(record: Any) -> str | None:
    """What is wrong with one metrics record, or None."""
    if not isinstance(record, dict):
        return f"expected an object, found {type(record).__name__}"
    if record.get("event") not in METRIC_EVENTS:
        return (
            f"field 'event': expected one of {list(METRIC_EVENTS)}, found {record.get('event')!r}"
        )
    for name in ("step", "epoch"):
        value = record.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            return f"field {name!r}: expected an integer >= 0, found {value!r}"
    return None
