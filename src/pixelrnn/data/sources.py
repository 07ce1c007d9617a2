"""Canonical files of every downloadable dataset: where they live under the data root, their
checksums and where to fetch them (docs/data.md).

The folder layout is the one ``PIXELRNN_DATA`` points to, e.g. ``mnist/train-images-idx3-ubyte.gz``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset.

    Attributes:
        path: location under the data root.
        md5: checksum of the file as downloaded (after extraction for archive members).
        urls: mirrors tried in order; empty when the file comes out of an archive.
        alternatives: other accepted names under the root (e.g. a ``.gz`` copy of a text file);
            their content is validated by the reader instead of the checksum.
    """

    path: str
    md5: str
    urls: tuple[str, ...] = ()
    alternatives: tuple[str, ...] = ()


@dataclass(frozen=True)
class RemoteArchive:
    """A tar.gz whose members provide some of a dataset's files."""

    url: str
    md5: str
    member_prefix: str  # folder inside the archive that holds the members
    target_dir: str  # folder under the data root the members go to


_BINARIZED = "http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/"
_MNIST = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
_FASHION = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)


def _binarized(split: str, md5: str) -> RemoteFile:
    name = f"binarized_mnist/binarized_mnist_{split}.amat"
    return RemoteFile(name, md5, (f"{_BINARIZED}binarized_mnist_{split}.amat",), (name + ".gz",))


def _idx(folder: str, name: str, md5: str, mirrors: tuple[str, ...]) -> RemoteFile:
    return RemoteFile(f"{folder}/{name}", md5, tuple(m + name for m in mirrors))


BINARIZED_MNIST = {
    "train": _binarized("train", "db28b1a6ae0fe70cbd3da91acf46e477"),
    "valid": _binarized("valid", "bf37822a04e94123630de6a7dfd9c9ef"),
    "test": _binarized("test", "14e41ae11040adba6ab8cb291eda0dd8"),
}

MNIST = {
    "train_images": _idx(
        "mnist", "train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873", _MNIST
    ),
    "train_labels": _idx(
        "mnist", "train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432", _MNIST
    ),
    "test_images": _idx(
        "mnist", "t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3", _MNIST
    ),
    "test_labels": _idx(
        "mnist", "t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c", _MNIST
    ),
}

FASHION_MNIST = {
    "train_images": _idx(
        "fashion-mnist", "train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d", _FASHION
    ),
    "train_labels": _idx(
        "fashion-mnist", "train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe", _FASHION
    ),
    "test_images": _idx(
        "fashion-mnist", "t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79", _FASHION
    ),
    "test_labels": _idx(
        "fashion-mnist", "t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310", _FASHION
    ),
}

CIFAR10_ARCHIVE = RemoteArchive(
    url="https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
    md5="c32a1d4ab5d03f1284b67883e8d87530",
    member_prefix="cifar-10-batches-bin/",
    target_dir="cifar10",
)

CIFAR10 = {
    "data_batch_1": RemoteFile("cifar10/data_batch_1.bin", "5dd7e06a14cb22eb9f671a540d1b7c25"),
    "data_batch_2": RemoteFile("cifar10/data_batch_2.bin", "5ea93a67294ea407fff1d09f752e9692"),
    "data_batch_3": RemoteFile("cifar10/data_batch_3.bin", "942cd6a4bcdd0dd3c604fbe906cb4421"),
    "data_batch_4": RemoteFile("cifar10/data_batch_4.bin", "ae636b3ba5c66a11e91e8cb52e771fcb"),
    "data_batch_5": RemoteFile("cifar10/data_batch_5.bin", "53f37980c15c3d472c316c40844f3f0d"),
    "test_batch": RemoteFile("cifar10/test_batch.bin", "803d5f7f4d78ea53de84dbe85f74fb6d"),
}

# The first 1000 CIFAR-10 test records; no published checksum exists for this part.
CIFAR10_PARTIAL_TEST = "cifar10-partial/test_batch_first1000.bin"
