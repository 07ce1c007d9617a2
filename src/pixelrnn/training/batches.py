"""The training batches of an epoch as a map-style dataset, for ``torch.utils.data.DataLoader``.

Item ``k`` is the whole global batch of step ``first_step + k`` of the epoch: the images at that
slice of the epoch's permutation and their labels, binarized (if dynamic) from the generator of
that global step. Every item is a pure function of ``(seed, epoch, step)``, so loader workers,
their number and the world size change nothing about the data a step sees — exact resumption
and the multi-process equivalence hold with any ``num_workers``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from pixelrnn.data import ImageDataset, load_dataset
from pixelrnn.models.base import AutoregressiveModel
from pixelrnn.training.config import TrainConfig
from pixelrnn.training.evaluate import check_fits
from pixelrnn.training.seeding import make_generator


def load_split(config: TrainConfig, split: str, data_dir: str | Path | None) -> ImageDataset:
    """One split of the run's dataset (binarized as the run asks)."""
    return load_dataset(config.dataset, split, data_dir, binarize=config.binarize)  # type: ignore[arg-type]


def load_training_data(
    model: AutoregressiveModel, config: TrainConfig, data_dir: str | Path | None
) -> tuple[ImageDataset, ImageDataset | None]:
    """The training split (its first ``max_train_images``) and the validation split (None
    without one), checked against what ``model`` scores."""
    train = load_split(config, config.train_split, data_dir)
    if config.max_train_images is not None:
        train = train.head(config.max_train_images)
    valid = load_split(config, config.valid_split, data_dir) if config.valid_split else None
    for ds in filter(None, (train, valid)):
        check_fits(ds, model)
    return train, valid


def epoch_steps(num_images: int, batch_size: int, drop_last: bool) -> int:
    """Optimizer steps in one epoch of ``num_images`` images: whole batches, plus a last short
    one unless ``drop_last``."""
    return num_images // batch_size if drop_last else -(-num_images // batch_size)


class EpochBatches(Dataset):
    """Global batches ``first_step, first_step + 1, …`` of one epoch.

    Args:
        data: the training split.
        order: the epoch's permutation of ``range(len(data))``.
        batch_size: images per global batch.
        first_step: step of the epoch to start from (when resuming).
        first_global_step: the run's global step at ``first_step`` (seeds binarization).
        seed: the run's seed.
        labels: also return the labels (for conditional models).
        drop_last: leave out a last batch of fewer than ``batch_size`` images.

    Items:
        ``(index, x, y)``: int64 ``(b,)``, int64 ``(b, C, H, W)``, int64 ``(b,)`` or None.
    """

    def __init__(
        self,
        data: ImageDataset,
        order: torch.Tensor,
        batch_size: int,
        first_step: int,
        first_global_step: int,
        seed: int,
        labels: bool,
        drop_last: bool = False,
    ) -> None:
        self.data, self.order, self.batch_size = data, order, batch_size
        self.first_step, self.first_global_step = first_step, first_global_step
        self.seed, self.labels = seed, labels
        self.num_steps = epoch_steps(len(order), batch_size, drop_last) - first_step

    def __len__(self) -> int:
        return max(self.num_steps, 0)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        step = self.first_step + k
        index = self.order[step * self.batch_size : (step + 1) * self.batch_size]
        generator = make_generator(self.seed, "binarize", self.first_global_step + k)
        x = self.data.batch(index, generator)
        y = self.data.labels_at(index) if self.labels else None
        return index, x, y


def epoch_loader(
    data: ImageDataset,
    order: torch.Tensor,
    config: TrainConfig,
    position: tuple[int, int, int],
    labels: bool,
) -> DataLoader:
    """The rest of an epoch's global batches, from ``config.num_workers`` loader processes.

    Args:
        data: the training split; order: the epoch's permutation.
        position: ``(epoch, step_in_epoch, global_step)`` of the next step.
        labels: whether the batches carry the images' labels (a conditional model).
    """
    epoch, step_in_epoch, global_step = position
    batches = EpochBatches(
        data,
        order,
        config.batch_size,
        step_in_epoch,
        global_step,
        config.seed,
        labels=labels,
        drop_last=config.drop_last,
    )
    # batch_size=None: every item is already a whole batch. The loader's own generator: an
    # iterator otherwise draws its workers' base seed from the global stream, which a resumed
    # run would then hold in another state (dropout draws from it)
    loader_seed = make_generator(config.seed, "loader", epoch, step_in_epoch)
    return DataLoader(
        batches, batch_size=None, num_workers=config.num_workers, generator=loader_seed
    )
