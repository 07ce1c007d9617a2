"""VQ-VAE: a decoder independent per sub-pixel given the codes (so sampling is one decoder pass,
cached = naive), the bound with a uniform prior over codes, the training objective with its
penalties and gradients, images of any size, and the command line (train, evaluate with
codebook usage, sample)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import pixelrnn
from pixelrnn.cli import main
from pixelrnn.models.vqvae import VQVAE
from tests.helpers import random_images


def vqvae(**overrides: object) -> VQVAE:
    torch.manual_seed(0)
    model = pixelrnn.create_model(preset="vqvae-tiny", **overrides)
    assert isinstance(model, VQVAE)
    return model


def spread_codebook(model: VQVAE, x: torch.Tensor) -> None:
    """Codes on encoder outputs of ``x`` (a fresh codebook lies far from them: one code)."""
    with torch.no_grad():
        for quantizer, z_e in zip(model.quantizers, model.encode(x), strict=True):
            z = z_e.permute(0, 2, 3, 1).reshape(-1, model.config.code_dim)
            quantizer.codebook.copy_(
                z[torch.linspace(0, len(z) - 1, len(quantizer.codebook)).long()]
            )


def test_given_codes_the_sub_pixels_do_not_depend_on_the_image() -> None:
    model = vqvae().double().eval()
    x = random_images(model, 3)
    spread_codebook(model, x)
    codes = model.encode_codes(x)
    assert codes[0].shape == (3, 4, 4) and len(codes[0].unique()) > 2
    with model.given_codes(codes):
        assert torch.equal(model(x), model(1 - x))  # a decoder of the codes only
    assert torch.equal(model(x), model.decoder_params(codes))  # the image's own codes
    assert not torch.equal(model(x), model(1 - x))  # which the image decides: not causal


def test_sampling_is_the_same_cached_and_naive_and_keeps_known_pixels() -> None:
    model = vqvae().eval()
    x = random_images(model, 4, seed=3)
    known = torch.rand(x.shape, generator=torch.Generator().manual_seed(1)) < 0.4
    runs = [
        pixelrnn.complete(model, x, known, generator=torch.Generator().manual_seed(2), method=m)
        for m in ("cached", "naive")
    ]
    assert torch.equal(runs[0], runs[1]) and torch.equal(runs[0][known], x[known])


def test_the_bound_adds_the_uniform_prior_over_codes() -> None:
    """A decoder with zero logits gives log p(x | z) = −D log 2, so the bound is exactly
    D log 2 + h·w·log K nats: the uniform model's 1 bit per dimension plus the codes'."""
    model = vqvae().double().eval()
    with torch.no_grad():
        model.decoder_net[-1].weight.zero_()
        model.decoder_net[-1].bias.zero_()
    x = random_images(model, 3)
    expected = 64 * math.log(2) + 16 * math.log(8)
    # (the output distributions compute log-probabilities in float32)
    torch.testing.assert_close(
        -model.log_prob(x).double(), torch.full((3,), expected, dtype=torch.float64)
    )
    assert model.likelihood_name() == (
        "upper bound on the NLL (reconstruction + uniform prior over the codes)"
    )


@pytest.mark.parametrize("levels", [None, 1], ids=["one-level", "two-level"])
@pytest.mark.parametrize("update", ["ema", "loss"])
def test_the_objective_carries_its_penalties_and_its_gradients(update: str, levels) -> None:
    model = vqvae(codebook_update=update, commitment_cost=0.25, top_downsamplings=levels)
    x = random_images(model, 4)
    spread_codebook(model, x)
    model.eval()  # the expected figures, before the training step moves the codebook
    with torch.no_grad():
        quantized = [q(z) for q, z in zip(model.quantizers, model.encode(x), strict=True)]
        reconstruction = model.reconstruction_log_prob(x)
    penalty = sum(
        0.25 * level.commitment + (level.codebook if update == "loss" else 0) for level in quantized
    )
    model.train()
    objective = model.log_prob(x)
    torch.testing.assert_close(objective, reconstruction - penalty, rtol=1e-5, atol=1e-4)
    (-objective.sum()).backward()
    encoders = [model.encoder, *([model.top_encoder] if levels else [])]
    for encoder in encoders:
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in encoder.parameters())
    for quantizer in model.quantizers:
        grad = quantizer.codebook.grad if update == "loss" else None
        assert (grad is not None and grad.abs().sum() > 0) == (update == "loss")


def test_two_levels_decode_both_code_maps() -> None:
    """VQ-VAE-2: a top map of the bottom map's codes, decoded together; the uniform bound
    counts both; sampling is the same cached and naive."""
    model = vqvae(top_downsamplings=1).double().eval()
    x = random_images(model, 3)
    spread_codebook(model, x)
    bottom, top = model.encode_codes(x)
    assert bottom.shape == (3, 4, 4) and top.shape == (3, 2, 2)
    assert model.code_shapes == [(4, 4), (2, 2)]
    other_top = (top + 1) % 8
    assert not torch.equal(
        model.decoder_params([bottom, top]), model.decoder_params([bottom, other_top])
    )
    with pytest.raises(ValueError, match="has 2 code levels, got 1"):
        model.decoder_params([bottom])
    reconstruction = model.reconstruction_log_prob(x)
    torch.testing.assert_close(model.log_prob(x), reconstruction - 20 * math.log(8))
    known = torch.rand(x.shape, generator=torch.Generator().manual_seed(1)) < 0.4
    runs = [
        pixelrnn.complete(model, x, known, generator=torch.Generator().manual_seed(2), method=m)
        for m in ("cached", "naive")
    ]
    assert torch.equal(runs[0], runs[1]) and torch.equal(runs[0][known], x[known])


def test_images_of_any_size_are_padded_and_cropped() -> None:
    model = vqvae(image_shape=(3, 7, 5), num_levels=16, downsamplings=2, top_downsamplings=1)
    model.eval()
    x = random_images(model, 2)
    assert model.code_shapes == [(2, 2), (1, 1)] and model(x).shape[-2:] == (7, 5)
    assert torch.isfinite(model.log_prob(x)).all()


def test_command_line_trains_evaluates_and_samples(tmp_path: Path, data_dir: Path, capsys) -> None:
    run = tmp_path / "vq"
    args = ["train", "--preset", "vqvae-tiny", "--image-shape", "1,28,28", "--epochs", "1"]
    args += ["--max-train-images", "64", "--batch-size", "16", "--max-eval-images", "32"]
    args += ["--num-samples", "4", "--num-completions", "1", "--run-dir", str(run)]
    assert main([*args, "--data-dir", str(data_dir)]) == 0
    results = json.loads((run / "results.json").read_text())
    assert results["likelihood"].startswith("upper bound on the NLL (reconstruction")
    assert results["nats_per_image"] > results["reconstruction_nats_per_image"] > 0
    assert 1 <= results["code_perplexity"] <= 8 and 0 <= results["unused_codes"] < 8
    capsys.readouterr()
    assert main(["evaluate", str(run), "--max-images", "16", "--data-dir", str(data_dir)]) == 0
    assert "code_perplexity" in json.loads(capsys.readouterr().out)
    assert main(["sample", str(run), "-n", "4", "-o", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").is_file()
