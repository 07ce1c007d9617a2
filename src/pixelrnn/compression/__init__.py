"""Lossless image compression with a trained model: the model's conditionals drive a range
coder, in generation order, through the cached generation loop (``pixelrnn compress`` /
``decompress``)."""

from pixelrnn.compression.api import (
    DEFAULT_BATCH_SIZE,
    Decompressed,
    compress,
    decode_file,
    decompress,
)
from pixelrnn.compression.container import CompressedFile, CompressedFileError

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "CompressedFile",
    "CompressedFileError",
    "Decompressed",
    "compress",
    "decode_file",
    "decompress",
]
