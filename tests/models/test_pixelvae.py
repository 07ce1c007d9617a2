"""PixelVAE: its bounds (exact when the latent carries nothing, importance-weighted ≥ ELBO),
gradients into the encoder, the deterministic auto-encoder, KL warm-up and free bits, and the
command line naming the figures as bounds. (Causality given z, cached = naive, completion and
save/load run in the shared tests over every registered model.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import pixelrnn
from pixelrnn.cli import main
from tests.helpers import random_images, tiny_model


def vae(**overrides: object) -> pixelrnn.AutoregressiveModel:
    return tiny_model(1, 2, size=8, model="pixelvae", **overrides).double()


def test_a_latent_that_carries_nothing_gives_the_exact_likelihood() -> None:
    """Encoder = prior (mean 0, log-variance 0) and a conditioning map that ignores z: the ELBO
    and the importance-weighted bound both equal the decoder's exact log-likelihood."""
    model = vae().eval()
    with torch.no_grad():
        model.encoder.head.weight.zero_()
        model.encoder.head.bias.zero_()
        model.upsampler.out.weight.zero_()  # s = its bias, whatever z is
    x = random_images(model, 3)
    exact = model.log_prob_from_params(model(x), x).double()  # given any latent: 0
    bounds = model.bounds(x, num_samples=5, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(bounds["kl"], torch.zeros(3, dtype=torch.float64))
    for value in (bounds["elbo"], bounds["iw"], model.log_prob(x)):
        assert torch.allclose(value.double(), exact, rtol=1e-6)


def test_importance_weighted_bound_is_above_the_elbo_on_average() -> None:
    model = vae().eval()
    with torch.no_grad():  # a posterior far from q, so that the bounds differ
        model.encoder.head.bias[:4].fill_(1.5)
    x = random_images(model, 4)
    g = torch.Generator().manual_seed(0)
    runs = [model.bounds(x, num_samples=16, generator=g) for _ in range(40)]
    elbo = torch.stack([r["elbo"] for r in runs]).mean(0)
    iw = torch.stack([r["iw"] for r in runs]).mean(0)
    assert (iw > elbo).all()


def test_training_objective_is_the_elbo_and_reaches_the_encoder() -> None:
    model = vae(kl_warmup_steps=100).train()
    x = random_images(model, 4)
    model.set_training_step(50)
    objective = model.log_prob(x)
    assert model.kl_weight == 0.5 and model.last_kl is not None and (model.last_kl > 0).all()
    (-objective.sum()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters())
    model.set_training_step(500)
    assert model.kl_weight == 1.0


def test_free_bits_floor_the_kl_of_unused_dimensions() -> None:
    model = vae(free_bits=10.0).train()
    x = random_images(model, 4)
    model(x)  # a fresh model's KL per dimension is far below 10 nats
    assert torch.allclose(model.last_kl, torch.full((4,), 40.0, dtype=torch.float64))


def test_the_deterministic_auto_encoder_has_no_kl() -> None:
    model = vae(deterministic=True)
    x = random_images(model, 3)
    model.train()
    model(x)
    assert model.last_kl is None
    model.eval()
    bounds = model.bounds(x)
    assert torch.equal(bounds["kl"], torch.zeros(3, dtype=torch.float64))
    assert torch.equal(bounds["elbo"], bounds["iw"])


def test_a_latent_model_is_not_compressed_without_bits_back() -> None:
    model = vae().eval()
    with pytest.raises(ValueError, match="bits-back coding"):
        pixelrnn.compress(model, random_images(model, 2))


def test_command_line_trains_evaluates_and_samples_naming_bounds(
    tmp_path: Path, data_dir: Path, capsys
) -> None:
    run = tmp_path / "vae"
    args = ["train", "--preset", "pixelvae-tiny", "--image-shape", "1,28,28"]
    args += ["--max-train-images", "32", "--batch-size", "16", "--epochs", "1"]
    args += ["--max-eval-images", "16", "--num-samples", "4", "--num-completions", "1"]
    assert main([*args, "--run-dir", str(run), "--data-dir", str(data_dir)]) == 0
    results = json.loads((run / "results.json").read_text())
    assert results["likelihood"] == "upper bound on the NLL (importance-weighted, K=4)"
    capsys.readouterr()
    assert main(["evaluate", str(run), "--max-images", "8", "--data-dir", str(data_dir)]) == 0
    assert "upper bound on the NLL" in capsys.readouterr().out
    assert main(["sample", str(run), "-n", "4", "-o", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").is_file()
