"""The training loop (conventions §10): plain, linear and model-agnostic (``log_prob`` only).

Run directory::

    RUN/config.json        model name + config, training settings, package version
    RUN/last/              config.json, model.safetensors, trainer_state.{json,safetensors}
    RUN/best/              config.json, model.safetensors (lowest validation NLL)
    RUN/metrics.jsonl      one JSON object a line: train / valid / test events
    RUN/samples_epochNNN.png, RUN/loss_curve.png, RUN/samples.png, RUN/completions.png
    RUN/results.json       test NLL of the best weights

With ``ema_decay`` every ``model.safetensors`` holds the averaged weights, the ones to evaluate
and sample with; ``last/trainer_state.safetensors`` also keeps the raw training weights.

Exact resumption: the data order of epoch ``e`` is a permutation drawn from a generator seeded
by ``(seed, e)``, the binarization noise of step ``s`` from ``(seed, s)``, and the optimizer and
RNG states are checkpointed; so a run stopped at any step and resumed gives bit-for-bit the
weights of an uninterrupted run on the CPU.

Several processes (``torchrun``, ``pixelrnn train --nproc N``; ``training/distributed.py``):
every rank draws the same global batch and trains a DDP replica on its share; rank 0 writes
the run directory; evaluations are split between ranks and summed exactly. The same run on any
number of processes takes the same steps, up to float rounding, and resumes on any number.
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from pixelrnn.allocator import tune_for_training
from pixelrnn.checkpoint import (
    atomic_write,
    flatten_optimizer_state,
    load_pretrained,
    model_config_dict,
    read_json,
    replace_dir,
    resolve_checkpoint_dir,
    save_pretrained,
    state_dict_for_saving,
    unflatten_optimizer_state,
    write_json,
)
from pixelrnn.data import ImageDataset, load_dataset
from pixelrnn.images import save_image_grid, save_loss_curve
from pixelrnn.models.base import AutoregressiveModel
from pixelrnn.sampling import sample_grid
from pixelrnn.training.batches import EpochBatches, epoch_steps
from pixelrnn.training.config import TrainConfig
from pixelrnn.training.cuda_graph import GraphedTrainStep
from pixelrnn.training.distributed import DistributedContext, setup_distributed
from pixelrnn.training.evaluate import EvalResult, check_labelled, evaluate_nll
from pixelrnn.training.seeding import derive_seed, make_generator

STATE_JSON = "trainer_state.json"
STATE_TENSORS = "trainer_state.safetensors"
TRAIN_WEIGHTS = "train_weights."  # prefix of the raw weights in STATE_TENSORS when EMA is on


def progress_interval() -> float:
    """Seconds between progress-bar refreshes: live on a terminal, sparse in a log file."""
    return 0.1 if sys.stderr.isatty() else 30.0


def resolve_device(device: str) -> torch.device:
    """``"auto"`` → CUDA when available, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} asked for, but CUDA is not available")
    return torch.device(device)


def occlusion_mask(shape: tuple[int, ...], kind: str) -> torch.Tensor:
    """``known`` mask for an occlusion: ``bottom-half``, ``right-half`` or ``center``.

    Shape:
        ``(B, C, H, W)`` → bool ``(B, C, H, W)``, True where the pixel is given.
    """
    known = torch.ones(shape, dtype=torch.bool)
    h, w = shape[-2], shape[-1]
    if kind == "bottom-half":
        known[..., h // 2 :, :] = False
    elif kind == "right-half":
        known[..., :, w // 2 :] = False
    elif kind == "center":
        known[..., h // 4 : h - h // 4, w // 4 : w - w // 4] = False
    else:
        raise ValueError(f"occlusion must be bottom-half, right-half or center, got {kind!r}")
    return known


def completion_grid_images(
    model: AutoregressiveModel,
    x: torch.Tensor,
    known: torch.Tensor,
    num_completions: int,
    generator: torch.Generator | None,
    y: torch.Tensor | None = None,
    method: str = "cached",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of a completion figure: originals, occluded inputs, then ``num_completions`` rows.

    ``y``: the images' labels ``(B,)`` for a conditional model; ``method``: sampling method.

    Returns:
        the images ``((2 + num_completions) · B, C, H, W)`` and a bool mask of the same shape
        that is True on the hidden sub-pixels of the occluded row (drawn grey).
    """
    repeated_x = x.repeat(num_completions, 1, 1, 1)
    repeated_known = known.repeat(num_completions, 1, 1, 1)
    repeated_y = None if y is None else y.repeat(num_completions)
    completions = model.complete(
        repeated_x, repeated_known, generator=generator, y=repeated_y, method=method
    )
    images = torch.cat([x, x, completions])
    hidden = torch.zeros_like(images, dtype=torch.bool)
    hidden[len(x) : 2 * len(x)] = ~known
    return images, hidden


def ema_with_warmup(
    decay: float,
) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """The moving-average update for ``AveragedModel``: after ``t`` updates, decay
    ``min(decay, (1 + t) / (10 + t))`` — the warm-up of TensorFlow's
    ``ExponentialMovingAverage(num_updates=t)`` — so the average does not hold on to the first,
    fast-changing weights in short runs (measured: a 2,500-step CIFAR-10 run at a flat 0.999
    scored 4.70 bits/dim with averaged weights against 4.16 with the raw ones).

    Shape: averaged and current parameters of any shape; ``t`` a 0-d tensor.
    """

    def update(averaged: torch.Tensor, current: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        n = float(t)
        rate = min(decay, (1.0 + n) / (10.0 + n))
        return averaged + (current - averaged) * (1.0 - rate)

    return update


class Trainer:
    """Trains one model into one run directory.

    Args:
        model: a freshly built model (or the one restored by :meth:`resume`).
        config: training settings.
        run_dir: output folder.
        data_dir: data root (default: ``$PIXELRNN_DATA`` or the user cache folder).
    """

    def __init__(
        self,
        model: AutoregressiveModel,
        config: TrainConfig,
        run_dir: str | Path,
        data_dir: str | Path | None = None,
    ) -> None:
        self.config = config
        self.data_dir = data_dir
        self.run_dir = Path(run_dir)
        tune_for_training()  # glibc keeps freed activation blocks (see pixelrnn.allocator)
        self.dist: DistributedContext = setup_distributed(resolve_device(config.device))
        self.device = self.dist.device
        self.model = model.to(self.device)
        # the module whose forward training calls: a DDP replica in a multi-process job
        self.network: torch.nn.Module = self.model
        if self.dist.is_distributed:
            # channels_last weights with a single output channel have size-1 dimensions whose
            # strides differ from their gradients'; DDP warns about the layout every step, but
            # the values and the bucket copy are unaffected
            warnings.filterwarnings("ignore", "Grad strides do not match bucket view strides")
            self.network = DistributedDataParallel(self.model)  # broadcasts rank 0's weights
            # per-rank randomness (e.g. dropout) from then on: a stream of its own per rank
            torch.manual_seed(derive_seed(config.seed, "rank", self.dist.rank))
        if config.compile:
            self.network = torch.compile(self.network)
        if config.cuda_graph:
            _check_cuda_graph_settings(config, self.device, self.dist.is_distributed)
        self._graphed: GraphedTrainStep | None = None  # recorded at the first full batch
        # Polyak averaging (PixelCNN++ §3.1): torch's own EMA utility, updated after every step
        self.ema: AveragedModel | None = None
        if config.ema_decay is not None:
            self.ema = AveragedModel(self.model, avg_fn=ema_with_warmup(config.ema_decay))
        self.optimizer = self._make_optimizer()
        self.epoch = 0
        self.step_in_epoch = 0
        self.global_step = 0
        self.best_valid_nats: float | None = None
        self._stop_requested = False
        c = config
        self.train_data = self._load(c.train_split)
        if c.max_train_images is not None:
            self.train_data = self.train_data.head(c.max_train_images)
        self.valid_data = self._load(c.valid_split) if c.valid_split else None
        for ds in filter(None, (self.train_data, self.valid_data)):
            if ds.image_shape != model.image_shape or ds.num_levels != model.num_levels:
                raise ValueError(
                    f"dataset {c.dataset}/{ds.split} has {ds.num_levels}-level images of shape "
                    f"{ds.image_shape}, the model expects {model.num_levels} levels and shape "
                    f"{model.image_shape}; pick a matching preset or set --binarize"
                )
            check_labelled(ds, model)
        if c.drop_last and self.steps_per_epoch == 0:
            raise ValueError(
                f"drop_last with {len(self.train_data)} training images and batch_size "
                f"{c.batch_size} leaves no full batch: lower --batch-size or set "
                "--drop-last false"
            )

    # --- set-up ------------------------------------------------------------------------------
    def _load(self, split: str) -> ImageDataset:
        return load_dataset(
            self.config.dataset,
            split,
            self.data_dir,
            binarize=self.config.binarize,  # type: ignore[arg-type]
        )

    @property
    def evaluation_model(self) -> AutoregressiveModel:
        """The weights validation, test, samples and saved checkpoints use: the moving average
        with ``ema_decay``, else the trained weights themselves."""
        return self.model if self.ema is None else self.ema.module  # type: ignore[return-value]

    def initialize_from_data(self) -> None:
        """Data-dependent initialisation (weight-normalised models such as PixelCNN++) from
        the first ``data_init_images`` training images, the same weights on every rank."""
        n = min(self.config.data_init_images, len(self.train_data))
        init = getattr(self.model, "initialize_from_data", None)
        if not n or init is None or not getattr(self.model.config, "weight_norm", False):
            return
        index = torch.arange(n)
        x = self.train_data.batch(index, make_generator(self.config.seed, "data-init"))
        y = None if self.model.num_classes is None else self.train_data.labels_at(index)
        init(x.to(self.device), None if y is None else y.to(self.device))
        self.dist.broadcast_parameters(self.model)

    def _make_optimizer(self) -> torch.optim.Optimizer:
        params = self.model.parameters()
        # a recorded step keeps the optimizer's step counts on the GPU
        capturable = self.config.cuda_graph
        if self.config.optimizer == "adam":
            return torch.optim.Adam(params, lr=self.config.lr, capturable=capturable)
        return torch.optim.RMSprop(params, lr=self.config.lr, capturable=capturable)

    @property
    def steps_per_epoch(self) -> int:
        return epoch_steps(len(self.train_data), self.config.batch_size, self.config.drop_last)

    def learning_rate(self) -> float:
        """Learning rate of the next step, a pure function of the position in the run."""
        c = self.config
        if c.lr_schedule == "exponential":
            return c.lr * c.lr_decay**self.epoch
        if c.lr_schedule == "cosine":
            total = c.epochs * self.steps_per_epoch
            return 0.5 * c.lr * (1.0 + math.cos(math.pi * min(self.global_step / total, 1.0)))
        return c.lr

    def run_config(self) -> dict[str, Any]:
        """The ``training`` section of ``config.json``."""
        return {"training": self.config.to_dict()}

    # --- checkpoints -------------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        """Swap in a new ``last/`` checkpoint atomically (rank 0 of a multi-process job)."""
        if not self.dist.is_main:
            return
        tensors, optim_meta = flatten_optimizer_state(self.optimizer.state_dict())
        tensors["rng.torch"] = torch.get_rng_state()
        state = {
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step,
            "best_valid_nats": self.best_valid_nats,
            "optimizer": optim_meta,
        }

        if self.ema is not None:
            raw = state_dict_for_saving(self.model)
            tensors.update({TRAIN_WEIGHTS + k: v for k, v in raw.items()})
            tensors["ema.n_averaged"] = self.ema.n_averaged.detach().cpu()

        def build(folder: Path) -> None:
            save_pretrained(self.evaluation_model, folder, self.run_config())
            save_file(tensors, str(folder / STATE_TENSORS))
            (folder / STATE_JSON).write_text(json.dumps(state, indent=2))

        replace_dir(build, self.run_dir / "last")

    def _restore_trainer_state(self, folder: Path) -> None:
        """Restore optimizer, position and RNG state (the weights come with the model)."""
        state = read_json(folder / STATE_JSON)
        tensors = load_file(str(folder / STATE_TENSORS))
        optimizer_state = unflatten_optimizer_state(state["optimizer"], tensors)
        for group in optimizer_state["param_groups"]:
            # this run's setting, not the stored one: a run resumed with --cuda-graph true
            # needs a capturable optimizer (its step counts on the GPU), and one resumed without
            # it does not; load_state_dict places the step counts by the stored groups' flag
            group["capturable"] = self.config.cuda_graph
        self.optimizer.load_state_dict(optimizer_state)
        # with EMA, model.safetensors (loaded into self.model and copied into self.ema) holds the
        # averaged weights; the raw training weights come from the state file
        raw = {
            k.removeprefix(TRAIN_WEIGHTS): v
            for k, v in tensors.items()
            if k.startswith(TRAIN_WEIGHTS)
        }
        if raw:
            self.model.load_state_dict(raw)
        if self.ema is not None and "ema.n_averaged" in tensors:
            self.ema.n_averaged.copy_(tensors["ema.n_averaged"])
        torch.set_rng_state(tensors["rng.torch"])
        if self.dist.is_distributed:  # rank 0's state was saved: give each rank its own stream
            seed = derive_seed(self.config.seed, "rank", self.dist.rank, state["global_step"])
            torch.manual_seed(seed)
        self.epoch = state["epoch"]
        self.step_in_epoch = state["step_in_epoch"]
        self.global_step = state["global_step"]
        self.best_valid_nats = state["best_valid_nats"]
        if self.dist.is_main:
            self._truncate_metrics()

    def _truncate_metrics(self) -> None:
        """Drop metric lines written after the checkpoint (by a run that was then killed)."""
        path = self.run_dir / "metrics.jsonl"
        if not path.is_file():
            return
        kept = [
            line
            for line in path.read_text().splitlines()
            if line.strip() and json.loads(line).get("step", 0) <= self.global_step
        ]
        text = "".join(line + "\n" for line in kept)
        atomic_write(path, lambda p: p.write_text(text))

    # --- logging -----------------------------------------------------------------------------
    def log(self, event: str, **values: Any) -> None:
        if not self.dist.is_main:
            return
        record = {"event": event, "step": self.global_step, "epoch": self.epoch, **values}
        with open(self.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")

    def draw_loss_curve(self) -> None:
        if not self.dist.is_main:
            return
        series: dict[str, list[tuple[float, float]]] = {"train": [], "valid": []}
        path = self.run_dir / "metrics.jsonl"
        for line in path.read_text().splitlines() if path.is_file() else []:
            r = json.loads(line)
            if r["event"] == "train":
                series["train"].append((r["step"], r["bits_per_dim"]))
            elif r["event"] == "valid":
                series["valid"].append((r["step"], r["bits_per_dim"]))
        # per-batch values are noisy at small batch sizes: plot a trailing mean of 20 log lines
        train, window = series.pop("train"), 20
        series = {
            f"train (mean of {window} logs)": [
                (
                    step,
                    sum(v for _, v in train[max(0, k - window + 1) : k + 1]) / min(k + 1, window),
                )
                for k, (step, _) in enumerate(train)
            ],
            **series,
        }
        save_loss_curve(series, self.run_dir / "loss_curve.png", "bits/dim")

    # --- the loop ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _stop_on_signals(self) -> Iterator[None]:
        """SIGINT / SIGTERM finish the current step, checkpoint and return."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def request_stop(signum: int, frame: object) -> None:
            self._stop_requested = True

        old = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, handler in old.items():
                signal.signal(s, handler)

    STOP_REASONS = ("max_steps", "time_budget", "signal")

    def _agreed_stop(self, started: float) -> str | None:
        """:meth:`_should_stop`, agreed on by all processes (the most urgent reason wins), so
        that every rank leaves the loop at the same step."""
        reason = self._should_stop(started)
        code = 0 if reason is None else 1 + self.STOP_REASONS.index(reason)
        code = self.dist.all_reduce_max(code)
        return None if code == 0 else self.STOP_REASONS[code - 1]

    def _should_stop(self, started: float) -> str | None:
        c = self.config
        if self._stop_requested:
            return "signal"
        if c.max_steps is not None and self.global_step >= c.max_steps:
            return "max_steps"
        if (
            c.time_budget_minutes is not None
            and time.monotonic() - started >= 60 * c.time_budget_minutes
        ):
            return "time_budget"
        return None

    def _epoch_loader(self, order: torch.Tensor) -> DataLoader:
        """The rest of this epoch's global batches, from ``num_workers`` loader processes."""
        c = self.config
        batches = EpochBatches(
            self.train_data,
            order,
            c.batch_size,
            self.step_in_epoch,
            self.global_step,
            c.seed,
            labels=self.model.num_classes is not None,
            drop_last=c.drop_last,
        )
        # batch_size=None: every item is already a whole batch. The loader's own generator: an
        # iterator otherwise draws its workers' base seed from the global stream, which a resumed
        # run would then hold in another state (dropout draws from it)
        loader_seed = make_generator(c.seed, "loader", self.epoch, self.step_in_epoch)
        return DataLoader(
            batches, batch_size=None, num_workers=c.num_workers, generator=loader_seed
        )

    def _to_device(self, x: torch.Tensor) -> torch.Tensor:
        """A batch on the training device (from pinned memory, asynchronously, on CUDA)."""
        if self.device.type == "cuda" and self.config.pin_memory:
            return x.pin_memory().to(self.device, non_blocking=True)
        return x.to(self.device)

    def train_step(
        self, x: torch.Tensor, y: torch.Tensor | None = None, global_batch: int | None = None
    ) -> float:
        """One optimizer step on this process's share of a batch (labels ``y`` for a
        conditional model); returns the global batch's loss in nats per sub-pixel.

        The share is processed in ``config.grad_accumulation`` micro-batches whose gradients
        add up (DDP synchronises only on the last), so accumulation changes memory, not the
        step.

        Args:
            global_batch: images in the whole batch over all processes (default: ``len(x)``).
                Each micro-batch's loss is its summed nats scaled so that DDP's average of the
                processes' gradients is the gradient of the mean over the global batch.
        """
        n = len(x) if global_batch is None else global_batch
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate()

        def step(x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
            return self._step(x, y, self.dist.world_size / (n * self.model.num_dims))

        recorded = self.config.cuda_graph and len(x) == n
        if recorded or self.config.compile:
            # the recorded or compiled forward reads no values, so the range check is here
            self.model.check_images(x)
            self.model.check_labels(y, len(x))
        if recorded:
            if self._graphed is None and len(x) == self.config.batch_size:
                self._graphed = GraphedTrainStep(step, self.model, self.optimizer, x, y)
            if self._graphed is not None and self._graphed.matches(x, y):
                total = self._graphed(x, y)
            else:  # another batch size (an epoch's last batch): the ordinary step, which
                # keeps the recorded step's gradient buffers (zeroed, not dropped)
                self.optimizer.zero_grad(set_to_none=self._graphed is None)
                total = step(x, y)
        else:
            self.optimizer.zero_grad(set_to_none=True)
            total = step(x, y)
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        total = self.dist.all_reduce_sum(total.to(self.dist.collective_device))
        return float(total) / (n * self.model.num_dims)

    def _step(self, x: torch.Tensor, y: torch.Tensor | None, scale: float) -> torch.Tensor:
        """Gradients (zeroed by the caller) of ``scale`` times the nats of ``(x, y)``, clipped,
        then the optimizer step; returns the nats, float64 on the training device. No host
        synchronisation, so that :class:`GraphedTrainStep` can record it."""
        # micro-batches; at least one, even if empty, so that every rank joins DDP's reduction
        index = torch.arange(len(x))
        parts = [p for p in index.tensor_split(self.config.grad_accumulation) if len(p)] or [index]
        total = torch.zeros((), dtype=torch.float64, device=x.device)
        bf16 = self.config.precision == "bf16"
        for k, part in enumerate(parts):
            # DDP all-reduces the gradients once, in the backward pass of the last micro-batch
            syncing = k == len(parts) - 1 or not self.dist.is_distributed
            with contextlib.nullcontext() if syncing else self.network.no_sync():  # type: ignore[operator]
                # a recorded step cannot reuse autocast's cast cache across replays
                with torch.autocast(
                    self.device.type,
                    dtype=torch.bfloat16,
                    enabled=bf16,
                    cache_enabled=not self.config.cuda_graph,
                ):
                    xs, ys = _rows(x, part), None if y is None else _rows(y, part)
                    params = self.network(xs) if ys is None else self.network(xs, ys)
                    nats = -self.model.log_prob_from_params(params, xs).sum()
                (nats * scale).backward()
            total += nats.detach().double()
        if self.config.clip_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip_grad_norm)
        self.optimizer.step()
        return total

    def fit(self) -> str:
        """Train until the configured end; returns why it stopped.

        ``"done"`` (all epochs), ``"max_steps"``, ``"time_budget"`` or ``"signal"``. Every
        reason but ``"signal"`` is followed by :meth:`finish`.
        """
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.dist.is_main:
            write_json(
                self.run_dir / "config.json",
                {**model_config_dict(self.model), **self.run_config()},
            )
        c = self.config
        if self.global_step == 0:
            self.initialize_from_data()
        started = time.monotonic()
        reason = "done"
        self.model.train()
        with self._stop_on_signals():
            while self.epoch < c.epochs:
                order = torch.randperm(
                    len(self.train_data), generator=make_generator(c.seed, "order", self.epoch)
                )
                bar = tqdm(
                    total=self.steps_per_epoch,
                    initial=self.step_in_epoch,
                    desc=f"epoch {self.epoch + 1}/{c.epochs}",
                    unit="step",
                    dynamic_ncols=True,
                    mininterval=progress_interval(),
                    disable=not self.dist.is_main,
                )
                window_start, window_images, smoothed = time.perf_counter(), 0, None
                batches = iter(self._epoch_loader(order))
                while self.step_in_epoch < self.steps_per_epoch:
                    stop = self._agreed_stop(started)
                    if stop:
                        reason = stop
                        break
                    # the global batch, drawn alike on every rank; this rank keeps its share
                    index, x, y = next(batches)
                    share = self.dist.shard(len(index))
                    x = self._to_device(x[share])
                    y = None if y is None else self._to_device(y[share])
                    loss = self.train_step(x, y, global_batch=len(index))
                    self.step_in_epoch += 1
                    self.global_step += 1
                    window_images += len(index)
                    bpd = loss / math.log(2)
                    smoothed = bpd if smoothed is None else 0.98 * smoothed + 0.02 * bpd
                    rate = window_images / max(time.perf_counter() - window_start, 1e-9)
                    bar.update(1)
                    bar.set_postfix(bpd=f"{smoothed:.4f}", img_s=f"{rate:.0f}", refresh=False)
                    if self.global_step % c.log_every == 0:
                        self.log(
                            "train",
                            bits_per_dim=bpd,
                            nats_per_image=loss * self.model.num_dims,
                            lr=self.learning_rate(),
                            images_per_second=rate,
                        )
                        window_start, window_images = time.perf_counter(), 0
                    if self.global_step % c.checkpoint_every == 0:
                        self.save_checkpoint()
                bar.close()
                if reason != "done":
                    break
                self._end_of_epoch()  # checkpoints too
            if reason == "time_budget" and self.step_in_epoch > 0:
                self._validate()  # the minutes since the last epoch end count too
            if reason != "done":
                self.save_checkpoint()
        if reason != "signal":
            self.finish()
        return reason

    def _validate(self) -> None:
        """Score the validation split; keep the weights as ``best/`` when they are the best."""
        if self.valid_data is None:
            return
        result = self._evaluate(self.valid_data, self.evaluation_model)
        self.log("valid", **_metrics(result))
        if self.best_valid_nats is None or result.nats_per_image < self.best_valid_nats:
            self.best_valid_nats = result.nats_per_image
            if not self.dist.is_main:
                return
            replace_dir(
                lambda d: save_pretrained(self.evaluation_model, d, self.run_config()),
                self.run_dir / "best",
            )

    def _end_of_epoch(self) -> None:
        c = self.config
        self.epoch += 1
        self.step_in_epoch = 0
        self._validate()
        if (
            c.sample_every
            and self.epoch % c.sample_every == 0
            and c.num_samples
            and self.dist.is_main
        ):
            self._draw_samples(
                self.evaluation_model,
                make_generator(c.seed, "samples", self.epoch, device=self.device),
                self.run_dir / f"samples_epoch{self.epoch:03d}.png",
            )
        self.draw_loss_curve()
        self.save_checkpoint()

    def _draw_samples(
        self, model: AutoregressiveModel, generator: torch.Generator, path: Path
    ) -> None:
        """A sample grid; one row per class for a conditional model."""
        images, ncols = sample_grid(model, self.config.num_samples, generator)
        save_image_grid(images, model.num_levels, path, ncols=ncols)

    def _evaluate(self, dataset: ImageDataset, model: AutoregressiveModel) -> EvalResult:
        return evaluate_nll(
            model,
            dataset,
            self.config.eval_batch_size,
            generator=make_generator(self.config.seed, "eval", dataset.split),
            max_images=self.config.max_eval_images,
            context=self.dist,
        )

    def best_model(self) -> AutoregressiveModel:
        """The best checkpoint's weights in a new model (the last ones without validation;
        the averaged weights with EMA)."""
        if resolve_checkpoint_dir(self.run_dir / "best").exists():
            return load_pretrained(self.run_dir / "best", map_location=self.device)
        return load_pretrained(self.run_dir / "last", map_location=self.device)

    def finish(self) -> EvalResult | None:
        """Score the test split with the best weights and draw the final samples and completions.

        In a multi-process job every rank scores its share of the test split; rank 0 writes the
        result and draws the figures.
        """
        c = self.config
        self.dist.barrier()  # rank 0 has written best/ and last/
        model = self.best_model()
        result = None
        test_data = self._load(c.test_split) if c.test_split else None
        if test_data is not None:
            result = self._evaluate(test_data, model)
            self.log("test", **_metrics(result))
            if self.dist.is_main:
                write_json(self.run_dir / "results.json", result.to_dict())
                tqdm.write(
                    f"test NLL ({result.num_images} images): {result.nats_per_image:.2f} "
                    f"nats/image, {result.bits_per_dim:.4f} bits/dim"
                )
        if not self.dist.is_main:
            return result
        if c.num_samples:
            self._draw_samples(
                model,
                make_generator(c.seed, "samples", "final", device=self.device),
                self.run_dir / "samples.png",
            )
        source = test_data or self.valid_data
        if c.num_completions and source is not None:
            n = min(8, len(source))
            # evenly spaced through the split (a split may be sorted by class)
            index = torch.linspace(0, len(source) - 1, n).long()
            x = source.batch(index, make_generator(c.seed, "completion-data")).to(self.device)
            known = occlusion_mask(tuple(x.shape), "bottom-half").to(self.device)
            y = None if model.num_classes is None else source.labels_at(index).to(self.device)
            grid, hidden = completion_grid_images(
                model,
                x,
                known,
                c.num_completions,
                make_generator(c.seed, "completions", device=self.device),
                y,
            )
            save_image_grid(
                grid, model.num_levels, self.run_dir / "completions.png", ncols=n, hidden=hidden
            )
        self.draw_loss_curve()
        return result

    @classmethod
    def resume(
        cls,
        run_dir: str | Path,
        overrides: dict[str, Any] | None = None,
        data_dir: str | Path | None = None,
    ) -> Trainer:
        """Rebuild the trainer of ``run_dir`` from its ``last/`` checkpoint.

        Args:
            run_dir: an existing run directory.
            overrides: training settings to change (e.g. ``epochs`` to train longer).
            data_dir: data root, as for the constructor.
        """
        run_dir = Path(run_dir)
        folder = resolve_checkpoint_dir(run_dir / "last")
        if not (folder / STATE_JSON).is_file():
            raise FileNotFoundError(f"{run_dir}: no last/ checkpoint to resume from")
        stored = read_json(folder / "config.json")
        config = TrainConfig.from_dict({**stored["training"], **(overrides or {})})
        trainer = cls(load_pretrained(folder), config, run_dir, data_dir)
        trainer._restore_trainer_state(folder)
        return trainer


def _check_cuda_graph_settings(
    config: TrainConfig, device: torch.device, distributed: bool
) -> None:
    """Raise a clear error where ``cuda_graph`` cannot record the step."""
    if device.type != "cuda":
        raise ValueError(f"cuda_graph records CUDA kernels: train with --device cuda, not {device}")
    if distributed:
        raise ValueError("cuda_graph runs in one process: drop --nproc")
    if config.compile:
        raise ValueError("cuda_graph and compile exclude each other: choose one")
    if config.lr_schedule != "constant":
        raise ValueError(
            "cuda_graph records the learning rate into the step: use --lr-schedule constant"
        )


def _rows(t: torch.Tensor, part: torch.Tensor) -> torch.Tensor:
    """``t[part]`` for a contiguous run of indices ``part``, as a slice (indexing with an index
    tensor would copy it to the GPU first, which a recorded step must not do)."""
    if len(part) == len(t):
        return t
    return t[int(part[0]) : int(part[-1]) + 1]


def _metrics(result: EvalResult) -> dict[str, Any]:
    return {
        "split": result.split,
        "nats_per_image": result.nats_per_image,
        "bits_per_dim": result.bits_per_dim,
        "num_images": result.num_images,
    }


__all__ = ["Trainer", "completion_grid_images", "derive_seed", "make_generator", "occlusion_mask"]
