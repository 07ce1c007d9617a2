"""The shipped models: each loads by name, matches its card, and scores as its card says (a
prior over codes: the two-stage bound with the shipped VQ-VAE it names).

The first-500 figure pins the numerics of every shipped family: a change that alters what a
trained model computes fails here.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest

import pixelrnn
from pixelrnn.data import load_dataset
from pixelrnn.models import WEIGHTS_NAME
from pixelrnn.models import pretrained as pretrained_module
from pixelrnn.models.pretrained import (
    CHECK_BATCH,
    CHECK_IMAGES,
    available_pretrained,
    pretrained_card,
    sha256_of,
)
from pixelrnn.training import evaluate_nll, make_generator
from pixelrnn.training.code_prior import evaluate_two_stage, is_code_prior, recorded_vqvae

SHIPPED = available_pretrained()
# float32 log-likelihoods summed in float64: on another CPU or thread count the nats per image
# agree to well within 2e-3 nats or 1e-6 relative (8-bit colour images are ~10^4 nats)
TOLERANCE_NATS, TOLERANCE_REL = 2e-3, 1e-6


def test_models_are_shipped() -> None:
    assert SHIPPED, "the package ships no pretrained model"


@pytest.mark.parametrize("name", SHIPPED)
def test_a_shipped_model_scores_as_its_card_says(name: str, data_dir: Path) -> None:
    card = pretrained_card(name)
    model = pixelrnn.load_pretrained(name)
    assert sha256_of(pretrained_module.PRETRAINED_DIR / name / WEIGHTS_NAME) == card.sha256
    data = load_dataset(card.dataset, "test", data_dir, binarize=card.binarize)  # type: ignore[arg-type]
    if is_code_prior(name):  # the two-stage bound on its shipped VQ-VAE's images
        vqvae = recorded_vqvae(name)  # refuses a VQ-VAE of another fingerprint
        num_dims = vqvae.num_dims
        result = evaluate_two_stage(model, vqvae, data, CHECK_BATCH, CHECK_IMAGES)
    else:
        num_dims = model.num_dims
        result = evaluate_nll(
            model,
            data,
            CHECK_BATCH,
            generator=make_generator(0, "eval", "test"),
            max_images=CHECK_IMAGES,
        )
    # bits per dimension = nats / (D ln 2) (the stored figure went through float32)
    assert card.bits_per_dim == pytest.approx(
        card.nats_per_image / (num_dims * math.log(2)), rel=1e-7
    )
    assert card.likelihood == result.likelihood
    assert result.num_images == CHECK_IMAGES
    expected = card.first_500_nats_per_image
    assert result.nats_per_image == pytest.approx(expected, rel=TOLERANCE_REL, abs=TOLERANCE_NATS)


def test_damaged_weights_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = SHIPPED[0]
    copy = tmp_path / "pretrained"
    shutil.copytree(pretrained_module.PRETRAINED_DIR, copy)
    weights = copy / name / WEIGHTS_NAME
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # one bit pattern of the last weight
    weights.write_bytes(bytes(data))
    monkeypatch.setattr(pretrained_module, "PRETRAINED_DIR", copy)
    with pytest.raises(ValueError, match=r"sha256 .* differs from the model card"):
        pixelrnn.load_pretrained(name)


def test_an_unknown_name_lists_the_shipped_ones() -> None:
    with pytest.raises(FileNotFoundError, match="nor a pretrained model of that name"):
        pixelrnn.load_pretrained("no-such-model")
