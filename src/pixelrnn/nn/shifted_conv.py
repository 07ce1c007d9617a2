"""Shifted (mask-free) causal convolutions of PixelCNN++ (Salimans et al. 2017, §2.3–2.4;
openai/pixel-cnn ``nn.py``).

Causality comes from padding, not masks: a *down-shifted* ``fh × fw`` convolution pads
``fh − 1`` rows on top and ``(fw − 1) / 2`` columns on each side, so the output at row ``i``
reads input rows ``i − fh + 1 .. i`` only; a *down-right-shifted* one pads ``fh − 1`` rows on top
and ``fw − 1`` columns on the left, so it reads columns ``j − fw + 1 .. j`` of those rows::

    down-shifted 2×3 at (i, j)     down-right-shifted 2×2 at (i, j)
        x x x                          x x
        x o x                          x o          (o = output position, included)

With stride 2 the same padding keeps the output at ``(i', j')`` on input rows ``≤ 2i'`` (and
columns ``≤ 2j'`` for the down-right version). The transposed versions run a VALID transposed
convolution and crop it to the first ``H·s`` rows (and the first ``W·s`` columns, or the
centred ones for the down-shifted version): output row ``r`` reads input row ``r // s`` only,
never a later one.

Every convolution here carries weight normalisation (Salimans & Kingma 2016), ``w = g·v/‖v‖``
per output filter (:mod:`pixelrnn.nn.weight_norm`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pixelrnn.nn.dropout import Dropout
from pixelrnn.nn.weight_norm import weight_norm


def down_shift(x: torch.Tensor) -> torch.Tensor:
    """Move every row one down, a zero row on top. ``(B, C, H, W)`` → same shape."""
    return F.pad(x, (0, 0, 1, 0))[:, :, :-1]


def right_shift(x: torch.Tensor) -> torch.Tensor:
    """Move every column one right, a zero column on the left. ``(B, C, H, W)`` → same shape."""
    return F.pad(x, (1, 0))[..., :-1]


def concat_elu(x: torch.Tensor) -> torch.Tensor:
    """``elu([x, −x])`` along channels (PixelCNN++'s nonlinearity). ``(B, C, H, W)`` →
    ``(B, 2C, H, W)``."""
    # in place on the fresh concatenation, which its backward does not need
    return F.elu(torch.cat([x, -x], dim=1), inplace=True)


def _normalised(module: nn.Conv2d | nn.ConvTranspose2d, dim: int, use: bool) -> nn.Module:
    return weight_norm(module, dim=dim) if use else module


class ShiftedConv2d(nn.Module):
    """A down-shifted or down-right-shifted convolution (see the module docstring).

    Args:
        in_channels, out_channels: feature maps.
        kernel_size: ``(fh, fw)``; ``fw`` odd for ``"down"``.
        shift: ``"down"`` (rows above and the current row, centred columns) or ``"down_right"``
            (rows above and the current row, columns up to the current one).
        stride: 1, or 2 to halve the resolution.
        use_weight_norm: reparametrise the weight as ``g·v/‖v‖``.

    Shape:
        ``(B, in, H, W)`` → ``(B, out, ⌈H/s⌉, ⌈W/s⌉)``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: tuple[int, int],
        shift: str,
        stride: int = 1,
        use_weight_norm: bool = True,
    ) -> None:
        super().__init__()
        fh, fw = kernel_size
        if shift == "down":
            if fw % 2 == 0:
                raise ValueError(f"a down-shifted convolution needs an odd width, got {fw}")
            self.padding = ((fw - 1) // 2, (fw - 1) // 2, fh - 1, 0)  # left, right, top, bottom
        elif shift == "down_right":
            self.padding = (fw - 1, 0, fh - 1, 0)
        else:
            raise ValueError(f"shift must be 'down' or 'down_right', got {shift!r}")
        self.conv = _normalised(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride), 0, use_weight_norm
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # with stride s the padded length L + f − 1 gives ⌈L / s⌉ outputs: every row is covered
        return self.conv(F.pad(x, self.padding))


class ShiftedConvTranspose2d(nn.Module):
    """A down-shifted or down-right-shifted transposed convolution (upsampling).

    Args as :class:`ShiftedConv2d`, ``stride`` the upsampling factor.

    Shape:
        ``(B, in, H, W)`` → ``(B, out, H·s, W·s)``, or cropped to ``output_size`` (the first
        rows and columns: what a down-sampled odd size came from).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: tuple[int, int],
        shift: str,
        stride: int = 2,
        use_weight_norm: bool = True,
    ) -> None:
        super().__init__()
        fh, fw = kernel_size
        if shift not in ("down", "down_right"):
            raise ValueError(f"shift must be 'down' or 'down_right', got {shift!r}")
        if fh > stride:
            raise ValueError(f"filter height {fh} above the stride {stride} would reach later rows")
        self.stride = stride
        self.first_column = (fw - 1) // 2 if shift == "down" else 0
        # ConvTranspose2d weights are (in, out, fh, fw): normalise per output filter (dim 1)
        self.conv = _normalised(
            nn.ConvTranspose2d(in_channels, out_channels, kernel_size, stride), 1, use_weight_norm
        )

    def forward(self, x: torch.Tensor, output_size: tuple[int, int] | None = None) -> torch.Tensor:
        h, w = x.shape[-2:]
        rows, cols = output_size or (h * self.stride, w * self.stride)
        if rows > h * self.stride or cols > w * self.stride:
            raise ValueError(
                f"output size {(rows, cols)} exceeds {(h * self.stride, w * self.stride)}"
            )
        out = self.conv(x)  # (B, out, (H−1)s + fh, (W−1)s + fw)
        return out[:, :, :rows, self.first_column : self.first_column + cols]


class GatedResNet(nn.Module):
    """PixelCNN++'s gated residual layer (§2.5; ``gated_resnet`` of the official code)::

        c1 = conv(concat_elu(x)) [+ nin(concat_elu(a))]
        c2 = conv(dropout(concat_elu(c1)))  [+ class bias]         (2F maps)
        out = x + c2[:F] · σ(c2[F:])

    Both convolutions are shifted the same way (``shift``); ``a`` is an auxiliary input read
    at the same position through a 1×1 convolution (the other stream, or a U-Net shortcut).

    Args:
        channels: ``F``, feature maps in and out.
        shift: ``"down"`` (2×3 filters) or ``"down_right"`` (2×2 filters).
        aux_channels: channels of ``a`` (0: no auxiliary input).
        dropout: probability of zeroing a unit of ``concat_elu(c1)`` in training.
        num_classes: class labels whose one-hot code biases ``c2`` (None: unconditional).
        use_weight_norm: weight normalisation on every convolution.

    Shape:
        x ``(B, F, H, W)``, a ``(B, aux, H, W)``, labels one-hot ``(B, classes)`` →
        ``(B, F, H, W)``.
    """

    def __init__(
        self,
        channels: int,
        shift: str,
        aux_channels: int = 0,
        dropout: float = 0.0,
        num_classes: int | None = None,
        use_weight_norm: bool = True,
    ) -> None:
        super().__init__()
        kernel = (2, 3) if shift == "down" else (2, 2)
        f = channels
        self.conv_in = ShiftedConv2d(2 * f, f, kernel, shift, use_weight_norm=use_weight_norm)
        self.aux = (
            _normalised(nn.Conv2d(2 * aux_channels, f, 1), 0, use_weight_norm)
            if aux_channels
            else None
        )
        self.dropout = Dropout(dropout)
        self.conv_out = ShiftedConv2d(2 * f, 2 * f, kernel, shift, use_weight_norm=use_weight_norm)
        # data-dependent initialisation scales this residual branch down (official: 0.1)
        self.conv_out.conv.init_scale = 0.1
        self.class_bias = None if num_classes is None else nn.Linear(num_classes, 2 * f, bias=False)

    def forward(
        self,
        x: torch.Tensor,
        a: torch.Tensor | None = None,
        one_hot: torch.Tensor | None = None,
    ) -> torch.Tensor:
        c1 = self.conv_in(concat_elu(x))
        if self.aux is not None:
            if a is None:
                raise ValueError("this gated ResNet layer needs its auxiliary input a")
            c1 = c1 + self.aux(concat_elu(a))
        c2 = self.conv_out(self.dropout(concat_elu(c1)))
        if self.class_bias is not None and one_hot is not None:
            c2 = c2 + self.class_bias(one_hot)[:, :, None, None]
        value, gate = c2.chunk(2, dim=1)
        return x + value * torch.sigmoid(gate)
