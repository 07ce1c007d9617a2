"""The public model API: create, log_prob, sample, complete, save/load, and bad input."""

from __future__ import annotations

import json

import pytest
import torch

import pixelrnn
from pixelrnn.models import PRESETS
from tests.helpers import random_images, reseal, tiny_model


def test_registry_and_presets() -> None:
    assert "pixelcnn" in pixelrnn.available_models()
    assert {"pixelcnn-mnist", "pixelcnn-cifar10", "pixelcnn-tiny"} <= set(
        pixelrnn.available_presets()
    )
    for name, preset in PRESETS.items():
        assert preset.model in pixelrnn.available_models(), name


def test_paper_presets_have_the_paper_sizes() -> None:
    mnist = pixelrnn.create_model(preset="pixelcnn-mnist")
    assert mnist.image_shape == (1, 28, 28) and mnist.num_levels == 2
    # 7x7 mask A 1->32, 15 blocks (32->16, 3x3 16->16, 16->32), 32->32->1 output layers
    assert sum(p.numel() for p in mnist.parameters()) == 53_569
    cifar = pixelrnn.create_model(preset="pixelcnn-cifar10")
    assert cifar.image_shape == (3, 32, 32) and cifar.num_levels == 256
    assert cifar.config.hidden_channels == 128 and cifar.config.num_layers == 15
    assert cifar.output.out_channels == 3 * 256 and cifar.output_hidden.out_channels == 1024


def test_log_prob_shapes_and_consistency(colour_model) -> None:
    x = random_images(colour_model, 3)
    per_sub_pixel = colour_model.log_prob(x, reduction="none")
    per_image = colour_model.log_prob(x)
    assert per_sub_pixel.shape == x.shape
    assert per_image.shape == (3,)
    torch.testing.assert_close(per_image, per_sub_pixel.flatten(1).sum(1))
    assert torch.all(per_image < 0)


@pytest.mark.parametrize(
    ("bad", "error", "message"),
    [
        (torch.zeros(2, 1, 5, 5), TypeError, "integer pixel values"),
        (torch.zeros(2, 1, 5, 5, dtype=torch.bool), TypeError, "integer pixel values"),
        (torch.zeros(2, 3, 5, 5, dtype=torch.long), ValueError, r"shape \(B, 1, 5, 5\)"),
        (torch.zeros(1, 5, 5, dtype=torch.long), ValueError, "shape"),
        (torch.full((2, 1, 5, 5), 2), ValueError, r"values must lie in \[0, 2\)"),
        (torch.full((2, 1, 5, 5), -1), ValueError, "min -1"),
    ],
)
def test_bad_images_get_clear_errors(binary_model, bad, error, message) -> None:
    with pytest.raises(error, match=message):
        binary_model.log_prob(bad)


def test_create_model_errors() -> None:
    with pytest.raises(ValueError, match="unknown model 'pixelsnail'"):
        pixelrnn.create_model("pixelsnail")
    with pytest.raises(ValueError, match="unknown preset"):
        pixelrnn.create_model(preset="nope")
    with pytest.raises(
        ValueError, match=r"PixelCNNConfig: unknown field\(s\) \['hiden_channels'\]"
    ):
        pixelrnn.create_model("pixelcnn", hiden_channels=3)
    with pytest.raises(ValueError, match="must be odd"):
        pixelrnn.create_model("pixelcnn", kernel_size=4)
    with pytest.raises(ValueError, match="num_layers must be a positive integer"):
        pixelrnn.create_model("pixelcnn", num_layers=0)
    with pytest.raises(ValueError, match="needs num_levels == 2"):
        pixelrnn.create_model("pixelcnn", num_levels=4, distribution="bernoulli")
    with pytest.raises(ValueError, match="reduction"):
        tiny_model().log_prob(torch.zeros(1, 1, 5, 5, dtype=torch.long), reduction="mean")


@pytest.mark.parametrize("name", pixelrnn.available_models())
def test_seeded_sampling_is_reproducible(name: str) -> None:
    colour_model = tiny_model(3, 256, model=name, hidden_channels=9)
    a = pixelrnn.sample(colour_model, 2, generator=torch.Generator().manual_seed(3))
    b = pixelrnn.sample(colour_model, 2, generator=torch.Generator().manual_seed(3))
    c = pixelrnn.sample(colour_model, 2, generator=torch.Generator().manual_seed(4))
    assert a.shape == (2, 3, 5, 5) and a.dtype == torch.long
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert int(a.min()) >= 0 and int(a.max()) < 256


def test_sampling_follows_the_model_conditionals() -> None:
    """A 1x2 binary model: sampled pair frequencies match exp(log_prob) of the four images."""
    torch.manual_seed(5)
    model = pixelrnn.create_model(preset="pixelcnn-tiny", image_shape=(1, 1, 2))
    with torch.no_grad():
        model.output.bias.fill_(0.8)  # make the four probabilities clearly unequal
    images = torch.tensor([[0, 0], [0, 1], [1, 0], [1, 1]]).reshape(4, 1, 1, 2)
    probs = model.log_prob(images).detach().double().exp()
    assert float(probs.sum()) == pytest.approx(1.0, abs=1e-6)
    draws = pixelrnn.sample(model, 4000, generator=torch.Generator().manual_seed(0)).reshape(
        4000, 2
    )
    freq = torch.bincount(draws[:, 0] * 2 + draws[:, 1], minlength=4).double() / 4000
    torch.testing.assert_close(freq, probs, atol=0.03, rtol=0)


@pytest.mark.parametrize("name", pixelrnn.available_models())
def test_completion_keeps_known_pixels(name: str) -> None:
    colour_model = tiny_model(3, 256, model=name, hidden_channels=9)
    x = random_images(colour_model, 3, seed=5)
    g = torch.Generator().manual_seed(0)
    known = torch.rand(x.shape, generator=g) < 0.5
    out = pixelrnn.complete(colour_model, x, known, generator=torch.Generator().manual_seed(1))
    assert torch.equal(out[known], x[known])
    assert out.shape == x.shape
    everything = pixelrnn.complete(colour_model, x, torch.ones_like(known))
    assert torch.equal(everything, x)


def test_completion_ignores_values_at_unknown_positions(binary_model) -> None:
    x = random_images(binary_model, 2)
    known = torch.zeros_like(x, dtype=torch.bool)
    known[:, :, :2] = True
    a = pixelrnn.complete(binary_model, x, known, generator=torch.Generator().manual_seed(0))
    flipped = torch.where(known, x, 1 - x)  # other values where unknown, same where known
    b = pixelrnn.complete(binary_model, flipped, known, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)


def test_completion_argument_errors(binary_model) -> None:
    x = random_images(binary_model, 2)
    with pytest.raises(TypeError, match="bool"):
        pixelrnn.complete(binary_model, x, torch.ones_like(x))
    with pytest.raises(ValueError, match="shape of x"):
        pixelrnn.complete(binary_model, x, torch.ones(1, 1, 5, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="positive number"):
        pixelrnn.sample(binary_model, 0)


@pytest.mark.parametrize("name", pixelrnn.available_models())
def test_save_load_roundtrip_gives_identical_outputs(name: str, tmp_path) -> None:
    colour_model = tiny_model(3, 256, model=name, hidden_channels=9)
    pixelrnn.save_pretrained(colour_model, tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["model"] == name and cfg["config"]["image_shape"] == [3, 5, 5]
    loaded = pixelrnn.load_pretrained(tmp_path / "m")
    x = random_images(colour_model, 4)
    loaded.eval(), colour_model.eval()
    # the conditionals (a latent model's given the same latent: the prior mean)
    assert torch.equal(loaded(x), colour_model(x))
    assert torch.equal(
        loaded.log_prob_from_params(loaded(x), x, reduction="none"),
        colour_model.log_prob_from_params(colour_model(x), x, reduction="none"),
    )
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    assert torch.equal(
        pixelrnn.sample(loaded, 2, generator=g1), pixelrnn.sample(colour_model, 2, generator=g2)
    )
    assert not list(tmp_path.glob("m/*.tmp"))


def test_load_rejects_bad_folders(tmp_path, binary_model) -> None:
    with pytest.raises(FileNotFoundError, match="no such run"):
        pixelrnn.load_pretrained(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"model\.safetensors"):
        pixelrnn.load_pretrained(tmp_path / "empty")
    pixelrnn.save_pretrained(binary_model, tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").write_bytes(b"\x80\x04not safetensors")
    with pytest.raises(ValueError, match=r"checkpoint corrupted: .*model\.safetensors differs"):
        pixelrnn.load_pretrained(tmp_path / "m")
    reseal(tmp_path / "m")  # written wrongly rather than damaged on disk
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        pixelrnn.load_pretrained(tmp_path / "m")
    pixelrnn.save_pretrained(binary_model, tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["config"]["hidden_channels"] = 12
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    reseal(tmp_path / "m")
    with pytest.raises(ValueError, match="does not fit"):
        pixelrnn.load_pretrained(tmp_path / "m")
    cfg["model"] = "evil"
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    reseal(tmp_path / "m")
    with pytest.raises(ValueError, match="field 'model': expected one of"):
        pixelrnn.load_pretrained(tmp_path / "m")


def test_golden_bits_per_dim_of_a_tiny_seeded_model() -> None:
    """Regression guard: a fixed seed, config and input give this NLL (computed once, on
    torch 2.13 CPU, when the model was written). A change means the network changed."""
    model = tiny_model(3, 256, size=4, seed=1234, hidden_channels=9)
    x = random_images(model, 2, seed=99)
    nll = -model.log_prob(x).detach().double()
    bpd = pixelrnn.bits_per_dim(nll.mean(), model.num_dims)
    assert float(bpd) == pytest.approx(GOLDEN_BPD, abs=1e-5)


GOLDEN_BPD = 8.024450451490546


@pytest.mark.parametrize("name", ["row_lstm", "diagonal_bilstm"])
def test_residual_and_skip_switches(name: str) -> None:
    """The paper's Table 2 ablation: residual and skip connections can be switched off."""
    full = tiny_model(1, 2, model=name)
    assert len(full.skips) == full.config.num_layers and full.blocks[0].residual
    bare = tiny_model(1, 2, model=name, residual=False, skip=False)
    assert len(bare.skips) == 0 and not bare.blocks[0].residual
    x = random_images(full, 2)
    assert bare.log_prob(x).shape == (2,)
    # same weights where they exist, different network: the outputs differ
    bare.load_state_dict(full.state_dict(), strict=False)
    assert not torch.equal(bare.log_prob(x), full.log_prob(x))


def test_paper_pixelrnn_presets() -> None:
    mnist = pixelrnn.create_model(preset="diagonal-bilstm-mnist")
    assert (mnist.config.num_layers, mnist.config.hidden_channels) == (7, 16)
    one = pixelrnn.create_model(preset="diagonal-bilstm-mnist-1layer")
    assert (one.config.num_layers, one.config.hidden_channels) == (1, 32)
    for preset in ("row-lstm-cifar10", "diagonal-bilstm-cifar10"):
        cfg = PRESETS[preset].config
        assert (cfg["num_layers"], cfg["hidden_channels"], cfg["output_channels"]) == (
            12,
            128,
            1024,
        )
    assert PRESETS["row-lstm-imagenet32"].config["hidden_channels"] == 384
    big = PRESETS["row-lstm-imagenet64"].config
    assert (big["num_layers"], big["hidden_channels"], big["residual"]) == (4, 512, False)


def test_sizes_that_cannot_fit_are_refused_before_allocation() -> None:
    """Measured on the meta device: refused at once with the estimate, nothing allocated."""
    with pytest.raises(ValueError, match=r"needs at least [\d,.]+ GB .* this machine has"):
        pixelrnn.create_model(preset="pixelcnn-tiny", hidden_channels=1_000_000)
    with pytest.raises(ValueError, match=r"GB of outputs for one 1x100000x100000 image"):
        pixelrnn.create_model(preset="pixelcnn-tiny", image_shape=(1, 100_000, 100_000))
