"""The one model contract (conventions §4): networks return distribution parameters.

Every model is an :class:`AutoregressiveModel` built from one frozen, validated config
dataclass. Subclasses implement :meth:`AutoregressiveModel.network` only; likelihoods come from
the output distribution. Models never sample and never save themselves: sampling and completion
live above them in :mod:`pixelrnn.sampling`, saving and loading in
:mod:`pixelrnn.models.persistence`, and bits/dim in :func:`pixelrnn.units.bits_per_dim`.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import nn

from pixelrnn.config_io import DictConfig
from pixelrnn.distributions import DISTRIBUTIONS, OutputDistribution, make_distribution
from pixelrnn.nn.input_encoding import INPUT_ENCODINGS, InputEncoding


@dataclass(frozen=True)
class ModelConfig(DictConfig):
    """Fields every model shares.

    Attributes:
        image_shape: ``(C, H, W)`` of the images the model scores and generates.
        num_levels: number of discrete values per sub-pixel ``K`` (2 for binary, 256 for 8-bit).
        distribution: output distribution name; ``"auto"`` picks Bernoulli for ``K = 2`` and a
            ``K``-way categorical otherwise.
        context_channels: channels of a conditioning map ``(B, c, H, W)`` that every layer reads
            through an unmasked 1×1 convolution (the conditional stage of the Multi-Scale
            PixelRNN, PixelRNN §3.4); None: no conditioning map. Models that take one list it
            in ``supports_context``.
        input_encoding: how the network reads a level: ``"intensity"`` (scaled to
            ``[-1, 1]``, for ordered pixel values) or ``"embedding"`` (a learned vector per
            level, for nominal symbols such as VQ-VAE codes; models that take it list it in
            ``supports_embedding``). See :mod:`pixelrnn.nn.input_encoding`.
        embedding_dim: features per sub-pixel of the ``"embedding"`` encoding.
    """

    image_shape: tuple[int, int, int] = (1, 28, 28)
    num_levels: int = 2
    distribution: str = "auto"
    context_channels: int | None = None
    input_encoding: str = "intensity"
    embedding_dim: int = 16

    def __post_init__(self) -> None:
        shape = tuple(int(s) for s in self.image_shape)
        object.__setattr__(self, "image_shape", shape)
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"image_shape must be (C, H, W) with positive sizes, got {shape}")
        if self.num_levels < 2:
            raise ValueError(f"num_levels must be at least 2, got {self.num_levels}")
        if self.input_encoding not in INPUT_ENCODINGS:
            raise ValueError(
                f"input_encoding must be one of {', '.join(INPUT_ENCODINGS)}, "
                f"got {self.input_encoding!r}"
            )
        if self.context_channels is not None and self.context_channels < 1:
            raise ValueError(f"context_channels must be >= 1 or None, got {self.context_channels}")
        if self.distribution != "auto" and self.distribution.partition(":")[0] not in DISTRIBUTIONS:
            raise ValueError(
                f"unknown distribution {self.distribution!r}; "
                f"choose 'auto' or one of {sorted(DISTRIBUTIONS)}"
            )
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.type in ("int", int) and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{f.name} must be a positive integer, got {value!r}")

    def require_odd(self, *names: str) -> None:
        """Raise unless the named (kernel size) fields are odd."""
        for name in names:
            if getattr(self, name) % 2 == 0:
                raise ValueError(f"{name} must be odd, got {getattr(self, name)}")

    def require_width_per_colour(self) -> None:
        """Raise unless ``hidden_channels`` gives every colour group at least one feature map."""
        width = self.hidden_channels  # type: ignore[attr-defined]  # defined by subclasses
        channels = self.image_shape[0]
        if width < channels:
            raise ValueError(
                f"hidden_channels ({width}) must be at least the number of image channels "
                f"({channels}) so every colour group has feature maps"
            )


class AutoregressiveModel(nn.Module, abc.ABC):
    """Base class of every registered model.

    Subclasses set ``model_name`` and ``config_class`` and implement :meth:`network`.
    """

    model_name: ClassVar[str]
    config_class: ClassVar[type[ModelConfig]]
    supports_context: ClassVar[bool] = False
    # models whose first layer can read learned embeddings of the levels (input_encoding)
    supports_embedding: ClassVar[bool] = False
    # "exact": log_prob is the log-likelihood; "bound": a lower bound on it (latent models)
    likelihood_kind: ClassVar[str] = "exact"
    # False for a model whose outputs are independent given its latents (a VQ-VAE's decoder):
    # the causality tests hold every other model to the generation order
    autoregressive: ClassVar[bool] = True

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__} needs a {self.config_class.__name__}")
        if config.context_channels is not None and not self.supports_context:
            raise ValueError(f"{self.model_name} takes no conditioning map (context_channels)")
        if config.input_encoding != "intensity" and not self.supports_embedding:
            raise ValueError(
                f"{self.model_name} reads levels as intensities only "
                f"(input_encoding={config.input_encoding!r} is not available for it)"
            )
        self.config = config
        # the conditioning map that forward() and the generation loops use (conditioned_on)
        self.bound_context: torch.Tensor | None = None
        self.distribution: OutputDistribution = make_distribution(
            config.distribution, config.num_levels
        )
        self.input_encoding = InputEncoding(
            config.image_shape[0], config.num_levels, config.input_encoding, config.embedding_dim
        )

    # --- properties -----------------------------------------------------------------------
    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.config.image_shape

    @property
    def num_levels(self) -> int:
        return self.config.num_levels

    @property
    def num_dims(self) -> int:
        """``D = C · H · W``, the number of sub-pixels of one image."""
        c, h, w = self.image_shape
        return c * h * w

    @property
    def num_classes(self) -> int | None:
        """Number of class labels a conditional model takes (``y``), None when unconditional."""
        return getattr(self.config, "num_classes", None)

    @property
    def mask_groups(self) -> int:
        """Colour groups of the masks (PixelRNN §3.4): one per channel for sub-pixel
        distributions; one for distributions over whole pixels, whose parameters at a pixel may
        see none of its channels (mask A then hides the whole current pixel, PixelCNN++ §2.2)."""
        return 1 if self.distribution.joint_channels else self.image_shape[0]

    @property
    def input_channels(self) -> int:
        """Channels of the first layer's input: ``C``, or ``C · E`` with an embedding."""
        return self.input_encoding.out_channels

    @property
    def num_params_out(self) -> int:
        """Number of distribution-parameter maps the network emits."""
        return self.distribution.num_params(self.image_shape[0])

    # --- the network ------------------------------------------------------------------------
    @abc.abstractmethod
    def network(self, x: torch.Tensor) -> torch.Tensor:
        """Map a normalised image to distribution parameters.

        Conditional models take a second argument, the labels ``y`` (int64 ``(B,)``), checked
        by :meth:`forward`; unconditional models are only ever called with ``x``.

        Shape:
            x ``(B, input_channels, H, W)`` float (:meth:`normalize`: in ``[-1, 1]``, or
            embeddings) → ``(B, P, H, W)``.
        """

    def check_images(self, x: torch.Tensor, name: str = "x") -> None:
        """Raise a clear error unless ``x`` is an integer batch of this model's images."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.dtype.is_floating_point or x.dtype == torch.bool or x.is_complex():
            raise TypeError(
                f"{name} must hold integer pixel values in [0, {self.num_levels}), "
                f"got dtype {x.dtype}"
            )
        if x.dim() != 4 or tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(
                f"{name} must have shape (B, {', '.join(map(str, self.image_shape))}), "
                f"got {tuple(x.shape)}"
            )
        if _reads_values(x) and (int(x.min()) < 0 or int(x.max()) >= self.num_levels):
            raise ValueError(
                f"{name} values must lie in [0, {self.num_levels}), "
                f"got min {int(x.min())}, max {int(x.max())}"
            )

    def check_labels(self, y: torch.Tensor | None, batch_size: int) -> None:
        """Raise a clear error unless ``y`` suits this model: labels ``(B,)`` in
        ``[0, num_classes)`` for a conditional model, None for an unconditional one."""
        if self.num_classes is None:
            if y is not None:
                raise ValueError(
                    f"{self.model_name} was built without conditioning (num_classes=None); "
                    "drop y, or build it with num_classes=N"
                )
            return
        if y is None:
            raise ValueError(
                f"this {self.model_name} is class-conditional ({self.num_classes} classes): "
                "pass labels y"
            )
        if not isinstance(y, torch.Tensor) or y.dtype.is_floating_point or y.dtype == torch.bool:
            raise TypeError(f"y must be an integer tensor of class labels, got {y!r:.60}")
        if y.shape != (batch_size,):
            raise ValueError(
                f"y must have shape ({batch_size},), one label per image, got {tuple(y.shape)}"
            )
        if _reads_values(y) and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
            raise ValueError(
                f"labels must lie in [0, {self.num_classes}), "
                f"got min {int(y.min())}, max {int(y.max())}"
            )

    @contextlib.contextmanager
    def conditioned_on(self, context: torch.Tensor | None) -> Iterator[None]:
        """Within the block, :meth:`forward`, sampling and completion condition on the map
        ``context`` ``(B, context_channels, H, W)`` (one per image of the batch).

        A model with ``context_channels`` needs one; its :meth:`network` also takes it
        directly (``context=``).
        """
        if context is not None and self.config.context_channels is None:
            raise ValueError(f"this {self.model_name} was built without context_channels")
        with self.binding("bound_context", context):
            yield

    @contextlib.contextmanager
    def binding(self, name: str, value: object) -> Iterator[None]:
        """Within the block the attribute ``name`` is ``value``; restored afterwards."""
        before = getattr(self, name)
        setattr(self, name, value)
        try:
            yield
        finally:
            setattr(self, name, before)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """The network's input features of integer levels ``[0, K)``: floats in ``[-1, 1]``
        (PixelRNN §5.2: centring), or learned embeddings (``input_encoding``).

        Shape:
            ``(B, C, H, W)`` → ``(B, input_channels, H, W)``.
        """
        return self.input_encoding(x, next(self.parameters()).dtype)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Distribution parameters for every position.

        Args:
            x: integer images ``(B, C, H, W)`` in ``[0, K)``.
            y: class labels ``(B,)``, required by conditional models, refused by the others.

        Shape:
            x integer ``(B, C, H, W)`` → ``(B, P, H, W)``.
        """
        self.check_images(x)
        self.check_labels(y, x.shape[0])
        extra = {}
        if self.config.context_channels is not None:
            if self.bound_context is None:
                raise ValueError(
                    f"this {self.model_name} reads a conditioning map: call it inside "
                    "model.conditioned_on(context)"
                )
            extra["context"] = self.bound_context
        if y is None:
            return self.network(self.normalize(x), **extra)
        return self.network(self.normalize(x), y.to(x.device).long(), **extra)

    def likelihood_name(self, importance_samples: int | None = None) -> str:
        """What :meth:`log_prob` gives: ``"exact"``, or which bound a latent model reports
        (``importance_samples``: ``K`` of an importance-weighted one)."""
        return "exact"

    def set_training_step(self, step: int) -> None:
        """Told the number of the training step about to run (the trainer calls it before
        each step); a model whose objective changes during training (a KL warm-up) uses it."""

    # --- likelihood ---------------------------------------------------------------------------
    def log_prob(
        self,
        x: torch.Tensor,
        reduction: Literal["sum", "none"] = "sum",
        y: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Exact log-likelihood in nats (conditional on ``y`` for conditional models); a latent
        model's lower bound on it (:meth:`bound_log_prob`; in training mode, its training
        objective), per image only.

        Args:
            x: integer images ``(B, C, H, W)`` in ``[0, K)``.
            reduction: ``"sum"`` for nats per image, ``"none"`` for nats per sub-pixel.
            y: class labels ``(B,)`` for a conditional model.

        Returns:
            ``(B,)`` with ``"sum"``; ``(B, C, H, W)`` with ``"none"`` (``(B, 1, H, W)`` for
            distributions that score a whole pixel jointly).
        """
        if self.likelihood_kind == "exact" or self.training:
            if self.likelihood_kind != "exact" and reduction != "sum":
                raise ValueError(f"a {self.model_name}'s objective is per image: use 'sum'")
            return self.log_prob_from_params(self(x, y), x, reduction)
        if reduction != "sum":
            raise ValueError(
                f"a {self.model_name}'s likelihood is a bound per image: use reduction='sum'"
            )
        return self.bound_log_prob(x, y)

    def bound_log_prob(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """A latent model's lower bound on ``log p(x)``, nats per image ``(B,)`` (models with
        ``likelihood_kind == "bound"`` implement it)."""
        raise TypeError(f"{self.model_name} computes its likelihood exactly: call log_prob")

    def log_prob_from_params(
        self, params: torch.Tensor, x: torch.Tensor, reduction: Literal["sum", "none"] = "sum"
    ) -> torch.Tensor:
        """:meth:`log_prob` from parameters already computed by :meth:`forward` (or by a
        wrapper of it, such as DistributedDataParallel)."""
        if reduction not in ("sum", "none"):
            raise ValueError(f"reduction must be 'sum' or 'none', got {reduction!r}")
        per_dim = self.distribution.log_prob(params, x)
        if reduction == "none":
            return per_dim
        return per_dim.flatten(1).sum(1)

    def extra_repr(self) -> str:
        n = sum(p.numel() for p in self.parameters())
        return f"config={self.config}, num_parameters={n}"


def _reads_values(t: torch.Tensor) -> bool:
    """Whether a range check may read ``t``'s values: not when empty, nor while a CUDA graph
    records (reading would wait for the GPU), nor while ``torch.compile`` traces (reading a
    value breaks the graph in two). The trainer checks every batch itself before a recorded or
    compiled step; whoever compiles a model by hand checks its input the same way."""
    if not t.numel() or torch.compiler.is_compiling():
        return False
    return not (t.is_cuda and torch.cuda.is_current_stream_capturing())
