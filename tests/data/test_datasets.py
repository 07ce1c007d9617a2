"""Named datasets: splits, binarization, missing files, downloads with checksums (offline)."""

from __future__ import annotations

import hashlib
import io
import shutil
import tarfile
import urllib.request
from pathlib import Path

import pytest
import torch

from pixelrnn.data import DatasetNotFoundError, load_dataset, resolve_data_dir, sources


def test_splits_and_levels(data_dir: Path) -> None:
    train = load_dataset("binarized-mnist", "train", data_dir)
    assert len(train) == 50_000 and train.num_levels == 2 and train.labels is None
    assert len(load_dataset("binarized-mnist", "valid", data_dir)) == 10_000
    mnist = load_dataset("mnist", "valid", data_dir)
    assert len(mnist) == 10_000 and mnist.num_levels == 256 and mnist.num_classes == 10
    assert len(load_dataset("mnist", "train-full", data_dir)) == 60_000
    cifar = load_dataset("cifar10", "valid", data_dir)
    assert cifar.image_shape == (3, 32, 32) and len(cifar) == 10_000
    assert len(load_dataset("cifar10", "train", data_dir)) == 40_000


def test_cifar_test_split_falls_back_to_the_partial_file_with_a_warning(data_dir: Path) -> None:
    with pytest.warns(UserWarning, match="not comparable"):
        test = load_dataset("cifar10", "test", data_dir, download=False)
    assert len(test) == 1000
    assert test.split == "test[:1000]"  # every result on it names the partial split


def test_binarization(data_dir: Path) -> None:
    grey = load_dataset("mnist", "test", data_dir)
    fixed = load_dataset("mnist", "test", data_dir, binarize="threshold")
    assert fixed.num_levels == 2
    assert torch.equal(fixed.batch(slice(0, 50)), (grey.images[:50] > 127).long())
    dynamic = load_dataset("fashion-mnist", "test", data_dir, binarize="dynamic")
    a = dynamic.batch(slice(0, 100), torch.Generator().manual_seed(0))
    b = dynamic.batch(slice(0, 100), torch.Generator().manual_seed(0))
    c = dynamic.batch(slice(0, 100), torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert set(a.unique().tolist()) == {0, 1}
    # a fresh draw has the pixel intensities as its expectation
    p = dynamic.images[:100].double() / 255
    assert abs(float(a.double().mean() - p.mean())) < 0.01


def test_bad_names_and_options(data_dir: Path) -> None:
    with pytest.raises(ValueError, match="unknown dataset 'svhn'"):
        load_dataset("svhn")
    with pytest.raises(ValueError, match="has no split 'dev'"):
        load_dataset("mnist", "dev", data_dir)
    with pytest.raises(ValueError, match="binarize applies to mnist"):
        load_dataset("cifar10", "train", data_dir, binarize="threshold")


def test_missing_files_name_the_files_and_the_variable(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as e:
        load_dataset("mnist", "test", tmp_path, download=False)
    message = str(e.value)
    assert "t10k-images-idx3-ubyte.gz" in message and "PIXELRNN_DATA" in message
    # offline (the test suite blocks the network): the download fails with the same advice
    with pytest.raises(DatasetNotFoundError, match="the download failed") as e:
        load_dataset("binarized-mnist", "valid", tmp_path)
    assert "binarized_mnist_valid.amat" in str(e.value)
    with pytest.raises(DatasetNotFoundError, match=r"image-net\.org"):
        load_dataset("imagenet32", "valid", tmp_path)


def test_data_dir_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PIXELRNN_DATA", str(tmp_path / "env"))
    assert resolve_data_dir() == tmp_path / "env"
    assert resolve_data_dir(tmp_path / "flag") == tmp_path / "flag"
    monkeypatch.delenv("PIXELRNN_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert resolve_data_dir() == tmp_path / "cache" / "pixelrnn" / "data"


class FakeServer:
    """Serves files from memory in place of ``urllib.request.urlopen``."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.requested: list[str] = []

    def __call__(self, url: str, timeout: float = 0) -> io.BytesIO:
        self.requested.append(url)
        if url not in self.files:
            raise OSError(f"404 {url}")
        resp = io.BytesIO(self.files[url])
        resp.headers = {"Content-Length": str(len(self.files[url]))}  # type: ignore[attr-defined]
        return resp


def test_download_verifies_checksums(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = sources.MNIST["test_labels"]
    good = (data_dir / f.path).read_bytes()
    server = FakeServer({f.urls[1]: good})  # first mirror "down", second serves the file
    monkeypatch.setattr(urllib.request, "urlopen", server)
    shutil.copy(data_dir / sources.MNIST["test_images"].path, tmp_path / "img.gz")
    (tmp_path / "mnist").mkdir()
    shutil.copy(tmp_path / "img.gz", tmp_path / sources.MNIST["test_images"].path)
    ds = load_dataset("mnist", "test", tmp_path)
    assert len(ds) == 10_000 and server.requested == list(f.urls)
    assert hashlib.md5((tmp_path / f.path).read_bytes()).hexdigest() == f.md5
    # a corrupted download is rejected and leaves nothing behind
    (tmp_path / f.path).unlink()
    server.files = {u: good[:100] + bytes([good[100] ^ 0xFF]) + good[101:] for u in f.urls}
    with pytest.raises(DatasetNotFoundError, match="checksum mismatch"):
        load_dataset("mnist", "test", tmp_path)
    assert not (tmp_path / f.path).exists()
    assert not [p for p in (tmp_path / "mnist").iterdir() if p.name.startswith(".")]


def test_cifar_archive_download_extracts_only_the_expected_members(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch5 = (data_dir / "cifar10/data_batch_5.bin").read_bytes()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("cifar-10-batches-bin/data_batch_5.bin")
        info.size = len(batch5)
        tar.addfile(info, io.BytesIO(batch5))
        evil = tarfile.TarInfo("../../evil.txt")
        evil.size = 4
        tar.addfile(evil, io.BytesIO(b"evil"))
    archive = buf.getvalue()
    monkeypatch.setattr(
        sources,
        "CIFAR10_ARCHIVE",
        sources.RemoteArchive(
            sources.CIFAR10_ARCHIVE.url,
            hashlib.md5(archive).hexdigest(),
            sources.CIFAR10_ARCHIVE.member_prefix,
            sources.CIFAR10_ARCHIVE.target_dir,
        ),
    )
    monkeypatch.setattr(
        urllib.request, "urlopen", FakeServer({sources.CIFAR10_ARCHIVE.url: archive})
    )
    ds = load_dataset("cifar10", "valid", tmp_path / "root")
    assert len(ds) == 10_000
    assert sorted(p.name for p in (tmp_path / "root" / "cifar10").iterdir()) == ["data_batch_5.bin"]
    assert not list(tmp_path.rglob("evil.txt"))
