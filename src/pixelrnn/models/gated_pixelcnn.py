"""Gated PixelCNN (van den Oord et al. 2016, "Conditional Image Generation with PixelCNN
Decoders", §2.1–2.3, Fig. 2), unconditional or class-conditional.

Network, for ``p`` hidden channels and ``L`` layers::

    x ─► gated layer 0 (k0 × k0 reach, mask A on the current pixel, no residual)
      ─► gated layer 1 .. L-1 (vertical + horizontal stacks, k × k reach, mask B, residual)
      ─► horizontal stack ─ ReLU ─ 1×1 mask B ─► ReLU ─ 1×1 mask B ─► P distribution parameters

Conditioning (optional): a class label ``y`` becomes a one-hot code or learned embedding ``h``;
every layer adds ``V^T h`` to both gate halves of both stacks (Eq. 4) and, with spatial
conditioning, an unmasked 1×1 convolution of ``s = m(h)`` (Eq. 5), ``m`` a small
deconvolution network.

Receptive field: the vertical stack grows ``k // 2`` rows up and ``k // 2`` columns left *and
right* per layer and reaches the horizontal stack one row down, so the prediction at
``(i, j)`` sees every earlier pixel once ``k0 // 2 + (L-1) · (k // 2)`` covers the image
width and height — no blind spot (tests/models/test_gated_pixelcnn.py).

NOTE: the paper does not give the first layer's size; it is the PixelRNN family's 7 × 7
(``input_kernel_size``) here. NOTE: the output layers are PixelRNN's (ReLU + 1×1 mask B, twice);
the paper says only that they are as in PixelRNN.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pixelrnn.models.base import AutoregressiveModel, ModelConfig
from pixelrnn.nn import (
    ClassEmbedding,
    ContextProjections,
    GatedLayer,
    MaskedConv2d,
    SpatialConditioning,
    context_terms,
)


@dataclass(frozen=True)
class GatedPixelCNNConfig(ModelConfig):
    """Gated PixelCNN hyper-parameters (Gated PixelCNN §2, §3).

    Attributes:
        hidden_channels: ``p``, feature maps of both stacks (384 in the paper's large models).
        num_layers: gated layers, the first one included (20 in the paper's large models).
        kernel_size: ``k`` of layers 1..L-1; the stacks reach ``k // 2`` pixels per layer (5).
        input_kernel_size: ``k`` of the first layer, which reads the image (7).
        output_channels: feature maps of the two ReLU + 1×1 output layers.
        num_classes: number of class labels for class-conditional generation (None: none).
        class_embedding_dim: size of a learned label embedding; None: one-hot labels.
        spatial_conditioning: also map the label to a spatial map with a deconvolution network
            and add an unmasked 1×1 convolution of it to every gate (location-dependent
            conditioning, Eq. 5).
        spatial_channels: feature maps of that spatial map.
    """

    hidden_channels: int = 32
    num_layers: int = 15
    kernel_size: int = 5
    input_kernel_size: int = 7
    output_channels: int = 32
    num_classes: int | None = None
    class_embedding_dim: int | None = None
    spatial_conditioning: bool = False
    spatial_channels: int = 16

    def __post_init__(self) -> None:
        super().__post_init__()
        self.require_odd("input_kernel_size", "kernel_size")
        self.require_width_per_colour()
        if self.num_classes is not None and self.num_classes < 1:
            raise ValueError(f"num_classes must be >= 1 or None, got {self.num_classes}")
        if self.class_embedding_dim is not None and self.class_embedding_dim < 1:
            raise ValueError(
                f"class_embedding_dim must be >= 1 or None, got {self.class_embedding_dim}"
            )
        if self.num_classes is None and (
            self.spatial_conditioning or self.class_embedding_dim is not None
        ):
            raise ValueError(
                "spatial_conditioning and class_embedding_dim need num_classes (a conditional "
                "model); set num_classes or --conditional class"
            )


@dataclass
class GateConditioning:
    """What a :class:`GatedPixelCNN`'s gate biases are made of: per layer the label's term
    ``V^T h`` (Eq. 4) ``(B, 4p, 1, 1)`` or None, the spatial map ``s = m(h)`` (Eq. 5)
    ``(B, s, H, W)`` or None, and a conditioning map ``(B, c, H, W)`` or None."""

    labels: list[torch.Tensor | None]
    spatial: torch.Tensor | None
    context: torch.Tensor | None


class GatedPixelCNN(AutoregressiveModel):
    """Gated PixelCNN: vertical and horizontal stacks, gated units, no blind spot.

    Shape:
        :meth:`network`: ``(B, C, H, W)`` float (and labels ``(B,)`` when conditional)
        → ``(B, P, H, W)`` distribution parameters.
    """

    model_name = "gated_pixelcnn"
    config_class = GatedPixelCNNConfig
    supports_context = True
    supports_embedding = True

    def __init__(self, config: GatedPixelCNNConfig) -> None:
        super().__init__(config)
        _, height, width = config.image_shape
        p, g = config.hidden_channels, self.mask_groups
        self.layers = nn.ModuleList(
            GatedLayer(self.input_channels, p, config.input_kernel_size, g, first=True)
            if k == 0
            else GatedLayer(p, p, config.kernel_size, g)
            for k in range(config.num_layers)
        )
        self.output_hidden = MaskedConv2d(p, config.output_channels, 1, "B", g)
        self.output = MaskedConv2d(config.output_channels, self.num_params_out, 1, "B", g)
        self.class_embedding: ClassEmbedding | None = None
        self.class_bias: nn.ModuleList | None = None
        self.spatial_map: SpatialConditioning | None = None
        self.spatial_bias: nn.ModuleList | None = None
        if config.num_classes is not None:
            self.class_embedding = ClassEmbedding(config.num_classes, config.class_embedding_dim)
            d = self.class_embedding.out_features
            # V^T h of Eq. 4 for both halves of both stacks: 4p numbers per layer
            self.class_bias = nn.ModuleList(
                nn.Linear(d, 4 * p, bias=False) for _ in range(config.num_layers)
            )
            if config.spatial_conditioning:
                s = config.spatial_channels
                self.spatial_map = SpatialConditioning(d, s, (height, width))
                self.spatial_bias = nn.ModuleList(
                    nn.Conv2d(s, 4 * p, 1, bias=False) for _ in range(config.num_layers)
                )
        # a conditioning map (Multi-Scale PixelRNN) reaches both halves of both stacks
        self.context_projections = (
            None
            if config.context_channels is None
            else ContextProjections(config.context_channels, [4 * p] * config.num_layers)
        )

    def conditioning(
        self, y: torch.Tensor | None, context: torch.Tensor | None = None
    ) -> GateConditioning:
        """What the gate biases are made of, computed once (:meth:`gate_biases` makes them).

        Shape:
            y ``(B,)`` and context ``(B, c, H, W)``.
        """
        num_layers = len(self.layers)
        if self.class_embedding is None or self.class_bias is None or y is None:
            return GateConditioning([None] * num_layers, None, context)
        h = self.class_embedding(y)  # (B, d)
        labels = [project(h)[:, :, None, None] for project in self.class_bias]
        spatial = None if self.spatial_map is None else self.spatial_map(h)  # (B, s, H, W)
        return GateConditioning(labels, spatial, context)

    def gate_biases(
        self, conditioning: GateConditioning, rows: slice = slice(None)
    ) -> list[torch.Tensor | None]:
        """Every layer's gate bias on the image rows ``rows``: ``(B, 4p, 1, 1)`` (a label
        alone) or ``(B, 4p, R, W)`` for ``R`` rows, or None. The maps' terms are 1×1
        projections, so a few rows cost a few rows' work: the cached sampler asks for one row
        at a time (every layer's whole map is ``L · 4p`` channels per image).

        Shape:
            a list of ``num_layers`` tensors.
        """
        context, spatial = conditioning.context, conditioning.spatial
        context = None if context is None else context[:, :, rows]
        out = context_terms(self.context_projections, context, len(self.layers))
        for k, bias in enumerate(conditioning.labels):
            if bias is None:
                continue
            if spatial is not None and self.spatial_bias is not None:
                bias = bias + self.spatial_bias[k](spatial[:, :, rows])
            out[k] = bias if out[k] is None else out[k] + bias
        return out

    def conditions(
        self, y: torch.Tensor | None, context: torch.Tensor | None = None
    ) -> list[torch.Tensor | None]:
        """Every layer's gate bias: ``(B, 4p, 1, 1)`` or ``(B, 4p, H, W)``, or None.

        Shape:
            y ``(B,)`` and context ``(B, c, H, W)`` → a list of ``num_layers`` tensors.
        """
        return self.gate_biases(self.conditioning(y, context))

    def network(
        self, x: torch.Tensor, y: torch.Tensor | None = None, context: torch.Tensor | None = None
    ) -> torch.Tensor:
        v = h = x
        for layer, condition in zip(self.layers, self.conditions(y, context), strict=True):
            v, h = layer(v, h, condition)
        h = F.relu(self.output_hidden(F.relu(h)), inplace=True)
        return self.output(h)
