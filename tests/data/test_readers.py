"""Every reader on the real staged files and on corrupted or truncated copies of them."""

from __future__ import annotations

import gzip
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixelrnn.data import DataFormatError
from pixelrnn.data.formats import (
    read_binarized_mnist_amat,
    read_cifar10_binary,
    read_downsampled_imagenet_npz,
    read_idx_images,
    read_idx_labels,
    read_image_folder,
)


# --- real files ---------------------------------------------------------------------------------
def test_binarized_mnist_real_files(data_dir: Path) -> None:
    for split, n in [("train", 50_000), ("valid", 10_000), ("test", 10_000)]:
        bits = read_binarized_mnist_amat(
            data_dir / f"binarized_mnist/binarized_mnist_{split}.amat.gz", expected_count=n
        )
        assert bits.shape == (n, 28, 28) and bits.dtype == np.uint8
        assert set(np.unique(bits).tolist()) == {0, 1}
        assert 0.10 < bits.mean() < 0.16  # about 13% ink


@pytest.mark.parametrize("folder", ["mnist", "fashion-mnist"])
def test_idx_real_files(data_dir: Path, folder: str) -> None:
    for prefix, n in [("train", 60_000), ("t10k", 10_000)]:
        images = read_idx_images(data_dir / folder / f"{prefix}-images-idx3-ubyte.gz")
        labels = read_idx_labels(data_dir / folder / f"{prefix}-labels-idx1-ubyte.gz")
        assert images.shape == (n, 28, 28) and labels.shape == (n,)
        assert images.dtype == np.uint8 and images.max() == 255
        assert np.bincount(labels, minlength=10).min() > 0
    if folder == "mnist":
        first = read_idx_labels(data_dir / "mnist/train-labels-idx1-ubyte.gz")[:5]
        assert first.tolist() == [5, 0, 4, 1, 9]


def test_cifar10_real_files(data_dir: Path) -> None:
    counts = np.zeros(10, int)
    for k in range(1, 6):
        images, labels = read_cifar10_binary(data_dir / f"cifar10/data_batch_{k}.bin")
        assert images.shape == (10_000, 3, 32, 32) and labels.shape == (10_000,)
        counts += np.bincount(labels, minlength=10)
    assert counts.tolist() == [5000] * 10
    images, labels = read_cifar10_binary(data_dir / "cifar10-partial/test_batch_first1000.bin")
    assert images.shape == (1000, 3, 32, 32)
    assert np.bincount(labels, minlength=10).tolist() == [
        103,
        89,
        100,
        103,
        90,
        86,
        112,
        102,
        106,
        109,
    ]


# --- corrupted copies ---------------------------------------------------------------------------
def test_truncated_gzip_is_reported(data_dir: Path, tmp_path: Path) -> None:
    src = (data_dir / "mnist/t10k-labels-idx1-ubyte.gz").read_bytes()
    bad = tmp_path / "t10k-labels-idx1-ubyte.gz"
    bad.write_bytes(src[: len(src) // 2])
    with pytest.raises(DataFormatError, match="truncated") as e:
        read_idx_labels(bad)
    assert str(bad) in str(e.value)


def test_idx_bad_magic_and_truncation(data_dir: Path, tmp_path: Path) -> None:
    raw = gzip.decompress((data_dir / "mnist/t10k-labels-idx1-ubyte.gz").read_bytes())
    images = gzip.decompress((data_dir / "mnist/t10k-images-idx3-ubyte.gz").read_bytes())
    (tmp_path / "labels").write_bytes(raw)
    with pytest.raises(DataFormatError, match="1 dimension"):
        read_idx_images(tmp_path / "labels")  # labels file read as images
    (tmp_path / "junk").write_bytes(b"\x12\x34\x56\x78" + raw[4:])
    with pytest.raises(DataFormatError, match="bad IDX magic"):
        read_idx_labels(tmp_path / "junk")
    (tmp_path / "short").write_bytes(images[:-100])
    with pytest.raises(
        DataFormatError, match=r"7840000 bytes of data, the file holds 7839900 \(truncated\)"
    ):
        read_idx_images(tmp_path / "short")
    (tmp_path / "tiny").write_bytes(b"\x00\x00")
    with pytest.raises(DataFormatError, match="too short"):
        read_idx_images(tmp_path / "tiny")
    (tmp_path / "badlabel").write_bytes(struct.pack(">IIB", 0x801, 1, 12))
    with pytest.raises(DataFormatError, match="label 12 out of range"):
        read_idx_labels(tmp_path / "badlabel")


def _amat_lines(data_dir: Path, n: int) -> bytes:
    with gzip.open(data_dir / "binarized_mnist/binarized_mnist_valid.amat.gz") as f:
        return b"".join(f.readline() for _ in range(n))


def test_amat_plain_text_and_corruptions(data_dir: Path, tmp_path: Path) -> None:
    text = _amat_lines(data_dir, 3)
    plain = tmp_path / "x.amat"
    plain.write_bytes(text)
    assert read_binarized_mnist_amat(plain).shape == (3, 28, 28)
    with pytest.raises(DataFormatError, match="3 images, expected 10000"):
        read_binarized_mnist_amat(plain, expected_count=10_000)
    plain.write_bytes(text[:-7])
    with pytest.raises(DataFormatError, match="not a whole number"):
        read_binarized_mnist_amat(plain)
    plain.write_bytes(text[:1568] + text[1568:3136].replace(b"0", b"2", 1) + text[3136:])
    with pytest.raises(DataFormatError, match="line 2 holds a value other than 0 or 1"):
        read_binarized_mnist_amat(plain)
    plain.write_bytes(text.replace(b" ", b",", 1))
    with pytest.raises(DataFormatError, match="line 1 is not 784 space-separated"):
        read_binarized_mnist_amat(plain)


def test_cifar_partial_and_corrupt_files(data_dir: Path, tmp_path: Path) -> None:
    record = 3073
    src = (data_dir / "cifar10/data_batch_1.bin").read_bytes()[: 5 * record]
    (tmp_path / "five.bin").write_bytes(src)
    images, _ = read_cifar10_binary(tmp_path / "five.bin")
    assert images.shape == (5, 3, 32, 32)
    (tmp_path / "cut.bin").write_bytes(src[:-1])
    with pytest.raises(DataFormatError, match="not a whole, non-zero number of 3073-byte"):
        read_cifar10_binary(tmp_path / "cut.bin")
    (tmp_path / "label.bin").write_bytes(b"\x0b" + src[1:])
    with pytest.raises(DataFormatError, match="record 0 has label 11"):
        read_cifar10_binary(tmp_path / "label.bin")
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_cifar10_binary(tmp_path / "missing.bin")


def test_imagenet_npz(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, (4, 3 * 32 * 32), dtype=np.uint8)
    np.savez(tmp_path / "val_data.npz", data=data, labels=np.array([1, 2, 3, 1000]))
    images, labels = read_downsampled_imagenet_npz(tmp_path / "val_data.npz", 32)
    assert images.shape == (4, 3, 32, 32)
    assert np.array_equal(images[1, 2].reshape(-1), data[1, 2048:])  # B plane is last
    assert labels.tolist() == [1, 2, 3, 1000]
    np.savez(tmp_path / "nodata.npz", x=data)
    with pytest.raises(DataFormatError, match="no 'data' array"):
        read_downsampled_imagenet_npz(tmp_path / "nodata.npz")
    np.savez(tmp_path / "odd.npz", data=data[:, :100])
    with pytest.raises(DataFormatError, match="not 3 x"):
        read_downsampled_imagenet_npz(tmp_path / "odd.npz")
    np.savez(tmp_path / "obj.npz", data=np.array([{"a": 1}], dtype=object))
    with pytest.raises(DataFormatError, match=r"not a readable \.npz"):  # no unpickling
        read_downsampled_imagenet_npz(tmp_path / "obj.npz")
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(DataFormatError):
        read_downsampled_imagenet_npz(tmp_path / "broken.npz")


def test_image_folder(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for k in range(3):
        Image.fromarray(rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)).save(tmp_path / f"{k}.png")
    rgb = read_image_folder(tmp_path, 3)
    grey = read_image_folder(tmp_path, 1)
    assert rgb.shape == (3, 3, 6, 5) and grey.shape == (3, 1, 6, 5)
    assert np.array_equal(rgb[0].transpose(1, 2, 0), np.asarray(Image.open(tmp_path / "0.png")))
    Image.fromarray(np.zeros((7, 5, 3), np.uint8)).save(tmp_path / "3.png")
    with pytest.raises(DataFormatError, match="differs from the first image"):
        read_image_folder(tmp_path)
    (tmp_path / "3.png").write_bytes(b"not a png")
    with pytest.raises(DataFormatError, match="not a readable PNG"):
        read_image_folder(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataFormatError, match=r"no \.png images"):
        read_image_folder(empty)


def test_gzip_is_detected_by_content_not_name(data_dir: Path, tmp_path: Path) -> None:
    renamed = tmp_path / "labels.bin"
    shutil.copy(data_dir / "mnist/t10k-labels-idx1-ubyte.gz", renamed)
    assert read_idx_labels(renamed).shape == (10_000,)
