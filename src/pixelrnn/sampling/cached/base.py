"""The contract of an incremental network: distribution parameters at one position, from caches.

Fast generation (Ramachandran et al. 2017, "Fast Generation for Convolutional
Autoregressive Models"): instead of re-running the whole
network for every new sub-pixel, a *stepper* keeps every layer's activations at the positions
already generated and computes, per step, only what the new position makes computable.

A stepper is called in raster order, once or more per pixel: ``step(x, i, j)`` must return the
parameters the full network would give at ``(i, j)`` for the current ``x`` (every position
before ``(i, j)`` final, the current pixel's channels set so far), and leave its caches holding
position ``(i, j)``'s activations for that ``x``. The engine calls it again at the same pixel
after writing a channel whose value the cached activations depend on.
"""

from __future__ import annotations

import abc

import torch
import torch.nn.functional as F
from torch import nn

from pixelrnn.native import native_available
from pixelrnn.nn import MaskedConv2d


def use_compiled_step(x: torch.Tensor) -> bool:
    """Whether a batch ``x`` ``(B, C, H, W)`` runs the compiled step: on the CPU, in float32 or
    float64, with the kernels built. At every batch size: a compiled step runs a few images
    as plain loops and more as one BLAS matrix product per layer, the batch split across the
    intra-op threads (``native/csrc/cached_steps.h``)."""
    return x.is_cpu and x.dtype in (torch.float32, torch.float64) and native_available()


class IncrementalStepper(abc.ABC):
    """Per-position evaluation of one model over one batch (see the module docstring)."""

    @abc.abstractmethod
    def step(self, x: torch.Tensor, i: int, j: int) -> torch.Tensor:
        """Distribution parameters at ``(i, j)``.

        Shape:
            x normalised ``(B, C, H, W)`` → ``(B, P)``.
        """


def flat_weight(conv: nn.Conv2d) -> torch.Tensor:
    """A 1×1 convolution's (masked) kernel as a ``(C_in, C_out)`` matrix."""
    weight = conv.weight
    mask = getattr(conv, "mask", None)
    if mask is not None:
        weight = weight * mask
    if weight.shape[-2:] != (1, 1):
        raise ValueError(
            f"flat_weight takes 1x1 convolutions, got a {tuple(weight.shape[-2:])} kernel"
        )
    return weight.reshape(weight.shape[0], -1).t().contiguous()


def bias_of(conv: nn.Module) -> torch.Tensor:
    """A layer's bias, or zeros ``(C_out,)`` when it has none."""
    bias = getattr(conv, "bias", None)
    if bias is not None:
        return bias
    return torch.zeros(conv.weight.shape[0], dtype=conv.weight.dtype, device=conv.weight.device)


def padded_buffer(
    like: torch.Tensor, channels: int, height: int, width: int, top: int, left: int, right: int
) -> torch.Tensor:
    """Zero cache ``(B, channels, top + height, left + width + right)`` (padding = zeros)."""
    return like.new_zeros(like.shape[0], channels, top + height, left + width + right)


def image_rows(x: torch.Tensor, i: int, up: int, side: int) -> torch.Tensor:
    """Rows ``i-up .. i`` of ``x``, padded with zeros above the image and ``side`` columns on
    both sides. Shape: ``(B, C, H, W)`` → ``(B, C, up + 1, W + 2·side)``."""
    top = max(i - up, 0)
    return F.pad(x[:, :, top : i + 1], (side, side, top - (i - up), 0))


def add_shifted_products(out: torch.Tensor, flat: torch.Tensor, taps: torch.Tensor) -> None:
    """A 1-row convolution over whole rows as matrix products: ``out[:, m] += Σ_t flat[:, m + t]
    @ taps[:, t]``, with the batch's rows zero-padded and laid end to end in ``flat`` (so the
    padding keeps the images apart, and the outputs at padding columns are not used). One
    batched product per tap, written in place (``out=``, which ``FlopCounterMode`` sees; it
    misses ``baddbmm_``), into a contiguous ``out`` (a strided one makes ATen loop over the
    batch).

    Shape:
        out ``(L, n, C_out)``, flat ``(L, n + k − 1, C_in)``, taps ``(L, k, C_in, C_out)``.
    """
    n = out.shape[1]
    for tap in range(taps.shape[1]):
        torch.baddbmm(out, flat[:, tap : tap + n], taps[:, tap], out=out)


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``x @ weight + bias``. Shape: ``(B, K) @ (K, N)`` → ``(B, N)``."""
    return torch.addmm(bias, x, weight)


class CurrentRowTaps:
    """The current-row taps of a causal kernel, applied one pixel at a time.

    A causal convolution's output at ``(i, j)`` is a term that depends only on finished rows
    (and biases, links, conditioning), which the owner computes for a whole row at once and sets
    as :attr:`above` ``(B, W, C_out)``, plus the kernel's taps on the current row at
    ``j − r .. j``. The current row's inputs live in a row-major, ``r``-zero-padded buffer, so the
    taps of a pixel are one contiguous slice and one matrix product.

    Args:
        row_weight: the masked centre-row taps ``(C_out, C_in, r + 1)``, the last on ``j``.
        like: a tensor with the batch size, dtype and device.
        width: ``W``.
    """

    def __init__(self, row_weight: torch.Tensor, like: torch.Tensor, width: int) -> None:
        c_out, self.c_in, taps = row_weight.shape
        self.r, self.width = taps - 1, width
        # tap-major ((r+1)·C_in, C_out), to match the row-major buffer
        self.weight = row_weight.permute(2, 1, 0).reshape(-1, c_out).contiguous()
        self.row = like.new_zeros(like.shape[0], (width + self.r) * self.c_in)
        self.above = like.new_zeros(like.shape[0], width, c_out)

    def write(self, value: torch.Tensor, j: int) -> None:
        """Set the input at column ``j``. Shape: ``(B, C_in)``."""
        c = self.c_in
        self.row[:, (j + self.r) * c : (j + self.r + 1) * c] = value

    def write_row(self, values: torch.Tensor) -> None:
        """Set the whole row. Shape: ``(B, C_in, W)``."""
        self.row.view(-1, self.width + self.r, self.c_in)[:, self.r :] = values.transpose(1, 2)

    def refresh_previous(self, x: torch.Tensor, i: int, j: int) -> None:
        """For a layer that reads the image ``x``: copy pixel ``(i, j − 1)`` again, as the engine
        may have written its last channel after that pixel's last step."""
        if j > 0:
            self.write(x[:, :, i, j - 1], j - 1)

    def finished_row(self) -> torch.Tensor:
        """The row's inputs. Shape: ``(B, C_in, W)``."""
        return self.row.view(-1, self.width + self.r, self.c_in)[:, self.r :].transpose(1, 2)

    def __call__(self, value: torch.Tensor, j: int) -> torch.Tensor:
        """Write the input at column ``j`` and return the output there.

        Shape:
            ``(B, C_in)`` → ``(B, C_out)``.
        """
        self.write(value, j)
        c = self.c_in
        return torch.addmm(self.above[:, j], self.row[:, j * c : (j + self.r + 1) * c], self.weight)


class RowwiseMaskedConv(CurrentRowTaps):
    """A masked ``k × k`` convolution evaluated row by row: the rows-above taps once per row on
    the last ``r`` finished rows (one convolution), the current row's taps per pixel.

    Shape:
        inputs ``(B, C_in)`` per pixel → outputs ``(B, C_out)`` per pixel.
    """

    def __init__(self, conv: MaskedConv2d, like: torch.Tensor, width: int) -> None:
        r = conv.kernel_size[0] // 2
        weight = conv.weight * conv.mask  # (C_out, C_in, k, k)
        super().__init__(weight[:, :, r, : r + 1], like, width)
        self.above_weight = weight[:, :, :r].contiguous()  # (C_out, C_in, r, k)
        self.bias = bias_of(conv)
        self.history = like.new_zeros(like.shape[0], self.c_in, r, width + 2 * r)
        self.above = self.bias.expand(like.shape[0], width, -1)  # row 0: zero padding above

    def start_row(self, finished: torch.Tensor | None = None) -> None:
        """The current row is finished: push it into the history, derive the next above term.

        Args:
            finished: the finished row's final inputs ``(B, C_in, W)`` when the buffer may hold
                stale ones (the image: the engine writes a pixel's last channel after its step).
        """
        if finished is not None:
            self.write_row(finished)
        r = self.r
        if r:
            finished = F.pad(self.finished_row(), (r, r))[:, :, None]  # (B, C_in, 1, W + 2r)
            self.history = torch.cat([self.history[:, :, 1:], finished], dim=2)
            above = F.conv2d(self.history, self.above_weight, self.bias)  # (B, C_out, 1, W)
            self.above = above[:, :, 0].transpose(1, 2)
        self.row.zero_()
