"""PixelVAE (Gulrajani et al., ICLR 2017): a VAE whose decoder is a PixelCNN, and with
``deterministic`` the Gated PixelCNN paper's PixelCNN auto-encoder (van den Oord et al. 2016,
§2.4: an encoder maps ``x`` to ``h``, a conditional PixelCNN models ``p(x | h)``).

* encoder ``q(z | x)``: :class:`~pixelrnn.nn.LatentEncoder`, a diagonal Gaussian over a vector
  (global) or a map (spatial) latent; prior ``p(z) = N(0, I)``;
* two-level hierarchy (``top_latent_dim``; §3.2): a global top latent ``z_top ~ N(0, I)`` above
  the spatial one, ``p(z_bottom | z_top)`` a diagonal Gaussian whose parameters a
  :class:`~pixelrnn.nn.LatentUpsampler` computes from ``z_top``, and a posterior
  ``q(z_bottom | x) q(z_top | x)`` factorised over the levels. (The paper's conditional prior
  is itself a PixelCNN over ``z_bottom``; here it is factorised given ``z_top``.) The decoder
  reads ``z_bottom``;
* decoder: :class:`~pixelrnn.nn.LatentUpsampler` maps ``z`` to a conditioning map ``s`` with the
  image's height and width, which a PixelCNN or Gated PixelCNN of ``num_layers`` layers reads
  through its spatial conditioning (an unmasked 1×1 convolution of ``s`` in every layer).

Latents are lists with one tensor per level, bottom first: ``[z]`` or ``[z_bottom, z_top]``.

The likelihood is a bound, never exact (:mod:`pixelrnn.distributions.gaussian`): training
maximises the ELBO (reparameterised; KL weight warmed up over ``kl_warmup_steps``, optional
free bits per latent dimension); :meth:`PixelVAE.log_prob` returns the importance-weighted
lower bound on ``log p(x)`` with ``eval_samples`` samples (``likelihood_kind`` says so).

As an autoregressive model, :meth:`forward` gives the decoder's parameters given the latent
bound with :meth:`PixelVAE.given_latent` (the prior mean when none is): a causal function of
the image for a fixed ``z``, which the causality tests and the generation loops use.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch

from pixelrnn.distributions.gaussian import (
    gaussian_log_density,
    importance_weighted_log_likelihood,
    kl_per_entry,
    reparameterised_sample,
    standard_normal_log_density,
)
from pixelrnn.models.base import AutoregressiveModel, ModelConfig
from pixelrnn.models.gated_pixelcnn import GatedPixelCNN, GatedPixelCNNConfig
from pixelrnn.models.pixelcnn import PixelCNN, PixelCNNConfig
from pixelrnn.nn import LatentEncoder, LatentUpsampler

DECODERS: dict[str, tuple[type[AutoregressiveModel], type[ModelConfig]]] = {
    "pixelcnn": (PixelCNN, PixelCNNConfig),
    "gated_pixelcnn": (GatedPixelCNN, GatedPixelCNNConfig),
}


@dataclass(frozen=True)
class PixelVAEConfig(ModelConfig):
    """PixelVAE settings (the decoder's knobs carry the PixelCNNs' names).

    Attributes:
        latent_dim: ``D``, dimensions of ``z`` (per position for a spatial latent; 16 in the
            released MNIST recipe).
        spatial_latent: a latent map ``(D, ⌈H/2^n⌉, ⌈W/2^n⌉)`` instead of a vector.
        latent_downsamplings: ``n`` ≥ 1, stride-2 convolutions of the encoder.
        top_latent_dim: ``D_top`` of a global latent level above a spatial one (the two-level
            hierarchy; needs ``spatial_latent``); None: one level.
        latent_channels: width of the encoder and the upsampler.
        conditioning_channels: channels of the conditioning map ``s``.
        decoder: ``"pixelcnn"`` or ``"gated_pixelcnn"``.
        hidden_channels, num_layers, kernel_size, input_kernel_size, output_channels: the
            decoder's (its number of autoregressive layers is ``num_layers``).
        deterministic: the PixelCNN auto-encoder: ``z`` is the encoder's mean, no KL, and the
            likelihood is the reconstruction ``log p(x | h)``.
        kl_warmup_steps: steps over which the KL weight rises linearly from 0 to 1 (None: 1
            from the start).
        free_bits: nats per latent dimension below which the KL is not penalised (0: off).
        eval_samples: ``K`` of the importance-weighted bound that :meth:`PixelVAE.log_prob`
            returns.
    """

    latent_dim: int = 16
    spatial_latent: bool = False
    latent_downsamplings: int = 2
    top_latent_dim: int | None = None
    latent_channels: int = 32
    conditioning_channels: int = 16
    decoder: str = "pixelcnn"
    hidden_channels: int = 16
    num_layers: int = 12
    kernel_size: int = 5
    input_kernel_size: int = 5
    output_channels: int = 32
    deterministic: bool = False
    kl_warmup_steps: int | None = None
    free_bits: float = 0.0
    eval_samples: int = 100

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.context_channels is not None:
            raise ValueError("a PixelVAE makes its own conditioning map; leave context_channels")
        if self.decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {sorted(DECODERS)}, got {self.decoder!r}")
        for name in ("latent_dim", "latent_channels", "conditioning_channels", "eval_samples"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.top_latent_dim is not None:
            if self.top_latent_dim < 1:
                raise ValueError(f"top_latent_dim must be >= 1, got {self.top_latent_dim}")
            if not self.spatial_latent:
                raise ValueError(
                    "a two-level hierarchy (top_latent_dim) puts a global latent above a "
                    "spatial one: set spatial_latent"
                )
        if self.free_bits < 0:
            raise ValueError(f"free_bits must be >= 0, got {self.free_bits}")


class PixelVAE(AutoregressiveModel):
    """A VAE with an autoregressive decoder (see the module docstring).

    Shapes: images ``(B, C, H, W)``; latents ``(B, D)`` or ``(B, D, h, w)``.
    """

    model_name: ClassVar[str] = "pixelvae"
    config_class: ClassVar[type[ModelConfig]] = PixelVAEConfig
    likelihood_kind: ClassVar[str] = "bound"

    def __init__(self, config: PixelVAEConfig) -> None:
        super().__init__(config)
        _, h, w = config.image_shape
        self.encoder = LatentEncoder(
            config.image_shape,
            config.latent_dim,
            config.spatial_latent,
            config.latent_channels,
            config.latent_downsamplings,
            config.top_latent_dim,
        )
        # p(z_bottom | z_top): mean and log-variance maps (2D, h, w) from the top latent
        self.bottom_prior = (
            None
            if config.top_latent_dim is None
            else LatentUpsampler(
                config.top_latent_dim,
                self.encoder.map_shape,
                self.encoder.map_shape,
                2 * config.latent_dim,
                spatial=False,
                hidden_channels=config.latent_channels,
            )
        )
        self.upsampler = LatentUpsampler(
            config.latent_dim,
            self.encoder.map_shape,
            (h, w),
            config.conditioning_channels,
            config.spatial_latent,
            config.latent_channels,
        )
        decoder_class, decoder_config = DECODERS[config.decoder]
        self.decoder = decoder_class(
            decoder_config(
                image_shape=config.image_shape,
                num_levels=config.num_levels,
                distribution=config.distribution,
                context_channels=config.conditioning_channels,
                hidden_channels=config.hidden_channels,
                num_layers=config.num_layers,
                kernel_size=config.kernel_size,
                input_kernel_size=config.input_kernel_size,
                output_channels=config.output_channels,
            )
        )
        self.distribution = self.decoder.distribution  # one object: the decoder's
        self.kl_weight = 1.0  # below 1 during the KL warm-up (set_training_step)
        self.last_kl: torch.Tensor | None = None  # (B,) of the last training forward

    def likelihood_name(self, importance_samples: int | None = None) -> str:
        k = importance_samples or self.config.eval_samples
        return f"upper bound on the NLL (importance-weighted, K={k})"

    def set_training_step(self, step: int) -> None:
        """The KL weight of step ``step``: rising linearly to 1 over ``kl_warmup_steps``."""
        warmup = self.config.kl_warmup_steps
        self.kl_weight = 1.0 if warmup is None else min(1.0, step / warmup)

    # --- latents ---------------------------------------------------------------------------------
    @property
    def latent_shapes(self) -> list[tuple[int, ...]]:
        """One shape per level, bottom first: ``(D,)`` or ``(D, h, w)``, then ``(D_top,)``."""
        bottom = (self.config.latent_dim,)
        if self.config.spatial_latent:
            bottom = (self.config.latent_dim, *self.encoder.map_shape)
        top = [] if self.config.top_latent_dim is None else [(self.config.top_latent_dim,)]
        return [bottom, *top]

    def encode(self, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``q(z | x)``: mean and log-variance per level, each ``(B, *latent_shapes[i])``."""
        return self.encoder(self.normalize(x))

    def prior_noise(self, n: int, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """Standard normal noise ``ε`` per level, ``(n, *shape)`` each, in the model's dtype
        (:meth:`latents_from_noise` turns it into prior samples)."""
        weight = self.upsampler.out.weight
        return [
            torch.randn((n, *shape), generator=generator, device=weight.device, dtype=weight.dtype)
            for shape in self.latent_shapes
        ]

    def latents_from_noise(self, noise: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Prior samples from their noise: ``z_top = ε_top`` and ``z_bottom = μ(z_top) +
        σ(z_top) · ε_bottom`` in a hierarchy; ``z = ε`` with one level."""
        if self.bottom_prior is None:
            return list(noise)
        mean, log_var = self.bottom_prior_parameters(noise[1])
        return [mean + (0.5 * log_var).exp() * noise[0], noise[1]]

    def prior_sample(self, n: int, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """``z ~ p(z)``: one tensor per level, ``(n, *latent_shapes[i])``."""
        return self.latents_from_noise(self.prior_noise(n, generator))

    def bottom_prior_parameters(self, z_top: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of ``p(z_bottom | z_top)``. Shape: ``(B, D_top)`` → two
        ``(B, D, h, w)``."""
        if self.bottom_prior is None:
            raise ValueError("this PixelVAE has one latent level")
        mean, log_var = self.bottom_prior(z_top).chunk(2, dim=1)
        return mean, log_var

    def prior_log_density(self, z: Sequence[torch.Tensor]) -> torch.Tensor:
        """``log p(z)`` in nats per image (``p(z_top) p(z_bottom | z_top)`` in a hierarchy).
        Shape: latents per level → ``(B,)``."""
        if self.bottom_prior is None:
            return standard_normal_log_density(z[0].flatten(1))
        mean, log_var = self.bottom_prior_parameters(z[1])
        bottom = gaussian_log_density(z[0].flatten(1), mean.flatten(1), log_var.flatten(1))
        return bottom + standard_normal_log_density(z[1])

    def kl_entries(
        self, levels: Sequence[tuple[torch.Tensor, torch.Tensor]], z: Sequence[torch.Tensor]
    ) -> torch.Tensor:
        """The closed-form KL of every latent entry, all levels side by side: ``KL(q ‖ N(0, I))``
        for the top level, and in a hierarchy ``KL(q(z_bottom | x) ‖ p(z_bottom | z_top))`` at
        the sampled ``z_top``. Shape: ``(B, D')``, ``D'`` the latent entries of all levels."""
        if self.bottom_prior is None:
            mean, log_var = levels[0]
            return kl_per_entry(mean, log_var).flatten(1)
        prior_mean, prior_log_var = self.bottom_prior_parameters(z[1])
        bottom = kl_per_entry(*levels[0], prior_mean, prior_log_var).flatten(1)
        return torch.cat([bottom, kl_per_entry(*levels[1])], dim=1)

    def posterior_sample(
        self,
        levels: Sequence[tuple[torch.Tensor, torch.Tensor]],
        generator: torch.Generator | None = None,
    ) -> list[torch.Tensor]:
        """``z ~ q(z | x)`` per level, reparameterised (the means when deterministic)."""
        if self.config.deterministic:
            return [mean for mean, _ in levels]
        return [reparameterised_sample(m, v, generator=generator) for m, v in levels]

    def given_latent(self, z: Sequence[torch.Tensor]) -> contextlib.AbstractContextManager[None]:
        """Run :meth:`forward` with the latents ``z`` (one tensor per level): the bottom level's
        conditioning map, computed once, bound to the decoder."""
        return self.decoder.conditioned_on(self.conditioning_map(z[0]))

    def conditioning_map(self, z_bottom: torch.Tensor) -> torch.Tensor:
        """``s = m(z_bottom)``. Shape: ``(B, *latent_shapes[0])`` → ``(B, S, H, W)``."""
        return self.upsampler(z_bottom)

    # --- the network ---------------------------------------------------------------------------
    def network(self, x: torch.Tensor) -> torch.Tensor:
        raise TypeError(
            "a PixelVAE is called on images (forward), not on a normalised network input"
        )

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The decoder's parameters ``(B, P, H, W)``. Training: ``z`` sampled from ``q(z | x)``
        (its mean when deterministic), the KL kept in :attr:`last_kl`. Otherwise: the bound
        latent, or the prior's mode-like point ``z`` of zero noise."""
        if y is not None:
            raise ValueError("a PixelVAE takes no class labels")
        if self.training:
            levels = self.encode(x)
            z = self.posterior_sample(levels)
            self.last_kl = (
                None
                if self.config.deterministic
                else self._penalised_kl(self.kl_entries(levels, z))
            )
        elif self.decoder.bound_context is not None:  # inside given_latent
            return self.decoder(x)
        else:
            weight = self.upsampler.out.weight
            zero = [
                x.new_zeros((len(x), *shape), dtype=weight.dtype) for shape in self.latent_shapes
            ]
            z = self.latents_from_noise(zero)
        with self.given_latent(z):
            return self.decoder(x)

    def _penalised_kl(self, entries: torch.Tensor) -> torch.Tensor:
        """The KL per image from the KL of every latent entry ``(B, D')``; with free bits
        (Kingma et al. 2016), an entry whose KL averaged over the batch is below ``free_bits``
        nats costs that floor instead, without gradient. Shape: → ``(B,)``."""
        if self.config.free_bits <= 0:
            return entries.sum(1)
        active = entries.mean(0) >= self.config.free_bits  # (D',)
        floor = self.config.free_bits * float((~active).sum())
        return (entries * active).sum(1) + floor

    def log_prob_from_params(
        self, params: torch.Tensor, x: torch.Tensor, reduction: Literal["sum", "none"] = "sum"
    ) -> torch.Tensor:
        """In training: the ELBO of the last :meth:`forward` (reconstruction minus the weighted
        KL), per image; otherwise the decoder's log-likelihood given the bound latent."""
        reconstruction = super().log_prob_from_params(params, x, reduction)
        if self.training and self.last_kl is not None and reduction == "sum":
            return reconstruction - self.kl_weight * self.last_kl
        return reconstruction

    # --- bounds ---------------------------------------------------------------------------------
    @torch.no_grad()
    def bounds(
        self,
        x: torch.Tensor,
        num_samples: int | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """Lower bounds on ``log p(x)`` in nats per image: ``elbo`` (one-sample reconstruction,
        closed-form KL; in a hierarchy the bottom level's KL at the first sample's ``z_top``),
        ``iw`` (importance-weighted, ``K = num_samples`` or ``eval_samples``), and ``kl``. A
        deterministic model gives its reconstruction ``log p(x | h)`` as all three (and a KL
        of 0)."""
        k = num_samples or self.config.eval_samples
        levels = self.encode(x)
        if self.config.deterministic:
            with self.given_latent(self.posterior_sample(levels)):
                reconstruction = super().log_prob_from_params(self(x), x)
            return {
                "elbo": reconstruction,
                "iw": reconstruction,
                "kl": torch.zeros_like(reconstruction),
            }
        terms, kl = [], None
        for _ in range(k):
            z = self.posterior_sample(levels, generator)
            if kl is None:  # at the first sample's z_top (exact with one level)
                kl = self.kl_entries(levels, z).sum(1)
            with self.given_latent(z):
                log_likelihood = super().log_prob_from_params(self(x), x)
            log_posterior = sum(
                gaussian_log_density(zi.flatten(1), m.flatten(1), v.flatten(1))
                for zi, (m, v) in zip(z, levels, strict=True)
            )
            terms.append((log_likelihood, self.prior_log_density(z), log_posterior))
        stacked = [torch.stack(t) for t in zip(*terms, strict=True)]  # each (K, B)
        assert kl is not None
        return {
            "elbo": stacked[0][0] - kl,  # the first sample's reconstruction
            "iw": importance_weighted_log_likelihood(*stacked),
            "kl": kl,
        }

    def bound_log_prob(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The importance-weighted lower bound on ``log p(x)`` with ``eval_samples`` samples,
        nats per image (:meth:`log_prob` returns it outside training, the ELBO in training)."""
        if y is not None:
            raise ValueError("a PixelVAE takes no class labels")
        return self.bounds(x)["iw"]
