"""The two-stage VQ-VAE pipeline through the command line: train a VQ-VAE, train a prior on its
codes (extracted once), evaluate the two-stage bound, sample to PNG and to .npy, complete code
grids, resume the prior, and refuse a VQ-VAE of another fingerprint."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from pixelrnn.cli import main
from pixelrnn.models import load_pretrained, save_pretrained
from pixelrnn.training.code_prior import recorded_vqvae

TINY = ["--image-shape", "1,28,28", "--max-train-images", "64", "--batch-size", "16"]
TINY += ["--max-eval-images", "32", "--num-samples", "4", "--num-completions", "1"]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("two-stage")
    vq, prior = root / "vq", root / "prior"
    args = ["train", "--preset", "vqvae-tiny", *TINY, "--epochs", "1", "--run-dir", str(vq)]
    assert main([*args, "--data-dir", str(data_dir)]) == 0
    args = ["train", "--preset", "vqvae-prior-tiny", "--vqvae", str(vq), "--epochs", "1"]
    args += ["--max-train-images", "64", "--max-eval-images", "32", "--batch-size", "16"]
    args += ["--num-samples", "4", "--num-completions", "1"]
    assert main([*args, "--run-dir", str(prior), "--data-dir", str(data_dir)]) == 0
    return vq, prior


def test_the_prior_is_trained_on_the_vqvaes_codes(two_runs: tuple[Path, Path]) -> None:
    vq, prior_run = two_runs
    vqvae, prior = load_pretrained(vq / "best"), load_pretrained(prior_run / "best")
    assert prior.image_shape == (1, 14, 14) and prior.num_levels == 8  # 28 / 2, K = 8
    assert prior.config.input_encoding == "embedding"
    train = np.load(prior_run / "codes" / "train.npz")
    assert train["codes"].shape == (50_000, 14, 14) and int(train["num_levels"]) == 8
    assert "context" not in train.files  # one level: no top codes
    assert recorded_vqvae(prior_run).config == vqvae.config


def test_evaluate_reports_the_two_stage_bound(
    two_runs: tuple[Path, Path], data_dir: Path, capsys
) -> None:
    _, prior_run = two_runs
    capsys.readouterr()
    args = ["evaluate", str(prior_run), "--max-images", "24", "--data-dir", str(data_dir)]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["likelihood"].startswith("upper bound on the NLL (VQ-VAE reconstruction")
    total = result["reconstruction_nats_per_image"] + result["prior_nats_per_grid"]
    assert math.isclose(result["nats_per_image"], total, rel_tol=1e-12)
    assert math.isclose(result["bits_per_dim"], total / (784 * math.log(2)), rel_tol=1e-12)
    assert math.isclose(
        result["prior_bits_per_code"], result["prior_nats_per_grid"] / (196 * math.log(2))
    )
    assert 0 <= result["prior_bits_per_code"] < 3.5  # about a uniform prior's log2 8 = 3 or less


def test_sampling_decodes_the_prior_codes(two_runs: tuple[Path, Path], tmp_path: Path) -> None:
    _, prior_run = two_runs
    assert main(["sample", str(prior_run), "-n", "3", "-o", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").is_file()
    assert main(["sample", str(prior_run), "-n", "3", "-o", str(tmp_path / "c.npy")]) == 0
    codes = np.load(tmp_path / "c.npy")
    assert codes.shape == (3, 14, 14) and codes.max() < 8 and (tmp_path / "c.png").is_file()


def test_completion_reads_the_priors_own_codes(two_runs: tuple[Path, Path], tmp_path) -> None:
    _, prior_run = two_runs
    assert main(["complete", str(prior_run), "-n", "2", "-o", str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").is_file()


def test_the_prior_resumes_on_its_codes(two_runs: tuple[Path, Path]) -> None:
    _, prior_run = two_runs
    assert main(["train", "--resume", str(prior_run), "--epochs", "2"]) == 0


def test_another_vqvae_is_refused(
    two_runs: tuple[Path, Path], tmp_path: Path, data_dir: Path, capsys
) -> None:
    vq, prior_run = two_runs
    other = tmp_path / "other"
    model = load_pretrained(vq / "best")
    with torch.no_grad():
        model.decoder_net[-1].bias.add_(0.5)
    training = json.loads((vq / "best" / "config.json").read_text())["training"]
    save_pretrained(model, other, extra_config={"training": training})
    capsys.readouterr()
    args = ["sample", str(prior_run), "--vqvae", str(other), "-o", str(tmp_path / "x.png")]
    assert main(args) != 0
    assert "is not the one the prior" in capsys.readouterr().err
    args = ["train", "--preset", "vqvae-prior-tiny", "--vqvae", str(other), "--epochs", "1"]
    args += ["--run-dir", str(prior_run.parent / "prior-b"), "--data-dir", str(data_dir)]
    (prior_run.parent / "prior-b").mkdir()
    (prior_run.parent / "prior-b" / "vqvae.json").write_text((prior_run / "vqvae.json").read_text())
    assert main(args) != 0
    assert "holds the codes of another VQ-VAE" in capsys.readouterr().err


def test_a_class_conditional_prior_samples_each_class(
    tmp_path: Path, data_dir: Path, capsys
) -> None:
    """A VQ-VAE of labelled data (MNIST, thresholded), a prior given the class, samples of a
    chosen class at a chosen temperature, and the bound given each image's label."""
    vq, prior = tmp_path / "vq", tmp_path / "prior"
    args = ["train", "--preset", "vqvae-tiny", *TINY, "--epochs", "1", "--run-dir", str(vq)]
    args += ["--dataset", "mnist", "--binarize", "threshold", "--test-split", ""]
    assert main([*args, "--data-dir", str(data_dir)]) == 0
    args = ["train", "--preset", "vqvae-prior-tiny", "--vqvae", str(vq), "--epochs", "1"]
    args += ["--conditional", "class", "--max-train-images", "64", "--batch-size", "16"]
    args += ["--max-eval-images", "16", "--num-samples", "10", "--num-completions", "0"]
    args += ["--valid-split", "", "--test-split", ""]
    assert main([*args, "--run-dir", str(prior), "--data-dir", str(data_dir)]) == 0
    model = load_pretrained(prior / "last")
    assert model.num_classes == 10
    assert np.load(prior / "codes" / "train.npz")["labels"].shape == (50_000,)
    out = tmp_path / "three.npy"
    sample = ["sample", str(prior), "-n", "4", "--label", "3", "--temperature", "0.8"]
    assert main([*sample, "-o", str(out)]) == 0
    assert np.load(out).shape == (4, 14, 14)
    capsys.readouterr()
    evaluate = ["evaluate", str(prior), "--split", "valid", "--max-images", "16"]
    assert main([*evaluate, "--data-dir", str(data_dir)]) == 0
    assert json.loads(capsys.readouterr().out)["num_images"] == 16


def test_a_two_level_vqvae_samples_and_scores_through_both_priors(
    tmp_path: Path, data_dir: Path, capsys
) -> None:
    """VQ-VAE-2: a prior over the top codes, one over the bottom codes given a map of the top
    ones; sampling and the bound go through both."""
    vq, top, bottom = tmp_path / "vq", tmp_path / "top", tmp_path / "bottom"
    args = ["train", "--preset", "vqvae-tiny", *TINY, "--epochs", "1", "--run-dir", str(vq)]
    args += ["--top-downsamplings", "1", "--test-split", ""]
    assert main([*args, "--data-dir", str(data_dir)]) == 0
    common = ["--preset", "vqvae-prior-tiny", "--vqvae", str(vq), "--epochs", "1"]
    common += ["--max-train-images", "64", "--max-eval-images", "16", "--batch-size", "16"]
    common += ["--num-samples", "4", "--num-completions", "1", "--test-split", ""]
    for level, run in (("top", top), ("bottom", bottom)):
        args = ["train", *common, "--code-level", level, "--run-dir", str(run)]
        assert main([*args, "--data-dir", str(data_dir)]) == 0
    top_model, bottom_model = load_pretrained(top / "last"), load_pretrained(bottom / "last")
    assert top_model.image_shape == (1, 7, 7) and top_model.config.context_channels is None
    assert bottom_model.image_shape == (1, 14, 14) and bottom_model.config.context_channels == 8
    codes = np.load(bottom / "codes" / "valid.npz")
    assert codes["context"].shape == (10_000, 7, 7)
    out = tmp_path / "s.npy"
    assert main(["sample", str(bottom), "-n", "3", "--top-prior", str(top), "-o", str(out)]) == 0
    assert np.load(out).shape == (3, 14, 14) and np.load(tmp_path / "s.top.npy").shape == (3, 7, 7)
    assert (tmp_path / "s.png").is_file()
    capsys.readouterr()
    evaluate = ["evaluate", str(bottom), "--top-prior", str(top), "--split", "valid"]
    assert main([*evaluate, "--max-images", "16", "--data-dir", str(data_dir)]) == 0
    result = json.loads(capsys.readouterr().out)
    total = result["reconstruction_nats_per_image"] + result["prior_nats_per_grid"]
    assert math.isclose(result["nats_per_image"], total, rel_tol=1e-12)
    assert math.isclose(
        result["prior_bits_per_code"], result["prior_nats_per_grid"] / ((196 + 49) * math.log(2))
    )
    assert main(["sample", str(bottom), "-o", str(tmp_path / "x.png")]) != 0
    assert "pass --top-prior RUN" in capsys.readouterr().err
    assert main(["sample", str(top), "-o", str(tmp_path / "x.png")]) != 0
    assert "is a prior over the top codes" in capsys.readouterr().err


def test_the_shipped_prior_samples_and_scores_by_name(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """``vqvae-prior-mnist`` names its shipped VQ-VAE: sampling decodes its codes to digits and
    evaluate reports the two-stage bound, from any working directory."""
    data_dir = data_dir.resolve()  # the test changes the working directory
    monkeypatch.chdir(tmp_path)
    assert main(["sample", "vqvae-prior-mnist", "-n", "4", "-o", "digits.npy"]) == 0
    codes = np.load(tmp_path / "digits.npy")
    assert codes.shape == (4, 7, 7) and codes.max() < 64 and (tmp_path / "digits.png").is_file()
    capsys.readouterr()
    args = ["evaluate", "vqvae-prior-mnist", "--max-images", "20", "--data-dir", str(data_dir)]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["dataset"] == "binarized-mnist" and result["num_images"] == 20
    assert result["likelihood"].startswith("upper bound on the NLL (VQ-VAE reconstruction")
    assert 100 < result["nats_per_image"] < 300  # the card: 188.02 over the whole test split
