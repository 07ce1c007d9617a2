"""A whole training step replayed from a CUDA graph.

The recurrent models launch thousands of small kernels per training step: the Diagonal BiLSTM
runs one recurrence step per skewed column (``W + H − 1``), per layer, forward and backward,
each a handful of kernels on a few thousand numbers. On a GPU the cost of launching them from
the host exceeds the cost of running them, so the step time hardly depends on the batch
(docs/benchmarks.md, "On a GPU"). A CUDA graph records the launches of one step once; a replay
sends the whole step to the GPU in one call.

Written here rather than through ``torch.compile(mode="reduce-overhead")``: the Diagonal
BiLSTM's scan is an autograd Function around compiled C++ column loops that ``torch.compile``
cannot trace, while graph capture records whatever kernels run (see
``torch.cuda.graph``, "whole-network capture").
"""

from __future__ import annotations

from collections.abc import Callable

import torch

# eager steps before capture: kernels pick their algorithms and allocate their workspaces, the
# optimizer creates its state
WARMUP_STEPS = 2


class GraphedTrainStep:
    """Forward, backward, gradient clipping and optimizer step of one batch shape, recorded in
    a CUDA graph and replayed for every batch of that shape.

    The warm-up before capture takes real optimizer steps; the weights, buffers and optimizer
    state are put back afterwards, so that the run takes the steps it would take without the
    graph (compared step by step in ``tests/gpu/test_cuda.py``).

    Args:
        step: one step on ``(x, y)``, gradients zeroed by the caller; returns the batch's nats
            as a tensor on the GPU. It must not synchronise with the host.
        model: the trained module (its parameters and buffers are restored after warm-up).
        optimizer: its optimizer, built with ``capturable=True``.
        x: a batch of the shape to record ``(B, C, H, W)``; y: its labels ``(B,)`` or None.
    """

    def __init__(
        self,
        step: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor],
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        x: torch.Tensor,
        y: torch.Tensor | None,
    ) -> None:
        self.static_x = x.clone()
        self.static_y = None if y is None else y.clone()
        tensors = [*model.parameters(), *model.buffers()]
        saved_tensors = [t.detach().clone() for t in tensors]
        saved_state = {
            p: {k: v.clone() for k, v in s.items() if isinstance(v, torch.Tensor)}
            for p, s in optimizer.state.items()
        }
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(WARMUP_STEPS):
                optimizer.zero_grad(set_to_none=True)
                step(self.static_x, self.static_y)
        torch.cuda.current_stream().wait_stream(side)
        with torch.no_grad():
            for t, saved in zip(tensors, saved_tensors, strict=True):
                t.copy_(saved)
            for p, state in optimizer.state.items():
                before = saved_state.get(p)
                for k, v in state.items():
                    if isinstance(v, torch.Tensor):
                        # state the warm-up created starts at zero (RMSprop's and Adam's do)
                        v.copy_(before[k]) if before is not None else v.zero_()
        optimizer.zero_grad(set_to_none=True)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.static_nats = step(self.static_x, self.static_y)

    def matches(self, x: torch.Tensor, y: torch.Tensor | None) -> bool:
        """Whether a batch has the recorded shape (an epoch's last batch may not)."""
        return x.shape == self.static_x.shape and (y is None) == (self.static_y is None)

    def __call__(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """One step on ``(x, y)``; returns the batch's nats (a tensor the next call reuses)."""
        self.static_x.copy_(x)
        if y is not None and self.static_y is not None:
            self.static_y.copy_(y)
        self.graph.replay()
        return self.static_nats
