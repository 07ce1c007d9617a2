"""Readers for the standard image-dataset file formats, each validating what it reads."""

from pixelrnn.data.formats.amat import read_binarized_mnist_amat
from pixelrnn.data.formats.cifar_binary import read_cifar10_binary
from pixelrnn.data.formats.code_grids import CodeGrids, read_code_grids
from pixelrnn.data.formats.compressed import read_maybe_gzip
from pixelrnn.data.formats.idx import read_idx_images, read_idx_labels
from pixelrnn.data.formats.image_folder import read_image_folder
from pixelrnn.data.formats.imagenet_npz import read_downsampled_imagenet_npz

__all__ = [
    "CodeGrids",
    "read_binarized_mnist_amat",
    "read_cifar10_binary",
    "read_code_grids",
    "read_downsampled_imagenet_npz",
    "read_idx_images",
    "read_idx_labels",
    "read_image_folder",
    "read_maybe_gzip",
]
