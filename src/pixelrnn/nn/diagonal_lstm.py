"""Diagonal BiLSTM layer (PixelRNN §3.2, Fig. 3 and 4).

Each direction skews its input so that diagonals become columns and runs an LSTM over the
columns of the skewed map: the state at skewed position ``(r, t)`` reads the previous column at
rows ``r − 1`` and ``r`` (a 2×1 state-to-state convolution, padded on top), i.e. the pixels
above and to the left in the original image. The input-to-state convolution is 1×1 with mask B.
After unskewing, the left-to-right direction has seen every pixel above-left of the current one
(and the current one, by the colour rule)::

    x x x x . .     left-to-right: rows above up to the column, and the row to the left
    x x x x . .
    x x x ● . .

The right-to-left direction is the same computation on the mirrored map (separate weights); its
output is **shifted down by one row** before it is added, so that at a pixel it only brings in
rows above (everything to the right in the current row is future). Together: every earlier
pixel, up to the one sub-pixel per row of the second NOTE.

NOTE: both directions are computed in one scan over the ``W + H − 1`` skewed columns,
:class:`~pixelrnn.nn.diagonal_scan.DiagonalScan` (one autograd Function with
back-propagation through time written out, compiled where possible). The same layer in the
paper's form — skew, 1×1 input-to-state, column LSTM, unskew — is
:func:`pixelrnn.nn.recurrent_reference.diagonal_bilstm_reference`, which the scan is tested
against.

NOTE: "entire available context" (§3.2) holds up to one sub-pixel per row: no feature of row
``i − 1`` ever holds the last channel of its last pixel ``(i − 1, W − 1)`` (a feature never holds
its own position's current channel, and nothing lies to its right), so pixels ``(i, j)`` with
``j < W − 1 − r`` (``r`` = half the input kernel) do not see it. Tested exactly in
``tests/models/test_receptive_field.py``. With ``image_channels`` (the models'
``full_context=True``; a deviation from the paper) the right-to-left direction also reads the
raw image at its own position through an unmasked 1×1 kernel — allowed because its output
enters one row down — and then every earlier sub-pixel is seen.
"""

from __future__ import annotations

import torch
from torch import nn

from pixelrnn.nn.diagonal_scan import DiagonalScan
from pixelrnn.nn.masked_conv import MaskedConv2d, gate_groups


class DiagonalBiLSTM(nn.Module):
    """Diagonal BiLSTM over a feature map.

    Args:
        in_channels: input feature maps.
        hidden_channels: ``h``, hidden units per direction.
        num_groups: colour groups (3 for RGB, 1 otherwise).
        context_channels: channels of a conditioning map added to both directions'
            input-to-state maps through an unmasked 1×1 convolution (Multi-Scale PixelRNN,
            §3.4); None: none.
        image_channels: the right-to-left direction also reads the raw image (this many
            channels) through an unmasked 1×1 convolution (see the module docstring); None:
            the paper's layer.

    Shape:
        ``(B, in_channels, H, W)`` (and context ``(B, c, H, W)``) → ``(B, h, H, W)`` (the sum
        of the two directions).
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        num_groups: int = 1,
        context_channels: int | None = None,
        image_channels: int | None = None,
    ) -> None:
        super().__init__()
        h = hidden_channels
        self.hidden_channels = h
        # Both directions' 1x1 mask-B input-to-state kernels, [left | right] x 4h. Like
        # state_to_state below, the module holds the weights; DiagonalScan applies them.
        self.input_to_state = MaskedConv2d(
            in_channels, 8 * h, 1, "B", num_groups, out_groups=gate_groups(h, 8, num_groups)
        )
        # Column-wise 2x1 state-to-state kernels, one per direction (groups=2), no bias.
        self.state_to_state = nn.Conv1d(2 * h, 8 * h, kernel_size=2, groups=2, bias=False)
        self.context_to_state = (
            None if context_channels is None else nn.Conv2d(context_channels, 8 * h, 1, bias=False)
        )
        # right-to-left only: (4h, C_img, 1, 1); the left-to-right direction must not see it
        self.image_to_state = (
            None if image_channels is None else nn.Conv2d(image_channels, 4 * h, 1, bias=False)
        )

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        image: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``context``: a conditioning map; ``image``: the raw image, for a layer built with
        ``image_channels``. Shapes ``(B, c, H, W)``, ``(B, C_img, H, W)``."""
        out = self.forward_batch_last(
            *(None if t is None else t.permute(1, 2, 3, 0) for t in (x, context, image))
        )
        return out.permute(3, 0, 1, 2).contiguous()

    def forward_batch_last(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        image: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """:meth:`forward` on batch-last maps (the scan's own layout, so a network kept in it
        changes no layout per layer).

        Shape:
            ``(in_channels, H, W, B)`` (context ``(c, H, W, B)``, image ``(C_img, H, W, B)``)
            → ``(h, H, W, B)``.
        """
        conv = self.input_to_state
        w_in = conv.weight * conv.mask  # (8h, C, 1, 1)
        # extra inputs join as channels with unmasked kernels: the scan then adds their 1x1
        # convolutions to the input-to-state maps
        if self.context_to_state is not None and context is not None:
            x = torch.cat([x, context.to(x.dtype)], dim=0)
            w_in = torch.cat([w_in, self.context_to_state.weight], dim=1)
        if self.image_to_state is not None:
            if image is None:
                raise ValueError("this layer reads the image (image_channels): pass image")
            right = self.image_to_state.weight
            x = torch.cat([x, image.to(x.dtype)], dim=0)
            w_in = torch.cat([w_in, torch.cat([torch.zeros_like(right), right])], dim=1)
        return DiagonalScan.apply(x, w_in.flatten(1), conv.bias, self.state_to_state.weight)
