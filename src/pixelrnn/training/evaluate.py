"""Test-set likelihood (conventions §7): NLL summed in float64 over the split, divided once."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from tqdm.auto import tqdm

from pixelrnn.data import ImageDataset
from pixelrnn.models.base import AutoregressiveModel
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
    """

    dataset: str
    split: str
    num_images: int
    num_dims: int
    nats_per_image: float
    bits_per_dim: float
    likelihood: str = "exact"

    def to_dict(self) -> dict[str, float | int | str]:
        return asdict(self)

    def metrics(self) -> dict[str, float | int | str]:
        """The fields of a ``metrics.jsonl`` record: split, NLL in both units, images."""
        return {
            "split": self.split,
            "nats_per_image": self.nats_per_image,
            "bits_per_dim": self.bits_per_dim,
            "num_images": self.num_images,
            "likelihood": self.likelihood,
        }


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
    if dataset.num_levels != model.num_levels or dataset.image_shape != model.image_shape:
        raise ValueError(
            f"{dataset.name}/{dataset.split} has {dataset.num_levels}-level images of shape "
            f"{dataset.image_shape}; the model expects {model.num_levels} levels and shape "
            f"{model.image_shape} (pick a matching preset, or set --binarize for grey data)"
        )
    check_labelled(dataset, model)


@torch.no_grad()
def evaluate_nll(
    model: AutoregressiveModel,
    dataset: ImageDataset,
    batch_size: int = 256,
    generator: torch.Generator | None = None,
    max_images: int | None = None,
    progress: bool = False,
    context: DistributedContext | None = None,
) -> EvalResult:
    """Exact NLL of ``dataset`` under ``model`` in nats per image and bits per dimension.

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
    """
    check_fits(dataset, model)
    n = len(dataset) if max_images is None else min(max_images, len(dataset))
    if n == 0:
        raise ValueError(f"{dataset.name}/{dataset.split} has no images to evaluate")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total = torch.zeros((), dtype=torch.float64)
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
            total += -model.log_prob(x, y=y).double().sum().cpu()
    finally:
        model.train(was_training)
    if context is not None:
        total = context.all_reduce_sum(total.to(context.collective_device)).cpu()
    nats = float(total) / n
    return EvalResult(
        dataset.name,
        dataset.split,
        n,
        model.num_dims,
        nats,
        float(bits_per_dim(nats, model.num_dims)),
        likelihood_name(model),
    )


def likelihood_name(model: AutoregressiveModel) -> str:
    """What a model's ``log_prob`` is: ``"exact"``, or the bound a latent model reports."""
    if model.likelihood_kind == "exact":
        return "exact"
    samples = getattr(model.config, "eval_samples", None)
    return f"upper bound on the NLL (importance-weighted, K={samples})"
