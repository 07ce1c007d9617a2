"""Discretized logistic mixture over a whole pixel (PixelCNN++ §2.1–2.2 and the
official openai/pixel-cnn code).

Values ``k ∈ [0, K)`` are scaled to ``x = 2k/(K−1) − 1 ∈ [−1, 1]``; bins are ``2/(K−1)`` wide.
A pixel's channels share one mixture indicator; the means of G and B depend linearly on the
pixel's R (and G) values through ``tanh`` coefficients::

    log p(pixel) = logsumexp_i [log π_i + log P_i(R) + log P_i(G | R) + log P_i(B | R, G)]
    μ̃_G = μ_G + α x_R,   μ̃_B = μ_B + β x_R + γ x_G

``P_i(x)`` is the logistic mass of ``x``'s bin, with the first bin extended to −∞ and the last
to +∞, computed with the official code's numerics (log-scale clamp at −7, a mid-bin density
fallback where the bin mass underflows below 1e-5).

Parameter layout, ``(B, P, H, W)`` with ``M`` components: RGB, ``P = 10M``: ``[0:M]`` mixture
logits, then for each channel ``c`` a block of ``3M``: means, log-scales, raw coefficients (slot 0
α: G←R, slot 1 β: B←R, slot 2 γ: B←G) — the official layout. Grey, ``P = 3M``: logits, means,
log-scales.

NOTE: sampling couples G and B to the *rounded* R and G that are stored, so samples follow the
discrete model exactly (the official code couples to the continuous draws).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from pixelrnn.distributions.base import OutputDistribution, check_temperature
from pixelrnn.native import native_available

LOG_SCALE_MIN = -7.0
MIN_BIN_MASS = 1e-5
# Draws over at most this many pixels use the compiled kernel (csrc/logistic_mixture_sample.cpp):
# a generation step's one pixel per image, where PyTorch's per-operation overhead is the whole
# cost. Larger maps run the (vectorised) PyTorch operations.
COMPILED_SAMPLE_MAX_PIXELS = 1024


class DiscretizedLogisticMixture(OutputDistribution):
    """Mixture of ``num_components`` discretized logistics, joint over a pixel's channels.

    Shape:
        params ``(B, P, H, W)`` (see the module docstring); ``log_prob`` → ``(B, 1, H, W)``.
    """

    name = "logistic_mixture"
    joint_channels = True

    def __init__(self, num_levels: int, num_components: int = 10) -> None:
        super().__init__(num_levels)
        if num_components < 1:
            raise ValueError(f"num_components must be >= 1, got {num_components}")
        self.num_components = num_components

    def num_params(self, num_channels: int) -> int:
        if num_channels not in (1, 3):
            raise ValueError(f"the logistic mixture models 1 or 3 channels, got {num_channels}")
        return (10 if num_channels == 3 else 3) * self.num_components

    def _split(
        self, params: torch.Tensor, channels: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Logits ``(B, M, H, W)``, means and log-scales ``(B, C, M, H, W)``, coefficients
        ``(B, 3, M, H, W)`` (tanh applied; None for grey)."""
        m = self.num_components
        b, _, h, w = params.shape
        self._check_params(params, channels)
        params = params.float()
        logits = params[:, :m]
        rest = params[:, m:].reshape(b, channels, -1, h, w)
        means, log_scales = rest[:, :, :m], rest[:, :, m : 2 * m].clamp(min=LOG_SCALE_MIN)
        coeffs = torch.tanh(rest[:, :, 2 * m :]) if channels == 3 else None
        return logits, means, log_scales, coeffs

    def _check_params(self, params: torch.Tensor, channels: int) -> None:
        p = params.shape[1]
        if p != self.num_params(channels):
            raise ValueError(
                f"{p} parameter maps, expected {self.num_params(channels)} for {channels} "
                f"channel(s) and {self.num_components} components"
            )

    def scale(self, x: torch.Tensor) -> torch.Tensor:
        """Integer levels → ``[−1, 1]``."""
        return x.float() * (2.0 / (self.num_levels - 1)) - 1.0

    def _coupled_means(
        self, means: torch.Tensor, coeffs: torch.Tensor | None, values: torch.Tensor
    ) -> torch.Tensor:
        """Means with G shifted by α·R and B by β·R + γ·G. ``values``: scaled ``(B, C, H, W)``."""
        if coeffs is None:
            return means
        r, g = values[:, 0:1], values[:, 1:2]  # (B, 1, H, W), broadcast over components
        mean_g = means[:, 1] + coeffs[:, 0] * r
        mean_b = means[:, 2] + coeffs[:, 1] * r + coeffs[:, 2] * g
        return torch.stack([means[:, 0], mean_g, mean_b], dim=1)

    def log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        self._check_x(x)
        channels = x.shape[1]
        logits, means, log_scales, coeffs = self._split(params, channels)
        values = self.scale(x)  # (B, C, H, W)
        centred = values[:, :, None] - self._coupled_means(means, coeffs, values)  # (B,C,M,H,W)
        inv_s = torch.exp(-log_scales)
        half_bin = 1.0 / (self.num_levels - 1)
        plus, minus = inv_s * (centred + half_bin), inv_s * (centred - half_bin)
        log_cdf_plus = plus - F.softplus(plus)  # log σ(plus): the first bin, down to −∞
        log_one_minus_cdf_minus = -F.softplus(minus)  # log(1 − σ(minus)): the last bin
        cdf_delta = torch.sigmoid(plus) - torch.sigmoid(minus)
        mid = inv_s * centred
        # log density at the bin centre times the bin width (official numerics)
        log_pdf_mid = mid - log_scales - 2.0 * F.softplus(mid) + math.log(2 * half_bin)
        inner = torch.where(
            cdf_delta > MIN_BIN_MASS, torch.log(cdf_delta.clamp(min=1e-12)), log_pdf_mid
        )
        level = x[:, :, None]
        log_bin = torch.where(
            level == 0,
            log_cdf_plus,
            torch.where(level == self.num_levels - 1, log_one_minus_cdf_minus, inner),
        )
        joint = log_bin.sum(dim=1) + F.log_softmax(logits, dim=1)  # (B, M, H, W)
        return torch.logsumexp(joint, dim=1, keepdim=True)

    def sample(
        self,
        params: torch.Tensor,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
    ) -> torch.Tensor:
        """One component per pixel by Gumbel-max, then each channel by the logistic's inverse
        CDF, G and B coupled to the rounded R and G. ``temperature`` divides the mixture logits
        and multiplies the logistic scales.

        On the CPU, a few pixels at a time (a generation step) are drawn by one compiled call
        with the same uniforms and arithmetic as :meth:`_sample_reference`; its log/exp/tanh
        may differ from PyTorch's in the last bit, so a level can differ by one where a draw
        falls on a bin edge (tested: at most one level, in at most 0.1 % of draws)."""
        check_temperature(temperature)
        channels = 3 if params.shape[1] == self.num_params(3) else 1
        b, _, h, w = params.shape
        if params.is_cpu and b * h * w <= COMPILED_SAMPLE_MAX_PIXELS and native_available():
            self._check_params(params, channels)
            m = self.num_components
            gumbel_u = torch.rand((b, m, h, w), generator=generator)
            channel_u = [torch.rand((b, h, w), generator=generator) for _ in range(channels)]
            return torch.ops.pixelrnn.logistic_mixture_sample(
                params, gumbel_u, channel_u, float(temperature), self.num_levels
            )
        return self._sample_reference(params, generator, temperature, channels)

    def _sample_reference(
        self,
        params: torch.Tensor,
        generator: torch.Generator | None,
        temperature: float,
        channels: int,
    ) -> torch.Tensor:
        """:meth:`sample` in PyTorch operations (the reference of the compiled draw)."""
        logits, means, log_scales, coeffs = self._split(params, channels)
        b, m, h, w = logits.shape

        def uniform(*shape: int) -> torch.Tensor:
            u = torch.rand(shape, generator=generator, device=params.device)
            return u * (1 - 2e-5) + 1e-5  # U(1e-5, 1 − 1e-5), as the official code

        gumbel = -torch.log(-torch.log(uniform(b, m, h, w)))
        component = (logits / temperature + gumbel).argmax(dim=1, keepdim=True)  # (B,1,H,W)

        def pick(t: torch.Tensor) -> torch.Tensor:  # (B, M, H, W) → (B, H, W)
            return t.gather(1, component).squeeze(1)

        out = torch.empty(b, channels, h, w, dtype=torch.long, device=params.device)
        scaled = torch.zeros(b, channels, h, w, device=params.device)
        for c in range(channels):
            mean = pick(means[:, c])
            if coeffs is not None and c == 1:
                mean = mean + pick(coeffs[:, 0]) * scaled[:, 0]
            if coeffs is not None and c == 2:
                mean = mean + pick(coeffs[:, 1]) * scaled[:, 0] + pick(coeffs[:, 2]) * scaled[:, 1]
            u = uniform(b, h, w)
            latent = mean + torch.exp(pick(log_scales[:, c])) * temperature * (
                torch.log(u) - torch.log1p(-u)
            )
            level = torch.round((latent.clamp(-1.0, 1.0) + 1.0) * (self.num_levels - 1) / 2.0)
            out[:, c] = level.long()
            scaled[:, c] = self.scale(out[:, c])
        return out

    def level_probabilities(
        self, params: torch.Tensor, channel: int, earlier: torch.Tensor
    ) -> torch.Tensor:
        """The bin masses of sub-pixel ``channel`` given the pixel's earlier channels: each
        component's exact logistic bin masses (differences of the CDF, the outer bins to ±∞),
        mixed with the components' posterior weights given the earlier channels,
        ``w_i ∝ π_i · Π_{c' < channel} P_i(x_c')``, so that the product over R, G, B is the
        joint of the module docstring. (The mid-bin fallback of :meth:`log_prob` is not used:
        these masses sum to one exactly, as a coder needs.)"""
        m, k = self.num_components, self.num_levels
        channels = 3 if params.shape[1] == self.num_params(3) else 1
        self._check_params(params[:, :, None, None], channels)
        p = params.double()
        rest = p[:, m:].reshape(len(p), channels, -1)  # (B, C, 3M) or (B, 1, 2M)
        means, log_scales = rest[:, :, :m], rest[:, :, m : 2 * m].clamp(min=LOG_SCALE_MIN)
        values = earlier.double() * (2.0 / (k - 1)) - 1.0  # (B, channel)
        if channels == 3:  # the coupled means (the module docstring), as (B, 3, M)
            coeffs = torch.tanh(rest[:, :, 2 * m :])
            filled = F.pad(values, (0, 3 - values.shape[1]))
            r, g = filled[:, 0:1], filled[:, 1:2]
            means = torch.stack(
                [
                    means[:, 0],
                    means[:, 1] + coeffs[:, 0] * r,
                    means[:, 2] + coeffs[:, 1] * r + coeffs[:, 2] * g,
                ],
                dim=1,
            )
        # the bins' edges, the outer ones at ±∞: level v's mass is cdf(edge v+1) − cdf(edge v)
        inner = torch.linspace(-1.0, 1.0, k, dtype=torch.float64, device=p.device)[:-1]
        inf = torch.tensor([math.inf], dtype=torch.float64, device=p.device)
        edges = torch.cat([-inf, inner + 1.0 / (k - 1), inf])  # (K + 1,)
        inv_scales = torch.exp(-log_scales)  # (B, C, M)

        def cdf(c: int, at: torch.Tensor) -> torch.Tensor:  # at (B or 1, 1 or M, N)
            # σ((at − μ) / s) as one fused multiply-add over the (B, M, N) block
            shift = -means[:, c, :, None] * inv_scales[:, c, :, None]
            return torch.sigmoid(torch.addcmul(shift, at, inv_scales[:, c, :, None]))

        log_weights = F.log_softmax(p[:, :m], dim=1)  # (B, M)
        for c in range(channel):
            level = earlier[:, c, None, None]  # (B, 1, 1)
            mass = cdf(c, edges[level + 1]) - cdf(c, edges[level])  # (B, M, 1)
            # a mass below double precision still counts (the coder gives every level a
            # non-zero frequency): floor it instead of taking log(0)
            log_weights = log_weights + torch.log(mass[:, :, 0].clamp(min=1e-300))
        weights = F.softmax(log_weights, dim=1)  # (B, M)
        # the mixture's CDF at every edge (one batched product over the components), then
        # each level's mass as the difference of its two edges
        mixed = torch.bmm(weights[:, None], cdf(channel, edges))[:, 0]  # (B, K + 1)
        return mixed[:, 1:] - mixed[:, :-1]
