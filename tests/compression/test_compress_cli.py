"""``pixelrnn compress`` / ``decompress`` on a user's PNG files and on a dataset split, and the
exact reading of image files that lossless storage needs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import pixelrnn
from pixelrnn.cli import main
from pixelrnn.images import read_image_exact
from tests.helpers import tiny_model


def _png(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    Image.fromarray(array, mode).save(path)
    return path


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


@pytest.fixture
def saved_model(tmp_path: Path) -> Path:
    """A tiny binary 8×8 model folder that names its training data (for --split)."""
    folder = tmp_path / "model"
    model = tiny_model(1, 2, size=8, model="gated_pixelcnn")
    pixelrnn.save_pretrained(model, folder, {"training": {"dataset": "binarized-mnist"}})
    return folder


def test_files_round_trip_with_their_names(saved_model: Path, tmp_path: Path, capsys) -> None:
    g = np.random.default_rng(0)
    folder = tmp_path / "mine"
    folder.mkdir()
    for name in ("digit-a.png", "digit-b.png", "digit-c.png"):
        _png(folder / name, (g.random((8, 8)) < 0.3).astype(np.uint8) * 255)
    packed = tmp_path / "mine.prnn"
    assert main(["compress", str(saved_model), str(folder), "-o", str(packed)]) == 0
    assert "compressed 3 images" in capsys.readouterr().out
    assert main(["decompress", str(packed), "-o", str(tmp_path / "back")]) == 0  # no --model
    for name in ("digit-a.png", "digit-b.png", "digit-c.png"):
        assert np.array_equal(_pixels(folder / name), _pixels(tmp_path / "back" / name))


def test_split_round_trip(tmp_path: Path, data_dir: Path) -> None:
    """The first images of a dataset split, named by index, each read back exactly."""
    model_folder = tmp_path / "mnist-model"
    pixelrnn.save_pretrained(
        tiny_model(1, 2, size=28), model_folder, {"training": {"dataset": "binarized-mnist"}}
    )
    packed = tmp_path / "test.prnn"
    args = ["compress", str(model_folder), "--split", "test", "--max-images", "5"]
    assert main([*args, "--data-dir", str(data_dir), "-o", str(packed)]) == 0
    assert main(["decompress", str(packed), "-o", str(tmp_path / "out")]) == 0
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == [f"{i:05d}.png" for i in range(5)]
    from pixelrnn.data import load_dataset

    digits = load_dataset("binarized-mnist", "test", data_dir).batch(slice(0, 5))
    for i in range(5):
        back = read_image_exact(tmp_path / "out" / f"{i:05d}.png", (1, 28, 28), 2)
        assert torch.equal(back, digits[i])


def test_conditional_model_stores_labels(tmp_path: Path) -> None:
    folder = tmp_path / "cond"
    pixelrnn.save_pretrained(
        tiny_model(1, 2, size=6, model="gated_pixelcnn", num_classes=4), folder
    )
    _png(tmp_path / "x.png", np.full((6, 6), 255, np.uint8))
    packed = tmp_path / "x.prnn"
    assert (
        main(["compress", str(folder), str(tmp_path / "x.png"), "--label", "3", "-o", str(packed)])
        == 0
    )
    assert main(["decompress", str(packed), "-o", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "labels.csv").read_text() == "file,label\nx.png,3\n"


def test_errors_are_one_clear_line(saved_model: Path, tmp_path: Path, capsys) -> None:
    grey = _png(tmp_path / "grey.png", np.full((8, 8), 100, np.uint8))
    out = str(tmp_path / "o.prnn")
    assert main(["compress", str(saved_model), str(grey), "-o", out]) == 2
    assert "between the model's 2 levels" in capsys.readouterr().err
    assert main(["compress", str(saved_model), "-o", out]) == 2
    assert "give image files" in capsys.readouterr().err
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    for folder in (a, b):
        _png(folder / "same.png", np.zeros((8, 8), np.uint8))
    assert main(["compress", str(saved_model), str(a), str(b), "-o", out]) == 2
    assert "two files are named same.png" in capsys.readouterr().err
    damaged = tmp_path / "damaged.prnn"
    assert main(["compress", str(saved_model), str(a), "-o", str(damaged)]) == 0
    data = bytearray(damaged.read_bytes())
    data[-6] ^= 1
    damaged.write_bytes(bytes(data))
    assert main(["decompress", str(damaged), "-o", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "corrupted" in err and "Traceback" not in err and not (tmp_path / "x").exists()


def test_read_image_exact_refuses_what_it_cannot_store(tmp_path: Path) -> None:
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[1, 2] = (10, 20, 30)
    with pytest.raises(ValueError, match=r"pixel \(x=2, y=1\) has colour"):
        read_image_exact(_png(tmp_path / "c.png", rgb), (1, 4, 4), 256)
    assert read_image_exact(tmp_path / "c.png", (3, 4, 4), 256)[:, 1, 2].tolist() == [10, 20, 30]
    rgba = np.full((4, 4, 4), 255, np.uint8)
    rgba[3, 0, 3] = 0
    with pytest.raises(ValueError, match=r"pixel \(x=0, y=3\) is transparent"):
        read_image_exact(_png(tmp_path / "t.png", rgba), (3, 4, 4), 256)
    deep = _png(tmp_path / "d.png", np.full((4, 4), 1000, np.uint16))
    with pytest.raises(ValueError, match="cannot be stored without loss"):
        read_image_exact(deep, (1, 4, 4), 256)
    with pytest.raises(ValueError, match="the model takes 5x5"):
        read_image_exact(tmp_path / "c.png", (3, 5, 5), 256)
    # every level of a K-level model reads back as itself
    levels = np.array([[0, 85, 170, 255]], np.uint8)
    assert read_image_exact(_png(tmp_path / "k.png", levels), (1, 1, 4), 4).tolist() == [
        [[0, 1, 2, 3]]
    ]
