"""The training batches of an epoch as a map-style dataset, for ``torch.utils.data.DataLoader``.

Item ``k`` is the whole global batch of step ``first_step + k`` of the epoch: the images at that
slice of the epoch's permutation and their labels, binarized (if dynamic) from the generator of
that global step. Every item is a pure function of ``(seed, epoch, step)``, so loader workers,
their number and the world size change nothing about the data a step sees — exact resumption
and the multi-process equivalence hold with any ``num_workers``.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from pixelrnn.data import ImageDataset
from pixelrnn.training.seeding import make_generator


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
