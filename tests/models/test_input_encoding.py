"""Nominal inputs (``input_encoding="embedding"``) for every family that takes them: causality
through the whole network, cached = naive generation, the receptive field of the full-context
Diagonal BiLSTM, and the reason for the encoding — relabelling the symbols (the data, the
embedding rows and the output logits permuted together) leaves log p unchanged, which a scaled
input does not."""

from __future__ import annotations

import pytest
import torch

import pixelrnn
from pixelrnn.models import MODELS
from pixelrnn.models.persistence import model_fingerprint
from pixelrnn.nn.input_encoding import InputEncoding
from tests.helpers import (
    assert_causal,
    earlier_pixels,
    pixel_dependencies,
    random_images,
    tiny_model,
)
from tests.sampling.test_cached import recorded_generation

FAMILIES = [name for name in pixelrnn.available_models() if MODELS[name].supports_embedding]
EMBEDDING = {"input_encoding": "embedding", "embedding_dim": 3, "distribution": "categorical"}


def test_the_families_that_take_embeddings() -> None:
    expected = {"pixelcnn", "gated_pixelcnn", "row_lstm", "diagonal_bilstm", "multiscale"}
    assert set(FAMILIES) == expected
    for name in set(pixelrnn.available_models()) - set(FAMILIES):
        with pytest.raises(ValueError, match="reads levels as intensities only"):
            tiny_model(1, 5, model=name, input_encoding="embedding")


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", FAMILIES)
def test_embedded_inputs_stay_causal(name: str, channels: int) -> None:
    # 4 feature maps per colour group, so that no group is silenced by dead ReLUs at random
    model = tiny_model(channels, 5, size=5, model=name, hidden_channels=12, **EMBEDDING)
    assert_causal(model)


def test_the_full_context_bilstm_still_sees_every_earlier_pixel() -> None:
    model = tiny_model(1, 5, size=6, model="diagonal_bilstm", full_context=True, **EMBEDDING)
    for row, col in [(3, 2), (5, 0), (2, 5)]:
        assert torch.equal(pixel_dependencies(model, row, col), earlier_pixels(6, 6, row, col))


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", FAMILIES)
def test_cached_generation_matches_the_naive_loop(name: str, channels: int) -> None:
    model = tiny_model(channels, 7, size=5, model=name, **EMBEDDING).double()
    x = random_images(model, 3, seed=5)
    known = torch.rand(x.shape, generator=torch.Generator().manual_seed(2)) < 0.3
    naive, naive_params = recorded_generation(model, "naive", known, x)
    cached, cached_params = recorded_generation(model, "cached", known, x)
    assert torch.equal(cached, naive) and torch.equal(cached[known], x[known])
    for p, q in zip(naive_params, cached_params, strict=True):
        torch.testing.assert_close(q, p, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", FAMILIES)
def test_relabelled_symbols_have_the_same_likelihood(name: str) -> None:
    """Permute the symbols: images ``π(x)``, embedding rows ``table[π⁻¹]`` and the last layer's
    logits ``out[π⁻¹]``. The embedded model gives the same log p; the scaled one does not."""
    k = 6
    permutation = torch.tensor([3, 0, 5, 1, 4, 2])  # symbol v is called permutation[v]
    inverse = torch.argsort(permutation)
    x = random_images(tiny_model(1, k, size=5, model=name, **EMBEDDING), 4)
    results = {}
    for encoding in ("embedding", "intensity"):
        options = {**EMBEDDING, "input_encoding": encoding}
        model = tiny_model(1, k, size=5, model=name, **options).double().eval()
        before = model.log_prob(x)
        with torch.no_grad():  # every table and every stage's output layer (multi-scale)
            for module in model.modules():
                if isinstance(module, InputEncoding) and module.table is not None:
                    module.table.copy_(module.table[:, inverse])
                if isinstance(module, pixelrnn.AutoregressiveModel) and hasattr(module, "output"):
                    output = module.output  # K logits per sub-pixel of the one channel
                    output.weight.copy_(output.weight[inverse])
                    output.bias.copy_(output.bias[inverse])
        results[encoding] = (before, model.log_prob(permutation[x]))
    before, after = results["embedding"]
    torch.testing.assert_close(after, before, rtol=1e-6, atol=1e-6)
    before, after = results["intensity"]
    assert not torch.allclose(after, before, atol=1e-3)


def test_the_encoding_gives_one_row_per_symbol_and_channel() -> None:
    encoding = InputEncoding(2, 4, "embedding", 3)
    x = torch.tensor([[[[0, 3]], [[2, 1]]]])  # (1, 2, 1, 2)
    features = encoding(x, torch.float32)
    assert features.shape == (1, 6, 1, 2)
    torch.testing.assert_close(features[0, 3:, 0, 1], encoding.table[1, 1])
    torch.testing.assert_close(
        encoding.values(x[:, :, 0, 1], 0, torch.float32)[0], features[0, :, 0, 1]
    )
    with pytest.raises(ValueError, match="input_encoding must be one of"):
        InputEncoding(1, 4, "one-hot", 3)


def test_models_without_the_new_fields_keep_their_fingerprint() -> None:
    """The fingerprint that ``.prnn`` files name leaves the input-encoding fields out at their
    defaults: this model's fingerprint is the one it had before they existed."""
    torch.manual_seed(0)
    model = pixelrnn.create_model(preset="pixelcnn-tiny")
    expected = "a836a55503976ea144168b1eea138a6154be44094a0c07887d402f1b28ed3210"
    assert model_fingerprint(model).hex() == expected
    embedded = pixelrnn.create_model(preset="pixelcnn-tiny", input_encoding="embedding")
    assert model_fingerprint(embedded).hex() != expected


def test_a_three_scale_model_embeds_per_stage_and_saves(tmp_path) -> None:
    """Every stage of a nested multi-scale model owns its table (and the upsamplers theirs):
    still causal, cached = naive, and saved and loaded through safetensors unchanged."""
    model = tiny_model(1, 5, size=8, model="multiscale", num_scales=3, **EMBEDDING).double()
    tables = [m.table for m in model.modules() if isinstance(m, InputEncoding)]
    assert len(tables) == 5  # 3 stages, 2 upsamplers
    assert len({t.data_ptr() for t in tables}) == 5
    assert_causal(model)
    x = random_images(model, 2, seed=1)
    known = torch.zeros_like(x, dtype=torch.bool)
    naive, _ = recorded_generation(model, "naive", known, x)
    cached, _ = recorded_generation(model, "cached", known, x)
    assert torch.equal(cached, naive)
    pixelrnn.save_pretrained(model, tmp_path / "m")
    loaded = pixelrnn.load_pretrained(tmp_path / "m")
    assert torch.equal(loaded.log_prob(x), model.log_prob(x))
