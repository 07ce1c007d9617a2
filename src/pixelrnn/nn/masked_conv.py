"""Masked convolutions with colour groups (PixelRNN §3.4, Fig. 2).

A masked convolution only lets an output position read input positions that come *before* it
in raster order, and at the centre tap it applies the R→G→B colour rule. With a 5×5 kernel the
spatial support is::

    1 1 1 1 1
    1 1 1 1 1
    1 1 c 0 0        c = centre tap, colour rule below
    0 0 0 0 0
    0 0 0 0 0

Every feature map of a masked layer belongs to one of ``num_groups`` colour groups (3 for RGB,
1 for grey or binary images). Channel ``k`` of a layer with ``C`` channels is in group
``k * num_groups // C``: contiguous blocks, so an output tensor of ``3 * P`` channels reshapes to
``(B, 3, P, H, W)`` with R first. At the centre tap, output group ``g`` may read input group
``g'`` only if

* mask ``"A"`` (first layer, reads the image): ``g' < g`` — a colour never sees itself;
* mask ``"B"`` (every later layer): ``g' <= g``.

With one group, mask A drops the centre tap and mask B keeps it.

NOTE: the mask is a buffer and is applied functionally in ``forward``
(``F.conv2d(x, weight * mask)``), so masked weights get exactly zero gradient and are never
touched in place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

MaskType = Literal["A", "B"]


def channel_groups(num_channels: int, num_groups: int) -> torch.Tensor:
    """Colour group of every channel, contiguous blocks.

    Args:
        num_channels: number of feature maps ``C`` (must be at least ``num_groups``).
        num_groups: number of colour groups (1 or the number of image channels).

    Returns:
        Long tensor of shape ``(C,)`` with values in ``[0, num_groups)``.
    """
    if num_groups < 1:
        raise ValueError(f"num_groups must be >= 1, got {num_groups}")
    if num_channels < num_groups:
        raise ValueError(
            f"a masked layer with {num_groups} colour groups needs at least {num_groups} "
            f"channels, got {num_channels}"
        )
    return torch.arange(num_channels) * num_groups // num_channels


def gate_groups(hidden_channels: int, num_gates: int, num_groups: int) -> torch.Tensor:
    """Colour groups of ``num_gates`` stacked gate blocks of ``hidden_channels`` each.

    An LSTM's ``4h`` pre-activations are laid out ``[o | f | i | g]``; inside every block the
    ``h`` channels carry the usual contiguous R/G/B groups, so the gates of hidden unit ``u`` all
    share unit ``u``'s group and the colour rule survives the element-wise LSTM update.

    Returns:
        Long tensor ``(num_gates · hidden_channels,)``.
    """
    return channel_groups(hidden_channels, num_groups).repeat(num_gates)


def causal_mask(
    in_channels: int,
    out_channels: int,
    kernel_size: tuple[int, int],
    mask_type: MaskType,
    num_groups: int,
    out_groups: torch.Tensor | None = None,
) -> torch.Tensor:
    """Build the 0/1 mask of a masked convolution.

    Args:
        out_groups: colour group of every output channel (default: contiguous blocks, see
            :func:`channel_groups`; :func:`gate_groups` for LSTM gate pre-activations).

    Shape:
        returns ``(out_channels, in_channels, kH, kW)``, float32.
    """
    if mask_type not in ("A", "B"):
        raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
    k_h, k_w = kernel_size
    if k_h % 2 == 0 or k_w % 2 == 0:
        raise ValueError(f"masked convolutions need odd kernel sizes, got {kernel_size}")
    mask = torch.ones(out_channels, in_channels, k_h, k_w)
    c_h, c_w = k_h // 2, k_w // 2
    mask[:, :, c_h + 1 :, :] = 0  # rows below the centre
    mask[:, :, c_h, c_w + 1 :] = 0  # right of the centre in the centre row
    group_in = channel_groups(in_channels, num_groups)
    group_out = channel_groups(out_channels, num_groups) if out_groups is None else out_groups
    if group_out.shape != (out_channels,):
        raise ValueError(
            f"out_groups must have shape ({out_channels},), got {tuple(group_out.shape)}"
        )
    if mask_type == "A":
        allowed = group_in[None, :] < group_out[:, None]
    else:
        allowed = group_in[None, :] <= group_out[:, None]
    mask[:, :, c_h, c_w] = allowed.float()
    return mask


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype an operation on ``x`` runs in: autocast's for its device when autocast is on,
    else ``x``'s (for in-place products and hand-written kernels, which autocast does not
    cast)."""
    if torch.is_autocast_enabled(x.device.type):
        return torch.get_autocast_dtype(x.device.type)
    return x.dtype


def run_in_compute_dtype(forward: Callable[..., Any], ctx: Any, x: torch.Tensor, *rest: Any) -> Any:
    """``forward(ctx, x, *rest)`` with ``x`` in :func:`compute_dtype` and autocast off inside:
    for a hand-written autograd Function's forward (the scans), which handles its own dtypes."""
    dtype = compute_dtype(x)
    with torch.autocast(x.device.type, enabled=False):
        return forward(ctx, x.to(dtype), *rest)


class MaskedConv2d(nn.Conv2d):
    """A "same"-padded 2-D convolution whose kernel is masked to be causal (PixelRNN §3.4).

    Args:
        in_channels: input feature maps.
        out_channels: output feature maps.
        kernel_size: odd kernel size, int or ``(kH, kW)``.
        mask_type: ``"A"`` for the layer that reads the image, ``"B"`` for later layers.
        num_groups: colour groups (3 for RGB, 1 for single-channel images).
        bias: add a learned bias.
        out_groups: explicit colour group of every output channel (see :func:`causal_mask`).

    Shape:
        input ``(B, in_channels, H, W)`` → output ``(B, out_channels, H, W)``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        mask_type: MaskType,
        num_groups: int = 1,
        bias: bool = True,
        out_groups: torch.Tensor | None = None,
    ) -> None:
        k = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        super().__init__(in_channels, out_channels, k, padding=(k[0] // 2, k[1] // 2), bias=bias)
        self.mask_type = mask_type
        self.num_groups = num_groups
        self.register_buffer(
            "mask",
            causal_mask(in_channels, out_channels, k, mask_type, num_groups, out_groups),
            persistent=False,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)

    def forward_batch_last(
        self, x: torch.Tensor, residual: torch.Tensor | None = None
    ) -> torch.Tensor:
        """A 1×1 layer on a batch-last map: one matrix product over every pixel of the batch
        (on the CPU about twice as fast as the NCHW convolution with its layout changes);
        ``residual`` (the output's shape) is added in the same product. Under autocast the
        product runs in the autocast dtype, like the convolution.

        Shape:
            ``(in_channels, H, W, B)`` → ``(out_channels, H, W, B)``.
        """
        flat = x.reshape(x.shape[0], -1)
        if residual is None:
            if self.bias is None:
                return (self.matrix() @ flat).view(-1, *x.shape[1:])
            y = torch.addmm(self.bias[:, None], self.matrix(), flat)
        else:
            y = residual.reshape(self.out_channels, -1)
            y = y.clone() if self.bias is None else y + self.bias[:, None]
            dtype = compute_dtype(flat)
            # in place (one pass over the output less); in-place products are not autocast
            y = y.to(dtype)
            y.addmm_(self.matrix().to(dtype), flat.to(dtype))
        return y.view(-1, *x.shape[1:])

    def matrix(self) -> torch.Tensor:
        """The masked kernel of a 1×1 layer as a matrix ``(out_channels, in_channels)``."""
        if self.kernel_size != (1, 1):
            raise ValueError(f"a {self.kernel_size} kernel is not a matrix: 1x1 layers only")
        return (self.weight * self.mask).flatten(1)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, mask_type={self.mask_type}, num_groups={self.num_groups}"
