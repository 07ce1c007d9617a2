"""One optimizer step, three ways to run it: eager, compiled, or replayed from a CUDA graph.

:class:`StepRunner` computes a step the same way for all three (micro-batches whose gradients
add up, autocast for bf16, gradient clipping, the optimizer step); :func:`make_step_runner`
picks how it runs from the training settings:

* eager — zero the gradients, run the step;
* compiled (``torch.compile``) — the same, with the input range check done here, since the
  traced forward reads no values;
* recorded (``cuda_graph``, :class:`~pixelrnn.training.cuda_graph.GraphedTrainStep`) — the
  range check here too, the step recorded at the first full batch and replayed for every batch
  of that shape; any other shape (an epoch's short last batch) runs eagerly.
"""

from __future__ import annotations

import contextlib
import functools

import torch

from pixelrnn.models.base import AutoregressiveModel
from pixelrnn.training.config import TrainConfig
from pixelrnn.training.cuda_graph import GraphedTrainStep
from pixelrnn.training.distributed import DistributedContext

EAGER_ONLY_CONTEXT = (
    "a conditioning map per image trains with the eager step: set compile and cuda_graph off"
)


class StepRunner:
    """Runs training steps eagerly.

    Args:
        model: the trained model (its ``log_prob_from_params`` scores the batch).
        network: the module whose forward training calls (the model, a DDP replica, or a
            compiled module).
        optimizer: the model's optimizer.
        config: training settings (``grad_accumulation``, ``precision``, ``clip_grad_norm``,
            ``cuda_graph``).
        dist: the process group (DDP synchronises only on the last micro-batch).
    """

    def __init__(
        self,
        model: AutoregressiveModel,
        network: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        config: TrainConfig,
        dist: DistributedContext,
    ) -> None:
        self.model = model
        self.network = network
        self.optimizer = optimizer
        self.config = config
        self.dist = dist

    def __call__(
        self,
        x: torch.Tensor,
        y: torch.Tensor | None,
        scale: float,
        context: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One step on ``(x, y)`` with the loss ``scale`` × nats; returns the nats, float64 on
        the training device. ``context``: every image's conditioning map (the eager step only).

        Shape: x ``(B, C, H, W)`` integer, y ``(B,)`` or None, context ``(B, c, H, W)`` or
        None → 0-d.
        """
        self.optimizer.zero_grad(set_to_none=True)
        return self.compute(x, y, scale, context)

    def compute(
        self,
        x: torch.Tensor,
        y: torch.Tensor | None,
        scale: float,
        context: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Gradients (zeroed by the caller) of ``scale`` times the nats of ``(x, y)``, clipped,
        then the optimizer step; returns the nats. No host synchronisation, so that
        :class:`GraphedTrainStep` can record it."""
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
                    x.device.type,
                    dtype=torch.bfloat16,
                    enabled=bf16,
                    cache_enabled=not self.config.cuda_graph,
                ):
                    xs, ys = _rows(x, part), None if y is None else _rows(y, part)
                    cs = None if context is None else _rows(context, part)
                    with self.model.conditioned_on(cs):
                        params = self.network(xs) if ys is None else self.network(xs, ys)
                    nats = -self.model.log_prob_from_params(params, xs).sum()
                (nats * scale).backward()
            total += nats.detach().double()
        if self.config.clip_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip_grad_norm)
        self.optimizer.step()
        return total

    def check_untraced_inputs(
        self, x: torch.Tensor, y: torch.Tensor | None, context: torch.Tensor | None
    ) -> None:
        """For a compiled or recorded step, which cannot read values: the range checks the
        traced forward skips, and no per-image conditioning map (eager steps only)."""
        if context is not None:
            raise ValueError(EAGER_ONLY_CONTEXT)
        self.model.check_images(x)
        self.model.check_labels(y, len(x))


class CompiledStepRunner(StepRunner):
    """Runs the steps of a compiled network: the range check first (the traced forward skips
    it, since reading a value would break the graph)."""

    def __call__(
        self,
        x: torch.Tensor,
        y: torch.Tensor | None,
        scale: float,
        context: torch.Tensor | None = None,
    ) -> torch.Tensor:
        self.check_untraced_inputs(x, y, context)
        return super().__call__(x, y, scale)


class RecordedStepRunner(StepRunner):
    """Records the step of the first full batch in a CUDA graph and replays it for every batch
    of that shape (the range check first: a recording reads no values)."""

    graphed: GraphedTrainStep | None = None  # recorded at the first full batch

    def __call__(
        self,
        x: torch.Tensor,
        y: torch.Tensor | None,
        scale: float,
        context: torch.Tensor | None = None,
    ) -> torch.Tensor:
        self.check_untraced_inputs(x, y, context)
        if self.graphed is None and len(x) == self.config.batch_size:
            # the scale of a full batch is recorded into the graph with the step
            step = functools.partial(self.compute, scale=scale)
            self.graphed = GraphedTrainStep(step, self.model, self.optimizer, x, y)
        if self.graphed is not None and self.graphed.matches(x, y):
            return self.graphed(x, y)
        # another batch size (an epoch's last batch): the ordinary step, which keeps the
        # recorded step's gradient buffers (zeroed, not dropped)
        self.optimizer.zero_grad(set_to_none=self.graphed is None)
        return self.compute(x, y, scale)


def make_step_runner(
    model: AutoregressiveModel,
    network: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    config: TrainConfig,
    dist: DistributedContext,
) -> StepRunner:
    """The runner the settings ask for: recorded (``cuda_graph``), compiled or eager."""
    if config.cuda_graph:
        check_cuda_graph_settings(config, dist.device, dist.is_distributed)
        runner: type[StepRunner] = RecordedStepRunner
    elif config.compile:
        runner = CompiledStepRunner
    else:
        runner = StepRunner
    return runner(model, network, optimizer, config, dist)


def check_cuda_graph_settings(config: TrainConfig, device: torch.device, distributed: bool) -> None:
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
