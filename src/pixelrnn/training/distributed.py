"""Multi-process training with PyTorch DistributedDataParallel, launched by ``torchrun``.

``torchrun --nproc_per_node=N -m pixelrnn train ...`` (or ``pixelrnn train --nproc N``, which
runs that command) starts ``N`` processes; each reads its rank from the environment that torchrun
sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``), joins a process group (gloo on CPU, nccl on
CUDA) and trains a DDP replica. Without those variables everything runs as one process.

How the trainer uses it (``training/trainer.py``): every rank draws the same global batch from
the ``(seed, epoch)`` permutation and keeps its contiguous share, so the global batch size is
the configured one whatever the world size; the loss is scaled so that DDP's gradient average
is the mean over the global batch; evaluation splits the batches between ranks and sums nats in
float64 across them; only rank 0 writes files; stops (signals, time budget) are agreed on by all
ranks so no rank waits forever in a collective.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

CPU = torch.device("cpu")


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands in a (possibly one-process) training job.

    Attributes:
        rank: this process, ``0 .. world_size − 1``.
        world_size: number of processes.
        local_rank: this process on its machine (selects the GPU).
        device: the device this process trains on.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = CPU

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes checkpoints, metrics and images."""
        return self.rank == 0

    def shard(self, n: int) -> slice:
        """This rank's contiguous share of ``n`` items (the first ``n % world_size`` ranks get
        one more)."""
        base, extra = divmod(n, self.world_size)
        start = self.rank * base + min(self.rank, extra)
        return slice(start, start + base + (self.rank < extra))

    def all_reduce_sum(self, value: torch.Tensor) -> torch.Tensor:
        """Sum ``value`` over all ranks (in place; a copy of it is returned on one process)."""
        if self.is_distributed:
            dist.all_reduce(value, op=dist.ReduceOp.SUM)
        return value

    def all_reduce_max(self, value: int) -> int:
        """The largest ``value`` over all ranks (``value`` itself on one process)."""
        if not self.is_distributed:
            return value
        t = torch.tensor([value], device=self.collective_device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return int(t.item())

    def broadcast_parameters(self, module: torch.nn.Module) -> None:
        """Give every rank rank 0's parameters and buffers (in place)."""
        if self.is_distributed:
            for t in [*module.parameters(), *module.buffers()]:
                dist.broadcast(t.data, src=0)

    def barrier(self) -> None:
        if self.is_distributed:
            dist.barrier()

    @property
    def collective_device(self) -> torch.device:
        """Where tensors for collectives live: the GPU for nccl, else the CPU."""
        return self.device if self.device.type == "cuda" else torch.device("cpu")


def setup_distributed(device: torch.device) -> DistributedContext:
    """Join the process group torchrun describes in the environment, if any.

    Args:
        device: the device resolved from the training config; with CUDA each process takes
            ``cuda:LOCAL_RANK``.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistributedContext(device=device)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistributedContext(rank, world_size, local_rank, device)


def teardown_distributed() -> None:
    """Leave the process group (at the end of a torchrun job)."""
    if dist.is_available() and dist.is_initialized():
        # all ranks leave together: a rank that tears gloo down while another still talks to
        # it can abort the process
        dist.barrier()
        dist.destroy_process_group()
