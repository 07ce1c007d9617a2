"""Test-set likelihood (conventions §7): NLL summed in float64 over the split, divided once.

A latent model (PixelVAE) reports bounds, never an exact NLL: the importance-weighted bound with
``K`` samples as the headline, beside the ELBO, the KL in nats and the number of active latent
units (posterior collapse shows as few active units and a KL near 0)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import torch
from tqdm.auto import tqdm

from pixelrnn.data import ImageDataset
from pixelrnn.distributions.gaussian import active_units
from pixelrnn.models.base import AutoregressiveModel
from pixelrnn.models.pixelvae import PixelVAE
from pixelrnn.models.vqvae import VQVAE
from pixelrnn.nn import code_map, codebook_usage
from pixelrnn.training.distributed import DistributedContext
from pixelrnn.units import bits_per_dim


@dataclass(frozen=True)
class EvalResult:
    """Negative log-likelihood of a split.

    Attributes:
        dataset: dataset name.
        split: split name.
        num_images: images scored (every image, a partial last batch included).
        num_dims: sub-pixels per image, ``D``.
        nats_per_image: mean NLL in nats per image.
        bits_per_dim: ``nats_per_image / (D · ln 2)``.
        likelihood: ``"exact"``, or for a latent model what the figures are: an upper bound
            on the NLL, and which one.
        elbo_nats_per_image: a latent model's negative ELBO (an upper bound on the NLL, looser
            than the importance-weighted one).
        kl_nats_per_image: a latent model's ``KL(q(z | x) ‖ p(z))``, in nats per image.
        active_units: latent entries whose posterior mean varies over the images (variance
            above 0.01; Burda et al. 2016), out of ``latent_dims``.
        latent_dims: latent entries per image.
        reconstruction_nats_per_image: a VQ-VAE's ``−log p(x | z_q(x))``.
        code_perplexity: a VQ-VAE's codebook usage over the split, ``exp`` of the entropy of
            the code frequencies (``K`` when every code is used equally).
        unused_codes: codes no image of the split uses.
        top_code_perplexity, top_unused_codes: the same of a two-level VQ-VAE's top codes.
    """

    dataset: str
    split: str
    num_images: int
    num_dims: int
    nats_per_image: float
    bits_per_dim: float
    likelihood: str = "exact"
    elbo_nats_per_image: float | None = None
    kl_nats_per_image: float | None = None
    active_units: int | None = None
    latent_dims: int | None = None
    reconstruction_nats_per_image: float | None = None
    code_perplexity: float | None = None
    unused_codes: int | None = None
    top_code_perplexity: float | None = None
    top_unused_codes: int | None = None

    def to_dict(self) -> dict[str, float | int | str]:
        """The fields that apply (a model without latents has no KL)."""
        return {name: value for name, value in asdict(self).items() if value is not None}

    def metrics(self) -> dict[str, float | int | str]:
        """The fields of a ``metrics.jsonl`` record: split, NLL in both units, images, and a
        latent model's ELBO, KL and active units."""
        skip = ("dataset", "num_dims")
        return {name: value for name, value in self.to_dict().items() if name not in skip}


def check_labelled(dataset: ImageDataset, model: AutoregressiveModel) -> None:
    """Raise unless a conditional model's classes match the dataset's labels."""
    if model.num_classes is None:
        return
    if dataset.labels is None:
        dataset.labels_at(slice(0, 0))  # raises the "no class labels" error
    if dataset.num_classes != model.num_classes:
        raise ValueError(
            f"{dataset.name} has {dataset.num_classes} classes, the model was built for "
            f"{model.num_classes}"
        )


def check_fits(dataset: ImageDataset, model: AutoregressiveModel) -> None:
    """Raise a clear error unless ``model`` scores ``dataset``'s images: the same levels and
    shape, and labels where the model is class-conditional."""
    levels_fit = dataset.num_levels == model.num_levels or (
        dataset.levels_from_data and dataset.num_levels <= model.num_levels
    )
    if not levels_fit or dataset.image_shape != model.image_shape:
        raise ValueError(
            f"{dataset.name}/{dataset.split} has {dataset.num_levels}-level images of shape "
            f"{dataset.image_shape}; the model expects {model.num_levels} levels and shape "
            f"{model.image_shape} (pick a matching preset, or set --binarize for grey data)"
        )
    check_labelled(dataset, model)
    wanted = model.config.context_channels
    if dataset.context is not None and wanted != dataset.context_levels:
        raise ValueError(
            f"{dataset.name}/{dataset.split} gives every image a conditioning code map of "
            f"{dataset.context_levels} codes; the model reads "
            + ("none" if wanted is None else f"{wanted} channels")
            + f" (build it with context_channels={dataset.context_levels})"
        )
    if dataset.context is None and wanted is not None:
        raise ValueError(
            f"the model reads a conditioning map of {wanted} channels per image; "
            f"{dataset.name}/{dataset.split} has none"
        )


def context_map(
    dataset: ImageDataset, index: torch.Tensor | slice, model: AutoregressiveModel
) -> torch.Tensor | None:
    """The conditioning map of the images at ``index`` for ``model`` (one channel per code,
    at the images' size), or None for a split without one.

    Shape:
        → ``(B, context_levels, H, W)`` on the model's device.
    """
    if dataset.context is None or dataset.context_levels is None:
        return None
    weight = next(model.parameters())
    codes = dataset.context[index].to(weight.device)
    return code_map(codes, dataset.context_levels, model.image_shape[1:], weight.dtype)


@torch.no_grad()
def evaluate_nll(
    model: AutoregressiveModel,
    dataset: ImageDataset,
    batch_size: int = 256,
    generator: torch.Generator | None = None,
    max_images: int | None = None,
    progress: bool = False,
    context: DistributedContext | None = None,
    importance_samples: int | None = None,
) -> EvalResult:
    """NLL of ``dataset`` under ``model`` in nats per image and bits per dimension: exact, or
    for a latent model the importance-weighted upper bound (with its ELBO, KL and active units).

    A class-conditional model is scored given each image's label: ``-log p(x | y)``.

    Args:
        model: the model (put in eval mode for the duration).
        dataset: the split; its levels and image shape must match the model's.
        batch_size: images per forward pass.
        generator: randomness for dynamically binarized data.
        max_images: score only the first ``max_images`` images (for quick checks).
        progress: show a progress bar.
        context: in a multi-process job, each rank scores every ``world_size``-th batch and the
            float64 sums of nats are added across ranks, so every rank returns the exact total.
        importance_samples: ``K`` of a latent model's bound (default: its ``eval_samples``).
            The latent samples come from a generator of their own, seeded by each batch's
            first index, so a figure depends neither on the global random state nor on the
            number of processes.
    """
    check_fits(dataset, model)
    n = len(dataset) if max_images is None else min(max_images, len(dataset))
    if n == 0:
        raise ValueError(f"{dataset.name}/{dataset.split} has no images to evaluate")
    if importance_samples is not None and importance_samples < 1:
        raise ValueError(f"importance_samples must be >= 1, got {importance_samples}")
    device = next(model.parameters()).device
    k = (importance_samples or model.config.eval_samples) if isinstance(model, PixelVAE) else None
    was_training = model.training
    model.eval()
    totals = torch.zeros(_sums_size(model), dtype=torch.float64)  # see _batch_sums
    mine = range(0, n, batch_size)  # this rank's batches
    if context is not None and context.is_distributed:
        mine = mine[context.rank :: context.world_size]
    try:
        for start in tqdm(range(0, n, batch_size), disable=not progress, desc="evaluate"):
            index = slice(start, min(start + batch_size, n))
            # every batch is drawn, so dynamic binarization gets the same bits on any world size
            x = dataset.batch(index, generator).to(device)
            if start not in mine:
                continue
            y = None if model.num_classes is None else dataset.labels_at(index).to(device)
            with model.conditioned_on(context_map(dataset, index, model)):
                totals += _batch_sums(model, x, y, k, start)
    finally:
        model.train(was_training)
    if context is not None:
        totals = context.all_reduce_sum(totals.to(context.collective_device)).cpu()
    nats = float(totals[0]) / n
    result = EvalResult(
        dataset.name,
        dataset.split,
        n,
        model.num_dims,
        nats,
        float(bits_per_dim(nats, model.num_dims)),
        model.likelihood_name(k),
    )
    if isinstance(model, PixelVAE):
        dims = _latent_dims(model)
        mean_sum, mean_square_sum = totals[3 : 3 + dims], totals[3 + dims :]
        return replace(
            result,
            elbo_nats_per_image=float(totals[1]) / n,
            kl_nats_per_image=float(totals[2]) / n,
            active_units=active_units(mean_sum, mean_square_sum, n),
            latent_dims=dims,
        )
    if isinstance(model, VQVAE):
        k = model.config.num_codes
        usage = [
            codebook_usage(totals[2 + i * k : 2 + (i + 1) * k])
            for i in range(len(model.quantizers))
        ]
        top = usage[1] if len(usage) > 1 else (None, None)
        return replace(
            result,
            reconstruction_nats_per_image=float(totals[1]) / n,
            code_perplexity=usage[0][0],
            unused_codes=usage[0][1],
            top_code_perplexity=top[0],
            top_unused_codes=top[1],
        )
    return result


def _latent_dims(model: PixelVAE) -> int:
    return sum(math.prod(shape) for shape in model.latent_shapes)


def _sums_size(model: AutoregressiveModel) -> int:
    if isinstance(model, PixelVAE):
        return 3 + 2 * _latent_dims(model)
    if isinstance(model, VQVAE):
        return 2 + model.config.num_codes * len(model.quantizers)
    return 1


def _batch_sums(
    model: AutoregressiveModel,
    x: torch.Tensor,
    y: torch.Tensor | None,
    k: int | None,
    start: int,
) -> torch.Tensor:
    """The float64 sums a batch adds: ``[NLL]``; for a PixelVAE ``[−IW bound, −ELBO, KL,
    Σ posterior means (D'), Σ squared posterior means (D')]``; for a VQ-VAE ``[−bound,
    −log p(x | z_q), count of every code (K) of every level]``."""
    if isinstance(model, PixelVAE):
        latents = torch.Generator(device=x.device).manual_seed(start)
        bounds = model.bounds(x, k, latents)
        means = torch.cat([mean.flatten(1) for mean, _ in model.encode(x)], dim=1).double()
        figures = torch.stack([-bounds["iw"].sum(), -bounds["elbo"].sum(), bounds["kl"].sum()])
        return torch.cat([figures.double(), means.sum(0), means.square().sum(0)]).cpu()
    if isinstance(model, VQVAE):
        reconstruction = model.reconstruction_log_prob(x).double().sum()
        assert model.last_codes is not None  # the codes of that forward, per level
        counts = [
            torch.bincount(level.flatten(), minlength=model.config.num_codes).double()
            for level in model.last_codes
        ]
        bound = reconstruction - len(x) * model.uniform_prior_nats
        figures = torch.stack([-bound, -reconstruction])
        return torch.cat([figures, *counts]).cpu()
    return -model.log_prob(x, y=y).double().sum().cpu().reshape(1)
