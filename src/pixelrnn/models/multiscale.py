"""Multi-Scale PixelRNN (van den Oord et al. 2016, PixelRNN §3.4 "Multi-Scale PixelRNN").

An unconditional network of any family models the small ``s × s`` image ``x̃ = x[::k, ::k]``
(every ``k``-th pixel, ``s = ⌈n / k⌉``); a conditional network of the same family models the
``n × n`` image given it. An upsampling network (a 3×3 convolution, then a stride-``k``
transposed convolution) turns the small image into a ``c × n × n`` map, which every layer of the
conditional network reads through an unmasked 1×1 convolution added to its input-to-state
(PixelRNNs) or pre-activation (PixelCNNs) map::

    log p(x) = log p₁(x̃) + Σ_{i ∉ S} log p₂(x_i | x̃, x_<i)        S: the small image's pixels

The pixels of ``S`` are scored once, by the first stage. :meth:`MultiScalePixelRNN.network`
returns, at every position, the parameters of that position's conditional — the first stage's
at the positions of ``S``, the second stage's elsewhere — so likelihoods, training and
evaluation are the shared ones. With ``num_scales > 2`` the first stage is itself a multi-scale
model of the small image (one more conditional stage per scale).

Generation order: the small image first (in its own order), then the other pixels in raster
order (:func:`pixelrnn.sampling.generation_order` states it; the causality tests use it). The
cached sampler runs the stages one after the other, the second with the small image's pixels
fixed through the ``known`` mask (:mod:`pixelrnn.sampling.generation`).

Embedded inputs (``input_encoding="embedding"``, e.g. a prior over VQ-VAE codes): every stage
reads the levels through its own embedding table, as it does when the cached sampler runs it on
its own, and the upsampler through the model's table; :meth:`MultiScalePixelRNN.normalize`
gives the three feature blocks side by side. With intensities all three are the same features.

NOTE: the paper gives neither the upsampling network's layers nor ``c``; this one is the
smallest that fits its description. Both stages are trained jointly: their losses share no
parameters, so one joint step equals a step of each (up to global-norm gradient clipping).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pixelrnn.models.base import AutoregressiveModel, ModelConfig
from pixelrnn.models.gated_pixelcnn import GatedPixelCNN
from pixelrnn.models.pixelcnn import PixelCNN
from pixelrnn.models.pixelrnn import DiagonalBiLSTMPixelRNN, RowLSTMPixelRNN

# the networks a stage may be, by registry name
STAGE_CLASSES: dict[str, type[AutoregressiveModel]] = {
    cls.model_name: cls
    for cls in (PixelCNN, GatedPixelCNN, RowLSTMPixelRNN, DiagonalBiLSTMPixelRNN)
}
FAMILIES = tuple(STAGE_CLASSES)


def _build_stage(family: str, **fields: object) -> AutoregressiveModel:
    """A stage network of ``family`` with the config ``fields``."""
    cls = STAGE_CLASSES[family]
    return cls(cls.config_class.from_dict(fields))


@dataclass(frozen=True)
class MultiScaleConfig(ModelConfig):
    """Multi-Scale PixelRNN hyper-parameters (PixelRNN §3.4).

    Attributes:
        family: the network of every stage (``pixelcnn``, ``gated_pixelcnn``, ``row_lstm``,
            ``diagonal_bilstm``).
        scale: ``k``: the small image takes every ``k``-th pixel of each row and column.
        num_scales: resolutions; 2 is one unconditional and one conditional stage.
        hidden_channels, num_layers, output_channels: every stage's network size (the family's
            fields of these names).
        upsampling_channels: ``c``, channels of the conditioning map.
    """

    family: str = "pixelcnn"
    scale: int = 2
    num_scales: int = 2
    hidden_channels: int = 16
    num_layers: int = 7
    output_channels: int = 32
    upsampling_channels: int = 16

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.family not in FAMILIES:
            raise ValueError(f"family must be one of {FAMILIES}, got {self.family!r}")
        if self.scale < 2:
            raise ValueError(f"scale must be at least 2, got {self.scale}")
        if self.num_scales < 2:
            raise ValueError(f"num_scales must be at least 2, got {self.num_scales}")
        if self.context_channels is not None:
            raise ValueError(
                "a multi-scale model builds its own conditioning; drop context_channels"
            )

    def small_shape(self) -> tuple[int, int, int]:
        """The first stage's image: ``(C, ⌈H / k⌉, ⌈W / k⌉)``."""
        c, h, w = self.image_shape
        return c, math.ceil(h / self.scale), math.ceil(w / self.scale)


class Upsampler(nn.Module):
    """Small image → conditioning map (a 3×3 convolution, ReLU, a stride-``k`` transposed
    convolution cropped to the large size, ReLU).

    Shape:
        ``(B, C, s, s)`` → ``(B, c, n, n)``.
    """

    def __init__(self, channels: int, out_channels: int, scale: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, out_channels, 3, padding=1)
        self.up = nn.ConvTranspose2d(out_channels, out_channels, scale, stride=scale)

    def forward(self, small: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        up = self.up(F.relu(self.conv(small)))
        return F.relu(up[:, :, : size[0], : size[1]])


class MultiScalePixelRNN(AutoregressiveModel):
    """Multi-Scale PixelRNN: the small image, then the full image given it.

    Shape:
        :meth:`network`: ``(B, C, H, W)`` float → ``(B, P, H, W)``, every position's own
        conditional's parameters.
    """

    model_name = "multiscale"
    config_class = MultiScaleConfig
    supports_embedding = True

    def __init__(self, config: MultiScaleConfig) -> None:
        super().__init__(config)
        sizes = dict(
            hidden_channels=config.hidden_channels,
            num_layers=config.num_layers,
            output_channels=config.output_channels,
        )
        common = dict(
            num_levels=config.num_levels,
            distribution=config.distribution,
            input_encoding=config.input_encoding,
            embedding_dim=config.embedding_dim,
        )
        small = dict(common, image_shape=config.small_shape())
        if config.num_scales > 2:
            fields = dict(config.to_dict(), **small, num_scales=config.num_scales - 1)
            self.small_model: AutoregressiveModel = MultiScalePixelRNN(
                MultiScaleConfig.from_dict(fields)
            )
        else:
            self.small_model = _build_stage(config.family, **small, **sizes)
        self.large_model = _build_stage(
            config.family,
            image_shape=config.image_shape,
            context_channels=config.upsampling_channels,
            **common,
            **sizes,
        )
        self.upsampler = Upsampler(
            self.input_encoding.out_channels, config.upsampling_channels, config.scale
        )
        # one distribution object for all stages: the stages' draws are this model's draws
        self.large_model.distribution = self.distribution
        self._share_distribution(self.small_model)

    def _share_distribution(self, model: AutoregressiveModel) -> None:
        model.distribution = self.distribution
        if isinstance(model, MultiScalePixelRNN):
            model.large_model.distribution = self.distribution
            self._share_distribution(model.small_model)

    @property
    def stages(self) -> tuple[AutoregressiveModel, AutoregressiveModel]:
        """The unconditional (small) and the conditional (full-size) stage."""
        return self.small_model, self.large_model

    def subsample(self, x: torch.Tensor) -> torch.Tensor:
        """Every ``k``-th pixel. Shape: ``(B, C, H, W)`` → ``(B, C, ⌈H/k⌉, ⌈W/k⌉)``."""
        k = self.config.scale
        return x[:, :, ::k, ::k]

    def small_positions(self, like: torch.Tensor) -> torch.Tensor:
        """bool like ``like``: True on the pixels the small image holds."""
        mask = torch.zeros_like(like, dtype=torch.bool)
        k = self.config.scale
        mask[:, :, ::k, ::k] = True
        return mask

    @property
    def embedded(self) -> bool:
        """Whether the stages read embeddings, each through its own table."""
        return self.input_encoding.table is not None

    @property
    def input_channels(self) -> int:
        """Channels of :meth:`normalize`'s features: the upsampler's, then with embeddings the
        small and the large stage's."""
        own = self.input_encoding.out_channels
        if not self.embedded:
            return own
        return own + self.small_model.input_channels + self.large_model.input_channels

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """The features of integer levels: the centred levels every part reads, or with
        embeddings the upsampler's, the small stage's and the large stage's, concatenated.

        Shape:
            ``(B, C, H, W)`` → ``(B, input_channels, H, W)``.
        """
        own = self.upsampler_input(x)
        if not self.embedded:
            return own
        return torch.cat([own, self.small_model.normalize(x), self.large_model.normalize(x)], 1)

    def upsampler_input(self, levels: torch.Tensor) -> torch.Tensor:
        """The upsampler's features of integer levels (the model's own encoding).

        Shape:
            ``(B, C, h, w)`` → ``(B, C · width, h, w)``.
        """
        return self.input_encoding(levels, next(self.parameters()).dtype)

    def context(self, small: torch.Tensor) -> torch.Tensor:
        """The conditioning map from the small image's upsampler features
        (:meth:`upsampler_input`). ``(B, c, H, W)``."""
        return self.upsampler(small, self.image_shape[1:])

    def network(self, x: torch.Tensor) -> torch.Tensor:
        if self.embedded:
            sizes = [
                self.input_encoding.out_channels,
                self.small_model.input_channels,
                self.large_model.input_channels,
            ]
            own, small_features, large_features = x.split(sizes, 1)
        else:
            own = small_features = large_features = x
        params = self.large_model.network(large_features, context=self.context(self.subsample(own)))
        k = self.config.scale
        out = params.clone()
        out[:, :, ::k, ::k] = self.small_model.network(self.subsample(small_features))
        return out
