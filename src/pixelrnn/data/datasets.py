"""Named datasets and their splits, loaded whole into memory as uint8 tensors.

* ``binarized-mnist``: 2 levels, no labels; train 50k / valid 10k / test 10k
  (Larochelle's fixed binarization).
* ``mnist``, ``fashion-mnist``: 256 levels (2 with ``binarize``), labels; train = first 50k of
  the training file, valid = its last 10k, train-full = all 60k, test 10k.
* ``cifar10``: 256 levels, labels; train = batches 1-4, valid = batch 5, train-full = 1-5, test.
* ``imagenet32``, ``imagenet64``: 256 levels; train / valid from the user's ``.npz`` files.
* ``image-folder``: 256 levels; any sub-folder of PNGs under the data dir is a split.
* ``code-grids``: grids of ``K`` discrete codes (e.g. a VQ-VAE's); any ``<split>.npz`` or
  ``<split>.npy`` under the data dir is a split (:mod:`pixelrnn.data.formats.code_grids`).
  ``K``: given, else the file's ``num_levels``, else the largest code + 1 (then any model with
  at least that many levels scores the split).

``binarize`` for the grey MNIST-type sets: ``"threshold"`` (pixel/255 > 0.5, fixed) or
``"dynamic"`` (a fresh Bernoulli draw with p = pixel/255 every time a batch is made, from the
caller's seeded generator). NOTE: dynamic binarization acts as data augmentation; its NLLs are
optimistic and not comparable with the paper's numbers on Larochelle's fixed binarization
(PixelRNN §5.5; Salakhutdinov & Murray 2008). Use ``binarized-mnist`` for paper comparisons.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from pixelrnn.data import sources
from pixelrnn.data.download import ensure_files
from pixelrnn.data.errors import DataFormatError, DatasetNotFoundError
from pixelrnn.data.formats import (
    read_binarized_mnist_amat,
    read_cifar10_binary,
    read_code_grids,
    read_downsampled_imagenet_npz,
    read_idx_images,
    read_idx_labels,
    read_image_folder,
)
from pixelrnn.data.root import resolve_data_dir

Binarize = Literal["threshold", "dynamic"]
MNIST_TRAIN_SIZE = 50_000  # the first 50k of the 60k training file; the last 10k are "valid"


@dataclass
class ImageDataset:
    """A split held in memory.

    Attributes:
        name: dataset name.
        split: split name.
        images: uint8 ``(N, C, H, W)`` raw values (0..255 before binarization), or int64
            codes.
        labels: int64 ``(N,)`` class labels, or None.
        num_levels: discrete levels per sub-pixel of the batches this dataset yields.
        binarize: None, ``"threshold"`` (already applied to ``images``) or ``"dynamic"``.
        num_classes: number of classes when labelled.
        levels_from_data: ``num_levels`` is the largest value + 1 (no file stated it): a model
            with more levels scores the split too.
        context: int64 ``(N, h, w)`` conditioning code maps (``code-grids`` files with a
            ``context``), read by models with ``context_channels = context_levels``.
        context_levels: the number of codes of ``context``.
    """

    name: str
    split: str
    images: torch.Tensor
    labels: torch.Tensor | None
    num_levels: int
    binarize: Binarize | None = None
    num_classes: int | None = None
    levels_from_data: bool = False
    context: torch.Tensor | None = None
    context_levels: int | None = None

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def head(self, n: int) -> ImageDataset:
        """The first ``n`` images (all of them when there are fewer)."""
        labels = None if self.labels is None else self.labels[:n]
        context = None if self.context is None else self.context[:n]
        return dataclasses.replace(self, images=self.images[:n], labels=labels, context=context)

    def labels_at(self, index: torch.Tensor | slice) -> torch.Tensor:
        """Class labels at ``index``, int64 ``(B,)``; a clear error for an unlabelled split."""
        if self.labels is None:
            raise ValueError(
                f"{self.name}/{self.split} has no class labels; a class-conditional model needs "
                "a labelled dataset (mnist, fashion-mnist, cifar10)"
            )
        return self.labels[index].long()

    def batch(
        self, index: torch.Tensor | slice, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Images at ``index`` as int64 ``(B, C, H, W)`` in ``[0, num_levels)``.

        With dynamic binarization every call draws new bits from ``generator``.
        """
        x = self.images[index]
        if self.binarize == "dynamic":
            p = x.float() / 255.0
            return (torch.rand(p.shape, generator=generator) < p).long()
        return x.long()


def _mnist_like(
    name: str,
    files: dict[str, sources.RemoteFile],
    root: Path,
    split: str,
    download: bool,
    binarize: Binarize | None,
) -> ImageDataset:
    part = "test" if split == "test" else "train"
    img_path, lbl_path = ensure_files(
        name, root, [files[f"{part}_images"], files[f"{part}_labels"]], download
    )
    images, labels = read_idx_images(img_path), read_idx_labels(lbl_path)
    if len(images) != len(labels):
        raise DataFormatError(
            img_path, f"{len(images)} images but {len(labels)} labels in {lbl_path}"
        )
    if split == "train":
        images, labels = images[:MNIST_TRAIN_SIZE], labels[:MNIST_TRAIN_SIZE]
    elif split == "valid":
        images, labels = images[MNIST_TRAIN_SIZE:], labels[MNIST_TRAIN_SIZE:]
    x = torch.from_numpy(images[:, None].copy())
    levels = 256
    if binarize == "threshold":
        x = (x > 127).to(torch.uint8)  # pixel / 255 > 0.5
        levels = 2
    elif binarize == "dynamic":
        levels = 2
    return ImageDataset(
        name, split, x, torch.from_numpy(labels.astype(np.int64)), levels, binarize, 10
    )


def _binarized_mnist(root: Path, split: str, download: bool) -> ImageDataset:
    (path,) = ensure_files("binarized-mnist", root, [sources.BINARIZED_MNIST[split]], download)
    expected = {"train": 50_000, "valid": 10_000, "test": 10_000}[split]
    bits = read_binarized_mnist_amat(path, expected_count=expected)
    return ImageDataset("binarized-mnist", split, torch.from_numpy(bits[:, None].copy()), None, 2)


def _cifar10(root: Path, split: str, download: bool) -> ImageDataset:
    files = sources.CIFAR10
    if split == "test":
        partial = root / sources.CIFAR10_PARTIAL_TEST
        if not (root / files["test_batch"].path).is_file() and partial.is_file():
            warnings.warn(
                f"CIFAR-10: {root / files['test_batch'].path} is missing; using the partial test "
                f"file {partial}. Results on it are not comparable with published CIFAR-10 test "
                "numbers (all 10,000 test images).",
                stacklevel=3,
            )
            paths = [partial]
        else:
            paths = ensure_files(
                "cifar10", root, [files["test_batch"]], download, sources.CIFAR10_ARCHIVE
            )
    else:
        batches = {"train": [1, 2, 3, 4], "valid": [5], "train-full": [1, 2, 3, 4, 5]}[split]
        paths = ensure_files(
            "cifar10",
            root,
            [files[f"data_batch_{i}"] for i in batches],
            download,
            sources.CIFAR10_ARCHIVE,
        )
    parts = [read_cifar10_binary(p) for p in paths]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts]).astype(np.int64)
    if split == "test" and paths == [partial]:
        split = f"test[:{len(images)}]"  # every result on it says it is a partial test split
    return ImageDataset(
        "cifar10", split, torch.from_numpy(images), torch.from_numpy(labels), 256, None, 10
    )


def _imagenet(name: str, root: Path, split: str) -> ImageDataset:
    size = 32 if name == "imagenet32" else 64
    folder = root / name
    pattern = "train_data_batch_*.npz" if split == "train" else "val_data.npz"
    paths = sorted(folder.glob(pattern))
    if not paths:
        raise DatasetNotFoundError(
            f"dataset {name!r}: no {folder / pattern}. Downsampled ImageNet has no open download "
            "(it needs an image-net.org account): download the npz release yourself and put its "
            f"files in {folder}, or point --data-dir / PIXELRNN_DATA at the folder above it."
        )
    parts = [read_downsampled_imagenet_npz(p, size) for p in paths]
    images = torch.from_numpy(np.concatenate([p[0] for p in parts]))
    labels = None
    if all(p[1] is not None for p in parts):
        labels = torch.from_numpy(np.concatenate([p[1] for p in parts]) - 1)  # 1-based → 0-based
    return ImageDataset(
        name, split, images, labels, 256, None, 1000 if labels is not None else None
    )


def _code_grids(root: Path, split: str, num_levels: int | None) -> ImageDataset:
    candidates = [root / f"{split}.npz", root / f"{split}.npy"]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise DatasetNotFoundError(
            f"dataset 'code-grids': no {candidates[0]} nor {candidates[1]} (point --data-dir "
            "at the folder of your code files)"
        )
    grids = read_code_grids(path, num_levels)
    levels = num_levels or grids.num_levels
    from_data = levels is None
    if levels is None:
        levels = max(2, int(grids.codes.max()) + 1)
    labels = None if grids.labels is None else torch.from_numpy(grids.labels)
    classes = None if labels is None else int(labels.max()) + 1
    return ImageDataset(
        "code-grids",
        split,
        torch.from_numpy(grids.codes),
        labels,
        levels,
        None,
        classes,
        levels_from_data=from_data,
        context=None if grids.context is None else torch.from_numpy(grids.context),
        context_levels=grids.context_levels,
    )


# datasets of nominal symbols, whose models read embeddings rather than intensities by default
NOMINAL_DATASETS = ("code-grids",)

SPLITS: dict[str, tuple[str, ...]] = {
    "binarized-mnist": ("train", "valid", "test"),
    "mnist": ("train", "valid", "train-full", "test"),
    "fashion-mnist": ("train", "valid", "train-full", "test"),
    "cifar10": ("train", "valid", "train-full", "test"),
    "imagenet32": ("train", "valid"),
    "imagenet64": ("train", "valid"),
    "image-folder": (),  # any sub-folder name
    "code-grids": (),  # any <split>.npz / <split>.npy
}


def dataset_image_spec(
    name: str, binarize: str | None = None
) -> tuple[tuple[int, int, int], int] | None:
    """``(image_shape, num_levels)`` of a dataset's batches; None where it depends on the files."""
    if name == "binarized-mnist":
        return (1, 28, 28), 2
    if name in ("mnist", "fashion-mnist"):
        return (1, 28, 28), 2 if binarize else 256
    if name in ("cifar10", "imagenet32"):
        return (3, 32, 32), 256
    if name == "imagenet64":
        return (3, 64, 64), 256
    return None


DATASET_CLASSES: dict[str, int] = {
    "mnist": 10,
    "fashion-mnist": 10,
    "cifar10": 10,
    "imagenet32": 1000,  # when the .npz files carry labels
    "imagenet64": 1000,
}


# Unlabelled datasets whose images exist with labels elsewhere: ``(dataset, binarize)``.
# Larochelle's binarized MNIST has no labels (and its rows are not in MNIST order); MNIST with
# its labels, binarized by a fresh draw, is the nearest labelled data.
LABELLED_COUNTERPARTS: dict[str, tuple[str, str | None]] = {"binarized-mnist": ("mnist", "dynamic")}


def dataset_num_classes(name: str) -> int:
    """Number of class labels of a labelled dataset; a clear error for an unlabelled one."""
    if name not in DATASET_CLASSES:
        raise ValueError(
            f"dataset {name!r} has no class labels; class-conditional training needs one of "
            f"{sorted(DATASET_CLASSES)}"
        )
    return DATASET_CLASSES[name]


def available_datasets() -> list[str]:
    """Names accepted by :func:`load_dataset`."""
    return list(SPLITS)


def load_dataset(
    name: str,
    split: str = "train",
    data_dir: str | Path | None = None,
    download: bool = True,
    binarize: Binarize | None = None,
    channels: int = 3,
    num_levels: int | None = None,
) -> ImageDataset:
    """Load one split of a named dataset.

    Args:
        name: one of :func:`available_datasets`.
        split: split name (see the module table).
        data_dir: data root; defaults to ``$PIXELRNN_DATA`` or the user cache folder.
        download: fetch missing files from the canonical sources (checksums verified).
        binarize: for ``mnist`` / ``fashion-mnist``: ``"threshold"`` or ``"dynamic"``.
        channels: for ``image-folder``: 1 (grey) or 3 (RGB).
        num_levels: for ``code-grids``: the number of codes ``K`` (every code must lie below).

    Raises:
        ValueError: unknown dataset, split or option.
        DatasetNotFoundError: files missing and not downloadable.
        DataFormatError: a file is corrupt or truncated.
    """
    if name not in SPLITS:
        raise ValueError(f"unknown dataset {name!r}; available datasets: {available_datasets()}")
    if SPLITS[name] and split not in SPLITS[name]:
        raise ValueError(f"dataset {name!r} has no split {split!r}; splits: {list(SPLITS[name])}")
    if binarize is not None and name not in ("mnist", "fashion-mnist"):
        raise ValueError(f"binarize applies to mnist and fashion-mnist only, not {name!r}")
    if num_levels is not None and name != "code-grids":
        raise ValueError(f"num_levels applies to code-grids only, not {name!r}")
    if binarize not in (None, "threshold", "dynamic"):
        raise ValueError(f"binarize must be 'threshold', 'dynamic' or None, got {binarize!r}")
    root = resolve_data_dir(data_dir)
    if name == "binarized-mnist":
        return _binarized_mnist(root, split, download)
    if name == "mnist":
        return _mnist_like(name, sources.MNIST, root, split, download, binarize)
    if name == "fashion-mnist":
        return _mnist_like(name, sources.FASHION_MNIST, root, split, download, binarize)
    if name == "cifar10":
        return _cifar10(root, split, download)
    if name in ("imagenet32", "imagenet64"):
        return _imagenet(name, root, split)
    if name == "code-grids":
        return _code_grids(root, split, num_levels)
    images = read_image_folder(root / split, channels)
    return ImageDataset(name, split, torch.from_numpy(images), None, 256)
