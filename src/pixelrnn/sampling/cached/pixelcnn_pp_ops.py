"""The cached PixelCNN++'s per-position operations (:mod:`pixelrnn.sampling.cached.pixelcnn_pp`):
cached maps, and one class per layer kind — a gated ResNet layer, a stride-2 convolution, a
stride-2 transposed convolution — each computing its output at one position (``at``) or for a
whole row (``row``) from the maps it reads.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pixelrnn.nn import GatedResNet, ShiftedConv2d, ShiftedConvTranspose2d, concat_elu
from pixelrnn.sampling.cached.base import linear


class Map:
    """One layer's activations at one resolution, padded with zeros: 1 row on top, 1 column on
    each side; position ``(a, b)`` at padded row ``a + 1``, column ``b + 1``. Only the last
    two padded rows are kept (everything reads rows ``a − 1 .. a`` at the newest row ``a``), in
    a ring: padded row ``p`` in slot ``p mod 2`` (the whole image at 1,024 images was 3.9 GB).
    A slot is overwritten position by position as its new row is computed, and a position is
    only read once written (or at the padding, never written). Stored channels last, so that a
    position's channels, which a step gathers for every image, are contiguous.

    Shape of :attr:`t`: ``(B, C, 2, W + 2)``.
    """

    ROWS = 2

    def __init__(self, like: torch.Tensor, channels: int, width: int) -> None:
        shape = (like.shape[0], channels, self.ROWS, width + 2)
        self.t = like.new_zeros(shape).contiguous(memory_format=torch.channels_last)
        self.width = width
        # the compiled steps' concat_elu of the map, written with it (keep_elu)
        self.elu: Map | None = None

    def keep_elu(self) -> None:
        """Also keep ``concat_elu`` of the map (``2C`` channels, ``elu(x)`` then ``elu(−x)``;
        zero at the padding, as ``elu(0) = 0``), written with every position: the compiled
        step reads a gated ResNet's input windows from it."""
        if self.elu is None:
            self.elu = Map(self.t, 2 * self.t.shape[1], self.width)

    def _slot(self, padded_row: int) -> int:
        return padded_row % self.ROWS

    def at(self, a: int, b: int) -> torch.Tensor:
        """Shape: ``(B, C)``."""
        return self.t[:, :, self._slot(a + 1), b + 1]

    def set_at(self, a: int, b: int, value: torch.Tensor) -> None:
        """Write position ``(a, b)``. Shape: ``(B, C)``."""
        self.t[:, :, self._slot(a + 1), b + 1] = value
        if self.elu is not None:
            self.elu.set_at(a, b, concat_elu(self.at(a, b)[:, :, None])[:, :, 0])

    def window(self, a: int, b: int, width: int) -> torch.Tensor:
        """Rows ``a − 1 .. a``, columns ``b − 1 ..`` (``width`` of them), flattened.

        Shape: ``(B, C·2·width)``, in a convolution weight's ``(C, kh, kw)`` order."""
        return self.rows(a)[:, :, :, b : b + width].flatten(1)

    def rows(self, a: int) -> torch.Tensor:
        """Rows ``a − 1 .. a`` with the side padding. Shape: ``(B, C, 2, W + 2)``."""
        return torch.stack([self.t[:, :, self._slot(a)], self.t[:, :, self._slot(a + 1)]], dim=2)

    def row(self, a: int) -> torch.Tensor:
        """Shape: ``(B, C, W)``."""
        return self.t[:, :, self._slot(a + 1), 1 : 1 + self.width]

    def set_row(self, a: int, value: torch.Tensor | float) -> None:
        """Write row ``a``. Shape: ``(B, C, W)``."""
        self.t[:, :, self._slot(a + 1), 1 : 1 + self.width] = value
        if self.elu is not None:
            self.elu.set_row(a, concat_elu(self.row(a)[:, :, None])[:, :, 0])


def layer_kernel(conv: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """A convolution's kernel (weight normalisation applied once, here) and its bias."""
    return conv.weight.detach().contiguous(), conv.bias.detach()


def kernel_matrix(kernel: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """A kernel ``(C_out, C_in, kh, kw)`` as ``(C_in·kh·kw, C_out)``, with its bias."""
    weight, bias = kernel
    return weight.reshape(weight.shape[0], -1).t().contiguous(), bias


@dataclass
class Residual:
    """One :class:`~pixelrnn.nn.GatedResNet` applied to cached maps."""

    layer: GatedResNet
    inp: Map
    aux: list[Map]
    c1: Map  # concat_elu of the first convolution's output (what the second one reads)
    out: Map
    class_bias: torch.Tensor | float  # (B, 2F) or 0

    def __post_init__(self) -> None:
        self.kernel_in, self.kernel_out = (
            layer_kernel(self.layer.conv_in.conv),
            layer_kernel(self.layer.conv_out.conv),
        )
        self.aux_kernel = None if self.layer.aux is None else layer_kernel(self.layer.aux)
        self.w_in, self.b_in = kernel_matrix(self.kernel_in)
        self.w_out, self.b_out = kernel_matrix(self.kernel_out)
        self.k = self.kernel_in[0].shape[-1]  # 3 (down) or 2 (down-right)
        self.aux_w = None if self.aux_kernel is None else kernel_matrix(self.aux_kernel)
        self.f = self.out.t.shape[1]

    def _gate(self, x: torch.Tensor, c2: torch.Tensor) -> torch.Tensor:
        """``x + c2[:F] · σ(c2[F:])`` along channels. Shape: ``(B, F, …)``, ``(B, 2F, …)``."""
        return x + c2[:, : self.f] * torch.sigmoid(c2[:, self.f :])

    def at(self, a: int, b: int) -> None:
        """The layer at one position (down-right stream)."""
        c1 = linear(concat_elu4(self.inp.window(a, b, self.k), self.k), self.w_in, self.b_in)
        if self.aux_w is not None:
            aux = torch.cat([m.at(a, b) for m in self.aux], dim=1)
            c1 = c1 + linear(concat_elu(aux[:, :, None, None])[:, :, 0, 0], *self.aux_w)
        self.c1.set_at(a, b, concat_elu(c1[:, :, None, None])[:, :, 0, 0])
        c2 = linear(self.c1.window(a, b, self.k), self.w_out, self.b_out) + self.class_bias
        self.out.set_at(a, b, self._gate(self.inp.at(a, b), c2))

    def row(self, a: int) -> None:
        """The layer on a whole row (down stream): the module's own convolutions."""
        c1 = F.conv2d(concat_elu(self.inp.rows(a)), *self.kernel_in)  # (B, F, 1, W)
        if self.aux_kernel is not None:
            aux = torch.cat([m.row(a) for m in self.aux], dim=1)[:, :, None]
            c1 = c1 + F.conv2d(concat_elu(aux), *self.aux_kernel)
        self.c1.set_row(a, concat_elu(c1)[:, :, 0])
        c2 = F.conv2d(self.c1.rows(a), *self.kernel_out)[:, :, 0]  # (B, 2F, W)
        if isinstance(self.class_bias, torch.Tensor):
            c2 = c2 + self.class_bias[:, :, None]
        self.out.set_row(a, self._gate(self.inp.row(a), c2))


def concat_elu4(window: torch.Tensor, k: int) -> torch.Tensor:
    """``concat_elu`` of a flattened ``(B, C·2·k)`` window, in the ``(2C, 2, k)`` order the
    first convolution's kernel expects."""
    b = window.shape[0]
    return concat_elu(window.view(b, -1, 2, k)).flatten(1)


@dataclass
class Downsample:
    """A stride-2 shifted convolution from one resolution to the next."""

    conv: ShiftedConv2d
    inp: Map
    out: Map

    def __post_init__(self) -> None:
        self.kernel = layer_kernel(self.conv.conv)
        self.w, self.b = kernel_matrix(self.kernel)

    def at(self, a: int, b: int) -> None:
        """Down-right: rows ``2a − 1 .. 2a``, columns ``2b − 1 .. 2b`` of the input."""
        self.out.set_at(a, b, linear(self.inp.window(2 * a, 2 * b, 2), self.w, self.b))

    def row(self, a: int) -> None:
        """Down: rows ``2a − 1 .. 2a``, every column (stride 2 along the row)."""
        out = F.conv2d(self.inp.rows(2 * a), *self.kernel, stride=(1, 2))
        self.out.set_row(a, out[:, :, 0])


@dataclass
class Upsample:
    """A stride-2 shifted transposed convolution from one resolution to the previous one."""

    conv: ShiftedConvTranspose2d
    inp: Map
    out: Map

    def __post_init__(self) -> None:
        self.kernel = layer_kernel(self.conv.conv)  # (C_in, C_out, kh, kw), (C_out,)
        self.taps = self.kernel[0].permute(2, 3, 0, 1).contiguous()  # (kh, kw, C_in, C_out)
        self.bias = self.kernel[1]

    def at(self, a: int, b: int) -> None:
        """Down-right (2×2, stride 2): output ``(a, b)`` reads input ``(a // 2, b // 2)``."""
        tap = self.taps[a % 2, b % 2]
        self.out.set_at(a, b, linear(self.inp.at(a // 2, b // 2), tap, self.bias))

    def row(self, a: int) -> None:
        """Down (2×3, stride 2): output row ``a`` reads input row ``a // 2``, cropped as the
        module crops."""
        src = self.inp.row(a // 2)[:, :, None]
        full = F.conv_transpose2d(src, *self.kernel, stride=2)  # (B, F, 2, 2W + 1)
        first = self.conv.first_column
        self.out.set_row(a, full[:, :, a % 2, first : first + self.out.width])


Op = Residual | Downsample | Upsample
