"""Training settings: one frozen, validated dataclass, stored in the run's ``config.json``."""

from __future__ import annotations

import math
from dataclasses import dataclass

from pixelrnn.config_io import DictConfig

OPTIMIZERS = ("rmsprop", "adam")
PRECISIONS = ("fp32", "bf16")
LR_SCHEDULES = ("constant", "cosine", "exponential")


@dataclass(frozen=True)
class TrainConfig(DictConfig):
    """Everything that decides a training run besides the model config.

    Attributes:
        dataset: dataset name (see :func:`pixelrnn.data.available_datasets`).
        binarize: ``"threshold"`` / ``"dynamic"`` for grey MNIST-type data, else None.
        train_split: split trained on.
        valid_split: split scored after every epoch (selects the ``best`` checkpoint); None: off.
        test_split: split scored with the best weights at the end; None: off.
        epochs: passes over the training split.
        max_steps: stop after this many optimizer steps in total (None: no limit).
        time_budget_minutes: stop training after this much wall-clock time in this invocation,
            then checkpoint, evaluate and draw as at a normal end (None: no limit).
        batch_size: images per optimizer step (16 in PixelRNN §5.2), over all processes of a
            multi-process run.
        grad_accumulation: split each process's share of a batch into this many micro-batches
            and add their gradients (less memory, the same step).
        drop_last: skip each epoch's last batch when it holds fewer than ``batch_size`` images,
            so that every step averages a full batch (with RMSprop or Adam, whose step size
            does not shrink with a smaller batch, one short batch's step is noisier; measured
            in docs/results.md). Every epoch draws a new permutation, so no image is left out
            for good.
        eval_batch_size: images per forward pass when scoring.
        optimizer: ``"rmsprop"`` (the paper's choice, §5.2) or ``"adam"``.
        lr: learning rate.
        lr_schedule: ``"constant"``, ``"cosine"`` (to 0 over the run) or ``"exponential"``
            (multiply by ``lr_decay`` every epoch). Both are functions of the position in the
            whole run, also after ``--resume``: ``lr * lr_decay**epoch`` and the cosine over
            ``epochs`` count from the run's first step.
        lr_decay: per-epoch factor of the exponential schedule.
        clip_grad_norm: clip the global gradient norm to this value (None: no clipping).
        seed: seeds model initialisation, data order, binarization and samples.
        num_samples: images in each sample grid.
        sample_every: draw a sample grid every this many epochs (0: only at the end).
        num_completions: completions per image in the final completion grid (0: none).
        checkpoint_every: also write the ``last`` checkpoint every this many steps.
        log_every: write a training line to ``metrics.jsonl`` every this many steps.
        max_train_images: train on the first this many images of the split (None: all).
        max_eval_images: score at most this many images per evaluation (None: all).
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
        precision: ``"fp32"``, or ``"bf16"``: training forward passes under bfloat16 autocast
            (the likelihood itself is still computed in float32; evaluation, validation and
            sampling always run in float32).
        compile: run the training forward and backward through ``torch.compile`` (helps on
            GPUs; on the 2-core CPU of docs/benchmarks.md it was slower, so off by default).
        cuda_graph: on a GPU, record the whole training step (forward, backward, clipping,
            optimizer step) in a CUDA graph at the first full batch and replay it for every
            batch of that size (``training/cuda_graph.py``): the recurrent models' thousands
            of small kernels per step then cost no launch time each. One process, constant
            learning rate, not with ``compile``.
        pin_memory: on CUDA, copy batches from page-locked memory, asynchronously.
        num_workers: DataLoader processes that assemble (and binarize) the training batches
            ahead of the step (0: in the training process). Batches are the same with any
            number.
        ema_decay: keep an exponential moving average (Polyak averaging) of the weights with
            this decay per step (PixelCNN++: 0.9995; warmed up as ``min(decay, (1 + t) /
            (10 + t))`` after ``t`` steps); validation, test, samples and every saved
            ``model.safetensors`` then use the averaged weights (None: off).
        data_init_images: for models with weight normalisation (PixelCNN++), initialise it from
            this many training images before the first step (PixelCNN++ §3.1: 16; 0: off).
    """

    dataset: str = "binarized-mnist"
    binarize: str | None = None
    train_split: str = "train"
    valid_split: str | None = "valid"
    test_split: str | None = "test"
    epochs: int = 10
    max_steps: int | None = None
    time_budget_minutes: float | None = None
    batch_size: int = 16
    grad_accumulation: int = 1
    drop_last: bool = False
    eval_batch_size: int = 256
    optimizer: str = "rmsprop"
    lr: float = 1e-3
    lr_schedule: str = "constant"
    lr_decay: float = 1.0
    clip_grad_norm: float | None = 1.0
    seed: int = 0
    num_samples: int = 64
    sample_every: int = 1
    num_completions: int = 3
    checkpoint_every: int = 1000
    log_every: int = 50
    max_train_images: int | None = None
    max_eval_images: int | None = None
    device: str = "auto"
    precision: str = "fp32"
    compile: bool = False
    cuda_graph: bool = False
    pin_memory: bool = True
    num_workers: int = 0
    ema_decay: float | None = None
    data_init_images: int = 16

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        positive = (
            "epochs",
            "batch_size",
            "grad_accumulation",
            "eval_batch_size",
            "checkpoint_every",
            "log_every",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.ema_decay is not None and not 0.0 < self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in (0, 1) or None, got {self.ema_decay}")
        nonnegative = ("num_samples", "sample_every", "num_completions", "num_workers")
        for name in (*nonnegative, "data_init_images"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        for name in ("max_steps", "max_train_images", "max_eval_images"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 or None, got {value}")
        if self.time_budget_minutes is not None and not self.time_budget_minutes > 0:
            raise ValueError(f"time_budget_minutes must be > 0, got {self.time_budget_minutes}")
        if self.clip_grad_norm is not None and not self.clip_grad_norm > 0:
            raise ValueError(f"clip_grad_norm must be > 0 or None, got {self.clip_grad_norm}")
        if self.device not in ("cpu", "cuda", "auto") and not self.device.startswith("cuda:"):
            raise ValueError(
                f"device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {self.device!r}"
            )

    def learning_rate(self, epoch: int, global_step: int, steps_per_epoch: int) -> float:
        """The learning rate of the step after ``global_step`` (in epoch ``epoch``, counted
        from the run's start), by ``lr_schedule``."""
        if self.lr_schedule == "exponential":
            return self.lr * self.lr_decay**epoch
        if self.lr_schedule == "cosine":
            total = self.epochs * steps_per_epoch
            return 0.5 * self.lr * (1.0 + math.cos(math.pi * min(global_step / total, 1.0)))
        return self.lr
