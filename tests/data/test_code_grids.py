"""Code grids (``code-grids``): reading ``.npy`` / ``.npz`` files with their checks, a prior
over a user's codes through the command line — train (embedded inputs by default), evaluate,
sample to ``.npy`` with a PNG preview, score and complete — and a prior conditioned on a code
map per grid (a coarser code level), which every command reads."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from pixelrnn.cli import main
from pixelrnn.data import DataFormatError, load_dataset
from pixelrnn.data.formats import read_code_grids
from pixelrnn.models import load_pretrained
from pixelrnn.training import evaluate_nll


def write_codes(folder: Path, k: int = 12, n: int = 40, seed: int = 0) -> np.ndarray:
    """Structured 6×6 codes (each row repeats a code) in train.npz (with K and labels),
    valid.npz and test.npy. Returns the training codes ``(N, 6, 6)``."""
    rng = np.random.default_rng(seed)
    codes = np.repeat(rng.integers(0, k, size=(3 * n, 6, 1)), 6, axis=2).astype(np.int16)
    folder.mkdir(parents=True, exist_ok=True)
    labels = rng.integers(0, 3, size=n)
    np.savez(folder / "train.npz", codes=codes[:n], labels=labels, num_levels=np.int64(k))
    np.savez(folder / "valid.npz", codes=codes[n : 2 * n], num_levels=np.int64(k))
    np.save(folder / "test.npy", codes[2 * n :])
    return codes[:n]


def test_files_are_read_with_their_levels_and_labels(tmp_path: Path) -> None:
    codes = write_codes(tmp_path)
    grids = read_code_grids(tmp_path / "train.npz")
    assert grids.codes.shape == (40, 1, 6, 6) and grids.codes.dtype == np.int64
    assert grids.num_levels == 12 and grids.labels is not None and len(grids.labels) == 40
    assert np.array_equal(grids.codes[:, 0], codes)
    train = load_dataset("code-grids", "train", tmp_path)
    assert train.num_levels == 12 and not train.levels_from_data and train.num_classes == 3
    test = load_dataset("code-grids", "test", tmp_path)  # .npy: K from the largest code
    assert test.levels_from_data and test.num_levels == int(test.images.max()) + 1
    assert load_dataset("code-grids", "test", tmp_path, num_levels=12).num_levels == 12


def test_bad_codes_are_refused_naming_file_grid_and_value(tmp_path: Path) -> None:
    codes = np.zeros((3, 2, 4, 4), dtype=np.int32)
    codes[2, 1, 3, 0] = 9
    np.save(tmp_path / "c.npy", codes)
    with pytest.raises(DataFormatError, match=r"c\.npy: code 9 at grid 2, position \(1, 3, 0\)"):
        read_code_grids(tmp_path / "c.npy", num_levels=8)
    np.save(tmp_path / "neg.npy", -codes)
    with pytest.raises(DataFormatError, match=r"code -9 at grid 2.*must be >= 0"):
        read_code_grids(tmp_path / "neg.npy")
    np.save(tmp_path / "float.npy", codes.astype(np.float32))
    with pytest.raises(DataFormatError, match="codes must be integers"):
        read_code_grids(tmp_path / "float.npy")
    np.savez(tmp_path / "k.npz", codes=codes, num_levels=np.int64(16))
    with pytest.raises(DataFormatError, match="holds codes of K = 16, expected K = 8"):
        read_code_grids(tmp_path / "k.npz", num_levels=8)
    np.savez(tmp_path / "nokey.npz", grids=codes)
    with pytest.raises(DataFormatError, match="no 'codes' array"):
        read_code_grids(tmp_path / "nokey.npz")
    (tmp_path / "broken.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(DataFormatError, match=r"not a readable \.npy file"):
        read_code_grids(tmp_path / "broken.npy")
    with pytest.raises(FileNotFoundError, match=r"no .*nothing\.npz nor .*nothing\.npy"):
        load_dataset("code-grids", "nothing", tmp_path)


def test_a_prior_over_a_users_codes_through_the_command_line(tmp_path: Path, capsys) -> None:
    codes_dir, run = tmp_path / "codes", tmp_path / "prior"
    write_codes(codes_dir)
    args = ["train", "--model", "pixelcnn", "--dataset", "code-grids", "--data-dir", str(codes_dir)]
    args += ["--hidden-channels", "8", "--num-layers", "2", "--epochs", "2", "--batch-size", "8"]
    args += ["--num-samples", "4", "--num-completions", "1", "--run-dir", str(run)]
    assert main(args) == 0
    model = load_pretrained(run / "best")
    assert model.config.input_encoding == "embedding" and model.num_levels == 12
    assert model.image_shape == (1, 6, 6)
    capsys.readouterr()
    assert main(["evaluate", str(run), "--data-dir", str(codes_dir)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["dataset"] == "code-grids" and result["num_images"] == 40
    assert 0 < result["bits_per_dim"] < np.log2(12)  # bits per code, below a uniform prior's
    out = tmp_path / "sampled.npy"
    assert main(["sample", str(run), "-n", "5", "-o", str(out)]) == 0
    sampled = np.load(out)
    assert sampled.shape == (5, 1, 6, 6) and sampled.dtype == np.int64
    assert sampled.min() >= 0 and sampled.max() < 12 and out.with_suffix(".png").is_file()
    capsys.readouterr()
    assert main(["score", str(run), str(out), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["file"] for r in rows] == [f"{out}[{i}]" for i in range(5)]
    with torch.no_grad():
        expected = -model.log_prob(torch.from_numpy(sampled)).double()
    assert np.allclose([r["nats_per_image"] for r in rows], expected.numpy())
    assert (
        main(
            [
                "complete",
                str(run),
                "--data-dir",
                str(codes_dir),
                "-n",
                "2",
                "-o",
                str(tmp_path / "c.png"),
            ]
        )
        == 0
    )
    bad = np.full((1, 6, 6), 12)
    np.save(tmp_path / "bad.npy", bad)
    assert main(["score", str(run), str(tmp_path / "bad.npy")]) != 0
    assert (
        "code 12 at grid 0, position (0, 0, 0): codes must lie in [0, 12)"
        in capsys.readouterr().err
    )


def write_conditioned_codes(folder: Path, n: int = 48, seed: int = 0) -> None:
    """Bottom codes (K = 6) that repeat an upsampled top code map (4 codes) plus noise: the
    conditioning map tells much of each grid. Splits train, valid, test."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "valid", "test"):
        top = rng.integers(0, 4, size=(n, 3, 3))
        bottom = np.repeat(np.repeat(top, 2, axis=1), 2, axis=2)
        bottom = np.where(rng.random(bottom.shape) < 0.1, 5, bottom)
        np.savez(
            folder / f"{split}.npz",
            codes=bottom,
            num_levels=np.int64(6),
            context=top,
            context_levels=np.int64(4),
        )


def test_conditioning_maps_are_read_and_checked(tmp_path: Path) -> None:
    write_conditioned_codes(tmp_path)
    data = load_dataset("code-grids", "train", tmp_path)
    assert data.context is not None and data.context.shape == (48, 3, 3)
    assert data.context_levels == 4
    np.savez(
        tmp_path / "bad.npz",
        codes=np.zeros((2, 4, 4), np.int64),
        context=np.full((2, 2, 2), 7),
        context_levels=np.int64(4),
    )
    with pytest.raises(DataFormatError, match=r"context code 7 at grid 0.*lie in \[0, 4\)"):
        read_code_grids(tmp_path / "bad.npz")
    np.savez(
        tmp_path / "short.npz",
        codes=np.zeros((2, 4, 4), np.int64),
        context=np.zeros((3, 2, 2), np.int64),
    )
    with pytest.raises(DataFormatError, match="context must be integers shaped"):
        read_code_grids(tmp_path / "short.npz")


def test_a_prior_conditioned_on_a_code_map_through_the_command_line(tmp_path: Path, capsys) -> None:
    codes_dir, run = tmp_path / "codes", tmp_path / "prior"
    write_conditioned_codes(codes_dir)
    args = ["train", "--model", "pixelcnn", "--dataset", "code-grids", "--data-dir", str(codes_dir)]
    args += ["--hidden-channels", "8", "--num-layers", "2", "--epochs", "3", "--batch-size", "8"]
    args += ["--num-samples", "4", "--num-completions", "1", "--run-dir", str(run)]
    assert main(args) == 0
    model = load_pretrained(run / "best")
    assert model.config.context_channels == 4  # one channel per code of the map
    test = load_dataset("code-grids", "test", codes_dir)
    right = evaluate_nll(model, test).nats_per_image
    shuffled = dataclasses.replace(test, context=test.context.flip(0))
    assert evaluate_nll(model, shuffled).nats_per_image != right  # the map is read
    no_map = dataclasses.replace(test, context=None, context_levels=None)
    with pytest.raises(ValueError, match="reads a conditioning map of 4 channels"):
        evaluate_nll(model, no_map)
    capsys.readouterr()
    assert main(["evaluate", str(run), "--data-dir", str(codes_dir)]) == 0
    assert math.isclose(json.loads(capsys.readouterr().out)["nats_per_image"], right)
    out = tmp_path / "s.npy"
    assert main(["sample", str(run), "-n", "5", "-o", str(out), "--data-dir", str(codes_dir)]) == 0
    assert np.load(out).shape == (5, 1, 6, 6)
    complete = ["complete", str(run), "-n", "3", "-o", str(tmp_path / "c.png")]
    assert main([*complete, "--data-dir", str(codes_dir)]) == 0
    assert main(["score", str(run), str(out)]) != 0
    assert "reads a conditioning map per image, which score" in capsys.readouterr().err
    args[args.index("--run-dir") + 1] = str(tmp_path / "compiled")
    assert main([*args, "--compile", "true"]) != 0
    assert "trains with the eager step" in capsys.readouterr().err


def test_a_multiscale_prior_over_codes_through_the_command_line(tmp_path: Path) -> None:
    """The multi-scale model embeds codes too: trained, sampled to .npy from the CLI."""
    codes_dir, run = tmp_path / "codes", tmp_path / "prior"
    write_codes(codes_dir)
    args = ["train", "--model", "multiscale", "--dataset", "code-grids"]
    args += ["--data-dir", str(codes_dir), "--hidden-channels", "8", "--num-layers", "2"]
    args += ["--epochs", "1", "--batch-size", "8", "--num-samples", "4", "--num-completions", "1"]
    assert main([*args, "--run-dir", str(run)]) == 0
    model = load_pretrained(run / "best")
    assert model.config.input_encoding == "embedding"
    assert all(stage.config.input_encoding == "embedding" for stage in model.stages)
    out = tmp_path / "sampled.npy"
    assert main(["sample", str(run), "-n", "3", "-o", str(out)]) == 0
    sampled = np.load(out)
    assert sampled.shape == (3, 1, 6, 6) and sampled.min() >= 0 and sampled.max() < 12
