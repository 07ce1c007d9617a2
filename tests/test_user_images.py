"""A user's own image files: reading them into a model's levels, masks and boxes, and the
``complete --image`` and ``score`` commands on them."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import pixelrnn
from pixelrnn.cli import main
from pixelrnn.images import box_mask, read_image, read_mask, to_uint8
from tests.helpers import tiny_model


def _png(path: Path, array: np.ndarray) -> Path:
    Image.fromarray(array).save(path)
    return path


def test_grey_8_bit_reads_exactly_and_round_trips(tmp_path: Path) -> None:
    values = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    x = read_image(_png(tmp_path / "g.png", values), (1, 8, 8), 256)
    assert x.dtype == torch.int64 and x.shape == (1, 8, 8)
    assert torch.equal(x[0], torch.from_numpy(values.astype(np.int64)))
    # what to_uint8 writes reads back as the same levels, for any K
    for levels in (2, 4, 16, 256):
        img = torch.randint(0, levels, (1, 1, 8, 8), generator=torch.Generator().manual_seed(0))
        path = _png(tmp_path / f"k{levels}.png", to_uint8(img, levels)[0, :, :, 0])
        assert torch.equal(read_image(path, (1, 8, 8), levels), img[0])


def test_binary_threshold(tmp_path: Path) -> None:
    values = np.array([[0, 127, 128, 255]], dtype=np.uint8)
    path = _png(tmp_path / "b.png", values)
    assert read_image(path, (1, 1, 4), 2).tolist() == [[[0, 0, 1, 1]]]
    assert read_image(path, (1, 1, 4), 2, threshold=0.9).tolist() == [[[0, 0, 0, 1]]]
    with pytest.raises(ValueError, match="threshold must lie in"):
        read_image(path, (1, 1, 4), 2, threshold=0.0)


def test_rgb_palette_and_alpha(tmp_path: Path) -> None:
    rgb = np.zeros((2, 3, 3), dtype=np.uint8)
    rgb[0, 0] = (255, 0, 0)
    rgb[1, 2] = (10, 20, 30)
    path = _png(tmp_path / "rgb.png", rgb)
    x = read_image(path, (3, 2, 3), 256)
    assert x[:, 0, 0].tolist() == [255, 0, 0] and x[:, 1, 2].tolist() == [10, 20, 30]
    # RGB to a grey model: Pillow's luma (L = R·299/1000 + G·587/1000 + B·114/1000)
    assert read_image(path, (1, 2, 3), 256)[0, 0, 0] == 76
    # a palette image reads as its colours
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=4).save(
        tmp_path / "p.png"
    )
    assert torch.equal(read_image(tmp_path / "p.png", (3, 2, 3), 256), x)
    # transparent pixels are laid on black
    rgba = np.concatenate([rgb, np.full((2, 3, 1), 255, np.uint8)], axis=2)
    rgba[0, 0, 3] = 0
    x_alpha = read_image(_png(tmp_path / "a.png", rgba), (3, 2, 3), 256)
    assert x_alpha[:, 0, 0].tolist() == [0, 0, 0]
    assert x_alpha[:, 1, 2].tolist() == [10, 20, 30]


def test_bad_files_and_sizes_get_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such image file"):
        read_image(tmp_path / "missing.png", (1, 4, 4), 2)
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(ValueError, match="not an image Pillow can read"):
        read_image(tmp_path / "text.png", (1, 4, 4), 2)
    path = _png(tmp_path / "big.png", np.zeros((6, 5), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"the image is 5x6 .* the model takes 4x4"):
        read_image(path, (1, 4, 4), 2)
    assert read_image(path, (1, 4, 4), 2, resize=True).shape == (1, 4, 4)
    with pytest.raises(ValueError, match="1- or 3-channel"):
        read_image(path, (2, 4, 4), 2)


def test_masks_and_boxes(tmp_path: Path) -> None:
    mask = np.zeros((4, 4), dtype=np.uint8)
    mask[2:, 1:3] = 255
    known = read_mask(_png(tmp_path / "m.png", mask), (3, 4, 4))
    assert known.shape == (3, 4, 4) and known.dtype == torch.bool
    assert torch.equal(known[1], torch.from_numpy(mask == 0))
    with pytest.raises(ValueError, match=r"the mask is 4x4 .* the image 5x4"):
        read_mask(tmp_path / "m.png", (1, 4, 5))
    mask[0, 0] = 7
    with pytest.raises(ValueError, match=r"black \(0: keep\) and white \(255: erase\) only"):
        read_mask(_png(tmp_path / "grey.png", mask), (1, 4, 4))
    box = box_mask("1,2,3,4", (1, 4, 4))
    assert (~box).sum() == 4 and not box[0, 2:4, 1:3].any()
    for bad in ("1,2,3", "a,b,c,d", "3,0,1,4", "0,0,5,4"):
        with pytest.raises(ValueError, match="box"):
            box_mask(bad, (1, 4, 4))


def _run(tmp_path: Path, name: str = "model") -> Path:
    model = tiny_model(1, 2, size=6, seed=0)
    pixelrnn.save_pretrained(model, tmp_path / name)
    return tmp_path / name


def test_complete_an_own_image_keeps_every_known_pixel(tmp_path: Path) -> None:
    run = _run(tmp_path)
    rng = np.random.default_rng(0)
    image = (rng.random((6, 6)) > 0.5).astype(np.uint8) * 255
    path = _png(tmp_path / "digit.png", image)
    out = tmp_path / "out.png"
    argv = ["complete", str(run), "--image", str(path), "--box", "1,2,5,6"]
    assert main([*argv, "-n", "4", "-o", str(out), "--device", "cpu"]) == 0  # 4 completions
    grid = np.asarray(Image.open(out).convert("L"))[::2, ::2]  # drawn at twice the size
    # rows: original, occluded, 4 completions; one column; 2-pixel padding
    cells = [grid[2 + r * 8 : 8 + r * 8, 2:8] for r in range(6)]
    assert np.array_equal(cells[0], image)
    known = np.ones((6, 6), dtype=bool)
    known[2:6, 1:5] = False
    for completion in cells[2:]:
        assert np.array_equal(completion[known], image[known])
        assert set(np.unique(completion[~known])) <= {0, 255}


def test_complete_refuses_mixed_options(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = _run(tmp_path)
    path = _png(tmp_path / "d.png", np.zeros((6, 6), dtype=np.uint8))
    argv = ["complete", str(run), "--image", str(path), "--device", "cpu"]
    assert main([*argv, "--box", "0,0,2,2", "--occlude", "center"]) == 2
    assert "choose one of --mask, --box and --occlude" in capsys.readouterr().err
    big = _png(tmp_path / "big.png", np.zeros((7, 7), dtype=np.uint8))
    assert main(["complete", str(run), "--image", str(big), "--device", "cpu"]) == 2
    assert "the image is 7x7 (width x height), the model takes 6x6" in capsys.readouterr().err


def test_score_files_and_folders(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = _run(tmp_path)
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for k in range(3):
        _png(folder / f"{k}.png", (rng.random((6, 6)) > 0.5).astype(np.uint8) * 255)
    (folder / "notes.txt").write_text("skipped: not an image suffix")
    assert main(["score", str(run), str(folder), "--device", "cpu"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [Path(r["file"]).name for r in rows] == ["0.png", "1.png", "2.png"]
    model = pixelrnn.load_pretrained(run)
    x = torch.stack([read_image(folder / f"{k}.png", (1, 6, 6), 2) for k in range(3)])
    expected = (-model.log_prob(x)).double()
    for row, nats in zip(rows, expected.tolist(), strict=True):
        assert float(row["nats_per_image"]) == pytest.approx(nats, abs=1e-5)
        assert float(row["bits_per_dim"]) == pytest.approx(nats / (36 * np.log(2)), abs=1e-6)
    out = tmp_path / "scores.json"
    argv = ["score", str(run), str(folder / "0.png"), "--format", "json", "-o", str(out)]
    assert main([*argv, "--device", "cpu"]) == 0
    assert json.loads(out.read_text())[0]["nats_per_image"] == pytest.approx(expected[0].item())
    assert main(["score", str(run), str(folder / "notes.txt"), "--device", "cpu"]) == 2
    assert "not an image Pillow can read" in capsys.readouterr().err
