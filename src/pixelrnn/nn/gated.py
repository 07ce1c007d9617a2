"""Gated PixelCNN layers: shifted vertical / horizontal stacks and gated units (Gated PixelCNN §2).

Both stacks use *shifted* convolutions instead of masked square kernels, so no multiply is spent
on taps that are always zero. For kernel size ``k`` (``r = k // 2``) and output position ``x``::

    vertical stack: (r+1) × k kernel, padded r rows on top   horizontal stack: 1 × (r+1) kernel
                                                             padded r columns on the left
        1 1 1 1 1                                                1 1 c
        1 1 1 1 1
        1 1 x 1 1       (rows above and the current row,         c = current pixel: colour rule,
                         left and right)                           mask A in the first layer,
                                                                   mask B later

The vertical stack at row ``i`` reads rows ``≤ i`` — the current row too, right of the pixel
included — so it feeds the horizontal stack only after a one-row down-shift (the *link*), and
never the other way round: the prediction at ``(i, j)`` sees every row above through the
vertical stack and the row to its left through the horizontal stack, with no blind spot.

Gated unit (Eq. 2, with Eq. 4/5 conditioning): one convolution with ``2p`` outputs, split in
two halves ``f`` and ``g``, ``y = tanh(f + V_f h) ⊙ σ(g + V_g h)``. The halves carry the same
R/G/B group layout (:func:`pixelrnn.nn.gate_groups` with two gates), so unit ``u`` of ``y``
stays in unit ``u``'s colour group.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pixelrnn.nn.masked_conv import MaskedConv2d, MaskType, causal_mask, gate_groups
from pixelrnn.nn.shifted_conv import down_shift


def gated_activation(pre: torch.Tensor) -> torch.Tensor:
    """``tanh(f) ⊙ σ(g)`` of the two channel halves (Gated PixelCNN Eq. 2).

    Shape:
        ``(B, 2p, H, W)`` → ``(B, p, H, W)``.
    """
    f, g = pre.chunk(2, dim=1)
    return torch.tanh(f) * torch.sigmoid(g)


class VerticalStackConv(nn.Conv2d):
    """Unmasked ``(r+1) × k`` convolution over the current row and the ``r`` rows above.

    Shape:
        ``(B, C_in, H, W)`` → ``(B, C_out, H, W)``; output row ``i`` reads input rows
        ``i-r .. i``, columns ``j-r .. j+r``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        r = kernel_size // 2
        super().__init__(in_channels, out_channels, (r + 1, kernel_size))
        self.pad = (r, r, r, 0)  # left, right, top, bottom

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, self.pad))


class HorizontalStackConv(nn.Conv2d):
    """``1 × (r+1)`` convolution over the current pixel and the ``r`` pixels to its left.

    The tap on the current pixel follows the colour rule of ``mask_type`` (PixelRNN §3.4); the
    taps to the left are free.

    Args:
        out_groups: colour group of every output channel (:func:`gate_groups` for ``2p``
            gate pre-activations).

    Shape:
        ``(B, C_in, H, W)`` → ``(B, C_out, H, W)``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        mask_type: MaskType,
        num_groups: int,
        out_groups: torch.Tensor | None = None,
    ) -> None:
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        r = kernel_size // 2
        super().__init__(in_channels, out_channels, (1, r + 1))
        self.pad = (r, 0, 0, 0)
        self.mask_type = mask_type
        # the left half and centre of the symmetric 1 × k causal mask
        mask = causal_mask(
            in_channels, out_channels, (1, kernel_size), mask_type, num_groups, out_groups
        )
        self.register_buffer("mask", mask[..., : r + 1].contiguous(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, self.pad), self.weight * self.mask, self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, mask_type={self.mask_type}"


class GatedLayer(nn.Module):
    """One Gated PixelCNN layer (Gated PixelCNN Fig. 2)::

        v ─ vertical conv ─► v_pre (2p) ─────────────── gate ─► v_out (p)
                               │ down-shift, 1×1 (link)
        h ─ horizontal conv ─► + ─► h_pre (2p) ─ gate ─ 1×1 (mask B) ─► + h ─► h_out (p)

    ``condition`` (a ``(B, 4p, 1, 1)`` per-image bias or a ``(B, 4p, H, W)`` map, already
    projected by the model) is added to both pre-activations, first ``2p`` channels to the
    vertical, last ``2p`` to the horizontal stack. The first layer reads the image: mask A on the
    current pixel and no residual connection.

    Args:
        in_channels: ``C`` of the image (first layer) or ``p``.
        hidden_channels: ``p``.
        kernel_size: ``k`` of both stacks.
        num_groups: colour groups.
        first: this is the layer that reads the image.

    Shape:
        ``v, h`` ``(B, in_channels, H, W)`` → ``v_out, h_out`` ``(B, p, H, W)``.
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        kernel_size: int,
        num_groups: int,
        first: bool = False,
    ) -> None:
        super().__init__()
        p = hidden_channels
        self.first = first
        pre_groups = gate_groups(p, 2, num_groups)
        self.vertical = VerticalStackConv(in_channels, 2 * p, kernel_size)
        # The link reads rows strictly above (after the down-shift): no colour rule needed.
        self.link = nn.Conv2d(2 * p, 2 * p, 1)
        self.horizontal = HorizontalStackConv(
            in_channels, 2 * p, kernel_size, "A" if first else "B", num_groups, pre_groups
        )
        # 1×1 mask B: channel-mixing 1×1 layers keep the R→G→B rule (PixelRNN §3.4)
        self.output = None if first else MaskedConv2d(p, p, 1, "B", num_groups)

    def forward(
        self, v: torch.Tensor, h: torch.Tensor, condition: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        v_pre = self.vertical(v)  # (B, 2p, H, W): rows ≤ i
        h_pre = self.horizontal(h) + self.link(down_shift(v_pre))  # rows < i, or row i up to j
        if condition is not None:
            cond_v, cond_h = condition.chunk(2, dim=1)
            v_pre = v_pre + cond_v
            h_pre = h_pre + cond_h
        v_out = gated_activation(v_pre)
        h_gated = gated_activation(h_pre)
        if self.output is None:
            return v_out, h_gated
        return v_out, self.output(h_gated).add_(h)  # residual on the horizontal stack only
