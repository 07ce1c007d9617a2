"""Vector quantisation (VQ-VAE, van den Oord, Vinyals & Kavukcuoglu 2017, §3.1–3.2).

An encoder output ``z_e`` (a ``D``-vector per position) is replaced by its nearest codebook
vector ``e_k``; the decoder reads ``z_q``. Gradients pass straight through (``∂L/∂z_q`` is copied
to ``z_e``). The codebook learns either from the codebook loss ``‖sg[z_e] − e‖²`` or, with
``ema``, from exponential moving averages of the encoder outputs assigned to each code
(appendix A.1: counts ``N_k`` and sums ``m_k`` with decay ``γ``, ``e_k = m_k / N_k``). The
commitment loss ``β ‖z_e − sg[e]‖²`` keeps the encoder near its codes.

A code that no encoder output has chosen for a while (its moving count below
``dead_threshold``) is restarted on a random encoder output of the current batch: a common
remedy for unused codes (not in the paper). In a multi-process job the counts and sums of every
process's batch are added before the update, so every rank keeps the same codebook (a restart
picks from the local batch; DistributedDataParallel then broadcasts rank 0's buffers).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import distributed, nn


@dataclass(frozen=True)
class Quantized:
    """What :class:`VectorQuantizer` returns.

    Attributes:
        z_q: the quantised map ``(B, D, h, w)``, with the straight-through gradient when
            ``z_e`` needs one in training (else exactly the codebook's vectors).
        codes: the chosen codes, int64 ``(B, h, w)``.
        commitment: ``‖z_e − sg[e]‖²`` per image ``(B,)``.
        codebook: ``‖sg[z_e] − e‖²`` per image ``(B,)`` (its gradient reaches the codebook only
            when it is learned by the loss).
    """

    z_q: torch.Tensor
    codes: torch.Tensor
    commitment: torch.Tensor
    codebook: torch.Tensor


class VectorQuantizer(nn.Module):
    """``K`` codes of width ``D``.

    Args:
        num_codes: ``K``.
        code_dim: ``D``.
        ema: learn the codebook by moving averages (else by the codebook loss).
        decay: ``γ`` of the moving averages.
        dead_threshold: moving count below which a code is restarted (0: never).

    Shape:
        ``z_e`` ``(B, D, h, w)`` → :class:`Quantized`.
    """

    def __init__(
        self,
        num_codes: int,
        code_dim: int,
        ema: bool = True,
        decay: float = 0.99,
        dead_threshold: float = 1e-3,
    ) -> None:
        super().__init__()
        self.num_codes, self.code_dim, self.ema, self.decay = num_codes, code_dim, ema, decay
        self.dead_threshold = dead_threshold
        self.epsilon = 1e-5  # Laplace smoothing of the counts (no division by zero)
        initial = torch.randn(num_codes, code_dim)
        if ema:
            self.register_buffer("codebook", initial)
            self.register_buffer("ema_count", torch.ones(num_codes))
            self.register_buffer("ema_sum", initial.clone())
        else:
            self.codebook = nn.Parameter(initial)
            self.register_buffer("ema_count", torch.ones(num_codes))  # usage, for restarts

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """The nearest code of every row of ``z`` ``(N, D)`` (squared Euclidean distance; the
        first of equals). Shape: → int64 ``(N,)``."""
        distances = (
            z.square().sum(1, keepdim=True)
            - 2 * z @ self.codebook.t()
            + self.codebook.square().sum(1)[None]
        )
        return distances.argmin(1)

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """Codebook vectors of a code map. Shape: int ``(B, h, w)`` → ``(B, D, h, w)``."""
        return self.codebook[codes].permute(0, 3, 1, 2)

    def forward(self, z_e: torch.Tensor) -> Quantized:
        b, d, h, w = z_e.shape
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, d)
        codes = self.nearest(flat.detach())
        chosen = self.codebook[codes]  # (N, D)
        if self.training:
            self._update(flat.detach(), codes)
        z_q = chosen.view(b, h, w, d).permute(0, 3, 1, 2)
        commitment = (z_e - z_q.detach()).square().flatten(1).sum(1)
        codebook = (z_e.detach() - z_q).square().flatten(1).sum(1)
        if self.training and torch.is_grad_enabled() and z_e.requires_grad:
            z_q = z_e + (z_q - z_e).detach()  # the straight-through gradient
        return Quantized(z_q, codes.view(b, h, w), commitment, codebook)

    @torch.no_grad()
    def _update(self, flat: torch.Tensor, codes: torch.Tensor) -> None:
        """One training step's moving averages, codebook update (``ema``) and restarts."""
        one_hot = torch.zeros(len(flat), self.num_codes, dtype=flat.dtype, device=flat.device)
        one_hot[torch.arange(len(flat), device=flat.device), codes] = 1
        counts, sums = one_hot.sum(0), one_hot.t() @ flat
        if distributed.is_available() and distributed.is_initialized():
            # every process's batch counts: the same codebook on every rank
            distributed.all_reduce(counts)
            distributed.all_reduce(sums)
        self.ema_count.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        if self.ema:
            self.ema_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
            total = self.ema_count.sum()
            smoothed = (
                (self.ema_count + self.epsilon) / (total + self.num_codes * self.epsilon) * total
            )
            self.codebook.copy_(self.ema_sum / smoothed[:, None])
        dead = (self.ema_count < self.dead_threshold).nonzero().flatten()
        if len(dead) and self.dead_threshold > 0:
            picks = torch.randint(len(flat), (len(dead),), device=flat.device)
            self.codebook.data[dead] = flat[picks]
            self.ema_count[dead] = 1.0
            if self.ema:
                self.ema_sum[dead] = flat[picks]


def codebook_usage(code_counts: torch.Tensor) -> tuple[float, int]:
    """Perplexity ``exp(H(p))`` of the code frequencies and the number of unused codes, from
    the count of every code over a data set ``(K,)``: ``K`` codes used evenly give ``K``."""
    p = code_counts.double() / code_counts.sum()
    entropy = -(p[p > 0] * p[p > 0].log()).sum()
    return float(entropy.exp()), int((code_counts == 0).sum())
