"""PixelVAE, one level and the two-level hierarchy: its bounds (exact when the latents carry
nothing, importance-weighted ≥ ELBO), gradients into the encoder and the learned prior, the
deterministic auto-encoder, KL warm-up and free bits, the figures (what a grid row shares,
reconstructions, interpolations), and the command line naming the figures as bounds with the KL
and active units. (Causality given z, cached = naive, completion and save/load of the one-level
model run in the shared tests over every registered model; the hierarchy's here.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import pixelrnn
from pixelrnn.cli import main
from pixelrnn.distributions.gaussian import gaussian_log_density
from pixelrnn.models.pixelvae import PixelVAE
from pixelrnn.sampling import sample
from pixelrnn.sampling.latent_grids import interpolations, latent_grid, reconstructions
from tests.helpers import assert_causal, random_images, tiny_model

HIERARCHY = {"spatial_latent": True, "top_latent_dim": 3}


def vae(**overrides: object) -> PixelVAE:
    model = tiny_model(1, 2, size=8, model="pixelvae", **overrides).double()
    assert isinstance(model, PixelVAE)
    return model


def ignore_latents(model: PixelVAE) -> None:
    """Encoder = prior and a conditioning map that ignores z."""
    with torch.no_grad():
        for head in (model.encoder.head, model.encoder.top_head, model.bottom_prior):
            if head is None:
                continue
            out = head if isinstance(head, torch.nn.Linear | torch.nn.Conv2d) else head.out
            out.weight.zero_()
            out.bias.zero_()
        model.upsampler.out.weight.zero_()  # s = its bias, whatever z is


@pytest.mark.parametrize("levels", [{}, HIERARCHY], ids=["one-level", "two-level"])
def test_a_latent_that_carries_nothing_gives_the_exact_likelihood(levels: dict) -> None:
    """Encoder = prior (mean 0, log-variance 0; in a hierarchy p(z_bottom | z_top) = N(0, I)
    too) and a conditioning map that ignores z: the ELBO and the importance-weighted bound both
    equal the decoder's exact log-likelihood."""
    model = vae(**levels).eval()
    ignore_latents(model)
    x = random_images(model, 3)
    exact = model.log_prob_from_params(model(x), x).double()  # given any latent: 0
    bounds = model.bounds(x, num_samples=5, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(bounds["kl"], torch.zeros(3, dtype=torch.float64))
    for value in (bounds["elbo"], bounds["iw"], model.log_prob(x)):
        assert torch.allclose(value.double(), exact, rtol=1e-6)


@pytest.mark.parametrize("levels", [{}, HIERARCHY], ids=["one-level", "two-level"])
def test_importance_weighted_bound_is_above_the_elbo_on_average(levels: dict) -> None:
    model = vae(**levels).eval()
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


def test_the_hierarchy_learns_its_prior_and_its_kl_is_the_monte_carlo_one() -> None:
    model = vae(**HIERARCHY).train()
    assert model.latent_shapes == [(4, 2, 2), (3,)]
    x = random_images(model, 4)
    (-model.log_prob(x).sum()).backward()
    for part in (model.encoder.top_head, model.bottom_prior, model.encoder.head):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters())
    model.eval()
    with torch.no_grad():
        levels = model.encode(x)
        g = torch.Generator().manual_seed(0)
        # log q(z | x) - log p(z) averaged over many z: the KL of both levels
        z = [
            torch.randn((20_000, *m.shape), generator=g, dtype=m.dtype) * (0.5 * v).exp() + m
            for m, v in levels
        ]
        log_q = sum(
            gaussian_log_density(zi.flatten(2), m.flatten(1), v.flatten(1))
            for zi, (m, v) in zip(z, levels, strict=True)
        )  # (20000, B)
        log_p = model.prior_log_density([zi.flatten(0, 1) for zi in z]).view(20_000, 4)
        monte_carlo = (log_q - log_p).mean(0)
        # the closed form is exact for the top level and, given z_top, for the bottom one:
        # averaged over z_top it is the whole KL
        closed = torch.stack(
            [model.kl_entries(levels, [zi[k] for zi in z]).sum(1) for k in range(0, 20_000, 20)]
        ).mean(0)
    assert torch.allclose(monte_carlo, closed, rtol=0.03, atol=0.05)


def test_the_hierarchy_is_causal_given_its_latents() -> None:
    assert_causal(vae(**HIERARCHY))


def test_the_hierarchy_samples_the_same_images_cached_and_naive() -> None:
    model = vae(**HIERARCHY).float()
    cached = sample(model, 3, generator=torch.Generator().manual_seed(4))
    naive = sample(model, 3, generator=torch.Generator().manual_seed(4), method="naive")
    assert torch.equal(cached, naive)


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


def test_command_line_trains_evaluates_samples_and_draws_the_figures(
    tmp_path: Path, data_dir: Path, capsys
) -> None:
    """A two-level PixelVAE through the CLI: the figures are named bounds with the KL and the
    active units beside them, and every grid is drawn."""
    run = tmp_path / "vae"
    args = ["train", "--preset", "pixelvae-tiny", "--image-shape", "1,28,28"]
    args += ["--spatial-latent", "true", "--top-latent-dim", "2"]
    args += ["--max-train-images", "32", "--batch-size", "16", "--epochs", "1"]
    args += ["--max-eval-images", "16", "--num-samples", "4", "--num-completions", "1"]
    assert main([*args, "--run-dir", str(run), "--data-dir", str(data_dir)]) == 0
    results = json.loads((run / "results.json").read_text())
    assert results["likelihood"] == "upper bound on the NLL (importance-weighted, K=4)"
    assert results["nats_per_image"] <= results["elbo_nats_per_image"] + 1.0
    assert results["latent_dims"] == 4 * 7 * 7 + 2
    assert 0 <= results["active_units"] <= results["latent_dims"]
    assert results["kl_nats_per_image"] > 0
    capsys.readouterr()
    evaluate = ["evaluate", str(run), "--max-images", "8", "--importance-samples", "3"]
    assert main([*evaluate, "--data-dir", str(data_dir)]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["likelihood"] == "upper bound on the NLL (importance-weighted, K=3)"
    assert {"elbo_nats_per_image", "kl_nats_per_image", "active_units"} <= set(evaluated)
    for grid in ("", "vary-top", "vary-bottom", "vary-noise", "reconstructions", "interpolation"):
        out = tmp_path / f"{grid or 'samples'}.png"
        flags = ["--grid", grid] if grid else []
        assert (
            main(
                ["sample", str(run), "-n", "4", *flags, "-o", str(out), "--data-dir", str(data_dir)]
            )
            == 0
        )
        assert out.is_file(), grid


def test_the_figures_need_a_latent_model(tmp_path: Path, capsys) -> None:
    pixelrnn.save_pretrained(tiny_model(1, 2, size=8), tmp_path / "cnn")
    args = ["sample", str(tmp_path / "cnn"), "--grid", "vary-noise", "-o", str(tmp_path / "g.png")]
    assert main(args) != 0
    assert (
        "--grid vary-noise needs a latent model (PixelVAE), not a pixelcnn"
        in capsys.readouterr().err
    )
    assert not (tmp_path / "g.png").exists()


def recorded_latents(model: PixelVAE, monkeypatch: pytest.MonkeyPatch) -> list:
    """The latents every decoding of ``model`` is given, in order."""
    seen: list = []
    given_latent = model.given_latent

    def recording(z):  # type: ignore[no-untyped-def]
        seen.append([level.clone() for level in z])
        return given_latent(z)

    monkeypatch.setattr(model, "given_latent", recording)
    return seen


@pytest.mark.parametrize(
    ("kind", "shared_levels"),
    [("vary-top", [0]), ("vary-bottom", [1]), ("vary-noise", [0, 1])],
)
def test_a_grid_row_shares_what_it_names(
    kind: str, shared_levels: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Columns are decoded one by one: the latent noise a row shares is equal across them, the
    varied level is not; the pixel-level noise is shared unless it is what varies."""
    model = vae(**HIERARCHY).float().eval()
    seen = recorded_latents(model, monkeypatch)
    grid = latent_grid(model, kind, 2, 3, torch.Generator().manual_seed(0))
    assert grid.shape == (6, 1, 8, 8)
    bottom_prior = [model.bottom_prior_parameters(z[1]) for z in seen]
    noise = [  # the bottom level's noise, recovered from z_bottom = μ + σ · ε
        [(z[0] - mean) / (0.5 * log_var).exp(), z[1]]
        for z, (mean, log_var) in zip(seen, bottom_prior, strict=True)
    ]
    for level in (0, 1):
        same = all(torch.allclose(n[level], noise[0][level], atol=1e-5) for n in noise[1:])
        assert same == (level in shared_levels), (kind, level)
    # the pixel-level noise: a decoder that ignores z draws one image per row unless it varies
    ignore_latents(model)
    rows = latent_grid(model, kind, 2, 3, torch.Generator().manual_seed(0)).view(2, 3, -1)
    identical = all(torch.equal(rows[:, 0], rows[:, j]) for j in (1, 2))
    assert identical == (kind != "vary-noise")


def test_a_one_level_model_has_no_bottom_grid() -> None:
    with pytest.raises(ValueError, match="vary-bottom needs a two-level PixelVAE"):
        latent_grid(vae().float(), "vary-bottom", 2, 2, torch.Generator().manual_seed(0))


def test_reconstructions_and_interpolations_decode_the_posterior_means(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = vae(**HIERARCHY).float().eval()
    x = random_images(model, 4)
    seen = recorded_latents(model, monkeypatch)
    grid = reconstructions(model, x[:2], 3, torch.Generator().manual_seed(0))
    assert grid.shape == (8, 1, 8, 8) and torch.equal(grid[:2], x[:2])
    means = [m for m, _ in model.encode(x[:2])]
    assert len(seen) == 3 and all(torch.equal(z[0], means[0]) for z in seen)
    seen.clear()
    rows = interpolations(model, x[:2], x[2:], 4, torch.Generator().manual_seed(0))
    rows = rows.view(2, 6, 1, 8, 8)
    assert torch.equal(rows[:, 0], x[:2]) and torch.equal(rows[:, -1], x[2:])
    end = [m for m, _ in model.encode(x[2:])]
    assert torch.allclose(seen[0][1], means[1]) and torch.allclose(seen[-1][1], end[1])
    with pytest.raises(ValueError, match=">= 2 steps"):
        interpolations(model, x[:2], x[2:], 1, torch.Generator())
