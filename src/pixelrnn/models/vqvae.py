"""VQ-VAE (van den Oord, Vinyals & Kavukcuoglu, NeurIPS 2017): discrete codes for a prior.

* encoder: ``n`` stride-2 4×4 convolutions (+ ReLU), a 3×3 convolution, residual blocks and a
  1×1 convolution to ``z_e(x)`` ``(D, H/2^n, W/2^n)``;
* quantiser (:class:`~pixelrnn.nn.VectorQuantizer`): each position snapped to the nearest of
  ``K`` codes, straight-through gradient, codebook by moving averages or by its loss;
* decoder: a 3×3 convolution, residual blocks, ``n`` 4×4 transposed convolutions, and the
  parameters of any output distribution of the library at every sub-pixel — a likelihood in
  nats, ``log p(x | z_q(x))``, not a mean squared error.

Training loss per image: ``−log p(x | z_q) + β ‖z_e − sg[e]‖²`` (plus ``‖sg[z_e] − e‖²`` when
the codebook learns by its loss). The prior over codes is uniform while the VQ-VAE trains, so
its likelihood is the bound ``−log p(x) ≤ −log p(x | z_q(x)) + h·w·log K``; a learned prior over
the codes replaces the ``h·w·log K`` by the codes' NLL under it (the two-stage model).

Not autoregressive: given the codes the decoder's sub-pixels are independent.
:meth:`VQVAE.given_codes` binds a code map, and :meth:`forward` then returns its decoder's
parameters whatever the image; otherwise it encodes the image itself.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from pixelrnn.models.base import AutoregressiveModel, ModelConfig
from pixelrnn.nn import ResidualStack, VectorQuantizer, doubling_stack, halving_stack

CODEBOOK_UPDATES = ("ema", "loss")


@dataclass(frozen=True)
class VQVAEConfig(ModelConfig):
    """VQ-VAE settings.

    Attributes:
        num_codes: ``K``, codes in the codebook.
        code_dim: ``D``, width of a code.
        hidden_channels: width of the encoder and the decoder.
        residual_channels: width inside a residual block.
        num_residual_blocks: residual blocks of the encoder and of the decoder.
        downsamplings: ``n``; codes form an ``(⌈H/2^n⌉, ⌈W/2^n⌉)`` grid (images whose sides
            are not multiples of ``2^n`` are zero-padded at the bottom and right for the
            encoder, and the decoder's output is cropped back).
        top_downsamplings: ``t`` > 0 adds a top code level (VQ-VAE-2, Razavi et al. 2019): a
            ``(⌈h/2^t⌉, ⌈w/2^t⌉)`` map encoded from the bottom level's ``z_e``, whose decoded,
            upsampled map is added to the bottom's before the decoder; None: one level.
        commitment_cost: ``β``.
        codebook_update: ``"ema"`` (moving averages) or ``"loss"`` (the codebook loss).
        codebook_decay: ``γ`` of the codebook's moving averages.
        dead_code_threshold: moving count below which a code is restarted (0: never).
    """

    num_codes: int = 512
    code_dim: int = 64
    hidden_channels: int = 128
    residual_channels: int = 32
    num_residual_blocks: int = 2
    downsamplings: int = 2
    top_downsamplings: int | None = None
    commitment_cost: float = 0.25
    codebook_update: str = "ema"
    codebook_decay: float = 0.99
    dead_code_threshold: float = 1e-3

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.context_channels is not None:
            raise ValueError("a VQ-VAE takes no conditioning map; leave context_channels")
        if self.codebook_update not in CODEBOOK_UPDATES:
            raise ValueError(
                f"codebook_update must be one of {CODEBOOK_UPDATES}, got {self.codebook_update!r}"
            )
        if not 0 < self.codebook_decay < 1:
            raise ValueError(f"codebook_decay must lie in (0, 1), got {self.codebook_decay}")
        if self.top_downsamplings is not None and self.top_downsamplings < 1:
            raise ValueError(
                f"top_downsamplings must be >= 1 or None, got {self.top_downsamplings}"
            )
        if self.commitment_cost < 0 or self.dead_code_threshold < 0:
            raise ValueError("commitment_cost and dead_code_threshold must be >= 0")


class VQVAE(AutoregressiveModel):
    """A VQ-VAE whose decoder gives a distribution per sub-pixel (module docstring).

    Shapes: images ``(B, C, H, W)``; codes int64 ``(B, h, w)``.
    """

    model_name: ClassVar[str] = "vqvae"
    config_class: ClassVar[type[ModelConfig]] = VQVAEConfig
    likelihood_kind: ClassVar[str] = "bound"
    autoregressive: ClassVar[bool] = False

    def __init__(self, config: VQVAEConfig) -> None:
        super().__init__(config)
        c, h, w = config.image_shape
        hidden, n, d = config.hidden_channels, config.downsamplings, config.code_dim
        residual = (config.residual_channels, config.num_residual_blocks)
        self.encoder = nn.Sequential(
            *halving_stack(c, hidden, n, kernel_size=4, activation=nn.ReLU),
            nn.Conv2d(hidden, hidden, 3, padding=1),
            ResidualStack(hidden, *residual),
            nn.Conv2d(hidden, d, 1),
        )
        self.quantizer = self._quantizer()
        self.decoder_net = nn.Sequential(
            nn.Conv2d(d, hidden, 3, padding=1),
            ResidualStack(hidden, *residual),
            *doubling_stack(hidden, n, activation=nn.ReLU),
            nn.ReLU(),
            nn.Conv2d(hidden, self.num_params_out, 1),
        )
        self.code_shape = (-(-h // 2**n), -(-w // 2**n))
        self.code_shapes = [self.code_shape]
        # the top level (VQ-VAE-2): from the bottom's z_e down, and back up to its grid
        t = config.top_downsamplings
        self.top_encoder: nn.Sequential | None = None
        self.top_quantizer: VectorQuantizer | None = None
        self.top_decoder: nn.Sequential | None = None
        if t is not None:
            self.top_encoder = nn.Sequential(
                *halving_stack(d, hidden, t, kernel_size=4, activation=nn.ReLU),
                nn.Conv2d(hidden, hidden, 3, padding=1),
                ResidualStack(hidden, *residual),
                nn.Conv2d(hidden, d, 1),
            )
            self.top_quantizer = self._quantizer()
            self.top_decoder = nn.Sequential(
                nn.Conv2d(d, hidden, 3, padding=1),
                ResidualStack(hidden, *residual),
                *doubling_stack(hidden, t, activation=nn.ReLU),
                nn.ReLU(),
                nn.Conv2d(hidden, d, 1),
            )
            self.code_shapes.append(tuple(-(-side // 2**t) for side in self.code_shape))
        self.bound_codes: list[torch.Tensor] | None = None
        self.last_penalty: torch.Tensor | None = None  # (B,) of the last training forward
        self.last_codes: list[torch.Tensor] | None = None

    def _quantizer(self) -> VectorQuantizer:
        c = self.config
        return VectorQuantizer(
            c.num_codes,
            c.code_dim,
            ema=c.codebook_update == "ema",
            decay=c.codebook_decay,
            dead_threshold=c.dead_code_threshold,
        )

    @property
    def quantizers(self) -> list[VectorQuantizer]:
        """One per level, bottom first."""
        return [q for q in (self.quantizer, self.top_quantizer) if q is not None]

    # --- codes -----------------------------------------------------------------------------------
    @torch.no_grad()
    def encode_codes(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The code maps of every image (nearest codes, deterministic), one per level, bottom
        first. Shape: int ``(B, C, H, W)`` → int64 ``(B, h, w)`` each."""
        self.check_images(x)
        return [
            quantizer.nearest(z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])).view(
                z.shape[0], *z.shape[2:]
            )
            for quantizer, z in zip(self.quantizers, self.encode(x), strict=True)
        ]

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``z_e(x)`` per level, bottom first. Shape: int ``(B, C, H, W)`` → ``(B, D, h, w)``
        each."""
        bottom = self.encoder(
            _padded(self.normalize(x), self.code_shape, self.config.downsamplings)
        )
        if self.top_encoder is None:
            return [bottom]
        top_shape = self.code_shapes[1]
        steps = self.config.top_downsamplings or 0
        return [bottom, self.top_encoder(_padded(bottom, top_shape, steps))]

    def decode(self, z_q: list[torch.Tensor]) -> torch.Tensor:
        """``p(x | z_q)``'s parameters from the quantised maps of every level (the top level's
        upsampled map is added to the bottom's). Shape: ``(B, D, h, w)`` each →
        ``(B, P, H, W)``."""
        _, height, width = self.image_shape
        features = z_q[0]
        if self.top_decoder is not None:
            h, w = self.code_shape
            features = features + self.top_decoder(z_q[1])[:, :, :h, :w]
        return self.decoder_net(features)[:, :, :height, :width]

    def decoder_params(self, codes: list[torch.Tensor]) -> torch.Tensor:
        """``p(x | z_q)``'s parameters. Shape: int ``(B, h, w)`` per level → ``(B, P, H, W)``."""
        if len(codes) != len(self.code_shapes):
            raise ValueError(
                f"this VQ-VAE has {len(self.code_shapes)} code levels, got {len(codes)}"
            )
        for level, shape in zip(codes, self.code_shapes, strict=True):
            if tuple(level.shape[1:]) != tuple(shape):
                raise ValueError(
                    f"codes must have shape (B, {shape[0]}, {shape[1]}), got {tuple(level.shape)}"
                )
            if level.numel() and (
                int(level.min()) < 0 or int(level.max()) >= self.config.num_codes
            ):
                raise ValueError(f"codes must lie in [0, {self.config.num_codes})")
        return self.decode(
            [q.lookup(level.long()) for q, level in zip(self.quantizers, codes, strict=True)]
        )

    @contextlib.contextmanager
    def given_codes(self, codes: list[torch.Tensor]) -> Iterator[None]:
        """Within the block :meth:`forward` decodes ``codes`` (one ``(B, h, w)`` map per level,
        bottom first), whatever the image (sampling and completion draw from
        ``p(x | z_q(codes))``)."""
        with self.binding("bound_codes", list(codes)):
            yield

    # --- the network ---------------------------------------------------------------------------
    def network(self, x: torch.Tensor) -> torch.Tensor:
        raise TypeError("a VQ-VAE is called on images (forward), not on a normalised input")

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The decoder's parameters ``(B, P, H, W)``: of the bound codes (:meth:`given_codes`),
        else of the image's own codes (in training with the straight-through gradient, the
        commitment and codebook penalties of every level kept in :attr:`last_penalty`)."""
        if y is not None:
            raise ValueError("a VQ-VAE takes no class labels")
        if self.bound_codes is not None:
            return self.decoder_params(self.bound_codes)
        self.check_images(x)
        quantized = [q(z) for q, z in zip(self.quantizers, self.encode(x), strict=True)]
        self.last_codes = [level.codes for level in quantized]
        if self.training:
            penalty = self.config.commitment_cost * sum(level.commitment for level in quantized)
            if self.config.codebook_update == "loss":
                penalty = penalty + sum(level.codebook for level in quantized)
            self.last_penalty = penalty
        return self.decode([level.z_q for level in quantized])

    # --- likelihood ---------------------------------------------------------------------------
    def likelihood_name(self, importance_samples: int | None = None) -> str:
        return "upper bound on the NLL (reconstruction + uniform prior over the codes)"

    @property
    def uniform_prior_nats(self) -> float:
        """``−log p(z)`` of any code maps under the uniform prior: ``Σ h·w·log K`` over the
        levels."""
        return sum(math.prod(shape) for shape in self.code_shapes) * math.log(self.config.num_codes)

    def log_prob_from_params(
        self, params: torch.Tensor, x: torch.Tensor, reduction: Literal["sum", "none"] = "sum"
    ) -> torch.Tensor:
        """In training: the objective, ``log p(x | z_q)`` minus the penalties; otherwise
        ``log p(x | z_q)`` of the codes the parameters came from."""
        reconstruction = super().log_prob_from_params(params, x, reduction)
        if self.training and self.last_penalty is not None and reduction == "sum":
            return reconstruction - self.last_penalty
        return reconstruction

    def reconstruction_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """``log p(x | z_q(x))`` in nats per image ``(B,)``."""
        return super().log_prob_from_params(self(x), x)

    def bound_log_prob(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """A lower bound on ``log p(x)`` with the uniform prior over codes: ``log p(x | z_q(x))
        − h·w·log K`` nats per image (:meth:`log_prob` returns it outside training)."""
        if y is not None:
            raise ValueError("a VQ-VAE takes no class labels")
        return self.reconstruction_log_prob(x) - self.uniform_prior_nats


def _padded(features: torch.Tensor, grid: tuple[int, ...], steps: int) -> torch.Tensor:
    """Zero-pad ``(B, C, H, W)`` at the bottom and right to ``grid · 2^steps``."""
    scale = 2**steps
    pad = (0, grid[1] * scale - features.shape[-1], 0, grid[0] * scale - features.shape[-2])
    return F.pad(features, pad) if any(pad) else features
