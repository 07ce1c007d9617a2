"""The training loop (conventions §10): plain, linear and model-agnostic (``log_prob`` only).

The run directory's layout and files: :mod:`pixelrnn.training.run_dir`; when a run stops early:
:mod:`pixelrnn.training.stopping`; how a step runs (eager, compiled, recorded):
:mod:`pixelrnn.training.step_runner`.

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

import math
import os
import sys
import time
import warnings
import weakref
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel
from tqdm.auto import tqdm

from pixelrnn.allocator import tune_for_training
from pixelrnn.data import ImageDataset
from pixelrnn.device import resolve_device
from pixelrnn.files import FolderLock
from pixelrnn.models.base import AutoregressiveModel
from pixelrnn.models.persistence import CONFIG_NAME, CheckpointCorruptedError, load_pretrained
from pixelrnn.training.batches import epoch_loader, epoch_steps, load_split, load_training_data
from pixelrnn.training.config import TrainConfig
from pixelrnn.training.distributed import DistributedContext, setup_distributed
from pixelrnn.training.ema import ema_with_warmup
from pixelrnn.training.evaluate import EvalResult, context_map, evaluate_nll
from pixelrnn.training.figures import draw_final_figures, draw_samples
from pixelrnn.training.run_dir import STATE_JSON, RunDirectory
from pixelrnn.training.seeding import derive_seed, make_generator
from pixelrnn.training.step_runner import EAGER_ONLY_CONTEXT, make_step_runner
from pixelrnn.training.stopping import Stopper
from pixelrnn.training.trainer_state import (
    RunPosition,
    check_trainer_state,
    pack_trainer_state,
    restore_trainer_state,
)


def progress_interval() -> float:
    """Seconds between progress-bar refreshes: live on a terminal, sparse in a log file."""
    return 0.1 if sys.stderr.isatty() else 30.0


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
        lock: FolderLock | None = None,
    ) -> None:
        self.config = config
        self.data_dir = data_dir
        self.run_dir = Path(run_dir)
        self.files = RunDirectory(run_dir)
        # one writer per run directory (rank 0 of a job); released when the run ends
        self._lock = lock
        if lock is None and os.environ.get("RANK", "0") == "0":
            self._lock = self.files.lock()
        if self._lock is not None:
            weakref.finalize(self, self._lock.release)
            self.files.recover()  # what kills left: an interrupted swap, temporaries
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
        # Polyak averaging (PixelCNN++ §3.1): torch's own EMA utility, updated after every step
        self.ema: AveragedModel | None = None
        if config.ema_decay is not None:
            self.ema = AveragedModel(self.model, avg_fn=ema_with_warmup(config.ema_decay))
        self.optimizer = self._make_optimizer()
        self.run_step = make_step_runner(
            self.model, self.network, self.optimizer, config, self.dist
        )
        self.stopper = Stopper(config.max_steps, config.time_budget_minutes, self.dist)
        self.epoch = 0
        self.step_in_epoch = 0
        self.global_step = 0
        self.best_valid_nats: float | None = None
        self.train_data, self.valid_data = load_training_data(model, config, data_dir)
        if self.train_data.context is not None and (config.compile or config.cuda_graph):
            raise ValueError(EAGER_ONLY_CONTEXT)  # before anything is written
        if config.drop_last and self.steps_per_epoch == 0:
            raise ValueError(
                f"drop_last with {len(self.train_data)} training images and batch_size "
                f"{config.batch_size} leaves no full batch: lower --batch-size or set "
                "--drop-last false"
            )

    # --- set-up ------------------------------------------------------------------------------
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
        with self.model.conditioned_on(context_map(self.train_data, index, self.model)):
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
        return self.config.learning_rate(self.epoch, self.global_step, self.steps_per_epoch)

    def run_config(self) -> dict[str, Any]:
        """The ``training`` section of ``config.json``."""
        return {"training": self.config.to_dict()}

    # --- checkpoints -------------------------------------------------------------------------
    def _diverged(self, what: str) -> TrainingDivergedError:
        """The error that ends a run whose loss or weights stopped being finite."""
        return TrainingDivergedError(
            f"training diverged: {what}. Nothing was saved from it: {self.files.last} keeps "
            f"the last good checkpoint. Lower the learning rate (--lr, now {self.config.lr:g}) "
            "or clip the gradients (--clip-grad-norm), then resume with `pixelrnn train "
            f"--resume {self.run_dir} --lr ...`"
        )

    def save_checkpoint(self) -> None:
        """Swap in a new ``last/`` checkpoint atomically (rank 0 of a multi-process job);
        weights that are no longer finite end the run instead."""
        if not all(bool(torch.isfinite(p).all()) for p in self.evaluation_model.parameters()):
            raise self._diverged(f"the weights after step {self.global_step} are not finite")
        if not self.dist.is_main:
            return
        position = RunPosition(
            self.epoch, self.step_in_epoch, self.global_step, self.best_valid_nats
        )
        state, tensors = pack_trainer_state(position, self.optimizer, self.model, self.ema)
        self.files.save_last(self.evaluation_model, self.run_config(), state, tensors)

    def _restore_trainer_state(
        self, state: dict[str, Any], tensors: dict[str, torch.Tensor]
    ) -> None:
        """Check, then restore optimizer, position and RNG state read from ``last/`` (the
        weights come with the model)."""
        check_trainer_state(
            state, tensors, self.optimizer, self.model, self.ema, str(self.files.last / STATE_JSON)
        )
        position = restore_trainer_state(
            state, tensors, self.optimizer, self.model, self.ema, self.config.cuda_graph
        )
        if self.dist.is_distributed:  # rank 0's state was saved: give each rank its own stream
            seed = derive_seed(self.config.seed, "rank", self.dist.rank, position.global_step)
            torch.manual_seed(seed)
        self.epoch = position.epoch
        self.step_in_epoch = position.step_in_epoch
        self.global_step = position.global_step
        self.best_valid_nats = position.best_valid_nats
        if self.dist.is_main:
            self.files.truncate_metrics(self.global_step)

    def log(self, event: str, **values: Any) -> None:
        """One ``metrics.jsonl`` record (rank 0)."""
        if self.dist.is_main:
            record = {"event": event, "step": self.global_step, "epoch": self.epoch, **values}
            self.files.append_metric(record)

    def draw_loss_curve(self) -> None:
        """``loss_curve.png`` from the metrics so far (rank 0)."""
        if self.dist.is_main:
            self.files.draw_loss_curve()

    # --- the loop ----------------------------------------------------------------------------
    def _to_device(self, x: torch.Tensor) -> torch.Tensor:
        """A batch on the training device (from pinned memory, asynchronously, on CUDA)."""
        if self.device.type == "cuda" and self.config.pin_memory:
            return x.pin_memory().to(self.device, non_blocking=True)
        return x.to(self.device)

    def train_step(
        self,
        x: torch.Tensor,
        y: torch.Tensor | None = None,
        global_batch: int | None = None,
        context: torch.Tensor | None = None,
    ) -> float:
        """One optimizer step on this process's share of a batch (labels ``y`` for a
        conditional model, ``context`` for a model reading a conditioning map per image);
        returns the global batch's loss in nats per sub-pixel.

        The share is processed in ``config.grad_accumulation`` micro-batches whose gradients
        add up (DDP synchronises only on the last), so accumulation changes memory, not the
        step.

        Args:
            global_batch: images in the whole batch over all processes (default: ``len(x)``).
                Each micro-batch's loss is its summed nats scaled so that DDP's average of the
                processes' gradients is the gradient of the mean over the global batch.
        """
        n = len(x) if global_batch is None else global_batch
        self.model.set_training_step(self.global_step)
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate()
        total = self.run_step(x, y, self.dist.world_size / (n * self.model.num_dims), context)
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        total = self.dist.all_reduce_sum(total.to(self.dist.collective_device))
        return float(total) / (n * self.model.num_dims)

    def fit(self) -> str:
        """Train until the configured end; returns why it stopped.

        ``"done"`` (all epochs), ``"max_steps"``, ``"time_budget"`` or ``"signal"``. Every
        reason but ``"signal"`` is followed by :meth:`finish`. The run directory's lock is
        released at the end, however the run ends.

        Raises:
            TrainingDivergedError: the loss, the weights or an evaluation stopped being finite
                (nothing of the diverged run is saved).
        """
        try:
            return self._fit()
        finally:
            self.close()

    def close(self) -> None:
        """Release the run directory for other processes."""
        if self._lock is not None:
            self._lock.release()

    def _fit(self) -> str:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.dist.is_main:
            self.files.write_config(self.model, self.run_config())
            # records past the start: from an attempt killed before its first checkpoint
            self.files.truncate_metrics(self.global_step)
        c = self.config
        if self.global_step == 0:
            self.initialize_from_data()
        self.stopper.start_clock()
        reason = "done"
        self.model.train()
        with self.stopper.catching_signals():
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
                batches = iter(
                    epoch_loader(
                        self.train_data,
                        order,
                        c,
                        (self.epoch, self.step_in_epoch, self.global_step),
                        labels=self.model.num_classes is not None,
                    )
                )
                while self.step_in_epoch < self.steps_per_epoch:
                    stop = self.stopper.agreed_reason(self.global_step)
                    if stop:
                        reason = stop
                        break
                    # the global batch, drawn alike on every rank; this rank keeps its share
                    index, x, y = next(batches)
                    share = self.dist.shard(len(index))
                    x = self._to_device(x[share])
                    y = None if y is None else self._to_device(y[share])
                    context = context_map(self.train_data, index[share], self.model)
                    loss = self.train_step(x, y, global_batch=len(index), context=context)
                    if not math.isfinite(loss):
                        bar.close()
                        raise self._diverged(f"the loss of step {self.global_step + 1} is {loss}")
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
        if not math.isfinite(result.nats_per_image):
            raise self._diverged(f"the validation NLL after step {self.global_step} is not finite")
        self.log("valid", **result.metrics())
        if self.best_valid_nats is None or result.nats_per_image < self.best_valid_nats:
            self.best_valid_nats = result.nats_per_image
            if not self.dist.is_main:
                return
            self.files.save_best(self.evaluation_model, self.run_config())

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
            draw_samples(
                self.evaluation_model,
                c.num_samples,
                make_generator(c.seed, "samples", self.epoch, device=self.device),
                self.run_dir / f"samples_epoch{self.epoch:03d}.png",
                self.valid_data or self.train_data,
            )
        self.draw_loss_curve()
        self.save_checkpoint()

    def _evaluate(self, dataset: ImageDataset, model: AutoregressiveModel) -> EvalResult:
        return evaluate_nll(
            model,
            dataset,
            self.config.eval_batch_size,
            generator=make_generator(self.config.seed, "eval", dataset.split),
            max_images=self.config.max_eval_images,
            context=self.dist,
        )

    def finish(self) -> EvalResult | None:
        """Score the test split with the best weights and draw the final samples and completions.

        In a multi-process job every rank scores its share of the test split; rank 0 writes the
        result and draws the figures.
        """
        c = self.config
        self.dist.barrier()  # rank 0 has written best/ and last/
        model = self.files.best_model(self.device)  # best by validation, else the last
        result = None
        test_data = load_split(c, c.test_split, self.data_dir) if c.test_split else None
        if test_data is not None:
            result = self._evaluate(test_data, model)
            if not math.isfinite(result.nats_per_image):
                raise self._diverged("the test NLL of the saved weights is not finite")
            self.log("test", **result.metrics())
            if self.dist.is_main:
                self.files.write_results(result.to_dict())
                kind = "" if result.likelihood == "exact" else f" [{result.likelihood}]"
                tqdm.write(
                    f"test NLL ({result.num_images} images): {result.nats_per_image:.2f} "
                    f"nats/image, {result.bits_per_dim:.4f} bits/dim{kind}"
                )
                if result.kl_nats_per_image is not None:
                    tqdm.write(
                        f"ELBO bound {result.elbo_nats_per_image:.2f} nats/image, KL "
                        f"{result.kl_nats_per_image:.2f} nats, active latent units "
                        f"{result.active_units}/{result.latent_dims}"
                    )
        if not self.dist.is_main:
            return result
        draw_final_figures(model, c, test_data or self.valid_data, self.run_dir)
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
        files = RunDirectory(run_dir)
        # one writer: taken before anything is read, so two resumes cannot both go ahead
        lock = files.lock() if os.environ.get("RANK", "0") == "0" else None
        try:
            if not files.has_state():
                raise FileNotFoundError(f"{run_dir}: no last/ checkpoint to resume from")
            # every file is read and checked before anything is written
            config_file = files.last / CONFIG_NAME
            stored = files.stored_config()
            if not isinstance(stored, dict) or not isinstance(stored.get("training"), dict):
                raise ValueError(f"{config_file}: field 'training': missing or not an object")
            config = TrainConfig.from_dict(
                {**stored["training"], **(overrides or {})}, f"{config_file}: training"
            )
            try:
                model = load_pretrained(files.last)
            except CheckpointCorruptedError as e:
                raise CheckpointCorruptedError(f"{e}{files.intact_hint()}") from None
            state, tensors = files.read_state()
            files.metrics()
            trainer = cls(model, config, run_dir, data_dir, lock=lock)
            trainer._restore_trainer_state(state, tensors)
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        return trainer


class TrainingDivergedError(RuntimeError):
    """The loss, the weights or an evaluation stopped being finite."""


__all__ = ["Trainer", "TrainingDivergedError"]
